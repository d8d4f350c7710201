//! `noop(cred, x)`: verifies the credential and binds its caller to the TLS key, then echoes
//! `x`; a way to test a credential without touching anything (2008's `noop` always faulted: it
//! called `decode_authentication` without its operation argument).

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_xmlrpc::Value;

use super::Registry;
use super::backend::PlcBackend;

pub(super) const NAME: &str = "noop";

pub(super) const HELP: &str =
    "noop(credential, x): checks the credential (any rights) and returns x.";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
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
    crate::auth::authenticate_any(&registry.verifier, &ctx, &credential)?;
    Ok(x)
}
