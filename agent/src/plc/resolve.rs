//! `resolve(cred, name)`: every record at `name` the caller may see, filled with `pl_info` and
//! `geni_info` from PLC (operation `resolve`).
//!
//! 2008 resolved anything for anyone with a `resolve` right; here each record must pass the same
//! visibility check as `get_credential` (authority over it, or a role on it). A name with no
//! record is "not found"; records that exist but are all hidden are "permission denied", so the
//! two are told apart only by someone allowed to know. A record whose PLC object is gone is
//! shown without PLC data rather than hidden, so that it can still be removed.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::backend::PlcBackend;
use super::{Registry, hrn_arg, record};

pub(super) const NAME: &str = "resolve";

pub(super) const HELP: &str = "resolve(credential, name): the records at name that the caller \
     may see, with pl_info and geni_info. Needs resolve.";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let [Value::String(credential), name] = params.as_slice() else {
        return Err(RpcError::invalid_params(
            NAME,
            "takes a credential and a name",
        ));
    };
    let verified = registry
        .authenticate(&ctx, credential, Operation::Resolve)
        .await?;
    let name = hrn_arg(NAME, name)?;
    let mut shown = Vec::new();
    for r in registry.records(&name).await? {
        if !registry.may_see(&verified, &r).await? {
            continue;
        }
        let filled = registry.fill(&r).await?.unwrap_or_default();
        shown.push(record::to_value(&r, filled.pl_info, filled.geni_info));
    }
    if shown.is_empty() {
        return Err(RpcError::Permission(format!(
            "a credential for {} may not see {name}",
            verified.object().hrn()
        )));
    }
    Ok(Value::Array(shown))
}
