//! Integration tests of the HTTPS XML-RPC server as a peer sees it: client certificates (X.509 v3
//! and v1, over TLS 1.2 and 1.3) bound to the caller with proof of key possession, refusal of
//! impostors and of certificate-less clients, the caller-GID check, the `system.*` methods and
//! multicall, the HTTP shape 2008's `httplib` clients send, every request limit (body size,
//! chunked bodies, XML depth, DOCTYPE/entities, slow headers, slow bodies, connection count,
//! silent handshakes), malformed bodies, a panicking handler, graceful shutdown (including a
//! shutdown asked for before `serve()` runs, and peers stuck before their handshake), the Unix
//! socket listener, and interop with Python 3's `xmlrpc.client` presenting both a modern
//! certificate and a 2008-shaped v1/md5/RSA-1024 one. Clients are written here on raw rustls and
//! raw HTTP bytes, so that nothing in `geni-rpc`'s own client code can hide a server bug; every
//! wait is bounded so that a bug fails a test instead of hanging CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use geni_rpc::{
    CallContext, Dispatcher, Limits, RpcError, Server, ServerOptions, ShutdownHandle, TlsIdentity,
};
use geni_trust::{CertMode, ChainForm, Gid, Hierarchy, Hrn, Keypair};
use geni_xmlrpc::{Fault, MethodCall, MethodResponse, Struct, Value};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WantsClientCert};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ConfigBuilder, DigitallySignedStruct, ProtocolVersion, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Upper bound on any one exchange: far above what a local call takes, far below a CI timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The short limits the limit tests set, and the least a timed-out peer must have waited.
const SHORT: Duration = Duration::from_millis(300);
const SHORT_FLOOR: Duration = Duration::from_millis(250);
const SMALL_BODY: usize = 64 * 1024;

// === certificates ===

/// A GID and the private key that goes with it.
#[derive(Debug)]
struct Identity {
    gid: Gid,
    key_pem: Vec<u8>,
}

/// Every identity the tests use, made once: RSA key generation is the slow part of this file.
#[derive(Debug)]
struct Pki {
    /// The server's identity: a modern authority (v3, sha256, RSA-2048) with its parent chain.
    server: Identity,
    /// A 2008-shaped authority (v1, md5, RSA-1024, self-signed) as the server for 2008 peers.
    server_2008: Identity,
    /// A modern user GID (v3, sha256, RSA-2048).
    alice: Identity,
    /// Another modern user: the "other GID" and the "other key".
    bob: Identity,
    /// An X.509 v1, md5-signed GID with a 2048-bit key, which ring can sign handshakes with.
    carol_v1: Identity,
    /// A GID exactly as 2008 users had: v1, md5, RSA-1024 (only Python/OpenSSL can use it).
    dave_2008: Identity,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        // Everything is loaded into memory, so the directory can go at once (a static is never
        // dropped, and a TempDir inside it would stay on disk).
        let dir = tempfile::tempdir().unwrap();
        let modern = Hierarchy::new(dir.path().join("modern"));
        let site = modern.create_authority(&hrn("plc.site"), true).unwrap();
        let compat = Hierarchy::new(dir.path().join("compat")).with_mode(CertMode::Compat2008);
        let gw = compat.create_authority(&hrn("gw"), false).unwrap();
        let user = |h: &Hierarchy, name: &str, bits: u32| {
            let key = Keypair::generate(bits).unwrap();
            let gid = h.create_gid(&hrn(name), None, &key.public_key()).unwrap();
            Identity {
                gid,
                key_pem: key.to_pem().unwrap(),
            }
        };
        Pki {
            server: Identity {
                gid: site.gid,
                key_pem: site.key.to_pem().unwrap(),
            },
            server_2008: Identity {
                gid: gw.gid,
                key_pem: gw.key.to_pem().unwrap(),
            },
            alice: user(&modern, "plc.site.alice", 2048),
            bob: user(&modern, "plc.site.bob", 2048),
            carol_v1: user(&compat, "gw.carol", 2048),
            dave_2008: user(&compat, "gw.dave", 1024),
        }
    })
}

fn hrn(s: &str) -> Hrn {
    Hrn::parse(s).unwrap()
}

impl Identity {
    fn hrn(&self) -> &str {
        self.gid.hrn().as_str()
    }

    /// DER certificates, leaf first, as a TLS client presents them.
    fn chain_der(&self) -> Vec<CertificateDer<'static>> {
        let mut chain = Vec::new();
        let mut next = Some(&self.gid);
        while let Some(gid) = next {
            chain.push(CertificateDer::from(gid.certificate().der().to_vec()));
            next = gid.parent();
        }
        chain
    }

    /// The GID file's text (2008 separator form), which is also what `caller_check` takes.
    fn chain_pem(&self) -> String {
        self.gid.to_chain_string(ChainForm::Separator).unwrap()
    }

    fn spki_sha1(&self) -> String {
        hex(&openssl::sha::sha1(self.gid.public_key().spki_der()))
    }

    fn tls_identity(&self) -> TlsIdentity {
        TlsIdentity::from_pem(&self.key_pem, &self.chain_pem()).unwrap()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// === the server under test ===

#[derive(Debug)]
struct TestServer {
    addr: Option<SocketAddr>,
    shutdown: ShutdownHandle,
    serving: JoinHandle<Result<(), RpcError>>,
    /// Told when a `slow` call has reached its handler, so a test knows it is in flight.
    slow_started: Arc<Notify>,
}

impl TestServer {
    fn addr(&self) -> SocketAddr {
        self.addr.expect("the server listens on TCP")
    }
}

async fn start(limits: Limits) -> TestServer {
    start_with(limits, true, None, &pki().server).await
}

async fn start_with(
    limits: Limits,
    tcp: bool,
    unix: Option<PathBuf>,
    identity: &Identity,
) -> TestServer {
    let slow_started = Arc::new(Notify::new());
    let options = ServerOptions {
        tcp: tcp.then(|| "127.0.0.1:0".parse().unwrap()),
        unix,
        limits,
    };
    let server = Server::bind(options, &identity.tls_identity(), dispatcher(&slow_started))
        .await
        .unwrap();
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve());
    TestServer {
        addr,
        shutdown,
        serving,
        slow_started,
    }
}

/// Calls of the `count` method, across the tests of this binary.
static COUNTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn dispatcher(slow_started: &Arc<Notify>) -> Dispatcher {
    let mut d = Dispatcher::new();
    d.register(
        "echo",
        "echo(...): its parameters, as an array.",
        |_ctx: CallContext, params: Vec<Value>| async move { Ok(Value::Array(params)) },
    );
    d.register(
        "whoami",
        "whoami(): the TLS peer's subject CN and SPKI SHA-1.",
        |ctx: CallContext, _params: Vec<Value>| async move {
            let remote = ctx
                .remote
                .map_or(Value::Nil, |a| Value::String(a.to_string()));
            let s = Struct::new()
                .with("subject", ctx.peer.subject())
                .with("spki_sha1", hex(&openssl::sha::sha1(ctx.peer.spki())))
                .with("remote", remote);
            Ok(Value::Struct(s))
        },
    );
    let started = Arc::clone(slow_started);
    d.register(
        "slow",
        "slow(ms): answers after ms milliseconds.",
        move |_ctx: CallContext, params: Vec<Value>| {
            let started = Arc::clone(&started);
            async move {
                let ms = params
                    .first()
                    .and_then(Value::as_i64)
                    .and_then(|ms| u64::try_from(ms).ok())
                    .ok_or_else(|| RpcError::invalid_params("slow", "takes milliseconds"))?;
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Value::Int(i64::try_from(ms).unwrap()))
            }
        },
    );
    d.register(
        "unencodable",
        "unencodable(): a handler bug, a string XML cannot carry.",
        |_ctx: CallContext, _p: Vec<Value>| async { Ok(Value::String("bell\u{7}".into())) },
    );
    d.register(
        "count",
        "count(): counts its calls.",
        |_ctx: CallContext, _p: Vec<Value>| async {
            COUNTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Value::Nil)
        },
    );
    d.register(
        "fail",
        "fail(): always 'x not found'.",
        |_ctx: CallContext, _p: Vec<Value>| async { Err(RpcError::NotFound("x".into())) },
    );
    d.register(
        "panic",
        "panic(): a handler bug.",
        |_ctx: CallContext, _p: Vec<Value>| async {
            // The `Ok` after it only gives the block its type.
            if true {
                panic!("a handler bug, on purpose");
            }
            Ok(Value::Nil)
        },
    );
    d.register(
        "caller_check",
        "caller_check(gid): true when the TLS peer holds the GID's key.",
        |ctx: CallContext, params: Vec<Value>| async move {
            let [Value::String(pem)] = params.as_slice() else {
                return Err(RpcError::invalid_params(
                    "caller_check",
                    "takes one GID string",
                ));
            };
            let gid = Gid::parse(pem)?;
            ctx.peer.require_caller(&gid)?;
            Ok(Value::Bool(true))
        },
    );
    d
}

