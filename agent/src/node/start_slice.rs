//! `start_slice(cred[, hrn])`: starts the sliver's initscript (already running: no change).
//! Needs the `startslice` operation (the `control` right, or authority rights); an expired
//! sliver is refused with a fault that says to redeem a new ticket.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::{Node, nm_fault};

pub(super) const NAME: &str = "start_slice";
pub(super) const HELP: &str = "start_slice(credential[, slice_hrn]): Starts the sliver's initscript (already running: no change).";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let held = node
        .hold(&ctx, &params, NAME, Operation::StartSlice)
        .await?;
    held.refuse_if_expired()?;
    node.backend.start(&held.name).await.map_err(nm_fault)?;
    Ok(held.done(NAME))
}
