//! One XML-RPC exchange over one HTTP/1.1 connection, whatever carries it (TLS over TCP, a Unix
//! socket): encoding the call, the request head, the status check, the bounded body and decoding
//! the answer, and turning every failure into a message that names the peer and the method.
//!
//! Every client in this module goes through here, so the rules are stated once: a response is
//! read only after HTTP 200, never beyond [`MAX_RESPONSE_BYTES`] nor deeper than 64 levels, and
//! each failure is sorted into [`Failure::Retryable`] (the server cannot have answered) or
//! [`Failure::Final`] (it did, or the call itself is wrong). Connecting is the caller's business.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use geni_xmlrpc::{Limits, MethodCall, MethodResponse, Value, parse_method_response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};

use crate::RpcError;

/// Largest answer read: PLCAPI's `GetSlivers` and 2008 credentials with their chains run to
/// megabytes, so this is well above the server's request limit.
pub(super) const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

const RESPONSE_LIMITS: Limits = Limits {
    max_depth: 64,
    max_bytes: MAX_RESPONSE_BYTES,
    // PLCAPI's GetPersons on a 10,000-person PLC is ~600,000 values and members, and 16 MiB of
    // `<value/>` would be two million: room for the first, a bound on the second.
    max_values: 2_000_000,
};

const AGENT: &str = concat!("geni-agent/", env!("CARGO_PKG_VERSION"));

/// Where requests go and how messages name the server.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// `host:port`, or `NodeManager`.
    peer: String,
    host: HeaderValue,
    uri: Uri,
}

/// When the whole call must be over, and the budget it came from (for the message).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    budget: Duration,
}

/// A failed call, sorted by whether sending it again could succeed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The server answered (a fault, an HTTP error, an unreadable body) or the call cannot be
    /// encoded: the same call would fail the same way.
    Final(RpcError),
    /// No answer came: connecting, TLS, or the exchange failed or timed out before a response
    /// head arrived.
    Retryable(RpcError),
}

/// Why [`Connection::send`] failed.
#[derive(Debug)]
pub(super) enum SendFailure {
    /// The connection was already closed and nothing went out: the request is handed back and
    /// may go on another connection without risk of running twice.
    NotSent(Box<Request<String>>),
    Failed(Failure),
}

/// An HTTP/1.1 connection with its driver task running; one request at a time.
#[derive(Debug)]
pub(super) struct Connection {
    sender: SendRequest<String>,
}

// === impl Target ===

impl Target {
    /// `host` is the `Host` header value; `path` the request target (`/`, `/RPC2`, `/PLCAPI/`).
    pub(super) fn new(peer: String, host: &str, path: &str) -> Result<Self, RpcError> {
        let host = HeaderValue::from_str(host)
            .map_err(|_| RpcError::config(format!("{host:?} is not a valid HTTP host")))?;
        let uri = Uri::try_from(path)
            .map_err(|e| RpcError::config(format!("{path:?} is not a valid HTTP path: {e}")))?;
        Ok(Self { peer, host, uri })
    }

    /// From constants known to be a valid host and path.
    pub(super) fn fixed(peer: &str, host: &'static str, path: &'static str) -> Self {
        Self {
            peer: peer.to_owned(),
            host: HeaderValue::from_static(host),
            uri: Uri::from_static(path),
        }
    }

    pub(super) fn peer(&self) -> &str {
        &self.peer
    }

    /// The POST carrying `call`.
    pub(super) fn request(&self, call: &MethodCall) -> Result<Request<String>, Failure> {
        let body = geni_xmlrpc::write_method_call(call)
            .map_err(|e| Failure::Final(RpcError::invalid_params(&call.method, e.to_string())))?;
        Request::post(self.uri.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "text/xml")
            .header(USER_AGENT, AGENT)
            .body(body)
            .map_err(|e| Failure::Final(RpcError::Internal(format!("building a request: {e}"))))
    }

    /// The error for a connection that broke during `method`.
    fn broken(&self, method: &str, e: &hyper::Error) -> RpcError {
        let peer = &self.peer;
        if e.is_incomplete_message() {
            return RpcError::Transport(format!(
                "{peer} closed the connection without answering {method}"
            ));
        }
        match io_cause(e) {
            Some(io) if closed_by_peer(io) => RpcError::Transport(format!(
                "{peer} closed the connection without answering {method} ({})",
                describe_io(io)
            )),
            Some(io) => RpcError::Transport(format!(
                "the connection to {peer} failed during {method}: {}",
                describe_io(io)
            )),
            None => RpcError::Transport(format!(
                "the connection to {peer} failed during {method}: {e}"
            )),
        }
    }
}

// === impl Deadline ===

impl Deadline {
    pub(super) fn after(budget: Duration) -> Self {
        let now = Instant::now();
        // A budget too large to add is "no limit"; a year stands in for it.
        let at = now
            .checked_add(budget)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        Self { at, budget }
    }

    pub(super) fn at(&self) -> Instant {
        self.at
    }

    /// The error for a deadline that passed while `what` was under way.
    pub(super) fn expired(&self, what: &str) -> RpcError {
        RpcError::Timeout(format!("{what} within {:?}", self.budget))
    }
}

