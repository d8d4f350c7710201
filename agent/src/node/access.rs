//! Who may act on which sliver (DESIGN §5, "Authorization binds identity to objects"). A sliver
//! belongs to exactly one slice, whose full hrn the backend recorded at redeem; its PlanetLab name
//! (`pl_s1`) only finds the candidate, and every decision compares the recorded hrn exactly.
//!
//! A start, stop, reset, delete or listing of one sliver is allowed to:
//! - a credential whose object *is* the sliver's slice;
//! - an authority credential (`authority` or `sa` right) whose object is a strict, dot-aware
//!   authority of the slice's hrn, naming the slice by exact hrn as the second argument;
//! - a sliver credential this node issued (signed with this node's own key, checked by key, not by
//!   name) for exactly that sliver, bound to its slice by the sliver GID's uuid.
//!
//! `reboot`, `list_component_resources` and listing every sliver need an authority right whose
//! object is this node or an authority over it.

use geni_rpc::{CallContext, RpcError};
use geni_trust::{Hrn, Operation, Right, VerifiedCredential, hrn_to_pl_slicename};
use geni_xmlrpc::Value;
use nm_bridge::{NmError, SliverName, SliverStatus};

use super::{Node, credential_args, nm_fault, now};

/// The sliver a call picked, and what its record must say for the call to own it.
#[derive(Debug)]
pub(super) struct Selected {
    pub(super) name: SliverName,
    owner: Owner,
}

#[derive(Debug)]
enum Owner {
    /// The recorded slice must be this hrn.
    Slice(Hrn),
    /// A sliver credential: the recorded slice must have this uuid (and be `slice`, if named).
    Sliver { uuid: String, slice: Option<Hrn> },
}

/// A sliver held under its lock for one call, with the status that showed the caller owns it.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) name: SliverName,
    pub(super) status: SliverStatus,
    pub(super) caller: Hrn,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

impl Node {
    /// Authenticates `params` (`credential[, slice_hrn]`) for `operation`, picks the sliver,
    /// takes its lock and checks that the credential owns it: the shape of start, stop, reset and
    /// delete. A sliver the credential does not reach is "not found", whoever holds it.
    pub(super) async fn hold(
        &self,
        ctx: &CallContext,
        params: &[Value],
        method: &str,
        operation: Operation,
    ) -> Result<Held, RpcError> {
        let (credential, target) = credential_args(method, params)?;
        let verified = crate::auth::authenticate(&self.verifier, ctx, credential, operation)?;
        let selected = self.select(&verified, target)?;
        let lock = self.lock(&selected.name).lock_owned().await;
        let status = self.owned_status(&selected).await?;
        Ok(Held {
            name: selected.name,
            status,
            caller: verified.caller().hrn().clone(),
            _lock: lock,
        })
    }

    /// The sliver `verified` (with the optional `target` hrn) names.
    pub(super) fn select(
        &self,
        verified: &VerifiedCredential,
        target: Option<&str>,
    ) -> Result<Selected, RpcError> {
        let target = target.map(Hrn::parse).transpose()?;
        if let Some((name, uuid)) = self.issued_sliver(verified)? {
            return Ok(Selected {
                name,
                owner: Owner::Sliver {
                    uuid,
                    slice: target,
                },
            });
        }
        let object = verified.object().hrn();
        let slice = match target {
            None => object.clone(),
            Some(t) if t == *object => t,
            Some(t) if is_slice_authority(verified) && object.is_authority_of(&t) => t,
            Some(t) => {
                return Err(RpcError::Permission(format!(
                    "a credential for {object} cannot act on slice {t}: it must be that slice's \
                     credential, or an authority credential over it"
                )));
            }
        };
        Ok(Selected {
            name: sliver_name(&slice)?,
            owner: Owner::Slice(slice),
        })
    }

    /// The status of the selected sliver, if its record says the selection owns it.
    pub(super) async fn owned_status(&self, s: &Selected) -> Result<SliverStatus, RpcError> {
        let missing = || match &s.owner {
            Owner::Slice(slice) => {
                RpcError::NotFound(format!("sliver {} of slice {slice}", s.name))
            }
            Owner::Sliver { .. } => RpcError::NotFound(format!("sliver {}", s.name)),
        };
        let status = match self.backend.status(&s.name).await {
            Ok(status) => status,
            Err(NmError::NotFound(_)) => return Err(missing()),
            Err(e) => return Err(nm_fault(e)),
        };
        if s.owner.owns(&status) {
            Ok(status)
        } else {
            Err(missing())
        }
    }

