//! A real `geni-agent node` (default limits) under hostile load from loopback, as issue 13 tried
//! it: a flood of bare TCP connections and a TLS slowloris from one address while another
//! address is served; a client that never reads its answers; requests built to cost CPU (keys
//! outside the key policy, a multicall over the cap), with the node's own CPU time for them
//! printed beside a normal request's; and, ignored by default because it moves gigabytes, the
//! node's RSS through a flood of 4 MiB bodies and a flood of junk-prefixed credentials.
//!
//! Raw TLS clients are OpenSSL's blocking ones, run on blocking threads: the attackers need no
//! more than that, and nothing of `geni-rpc`'s client can hide a server bug.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use geni_rpc::RpcError;
use geni_trust::ChainForm;
use geni_xmlrpc::{Struct, Value};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use support::{Principal, World, fault_code};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ; 100 on every Linux we run on).
const TICKS_PER_SEC: u64 = 100;

/// The node's CPU time (user + system) so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)
}

/// `VmRSS` and `VmHWM` (peak) of the node, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn tcp_from(
    from: [u8; 4],
    addr: SocketAddr,
    small_window: bool,
) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if small_window {
        socket.set_recv_buffer_size(4096)?;
    }
    socket.bind(SocketAddr::from((from, 0)))?;
    let stream = socket.connect(addr).await?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// OpenSSL client presenting `who`'s GID and key; the server is not authenticated (these are
/// attackers, not clients).
fn connector(who: &Principal) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    let key = openssl::pkey::PKey::private_key_from_pem(&who.key.to_pem().unwrap()).unwrap();
    let cert = openssl::x509::X509::from_pem(
        who.gid
            .to_chain_string(ChainForm::Plain)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    b.set_private_key(&key).unwrap();
    b.set_certificate(&cert).unwrap();
    b.build()
}

fn handshake(c: &SslConnector, tcp: TcpStream) -> Option<SslStream<TcpStream>> {
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut config = c.configure().unwrap();
    config.set_verify_hostname(false);
    config.connect("localhost", tcp).ok()
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn call_body(method: &str, params: Vec<Value>) -> String {
    geni_xmlrpc::write_method_call(&geni_xmlrpc::MethodCall {
        method: method.to_owned(),
        params,
    })
    .unwrap()
}

/// `noop` answered for `who` on a new connection (a new client each time), and how long it took.
async fn timed_noop(w: &World, cred: &str) -> (Result<Value, RpcError>, Duration) {
    let client = w.client(&w.alice);
    let started = Instant::now();
    let r = client
        .call("noop", vec![Value::from(cred), "ping".into()])
        .await;
    (r, started.elapsed())
}

// See: issue 13 ("1,124 bare TCP connects from one host ... lock every other client out";
// "a slowloris of 1,124 TLS connections with unfinished headers does the same").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_one_address_cannot_lock_a_node_out() {
    let w = World::new();
    let addr: SocketAddr = w.addr.parse().unwrap();
    let cred = w.user_cred(&w.alice);
    let (r, baseline) = timed_noop(&w, &cred).await;
    r.unwrap();

    // 1,100 bare TCP connections from 127.0.0.3, held open and silent.
    let mut bare = Vec::new();
    for _ in 0..1_100 {
        if let Ok(tcp) = tcp_from([127, 0, 0, 3], addr, false).await {
            bare.push(tcp);
        }
    }
    let (r, during_bare) = timed_noop(&w, &cred).await;
    r.unwrap();

    // 1,100 TLS connections from 127.0.0.4, each with headers begun and never finished.
    let connector = connector(&w.alice);
    let (slow, refused) = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (mut slow, mut refused) = (Vec::new(), 0);
        for _ in 0..1_100 {
            let Ok(tcp) = rt.block_on(tcp_from([127, 0, 0, 4], addr, false)) else {
                refused += 1;
                continue;
            };
            let Some(mut tls) = handshake(&connector, tcp) else {
                refused += 1;
                continue;
            };
            if tls.write_all(b"POST / HTTP/1.1\r\nHost: node\r\n").is_ok() {
                slow.push(tls);
            } else {
                refused += 1;
            }
        }
        (slow, refused)
    })
    .await
    .unwrap();
    let (r, during_slowloris) = timed_noop(&w, &cred).await;
    r.unwrap();
    println!(
        "noop from another address: {baseline:?} alone, {during_bare:?} with {} bare \
         connections held, {during_slowloris:?} with {} slowloris connections established \
         ({refused} refused at accept)",
        bare.len(),
        slow.len()
    );
    assert_eq!(bare.len(), 1_100, "the kernel accepts every connect");
    assert!(
        slow.len() <= 64,
        "{} TLS connections from one address were admitted (the share is 64)",
        slow.len()
    );
    // Generous: a shared machine compiling beside the test; the figure above is the point.
    assert!(during_bare < Duration::from_secs(3) && during_slowloris < Duration::from_secs(3));
}

