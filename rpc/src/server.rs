//! The HTTPS XML-RPC server: listeners, TLS handshakes, HTTP, limits, logging and shutdown.
//!
//! Connections are accepted by our own loop rather than axum-server's so that each one gets its
//! limits, its span and the peer certificate read from rustls (leaf first; never a chain that
//! could start with the client's CA, as axum-server's OpenSSL backend does). HTTP is hyper's
//! HTTP/1 (1.0 without a Host header included, as 2008's `httplib` sends), routed by axum: `POST
//! /` and `POST /RPC2` reach the dispatcher, anything else is 404 or 405. Every limit is answered,
//! never a crash: a body over the limit is 413, a body too slow is 408, a body that finds the
//! server's memory for requests in use waits (if one of the few waiting places is free) and then
//! gets 503, what a body decodes to is held against that memory until its answer is written,
//! headers too slow close the connection, a write that makes no progress or a keep-alive
//! connection left idle closes it, XML too deep, too many values or a DOCTYPE is a fault. Which
//! connections are kept is [`crate::admission`]'s decision: a share per peer address, and the
//! oldest connection that has sent no request is evicted when the pool is full. On shutdown the
//! listeners stop, in-flight calls finish, idle connections close.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use geni_trust::work::WorkBudget;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, field};

use crate::RpcError;
use crate::admission::{Admission, Guarded, Refusal, Slot};
use crate::dispatch::{CallContext, Dispatcher, PeerIdentity};
use crate::ratelimit::RateLimit;
use crate::tls::{TlsIdentity, server_config};

/// The port 2008's servers listened on.
pub const DEFAULT_PORT: u16 = 12345;

/// Bounds on what one peer can make the server do. Defaults suit 2008 peers: their credentials
/// with embedded chains reach hundreds of kilobytes.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_xml_depth: usize,
    /// Values and struct members one request may decode to ([`geni_xmlrpc::Limits::max_values`]).
    pub max_xml_values: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// The handshake and first-headers deadline of a connection accepted while the pool is more
    /// than three quarters full: under a flood, an unfinished connection gets less time.
    pub pressure_timeout: Duration,
    /// A write that makes no progress for this long ends the connection (a peer that does not
    /// read its answers).
    pub write_timeout: Duration,
    /// A keep-alive connection with no request in flight that sends nothing for this long is
    /// closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Connections one peer address may hold at once (an IPv6 /64 counts as one address).
    pub max_connections_per_peer: usize,
    /// Request memory across all connections: each body's bytes while it is read, then what it
    /// decoded to until its answer is written. A body that would go over waits (up to its body
    /// timeout) and is then answered 503.
    pub max_bytes_in_flight: usize,
    /// Bodies that may wait for [`Limits::max_bytes_in_flight`] at once; a body over that is
    /// answered 503 at once and its connection closed. A waiting connection holds its TLS record
    /// and HTTP buffers (tens of KiB): unbounded waiting was most of a flood's memory.
    pub max_waiting_bodies: usize,
    /// Calls one `system.multicall` may carry.
    pub max_multicall: usize,
    /// Verification work (certificate parses and RSA operations, in estimated microseconds: see
    /// `geni_trust::work`) one request may cause, all its calls together; past it a call is
    /// refused with fault 101. 64 cold verifications of a 3-level credential cost ~39,000.
    pub max_verification_work: u64,
    /// How long shutdown waits for in-flight calls.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_xml_depth: 64,
            max_xml_values: 16_384,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            pressure_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_peer: 64,
            // Not the 64 MiB first planned: 1,024 connections each with a TLS record in flight
            // hold ~30 MB of rustls and hyper buffers beside the budget, and a node under that
            // flood stayed under 100 MB only with 24 MiB here (80-83 MiB; 32 MiB: 89-103 MiB).
            max_bytes_in_flight: 24 * 1024 * 1024,
            max_waiting_bodies: 64,
            max_multicall: crate::DEFAULT_MAX_MULTICALL,
            max_verification_work: 50_000,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Where to listen.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub tcp: Option<SocketAddr>,
    /// A Unix socket path, served with the same TLS and protocol.
    pub unix: Option<PathBuf>,
    pub limits: Limits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            tcp: Some(SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))),
            unix: None,
            limits: Limits::default(),
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    tcp: Option<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tcp", &self.local_addr())
            .field("unix", &self.unix.as_ref().map(|u| &u.1))
            .finish_non_exhaustive()
    }
}

