//! The registry's authorities: the `authorities/` hierarchy under the state directory (2008
//! `util/hierarchy.py`), through which every GID, credential and ticket is issued by the right
//! authority with the right key and parent chain (`reference/geniwrapper-2008.md` §1.3–§1.5).
//!
//! `geni-trust` decides the shape of each object; this module decides only which authority
//! issues it, with which default rights (§3.2), and keeps slow work off the request path: key
//! generation runs on the blocking pool, and each authority's [`Issuer`] (its key, and its
//! authority credential and ticket signed once) is kept, so that a credential or ticket costs one
//! signature rather than one per level of the hierarchy and a re-read of its files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use geni_rpc::RpcError;
use geni_trust::{
    AuthorityInfo, CertMode, Clock, Credential, Gid, Hierarchy, Hrn, Issuer, PublicKey, RecordType,
    RightList, SystemClock, Ticket, TrustError,
};
use geni_xmlrpc::Struct;

/// An issuer is made anew once its parents have less than this left beyond the lifetime asked
/// for, so that no object is cut short by its cached parents.
const ISSUER_MARGIN_SECS: i64 = 86_400;

/// The hierarchy the registry issues from.
#[derive(Debug, Clone)]
pub(crate) struct Authorities {
    hierarchy: Hierarchy,
    issuers: Arc<Mutex<HashMap<Hrn, Arc<Issuer>>>>,
}

impl Authorities {
    pub(crate) fn new(hierarchy: Hierarchy) -> Self {
        Self {
            hierarchy,
            issuers: Arc::default(),
        }
    }

    pub(crate) fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// Whether the authority `hrn` is here (all three of its files).
    pub(crate) fn holds(&self, hrn: &Hrn) -> bool {
        self.hierarchy.exists(hrn)
    }

    /// The authority `hrn`'s own GID, with its parents.
    pub(crate) fn gid(&self, hrn: &Hrn) -> Result<Gid, RpcError> {
        Ok(self.hierarchy.authority(hrn).map_err(trust_fault)?.gid)
    }

    /// The issuer of objects named under `object`'s authority, made or renewed when its parents
    /// would not outlast `lifetime_secs`.
    fn issuer_for(&self, object: &Hrn, lifetime_secs: i64) -> Result<Arc<Issuer>, RpcError> {
        let authority = object.authority().ok_or_else(|| {
            RpcError::Permission(format!(
                "{object} is a top-level name; nothing here signs for it"
            ))
        })?;
        let needed = SystemClock
            .now()
            .saturating_add(lifetime_secs)
            .saturating_add(ISSUER_MARGIN_SECS);
        let mut issuers = self.issuers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = issuers.get(&authority)
            && i.expires() >= needed
        {
            return Ok(Arc::clone(i));
        }
        let issuer = Arc::new(self.hierarchy.issuer(&authority).map_err(trust_fault)?);
        issuers.insert(authority, Arc::clone(&issuer));
        Ok(issuer)
    }

    /// Creates authority `hrn` under its existing parent (a new RSA key: run off the async
    /// workers).
    pub(crate) async fn create(&self, hrn: &Hrn) -> Result<AuthorityInfo, RpcError> {
        let hierarchy = self.hierarchy.clone();
        let hrn = hrn.clone();
        tokio::task::spawn_blocking(move || hierarchy.create_authority(&hrn, false))
            .await
            .map_err(|e| RpcError::Internal(format!("creating an authority: {e}")))?
            .map_err(trust_fault)
    }

    /// Removes the files of an authority this call just created, when what it was created for
    /// failed. Only a leaf authority (nothing under it) is removed: anything else in its
    /// directory makes this an error and keeps it.
    pub(crate) fn discard(&self, hrn: &Hrn) -> std::io::Result<()> {
        let (dir, gid, pkey, dbinfo) = self
            .hierarchy
            .paths(hrn)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        for f in [gid, pkey, dbinfo] {
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("removing {}: {e}", f.display()),
                    ));
                }
                _ => {}
            }
        }
        std::fs::remove_dir(&dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("removing {}: {e}", dir.display())))
    }

    /// A GID for `hrn` and `key`, signed by `hrn`'s authority (2008 `create_gid`).
    pub(crate) fn create_gid(
        &self,
        hrn: &Hrn,
        uuid: Option<&str>,
        key: &PublicKey,
    ) -> Result<Gid, RpcError> {
        self.hierarchy
            .create_gid(hrn, uuid, key)
            .map_err(trust_fault)
    }

    /// A credential for `caller` over `object`, a record of `kind`: the rights 2008 gave that
    /// type, no delegation, issued and signed by the object's authority with the object's key.
    pub(crate) fn issue_credential(
        &self,
        caller: &Gid,
        object: &Gid,
        kind: RecordType,
        lifetime_secs: i64,
    ) -> Result<Credential, RpcError> {
        let rights = RightList::for_record_type(kind);
        self.issuer_for(object.hrn(), lifetime_secs)?
            .issue_credential(caller, object, &rights, false, lifetime_secs)
            .map_err(trust_fault)
    }

    /// A ticket for `caller` on `slice`, issued and signed by the slice's authority.
    pub(crate) fn issue_ticket(
        &self,
        caller: &Gid,
        slice: &Gid,
        attributes: &Struct,
        rspec: &Struct,
        target: Option<&Hrn>,
        lifetime_secs: i64,
    ) -> Result<Ticket, RpcError> {
        if target.is_some() && self.hierarchy.mode() == CertMode::Compat2008 {
            return Err(RpcError::invalid_params(
                "get_ticket",
                "this registry writes 2008-shape tickets (compat_2008), which cannot name a node",
            ));
        }
        self.issuer_for(slice.hrn(), lifetime_secs)?
            .issue_ticket(caller, slice, attributes, rspec, target, lifetime_secs)
            .map_err(trust_fault)
    }
}

/// A missing authority is the caller's problem (a name this registry does not sign for), said
/// without the server's paths; everything else keeps its own fault.
fn trust_fault(e: TrustError) -> RpcError {
    match e {
        TrustError::MissingAuthority { hrn, .. } => {
            RpcError::Permission(format!("this registry holds no authority {hrn}"))
        }
        other => RpcError::from(other),
    }
}
