//! [`NmError`], the crate's one error type. Messages name the sliver and say what to do; the node
//! maps them to faults.

use std::path::PathBuf;

/// Everything a sliver backend can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NmError {
    /// The sliver exists and the request would need it not to.
    #[error("sliver {0} already exists")]
    Exists(String),
    /// A record that cannot become a sliver (bad name, bad rspec value, missing field).
    #[error("invalid sliver record: {0}")]
    InvalidRecord(String),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A NodeManager fault, with NM's code (100 bad method, 101 argument count, 102 invalid
    /// argument or ticket, 104 error in call, 108 permission denied).
    #[error("NodeManager fault {code}: {message}")]
    NodeManager { code: i32, message: String },
    #[error("no sliver {0} on this node")]
    NotFound(String),
    /// The backend is not allowed to do that here (not root, account management disabled, …).
    #[error("permission denied: {0}")]
    Permission(String),
    /// Starting or stopping a process failed.
    #[error("sliver {name}: {message}")]
    Process { name: String, message: String },
    /// A record not newer than the one the sliver already has (NM keeps the newer timestamp).
    #[error(
        "sliver {name} already has a record from timestamp {current}; refusing one from {offered}"
    )]
    Stale {
        name: String,
        current: f64,
        offered: f64,
    },
    /// NodeManager could not be reached, or hung up without answering.
    #[error("{0}")]
    Transport(String),
}

impl NmError {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error,
        }
    }
}
