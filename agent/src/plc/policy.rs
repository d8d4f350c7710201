//! PLC's own policy, kept by the registry as PLCAPI keeps it for its web and API users: what only
//! the PLC admin may do, and that a disabled account gets nothing.
//!
//! - The PLC admin is whoever holds the root authority's credential (an `authority` credential
//!   whose object is the top of the tree the credential chained to). Only the admin changes the
//!   fields PLCAPI reserves for admins (`enabled`, `max_slices`, `max_slivers`; roles are never
//!   changed through the registry), creates or claims a PLC site (registering an sa or ma), or
//!   deletes one (removing the last authority record of a site).
//! - A disabled person, or a person any of whose sites is disabled, and the authority of a
//!   disabled site, get no credential, ticket or record: every credential-bearing call and
//!   `get_self_credential` refuse them (fault 103, saying the account is disabled).

use geni_rpc::RpcError;
use geni_trust::{Hrn, RecordType, Right, VerifiedCredential};

use super::backend::PlcBackend;
use super::{Registry, plc_fault, store_fault};

/// Site and person fields only the PLC admin may change (PLCAPI's admin-only `Update*` fields).
pub(crate) const ADMIN_ONLY_FIELDS: &[&str] = &["enabled", "max_slices", "max_slivers"];

/// Whether `verified` is the PLC admin's: the `authority` right over the root of its tree.
pub(crate) fn is_admin(verified: &VerifiedCredential) -> bool {
    let object = verified.object().hrn();
    verified.privileges().contains(Right::Authority)
        && object.authority().is_none()
        && object == verified.root()
}

/// [`is_admin`], or a refusal saying that `what` is the PLC admin's.
pub(crate) fn require_admin(verified: &VerifiedCredential, what: &str) -> Result<(), RpcError> {
    if is_admin(verified) {
        return Ok(());
    }
    Err(RpcError::Permission(format!(
        "{what} is for the PLC admin only (the root authority's credential, {}), as in PLCAPI; \
         this credential is for {}",
        verified.root(),
        verified.object().hrn()
    )))
}

impl<B: PlcBackend> Registry<B> {
    /// Refuses `hrn` when its PLC account is disabled: a user record's person, or any of that
    /// person's sites, or an authority record's site. Principals with no PLC object (the root,
    /// a slice or node acting as caller) have no account to disable.
    pub(crate) async fn require_enabled(&self, hrn: &Hrn) -> Result<(), RpcError> {
        let find = |kind| async move { self.store.find(hrn, kind).await.map_err(store_fault) };
        if let Some(user) = find(RecordType::User).await? {
            // A principal is a person or an authority: the authority lookups below are for
            // callers with no user record.
            if user.pointer < 0 {
                return Ok(());
            }
            let person = self
                .plc
                .person_state(user.pointer)
                .await
                .map_err(plc_fault)?;
            let Some(person) = person else {
                return Err(disabled(format!("{hrn} has no PLC person any more")));
            };
            if !person.enabled {
                return Err(disabled(format!("person {hrn} is disabled in PLC")));
            }
            return self.require_sites_enabled(hrn, person.site_ids).await;
        }
        for kind in [RecordType::Sa, RecordType::Ma] {
            if let Some(authority) = find(kind).await?
                && authority.pointer >= 0
            {
                self.require_sites_enabled(hrn, vec![authority.pointer])
                    .await?;
            }
        }
        Ok(())
    }

    async fn require_sites_enabled(&self, hrn: &Hrn, site_ids: Vec<i64>) -> Result<(), RpcError> {
        if site_ids.is_empty() {
            return Ok(());
        }
        let sites = self.plc.site_states(site_ids).await.map_err(plc_fault)?;
        match sites.iter().find(|s| !s.enabled) {
            Some(site) => Err(disabled(format!(
                "site {} of {hrn} is disabled in PLC",
                site.login_base
            ))),
            None => Ok(()),
        }
    }
}

fn disabled(why: String) -> RpcError {
    RpcError::AccountDisabled(format!("{why}; ask the PLC admin to enable it"))
}
