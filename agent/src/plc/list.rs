//! `list(cred)` and the later `list(cred, hrn)`: the records directly under an authority,
//! filled from PLC (operation `list`). Without `hrn` the authority is the credential's object,
//! as in 2008; with it, the credential must have authority over `hrn`.
//!
//! 2008 also deleted records whose PLC object had vanished, from inside a read; here they are
//! left out of the answer and logged, and the operator decides (`remove`, or `plc import`).

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::backend::PlcBackend;
use super::{Registry, hrn_arg, record, require_permission, store_fault};

pub(super) const NAME: &str = "list";

pub(super) const HELP: &str = "list(credential[, hrn]): the records under the credential's \
     object (or under hrn), with pl_info and geni_info. Needs list.";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let (credential, hrn) = match params.as_slice() {
        [Value::String(c)] | [Value::String(c), Value::Nil] => (c, None),
        [Value::String(c), h] => (c, Some(hrn_arg(NAME, h)?)),
        _ => {
            return Err(RpcError::invalid_params(
                NAME,
                "takes a credential and optionally an authority hrn",
            ));
        }
    };
    let verified = registry
        .authenticate(&ctx, credential, Operation::List)
        .await?;
    let authority = match hrn {
        Some(h) => {
            require_permission(&verified, &h)?;
            h
        }
        None => verified.object().hrn().clone(),
    };
    let mut listed = Vec::new();
    for r in registry
        .store
        .under(&authority)
        .await
        .map_err(store_fault)?
    {
        match registry.fill(&r).await? {
            Some(f) => listed.push(record::to_value(&r, f.pl_info, f.geni_info)),
            None => tracing::info!(
                hrn = %r.hrn,
                kind = %r.kind,
                pointer = r.pointer,
                "Record's PLC object is gone; left out of list"
            ),
        }
    }
    Ok(Value::Array(listed))
}
