//! `delete_slice(cred[, hrn])`: stops the sliver and removes everything of it, leaving a
//! tombstone so that its ticket (or an older one) cannot bring it back. Needs the `deleteslice`
//! operation (the `control` right of a slice credential, or authority rights).

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::Node;

pub(super) const NAME: &str = "delete_slice";
pub(super) const HELP: &str =
    "delete_slice(credential[, slice_hrn]): Stops the sliver and removes everything of it.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let held = node
        .hold(&ctx, &params, NAME, Operation::DeleteSlice)
        .await?;
    node.remove(&held.name, &held.status).await?;
    Ok(held.done(NAME))
}
