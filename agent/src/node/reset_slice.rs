//! `reset_slice(cred[, hrn])`: Stops the sliver, wipes it, re-creates it from its record and starts it. Needs the `resetslice` operation (the `control` right of a
//! slice credential, or authority rights).

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::Node;

pub(super) const HELP: &str = "reset_slice(credential[, slice_hrn]): Stops the sliver, wipes it, re-creates it from its record and starts it.";

pub(super) fn call(node: Arc<Node>, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
    Box::pin(async move {
        node.sliver_op(
            &ctx,
            &params,
            "reset_slice",
            Operation::ResetSlice,
            |b, n| async move { b.reset(&n).await },
        )
        .await
    })
}