// See: issue 13 ("a client that ... never reads its ... fault holds its slot forever").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_a_node_cuts_a_client_that_does_not_read() {
    let w = World::new();
    let addr: SocketAddr = w.addr.parse().unwrap();
    let cred = w.user_cred(&w.alice);
    let tcp = tcp_from([127, 0, 0, 5], addr, true).await.unwrap();
    let connector = connector(&w.alice);
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut tls = handshake(&connector, tcp).unwrap();
        // Four pipelined echoes of 1 MiB: far more than the socket buffers hold.
        let request = post(&call_body(
            "noop",
            vec![Value::from(cred.as_str()), "x".repeat(1 << 20).into()],
        ));
        for _ in 0..4 {
            tls.write_all(&request).unwrap();
        }
        // Past the default 10 s write timeout, read what there is.
        std::thread::sleep(Duration::from_secs(13));
        tls.get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut received = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        let ended = loop {
            match tls.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => received += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break false,
                Err(_) => break true,
            }
        };
        (received, ended)
    })
    .await
    .unwrap();
    let (received, ended) = outcome;
    println!(
        "non-reading client: {received} of about {} bytes delivered, connection ended: {ended}, \
         after {:?}",
        4 << 20,
        started.elapsed()
    );
    assert!(
        ended,
        "the node kept the connection of a client that does not read"
    );
    assert!(
        received < 4 << 20,
        "everything was delivered: nothing was cut"
    );
    let (r, _) = timed_noop(&w, &w.user_cred(&w.alice)).await;
    r.unwrap();
}

/// A PEM certificate for the RSA public key (n, e), `n` random and odd of `bits` bits, `e` of
/// `e_bits` bits (65537 when 17), signed by `signer`: no one holds its private key, and a parser
/// that checked nothing would spend a verification on it.
fn pem_with_rsa_key(bits: i32, e_bits: i32, signer: &Principal) -> String {
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
    let key =
        openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::from_public_components(n, e).unwrap())
            .unwrap();
    let signing = openssl::pkey::PKey::private_key_from_pem(&signer.key.to_pem().unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, "planetlab.us.pl.mallory")
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
    b.sign(&signing, openssl::hash::MessageDigest::sha256())
        .unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

/// The node's CPU time per call for `count` calls of `method(params)` (each must fault with
/// `code`), measured from /proc at 10 ms resolution over all of them.
async fn cpu_per_call(
    w: &World,
    count: u32,
    method: &str,
    params: &[Value],
    code: i32,
) -> Duration {
    let pid = w.agent.as_ref().unwrap().id();
    let client = w.client(&w.alice);
    let before = cpu_time(pid);
    for _ in 0..count {
        let (got, msg) = fault_code(client.call(method, params.to_vec()).await);
        assert_eq!(got, code, "{}", &msg[..msg.len().min(300)]);
    }
    (cpu_time(pid) - before) / count
}

