//! `get_credential(cred, type, name)`: a credential for the caller over the record `(type,
//! name)`, with the record type's default rights (operation `getcredential`).
//!
//! 2008 handed any object's credential to anyone with a `resolve` right; here the caller must
//! be allowed to see the object: the presented credential's object is the record or an authority
//! over it, or the user it names is a researcher of the slice, a PI of the sa's site, or an
//! operator or owner of the ma's site (the check SFA added in 2009). With no credential (nil or
//! empty) it is `get_self_credential`, which 2008 meant to call but misspelt.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::Operation;
use geni_xmlrpc::Value;

use super::backend::PlcBackend;
use super::{Registry, get_self_credential, hrn_arg, type_arg};

pub(super) const NAME: &str = "get_credential";

pub(super) const HELP: &str = "get_credential(credential, type, name): a credential over the \
     record for the caller, who must be allowed to see it; with a nil credential, your own \
     (as get_self_credential). Needs getcredential.";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let [credential, kind, name] = params.as_slice() else {
        return Err(RpcError::invalid_params(
            NAME,
            "takes a credential (or nil), a record type and a name",
        ));
    };
    let kind = type_arg(NAME, kind)?;
    let name = hrn_arg(NAME, name)?;
    let credential = match credential {
        Value::Nil => None,
        Value::String(c) if c.trim().is_empty() => None,
        Value::String(c) => Some(c),
        v => {
            return Err(RpcError::invalid_params(
                NAME,
                format!(
                    "the credential must be a string or nil, not a {}",
                    v.type_name()
                ),
            ));
        }
    };
    let Some(credential) = credential else {
        return get_self_credential::self_credential(&registry, &ctx, kind, &name).await;
    };
    let verified = registry
        .authenticate(&ctx, credential, Operation::GetCredential)
        .await?;
    let record = registry.record(&name, kind).await?;
    if !registry.may_see(&verified, &record).await? {
        return Err(RpcError::Permission(format!(
            "a credential for {} may not obtain a credential for {kind} {name}",
            verified.object().hrn()
        )));
    }
    registry
        .credential_for(verified.caller().gid(), &record)
        .await
}
