//! [`RpcError`], the crate's one error type, and [`fault_of`], the one place an error becomes the
//! `(faultCode, faultString)` a peer sees.

use geni_trust::TrustError;
use geni_xmlrpc::{Fault, XmlRpcError};

/// Everything that can fail in serving or calling the Geni protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The caller's account is disabled (a disabled person, or a person of a disabled site):
    /// refused like missing rights, saying why.
    #[error("account disabled: {0}")]
    AccountDisabled(String),
    /// Our own configuration is unusable (key, certificate, address).
    #[error("configuration: {0}")]
    Config(String),
    /// The object exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// The operation failed; the message says why and what to do.
    #[error("{0}")]
    Failed(String),
    /// A fault returned by a remote server.
    #[error("server fault {}: {}", .0.code, .0.string)]
    Fault(Fault),
    /// The credential's rights do not allow the operation.
    #[error(
        "insufficient rights: {operation} needs a right the credential ({rights}) does not have"
    )]
    InsufficientRights { operation: String, rights: String },
    /// A bug on our side: logged in full, answered as "internal error".
    #[error("internal error: {0}")]
    Internal(String),
    /// Arguments of the wrong number or type.
    #[error("{method}: {reason}")]
    InvalidParams { method: String, reason: String },
    /// The TLS peer's key is not the key of the caller GID presented.
    #[error("TLS client key does not match caller GID {caller}")]
    KeyMismatch { caller: String },
    #[error("no such method {0:?}")]
    MethodNotFound(String),
    /// No such record or sliver.
    #[error("{0} not found")]
    NotFound(String),
    /// The request body is not XML-RPC.
    #[error("malformed request: {0}")]
    Parse(#[from] XmlRpcError),
    /// The caller may not act on that object.
    #[error("permission denied: {0}")]
    Permission(String),
    /// Client side: the call timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Client side: connecting, TLS or HTTP failed.
    #[error("{0}")]
    Transport(String),
    #[error(transparent)]
    Trust(#[from] TrustError),
}

impl RpcError {
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }

    pub fn invalid_params(method: &str, reason: impl Into<String>) -> Self {
        Self::InvalidParams {
            method: method.to_owned(),
            reason: reason.into(),
        }
    }

    /// Whether retrying the same call could succeed (the connection failed before an answer).
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Transport(_) | Self::Timeout(_))
    }
}

/// The one mapping from errors to faults (codes in the crate documentation).
pub fn fault_of(err: &RpcError) -> Fault {
    let (code, string) = match err {
        RpcError::Parse(_) => (-32700, err.to_string()),
        RpcError::MethodNotFound(_) => (-32601, err.to_string()),
        RpcError::InvalidParams { .. } => (-32602, err.to_string()),
        RpcError::Config(_)
        | RpcError::Internal(_)
        | RpcError::Timeout(_)
        | RpcError::Transport(_) => (
            -32603,
            "internal error; the server log has the details".to_owned(),
        ),
        RpcError::Trust(TrustError::Verify(_)) => (101, err.to_string()),
        RpcError::Trust(
            TrustError::Crypto { .. } | TrustError::Io { .. } | TrustError::KeyPermissions { .. },
        ) => (
            -32603,
            "internal error; the server log has the details".to_owned(),
        ),
        RpcError::Trust(_) => (100, err.to_string()),
        RpcError::KeyMismatch { .. } => (102, err.to_string()),
        RpcError::InsufficientRights { .. } | RpcError::AccountDisabled(_) => {
            (103, err.to_string())
        }
        RpcError::Permission(_) => (104, err.to_string()),
        RpcError::NotFound(_) => (105, err.to_string()),
        RpcError::Exists(_) => (106, err.to_string()),
        RpcError::Failed(_) => (107, err.to_string()),
        RpcError::Fault(f) => (f.code, f.string.clone()),
    };
    Fault { code, string }
}
