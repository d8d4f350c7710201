//! `noop(cred, x)`: authenticates the credential and echoes `x` — a way to test a credential and
//! the TLS binding without touching anything (2008's was broken: it always faulted).

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_xmlrpc::Value;

use super::Node;

pub(super) const NAME: &str = "noop";
pub(super) const HELP: &str =
    "noop(credential, x): checks the credential (any rights) and returns x.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let mut params = params.into_iter();
    let (Some(Value::String(credential)), Some(x), None) =
        (params.next(), params.next(), params.next())
    else {
        return Err(RpcError::invalid_params(
            NAME,
            "takes a credential and one value",
        ));
    };
    crate::auth::authenticate_any(&node.verifier, &ctx, &credential)?;
    Ok(x)
}
