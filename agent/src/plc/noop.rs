//! `noop(cred, x)`: verifies the credential and binds its caller to the TLS key, then echoes
//! `x`; a way to test a credential without touching anything (2008's `noop` always faulted: it
//! called `decode_authentication` without its operation argument).

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture, RpcError};
use geni_xmlrpc::Value;

use super::Registry;
use super::backend::PlcBackend;

pub(super) const HELP: &str =
    "noop(credential, x): checks the credential (any rights) and returns x.";

pub(super) fn call<B: PlcBackend + 'static>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> HandlerFuture {
    Box::pin(async move {
        let mut params = params.into_iter();
        let (Some(Value::String(credential)), Some(x), None) =
            (params.next(), params.next(), params.next())
        else {
            return Err(RpcError::invalid_params(
                "noop",
                "takes a credential and one value",
            ));
        };
        crate::auth::authenticate_any(&registry.verifier, &ctx, &credential)?;
        Ok(x)
    })
}