/// A good call still works: the server survived whatever the test just did to it.
async fn assert_serving(server: &TestServer) {
    let me = &pki().alice;
    let who = call_ok(
        server.addr(),
        &Client::presenting(me, Tls::V13),
        "whoami",
        vec![],
    )
    .await;
    assert_eq!(member(&who, "subject").as_str(), Some(me.hrn()));
}

// === a raw TLS client ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    V12,
    V13,
}

/// A rustls client config: which TLS version, and which certificate and key, if any, it presents.
#[derive(Debug, Clone)]
struct Client {
    config: Arc<ClientConfig>,
}

impl Client {
    /// Presents `id`'s certificate chain and proves it holds `id`'s key.
    fn presenting(id: &Identity, version: Tls) -> Self {
        Self::impostor(id, id, version)
    }

    /// Presents `cert_of`'s certificate chain but signs the handshake with `key_of`'s key.
    /// `with_client_auth_cert` would refuse the pair, so a resolver hands rustls the mismatch.
    fn impostor(cert_of: &Identity, key_of: &Identity, version: Tls) -> Self {
        let pkey = openssl::pkey::PKey::private_key_from_pem(&key_of.key_pem).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            pkey.private_key_to_pkcs8().unwrap(),
        ));
        // ring signs with RSA keys of 2048 bits and more only; 1024-bit peers are Python's job.
        let key = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        let certified = Arc::new(CertifiedKey::new(cert_of.chain_der(), key));
        let config = builder(version).with_client_cert_resolver(Arc::new(Present(certified)));
        Self {
            config: Arc::new(config),
        }
    }

    /// Presents the certificate `der` and signs the handshake with `key_of`'s key: for
    /// certificates whose key no one holds.
    fn presenting_der(der: Vec<u8>, key_of: &Identity, version: Tls) -> Self {
        let pkey = openssl::pkey::PKey::private_key_from_pem(&key_of.key_pem).unwrap();
        let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            pkey.private_key_to_pkcs8().unwrap(),
        ));
        let key = rustls::crypto::ring::sign::any_supported_type(&der_key).unwrap();
        let certified = Arc::new(CertifiedKey::new(vec![CertificateDer::from(der)], key));
        let config = builder(version).with_client_cert_resolver(Arc::new(Present(certified)));
        Self {
            config: Arc::new(config),
        }
    }

    /// Presents no certificate at all.
    fn anonymous(version: Tls) -> Self {
        Self {
            config: Arc::new(builder(version).with_no_client_auth()),
        }
    }

    async fn connect<S>(&self, io: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from("localhost").unwrap();
        TlsConnector::from(Arc::clone(&self.config))
            .connect(name, io)
            .await
    }
}

fn builder(version: Tls) -> ConfigBuilder<ClientConfig, WantsClientCert> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        Tls::V12 => &[&rustls::version::TLS12],
        Tls::V13 => &[&rustls::version::TLS13],
    };
    ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
}

/// Accepts any server: the server's certificate is the test's own, and what is under test is the
/// server's treatment of clients.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Always the same (possibly mismatched) certificate and key.
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

// === raw HTTP ===

#[derive(Debug)]
struct HttpResponse {
    /// `HTTP/1.0` or `HTTP/1.1`.
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// What the TLS handshake negotiated.
    tls: Option<ProtocolVersion>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn xmlrpc(&self) -> MethodResponse {
        assert_eq!(
            self.status,
            200,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        geni_xmlrpc::parse_method_response(self.text(), &geni_xmlrpc::Limits::default()).unwrap()
    }
}

/// A request as 2008's Python 2 `httplib`/`xmlrpclib` sent it: HTTP/1.0, no Host header,
/// `Accept-Encoding: gzip`.
fn post_2008(path: &str, body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut request = format!(
        "POST {path} HTTP/1.0\r\nUser-Agent: xmlrpclib.py/1.0.1 (by www.pythonware.com)\r\n\
         Content-Type: text/xml\r\nContent-Length: {}\r\nAccept-Encoding: gzip\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// An HTTP/1.1 request that leaves the connection open.
fn post_keep_alive(body: &str) -> Vec<u8> {
    format!(
        "POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn call_body(method: &str, params: Vec<Value>) -> String {
    geni_xmlrpc::write_method_call(&MethodCall {
        method: method.to_owned(),
        params,
    })
    .unwrap()
}

/// The response in `buf`, when it is complete (`eof`: the peer closed after it).
fn parse_response(buf: &[u8], eof: bool) -> Option<HttpResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    let version = status_line.next()?.to_owned();
    let status = status_line.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = &buf[end + 4..];
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let complete = match length {
        Some(n) => body.len() >= n,
        None => eof,
    };
    complete.then(|| HttpResponse {
        version,
        status,
        body: body[..length.unwrap_or(body.len())].to_vec(),
        headers,
        tls: None,
    })
}

/// Reads one response: up to its Content-Length, or to the end of the connection.
async fn read_response<S: AsyncRead + Unpin>(io: &mut S) -> Result<HttpResponse, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match io.read(&mut chunk).await {
            Ok(0) if buf.is_empty() => return Err("closed without a response".into()),
            Ok(0) => {
                return parse_response(&buf, true).ok_or_else(|| {
                    format!("closed mid-response: {:?}", String::from_utf8_lossy(&buf))
                });
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(r) = parse_response(&buf, false) {
                    return Ok(r);
                }
            }
            // A peer that closes without close_notify after a close-delimited response.
            Err(e) => return parse_response(&buf, true).ok_or_else(|| format!("read: {e}")),
        }
    }
}

/// A TLS connection to `addr`, for tests that hold one open or write to it by hand.
async fn open(addr: SocketAddr, client: &Client) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    timeout(IO_TIMEOUT, client.connect(tcp))
        .await
        .expect("handshake timed out")
        .unwrap()
}

/// Sends `request` on `tls` and reads the answer.
async fn round_trip<S>(tls: &mut TlsStream<S>, request: &[u8]) -> Result<HttpResponse, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tls.write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut response = read_response(tls).await?;
    response.tls = tls.get_ref().1.protocol_version();
    Ok(response)
}

/// One request on a new connection over `io`; `Err` names the step that failed.
async fn exchange_over<S>(io: S, client: &Client, request: &[u8]) -> Result<HttpResponse, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let work = async {
        let mut tls = client
            .connect(io)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        round_trip(&mut tls, request).await
    };
    timeout(IO_TIMEOUT, work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

async fn exchange(
    addr: SocketAddr,
    client: &Client,
    request: &[u8],
) -> Result<HttpResponse, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    exchange_over(tcp, client, request).await
}

async fn call(
    addr: SocketAddr,
    client: &Client,
    method: &str,
    params: Vec<Value>,
) -> MethodResponse {
    let response = exchange(addr, client, &post_2008("/", call_body(method, params))).await;
    response
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .xmlrpc()
}

async fn call_ok(addr: SocketAddr, client: &Client, method: &str, params: Vec<Value>) -> Value {
    match call(addr, client, method, params).await {
        MethodResponse::Success(v) => v,
        MethodResponse::Fault(f) => panic!("{method}: fault {f:?}"),
    }
}

