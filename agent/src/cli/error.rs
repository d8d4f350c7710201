//! [`CliError`], every way a genicli command fails, each with what to do about it, and the exit
//! status it ends the process with ([`ExitStatus`]).

use std::fmt;
use std::path::Path;

use geni_rpc::RpcError;

/// How `genicli` ends. Scripts depend on these values; they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked.
    Success = 0,
    /// The server refused or failed the operation (a fault), or its answer said it could not be
    /// done (no record of that type, …).
    Refused = 1,
    /// The command line is wrong.
    Usage = 2,
    /// A local file is missing, unreadable or unusable (key, certificate, credential, ticket,
    /// GID, trusted roots), or an output file cannot be written.
    File = 3,
    /// The server could not be reached, did not prove who it is, or did not answer in XML-RPC.
    Connection = 4,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failed command: what went wrong and, where we can tell, what to do.
#[derive(Debug)]
pub enum CliError {
    /// The command line is wrong; the message says how.
    Usage(String),
    /// A local file problem.
    File {
        message: String,
        hint: Option<String>,
    },
    /// Could not talk to the server at `url`.
    Connection {
        url: String,
        message: String,
        hint: Option<String>,
    },
    /// The server at `url` answered `method` with a fault.
    Fault {
        url: String,
        method: String,
        code: i32,
        string: String,
    },
    /// The operation cannot go on, for a reason the message gives.
    Refused {
        message: String,
        hint: Option<String>,
    },
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub fn file(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::File {
            message: message.into(),
            hint,
        }
    }

    /// A file that could not be read or written, with the OS error.
    pub fn io(what: &str, path: &Path, e: &std::io::Error) -> Self {
        let hint = (e.kind() == std::io::ErrorKind::NotFound)
            .then(|| format!("check the path {}", path.display()));
        Self::file(format!("{what} {}: {e}", path.display()), hint)
    }

    pub fn refused(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::Refused {
            message: message.into(),
            hint,
        }
    }

    /// A failed call of `method` on `url`, sorted into fault or connection trouble.
    pub fn from_rpc(url: &str, method: &str, e: RpcError) -> Self {
        match e {
            RpcError::Fault(f) => Self::Fault {
                url: url.to_owned(),
                method: method.to_owned(),
                code: f.code,
                string: f.string,
            },
            RpcError::Transport(m) | RpcError::Timeout(m) => {
                let hint = connection_hint(&m, url);
                Self::Connection {
                    url: url.to_owned(),
                    message: m,
                    hint,
                }
            }
            other => Self::Connection {
                url: url.to_owned(),
                message: other.to_string(),
                hint: None,
            },
        }
    }

    pub fn status(&self) -> ExitStatus {
        match self {
            Self::Usage(_) => ExitStatus::Usage,
            Self::File { .. } => ExitStatus::File,
            Self::Connection { .. } => ExitStatus::Connection,
            Self::Fault { .. } | Self::Refused { .. } => ExitStatus::Refused,
        }
    }

    /// What to do about it, when we can tell.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Usage(_) => Some("run `genicli help` for the commands and options".to_owned()),
            Self::File { hint, .. }
            | Self::Connection { hint, .. }
            | Self::Refused { hint, .. } => hint.clone(),
            Self::Fault { method, code, .. } => fault_hint(method, *code),
        }
    }

    /// A short name of the kind of failure, for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage",
            Self::File { .. } => "file",
            Self::Connection { .. } => "connection",
            Self::Fault { .. } => "fault",
            Self::Refused { .. } => "refused",
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => f.write_str(m),
            Self::File { message, .. } | Self::Refused { message, .. } => f.write_str(message),
            Self::Connection { url, message, .. } => write!(f, "{url}: {message}"),
            Self::Fault {
                url,
                method,
                code,
                string,
            } => write!(f, "{url} refused {method}: fault {code}: {string}"),
        }
    }
}

impl std::error::Error for CliError {}

/// Fault codes are geni-rpc's (rpc/src/lib.rs); each gets the advice that fits it.
fn fault_hint(method: &str, code: i32) -> Option<String> {
    let text = match code {
        -32601 => format!(
            "this server has no {method}: registry commands (resolve, getCredential, register, \
             …, getTicket) go to the plc, slice commands (redeemTicket, startSlice, …) to a node; \
             check --server"
        ),
        -32602 => "the server did not accept the arguments; check the command's arguments \
                   (`genicli help`)"
            .to_owned(),
        100 => "the server could not read the credential, GID or ticket sent; check the file \
                given with --credfile, --ticketfile or on the command line"
            .to_owned(),
        101 => "the server did not accept the credential's chain (expired, or not under a root \
                it trusts); get a fresh credential with getCredential"
            .to_owned(),
        102 => "the credential's caller is not the owner of the key used (--keyfile); use the \
                key the caller's GID was made for, or get a credential for this key"
            .to_owned(),
        103 => "the credential does not carry the right this needs; get a credential of the \
                right type (e.g. getCredential slice <hrn> for slice operations, getCredential sa \
                <authority> for register/remove)"
            .to_owned(),
        104 => "the credential's object does not cover that name; use a credential over it or \
                over one of its authorities"
            .to_owned(),
        105 => {
            "no such record or sliver; check the name (resolve or list show what exists)".to_owned()
        }
        106 => "it already exists; remove it first, or use update".to_owned(),
        _ => return None,
    };
    Some(text)
}

/// Advice for a connection failure, from the message geni-rpc gave.
fn connection_hint(message: &str, url: &str) -> Option<String> {
    if message.contains("cannot connect") || message.contains("within") {
        Some(format!(
            "is the server running at {url}? Check --server (the plc's or the node's URL)"
        ))
    } else if message.contains("TLS handshake") {
        Some(
            "the server did not prove who it is: check --trusted_roots (roots its GID must chain \
             to) or --server_gid (its GID), or that --server names the server you mean"
                .to_owned(),
        )
    } else {
        None
    }
}
