//! [`UnixClient`]: XML-RPC over HTTP/1.1 on a Unix stream socket, for PlanetLab's NodeManager
//! (`/tmp/nodemanager.api`).
//!
//! NodeManager knows its caller only by the uid that connected (SO_PEERCRED), and answers one
//! call per connection. So a client either connects per call from a path, or is handed one stream
//! that a helper running as the right uid connected and passed back, good for exactly one call.
//! Nothing is retried here: NodeManager's Python 3 server sometimes drops a connection without an
//! answer after acting on the call, and only the caller knows whether repeating it is safe.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use geni_xmlrpc::{MethodCall, Value};
use tokio::net::UnixStream;
use tokio::time::timeout_at;

use super::http::{Deadline, Target, call_over, describe_io};
use crate::RpcError;

/// How messages name the server; callers recognise "NodeManager closed the connection without
/// answering" by it.
const PEER: &str = "NodeManager";

/// A client of NodeManager's XML-RPC API over a Unix socket.
#[derive(Debug)]
pub struct UnixClient {
    source: Source,
    target: Target,
    timeout: Duration,
}

#[derive(Debug)]
enum Source {
    /// Connect here for every call.
    Path(PathBuf),
    /// The one stream a helper connected; taken by the first call.
    Passed(Mutex<Option<StdUnixStream>>),
}

impl UnixClient {
    /// Connects to `path` afresh for each call, as the current process's uid. `timeout` bounds
    /// each call, connecting included.
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            source: Source::Path(path.into()),
            target: target(),
            timeout,
        }
    }

    /// Uses `stream`, already connected (typically by a helper that switched uid and passed the
    /// descriptor back), for exactly one call; a second call is an error.
    pub fn from_stream(stream: StdUnixStream, timeout: Duration) -> Self {
        Self {
            source: Source::Passed(Mutex::new(Some(stream))),
            target: target(),
            timeout,
        }
    }

    /// Calls `method`. A fault comes back as [`RpcError::Fault`]; a connection dropped without
    /// an answer as [`RpcError::Transport`] starting "NodeManager closed the connection without
    /// answering" (the call may or may not have taken effect); an exceeded timeout as
    /// [`RpcError::Timeout`].
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, RpcError> {
        let deadline = Deadline::after(self.timeout);
        let call = MethodCall {
            method: method.to_owned(),
            params,
        };
        let stream = self.stream(&deadline).await?;
        call_over(stream, &self.target, &call, &deadline)
            .await
            .map_err(RpcError::from)
    }

    async fn stream(&self, deadline: &Deadline) -> Result<UnixStream, RpcError> {
        match &self.source {
            Source::Path(path) => {
                let shown = path.display();
                match timeout_at(deadline.at(), UnixStream::connect(path)).await {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(e)) => Err(RpcError::Transport(format!(
                        "cannot connect to {PEER} at {shown}: {}",
                        describe_io(&e)
                    ))),
                    Err(_) => Err(deadline.expired(&format!("connecting to {PEER} at {shown}"))),
                }
            }
            Source::Passed(slot) => {
                let stream = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                let stream = stream.ok_or_else(|| {
                    RpcError::Internal(
                        "this NodeManager connection was already used: NodeManager answers one \
                         call per connection, so each call needs a newly connected stream"
                            .to_owned(),
                    )
                })?;
                let adopt = |e: std::io::Error| {
                    RpcError::Transport(format!(
                        "cannot use the connection to {PEER}: {}",
                        describe_io(&e)
                    ))
                };
                // Tokio needs the descriptor non-blocking; a passed descriptor may not be.
                stream.set_nonblocking(true).map_err(adopt)?;
                UnixStream::from_std(stream).map_err(adopt)
            }
        }
    }
}

/// `POST /RPC2` with `Host: localhost`: NodeManager's Python 3 server wants a Host header.
fn target() -> Target {
    Target::fixed(PEER, "localhost", "/RPC2")
}
