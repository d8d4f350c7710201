//! The authentication pipeline both servers run for every credential-bearing call (DESIGN §5,
//! 2008 `decode_authentication` with nothing skipped): the credential and its caller and object
//! GIDs verify against the trusted roots, the TLS client key is the caller GID's key, and the
//! rights allow the operation. One copy, so that node and plc can never drift apart on it.

use geni_rpc::{CallContext, RpcError};
use geni_trust::{VerifiedCredential, Verifier};

pub(crate) fn authenticate(
    verifier: &Verifier,
    ctx: &CallContext,
    credential: &str,
    operation: &str,
) -> Result<VerifiedCredential, RpcError> {
    let verified = verifier.verify_credential_str(credential)?;
    ctx.peer.require_caller(verified.caller().gid())?;
    if !verified.can_perform(operation) {
        return Err(RpcError::InsufficientRights {
            operation: operation.to_owned(),
            rights: verified.privileges().to_string(),
        });
    }
    Ok(verified)
}
