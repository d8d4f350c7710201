//! `redeem_ticket(ticket)`: turns a verified ticket into a sliver on this node and returns a
//! sliver credential for it.
//!
//! Only the ticket's `gidCaller` may redeem it (the TLS key must be that GID's key), the ticket
//! must be for this node when it names one, and the sliver name it carries must be the one its
//! slice maps to. The sliver then belongs to the ticket's slice by its full hrn: a ticket for a
//! *different* slice whose name maps to an existing sliver is refused (fault 106, naming the slice
//! that holds it), a ticket not newer than the sliver's record or than a deleted sliver's
//! tombstone is refused as stale, and a newer ticket for the same slice renews the sliver. The
//! sliver credential (object `<node hrn>.<sliver>`, rights `control,info`, uuid bound to the
//! slice) is signed with the node's key under the node's own credential and expires with the
//! ticket.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::{
    CertMode, ChainForm, Credential, Gid, Hrn, RightList, Validity, credential_under, gid_under,
};
use geni_xmlrpc::Value;
use nm_bridge::{NmError, SliverName, SliverRecord};

use super::access::{sliver_name, sliver_uuid};
use super::{Node, nm_fault, now};

pub(super) const NAME: &str = "redeem_ticket";
pub(super) const HELP: &str =
    "redeem_ticket(ticket): creates the sliver the ticket describes; returns a sliver credential.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let [Value::String(ticket)] = params.as_slice() else {
        return Err(RpcError::invalid_params(NAME, "takes one ticket (string)"));
    };
    let verified = crate::auth::authenticate_ticket(&node.verifier, &ctx, ticket, node.hrn())?;
    if verified.expires() <= now() {
        // Within the clock skew the chain still verifies, but the sliver would be born expired.
        return Err(RpcError::Failed(format!(
            "the ticket expired at {}; get a new ticket",
            geni_trust::format_utc(verified.expires())
        )));
    }
    let caller = verified.caller().gid();
    let slice = verified.object().hrn();
    let t = verified.ticket();
    let mut record = SliverRecord::from_ticket(
        t.attributes(),
        t.rspec(),
        verified.expires(),
        caller.hrn().as_str(),
    )
    .map_err(nm_fault)?;
    record.slice = slice.to_string();
    let expected = sliver_name(slice).map_err(|_| {
        RpcError::Permission(format!("slice {slice} cannot have a sliver on a node"))
    })?;
    if record.name != expected {
        return Err(RpcError::Permission(format!(
            "the ticket for slice {slice} names sliver {}, not {expected}",
            record.name
        )));
    }
    let name = record.name.clone();
    let timestamp = record.timestamp;
    let lock = node.lock(&name);
    let _held = lock.lock().await;
    node.tombstones
        .check(slice, timestamp, now())
        .map_err(RpcError::Failed)?;
    match node.backend.status(&name).await {
        Ok(s) if s.slice != slice.as_str() => {
            let holder = if s.slice.is_empty() {
                "a sliver no ticket made".to_owned()
            } else {
                format!("slice {}", s.slice)
            };
            return Err(RpcError::Exists(format!(
                "sliver {name} (held by {holder}); the ticket for slice {slice} cannot take it"
            )));
        }
        Ok(_) | Err(NmError::NotFound(_)) => {}
        Err(e) => return Err(nm_fault(e)),
    }
    node.backend.create(record).await.map_err(nm_fault)?;
    tracing::info!(sliver = %name, slice = %slice, caller = %caller.hrn(), "Ticket redeemed");
    let credential = sliver_credential(&node, caller, slice, &name, verified.expires())?;
    Ok(Value::String(
        credential.to_chain_string(ChainForm::Separator)?,
    ))
}

/// A credential for `caller` over this node's sliver `name` of `slice`, valid until the ticket's
/// expiry (or the node credential's, if earlier).
fn sliver_credential(
    node: &Node,
    caller: &Gid,
    slice: &Hrn,
    name: &SliverName,
    expires: i64,
) -> Result<Credential, RpcError> {
    let hrn = Hrn::parse(&format!("{}.{name}", node.hrn()))?;
    let not_after = expires.min(node.credential.certificate().validity().not_after);
    let validity = Validity {
        not_before: now(),
        not_after,
    };
    let sliver = gid_under(
        &node.gid,
        &node.key,
        &hrn,
        &sliver_uuid(slice.as_str()),
        &node.key.public_key(),
        validity,
        CertMode::Modern,
    )?;
    let rights: RightList = "control,info".parse()?;
    Ok(credential_under(
        &node.credential,
        &node.key,
        caller,
        &sliver,
        &rights,
        false,
        validity,
        CertMode::Modern,
    )?)
}
