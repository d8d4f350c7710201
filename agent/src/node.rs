//! Node mode: the component interface of Geniwrapper (2008 method names and arguments) on the
//! HTTPS XML-RPC server, one module per method, over an `nm-bridge` backend.
//!
//! Every credential-bearing call goes through [`Node::authenticate`] with nothing skipped: the
//! credential and its caller and object GIDs verify against the trusted roots (dates and every
//! chain rule), the TLS client key is the caller GID's key, and the rights allow the operation;
//! then [`Node::sliver_for`] decides which sliver the credential's object names. Calls on one
//! sliver are serialised by a per-sliver lock; different slivers run in parallel. Backends persist
//! each change before it is acknowledged.

pub(crate) mod config;
mod delete_slice;
mod get_ticket;
mod list_component_resources;
mod list_slices;
mod noop;
mod pidfile;
mod reboot;
mod redeem_ticket;
mod reset_slice;
mod restart;
mod run;
mod start_slice;
mod stop_slice;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use geni_rpc::{CallContext, Dispatcher, RpcError};
use geni_trust::{
    Credential, Gid, Hrn, Keypair, Operation, VerifiedCredential, Verifier, hrn_to_pl_slicename,
};
use geni_xmlrpc::Value;
use nm_bridge::{NmError, SliverManager, SliverName};

pub(crate) use run::{NodeArgs, run};

/// Everything a node method needs.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) backend: Arc<dyn SliverManager>,
    /// The node's own identity: its GID, key, and the credential over itself that its authority
    /// issued (the parent of every sliver credential it hands out).
    pub(crate) gid: Gid,
    pub(crate) key: Keypair,
    pub(crate) credential: Credential,
    /// Changes live on SIGHUP.
    pub(crate) reboot_command: std::sync::RwLock<Vec<String>>,
    locks: Mutex<HashMap<SliverName, Arc<tokio::sync::Mutex<()>>>>,
}

/// Signature shared by every method module.
type MethodFn = fn(Arc<Node>, CallContext, Vec<Value>) -> geni_rpc::HandlerFuture;