    /// The slivers `verified` may see: every one for an authority over this node; those of the
    /// slices under an authority credential's object; else the one it names.
    pub(super) async fn visible(
        &self,
        verified: &VerifiedCredential,
        target: Option<&str>,
    ) -> Result<Vec<SliverStatus>, RpcError> {
        if target.is_none() && (self.is_over_node(verified) || is_slice_authority(verified)) {
            let all = self.backend.list().await.map_err(nm_fault)?;
            if self.is_over_node(verified) {
                return Ok(all);
            }
            let object = verified.object().hrn();
            return Ok(all
                .into_iter()
                .filter(|s| Hrn::parse(&s.slice).is_ok_and(|h| object.is_authority_of(&h)))
                .collect());
        }
        let selected = self.select(verified, target)?;
        match self.owned_status(&selected).await {
            Ok(status) => Ok(vec![status]),
            Err(RpcError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Whether `verified` carries an authority right over this node itself.
    pub(super) fn is_over_node(&self, verified: &VerifiedCredential) -> bool {
        verified
            .privileges()
            .rights()
            .iter()
            .any(|r| r.is_authority())
            && verified.object().hrn().is_authority_or_self(self.hrn())
    }

    /// [`Node::is_over_node`] or a refusal naming what `method` needs.
    pub(super) fn require_over_node(
        &self,
        verified: &VerifiedCredential,
        method: &str,
    ) -> Result<(), RpcError> {
        if self.is_over_node(verified) {
            return Ok(());
        }
        Err(RpcError::Permission(format!(
            "{method} needs an authority credential over this node ({}); this one is for {} with \
             rights {:?}",
            self.hrn(),
            verified.object().hrn(),
            verified.privileges().to_string()
        )))
    }

    /// For a sliver credential this node issued: the sliver's name and the uuid binding it to
    /// its slice. Recognised by the key that signed it (this node's own, which signs nothing
    /// else), never by its name: anyone may register a slice named like this node.
    fn issued_sliver(
        &self,
        verified: &VerifiedCredential,
    ) -> Result<Option<(SliverName, String)>, RpcError> {
        if *verified.issuer_key() != self.key.public_key() {
            return Ok(None);
        }
        let object = verified.object();
        let name = match object.hrn().authority() {
            Some(parent) if parent == *self.hrn() => SliverName::parse(object.hrn().leaf()),
            _ => {
                return Err(RpcError::Permission(format!(
                    "{} is not a sliver of this node",
                    object.hrn()
                )));
            }
        }
        .map_err(|e| RpcError::Permission(e.to_string()))?;
        let uuid = object
            .gid()
            .uuid()
            .ok_or_else(|| RpcError::Permission(format!("sliver credential {name} has no uuid")))?;
        Ok(Some((name, uuid.to_owned())))
    }
}

impl Owner {
    fn owns(&self, status: &SliverStatus) -> bool {
        match self {
            Self::Slice(slice) => status.slice == slice.as_str(),
            Self::Sliver { uuid, slice } => {
                !status.slice.is_empty()
                    && sliver_uuid(&status.slice) == *uuid
                    && slice.as_ref().is_none_or(|s| status.slice == s.as_str())
            }
        }
    }
}

impl Held {
    /// Refuses to run an expired sliver: its ticket has run out, and the reaper removes it.
    pub(super) fn refuse_if_expired(&self) -> Result<(), RpcError> {
        if self.status.expires < now() {
            return Err(RpcError::Failed(format!(
                "sliver {} expired at {}: redeem a new ticket for slice {} to renew it",
                self.name,
                geni_trust::format_utc(self.status.expires),
                self.status.slice
            )));
        }
        Ok(())
    }

    /// Logs the change and answers as 2008 did.
    pub(super) fn done(self, method: &str) -> Value {
        tracing::info!(sliver = %self.name, slice = %self.status.slice, caller = %self.caller, method, "Sliver changed");
        super::done()
    }
}

/// Whether a credential's rights make it an authority over slices (`authority` or `sa`).
fn is_slice_authority(verified: &VerifiedCredential) -> bool {
    let rights = verified.privileges();
    rights.contains(Right::Authority) || rights.contains(Right::Sa)
}

/// The PlanetLab name a slice's sliver has (as 2008 mapped it; lossy, so it only finds the
/// candidate whose recorded slice is then compared).
pub(super) fn sliver_name(slice: &Hrn) -> Result<SliverName, RpcError> {
    hrn_to_pl_slicename(slice)
        .ok()
        .and_then(|n| SliverName::parse(&n).ok())
        .ok_or_else(|| RpcError::NotFound(format!("a sliver of slice {slice}")))
}

/// The uuid of the sliver GIDs this node issues for `slice`'s sliver: a digest of the slice's
/// hrn, so that a sliver credential reaches its own slice's sliver and not a later sliver of the
/// same name that another slice redeemed after a delete.
pub(super) fn sliver_uuid(slice: &str) -> String {
    let digest = openssl::sha::sha256(format!("geni-agent sliver\0{slice}").as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first).to_string()
}
