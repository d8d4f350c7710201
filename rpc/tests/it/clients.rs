//! The clients against small servers written here (hyper over tokio-rustls, or over a Unix
//! listener), on real sockets with real TLS on loopback: the crate's own server is tested on its
//! own, and these tests must not depend on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use geni_rpc::client::{
    GeniClient, PlcApiClient, PlcAuth, PlcServerAuth, RetryOptions, UnixClient,
    server_auth_from_gid,
};
use geni_rpc::{RpcError, ServerAuth, TlsIdentity};
use geni_xmlrpc::{Fault, Limits, MethodCall, MethodResponse, Struct, Value};
use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

const SHORT: Duration = Duration::from_secs(5);

// === certificates ===

/// A CA, a server certificate for localhost / 127.0.0.1 and a client certificate (RSA, as
/// `TlsIdentity` wants), all made once per test binary.
struct Pki {
    ca_pem: Vec<u8>,
    ca_key: PKey<Private>,
    ca: X509,
    server_key: PKey<Private>,
    server: X509,
    client_key_pem: Vec<u8>,
    client_pem: String,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = ec_key();
        let ca = certificate("Test CA", &ca_key, None, true);
        let server_key = ec_key();
        let server = certificate("localhost", &server_key, Some((&ca, &ca_key)), false);
        let client_key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let client = certificate("alice", &client_key, Some((&ca, &ca_key)), false);
        Pki {
            ca_pem: ca.to_pem().unwrap(),
            ca_key,
            ca,
            server_key,
            server,
            client_key_pem: client_key.private_key_to_pem_pkcs8().unwrap(),
            client_pem: String::from_utf8(client.to_pem().unwrap()).unwrap(),
        }
    })
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn certificate(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ca: bool,
) -> X509 {
    static SERIAL: AtomicUsize = AtomicUsize::new(1);
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = u32::try_from(SERIAL.fetch_add(1, Ordering::Relaxed)).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap())
            .unwrap();
    } else {
        b.append_extension(BasicConstraints::new().build().unwrap())
            .unwrap();
        let eku = ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()
            .unwrap();
        b.append_extension(eku).unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn der(cert: &X509) -> CertificateDer<'static> {
    CertificateDer::from(cert.to_der().unwrap())
}

fn pkcs8(key: &PKey<Private>) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        key.private_key_to_pkcs8().unwrap(),
    ))
}

fn identity() -> TlsIdentity {
    TlsIdentity::from_pem(&pki().client_key_pem, &pki().client_pem).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server presenting `chain` and `key`. With `client_certificate`, it requires one from our CA
/// (a Geni server); otherwise it asks for none (PLCAPI).
fn server_config(
    client_certificate: bool,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&pki().ca)).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

fn geni_server_config() -> Arc<rustls::ServerConfig> {
    server_config(true, server_chain(), pkcs8(&pki().server_key))
}

fn plc_server_config() -> Arc<rustls::ServerConfig> {
    server_config(false, server_chain(), pkcs8(&pki().server_key))
}

fn server_chain() -> Vec<CertificateDer<'static>> {
    vec![der(&pki().server), der(&pki().ca)]
}

// === test servers ===

/// What a test server does with a call: `(call, client certificate CN)` → reply.
type Handler = Arc<dyn Fn(MethodCall, Option<String>) -> Reply + Send + Sync>;

enum Reply {
    Fault(i32, &'static str),
    /// Never answer.
    Hang,
    Value(Value),
}

#[derive(Default)]
struct Counters {
    /// TCP or Unix connections accepted.
    connections: AtomicUsize,
    /// HTTP requests answered or hung.
    requests: AtomicUsize,
    /// `(path, Host header)` of each request.
    seen: Mutex<Vec<(String, String)>>,
}

#[derive(Clone, Copy, Default)]
struct Behaviour {
    /// Close this many accepted connections at once, before TLS.
    drop_first: usize,
    /// Close each connection this long after accepting it, answered or not.
    lifetime: Option<Duration>,
}

struct TestServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
}

