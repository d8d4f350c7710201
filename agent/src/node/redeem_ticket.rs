//! `redeem_ticket(ticket)`: turns a verified ticket into a sliver on this node and returns a
//! sliver credential for it.
//!
//! Only the ticket's `gidCaller` may redeem it (the TLS key must be that GID's key), the ticket
//! must be for this node when it names one, and the sliver name it carries must be the one its
//! slice maps to (so a ticket for one slice cannot make another's sliver). The record is built
//! NodeManager's way (rspec from the ticket's rspec, NM's defaults), and a ticket older than the
//! sliver's current record is refused by the backend. The sliver credential (object
//! `<node hrn>.<sliver>`, rights `control,info`) is signed with the node's key under the node's
//! own credential and expires with the ticket.

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture, RpcError};
use geni_trust::{
    CertMode, ChainForm, Clock, Credential, Gid, Hrn, RightList, SystemClock, Validity,
    credential_under, gid_under, hrn_to_pl_slicename,
};
use geni_xmlrpc::Value;
use nm_bridge::{SliverName, SliverRecord};

use super::{Node, nm_fault};

pub(super) const HELP: &str =
    "redeem_ticket(ticket): creates the sliver the ticket describes; returns a sliver credential.";

pub(super) fn call(node: Arc<Node>, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
    Box::pin(async move {
        let [Value::String(ticket)] = params.as_slice() else {
            return Err(RpcError::invalid_params(
                "redeem_ticket",
                "takes one ticket (string)",
            ));
        };
        let verified = crate::auth::authenticate_ticket(&node.verifier, &ctx, ticket, node.hrn())?;
        let caller = verified.caller().gid();
        let t = verified.ticket();
        let record = SliverRecord::from_ticket(
            t.attributes(),
            t.rspec(),
            verified.expires(),
            caller.hrn().as_str(),
        )
        .map_err(nm_fault)?;
        let slice = verified.object().hrn();
        let expected = hrn_to_pl_slicename(slice)?;
        if record.name.as_str() != expected {
            return Err(RpcError::Permission(format!(
                "the ticket for slice {slice} names sliver {}, not {expected}",
                record.name
            )));
        }
        let name = record.name.clone();
        let lock = node.lock(&name);
        let _held = lock.lock().await;
        node.backend.create(record).await.map_err(nm_fault)?;
        tracing::info!(sliver = %name, caller = %caller.hrn(), "Ticket redeemed");
        let credential = sliver_credential(&node, caller, &name, verified.expires())?;
        Ok(Value::String(
            credential.to_chain_string(ChainForm::Separator)?,
        ))
    })
}

/// A credential for `caller` over this node's sliver `name`, valid until the ticket's expiry
/// (or the node credential's, if earlier).
fn sliver_credential(
    node: &Node,
    caller: &Gid,
    name: &SliverName,
    expires: i64,
) -> Result<Credential, RpcError> {
    let hrn = Hrn::parse(&format!("{}.{name}", node.hrn()))?;
    let not_after = expires.min(node.credential.certificate().validity().not_after);
    let validity = Validity {
        not_before: SystemClock.now(),
        not_after,
    };
    let sliver = gid_under(
        &node.gid,
        &node.key,
        &hrn,
        &geni_trust::new_uuid()?,
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
