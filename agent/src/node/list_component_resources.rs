//! `list_component_resources(cred)`: what this node has (CPUs, memory, load, disks), read with
//! sysinfo. Needs an authority right over this node (what a node has is its operators' business,
//! not every researcher's).

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::{Struct, Value};

use super::{Node, credential_args};

pub(super) const NAME: &str = "list_component_resources";
pub(super) const HELP: &str = "list_component_resources(credential): {hrn, cpus, memory_total, memory_available, load, disks}; needs an authority credential over the node.";

pub(super) async fn call(
    node: Arc<Node>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let (credential, _) = credential_args(NAME, &params)?;
    let verified = crate::auth::authenticate(
        &node.verifier,
        &ctx,
        credential,
        Operation::ListComponentResources,
    )?;
    node.require_over_node(&verified, NAME)?;
    let hrn = node.hrn().to_string();
    // sysinfo reads /proc synchronously.
    tokio::task::spawn_blocking(move || report(&hrn))
        .await
        .map_err(|e| RpcError::Internal(format!("resource report: {e}")))?
}

fn report(hrn: &str) -> Result<Value, RpcError> {
    use sysinfo::{Disks, System};
    let unreadable =
        |e: sysinfo::Error| RpcError::Failed(format!("cannot read this node's resources: {e}"));
    let mut sys = System::new().map_err(unreadable)?;
    sys.refresh_memory();
    sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let load = System::load_average().map_err(unreadable)?;
    let disks: Vec<Value> = Disks::new_with_refreshed_list()
        .map_err(unreadable)?
        .into_iter()
        .map(|d| {
            Value::Struct(
                Struct::new()
                    .with("mount", d.mount_point().display().to_string())
                    .with("total", saturating_i64(d.total_space()))
                    .with("available", saturating_i64(d.available_space())),
            )
        })
        .collect();
    let cpus = u64::try_from(sys.cpus().len()).unwrap_or(u64::MAX);
    Ok(Value::Struct(
        Struct::new()
            .with("hrn", hrn)
            .with("cpus", saturating_i64(cpus))
            .with("memory_total", saturating_i64(sys.total_memory()))
            .with("memory_available", saturating_i64(sys.available_memory()))
            .with(
                "load",
                Value::Array(vec![
                    Value::Double(load.one),
                    Value::Double(load.five),
                    Value::Double(load.fifteen),
                ]),
            )
            .with("disks", Value::Array(disks)),
    ))
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
