//! A PLCAPI test double: PlanetLab Central's XML-RPC API (PLCAPI 4.2, the 2008 wrapper's era)
//! served over real HTTPS on loopback from an in-memory PLC.
//!
//! It follows PLCAPI where a client can tell: method names and argument order (the auth struct
//! first), password and session authentication with PLCAPI's fault codes and texts, `Get*`
//! filters and return fields, the struct shapes of every row (`reference/nodemanager.md` §6,
//! `reference/geniwrapper-2008.md` §4.2), `Invalid argument: No such …` for unknown ids, and
//! `system.listMethods` / `system.multicall`. It serves `POST /PLCAPI/` with a certificate from
//! its own CA ([`PlcDouble::ca_pem`]), so a client verifies it as it would a real PLC.
//!
//! For tests it counts requests and calls ([`Stats`]), lets a test change the data behind it
//! ([`PlcDouble::with_plc`], [`Plc::override_field`] for answers of the wrong shape), and can
//! stop listening and listen again on the same port ([`PlcDouble::stop`],
//! [`PlcDouble::restart`]) to stand for a PLC that went away. [`Plc::generate`] builds a PLC of
//! any [`Scale`] deterministically.
//!
//! A crate rather than a module under `agent/tests`: `geni-agent` is a binary crate, so the
//! backend's unit tests inside it, its integration tests, its benchmark and the end-to-end tests
//! can share one double only as a library (and the `plcapi-double` binary serves it by hand).

mod api;
mod generate;
mod plc;
mod tls;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use geni_xmlrpc::{Limits, MethodResponse, parse_method_call, write_method_response};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

pub use generate::{ADMIN_EMAIL, ADMIN_PASSWORD, GENERATED_AT, Scale, synthetic_rsa_key};
pub use plc::{
    ATTRIBUTE_TYPES, INSTANTIATIONS, InitScript, Key, Node, Person, Plc, ROLES, Site, Slice,
    SliceAttribute, Table,
};

/// The path PLCAPI is served at.
pub const PATH: &str = "/PLCAPI/";

/// Largest request read; `system.multicall` batches of `Add*` calls stay far below it.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// What the double has served since it started (or since [`PlcDouble::reset_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: usize,
    /// HTTP requests answered (a `system.multicall` is one).
    pub requests: usize,
    /// `system.multicall` requests.
    pub multicalls: usize,
    /// Calls per method, those inside a multicall included.
    pub calls: BTreeMap<String, usize>,
}

impl Stats {
    /// How many times `method` was called.
    pub fn calls_of(&self, method: &str) -> usize {
        self.calls.get(method).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct Shared {
    plc: Mutex<Plc>,
    stats: Mutex<Stats>,
}

/// A running double. Dropping it stops it.
#[derive(Debug)]
pub struct PlcDouble {
    shared: Arc<Shared>,
    pki: tls::Pki,
    addr: SocketAddr,
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl PlcDouble {
    /// Serves `plc` on a free loopback port.
    pub async fn start(plc: Plc) -> io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), plc).await
    }

    /// Serves `plc` on `addr`.
    pub async fn start_on(addr: SocketAddr, plc: Plc) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let mut double = Self {
            shared: Arc::new(Shared {
                plc: Mutex::new(plc),
                stats: Mutex::new(Stats::default()),
            }),
            pki: tls::Pki::new()?,
            addr: listener.local_addr()?,
            running: None,
        };
        double.serve(listener);
        Ok(double)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        let acceptor = TlsAcceptor::from(Arc::clone(&self.pki.config));
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            Arc::clone(&self.shared),
            stopped,
        ));
        self.running = Some((stop, task));
    }

    /// `https://localhost:<port>/PLCAPI/`: the name the certificate carries.
    pub fn url(&self) -> String {
        format!("https://localhost:{}{PATH}", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA that signed the double's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// Writes [`PlcDouble::ca_pem`] to `path`.
    pub fn write_ca(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.pki.ca_pem)
    }

    /// Runs `f` on the PLC behind the double, between calls.
    pub fn with_plc<R>(&self, f: impl FnOnce(&mut Plc) -> R) -> R {
        f(&mut lock(&self.shared.plc))
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = Stats::default();
    }

    /// Stops listening and closes every connection: clients now get "connection refused".
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Listens again on the same address, with the same PLC and certificate.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }
}

impl Drop for PlcDouble {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts until told to stop; stopping drops every connection task with the join set.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                lock(&shared.stats).connections += 1;
                connections.spawn(connection(tcp, acceptor.clone(), Arc::clone(&shared)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != PATH {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let body = match Limited::new(request.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return plain(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    let limits = Limits {
        max_depth: 64,
        max_bytes: MAX_REQUEST_BYTES,
        ..Limits::default()
    };
    let answer = match parse_method_call(text, &limits) {
        Ok(call) => {
            let mut plc = lock(&shared.plc);
            let mut stats = lock(&shared.stats);
            stats.requests += 1;
            api::respond(&mut plc, &mut stats, &call)
        }
        // xmlrpclib's servers answer unparseable calls with a fault, not an HTTP error.
        Err(e) => MethodResponse::Fault(geni_xmlrpc::Fault {
            code: 1,
            string: format!("<class 'xml.parsers.expat.ExpatError'>:{e}"),
        }),
    };
    match write_method_response(&answer) {
        Ok(xml) => {
            let mut response = Response::new(Full::new(Bytes::from(xml)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/xml"),
            );
            response
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}