impl Node {
    pub(crate) fn new(
        verifier: Arc<Verifier>,
        backend: Arc<dyn SliverManager>,
        gid: Gid,
        key: Keypair,
        credential: Credential,
        reboot_command: Vec<String>,
    ) -> Self {
        Self {
            verifier,
            backend,
            gid,
            key,
            credential,
            reboot_command: std::sync::RwLock::new(reboot_command),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn hrn(&self) -> &Hrn {
        self.gid.hrn()
    }

    /// The method table of the component interface.
    pub(crate) fn dispatcher(self: &Arc<Self>) -> Dispatcher {
        let methods: [(&str, &str, MethodFn); 10] = [
            ("noop", noop::HELP, noop::call),
            ("redeem_ticket", redeem_ticket::HELP, redeem_ticket::call),
            ("start_slice", start_slice::HELP, start_slice::call),
            ("stop_slice", stop_slice::HELP, stop_slice::call),
            ("reset_slice", reset_slice::HELP, reset_slice::call),
            ("delete_slice", delete_slice::HELP, delete_slice::call),
            ("list_slices", list_slices::HELP, list_slices::call),
            ("reboot", reboot::HELP, reboot::call),
            (
                "list_component_resources",
                list_component_resources::HELP,
                list_component_resources::call,
            ),
            ("get_ticket", get_ticket::HELP, get_ticket::call),
        ];
        let mut d = Dispatcher::new();
        for (name, help, f) in methods {
            let node = Arc::clone(self);
            d.register(name, help, move |ctx, params| {
                f(Arc::clone(&node), ctx, params)
            });
        }
        d
    }

    /// The authentication pipeline for a credential: verify it and its GID chains (dates, every
    /// chain rule, trusted roots), bind its caller to the TLS key, check `operation`.
    pub(crate) fn authenticate(
        &self,
        ctx: &CallContext,
        credential: &str,
        operation: Operation,
    ) -> Result<VerifiedCredential, RpcError> {
        crate::auth::authenticate(&self.verifier, ctx, credential, operation)
    }

    /// The sliver a verified credential acts on. A sliver credential from this node names it
    /// directly (`<node hrn>.<sliver>`); a slice credential names the slice, mapped as 2008 did
    /// (`planetlab.us.pl.s1` → `pl_s1`). `target`, the optional second argument later SFA added,
    /// picks a slice under an authority credential; the credential's object must be it or an
    /// authority over it.
    pub(crate) fn sliver_for(
        &self,
        verified: &VerifiedCredential,
        target: Option<&str>,
    ) -> Result<SliverName, RpcError> {
        let object = verified.object().hrn();
        let slice = match target {
            None => object.clone(),
            Some(t) => {
                let t = Hrn::parse(t).map_err(RpcError::from)?;
                if !object.is_authority_or_self(&t) {
                    return Err(RpcError::Permission(format!(
                        "the credential is for {object}, not for {t}"
                    )));
                }
                t
            }
        };
        let name = if slice.authority().as_ref() == Some(self.hrn()) {
            slice.leaf().to_owned()
        } else {
            hrn_to_pl_slicename(&slice).map_err(RpcError::from)?
        };
        SliverName::parse(&name).map_err(|e| RpcError::invalid_params("credential", e.to_string()))
    }

    /// The lock that serialises changes to one sliver.
    pub(crate) fn lock(&self, name: &SliverName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(name.clone()).or_default())
    }

    /// Authenticate, resolve the sliver, and run `op` on it under its lock: the shape of every
    /// sliver operation (start, stop, reset, delete).
    pub(crate) async fn sliver_op<'a, F, Fut>(
        &'a self,
        ctx: &CallContext,
        params: &[Value],
        method: &str,
        operation: Operation,
        op: F,
    ) -> Result<Value, RpcError>
    where
        F: FnOnce(&'a dyn SliverManager, SliverName) -> Fut,
        Fut: Future<Output = Result<(), NmError>>,
    {
        let (credential, target) = credential_args(method, params)?;
        let verified = self.authenticate(ctx, credential, operation)?;
        let name = self.sliver_for(&verified, target)?;
        let lock = self.lock(&name);
        let _held = lock.lock().await;
        op(self.backend.as_ref(), name.clone())
            .await
            .map_err(nm_fault)?;
        tracing::info!(sliver = %name, caller = %verified.caller().hrn(), method, "Sliver changed");
        // 2008 methods returned None, which xmlrpclib sent as 1 without allow_none; 1 is what
        // every 2008 client printed.
        Ok(Value::Int(1))
    }
}

/// `(credential, optional target hrn)`: 2008's `(cred)` and later SFA's `(cred, hrn)`.
pub(crate) fn credential_args<'a>(
    method: &str,
    params: &'a [Value],
) -> Result<(&'a str, Option<&'a str>), RpcError> {
    match params {
        [Value::String(c)] => Ok((c, None)),
        [Value::String(c), Value::String(t)] => Ok((c, Some(t))),
        [Value::String(c), Value::Nil] => Ok((c, None)),
        _ => Err(RpcError::invalid_params(
            method,
            "takes a credential (string) and optionally a slice hrn",
        )),
    }
}

/// The one mapping from backend errors to protocol errors.
pub(crate) fn nm_fault(e: NmError) -> RpcError {
    match e {
        NmError::NotFound(name) => RpcError::NotFound(format!("sliver {name}")),
        NmError::Exists(name) => RpcError::Exists(format!("sliver {name}")),
        NmError::Stale { .. } => RpcError::Failed(format!(
            "{e}: a ticket older than the sliver's current record is refused; get a new ticket"
        )),
        NmError::InvalidRecord(_) | NmError::NodeManager { .. } => RpcError::Failed(e.to_string()),
        // The node's own failures (accounts, processes, files, the NodeManager socket): their
        // text names local paths and programs, so it goes to the log only.
        other => {
            tracing::error!(error = %other, "Backend failure");
            RpcError::Internal(other.to_string())
        }
    }
}
