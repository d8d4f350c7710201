//! `get_gid(name)`: the GIDs of every record at `name` (no credential, as in 2008, whose
//! version always faulted: it called a method records did not have). GIDs are public: they are
//! what a credential embeds anyway.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_xmlrpc::Value;

use super::backend::PlcBackend;
use super::{Registry, hrn_arg};

pub(super) const NAME: &str = "get_gid";

pub(super) const HELP: &str = "get_gid(name): the GIDs of the records at name, as a list.";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    _ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let [name] = params.as_slice() else {
        return Err(RpcError::invalid_params(NAME, "takes one name"));
    };
    let name = hrn_arg(NAME, name)?;
    let records = registry.records(&name).await?;
    Ok(Value::Array(
        records.into_iter().map(|r| Value::String(r.gid)).collect(),
    ))
}