// See: issue 13 ("Unbounded CPU per request").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_expensive_keys_and_long_multicalls_are_refused_cheaply() {
    let w = World::new();
    let pid = w.agent.as_ref().unwrap().id();
    let client = w.client(&w.alice);

    // Baseline: a credential the node has not seen (a cold verification) per call.
    let before = cpu_time(pid);
    for _ in 0..20 {
        client
            .call(
                "noop",
                vec![Value::from(w.user_cred(&w.alice).as_str()), 1.into()],
            )
            .await
            .unwrap();
    }
    let cold = (cpu_time(pid) - before) / 20;

    let huge_exponent = vec![pem_with_rsa_key(3072, 3071, &w.alice); 16].join("-----parent-----");
    let huge_modulus = pem_with_rsa_key(16384, 17, &w.alice);
    let per_huge_exponent = cpu_per_call(
        &w,
        20,
        "noop",
        &[Value::from(huge_exponent.as_str()), 1.into()],
        100,
    )
    .await;
    let per_huge_modulus = cpu_per_call(
        &w,
        20,
        "noop",
        &[Value::from(huge_modulus.as_str()), 1.into()],
        100,
    )
    .await;
    // 65 calls, each with a credential the node has not seen: refused before any runs.
    let calls: Vec<Value> = (0..65)
        .map(|_| {
            Value::Struct(Struct::new().with("methodName", "noop").with(
                "params",
                Value::Array(vec![Value::from(w.user_cred(&w.alice).as_str()), 1.into()]),
            ))
        })
        .collect();
    let per_long_multicall =
        cpu_per_call(&w, 5, "system.multicall", &[Value::Array(calls)], -32602).await;
    // The most work one request can ask for now: a multicall at the cap, every call a cold
    // verification of a distinct credential.
    let calls: Vec<Value> = (0..64)
        .map(|_| {
            Value::Struct(Struct::new().with("methodName", "noop").with(
                "params",
                Value::Array(vec![Value::from(w.user_cred(&w.alice).as_str()), 1.into()]),
            ))
        })
        .collect();
    let before = cpu_time(pid);
    let results = client
        .call("system.multicall", vec![Value::Array(calls)])
        .await
        .unwrap();
    let full_multicall = cpu_time(pid) - before;
    assert_eq!(results.as_array().map(<[Value]>::len), Some(64));
    println!("node CPU for one multicall of 64 cold credentials (the cap): {full_multicall:?}");
    // The costliest shape built here: 64 calls, each a chain of 16 distinct certificates with
    // 8192-bit keys (the policy's largest), 2 MB in all. Each is refused (100 at parse, 101 for
    // the budget); what bounds them is the request's work budget.
    let calls: Vec<Value> = (0..64)
        .map(|_| {
            let chain: Vec<String> = (0..16)
                .map(|_| pem_with_rsa_key(8192, 17, &w.alice))
                .collect();
            Value::Struct(Struct::new().with("methodName", "noop").with(
                "params",
                Value::Array(vec![
                    Value::from(chain.join("-----parent-----").as_str()),
                    1.into(),
                ]),
            ))
        })
        .collect();
    let before = cpu_time(pid);
    let results = client
        .call("system.multicall", vec![Value::Array(calls)])
        .await
        .unwrap();
    let big_keys = cpu_time(pid) - before;
    for r in results.as_array().unwrap() {
        let code = r
            .as_struct()
            .and_then(|f| f.get("faultCode"))
            .and_then(Value::as_i64);
        assert!(matches!(code, Some(100 | 101)), "{r:?}");
    }
    println!(
        "node CPU for one multicall of 64 chains of 16 distinct 8192-bit-key certificates: \
         {big_keys:?}"
    );
    println!(
        "node CPU per call: cold credential {cold:?}; 16-link chain of 3072-bit keys with \
         3071-bit exponents {per_huge_exponent:?}; 16,384-bit key {per_huge_modulus:?}; \
         multicall of 65 cold credentials {per_long_multicall:?} (resolution 10 ms over \
         20, 20 and 5 calls)"
    );
}

/// A multicall at the cap, each call `noop` with a credential of `who` the node has not seen.
fn cold_noops(w: &World, who: &Principal, count: usize) -> (Vec<String>, Value) {
    let creds: Vec<String> = (0..count).map(|_| w.user_cred(who)).collect();
    let calls = creds
        .iter()
        .map(|c| {
            Value::Struct(Struct::new().with("methodName", "noop").with(
                "params",
                Value::Array(vec![Value::from(c.as_str()), 1.into()]),
            ))
        })
        .collect();
    (creds, Value::Array(calls))
}

// See: issue 13 ("Report the worst CPU one 4 MiB request can cost after this (target: under
// 100 ms)"). A request's verifications share one work budget: past it the remaining calls of a
// multicall are refused (101), and nothing about them is remembered. Shown here with a budget a
// quarter of the default, so that 64 ordinary credentials go over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_one_request_buys_no_more_verification_than_its_budget() {
    let w = World::build(
        "pl",
        "local",
        "[node.limits]\nmax_verification_work = 12500\n",
        support::bin(),
    );
    let client = w.client(&w.alice);
    let (creds, calls) = cold_noops(&w, &w.alice, 64);
    let results = client.call("system.multicall", vec![calls]).await.unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 64);
    let answered = results
        .iter()
        .take_while(|r| r.as_array().is_some())
        .count();
    for r in &results[answered..] {
        let fault = r.as_struct().unwrap();
        assert_eq!(
            fault.get("faultCode").and_then(Value::as_i64),
            Some(101),
            "{r:?}"
        );
        let text = fault.get("faultString").and_then(Value::as_str).unwrap();
        assert!(
            text.contains("more verification work than one request"),
            "{text}"
        );
    }
    // A cold 3-level credential costs ~600 units: about 20 fit in 12,500.
    assert!((10..40).contains(&answered), "{answered} of 64 verified");
    // Refused for want of budget, not remembered against the credentials: each verifies in a
    // request of its own, and the verified ones are served from the cache at no cost.
    for cred in [&creds[answered], &creds[63], &creds[0]] {
        client
            .call("noop", vec![Value::from(cred.as_str()), 1.into()])
            .await
            .unwrap();
    }
    println!("a 12,500-unit budget verified {answered} of 64 cold credentials in one multicall");
}

