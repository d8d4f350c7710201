//! `list_slivers(cred[, hrn])`: the slivers `list_slices` would name, with their details: one
//! struct each `{name, slice, state, timestamp, expires[, pid]}` (`slice` is the slice's full hrn,
//! `expires` seconds since the epoch). Not a 2008 method; our genicli's `listSlivers` uses it.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::{Struct, Value};

use super::{Node, credential_args};

pub(super) const NAME: &str = "list_slivers";
pub(super) const HELP: &str = "list_slivers(credential[, slice_hrn]): the slivers list_slices names, as {name, slice, state, timestamp, expires[, pid]}.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let (credential, target) = credential_args(NAME, &params)?;
    let verified =
        crate::auth::authenticate(&node.verifier, &ctx, credential, Operation::ListSlices)?;
    let rows = node
        .visible(&verified, target)
        .await?
        .into_iter()
        .map(|s| {
            let mut row = Struct::new()
                .with("name", s.name.as_str())
                .with("slice", s.slice.as_str())
                .with("state", s.state.to_string())
                .with("timestamp", Value::Double(s.timestamp))
                .with("expires", s.expires);
            if let Some(pid) = s.pid {
                row.insert("pid", i64::from(pid));
            }
            Value::Struct(row)
        })
        .collect();
    Ok(Value::Array(rows))
}
