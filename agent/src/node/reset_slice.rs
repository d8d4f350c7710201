//! `reset_slice(cred[, hrn])`: stops the sliver, wipes it, re-creates it from its record and
//! starts it. Needs the `resetslice` operation (the `control` right, or authority rights); an
//! expired sliver is refused, as for `start_slice`.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::{Node, nm_fault};

pub(super) const NAME: &str = "reset_slice";
pub(super) const HELP: &str =
    "reset_slice(credential[, slice_hrn]): Stops the sliver, re-creates it pristine and starts it.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let held = node
        .hold(&ctx, &params, NAME, Operation::ResetSlice)
        .await?;
    held.refuse_if_expired()?;
    node.backend.reset(&held.name).await.map_err(nm_fault)?;
    Ok(held.done(NAME))
}
