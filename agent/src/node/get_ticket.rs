//! `get_ticket`: tickets are issued by the PLC side; a node only redeems them. Answered with a
//! fault that says where to go, rather than 2008's missing method.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_xmlrpc::Value;

use super::Node;

pub(super) const NAME: &str = "get_ticket";
pub(super) const HELP: &str =
    "get_ticket: not on a node; tickets are issued by the PLC side (geni-agent plc).";

pub(super) async fn call(
    _node: Arc<Node>,
    _ctx: CallContext,
    _params: Vec<Value>,
) -> Result<Value, RpcError> {
    Err(RpcError::Failed(
        "tickets are issued by the PLC side (geni-agent plc), not by a node; ask the registry's \
         get_ticket and redeem the ticket here with redeem_ticket"
            .into(),
    ))
}