/// Asks a running server to stop (cloneable, usable from any task).
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

#[derive(Debug)]
struct Shared {
    dispatcher: Dispatcher,
    limits: Limits,
    admission: Arc<Admission>,
    /// Request memory across all connections, one permit a byte.
    body_budget: Arc<Semaphore>,
    /// Places for bodies waiting for [`Shared::body_budget`].
    body_waiters: Semaphore,
    warnings: RateLimit,
}

// === impl Server ===

impl Server {
    /// Binds the listeners (so that port 0 resolves before [`Server::serve`]).
    pub async fn bind(
        options: ServerOptions,
        identity: &TlsIdentity,
        mut dispatcher: Dispatcher,
    ) -> Result<Self, RpcError> {
        dispatcher.set_max_multicall(options.limits.max_multicall);
        let tcp = match options.tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| RpcError::config(format!("cannot listen on {addr}: {e}")))?,
            ),
            None => None,
        };
        let unix = match options.unix {
            Some(path) => Some((bind_unix(&path).await?, path)),
            None => None,
        };
        if tcp.is_none() && unix.is_none() {
            return Err(RpcError::config(
                "no listen address (tcp or unix) configured",
            ));
        }
        let acceptor = TlsAcceptor::from(server_config(identity)?);
        let shared = Arc::new(Shared {
            dispatcher,
            admission: Arc::new(Admission::new(
                options.limits.max_connections,
                options.limits.max_connections_per_peer,
            )),
            // Never below one body, or a full-size body could wait forever.
            body_budget: Arc::new(Semaphore::new(
                options
                    .limits
                    .max_bytes_in_flight
                    .max(options.limits.max_body_bytes)
                    .min(Semaphore::MAX_PERMITS),
            )),
            body_waiters: Semaphore::new(
                options
                    .limits
                    .max_waiting_bodies
                    .min(Semaphore::MAX_PERMITS),
            ),
            limits: options.limits,
            warnings: RateLimit::new(Duration::from_secs(1)),
        });
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            tcp,
            unix,
            shared,
            acceptor,
            shutdown,
        })
    }

    /// The bound TCP address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Serves until [`ShutdownHandle::shutdown`], then stops accepting, lets in-flight calls
    /// finish (up to `drain_timeout`) and returns.
    pub async fn serve(self) -> Result<(), RpcError> {
        let Self {
            tcp,
            unix,
            shared,
            acceptor,
            shutdown,
        } = self;
        let router = Router::new()
            .route("/", post(rpc))
            .route("/RPC2", post(rpc))
            .with_state(Arc::clone(&shared));
        let mut loops = tokio::task::JoinSet::new();
        if let Some(listener) = tcp {
            let (shared, acceptor, router, rx) = (
                Arc::clone(&shared),
                acceptor.clone(),
                router.clone(),
                shutdown.subscribe(),
            );
            loops.spawn(accept_loop(Tcp(listener), shared, acceptor, router, rx));
        }
        let unix_path = unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = unix {
            let (shared, acceptor, router, rx) = (
                Arc::clone(&shared),
                acceptor.clone(),
                router.clone(),
                shutdown.subscribe(),
            );
            loops.spawn(accept_loop(Unix(listener), shared, acceptor, router, rx));
        }
        while loops.join_next().await.is_some() {}
        if let Some(path) = unix_path {
            let _ = std::fs::remove_file(path);
        }
        match tokio::time::timeout(shared.limits.drain_timeout, shared.admission.drained()).await {
            Ok(_) => tracing::info!("All connections closed"),
            Err(_) => tracing::warn!("Shutdown: connections still open after the drain timeout"),
        }
        Ok(())
    }
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        // send_replace stores the value even before serve() has subscribed; send would drop it.
        self.0.send_replace(true);
    }
}

/// Resolves on SIGTERM or SIGINT, for binaries to pass to a [`ShutdownHandle`].
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers there is nothing to wait for but the end of the process.
        _ => std::future::pending::<()>().await,
    }
}

