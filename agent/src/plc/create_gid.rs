//! `create_gid(cred, name, uuid, pubkey)`: a GID for `name` and the caller's public key, signed
//! by `name`'s authority here (2008 operation `getcredential`). The name must be under an
//! authority this registry holds and within the credential's authority; the uuid, when given,
//! is the decimal string 2008 used (nil or empty draws a random one).

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::{ChainForm, Operation, PublicKey};
use geni_xmlrpc::Value;

use super::backend::PlcBackend;
use super::{Registry, hrn_arg, require_permission};

pub(super) const NAME: &str = "create_gid";

pub(super) const HELP: &str = "create_gid(credential, name, uuid, pubkey): a GID for name with \
     the SPKI PEM public key, signed by name's authority; uuid may be nil. Needs getcredential.";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let [Value::String(credential), name, uuid, Value::String(pubkey)] = params.as_slice() else {
        return Err(RpcError::invalid_params(
            NAME,
            "takes a credential, a name, a uuid (or nil) and a PEM public key (strings)",
        ));
    };
    let verified = registry
        .authenticate(&ctx, credential, Operation::GetCredential)
        .await?;
    let name = hrn_arg(NAME, name)?;
    registry.require_ours(&name)?;
    require_permission(&verified, &name)?;
    let uuid = match uuid {
        Value::Nil => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 39 => {
            Some(s.clone())
        }
        Value::Int(i) if *i >= 0 => Some(i.to_string()),
        other => {
            return Err(RpcError::invalid_params(
                NAME,
                format!("the uuid must be nil or a decimal number, not {other:?}"),
            ));
        }
    };
    let key = PublicKey::from_pem(pubkey.as_bytes())
        .map_err(|e| RpcError::invalid_params(NAME, format!("pubkey: {e}")))?;
    let gid = registry
        .authorities
        .create_gid(&name, uuid.as_deref(), &key)?;
    tracing::info!(caller = %verified.caller().hrn(), hrn = %name, "GID created");
    Ok(Value::String(gid.to_chain_string(ChainForm::Separator)?))
}