// === impl Failure ===

impl From<Failure> for RpcError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Final(e) | Failure::Retryable(e) => e,
        }
    }
}

// === impl Connection ===

impl Connection {
    /// Starts HTTP/1.1 on `io`; the connection's driver runs as its own task until either side
    /// closes or this value is dropped.
    pub(super) async fn open<Io>(io: Io, target: &Target) -> Result<Self, Failure>
    where
        Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, driver) = http1::handshake(TokioIo::new(io)).await.map_err(|e| {
            Failure::Retryable(RpcError::Transport(format!(
                "starting HTTP with {} failed: {e}",
                target.peer
            )))
        })?;
        let peer = target.peer.clone();
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(%peer, error = %e, "client connection ended");
            }
        });
        Ok(Self { sender })
    }

    /// Whether the server (or an error) has closed the connection.
    pub(super) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends `request` (the call to `method`) and reads the answer, all before `deadline`.
    pub(super) async fn send(
        &mut self,
        request: Request<String>,
        target: &Target,
        method: &str,
        deadline: &Deadline,
    ) -> Result<Value, SendFailure> {
        let peer = &target.peer;
        let response = match timeout_at(deadline.at, self.sender.try_send_request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(mut e)) => {
                if let Some(request) = e.take_message() {
                    return Err(SendFailure::NotSent(Box::new(request)));
                }
                let error = target.broken(method, &e.into_error());
                return Err(SendFailure::Failed(Failure::Retryable(error)));
            }
            Err(_) => {
                let error = deadline.expired(&format!("no answer from {peer} to {method}"));
                return Err(SendFailure::Failed(Failure::Retryable(error)));
            }
        };
        read_answer(response, target, method, deadline)
            .await
            .map_err(|e| SendFailure::Failed(Failure::Final(e)))
    }
}

/// One call on a fresh connection over `io`, which is closed afterwards.
pub(super) async fn call_over<Io>(
    io: Io,
    target: &Target,
    call: &MethodCall,
    deadline: &Deadline,
) -> Result<Value, Failure>
where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let request = target.request(call)?;
    let work = async {
        let mut connection = Connection::open(io, target).await?;
        connection
            .send(request, target, &call.method, deadline)
            .await
            .map_err(|e| match e {
                SendFailure::NotSent(_) => Failure::Retryable(RpcError::Transport(format!(
                    "{} closed the connection before {} was sent",
                    target.peer, call.method
                ))),
                SendFailure::Failed(f) => f,
            })
    };
    match timeout_at(deadline.at, work).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Retryable(deadline.expired(&format!(
            "no answer from {} to {}",
            target.peer, call.method
        )))),
    }
}

/// Status, size, body and decoding of an answer whose head has arrived.
async fn read_answer(
    response: hyper::Response<hyper::body::Incoming>,
    target: &Target,
    method: &str,
    deadline: &Deadline,
) -> Result<Value, RpcError> {
    let peer = &target.peer;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(RpcError::Transport(format!(
            "{peer} answered {method} with HTTP {status}"
        )));
    }
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        RpcError::Transport(format!(
            "{peer}'s answer to {method} is over the {} MiB limit",
            MAX_RESPONSE_BYTES >> 20
        ))
    };
    if announced.is_some_and(|n| n > MAX_RESPONSE_BYTES) {
        return Err(too_large());
    }
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
    let bytes = match timeout_at(deadline.at, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            let detail = e
                .downcast_ref::<hyper::Error>()
                .and_then(io_cause)
                .map_or_else(|| e.to_string(), describe_io);
            return Err(RpcError::Transport(format!(
                "reading the answer to {method} from {peer} failed: {detail}"
            )));
        }
        Err(_) => return Err(deadline.expired(&format!("the answer from {peer} to {method}"))),
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        RpcError::Transport(format!("{peer}'s answer to {method} is not UTF-8: {e}"))
    })?;
    match parse_method_response(text, &RESPONSE_LIMITS) {
        Ok(MethodResponse::Success(value)) => Ok(value),
        Ok(MethodResponse::Fault(fault)) => Err(RpcError::Fault(fault)),
        Err(e) => Err(RpcError::Transport(format!(
            "{peer}'s answer to {method} is not XML-RPC: {e}"
        ))),
    }
}

// === messages ===

/// The I/O error under a hyper error, if that is what broke.
fn io_cause(e: &hyper::Error) -> Option<&io::Error> {
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

fn closed_by_peer(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// An I/O error as a person reads it: "connection refused", not "Connection refused (os error
/// 111)"; the TLS error itself when TLS is what failed.
pub(super) fn describe_io(e: &io::Error) -> String {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return describe_tls(tls);
    }
    let text = e.to_string();
    let text = text
        .find(" (os error")
        .map_or(text.as_str(), |end| &text[..end]);
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

fn describe_tls(e: &rustls::Error) -> String {
    match e {
        // The pinning verifier's only refusal (tls.rs): say what it means.
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ) => "the server's certificate is not the pinned one (its key or certificate differs)"
            .to_owned(),
        other => other.to_string(),
    }
}