async fn bind_unix(path: &Path) -> Result<UnixListener, RpcError> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(RpcError::config(format!(
                "{} is in use by another server",
                path.display()
            )));
        }
        // A socket left by a process that died; ours to replace.
        std::fs::remove_file(path).map_err(|e| {
            RpcError::config(format!(
                "cannot remove stale socket {}: {e}",
                path.display()
            ))
        })?;
    }
    UnixListener::bind(path)
        .map_err(|e| RpcError::config(format!("cannot listen on {}: {e}", path.display())))
}

// === accepting ===

/// A connection's stream: bytes both ways, and a wait for the first bytes that reads none.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl Stream for tokio::net::TcpStream {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        Self::readable(self)
    }
}

impl Stream for tokio::net::UnixStream {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        Self::readable(self)
    }
}

/// The two listener kinds behind one accept loop.
trait Listener: Send + 'static {
    type Io: Stream;
    fn accept(
        &self,
    ) -> impl Future<Output = std::io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

struct Tcp(TcpListener);
struct Unix(UnixListener);

impl Listener for Tcp {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (s, addr) = self.0.accept().await?;
        let _ = s.set_nodelay(true);
        Ok((s, Some(addr)))
    }
}

impl Listener for Unix {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (s, _) = self.0.accept().await?;
        Ok((s, None))
    }
}

async fn accept_loop<L: Listener>(
    listener: L,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stopped(&mut shutdown) => return,
        };
        let (io, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                if let Some(n) = shared.warnings.allow() {
                    tracing::warn!(error = %e, suppressed = n, "Accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match shared.admission.admit(remote.map(|a| a.ip())) {
            Ok(slot) => Arc::new(slot),
            Err(refusal) => {
                if let Some(n) = shared.warnings.allow() {
                    let (limit, why) = match refusal {
                        Refusal::PeerFull => (
                            shared.limits.max_connections_per_peer,
                            "Connection refused: too many from this address",
                        ),
                        Refusal::PoolFull => (
                            shared.limits.max_connections,
                            "Connection refused: every connection has sent a request",
                        ),
                    };
                    tracing::warn!(peer.addr = ?remote, limit, suppressed = n, "{why}");
                }
                drop(io);
                continue;
            }
        };
        let span = tracing::info_span!("conn", peer.addr = ?remote, peer.subject = field::Empty);
        let task = connection(
            io,
            remote,
            Arc::clone(&shared),
            acceptor.clone(),
            router.clone(),
            shutdown.clone(),
            Arc::clone(&slot),
        );
        tokio::spawn(
            async move {
                tokio::select! {
                    () = task => {}
                    () = slot.evicted() => {
                        tracing::debug!("Connection evicted: the pool is full and it had sent no request");
                    }
                }
                // The slot (and its place in the pool) goes when the last reference does.
                drop(slot);
            }
            .instrument(span),
        );
    }
}

