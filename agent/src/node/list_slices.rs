//! `list_slices(cred)`: this node's slivers with their state. An authority credential sees every
//! sliver; any other credential sees only the sliver its object names (2008 listed every sliver
//! to anyone with `info`).

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture};
use geni_trust::{Operation, Right};
use geni_xmlrpc::{Struct, Value};
use nm_bridge::NmError;

use super::{Node, credential_args, nm_fault};

pub(super) const HELP: &str =
    "list_slices(credential): the slivers on this node as {name, state, pid, timestamp, expires}.";

pub(super) fn call(node: Arc<Node>, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
    Box::pin(async move {
        let (credential, target) = credential_args("list_slices", &params)?;
        let verified = node.authenticate(&ctx, credential, Operation::ListSlices)?;
        let all = [Right::Authority, Right::Sa, Right::Ma]
            .iter()
            .any(|r| verified.privileges().contains(*r));
        let slivers = if all && target.is_none() {
            node.backend.list().await.map_err(nm_fault)?
        } else {
            // One sliver: asked for by name, so a node with thousands does not list them all
            // for each caller that may see only its own.
            let Ok(name) = node.sliver_for(&verified, target) else {
                return Ok(Value::Array(Vec::new()));
            };
            match node.backend.status(&name).await {
                Ok(status) => vec![status],
                Err(NmError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(nm_fault(e)),
            }
        };
        let listed = slivers
            .into_iter()
            .map(|s| {
                let mut row = Struct::new()
                    .with("name", s.name.as_str())
                    .with("state", s.state.to_string())
                    .with("timestamp", Value::Double(s.timestamp))
                    .with("expires", s.expires);
                if let Some(pid) = s.pid {
                    row.insert("pid", i64::from(pid));
                }
                Value::Struct(row)
            })
            .collect();
        Ok(Value::Array(listed))
    })
}
