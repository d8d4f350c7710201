//! `reboot(cred)`: runs the configured reboot command (default `systemctl reboot`). Needs an
//! authority right (`authority`, `sa`, `ma`) over this node itself: a site's PI reboots the
//! site's own nodes, not every node that trusts the same root.

use std::sync::{Arc, PoisonError};

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::{Node, credential_args, done};

pub(super) const NAME: &str = "reboot";
pub(super) const HELP: &str =
    "reboot(credential): reboots the node; needs an authority credential over the node.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let (credential, _) = credential_args(NAME, &params)?;
    let verified = crate::auth::authenticate(&node.verifier, &ctx, credential, Operation::Reboot)?;
    node.require_over_node(&verified, NAME)?;
    let command = node
        .reboot_command
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some((program, args)) = command.split_first() else {
        return Err(RpcError::Failed(
            "no reboot command is configured on this node".into(),
        ));
    };
    tracing::warn!(caller = %verified.caller().hrn(), command = ?command, "Reboot requested");
    let status = tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
        .map_err(|e| RpcError::Failed(format!("cannot run the reboot command {program}: {e}")))?;
    if status.success() {
        Ok(done())
    } else {
        Err(RpcError::Failed(format!(
            "the reboot command {program} failed ({status})"
        )))
    }
}