async fn connection<I: Stream>(
    io: I,
    remote: Option<SocketAddr>,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    slot: Arc<Slot>,
) {
    let limits = &shared.limits;
    // Under a flood, an unfinished connection gets less time to finish.
    let (handshake_timeout, header_timeout) = if slot.under_pressure {
        (
            limits.pressure_timeout.min(limits.handshake_timeout),
            limits.pressure_timeout.min(limits.header_timeout),
        )
    } else {
        (limits.handshake_timeout, limits.header_timeout)
    };
    let deadline = tokio::time::Instant::now() + handshake_timeout;
    // No TLS state until the peer sends something: a connection that sends nothing costs its
    // task and socket, not a TLS session's buffers (960 bare connects cost a release node
    // 17.4 MB with a session each from the start, 13.1 MB with neither that nor the unboxed
    // stages below).
    let first_bytes = tokio::time::timeout_at(deadline, io.readable());
    tokio::select! {
        r = first_bytes => if !matches!(r, Ok(Ok(()))) {
            if let Some(n) = shared.warnings.allow() {
                tracing::warn!(suppressed = n, "TLS handshake timed out");
            }
            return;
        },
        () = stopped(&mut shutdown) => return,
    }
    let io = Guarded::new(
        io,
        limits.write_timeout,
        limits.idle_timeout,
        slot.in_flight(),
    );
    // Each stage's state is boxed when the stage begins, so that a connection holds only what
    // its stage needs (the task itself stays small) and the handshake's goes when it is done.
    let handshake = tokio::time::timeout_at(deadline, Box::pin(acceptor.accept(io)));
    // A peer that never finishes its handshake must not hold up shutdown.
    let handshake = tokio::select! {
        r = handshake => r,
        () = stopped(&mut shutdown) => return,
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            if let Some(n) = shared.warnings.allow() {
                tracing::warn!(error = %e, suppressed = n, "TLS handshake failed");
            }
            return;
        }
        Err(_) => {
            if let Some(n) = shared.warnings.allow() {
                tracing::warn!(suppressed = n, "TLS handshake timed out");
            }
            return;
        }
    };
    // rustls lists the peer's certificates leaf first; the leaf is the one whose key the
    // handshake proved.
    let peer = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        Some(leaf) => PeerIdentity::from_der(leaf.as_ref()),
        None => Err(RpcError::Internal(
            "no client certificate after a mandatory-auth handshake".into(),
        )),
    };
    let peer = match peer {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(error = %e, "Unusable peer certificate");
            return;
        }
    };
    tracing::Span::current().record("peer.subject", peer.subject());
    tracing::debug!("Connection accepted");
    // Each request gets its own work budget (see `rpc`); this one, spent from the start, is
    // never used.
    let ctx = CallContext {
        peer,
        remote,
        work: Arc::new(WorkBudget::new(0)),
    };
    let service = TowerToHyperService::new(router.layer(Extension(ctx)));
    // A request has come in: the connection is no longer evictable, and while the handler
    // runs the idle timeout is off.
    let service = hyper::service::service_fn(move |req| {
        slot.activate();
        let busy = slot.busy();
        let call = hyper::service::Service::call(&service, req);
        async move {
            let response = call.await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's read buffer otherwise grows to ~400 KiB per connection (400 MiB for a full
        // pool of peers streaming bodies); bodies are read through it a buffer at a time. 8 KiB
        // is hyper's least: XML-RPC request headers are a few hundred bytes.
        .max_buf_size(8 * 1024)
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(tls), service));
    tokio::select! {
        r = conn.as_mut() => log_connection_end(r),
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            log_connection_end(conn.await);
        }
    }
}

/// Resolves once shutdown is asked for (or the server is gone), holding no watch guard across
/// the caller's awaits.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn log_connection_end(r: Result<(), hyper::Error>) {
    match r {
        Ok(()) => tracing::debug!("Connection closed"),
        Err(e) if e.is_timeout() => {
            tracing::debug!("Connection closed: headers not received in time")
        }
        Err(e) => tracing::debug!(error = %e, "Connection closed"),
    }
}

// === one request ===

async fn rpc(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<CallContext>,
    req: Request,
) -> Response {
    let limits = &shared.limits;
    let ctx = CallContext {
        work: Arc::new(WorkBudget::new(limits.max_verification_work)),
        ..ctx
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(limits.max_body_bytes);
    }
    // Held until the answer is built: the body and what is decoded from it stay in memory.
    // A body of unknown length (chunked) may be as long as the limit.
    let reserve = declared.map_or(limits.max_body_bytes, |n| {
        usize::try_from(n).unwrap_or(limits.max_body_bytes)
    });
    let read = read_body(req.into_body(), reserve, limits, &shared).await;
    let (bytes, mut budget) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let started = Instant::now();
    let xml_limits = geni_xmlrpc::Limits {
        max_depth: limits.max_xml_depth,
        max_bytes: limits.max_body_bytes,
        max_values: limits.max_xml_values,
    };
    let call = match std::str::from_utf8(&bytes) {
        Err(e) => {
            let position = e.valid_up_to() as u64;
            let err = geni_xmlrpc::XmlRpcError::Malformed {
                message: "request body is not UTF-8".into(),
                position,
            };
            return fault_response(&RpcError::Parse(err), "?");
        }
        Ok(text) => match geni_xmlrpc::parse_method_call(text, &xml_limits) {
            Err(e) => return fault_response(&RpcError::Parse(e), "?"),
            Ok(call) => call,
        },
    };
    // The body gives way to what it decoded to, which the budget holds until the answer:
    // dense markup decodes to several times its size (bounded by max_xml_values).
    drop(bytes);
    if !charge(&mut budget, call.footprint(), &shared.body_budget) {
        return busy();
    }
    // Peer bytes of any length: the log gets them escaped and clipped.
    let method = crate::clean(&call.method, crate::MAX_FAULT_CHARS);
    let outcome = shared.dispatcher.dispatch(ctx, call).await;
    match &outcome {
        geni_xmlrpc::MethodResponse::Success(_) => {
            tracing::info!(method = %method, outcome = "ok", elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), "Call")
        }
        geni_xmlrpc::MethodResponse::Fault(f) => {
            tracing::info!(method = %method, outcome = "fault", fault.code = f.code, fault.message = %f.string, "Call")
        }
    }
    encode(&outcome)
}

