//! `list_slices(cred[, hrn])`: the names of the slivers the credential may see, as a list of
//! strings — what 2008's component answered (`GetXIDs().keys()`) and what 2008's genicli prints
//! with `"\n".join(result)`. An authority over this node sees every sliver, an authority
//! credential the slivers of the slices under it, any other credential only its own slice's.
//! The details are in `list_slivers`.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::{Node, credential_args};

pub(super) const NAME: &str = "list_slices";
pub(super) const HELP: &str = "list_slices(credential[, slice_hrn]): the names of the slivers on this node the credential may see.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let (credential, target) = credential_args(NAME, &params)?;
    let verified =
        crate::auth::authenticate(&node.verifier, &ctx, credential, Operation::ListSlices)?;
    let names = node
        .visible(&verified, target)
        .await?
        .into_iter()
        .map(|s| Value::String(s.name.to_string()))
        .collect();
    Ok(Value::Array(names))
}
