//! The authentication pipeline both servers run for every credential- or ticket-bearing call
//! (DESIGN §5, 2008 `decode_authentication` with nothing skipped): the object and its caller and
//! object GIDs verify against the trusted roots, the TLS client key is the caller GID's key, and
//! (for a credential) the rights allow the operation. Handlers call these and never the verifier
//! directly, so there is one way to authenticate and node and plc can never drift apart on it.

use geni_rpc::{CallContext, RpcError};
use geni_trust::{Hrn, Operation, VerifiedCredential, VerifiedTicket, Verifier};

/// A credential whose rights allow `operation`.
pub(crate) fn authenticate(
    verifier: &Verifier,
    ctx: &CallContext,
    credential: &str,
    operation: Operation,
) -> Result<VerifiedCredential, RpcError> {
    let verified = authenticate_any(verifier, ctx, credential)?;
    if !verified.can_perform(operation) {
        return Err(RpcError::InsufficientRights {
            operation: operation.to_string(),
            rights: verified.privileges().to_string(),
        });
    }
    Ok(verified)
}

/// A credential with any rights (`noop`: a way to test a credential and the TLS binding). Either
/// form is taken, recognised by content: a 2008 PEM chain or a GENI `signed-credential`; both
/// verify into the same `VerifiedCredential`, whose caller is the GENI owner.
pub(crate) fn authenticate_any(
    verifier: &Verifier,
    ctx: &CallContext,
    credential: &str,
) -> Result<VerifiedCredential, RpcError> {
    // A cached verdict is one lookup; anything else parses and checks signatures on the bounded
    // CPU pool, comparing the TLS key with the caller GID before any RSA operation. Either form:
    // a 2008 PEM chain or a GENI `signed-credential`, recognised by content.
    let verified = match verifier.cached_any_credential(credential) {
        Some(v) => v,
        None => geni_rpc::run_blocking(|| {
            geni_trust::work::within(&ctx.work, || {
                verifier.verify_any_credential_checked(credential, |caller| {
                    ctx.peer.require_caller(caller)
                })
            })
        })?,
    };
    ctx.peer.require_caller(verified.caller().gid())?;
    Ok(verified)
}

/// A ticket for `node` (when it names one) presented by its own `gidCaller`: only the caller a
/// ticket was issued to may redeem it.
pub(crate) fn authenticate_ticket(
    verifier: &Verifier,
    ctx: &CallContext,
    ticket: &str,
    node: &Hrn,
) -> Result<VerifiedTicket, RpcError> {
    // Tickets are not cached (each is redeemed once): always on the bounded CPU pool.
    let verified = geni_rpc::run_blocking(|| {
        geni_trust::work::within(&ctx.work, || verifier.verify_ticket_str(ticket, Some(node)))
    })?;
    ctx.peer.require_caller(verified.caller().gid())?;
    Ok(verified)
}
