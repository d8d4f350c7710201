//! PLC mode: the registry and slice interface of Geniwrapper (2008 method names, arguments and
//! return shapes, `reference/geniwrapper-2008.md` §4.2) on the HTTPS XML-RPC server, one module
//! per method (each exports `NAME`, `HELP` and a plain `async fn call`; [`Registry::dispatcher`]
//! is the one place they are boxed into handlers), over a record store (SQLite or PostgreSQL)
//! and a PLC backend.
//!
//! [`Registry`] is generic over [`PlcBackend`] so that the embedded PLC and a remote PLCAPI plug
//! in the same way; everything here is written once against the trait. What 2008 got wrong is
//! fixed in the shared checks below: every credential-bearing call verifies the credential and
//! its GID chains against the trusted roots (never skipped) and binds the caller to the TLS key;
//! `get_credential` and `resolve` check that the caller may see the object; unknown records are a
//! clean "not found" fault; SQL never contains a value. Credentials and tickets are issued as
//! §1.4/§1.5 say, by the object's authority from the hierarchy on disk.

mod admin;
mod authorities;
mod backend;
mod config;
mod create_gid;
mod db;
mod embedded;
mod fill;
mod get_credential;
mod get_gid;
mod get_self_credential;
mod get_ticket;
mod import;
mod list;
mod names;
mod noop;
mod open;
mod plcapi;
mod policy;
mod provision;
mod record;
mod register;
mod remove;
mod resolve;
mod run;
mod serve;
mod store;
mod update;

use std::future::Future;
use std::sync::Arc;

use geni_rpc::{CallContext, Dispatcher, RpcError};
use geni_trust::{ChainForm, Gid, Hrn, Operation, RecordType, VerifiedCredential, Verifier};
use geni_xmlrpc::Value;

pub(crate) use plcapi::PlcApiSettings;
pub(crate) use run::{PlcArgs, run};

use authorities::Authorities;
use backend::{PlcBackend, PlcError};
use db::StoreError;
use store::{Store, StoredRecord};

/// Everything a registry method needs.
#[derive(Debug)]
pub(crate) struct Registry<B> {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) authorities: Authorities,
    pub(crate) store: Store,
    pub(crate) plc: B,
    /// Lifetime of issued credentials, seconds.
    pub(crate) credential_lifetime: i64,
    /// Longest lifetime of issued tickets, seconds (a slice that expires sooner shortens it).
    pub(crate) ticket_lifetime: i64,
}

impl<B: PlcBackend + 'static> Registry<B> {
    /// The method table of the registry and slice interface.
    pub(crate) fn dispatcher(self: &Arc<Self>) -> Dispatcher {
        let mut d = Dispatcher::new();
        self.method(&mut d, noop::NAME, noop::HELP, noop::call);
        self.method(&mut d, create_gid::NAME, create_gid::HELP, create_gid::call);
        self.method(
            &mut d,
            get_self_credential::NAME,
            get_self_credential::HELP,
            get_self_credential::call,
        );
        self.method(
            &mut d,
            get_credential::NAME,
            get_credential::HELP,
            get_credential::call,
        );
        self.method(&mut d, get_gid::NAME, get_gid::HELP, get_gid::call);
        self.method(&mut d, register::NAME, register::HELP, register::call);
        self.method(&mut d, remove::NAME, remove::HELP, remove::call);
        self.method(&mut d, update::NAME, update::HELP, update::call);
        self.method(&mut d, list::NAME, list::HELP, list::call);
        self.method(&mut d, resolve::NAME, resolve::HELP, resolve::call);
        self.method(&mut d, get_ticket::NAME, get_ticket::HELP, get_ticket::call);
        d
    }

    /// The one adapter from a method module's plain `async fn call` to the dispatcher's boxed
    /// handler: each call gets its own handle on the registry.
    fn method<F, Fut>(self: &Arc<Self>, d: &mut Dispatcher, name: &str, help: &str, call: F)
    where
        F: Fn(Arc<Self>, CallContext, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let registry = Arc::clone(self);
        d.register(name, help, move |ctx, params| {
            call(Arc::clone(&registry), ctx, params)
        });
    }
}

impl<B: PlcBackend> Registry<B> {
    /// The authentication pipeline (2008 `decode_authentication`, nothing skipped): verify the
    /// credential and its GID chains, bind its caller to the TLS key, check `operation`; then
    /// PLC's policy that a disabled account gets nothing ([`policy`]).
    pub(crate) async fn authenticate(
        &self,
        ctx: &CallContext,
        credential: &str,
        operation: Operation,
    ) -> Result<VerifiedCredential, RpcError> {
        let verified = crate::auth::authenticate(&self.verifier, ctx, credential, operation)?;
        self.require_enabled(verified.caller().hrn()).await?;
        Ok(verified)
    }

    /// The record of `kind` at `hrn`, or a "not found" fault naming it.
    pub(crate) async fn record(
        &self,
        hrn: &Hrn,
        kind: RecordType,
    ) -> Result<StoredRecord, RpcError> {
        self.store
            .find(hrn, kind)
            .await
            .map_err(store_fault)?
            .ok_or_else(|| not_found(hrn, Some(kind)))
    }

