//! [`RpcError`], the crate's one error type, and [`fault_of`], the one place an error becomes the
//! `(faultCode, faultString)` a peer sees.
//!
//! Error messages quote peer bytes (method names, hrns, parser complaints), so every fault string
//! goes through [`clean`]: control characters and what XML 1.0 cannot carry become escapes, and
//! the text is clipped. A message that could not be encoded used to turn a peer's bad credential
//! into "internal error" and put the raw byte in the log; a 1 MiB method name was echoed whole.

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

/// Longest fault string a peer gets, in characters (before the clipping note).
pub const MAX_FAULT_CHARS: usize = 200;

/// The one mapping from errors to faults (codes in the crate documentation). The string is always
/// encodable and at most [`MAX_FAULT_CHARS`] characters plus a clipping note.
pub fn fault_of(err: &RpcError) -> Fault {
    let mut fault = raw_fault_of(err);
    fault.string = clean(&fault.string, MAX_FAULT_CHARS);
    fault
}

/// Whether [`fault_of`] hides this error behind "internal error" (so the log must carry it).
pub(crate) fn is_internal(err: &RpcError) -> bool {
    raw_fault_of(err).code == -32603
}

/// `text` made safe to put in a fault or a log line, clipped to `max_chars` characters: control
/// characters, U+FFFE/U+FFFF and bidirectional overrides become `\u{…}` escapes (so a log line
/// stays one line and reads as it will display), everything else is kept. A clipped text ends
/// with `… (clipped, N bytes in all)`.
pub fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 32));
    for (chars, ch) in text.chars().enumerate() {
        if chars == max_chars {
            out.push_str(&format!("… (clipped, {} bytes in all)", text.len()));
            return out;
        }
        if needs_escape(ch) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}

fn needs_escape(ch: char) -> bool {
    ch.is_control()
        || matches!(ch, '\u{fffe}' | '\u{ffff}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn raw_fault_of(err: &RpcError) -> Fault {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_what_xml_and_logs_cannot_carry() {
        assert_eq!(clean("plain hrn.a_b-c", 200), "plain hrn.a_b-c");
        assert_eq!(clean("a\u{1}b\nc", 200), "a\\u{1}b\\u{a}c");
        assert_eq!(clean("x\u{202e}y\u{fffe}", 200), "x\\u{202e}y\\u{fffe}");
        assert_eq!(clean("é ☃", 200), "é ☃");
    }

    #[test]
    fn clean_clips_and_says_so() {
        let long = "é".repeat(1000);
        let out = clean(&long, 10);
        assert!(out.starts_with(&"é".repeat(10)), "{out}");
        assert!(out.ends_with("(clipped, 2000 bytes in all)"), "{out}");
        assert_eq!(clean(&"a".repeat(10), 10), "a".repeat(10));
    }

    #[test]
    fn every_fault_string_is_clean() {
        let err = RpcError::MethodNotFound(format!("{}\u{1}", "m".repeat(5000)));
        let fault = fault_of(&err);
        assert_eq!(fault.code, -32601);
        assert!(fault.string.chars().count() < MAX_FAULT_CHARS + 40);
        assert!(!fault.string.chars().any(char::is_control));
        let err = RpcError::Failed("disk\u{0} full".into());
        assert_eq!(fault_of(&err).string, "disk\\u{0} full");
    }
}