impl TestServer {
    fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }
}

async fn tls_server(
    config: Arc<rustls::ServerConfig>,
    behaviour: Behaviour,
    handler: Handler,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let c = Arc::clone(&counters);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            if c.connections.fetch_add(1, Ordering::SeqCst) < behaviour.drop_first {
                drop(tcp);
                continue;
            }
            let (acceptor, handler, c) = (acceptor.clone(), Arc::clone(&handler), Arc::clone(&c));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let subject = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| common_name(leaf.as_ref()));
                serve(tls, subject, behaviour.lifetime, handler, c).await;
            });
        }
    });
    TestServer { addr, counters }
}

async fn unix_server(path: &Path, handler: Handler) -> Arc<Counters> {
    let listener = UnixListener::bind(path).unwrap();
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(
                stream,
                None,
                None,
                Arc::clone(&handler),
                Arc::clone(&c),
            ));
        }
    });
    counters
}

/// HTTP/1.1 on one connection, each request's body decoded and handed to `handler`.
async fn serve<Io>(
    io: Io,
    subject: Option<String>,
    lifetime: Option<Duration>,
    handler: Handler,
    counters: Arc<Counters>,
) where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (handler, counters, subject) =
            (Arc::clone(&handler), Arc::clone(&counters), subject.clone());
        async move {
            counters.requests.fetch_add(1, Ordering::SeqCst);
            let host = req
                .headers()
                .get(hyper::header::HOST)
                .map(|h| h.to_str().unwrap().to_owned())
                .unwrap_or_default();
            counters
                .seen
                .lock()
                .unwrap()
                .push((req.uri().path().to_owned(), host));
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let call = geni_xmlrpc::parse_method_call(
                std::str::from_utf8(&body).unwrap(),
                &Limits::default(),
            )
            .unwrap();
            let response = match handler(call, subject) {
                Reply::Value(v) => MethodResponse::Success(v),
                Reply::Fault(code, string) => MethodResponse::Fault(Fault {
                    code,
                    string: string.to_owned(),
                }),
                Reply::Hang => std::future::pending().await,
            };
            let text = geni_xmlrpc::write_method_response(&response).unwrap();
            let mut answer = hyper::Response::new(text);
            answer
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, "text/xml".parse().unwrap());
            Ok::<_, Infallible>(answer)
        }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    match lifetime {
        Some(lifetime) => drop(tokio::time::timeout(lifetime, connection).await),
        None => drop(connection.await),
    }
}

fn common_name(der: &[u8]) -> String {
    let cert = X509::from_der(der).unwrap();
    let cn = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .unwrap();
    cn.data().to_string().unwrap()
}

/// `echo` returns its first argument, `whoami` the client certificate's CN, `fail` a fault,
/// `hang` nothing ever.
fn echo_handler() -> Handler {
    Arc::new(|call, subject| match call.method.as_str() {
        "echo" => Reply::Value(call.params.into_iter().next().unwrap_or(Value::Nil)),
        "whoami" => Reply::Value(Value::String(subject.unwrap_or_default())),
        "fail" => Reply::Fault(7, "boom"),
        "hang" => Reply::Hang,
        _ => Reply::Fault(-32601, "no such method"),
    })
}

