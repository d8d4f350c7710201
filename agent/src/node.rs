//! Node mode: the component interface of Geniwrapper (2008 method names and arguments) on the
//! HTTPS XML-RPC server, one module per method, over an `nm-bridge` backend.
//!
//! Every call goes through `crate::auth` with nothing skipped (the credential or ticket and its
//! caller and object GIDs verify against the trusted roots, the TLS client key is the caller GID's
//! key, the rights allow the operation); then [`access`] decides which slivers the verified
//! credential reaches: by the slice's exact hrn recorded at redeem, never by the sliver's name.
//! Calls on one sliver are serialised by a per-sliver lock; different slivers run in parallel.
//! Backends persist each change before it is acknowledged; deleted and expired slivers leave a
//! [`tombstones`] entry so that their tickets cannot be replayed.

mod access;
pub(crate) mod config;
mod delete_slice;
mod get_ticket;
mod list_component_resources;
mod list_slices;
mod list_slivers;
mod noop;
mod pidfile;
mod reap;
mod reboot;
mod redeem_ticket;
mod reset_slice;
mod restart;
mod run;
mod start_slice;
mod stop_slice;
mod tombstones;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use geni_rpc::{CallContext, Dispatcher, RpcError};
use geni_trust::{Credential, Gid, Hrn, Keypair, Verifier};
use geni_xmlrpc::Value;
use nm_bridge::{NmError, SliverManager, SliverName};

pub(crate) use run::{NodeArgs, run};

use tombstones::Tombstones;

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
    tombstones: Tombstones,
    locks: SliverLocks,
}

/// One lock per sliver name. Names come from callers (any slice hrn under an authority
/// credential), so locks nobody holds are dropped once there are many: the map stays as large as
/// the calls in flight, not as every name ever asked for.
#[derive(Debug, Default)]
struct SliverLocks(Mutex<HashMap<SliverName, Arc<tokio::sync::Mutex<()>>>>);

impl SliverLocks {
    const PRUNE_AT: usize = 1024;

    fn get(&self, name: &SliverName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.len() >= Self::PRUNE_AT {
            // Under the map's mutex no one can take a new handle, so a count of 1 is the map's.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        Arc::clone(locks.entry(name.clone()).or_default())
    }
}

impl Node {
    pub(crate) fn new(
        verifier: Arc<Verifier>,
        backend: Arc<dyn SliverManager>,
        gid: Gid,
        key: Keypair,
        credential: Credential,
        reboot_command: Vec<String>,
        tombstones: Tombstones,
    ) -> Self {
        Self {
            verifier,
            backend,
            gid,
            key,
            credential,
            reboot_command: std::sync::RwLock::new(reboot_command),
            tombstones,
            locks: SliverLocks::default(),
        }
    }

    pub(crate) fn hrn(&self) -> &Hrn {
        self.gid.hrn()
    }

    /// The method table of the component interface. Each method module exports `NAME`, `HELP`
    /// and a plain `async fn call`; [`add`] is the one place that turns it into a handler.
    pub(crate) fn dispatcher(self: &Arc<Self>) -> Dispatcher {
        let mut d = Dispatcher::new();
        add(&mut d, self, noop::NAME, noop::HELP, noop::call);
        add(
            &mut d,
            self,
            redeem_ticket::NAME,
            redeem_ticket::HELP,
            redeem_ticket::call,
        );
        add(
            &mut d,
            self,
            start_slice::NAME,
            start_slice::HELP,
            start_slice::call,
        );
        add(
            &mut d,
            self,
            stop_slice::NAME,
            stop_slice::HELP,
            stop_slice::call,
        );
        add(
            &mut d,
            self,
            reset_slice::NAME,
            reset_slice::HELP,
            reset_slice::call,
        );
        add(
            &mut d,
            self,
            delete_slice::NAME,
            delete_slice::HELP,
            delete_slice::call,
        );
        add(
            &mut d,
            self,
            list_slices::NAME,
            list_slices::HELP,
            list_slices::call,
        );
        add(
            &mut d,
            self,
            list_slivers::NAME,
            list_slivers::HELP,
            list_slivers::call,
        );
        add(&mut d, self, reboot::NAME, reboot::HELP, reboot::call);
        add(
            &mut d,
            self,
            list_component_resources::NAME,
            list_component_resources::HELP,
            list_component_resources::call,
        );
        add(
            &mut d,
            self,
            get_ticket::NAME,
            get_ticket::HELP,
            get_ticket::call,
        );
        d
    }

    /// The lock that serialises changes to one sliver.
    fn lock(&self, name: &SliverName) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.get(name)
    }
}

/// Registers one method: the node rides along with each call.
fn add<F, Fut>(d: &mut Dispatcher, node: &Arc<Node>, name: &str, help: &str, call: F)
where
    F: Fn(Arc<Node>, CallContext, Vec<Value>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
{
    let node = Arc::clone(node);
    d.register(name, help, move |ctx, params| {
        call(Arc::clone(&node), ctx, params)
    });
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

/// What 2008's component methods answered: they returned None, which xmlrpclib sent as 1
/// without allow_none, and 1 is what every 2008 client printed.
pub(crate) fn done() -> Value {
    Value::Int(1)
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

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    use geni_trust::Clock;
    geni_trust::SystemClock.now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliver_locks_stay_as_many_as_are_held() {
        let locks = SliverLocks::default();
        let name = |i: usize| SliverName::parse(&format!("pl_s{i}")).unwrap();
        let held = locks.get(&name(0));
        let guard = held.try_lock().unwrap();
        for i in 1..5_000 {
            drop(locks.get(&name(i)));
        }
        let len = locks.0.lock().unwrap().len();
        assert!(len <= SliverLocks::PRUNE_AT, "{len} locks kept");
        // The held one survived every pruning: asking again gives the same lock, still taken.
        let again = locks.get(&name(0));
        assert!(Arc::ptr_eq(&held, &again));
        assert!(again.try_lock().is_err());
        drop(guard);
    }
}
