//! `stop_slice(cred[, hrn])`: Stops the sliver's processes (SIGTERM, then SIGKILL after a grace period). Needs the `stopslice` operation (the `control` right of a
//! slice credential, or authority rights).

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::Node;

pub(super) const HELP: &str = "stop_slice(credential[, slice_hrn]): Stops the sliver's processes (SIGTERM, then SIGKILL after a grace period).";

pub(super) fn call(node: Arc<Node>, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
    Box::pin(async move {
        node.sliver_op(
            &ctx,
            &params,
            "stop_slice",
            Operation::StopSlice,
            |b, n| async move { b.stop(&n).await },
        )
        .await
    })
}
