//! `start_slice(cred[, hrn])`: Starts the sliver's initscript (already running: no change). Needs the `startslice` operation (the `control` right of a
//! slice credential, or authority rights).

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::Node;

pub(super) const HELP: &str = "start_slice(credential[, slice_hrn]): Starts the sliver's initscript (already running: no change).";

pub(super) fn call(node: Arc<Node>, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
    Box::pin(async move {
        node.sliver_op(
            &ctx,
            &params,
            "start_slice",
            Operation::StartSlice,
            |b, n| async move { b.start(&n).await },
        )
        .await
    })
}