    /// Every record at `hrn`, or a "not found" fault.
    pub(crate) async fn records(&self, hrn: &Hrn) -> Result<Vec<StoredRecord>, RpcError> {
        let records = self.store.find_all(hrn).await.map_err(store_fault)?;
        if records.is_empty() {
            return Err(not_found(hrn, None));
        }
        Ok(records)
    }

    /// 2008 `verify_object_belongs_to_me`: this registry holds the authority that names `hrn`
    /// (a top-level name belongs to whoever holds it).
    pub(crate) fn require_ours(&self, hrn: &Hrn) -> Result<(), RpcError> {
        let authority = hrn.authority().unwrap_or_else(|| hrn.clone());
        if self.authorities.holds(&authority) {
            Ok(())
        } else {
            Err(RpcError::Permission(format!(
                "{hrn} is not under an authority this registry holds ({authority} is not here)"
            )))
        }
    }

    /// Whether the credential may see `record`: its object is the record or an authority over
    /// it, or (a user's credential) the user holds a role on the record.
    pub(crate) async fn may_see(
        &self,
        verified: &VerifiedCredential,
        record: &StoredRecord,
    ) -> Result<bool, RpcError> {
        let object = verified.object().hrn();
        if object.is_authority_or_self(&record.hrn) {
            return Ok(true);
        }
        self.holds_role(object, record).await
    }

    /// A credential over `record` for `caller`, with the record type's default rights (2008
    /// `determine_rights`), issued by the record's authority.
    pub(crate) async fn credential_for(
        &self,
        caller: &Gid,
        record: &StoredRecord,
    ) -> Result<Value, RpcError> {
        let object = parse_stored_gid(record)?;
        let credential = self.authorities.issue_credential(
            caller,
            &object,
            record.kind,
            self.credential_lifetime,
        )?;
        tracing::info!(
            caller = %caller.hrn(),
            object = %record.hrn,
            kind = %record.kind,
            "Credential issued"
        );
        Ok(Value::String(
            credential.to_chain_string(ChainForm::Separator)?,
        ))
    }
}

/// 2008 `verify_object_permission(name)`: the credential's object is `hrn` or an authority over
/// it.
pub(crate) fn require_permission(verified: &VerifiedCredential, hrn: &Hrn) -> Result<(), RpcError> {
    let object = verified.object().hrn();
    if object.is_authority_or_self(hrn) {
        Ok(())
    } else {
        Err(RpcError::Permission(format!(
            "a credential for {object} gives no authority over {hrn}"
        )))
    }
}

/// The GID a record stores.
pub(crate) fn parse_stored_gid(record: &StoredRecord) -> Result<Gid, RpcError> {
    Gid::parse(&record.gid).map_err(|e| {
        tracing::error!(hrn = %record.hrn, kind = %record.kind, error = %e, "Stored GID unreadable");
        RpcError::Internal(format!("stored GID of {} unreadable: {e}", record.hrn))
    })
}

/// The "not found" fault for a record (code 105): `slice record planetlab.us.pl.x not found`.
pub(crate) fn not_found(hrn: &Hrn, kind: Option<RecordType>) -> RpcError {
    match kind {
        Some(k) => RpcError::NotFound(format!("{k} record {hrn}")),
        None => RpcError::NotFound(format!("record {hrn}")),
    }
}

/// An hrn argument of `method`.
pub(crate) fn hrn_arg(method: &str, value: &Value) -> Result<Hrn, RpcError> {
    match value {
        Value::String(s) => {
            Hrn::parse(s).map_err(|e| RpcError::invalid_params(method, e.to_string()))
        }
        v => Err(RpcError::invalid_params(
            method,
            format!("the name must be a string hrn, not a {}", v.type_name()),
        )),
    }
}

/// A record type argument of `method`.
pub(crate) fn type_arg(method: &str, value: &Value) -> Result<RecordType, RpcError> {
    match value {
        Value::String(s) => s.parse().map_err(|_| {
            RpcError::invalid_params(
                method,
                format!("record type {s:?} is not one of user, slice, sa, ma, node"),
            )
        }),
        v => Err(RpcError::invalid_params(
            method,
            format!("the record type must be a string, not a {}", v.type_name()),
        )),
    }
}

/// The one mapping from PLC backend errors to protocol errors. PLC's refusals and missing rows
/// are the caller's to read; an unreachable PLC, a failed database or a malformed answer is ours,
/// and its cause (addresses, driver text) goes to the log, never to the peer.
pub(crate) fn plc_fault(e: PlcError) -> RpcError {
    match e {
        PlcError::Refused { code, message } => {
            RpcError::Failed(format!("PLC refused ({code}): {message}"))
        }
        PlcError::NotFound { what } => RpcError::NotFound(format!("PLC {what}")),
        e @ (PlcError::Malformed { .. } | PlcError::Unavailable(_)) => {
            tracing::error!(error = %e, "PLC backend failure");
            RpcError::Internal(e.to_string())
        }
    }
}

/// The one mapping from record store errors to protocol errors: a duplicate is the caller's,
/// anything else is ours and goes to the log only.
pub(crate) fn store_fault(e: StoreError) -> RpcError {
    match e {
        StoreError::Exists(what) => RpcError::Exists(what),
        other => {
            tracing::error!(error = %other, "Record store failure");
            RpcError::Internal(other.to_string())
        }
    }
}