/// Makes `held` exactly `bytes` of the budget: gives back what a body held beyond what it decoded
/// to, or takes the difference without waiting (a request already holding memory must not wait
/// for more: two such could wait on each other). False when the budget has no room.
fn charge(held: &mut OwnedSemaphorePermit, bytes: usize, budget: &Arc<Semaphore>) -> bool {
    let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
    let have = u32::try_from(held.num_permits()).unwrap_or(u32::MAX);
    if bytes <= have {
        // Dropping the split part returns it to the budget.
        drop(held.split((have - bytes) as usize));
        return true;
    }
    match Arc::clone(budget).try_acquire_many_owned(bytes - have) {
        Ok(more) => {
            held.merge(more);
            true
        }
        Err(_) => false,
    }
}

/// 503, closing the connection: the unread rest of a body is not worth reading.
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1"), (header::CONNECTION, "close")],
        "server busy: its memory for requests is in use; retry\n",
    )
        .into_response()
}

fn fault_response(err: &RpcError, method: &str) -> Response {
    let fault = crate::fault_of(err);
    tracing::info!(method, outcome = "fault", fault.code = fault.code, fault.message = %fault.string, "Call");
    encode(&geni_xmlrpc::MethodResponse::Fault(fault))
}

fn encode(outcome: &geni_xmlrpc::MethodResponse) -> Response {
    match geni_xmlrpc::write_method_response(outcome) {
        Ok(xml) => ([(header::CONTENT_TYPE, "text/xml")], xml).into_response(),
        Err(e) => {
            // A handler returned something XML-RPC cannot carry (NaN, a control character).
            tracing::error!(error = %e, "Response not encodable");
            let fault = geni_xmlrpc::MethodResponse::Fault(crate::fault_of(&RpcError::Internal(
                e.to_string(),
            )));
            match geni_xmlrpc::write_method_response(&fault) {
                Ok(xml) => ([(header::CONTENT_TYPE, "text/xml")], xml).into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    }
}

/// Reads a request body within the size limit, the body timeout and the server's budget of
/// bytes in flight. The body's whole length (`reserve`: declared, or the limit when unknown) is
/// taken from the budget before a byte is read: taking it as bytes arrive let a flood of bodies
/// each hold a part of the budget and none finish. When the budget is in use the body waits, if
/// there is a waiting place, and at its deadline is answered 503; with none, 503 at once.
async fn read_body(
    mut body: axum::body::Body,
    reserve: usize,
    limits: &Limits,
    shared: &Shared,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), Response> {
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    let n = u32::try_from(reserve.min(limits.max_body_bytes)).unwrap_or(u32::MAX);
    let budget = &shared.body_budget;
    let held = match Arc::clone(budget).try_acquire_many_owned(n) {
        Ok(p) => p,
        Err(_) => {
            let Ok(_place) = shared.body_waiters.try_acquire() else {
                return Err(busy());
            };
            let wait = Arc::clone(budget).acquire_many_owned(n);
            match tokio::time::timeout_at(deadline, wait).await {
                Ok(Ok(p)) => p,
                _ => return Err(busy()),
            }
        }
    };
    let mut bytes = Vec::with_capacity(reserve.min(limits.max_body_bytes));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => return Ok((bytes, held)),
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(_))) => {
                return Err(
                    (StatusCode::BAD_REQUEST, "request body could not be read\n").into_response(),
                );
            }
            Err(_) => {
                return Err((
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "request body not received within {:?}\n",
                        limits.body_timeout
                    ),
                )
                    .into_response());
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        // Never more than was reserved (hyper holds a declared length to its word).
        if bytes.len() + data.len() > limits.max_body_bytes.min(reserve.max(1)) {
            return Err(too_large(limits.max_body_bytes));
        }
        bytes.extend_from_slice(&data);
    }
}

fn too_large(limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over the limit of {limit} bytes\n"),
    )
        .into_response()
}
