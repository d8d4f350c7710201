//! `get_self_credential(type, name)`: the credential a principal gets over its own record, with
//! no credential presented: the TLS client key must be the key of the record's GID (2008
//! `ConnectionKeyGIDMismatch` otherwise). Rights are the record type's defaults.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_xmlrpc::Value;

use super::backend::PlcBackend;
use super::{Registry, hrn_arg, parse_stored_gid, type_arg};

pub(super) const NAME: &str = "get_self_credential";

pub(super) const HELP: &str = "get_self_credential(type, name): a credential over your own \
     record; the TLS client key must be the record's GID key.";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let [kind, name] = params.as_slice() else {
        return Err(RpcError::invalid_params(
            NAME,
            "takes a record type and a name",
        ));
    };
    let kind = type_arg(NAME, kind)?;
    let name = hrn_arg(NAME, name)?;
    self_credential(&registry, &ctx, kind, &name).await
}

/// Shared with `get_credential`, which falls back here when given no credential.
pub(super) async fn self_credential<B: PlcBackend>(
    registry: &Registry<B>,
    ctx: &CallContext,
    kind: geni_trust::RecordType,
    name: &geni_trust::Hrn,
) -> Result<Value, RpcError> {
    let record = registry.record(name, kind).await?;
    let gid = parse_stored_gid(&record)?;
    ctx.peer.require_caller(&gid)?;
    registry.require_enabled(name).await?;
    registry.credential_for(&gid, &record).await
}