async fn call_fault(addr: SocketAddr, client: &Client, method: &str, params: Vec<Value>) -> Fault {
    match call(addr, client, method, params).await {
        MethodResponse::Fault(f) => f,
        MethodResponse::Success(v) => panic!("{method}: expected a fault, got {v:?}"),
    }
}

/// A raw request's fault (the limit tests send documents `write_method_call` cannot make).
async fn raw_fault(server: &TestServer, body: impl AsRef<[u8]>) -> Fault {
    let client = Client::presenting(&pki().alice, Tls::V13);
    match exchange(server.addr(), &client, &post_2008("/", body))
        .await
        .unwrap()
        .xmlrpc()
    {
        MethodResponse::Fault(f) => f,
        MethodResponse::Success(v) => panic!("expected a fault, got {v:?}"),
    }
}

fn member<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_struct()
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("no member {name} in {v:?}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// Waits for the peer to end the connection; how long that took, or `None` if it did not
/// within `limit`. Whatever it sent before closing is returned too.
async fn time_to_close<S: AsyncRead + Unpin>(
    io: &mut S,
    limit: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let mut received = Vec::new();
    let read_all = async {
        let mut chunk = [0u8; 4096];
        loop {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    timeout(limit, read_all).await.ok()?;
    Some((started.elapsed(), received))
}

// === 1. client certificates ===

#[tokio::test]
async fn v3_and_v1_client_certificates_over_tls13_and_tls12() {
    let server = start(Limits::default()).await;
    let pki = pki();
    // The fixtures are what they claim to be.
    assert_eq!(pki.alice.gid.certificate().version(), 3);
    assert_eq!(pki.carol_v1.gid.certificate().version(), 1);
    assert_eq!(
        pki.carol_v1.gid.certificate().signature_algorithm(),
        "md5WithRSAEncryption"
    );
    for id in [&pki.alice, &pki.carol_v1] {
        for version in [Tls::V13, Tls::V12] {
            let client = Client::presenting(id, version);
            let request = post_2008("/", call_body("whoami", vec![]));
            let response = exchange(server.addr(), &client, &request).await.unwrap();
            let expected = match version {
                Tls::V12 => ProtocolVersion::TLSv1_2,
                Tls::V13 => ProtocolVersion::TLSv1_3,
            };
            assert_eq!(response.tls, Some(expected));
            let MethodResponse::Success(who) = response.xmlrpc() else {
                panic!("whoami faulted")
            };
            let case = format!("{} over {version:?}", id.hrn());
            assert_eq!(member(&who, "subject").as_str(), Some(id.hrn()), "{case}");
            assert_eq!(
                member(&who, "spki_sha1").as_str(),
                Some(id.spki_sha1().as_str()),
                "{case}"
            );
            assert!(
                member(&who, "remote")
                    .as_str()
                    .is_some_and(|r| r.starts_with("127.0.0.1:"))
            );
            let echoed = call_ok(server.addr(), &client, "echo", vec![Value::Int(7)]).await;
            assert_eq!(echoed, Value::Array(vec![Value::Int(7)]), "{case}");
        }
    }
}

// === 2. proof of possession ===

#[tokio::test]
async fn certificate_without_its_key_is_refused() {
    let server = start(Limits::default()).await;
    let pki = pki();
    for version in [Tls::V13, Tls::V12] {
        // Alice's certificate, Bob's key: the CertificateVerify cannot check out.
        let client = Client::impostor(&pki.alice, &pki.bob, version);
        let request = post_2008("/", call_body("whoami", vec![]));
        let outcome = exchange(server.addr(), &client, &request).await;
        // The server's alert names the failed CertificateVerify.
        let err = outcome.expect_err("an impostor got an answer");
        assert!(
            err.contains("DecryptError"),
            "impostor over {version:?}: {err}"
        );
        assert_serving(&server).await;
    }
}

// === 3. no client certificate ===

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let server = start(Limits::default()).await;
    for version in [Tls::V13, Tls::V12] {
        let request = post_2008("/", call_body("whoami", vec![]));
        let outcome = exchange(server.addr(), &Client::anonymous(version), &request).await;
        let err = outcome.expect_err("a client without a certificate got an answer");
        assert!(
            err.contains("CertificateRequired"),
            "over {version:?}: {err}"
        );
        assert_serving(&server).await;
    }
}

// === 4. caller GID bound to the TLS key ===

#[tokio::test]
async fn caller_gid_must_hold_the_tls_key() {
    let server = start(Limits::default()).await;
    let pki = pki();
    let alice = Client::presenting(&pki.alice, Tls::V13);
    let own = Value::String(pki.alice.chain_pem());
    assert_eq!(
        call_ok(server.addr(), &alice, "caller_check", vec![own]).await,
        Value::Bool(true)
    );

    let other = Value::String(pki.bob.chain_pem());
    let fault = call_fault(server.addr(), &alice, "caller_check", vec![other]).await;
    assert_eq!(fault.code, 102, "{fault:?}");
    let expected = format!("TLS client key does not match caller GID {}", pki.bob.hrn());
    assert!(fault.string.contains(&expected), "{fault:?}");

    // The same holds for a v1 certificate on TLS 1.2.
    let carol = Client::presenting(&pki.carol_v1, Tls::V12);
    let own = Value::String(pki.carol_v1.chain_pem());
    assert_eq!(
        call_ok(server.addr(), &carol, "caller_check", vec![own]).await,
        Value::Bool(true)
    );
    let other = Value::String(pki.alice.chain_pem());
    assert_eq!(
        call_fault(server.addr(), &carol, "caller_check", vec![other])
            .await
            .code,
        102
    );

    // A GID that does not parse is a "could not be read" fault, not a crash.
    let junk = vec![Value::String("not a GID".into())];
    assert_eq!(
        call_fault(server.addr(), &alice, "caller_check", junk)
            .await
            .code,
        100
    );
}

// === 5. system.* and multicall ===

#[tokio::test]
async fn system_methods_and_multicall() {
    let server = start(Limits::default()).await;
    let (addr, client) = (server.addr(), Client::presenting(&pki().alice, Tls::V13));

    let names = call_ok(addr, &client, "system.listMethods", vec![]).await;
    let names = strings(&names);
    for expected in [
        "caller_check",
        "echo",
        "fail",
        "slow",
        "whoami",
        "system.listMethods",
        "system.methodHelp",
        "system.multicall",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    let help = call_ok(addr, &client, "system.methodHelp", vec!["echo".into()]).await;
    assert_eq!(
        help.as_str(),
        Some("echo(...): its parameters, as an array.")
    );
    let help = call_ok(
        addr,
        &client,
        "system.methodHelp",
        vec!["system.multicall".into()],
    )
    .await;
    assert!(
        help.as_str().unwrap().contains("system.multicall"),
        "{help:?}"
    );
    let fault = call_fault(addr, &client, "system.methodHelp", vec!["nope".into()]).await;
    assert_eq!(fault.code, -32601, "{fault:?}");
    let fault = call_fault(addr, &client, "system.methodHelp", vec![]).await;
    assert_eq!(fault.code, -32602, "{fault:?}");

    let fault = call_fault(addr, &client, "no.such.method", vec![]).await;
    assert_eq!(fault.code, -32601, "{fault:?}");
    assert!(fault.string.contains("no.such.method"), "{fault:?}");

    let one = |name: &str, params: Vec<Value>| {
        Value::Struct(
            Struct::new()
                .with("methodName", name)
                .with("params", Value::Array(params)),
        )
    };
    let calls = Value::Array(vec![
        one("echo", vec![Value::Int(1), "two".into()]),
        one("fail", vec![]),
        one("no.such.method", vec![]),
        one(
            "system.multicall",
            vec![Value::Array(vec![one("echo", vec![])])],
        ),
    ]);
    let results = call_ok(addr, &client, "system.multicall", vec![calls]).await;
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 4, "{results:?}");
    let echoed = Value::Array(vec![Value::Int(1), "two".into()]);
    assert_eq!(results[0], Value::Array(vec![echoed]));
    for (result, code) in results[1..].iter().zip([105, -32601, -32602]) {
        assert_eq!(
            member(result, "faultCode").as_i64(),
            Some(code),
            "{result:?}"
        );
        assert!(
            member(result, "faultString")
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
    }
    assert_eq!(
        member(&results[1], "faultString").as_str(),
        Some("x not found")
    );
}

// === 6. HTTP as 2008 spoke it ===

#[tokio::test]
async fn http_shape_of_2008_clients() {
    let server = start(Limits::default()).await;
    let client = Client::presenting(&pki().alice, Tls::V12);
    let params = vec![Value::Int(1), "deux".into(), Value::Nil];
    let body = call_body("echo", params.clone());

    for path in ["/", "/RPC2"] {
        let mut tls = open(server.addr(), &client).await;
        let request = post_2008(path, &body);
        assert!(
            !String::from_utf8_lossy(&request)
                .to_ascii_lowercase()
                .contains("host:")
        );
        let response = timeout(IO_TIMEOUT, round_trip(&mut tls, &request))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert!(response.version.starts_with("HTTP/1."), "{response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("text/xml"),
            "{response:?}"
        );
        // Python 2's xmlrpclib neither asked for nor could read anything else.
        assert_eq!(response.header("content-encoding"), None, "{response:?}");
        assert_eq!(response.header("transfer-encoding"), None, "{response:?}");
        let length = response
            .header("content-length")
            .map(|l| l.parse::<usize>().unwrap());
        assert_eq!(length, Some(response.body.len()));
        assert!(response.text().starts_with("<?xml"), "{response:?}");
        assert_eq!(
            response.xmlrpc(),
            MethodResponse::Success(Value::Array(params.clone()))
        );
        // HTTP/1.0 without keep-alive: the server closes after the answer, as 2008's did.
        let closed = time_to_close(&mut tls, IO_TIMEOUT).await;
        assert!(
            closed.is_some_and(|(_, rest)| rest.is_empty()),
            "{path}: connection left open"
        );
    }

    let get = b"GET / HTTP/1.0\r\n\r\n";
    assert_eq!(
        exchange(server.addr(), &client, get).await.unwrap().status,
        405
    );
    let other = exchange(server.addr(), &client, &post_2008("/other", &body))
        .await
        .unwrap();
    assert_eq!(other.status, 404);
    assert_serving(&server).await;
}

// === 7. limits ===

/// Writes `request` while reading the answer, as a client streaming a large body would: the
/// server may answer (and stop reading) before the body is all sent.
async fn send_streaming(server: &TestServer, request: Vec<u8>) -> Result<HttpResponse, String> {
    let client = Client::presenting(&pki().alice, Tls::V13);
    let tls = open(server.addr(), &client).await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let writing = tokio::spawn(async move {
        // The server may close mid-body once it has answered; that is fine.
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let response = timeout(IO_TIMEOUT, read_response(&mut reader)).await;
    writing.abort();
    response.map_err(|_| "timed out".to_owned())?
}

#[tokio::test]
async fn body_over_the_limit_with_content_length_is_413() {
    let server = start(Limits {
        max_body_bytes: SMALL_BODY,
        ..Limits::default()
    })
    .await;
    let body = "x".repeat(2 * SMALL_BODY);
    let response = send_streaming(&server, post_2008("/", &body))
        .await
        .unwrap();
    assert_eq!(response.status, 413, "{response:?}");
    // A body just under the limit is still served.
    let padding = " ".repeat(SMALL_BODY - 1024);
    let fits = format!("{}{padding}", call_body("echo", vec![]));
    let client = Client::presenting(&pki().alice, Tls::V13);
    let response = exchange(server.addr(), &client, &post_2008("/", &fits))
        .await
        .unwrap();
    assert_eq!(
        response.xmlrpc(),
        MethodResponse::Success(Value::Array(vec![]))
    );
    assert_serving(&server).await;
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let server = start(Limits {
        max_body_bytes: SMALL_BODY,
        ..Limits::default()
    })
    .await;
    let mut request = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    let chunk = "x".repeat(8 * 1024);
    for _ in 0..(2 * SMALL_BODY / chunk.len()) {
        request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = send_streaming(&server, request).await.unwrap();
    assert_eq!(response.status, 413, "{response:?}");
    assert_serving(&server).await;
}

fn nested_arrays(depth: usize) -> String {
    let open = "<value><array><data>".repeat(depth);
    let close = "</data></array></value>".repeat(depth);
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>echo</methodName><params><param>\
         {open}<value><int>1</int></value>{close}</param></params></methodCall>"
    )
}

#[tokio::test]
async fn xml_nested_too_deep_is_a_parse_fault() {
    let server = start(Limits {
        max_xml_depth: 32,
        ..Limits::default()
    })
    .await;
    // Shallow nesting is fine ...
    let client = Client::presenting(&pki().alice, Tls::V13);
    let ok = exchange(server.addr(), &client, &post_2008("/", nested_arrays(3)))
        .await
        .unwrap();
    assert!(matches!(ok.xmlrpc(), MethodResponse::Success(_)));
    // ... deep nesting is a fault that says why.
    let fault = raw_fault(&server, &nested_arrays(500)).await;
    assert_eq!(fault.code, -32700, "{fault:?}");
    assert!(fault.string.contains("nesting"), "{fault:?}");
    assert_serving(&server).await;
}

#[tokio::test]
async fn doctype_and_entities_are_parse_faults() {
    let server = start(Limits::default()).await;
    let mut entities = String::from("<!ENTITY lol0 \"lol\">");
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        entities.push_str(&format!("<!ENTITY lol{i} \"{refs}\">"));
    }
    let bomb = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [{entities}]><methodCall><methodName>echo\
         </methodName><params><param><value><string>&lol9;</string></value></param></params>\
         </methodCall>"
    );
    let fault = raw_fault(&server, &bomb).await;
    assert_eq!(fault.code, -32700, "{fault:?}");
    assert!(fault.string.contains("DOCTYPE"), "{fault:?}");
    // An entity reference with no DOCTYPE at all (an external entity in spirit).
    let xxe = "<?xml version=\"1.0\"?><methodCall><methodName>echo</methodName><params><param>\
               <value><string>&xxe;</string></value></param></params></methodCall>";
    let fault = raw_fault(&server, xxe).await;
    assert_eq!(fault.code, -32700, "{fault:?}");
    assert!(fault.string.contains("entity"), "{fault:?}");
    assert_serving(&server).await;
}

#[tokio::test]
async fn malformed_requests_are_parse_faults() {
    let server = start(Limits::default()).await;
    let not_utf8 = b"<?xml version=\"1.0\"?><methodCall><methodName>echo\xff\xfe</methodName>\
                     </methodCall>";
    let response = "<?xml version=\"1.0\"?><methodResponse><params><param><value><int>1</int>\
                    </value></param></params></methodResponse>";
    let cases: [(&str, &[u8]); 5] = [
        ("empty body", b""),
        ("not XML", b"hello"),
        ("not UTF-8", not_utf8),
        ("a response, not a call", response.as_bytes()),
        (
            "truncated",
            b"<?xml version=\"1.0\"?><methodCall><methodName>echo</methodName>",
        ),
    ];
    for (case, body) in cases {
        let fault = raw_fault(&server, body).await;
        assert_eq!(fault.code, -32700, "{case}: {fault:?}");
        assert!(
            fault.string.starts_with("malformed request: "),
            "{case}: {fault:?}"
        );
    }
    assert_serving(&server).await;
}

/// A panic in a handler is a bug, but it must end only its own connection: the permit comes
/// back and the server goes on (DESIGN §11).
#[tokio::test]
async fn handler_panic_ends_only_its_connection() {
    let server = start(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let request = post_2008("/", call_body("panic", vec![]));
    let outcome = exchange(server.addr(), &client, &request).await;
    // No answer, or a bare 500: never a traceback, never a hung connection.
    assert!(
        outcome.as_ref().map_or(true, |r| r.status == 500),
        "{outcome:?}"
    );
    // With a single connection slot, a leaked permit would refuse everything from here on; the
    // slot comes back once the dead connection's task has unwound.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let request = post_2008("/", call_body("whoami", vec![]));
        match exchange(server.addr(), &client, &request).await {
            Ok(r) => {
                assert_eq!(r.status, 200);
                break;
            }
            Err(e) if Instant::now() > deadline => panic!("server stopped serving: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(!server.serving.is_finished());
}

#[tokio::test]
async fn headers_too_slow_close_the_connection() {
    let server = start(Limits {
        header_timeout: SHORT,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let mut tls = open(server.addr(), &client).await;
    // Half the headers, then nothing.
    tls.write_all(b"POST / HTTP/1.0\r\nContent-Type: text/xml\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let (waited, sent) = time_to_close(&mut tls, IO_TIMEOUT)
        .await
        .expect("connection left open");
    assert!(
        waited >= SHORT_FLOOR,
        "closed after {waited:?}, before the header timeout"
    );
    assert!(
        !String::from_utf8_lossy(&sent).contains(" 200 "),
        "{sent:?}"
    );
    assert_serving(&server).await;
}

#[tokio::test]
async fn body_too_slow_is_408() {
    let server = start(Limits {
        body_timeout: SHORT,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let mut tls = open(server.addr(), &client).await;
    // Promises 1000 bytes, sends 10.
    let request =
        b"POST / HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<?xml vers";
    let started = Instant::now();
    let response = timeout(IO_TIMEOUT, round_trip(&mut tls, request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status, 408, "{response:?}");
    assert!(
        started.elapsed() >= SHORT_FLOOR,
        "answered after {:?}",
        started.elapsed()
    );
    assert_serving(&server).await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_accept() {
    let server = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let who = post_keep_alive(&call_body("whoami", vec![]));
    // Two connections, each with an answered call, so the server has certainly accepted both.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tls = open(server.addr(), &client).await;
        let response = timeout(IO_TIMEOUT, round_trip(&mut tls, &who))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, 200);
        held.push(tls);
    }
    // The third is dropped at accept: the handshake (or the read after it) fails.
    let third = exchange(
        server.addr(),
        &client,
        &post_2008("/", call_body("echo", vec![])),
    )
    .await;
    assert!(third.is_err(), "a third connection was served: {third:?}");
    // The held ones still work.
    let response = timeout(IO_TIMEOUT, round_trip(&mut held[0], &who))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status, 200);

    // Releasing one frees its slot once the server has seen it go.
    let mut released = held.pop().unwrap();
    released.shutdown().await.unwrap();
    drop(released);
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let request = post_2008("/", call_body("echo", vec![]));
        match exchange(server.addr(), &client, &request).await {
            Ok(r) => {
                assert_eq!(r.status, 200);
                break;
            }
            Err(e) if Instant::now() > deadline => panic!("slot never freed: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    drop(held);
}

#[tokio::test]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    let server = start(Limits {
        handshake_timeout: SHORT,
        ..Limits::default()
    })
    .await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let (waited, sent) = time_to_close(&mut tcp, IO_TIMEOUT)
        .await
        .expect("connection left open");
    assert!(
        waited >= SHORT_FLOOR,
        "closed after {waited:?}, before the handshake timeout"
    );
    assert!(sent.is_empty(), "{sent:?}");
    assert_serving(&server).await;
}

// === 8. graceful shutdown ===

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish() {
    let server = start(Limits::default()).await;
    let addr = server.addr();
    let client = Client::presenting(&pki().alice, Tls::V13);
    let in_flight =
        tokio::spawn(async move { call(addr, &client, "slow", vec![Value::Int(500)]).await });
    timeout(IO_TIMEOUT, server.slow_started.notified())
        .await
        .expect("slow call never started");
    // And an idle keep-alive connection, which shutdown should close rather than wait for.
    let mut idle = open(addr, &Client::presenting(&pki().alice, Tls::V13)).await;
    let who = post_keep_alive(&call_body("whoami", vec![]));
    let response = timeout(IO_TIMEOUT, round_trip(&mut idle, &who))
        .await
        .unwrap();
    assert_eq!(response.unwrap().status, 200);

    server.shutdown.shutdown();
    let closed = time_to_close(&mut idle, IO_TIMEOUT).await;
    assert!(
        closed.is_some_and(|(_, rest)| rest.is_empty()),
        "idle connection kept open"
    );
    // The listener goes away: new connections are refused.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
            // Accepted just before the listener closed; dropping it lets its task end at once.
            Ok(stream) => drop(stream),
            // Queued in the backlog of a listener that then closed.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connect: {e}"),
        }
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let answer = timeout(IO_TIMEOUT, in_flight)
        .await
        .expect("in-flight call cut off")
        .unwrap();
    assert_eq!(answer, MethodResponse::Success(Value::Int(500)));
    // Nothing is left to drain, so serve() returns at once rather than after drain_timeout.
    let served = timeout(IO_TIMEOUT, server.serving)
        .await
        .expect("serve() did not return");
    served.unwrap().unwrap();
}

/// A peer that connected but has not finished its handshake has no call in flight: shutdown
/// should drop it, not wait out its handshake timeout (any peer could otherwise delay every
/// restart by that long, at will).
#[tokio::test]
async fn shutdown_does_not_wait_for_unfinished_handshakes() {
    // The default handshake timeout (10 s) is what a silent peer would make shutdown wait.
    let server = start(Limits::default()).await;
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    // Accepted in order: once a later connection is served, the silent one has been accepted.
    assert_serving(&server).await;

    server.shutdown.shutdown();
    let started = Instant::now();
    let served = timeout(Duration::from_secs(2), server.serving).await;
    let waited = started.elapsed();
    assert!(
        served.is_ok(),
        "serve() still waiting after {waited:?} for a peer that never sent a ClientHello"
    );
    assert!(time_to_close(&mut silent, IO_TIMEOUT).await.is_some());
}

/// A daemon that gets SIGTERM while still starting calls `shutdown()` before `serve()` has run.
#[tokio::test]
async fn shutdown_before_serve_runs_is_not_lost() {
    let server = Server::bind(
        ServerOptions {
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            unix: None,
            limits: Limits::default(),
        },
        &pki().server.tls_identity(),
        Dispatcher::new(),
    )
    .await
    .unwrap();
    let handle = server.shutdown_handle();
    // On this single-threaded runtime the task cannot run before the shutdown below.
    let serving = tokio::spawn(server.serve());
    handle.shutdown();
    let served = timeout(Duration::from_secs(2), serving).await;
    assert!(
        served.is_ok(),
        "serve() ignored a shutdown() made before it started running"
    );
}

// === 9. Unix socket ===

#[tokio::test]
async fn unix_socket_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geni.sock");
    let server = start_with(Limits::default(), false, Some(path.clone()), &pki().server).await;
    assert!(server.addr.is_none());
    let me = &pki().alice;
    for version in [Tls::V13, Tls::V12] {
        let stream = UnixStream::connect(&path).await.unwrap();
        let client = Client::presenting(me, version);
        let request = post_2008("/", call_body("whoami", vec![]));
        let response = exchange_over(stream, &client, &request).await.unwrap();
        let MethodResponse::Success(who) = response.xmlrpc() else {
            panic!("whoami faulted")
        };
        assert_eq!(member(&who, "subject").as_str(), Some(me.hrn()));
        assert_eq!(
            member(&who, "spki_sha1").as_str(),
            Some(me.spki_sha1().as_str())
        );
        assert_eq!(member(&who, "remote"), &Value::Nil);
    }
    // Refusals hold on the socket too.
    let stream = UnixStream::connect(&path).await.unwrap();
    let request = post_2008("/", call_body("whoami", vec![]));
    assert!(
        exchange_over(stream, &Client::anonymous(Tls::V13), &request)
            .await
            .is_err()
    );

    server.shutdown.shutdown();
    let served = timeout(IO_TIMEOUT, server.serving)
        .await
        .expect("serve() did not return");
    served.unwrap().unwrap();
    assert!(!path.exists(), "socket file left behind");
}

// === 10. Python 3's xmlrpc.client ===

/// A client no one here wrote: `xmlrpc.client` over `ssl` (OpenSSL). It reports what it saw as an
/// XML-RPC response document, since that is a structured format both sides already read.
const PYTHON_CLIENT: &str = r#"
import socket, ssl, sys, xmlrpc.client

url, host, port, cert, key, legacy = sys.argv[1:7]
socket.setdefaulttimeout(10)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if legacy == "1":
    # OpenSSL 3 refuses md5-signed certificates and 1024-bit RSA keys at its default security
    # level; level 0 lets it present a 2008-shaped certificate (and talk to a 1024-bit server).
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
ctx.load_cert_chain(cert, key)
proxy = xmlrpc.client.ServerProxy(url, context=ctx, allow_none=True)
report = {}
report["echo"] = proxy.echo(1, "two", [3.5, None], {"k": True})
report["whoami"] = proxy.whoami()
report["methods"] = proxy.system.listMethods()
multi = xmlrpc.client.MultiCall(proxy)
multi.echo("a")
multi.fail()
multi.no_such_method()
results = multi()
report["multicall_first"] = results[0]
codes = []
for i in (1, 2):
    try:
        results[i]
        codes.append(0)
    except xmlrpc.client.Fault as f:
        codes.append(f.faultCode)
report["multicall_fault_codes"] = codes
try:
    proxy.fail()
    report["fault_code"] = 0
except xmlrpc.client.Fault as f:
    report["fault_code"] = f.faultCode
    report["fault_string"] = f.faultString
with socket.create_connection((host, int(port))) as raw:
    with ctx.wrap_socket(raw) as tls:
        report["tls_version"] = tls.version()
sys.stdout.write(xmlrpc.client.dumps((report,), methodresponse=True, allow_none=True))
"#;

/// Runs the Python client against `server` as `id`; `None` when there is no `python3`.
async fn python_client(
    server: &TestServer,
    id: &Identity,
    cert_pem: &str,
    legacy: bool,
) -> Option<Value> {
    if Command::new("python3").arg("--version").output().is_err() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("client.cert"),
        dir.path().join("client.pkey"),
    );
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, &id.key_pem).unwrap();
    let addr = server.addr();
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .arg(format!("https://{addr}/RPC2"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(&cert)
        .arg(&key)
        .arg(if legacy { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Polled rather than waited on: the server runs on this test's (single) thread.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python client timed out");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "python client failed ({status}):\n{err}");
    match geni_xmlrpc::parse_method_response(&out, &geni_xmlrpc::Limits::default()) {
        Ok(MethodResponse::Success(report)) => Some(report),
        other => panic!("unreadable report {other:?}:\n{out}\n{err}"),
    }
}

fn check_python_report(report: &Value, id: &Identity) {
    let echo = Value::Array(vec![
        Value::Int(1),
        "two".into(),
        Value::Array(vec![Value::Double(3.5), Value::Nil]),
        Value::Struct(Struct::new().with("k", true)),
    ]);
    assert_eq!(member(report, "echo"), &echo);
    let who = member(report, "whoami");
    assert_eq!(member(who, "subject").as_str(), Some(id.hrn()));
    assert_eq!(
        member(who, "spki_sha1").as_str(),
        Some(id.spki_sha1().as_str())
    );
    let methods = strings(member(report, "methods"));
    assert!(
        methods.contains(&"echo") && methods.contains(&"system.multicall"),
        "{methods:?}"
    );
    // MultiCall unwraps the `[value]` convention.
    assert_eq!(
        member(report, "multicall_first"),
        &Value::Array(vec!["a".into()])
    );
    let codes = member(report, "multicall_fault_codes");
    assert_eq!(
        codes,
        &Value::Array(vec![Value::Int(105), Value::Int(-32601)])
    );
    assert_eq!(member(report, "fault_code").as_i64(), Some(105));
    assert_eq!(member(report, "fault_string").as_str(), Some("x not found"));
    let tls = member(report, "tls_version").as_str().unwrap();
    assert!(tls == "TLSv1.3" || tls == "TLSv1.2", "{tls}");
}

#[tokio::test]
async fn python_client_with_a_modern_certificate() {
    let server = start(Limits::default()).await;
    let id = &pki().alice;
    let Some(report) = python_client(&server, id, &plain_chain(id), false).await else {
        println!("skipping: python3 not found");
        return;
    };
    check_python_report(&report, id);
    assert_serving(&server).await;
}

#[tokio::test]
async fn python_client_with_a_2008_certificate() {
    let pki = pki();
    let id = &pki.dave_2008;
    assert_eq!(id.gid.certificate().version(), 1);
    assert_eq!(
        id.gid.certificate().signature_algorithm(),
        "md5WithRSAEncryption"
    );
    assert_eq!(id.gid.public_key().bits(), 1024);
    // A 2008 server too: its own key is a 1024-bit authority key.
    let server = start_with(Limits::default(), true, None, &pki.server_2008).await;
    // 2008 clients presented their single certificate, no chain.
    let leaf = id.gid.certificate().to_pem().unwrap();
    let Some(report) = python_client(&server, id, &leaf, true).await else {
        println!("skipping: python3 not found");
        return;
    };
    check_python_report(&report, id);
    assert_serving(&server).await;
}

/// The chain as plain concatenated PEMs, the form OpenSSL's `load_cert_chain` documents.
fn plain_chain(id: &Identity) -> String {
    id.gid.to_chain_string(ChainForm::Plain).unwrap()
}

// === 13. hostile peers: clean faults ===

/// A self-signed certificate (RSA-2048, sha256) whose one subjectAltName URI is `uri`, as PEM.
fn pem_with_san(uri: &str) -> String {
    pem_with_cn_and_san("plc.site.mallory", uri)
}

fn pem_with_cn_and_san(cn: &str, uri: &str) -> String {
    use openssl::x509::extension::SubjectAlternativeName;
    let key = Keypair::generate(2048).unwrap();
    let pkey = openssl::pkey::PKey::private_key_from_pem(&key.to_pem().unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, cn)
        .unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .uri(uri)
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&pkey, openssl::hash::MessageDigest::sha256())
        .unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

/// A fault string a peer may see: encodable, short, no raw control character.
fn assert_clean(fault: &Fault) {
    assert!(
        fault.string.chars().count() <= geni_rpc::MAX_FAULT_CHARS + 40,
        "{} chars: {:?}",
        fault.string.chars().count(),
        &fault.string[..300.min(fault.string.len())]
    );
    assert!(!fault.string.chars().any(char::is_control), "{fault:?}");
}

// See: issue 13 ("a control byte in a credential's subjectAltName XML").
#[tokio::test]
async fn r13_control_byte_in_a_san_is_a_decode_fault_not_an_internal_error() {
    let server = start(Limits::default()).await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    for payload in [
        "http://<params><param><value><struct><member><name>hrn</name><value><string>a\u{1}b\
         </string></value></member></struct></value></param></params>",
        "http://<params><param><value><struct><member><name>h\u{7}rn</name><value>x</value>\
         </member></struct></value></param></params>",
        "http://<params><param><value><struct><me\u{1}mber></me\u{1}mber></struct></value>\
         </param></params>",
        "http://\u{1b}[31m\u{1}",
    ] {
        let pem = pem_with_san(payload);
        let fault = call_fault(server.addr(), &client, "caller_check", vec![pem.into()]).await;
        assert_eq!(fault.code, 100, "{fault:?}");
        assert_clean(&fault);
    }
    // The subject names the object in every message about it.
    let pem = pem_with_cn_and_san("bell\u{7}", "http://<params></params>");
    let fault = call_fault(server.addr(), &client, "caller_check", vec![pem.into()]).await;
    assert_eq!(fault.code, 100, "{fault:?}");
    assert_clean(&fault);
    assert_serving(&server).await;
}

// See: issue 13 ("faults and logs echo method names of any length").
#[tokio::test]
async fn r13_a_huge_method_name_gets_a_clipped_fault() {
    let server = start(Limits::default()).await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let name = "m".repeat(1024 * 1024);
    let response = exchange(
        server.addr(),
        &client,
        &post_2008("/", call_body(&name, vec![])),
    )
    .await
    .unwrap();
    assert!(response.body.len() < 2048, "{} bytes", response.body.len());
    let MethodResponse::Fault(fault) = response.xmlrpc() else {
        panic!("expected a fault");
    };
    assert_eq!(fault.code, -32601);
    assert!(fault.string.contains("clipped"), "{fault:?}");
    assert_clean(&fault);
}

fn one_call(name: &str, params: Vec<Value>) -> Value {
    Value::Struct(
        Struct::new()
            .with("methodName", name)
            .with("params", Value::Array(params)),
    )
}

// See: issue 13 ("inside a multicall that one bad sub-call fails the whole response").
#[tokio::test]
async fn r13_one_bad_sub_call_does_not_cost_the_others_their_answers() {
    let server = start(Limits::default()).await;
    let (addr, client) = (server.addr(), Client::presenting(&pki().alice, Tls::V13));
    let bad_gid = pem_with_san("http://<params><param><value>\u{1}</value></param></params>");
    let calls = Value::Array(vec![
        one_call("echo", vec!["first".into()]),
        one_call("unencodable", vec![]),
        one_call("caller_check", vec![bad_gid.into()]),
        one_call(&"n".repeat(100_000), vec![]),
        Value::Int(7),
        one_call("echo", vec!["last".into()]),
    ]);
    let results = call_ok(addr, &client, "system.multicall", vec![calls]).await;
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 6, "{results:?}");
    let echoed = |s: &str| Value::Array(vec![Value::Array(vec![s.into()])]);
    assert_eq!(results[0], echoed("first"));
    assert_eq!(results[5], echoed("last"));
    // A handler bug is the one internal error; peer input never is.
    for (result, code) in results[1..5].iter().zip([-32603, 100, -32601, -32602]) {
        assert_eq!(
            member(result, "faultCode").as_i64(),
            Some(code),
            "{result:?}"
        );
        let string = member(result, "faultString").as_str().unwrap();
        assert_clean(&Fault {
            code: i32::try_from(code).unwrap(),
            string: string.to_owned(),
        });
    }
}

// See: issue 13 ("a cap on multicall length").
#[tokio::test]
async fn r13_a_multicall_over_the_cap_is_refused_before_any_call_runs() {
    let limits = Limits {
        max_multicall: 8,
        ..Limits::default()
    };
    let server = start(limits).await;
    let (addr, client) = (server.addr(), Client::presenting(&pki().alice, Tls::V13));
    let before = COUNTED.load(std::sync::atomic::Ordering::SeqCst);
    let calls = Value::Array(vec![one_call("count", vec![]); 9]);
    let fault = call_fault(addr, &client, "system.multicall", vec![calls]).await;
    assert_eq!(fault.code, -32602, "{fault:?}");
    assert!(fault.string.contains("limit of 8"), "{fault:?}");
    assert_eq!(COUNTED.load(std::sync::atomic::Ordering::SeqCst), before);
    let calls = Value::Array(vec![one_call("count", vec![]); 8]);
    let results = call_ok(addr, &client, "system.multicall", vec![calls]).await;
    assert_eq!(results.as_array().unwrap().len(), 8);
    assert_eq!(
        COUNTED.load(std::sync::atomic::Ordering::SeqCst),
        before + 8
    );
}

/// A certificate for the RSA public key (n, e), `n` random and odd of `bits` bits, `e` of
/// `e_bits` bits (65537 when 17), signed by a real key: no one holds its private key.
fn cert_with_rsa_key(bits: i32, e_bits: i32) -> Vec<u8> {
    use openssl::bn::{BigNum, MsbOption};
    let mut n = BigNum::new().unwrap();
    n.rand(bits, MsbOption::ONE, true).unwrap();
    let e = if e_bits == 17 {
        BigNum::from_u32(65537).unwrap()
    } else {
        let mut e = BigNum::new().unwrap();
        e.rand(e_bits, MsbOption::ONE, true).unwrap();
        e
    };
    let rsa = openssl::rsa::Rsa::from_public_components(n, e).unwrap();
    let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    let signer = openssl::pkey::PKey::private_key_from_pem(&pki().alice.key_pem).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, "mallory")
        .unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&signer, openssl::hash::MessageDigest::sha256())
        .unwrap();
    b.build().to_der().unwrap()
}

// See: issue 13 ("a 16,384-bit client key is accepted at the handshake").
#[tokio::test]
async fn r13_client_keys_outside_the_policy_are_refused_at_the_handshake() {
    let server = start(Limits::default()).await;
    for (bits, e_bits) in [(16384, 17), (3072, 3071), (512, 17)] {
        for version in [Tls::V13, Tls::V12] {
            let client =
                Client::presenting_der(cert_with_rsa_key(bits, e_bits), &pki().alice, version);
            let tcp = TcpStream::connect(server.addr()).await.unwrap();
            let outcome =
                exchange_over(tcp, &client, &post_2008("/", call_body("echo", vec![]))).await;
            assert!(
                outcome.is_err(),
                "{bits}-bit key, {e_bits}-bit exponent: {outcome:?}"
            );
        }
    }
    assert_serving(&server).await;
}

// === 13. hostile peers: admission, timeouts, memory ===

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8), with a
/// small receive buffer when `small_window`.
async fn connect_from(from: [u8; 4], addr: SocketAddr, small_window: bool) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if small_window {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether the server closes `tcp` within `limit` (reading and discarding what it sends).
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> bool {
    time_to_close(tcp, limit).await.is_some()
}

// See: issue 13 ("1,124 bare TCP connects from one host lock every other client out").
#[tokio::test]
async fn r13_one_address_gets_its_share_and_no_more() {
    let server = start(Limits {
        max_connections_per_peer: 3,
        ..Limits::default()
    })
    .await;
    let mut bare = Vec::new();
    for _ in 0..3 {
        bare.push(connect_from([127, 0, 0, 1], server.addr(), false).await);
    }
    let mut fourth = connect_from([127, 0, 0, 1], server.addr(), false).await;
    assert!(
        closed_within(&mut fourth, IO_TIMEOUT).await,
        "a fourth connection from one address was kept"
    );
    // Another address is served while the first holds its share.
    let client = Client::presenting(&pki().alice, Tls::V13);
    let tcp = connect_from([127, 0, 0, 2], server.addr(), false).await;
    let response = exchange_over(tcp, &client, &post_2008("/", call_body("echo", vec![])))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    // The held ones are still open (nothing was sent to them, nothing closed them).
    for tcp in &mut bare {
        assert!(!closed_within(tcp, Duration::from_millis(100)).await);
    }
}

// See: issue 13 ("eviction of the oldest connection that has not finished its handshake or
// first request headers").
#[tokio::test]
async fn r13_a_full_pool_evicts_the_oldest_unfinished_connection_never_an_active_one() {
    let server = start(Limits {
        max_connections: 4,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let who = post_keep_alive(&call_body("whoami", vec![]));
    // Two active connections from 127.0.0.2.
    let mut active = Vec::new();
    for _ in 0..2 {
        let tcp = connect_from([127, 0, 0, 2], server.addr(), false).await;
        let mut tls = timeout(IO_TIMEOUT, client.connect(tcp))
            .await
            .unwrap()
            .unwrap();
        let r = timeout(IO_TIMEOUT, round_trip(&mut tls, &who))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200);
        active.push(tls);
    }
    // Two bare connections fill the pool; the oldest goes when someone else comes.
    let mut oldest = connect_from([127, 0, 0, 3], server.addr(), false).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut younger = connect_from([127, 0, 0, 3], server.addr(), false).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tcp = connect_from([127, 0, 0, 4], server.addr(), false).await;
    let response = exchange_over(tcp, &client, &post_2008("/", call_body("echo", vec![])))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(
        closed_within(&mut oldest, IO_TIMEOUT).await,
        "the oldest was kept"
    );
    // The newcomer took the evicted place and has finished: one bare connection is left,
    // and the next newcomer evicts it.
    let tcp = connect_from([127, 0, 0, 4], server.addr(), false).await;
    exchange_over(tcp, &client, &post_2008("/", call_body("echo", vec![])))
        .await
        .unwrap();
    assert!(closed_within(&mut younger, IO_TIMEOUT).await);
    // With only active connections and bare ones... fill the pool with active ones: a newcomer
    // is refused and evicts no one.
    for _ in 0..2 {
        let tcp = connect_from([127, 0, 0, 2], server.addr(), false).await;
        let mut tls = timeout(IO_TIMEOUT, client.connect(tcp))
            .await
            .unwrap()
            .unwrap();
        timeout(IO_TIMEOUT, round_trip(&mut tls, &who))
            .await
            .unwrap()
            .unwrap();
        active.push(tls);
    }
    let mut refused = connect_from([127, 0, 0, 5], server.addr(), false).await;
    assert!(closed_within(&mut refused, IO_TIMEOUT).await);
    for tls in &mut active {
        let r = timeout(IO_TIMEOUT, round_trip(tls, &who))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200, "an active connection was lost");
    }
}

// See: issue 13 ("a client that never reads its (4 MiB, echoed) fault holds its slot forever").
#[tokio::test]
async fn r13_a_client_that_does_not_read_is_cut_after_the_write_timeout() {
    let server = start(Limits {
        write_timeout: SHORT,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let tcp = connect_from([127, 0, 0, 1], server.addr(), true).await;
    let mut tls = timeout(IO_TIMEOUT, client.connect(tcp))
        .await
        .unwrap()
        .unwrap();
    // Four pipelined 1 MiB echoes: far more than the socket buffers hold.
    let request = post_keep_alive(&call_body("echo", vec!["x".repeat(1 << 20).into()]));
    for _ in 0..4 {
        tls.write_all(&request).await.unwrap();
    }
    tls.flush().await.unwrap();
    tokio::time::sleep(SHORT * 4).await;
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let drained = timeout(IO_TIMEOUT, async {
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection was not closed");
    assert!(
        received.len() < 4 << 20,
        "all {} bytes arrived: nothing was cut",
        received.len()
    );
    assert_serving(&server).await;
}

#[tokio::test]
async fn r13_an_idle_keep_alive_connection_is_closed() {
    let server = start(Limits {
        idle_timeout: SHORT,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let mut tls = open(server.addr(), &client).await;
    let r = timeout(
        IO_TIMEOUT,
        round_trip(&mut tls, &post_keep_alive(&call_body("echo", vec![]))),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.status, 200);
    let (waited, _) = time_to_close(&mut tls, IO_TIMEOUT)
        .await
        .expect("an idle connection was kept");
    assert!(waited >= SHORT_FLOOR, "closed after {waited:?}");
    // A call that takes longer than the idle timeout is not cut by it.
    let mut tls = open(server.addr(), &client).await;
    let slow = post_keep_alive(&call_body("slow", vec![Value::Int(600)]));
    let r = timeout(IO_TIMEOUT, round_trip(&mut tls, &slow))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        r.xmlrpc(),
        MethodResponse::Success(Value::Int(600))
    ));
}

/// A connection whose 60 KB `slow(ms)` call is being handled, holding that much of the budget
/// until it is answered.
async fn hold_the_budget(server: &TestServer, client: &Client, ms: i64) -> TlsStream<TcpStream> {
    let mut holder = open(server.addr(), client).await;
    let held = call_body("slow", vec![Value::Int(ms), "p".repeat(60_000).into()]);
    holder.write_all(&post_keep_alive(&held)).await.unwrap();
    holder.flush().await.unwrap();
    timeout(IO_TIMEOUT, server.slow_started.notified())
        .await
        .unwrap();
    holder
}

// See: issue 13 ("1,024 buffered 4 MiB bodies is several GiB").
#[tokio::test]
async fn r13_bodies_wait_for_the_memory_budget_and_then_get_503() {
    let server = start(Limits {
        max_body_bytes: 64 * 1024,
        max_bytes_in_flight: 64 * 1024,
        body_timeout: Duration::from_millis(800),
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    // A's 60 KB body is being handled (slowly): its budget is in use until it is answered.
    let mut holder = hold_the_budget(&server, &client, 2000).await;
    // B's whole 20 KB body finds no room: it waits, then is told to come back.
    let body = call_body("echo", vec!["y".repeat(20_000).into()]);
    let started = Instant::now();
    let r = exchange(server.addr(), &client, &post_2008("/", &body))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.status);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // A is answered and its budget comes back: B is served.
    let r = timeout(IO_TIMEOUT, read_response(&mut holder))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    drop(holder);
    let r = exchange(server.addr(), &client, &post_2008("/", &body))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

// See: issue 13 ("Unbounded memory"): every body that waited for the budget held its
// connection's TLS and HTTP buffers for as long as it waited, so a flood's waiting bodies cost
// more than the budget itself. Only `max_waiting_bodies` wait; the next is told at once.
#[tokio::test]
async fn r13_only_so_many_bodies_wait_and_the_rest_get_503_at_once() {
    let server = start(Limits {
        max_body_bytes: 64 * 1024,
        max_bytes_in_flight: 64 * 1024,
        max_waiting_bodies: 1,
        body_timeout: Duration::from_secs(20),
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    let mut holder = hold_the_budget(&server, &client, 1500).await;
    // B takes the one waiting place.
    let body = call_body("echo", vec!["y".repeat(20_000).into()]);
    let addr = server.addr();
    let waiting = {
        let (client, request) = (client.clone(), post_2008("/", &body));
        tokio::spawn(async move { exchange(addr, &client, &request).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // C finds none: 503 without waiting, and its connection is closed.
    let started = Instant::now();
    let mut c = open(addr, &client).await;
    c.write_all(&post_keep_alive(&body)).await.unwrap();
    c.flush().await.unwrap();
    let r = timeout(IO_TIMEOUT, read_response(&mut c))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("server busy"), "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    let closed = timeout(IO_TIMEOUT, c.read_to_end(&mut rest)).await.unwrap();
    assert!(
        closed.is_err() || rest.is_empty(),
        "{} more bytes",
        rest.len()
    );
    // A is answered, and B, which waited, is served with A's memory.
    let r = timeout(IO_TIMEOUT, read_response(&mut holder))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    let r = timeout(IO_TIMEOUT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_serving(&server).await;
}

/// `count` `<value/>`s in one array: 8 bytes of markup each, 32 bytes of value each.
fn dense_echo(count: usize) -> String {
    format!(
        "<?xml version='1.0'?><methodCall><methodName>echo</methodName><params><param><value>\
         <array><data>{}</data></array></value></param></params></methodCall>",
        "<value/>".repeat(count)
    )
}

// See: issue 13 ("1,024 buffered 4 MiB bodies (plus the decoded values)"): the budget held a
// body's bytes, but what it decoded to was free, and dense markup decodes to several times its
// size. Now a request holds what it decoded to until it is answered, and the values it may hold
// are capped.
#[tokio::test]
async fn r13_what_a_body_decodes_to_is_charged_to_the_budget() {
    let server = start(Limits {
        max_body_bytes: 64 * 1024,
        max_bytes_in_flight: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let client = Client::presenting(&pki().alice, Tls::V13);
    // 5,000 values: a 40 KB body fits the budget, its 160 KB of values do not.
    let dense = dense_echo(5_000);
    assert!(dense.len() < 48 * 1024);
    let r = exchange(server.addr(), &client, &post_2008("/", &dense))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    // Nothing was kept: the whole budget is there for a request that fits, again and again.
    for _ in 0..3 {
        let r = exchange(server.addr(), &client, &post_2008("/", dense_echo(1_000)))
            .await
            .unwrap();
        match r.xmlrpc() {
            MethodResponse::Success(Value::Array(a)) => {
                assert_eq!(a[0].as_array().map(<[Value]>::len), Some(1_000));
            }
            other => panic!("{other:?}"),
        }
        let fits = call_body("echo", vec!["z".repeat(60_000).into()]);
        let r = exchange(server.addr(), &client, &post_2008("/", &fits))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_serving(&server).await;
}

#[tokio::test]
async fn r13_a_request_over_the_value_cap_is_a_clean_fault() {
    let server = start(Limits {
        max_xml_values: 100,
        ..Limits::default()
    })
    .await;
    let fault = raw_fault(&server, dense_echo(100)).await;
    assert_eq!(fault.code, -32700, "{fault:?}");
    assert!(
        fault.string.contains("more than 100 values"),
        "{}",
        fault.string
    );
    let client = Client::presenting(&pki().alice, Tls::V13);
    let r = exchange(server.addr(), &client, &post_2008("/", dense_echo(99)))
        .await
        .unwrap();
    assert!(matches!(r.xmlrpc(), MethodResponse::Success(_)));
    assert_serving(&server).await;
}
