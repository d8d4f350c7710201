//! `delete_slice(cred[, hrn])`: Stops the sliver and removes everything of it. Needs the `deleteslice` operation (the `control` right of a
//! slice credential, or authority rights).

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::Node;

pub(super) const HELP: &str =
    "delete_slice(credential[, slice_hrn]): Stops the sliver and removes everything of it.";

pub(super) fn call(node: Arc<Node>, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
    Box::pin(async move {
        node.sliver_op(
            &ctx,
            &params,
            "delete_slice",
            Operation::DeleteSlice,
            |b, n| async move { b.destroy(&n).await },
        )
        .await
    })
}
