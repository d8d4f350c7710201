//! `reboot(cred)`: runs the configured reboot command (default `systemctl reboot`). Only
//! authority rights (`authority`, `sa`, `ma`) allow the `reboot` operation.

use std::sync::{Arc, PoisonError};

use geni_rpc::{CallContext, HandlerFuture, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::{Node, credential_args};

pub(super) const HELP: &str =
    "reboot(credential): reboots the node; needs an authority credential.";

pub(super) fn call(node: Arc<Node>, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
    Box::pin(async move {
        let (credential, _) = credential_args("reboot", &params)?;
        let verified = node.authenticate(&ctx, credential, Operation::Reboot)?;
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
            .map_err(|e| {
                RpcError::Failed(format!("cannot run the reboot command {program}: {e}"))
            })?;
        if status.success() {
            Ok(Value::Int(1))
        } else {
            Err(RpcError::Failed(format!(
                "the reboot command {program} failed ({status})"
            )))
        }
    })
}
