//! Load generator for the Geni protocol server (DESIGN §10): requests per second and latency of a
//! trivial authenticated method over keep-alive HTTPS with N concurrent clients, then new TLS
//! connections (with a client certificate) per second.
//!
//! The method is what every node call starts with: verify the slice credential (the verifier's
//! cache makes repeats cheap), bind the caller GID to the TLS key, check the right. Server and
//! clients run in this one process and share the machine's cores, so the figures are a floor.
//!
//! ```sh
//! cargo run --release -p geni-rpc --example loadgen -- [--clients 64] [--seconds 10]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_rpc::{Dispatcher, Limits, RpcError, Server, ServerOptions, TlsIdentity};
use geni_trust::{
    ChainForm, Hierarchy, Hrn, Keypair, Operation, Policy, RecordType, RightList, TrustedRoots,
    Verifier,
};
use geni_xmlrpc::Value;

struct Args {
    clients: usize,
    seconds: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        clients: 64,
        seconds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--clients", Some(n)) => a.clients = usize::try_from(n).map_err(|e| e.to_string())?,
            ("--seconds", Some(n)) => a.seconds = n,
            _ => return Err("usage: loadgen [--clients N] [--seconds S]".into()),
        }
    }
    Ok(a)
}

/// The `per_mille`-th latency of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let i = (sorted.len().saturating_sub(1) * per_mille).div_ceil(1000);
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(usage) => {
            eprintln!("{usage}");
            return std::process::ExitCode::from(2);
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(dir.path());
    let site: Hrn = "planetlab.us.pl".parse().unwrap();
    h.create_authority(&site, true).unwrap();
    let node_key = Keypair::generate(2048).unwrap();
    let node = h
        .create_gid(
            &"planetlab.us.pl.node1".parse().unwrap(),
            None,
            &node_key.public_key(),
        )
        .unwrap();
    let user_key = Keypair::generate(2048).unwrap();
    let user = h
        .create_gid(
            &"planetlab.us.pl.alice".parse().unwrap(),
            None,
            &user_key.public_key(),
        )
        .unwrap();
    let slice_key = Keypair::generate(2048).unwrap();
    let slice = h
        .create_gid(
            &"planetlab.us.pl.s1".parse().unwrap(),
            None,
            &slice_key.public_key(),
        )
        .unwrap();
    let cred = h
        .issue_credential(
            &user,
            &slice,
            &RightList::for_record_type(RecordType::Slice),
            false,
            86_400,
        )
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let root = h.authority(&"planetlab".parse().unwrap()).unwrap().gid;
    let verifier = Arc::new(Verifier::new(
        TrustedRoots::from_gids(vec![root]).unwrap(),
        Policy::default(),
    ));

    let mut dispatcher = Dispatcher::new();
    dispatcher.register(
        "list_slices",
        "authenticated no-op",
        move |ctx: geni_rpc::CallContext, params: Vec<Value>| {
            let verifier = Arc::clone(&verifier);
            async move {
                let Some(Value::String(cred)) = params.first() else {
                    return Err(RpcError::invalid_params(
                        "list_slices",
                        "takes a credential",
                    ));
                };
                let v = verifier.verify_credential_str(cred)?;
                ctx.peer.require_caller(v.caller().gid())?;
                if !v.can_perform(Operation::ListSlices) {
                    return Err(RpcError::InsufficientRights {
                        operation: Operation::ListSlices.to_string(),
                        rights: v.privileges().to_string(),
                    });
                }
                Ok(Value::Array(Vec::new()))
            }
        },
    );
    let server_identity = TlsIdentity::from_pem(
        &node_key.to_pem().unwrap(),
        &node.to_chain_string(ChainForm::Separator).unwrap(),
    )
    .unwrap();
    let limits = Limits {
        max_connections: 4096,
        ..Limits::default()
    };
    let options = ServerOptions {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        unix: None,
        limits,
    };
    let server = Server::bind(options, &server_identity, dispatcher)
        .await
        .unwrap();
    let url = format!("https://{}/", server.local_addr().unwrap());
    let stop = server.shutdown_handle();
    let serving = tokio::spawn(server.serve());

    let client_identity = TlsIdentity::from_pem(
        &user_key.to_pem().unwrap(),
        &user.to_chain_string(ChainForm::Separator).unwrap(),
    )
    .unwrap();
    let auth = server_auth_from_gid(&node);
    let new_client = move || {
        GeniClient::new(
            &url,
            client_identity.clone(),
            auth.clone(),
            Duration::from_secs(10),
        )
        .unwrap()
    };

    // Phase 1: keep-alive clients.
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let client = new_client();
        let cred = cred.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                client
                    .call("list_slices", vec![Value::String(cred.clone())])
                    .await
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "keep-alive: {} clients, {} calls in {:.1} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        args.clients,
        all.len(),
        elapsed,
        all.len() as f64 / elapsed,
        percentile(&all, 500).as_secs_f64() * 1e3,
        percentile(&all, 990).as_secs_f64() * 1e3,
    );

    // Phase 2: a new TLS connection (client certificate, full handshake) for every call.
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let cred = cred.clone();
        let make = new_client.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                make()
                    .call("list_slices", vec![Value::String(cred.clone())])
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }));
    }
    let started = Instant::now();
    let mut conns = 0;
    for t in tasks {
        conns += t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "new connections: {conns} in {elapsed:.1} s: {:.0} connections/s (each with one call)",
        conns as f64 / elapsed
    );

    stop.shutdown();
    serving.await.unwrap().unwrap();
    std::process::ExitCode::SUCCESS
}