/// Sends one request of `body_len` bytes (`a`s and one byte that is not UTF-8, so the node buffers
/// all of it and refuses it at once) and reads the status line of the answer.
fn send_big_body(connector: &SslConnector, tcp: TcpStream, body: &[u8]) -> Option<u16> {
    let mut tls = handshake(connector, tcp)?;
    tls.get_ref()
        .set_read_timeout(Some(Duration::from_secs(120)))
        .ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).ok()?;
    tls.write_all(body).ok()?;
    let mut status = [0u8; 12];
    tls.read_exact(&mut status).ok()?;
    std::str::from_utf8(&status[9..12]).ok()?.parse().ok()
}

// See: issue 13 ("Unbounded memory"). Moves 4 GiB over loopback TLS: run it alone, in release
// for figures that mean something, with `cargo test --release -p geni-agent --test it
// r13_node_rss -- --ignored --nocapture`. `GENI_AGENT_NODE__LIMITS__<KEY>` in the environment
// reaches the node (say, MAX_BYTES_IN_FLIGHT) to see what a limit buys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 4 GiB flood; run by hand (see above) for the RSS report"]
async fn r13_node_rss_through_the_body_flood_and_the_junk_flood() {
    let w = World::new();
    let pid = w.agent.as_ref().unwrap().id();
    let addr: SocketAddr = w.addr.parse().unwrap();
    let cred = w.user_cred(&w.alice);
    let client = w.client(&w.alice);
    client
        .call("noop", vec![Value::from(cred.as_str()), 1.into()])
        .await
        .unwrap();
    let (idle, _) = rss_mib(pid);

    // 1,024 connections from 16 addresses (64 each, the per-address share), each sending a
    // 4 MiB body at once.
    let mut body = vec![b'a'; 4 * 1024 * 1024 - 1];
    body.push(0xff);
    let body = std::sync::Arc::new(body);
    let connector = std::sync::Arc::new(connector(&w.alice));
    let mut streams = Vec::new();
    for i in 0..1_024u16 {
        let from = [127, 0, 1, u8::try_from(i % 16).unwrap() + 1];
        streams.push(tcp_from(from, addr, false).await.unwrap());
    }
    let started = Instant::now();
    let threads: Vec<_> = streams
        .into_iter()
        .map(|tcp| {
            let (connector, body) = (connector.clone(), body.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || send_big_body(&connector, tcp, &body))
                .unwrap()
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for t in threads {
        let key = t
            .join()
            .unwrap()
            .map_or("no answer".into(), |s| s.to_string());
        *statuses.entry(key).or_default() += 1;
    }
    let flood_time = started.elapsed();
    let (after_bodies, peak_bodies) = rss_mib(pid);

    // 40 copies of one valid credential behind 1-3 MiB of distinct junk.
    for i in 0..40usize {
        let junk = format!("{i}{}\n", "j".repeat((1 + i % 3) << 20));
        let (code, _) = fault_code(
            client
                .call(
                    "noop",
                    vec![Value::from(format!("{junk}{cred}").as_str()), 1.into()],
                )
                .await,
        );
        assert_eq!(code, 100);
    }
    let (after_junk, peak_all) = rss_mib(pid);
    println!(
        "node RSS: idle {idle:.1} MiB; 1,024 x 4 MiB bodies in {flood_time:?} (answers: \
         {statuses:?}): peak {peak_bodies:.1} MiB, {after_bodies:.1} MiB after; 40 junk-prefixed \
         credentials: {after_junk:.1} MiB after, peak over the whole test {peak_all:.1} MiB"
    );
    // The junk flood used to grow the node by ~110 MB (every text kept in the verdict cache);
    // now every one is refused at parse, and what remains is the allocator keeping some of the
    // 40 bodies and their decoded copies (12-18 MB seen). The body flood's figures are the
    // report (issue 13's target: under 100 MB); what bounds them is Limits::max_bytes_in_flight
    // plus the cost of each connection.
    assert!(
        after_junk - after_bodies < 32.0,
        "the junk flood grew the node from {after_bodies:.1} to {after_junk:.1} MiB"
    );
    // The target holds for what ships (a debug build's code alone is 15 MiB more).
    if !cfg!(debug_assertions) {
        assert!(peak_all < 100.0, "peak {peak_all:.1} MiB");
    }
}