async fn elapsed<F: Future>(f: F) -> (F::Output, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

fn transport_message(result: Result<Value, RpcError>) -> String {
    match result {
        Err(RpcError::Transport(m)) => m,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

// === GeniClient ===

fn geni_client(server: &TestServer, auth: ServerAuth, timeout: Duration) -> GeniClient {
    let url = format!("https://127.0.0.1:{}/RPC2", server.addr.port());
    GeniClient::new(&url, identity(), auth, timeout).unwrap()
}

fn pinned_server_key() -> ServerAuth {
    ServerAuth::PinnedKey(pki().server_key.public_key_to_der().unwrap())
}

#[tokio::test]
async fn geni_call_returns_the_value_and_the_server_sees_our_certificate() {
    let server = tls_server(geni_server_config(), Behaviour::default(), echo_handler()).await;
    let client = geni_client(&server, pinned_server_key(), SHORT);
    let who = client.call("whoami", vec![]).await.unwrap();
    assert_eq!(who, Value::String("alice".into()));
    let arg = Value::Struct(Struct::new().with("hrn", "plc.princeton").with("n", 3_i64));
    assert_eq!(client.call("echo", vec![arg.clone()]).await.unwrap(), arg);
    let seen = server.counters.seen.lock().unwrap().clone();
    let host = format!("127.0.0.1:{}", server.addr.port());
    assert_eq!(
        seen,
        vec![
            ("/RPC2".to_owned(), host.clone()),
            ("/RPC2".to_owned(), host)
        ]
    );
}

#[tokio::test]
async fn geni_fault_is_a_fault_with_its_code_and_string() {
    let server = tls_server(geni_server_config(), Behaviour::default(), echo_handler()).await;
    let client = geni_client(&server, pinned_server_key(), SHORT);
    match client.call("fail", vec![]).await {
        Err(RpcError::Fault(f)) => assert_eq!((f.code, f.string.as_str()), (7, "boom")),
        other => panic!("expected a fault, got {other:?}"),
    }
    // The connection stays usable after a fault.
    assert!(client.call("echo", vec![Value::Int(1)]).await.is_ok());
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn geni_pinned_certificate_is_accepted() {
    let server = tls_server(geni_server_config(), Behaviour::default(), echo_handler()).await;
    let pinned = ServerAuth::PinnedCertificate(pki().server.to_der().unwrap());
    let client = geni_client(&server, pinned, SHORT);
    assert!(client.call("whoami", vec![]).await.is_ok());
}

#[tokio::test]
async fn geni_wrong_pinned_key_refuses_the_handshake() {
    let server = tls_server(geni_server_config(), Behaviour::default(), echo_handler()).await;
    let wrong = ServerAuth::PinnedKey(pki().ca_key.public_key_to_der().unwrap());
    let client = geni_client(&server, wrong, SHORT);
    let message = transport_message(client.call("whoami", vec![]).await);
    let expected = format!("TLS handshake with 127.0.0.1:{} failed", server.addr.port());
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.contains("not the pinned one"), "{message}");
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn geni_server_auth_from_gid_pins_the_gid_key() {
    let dir = tempfile::tempdir().unwrap();
    let hrn = geni_trust::Hrn::parse("plc").unwrap();
    let authority = geni_trust::Hierarchy::new(dir.path())
        .create_authority(&hrn, false)
        .unwrap();
    // The server presents the GID itself as its TLS certificate, with the GID's key.
    let cert = CertificateDer::from(authority.gid.certificate().der().to_vec());
    let key = PKey::private_key_from_pem(&authority.key.to_pem().unwrap()).unwrap();
    let config = server_config(true, vec![cert], pkcs8(&key));
    let server = tls_server(config, Behaviour::default(), echo_handler()).await;

    let client = geni_client(&server, server_auth_from_gid(&authority.gid), SHORT);
    assert_eq!(
        client.call("whoami", vec![]).await.unwrap(),
        Value::String("alice".into())
    );

    let other = tls_server(geni_server_config(), Behaviour::default(), echo_handler()).await;
    let client = geni_client(&other, server_auth_from_gid(&authority.gid), SHORT);
    assert!(transport_message(client.call("whoami", vec![]).await).contains("pinned"));
}

/// Accepts a chain whose leaf is `expected` and that has `len` certificates; says why not.
#[derive(Debug)]
struct ChainIs {
    leaf: Vec<u8>,
    len: usize,
}

impl geni_rpc::ServerCheck for ChainIs {
    fn check(&self, chain: &[&[u8]]) -> Result<(), String> {
        if chain.len() == self.len && chain[0] == self.leaf.as_slice() {
            Ok(())
        } else {
            Err(format!("saw a chain of {} certificate(s)", chain.len()))
        }
    }
}

#[tokio::test]
async fn geni_server_check_sees_the_whole_chain_and_its_reason_is_reported() {
    let ca = CertificateDer::from(pki().ca.to_der().unwrap());
    let leaf = CertificateDer::from(pki().server.to_der().unwrap());
    let config = server_config(true, vec![leaf.clone(), ca], pkcs8(&pki().server_key));
    let server = tls_server(config, Behaviour::default(), echo_handler()).await;
    let accept = ServerAuth::Check(Arc::new(ChainIs {
        leaf: leaf.to_vec(),
        len: 2,
    }));
    let client = geni_client(&server, accept, SHORT);
    assert!(client.call("whoami", vec![]).await.is_ok());

    let refuse = ServerAuth::Check(Arc::new(ChainIs {
        leaf: leaf.to_vec(),
        len: 3,
    }));
    let client = geni_client(&server, refuse, SHORT);
    let message = transport_message(client.call("whoami", vec![]).await);
    assert!(
        message.contains("saw a chain of 2 certificate(s)"),
        "{message}"
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn geni_keeps_one_connection_alive_between_calls() {
    let server = tls_server(geni_server_config(), Behaviour::default(), echo_handler()).await;
    let client = geni_client(&server, pinned_server_key(), SHORT);
    for i in 0..3 {
        assert_eq!(
            client.call("echo", vec![Value::Int(i)]).await.unwrap(),
            Value::Int(i)
        );
    }
    assert_eq!((server.connections(), server.requests()), (1, 3));
}

#[tokio::test]
async fn geni_reconnects_when_the_server_closed_the_idle_connection() {
    let behaviour = Behaviour {
        lifetime: Some(Duration::from_millis(300)),
        ..Behaviour::default()
    };
    let server = tls_server(geni_server_config(), behaviour, echo_handler()).await;
    let client = geni_client(&server, pinned_server_key(), SHORT);
    assert!(client.call("echo", vec![Value::Int(1)]).await.is_ok());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        client.call("echo", vec![Value::Int(2)]).await.unwrap(),
        Value::Int(2)
    );
    assert_eq!((server.connections(), server.requests()), (2, 2));
}

#[tokio::test]
async fn geni_times_out_on_a_server_that_never_answers() {
    let server = tls_server(geni_server_config(), Behaviour::default(), echo_handler()).await;
    let timeout = Duration::from_millis(400);
    let client = geni_client(&server, pinned_server_key(), timeout);
    let (result, took) = elapsed(client.call("hang", vec![])).await;
    match result {
        Err(RpcError::Timeout(m)) => assert!(m.contains("hang"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(600),
        "{took:?}"
    );
    // A timed-out connection is not reused: the next call opens a new one.
    assert_eq!(
        client.call("echo", vec![Value::Int(5)]).await.unwrap(),
        Value::Int(5)
    );
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn geni_refused_connection_names_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("https://127.0.0.1:{port}/");
    let client = GeniClient::new(&url, identity(), pinned_server_key(), SHORT).unwrap();
    let message = transport_message(client.call("noop", vec![]).await);
    assert_eq!(
        message,
        format!("cannot connect to 127.0.0.1:{port}: connection refused")
    );
}

#[test]
fn geni_rejects_unusable_urls() {
    for url in [
        "http://127.0.0.1:1/",
        "https://127.0.0.1:port/",
        "https:///RPC2",
    ] {
        let result = GeniClient::new(url, identity(), ServerAuth::DangerAcceptAny, SHORT);
        assert!(matches!(result, Err(RpcError::Config(_))), "{url}");
    }
}

// === PlcApiClient ===

fn password() -> PlcAuth {
    PlcAuth::Password {
        username: "maint@localhost".into(),
        password: "s3cret-pw".into(),
    }
}

fn auth_struct() -> Value {
    Value::Struct(
        Struct::new()
            .with("AuthMethod", "password")
            .with("Username", "maint@localhost")
            .with("AuthString", "s3cret-pw"),
    )
}

fn quick_retry(max_attempts: u32) -> RetryOptions {
    RetryOptions {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        timeout: SHORT,
    }
}

/// PLCAPI in miniature: every call but `system.*` must carry [`auth_struct`] first.
fn plc_handler(multicalls: Arc<AtomicUsize>) -> Handler {
    fn one(method: &str, params: &[Value]) -> Result<Value, Fault> {
        if params.first() != Some(&auth_struct()) {
            return Err(Fault {
                code: 103,
                string: "bad auth".into(),
            });
        }
        match method {
            "AuthCheck" => Ok(Value::Int(1)),
            "GetNodes" => Ok(Value::Array(params[1..].to_vec())),
            _ => Err(Fault {
                code: 100,
                string: format!("no {method}"),
            }),
        }
    }
    Arc::new(move |call, _| match call.method.as_str() {
        "system.listMethods" => Reply::Value(Value::Array(vec![
            "AuthCheck".into(),
            "GetNodes".into(),
            "system.listMethods".into(),
            "system.multicall".into(),
        ])),
        "system.multicall" => {
            multicalls.fetch_add(1, Ordering::SeqCst);
            let calls = call.params[0].as_array().unwrap();
            let results = calls
                .iter()
                .map(|c| {
                    let c = c.as_struct().unwrap();
                    let method = c.get("methodName").unwrap().as_str().unwrap();
                    let params = c.get("params").unwrap().as_array().unwrap();
                    match one(method, params) {
                        Ok(v) => Value::Array(vec![v]),
                        Err(f) => Value::Struct(
                            Struct::new()
                                .with("faultCode", i64::from(f.code))
                                .with("faultString", f.string),
                        ),
                    }
                })
                .collect();
            Reply::Value(Value::Array(results))
        }
        method => match one(method, &call.params) {
            Ok(v) => Reply::Value(v),
            Err(f) => Reply::Fault(f.code, if f.code == 103 { "bad auth" } else { "no such" }),
        },
    })
}

/// `(client, CA file's directory)`: the URL names `localhost`, which the certificate covers.
fn plc_client(server: &TestServer, options: RetryOptions) -> (PlcApiClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki().ca_pem).unwrap();
    let url = format!("https://localhost:{}/PLCAPI/", server.addr.port());
    let client =
        PlcApiClient::new(&url, PlcServerAuth::CaFile(ca_file), password(), options).unwrap();
    (client, dir)
}

#[tokio::test]
async fn plc_call_verifies_the_server_by_ca_and_sends_auth_first() {
    let server = tls_server(
        plc_server_config(),
        Behaviour::default(),
        plc_handler(Arc::default()),
    )
    .await;
    let (client, _dir) = plc_client(&server, quick_retry(1));
    client.auth_check().await.unwrap();
    let nodes = client.call("GetNodes", vec![Value::Int(7)]).await.unwrap();
    assert_eq!(nodes, Value::Array(vec![Value::Int(7)]));
    let seen = server.counters.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        (
            "/PLCAPI/".to_owned(),
            format!("localhost:{}", server.addr.port())
        )
    );
}

#[tokio::test]
async fn plc_refuses_a_server_outside_the_ca() {
    let server = tls_server(
        plc_server_config(),
        Behaviour::default(),
        plc_handler(Arc::default()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let other_ca = certificate("Other CA", &ec_key(), None, true);
    let ca_file = dir.path().join("other.pem");
    std::fs::write(&ca_file, other_ca.to_pem().unwrap()).unwrap();
    let url = format!("https://localhost:{}/PLCAPI/", server.addr.port());
    let client = PlcApiClient::new(
        &url,
        PlcServerAuth::CaFile(ca_file),
        password(),
        quick_retry(2),
    )
    .unwrap();
    let message = transport_message(client.call("AuthCheck", vec![]).await);
    assert!(
        message.contains("TLS handshake with localhost"),
        "{message}"
    );
    assert!(message.contains("gave up after 2 attempts"), "{message}");
}

#[tokio::test]
async fn plc_retries_until_the_server_accepts() {
    let behaviour = Behaviour {
        drop_first: 2,
        ..Behaviour::default()
    };
    let server = tls_server(plc_server_config(), behaviour, plc_handler(Arc::default())).await;
    let (client, _dir) = plc_client(&server, quick_retry(5));
    assert_eq!(
        client.call("AuthCheck", vec![]).await.unwrap(),
        Value::Int(1)
    );
    assert_eq!((server.connections(), server.requests()), (3, 1));
}

#[tokio::test]
async fn plc_never_retries_a_fault() {
    let server = tls_server(
        plc_server_config(),
        Behaviour::default(),
        plc_handler(Arc::default()),
    )
    .await;
    let (client, _dir) = plc_client(&server, quick_retry(5));
    match client.call("DeleteEverything", vec![]).await {
        Err(RpcError::Fault(f)) => assert_eq!(f.code, 100),
        other => panic!("expected a fault, got {other:?}"),
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn plc_gives_up_after_max_attempts() {
    let behaviour = Behaviour {
        drop_first: usize::MAX,
        ..Behaviour::default()
    };
    let server = tls_server(plc_server_config(), behaviour, plc_handler(Arc::default())).await;
    let (client, _dir) = plc_client(&server, quick_retry(3));
    let (result, took) = elapsed(client.call("AuthCheck", vec![])).await;
    let message = transport_message(result);
    let port = server.addr.port();
    assert!(
        message.starts_with(&format!("TLS handshake with localhost:{port} failed")),
        "{message}"
    );
    assert!(message.ends_with("(gave up after 3 attempts)"), "{message}");
    assert_eq!(server.connections(), 3);
    // Pauses of 20 and 40 ms.
    assert!(took >= Duration::from_millis(60), "{took:?}");
}

#[tokio::test]
async fn plc_multicall_returns_each_result_in_order_with_auth_in_each_call() {
    let multicalls = Arc::new(AtomicUsize::new(0));
    let handler = plc_handler(Arc::clone(&multicalls));
    let server = tls_server(plc_server_config(), Behaviour::default(), handler).await;
    let (client, _dir) = plc_client(&server, quick_retry(1));
    let calls = vec![
        ("GetNodes".to_owned(), vec![Value::Int(1)]),
        ("NoSuchMethod".to_owned(), vec![]),
        ("AuthCheck".to_owned(), vec![]),
    ];
    let results = client.multicall(calls.clone()).await.unwrap();
    assert_eq!(
        results,
        vec![
            Ok(Value::Array(vec![Value::Int(1)])),
            Err(Fault {
                code: 100,
                string: "no NoSuchMethod".into()
            }),
            Ok(Value::Int(1)),
        ]
    );
    assert_eq!(multicalls.load(Ordering::SeqCst), 1);

    // In batches of two: the same results from two requests.
    let client = client.with_multicall_batch(2);
    assert_eq!(client.multicall(calls).await.unwrap(), results);
    assert_eq!(multicalls.load(Ordering::SeqCst), 3);
    assert!(client.multicall(vec![]).await.unwrap().is_empty());
    assert_eq!(multicalls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn plc_discover_lists_methods_and_warns_about_missing_ones() {
    let server = tls_server(
        plc_server_config(),
        Behaviour::default(),
        plc_handler(Arc::default()),
    )
    .await;
    let (client, _dir) = plc_client(&server, quick_retry(1));
    let logged = Arc::new(Mutex::new(Vec::new()));
    let guard = tracing::subscriber::set_default(Capture(Arc::clone(&logged)));
    let methods = client
        .discover(&["AuthCheck", "GetSlices", "AddSlice"])
        .await
        .unwrap();
    drop(guard);
    assert!(methods.iter().any(|m| m == "GetNodes"));
    assert_eq!(methods.len(), 4);
    let logged = logged.lock().unwrap().clone();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].contains("missing=AddSlice, GetSlices"),
        "{logged:?}"
    );
    assert!(!logged[0].contains("AuthCheck"), "{logged:?}");
}

#[test]
fn plc_debug_never_shows_secrets() {
    let client = PlcApiClient::new(
        "https://localhost:1/PLCAPI/",
        PlcServerAuth::DangerAcceptAny,
        password(),
        RetryOptions::default(),
    )
    .unwrap();
    let shown = format!("{client:?}");
    assert!(
        shown.contains("maint@localhost") && !shown.contains("s3cret-pw"),
        "{shown}"
    );
    let session = format!("{:?}", PlcAuth::Session("session-key-123".into()));
    assert!(!session.contains("session-key-123"), "{session}");
}

/// Records WARN and ERROR events as `name=value` text.
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Other tests' threads have no subscriber: decide per event, never once for all.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                write!(self.0, "{}={value:?} ", field.name()).unwrap();
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                write!(self.0, "{}={value} ", field.name()).unwrap();
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

// === UnixClient ===

#[tokio::test]
async fn unix_call_posts_to_rpc2_with_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodemanager.api");
    let counters = unix_server(&path, echo_handler()).await;
    let client = UnixClient::new(&path, SHORT);
    assert_eq!(
        client.call("echo", vec!["x".into()]).await.unwrap(),
        Value::String("x".into())
    );
    match client.call("fail", vec![]).await {
        Err(RpcError::Fault(f)) => assert_eq!(f.code, 7),
        other => panic!("expected a fault, got {other:?}"),
    }
    // One connection per call, as NodeManager closes them.
    assert_eq!(counters.connections.load(Ordering::SeqCst), 2);
    let seen = counters.seen.lock().unwrap().clone();
    assert_eq!(seen[0], ("/RPC2".to_owned(), "localhost".to_owned()));
}

#[tokio::test]
async fn unix_connection_dropped_without_answer_is_recognisable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodemanager.api");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        // Read the whole request, then hang up, as NodeManager's Python 3 server sometimes does.
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0_u8; 4096];
        while !String::from_utf8_lossy(&request).contains("</methodCall>") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0);
            request.extend_from_slice(&buf[..n]);
        }
    });
    let client = UnixClient::new(&path, SHORT);
    let message = transport_message(client.call("GetXIDs", vec![]).await);
    assert!(
        message.starts_with("NodeManager closed the connection without answering GetXIDs"),
        "{message}"
    );
}

#[tokio::test]
async fn unix_missing_socket_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.api");
    let client = UnixClient::new(&path, SHORT);
    let message = transport_message(client.call("GetXIDs", vec![]).await);
    let expected = format!("cannot connect to NodeManager at {}: ", path.display());
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.contains("no such file"), "{message}");
}

#[tokio::test]
async fn unix_from_stream_serves_exactly_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodemanager.api");
    let counters = unix_server(&path, echo_handler()).await;
    let stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let client = UnixClient::from_stream(stream, SHORT);
    assert_eq!(
        client.call("echo", vec![Value::Int(3)]).await.unwrap(),
        Value::Int(3)
    );
    match client.call("echo", vec![Value::Int(4)]).await {
        Err(RpcError::Internal(m)) => assert!(m.contains("already used"), "{m}"),
        other => panic!("expected a clear error, got {other:?}"),
    }
    assert_eq!(counters.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unix_times_out_on_a_silent_nodemanager() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodemanager.api");
    let _counters = unix_server(&path, echo_handler()).await;
    let timeout = Duration::from_millis(300);
    let client = UnixClient::new(&path, timeout);
    let (result, took) = elapsed(client.call("hang", vec![])).await;
    assert!(matches!(result, Err(RpcError::Timeout(_))), "{result:?}");
    assert!(took < timeout + Duration::from_millis(600), "{took:?}");
}
