//! The registry's authorities: the `authorities/` hierarchy under the state directory (2008
//! `util/hierarchy.py`), through which every GID, credential and ticket is issued by the right
//! authority with the right key and parent chain (`reference/geniwrapper-2008.md` §1.3–§1.5).
//!
//! `geni-trust` decides the shape of each object; this module decides only which authority
//! issues it, with which default rights (§3.2), and keeps slow work (key generation) off the
//! async workers.

use geni_rpc::RpcError;
use geni_trust::{
    AuthorityInfo, Credential, Gid, Hierarchy, Hrn, PublicKey, RecordType, RightList, Ticket,
};
use geni_xmlrpc::Struct;

/// The hierarchy the registry issues from.
#[derive(Debug, Clone)]
pub(crate) struct Authorities {
    hierarchy: Hierarchy,
}

impl Authorities {
    pub(crate) fn new(hierarchy: Hierarchy) -> Self {
        Self { hierarchy }
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
        Ok(self.hierarchy.authority(hrn)?.gid)
    }

    /// Creates authority `hrn` under its existing parent (a new RSA key: run off the async
    /// workers).
    pub(crate) async fn create(&self, hrn: &Hrn) -> Result<AuthorityInfo, RpcError> {
        let hierarchy = self.hierarchy.clone();
        let hrn = hrn.clone();
        tokio::task::spawn_blocking(move || hierarchy.create_authority(&hrn, false))
            .await
            .map_err(|e| RpcError::Internal(format!("creating an authority: {e}")))?
            .map_err(RpcError::from)
    }

    /// Removes the files of an authority this call just created, when what it was created for
    /// failed. Only a leaf authority (nothing under it) is removed.
    pub(crate) fn discard(&self, hrn: &Hrn) {
        let (dir, gid, pkey, dbinfo) = self.hierarchy.paths(hrn);
        for f in [gid, pkey, dbinfo] {
            let _ = std::fs::remove_file(f);
        }
        // Fails (and keeps the directory) if anything else is in it.
        let _ = std::fs::remove_dir(dir);
    }

    /// A GID for `hrn` and `key`, signed by `hrn`'s authority (2008 `create_gid`).
    pub(crate) fn create_gid(
        &self,
        hrn: &Hrn,
        uuid: Option<&str>,
        key: &PublicKey,
    ) -> Result<Gid, RpcError> {
        Ok(self.hierarchy.create_gid(hrn, uuid, key)?)
    }

    /// A credential for `caller` over `object`, a record of `kind`: the rights 2008 gave that
    /// type, no delegation, issued and signed by the object's authority with the object's key.
    pub(crate) async fn issue_credential(
        &self,
        caller: &Gid,
        object: &Gid,
        kind: RecordType,
        lifetime_secs: i64,
    ) -> Result<Credential, RpcError> {
        let rights = RightList::for_record_type(kind);
        Ok(self
            .hierarchy
            .issue_credential(caller, object, &rights, false, lifetime_secs)?)
    }

    /// A ticket for `caller` on `slice`, issued and signed by the slice's authority.
    pub(crate) async fn issue_ticket(
        &self,
        caller: &Gid,
        slice: &Gid,
        attributes: &Struct,
        rspec: &Struct,
        target: Option<&Hrn>,
        lifetime_secs: i64,
    ) -> Result<Ticket, RpcError> {
        Ok(self
            .hierarchy
            .issue_ticket(caller, slice, attributes, rspec, target, lifetime_secs)?)
    }
}
