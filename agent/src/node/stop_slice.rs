//! `stop_slice(cred[, hrn])`: stops every process of the sliver (already stopped: no change).
//! Needs the `stopslice` operation (the `control` right, or authority rights).

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::{Node, nm_fault};

pub(super) const NAME: &str = "stop_slice";
pub(super) const HELP: &str = "stop_slice(credential[, slice_hrn]): Stops the sliver's processes (already stopped: no change).";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let held = node.hold(&ctx, &params, NAME, Operation::StopSlice).await?;
    node.backend.stop(&held.name).await.map_err(nm_fault)?;
    Ok(held.done(NAME))
}
