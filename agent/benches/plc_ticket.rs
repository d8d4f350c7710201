//! `get_ticket` latency for DESIGN §10 (target p50 ≤ 2 ms with 10,000 slices in SQLite): a real
//! `geni-agent plc serve` on a SQLite registry seeded through its own `create_gid` and
//! `register` with 10,000 slices (each with a researcher and so an SSH key to look up), then
//! sequential `get_ticket` calls from one client (one kept-alive HTTPS connection at a time), on
//! slices drawn at random:
//!
//! - with the site's authority credential (one credential, verified once and then cached);
//! - with a fresh slice credential per call (each verified cold: every chain, every signature).
//!
//! The client runs in this process on the same two cores, so the figures include its work too.
//!
//! ```sh
//! cargo bench -p geni-agent --bench plc_ticket [-- --slices 10000 --calls 2000]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use geni_trust::Keypair;
use geni_xmlrpc::{Struct, Value};
use support::plc::{Db, Plc};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator: which slice each call asks for.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    // Nearest rank, in per mille so that the index stays integer arithmetic.
    let at = |per_mille: usize| {
        let i = (samples.len() - 1) * per_mille / 1_000;
        samples[i].as_secs_f64() * 1_000.0
    };
    println!(
        "{what}: {} calls, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        at(500),
        at(900),
        at(990),
        at(1_000)
    );
}

#[tokio::main]
async fn main() {
    let slices = arg("--slices", 10_000);
    let calls = arg("--calls", 2_000);
    let plc = Arc::new(Plc::new(Db::Sqlite).await.unwrap());
    let user_cred = plc.self_credential(&plc.alice).await;
    let alice = Arc::new(plc.client(&plc.alice).await);
    let sa_cred = alice
        .call(
            "get_credential",
            vec![
                Value::from(user_cred.as_str()),
                Value::from("sa"),
                Value::from("planetlab.us.pl"),
            ],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    // One slice key for all: key generation is not what is measured.
    let key = Keypair::generate(2048).unwrap();
    let pem = String::from_utf8(key.public_key().to_pem().unwrap()).unwrap();

    let started = Instant::now();
    let workers = 4;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let plc = Arc::clone(&plc);
        let sa_cred = sa_cred.clone();
        let pem = pem.clone();
        tasks.push(tokio::spawn(async move {
            let c = plc.client(&plc.alice).await;
            let mut i = w;
            while i < slices {
                let hrn = format!("planetlab.us.pl.b{i}");
                let gid = c
                    .call(
                        "create_gid",
                        vec![
                            Value::from(sa_cred.as_str()),
                            Value::from(hrn.as_str()),
                            Value::Nil,
                            Value::from(pem.as_str()),
                        ],
                    )
                    .await
                    .unwrap();
                let record = Struct::new()
                    .with("name", hrn.as_str())
                    .with("type", "slice")
                    .with("gid", gid)
                    .with(
                        "geni_info",
                        Struct::new().with(
                            "researcher",
                            Value::Array(vec![Value::from(plc.alice.hrn.as_str())]),
                        ),
                    );
                c.call(
                    "register",
                    vec![Value::from(sa_cred.as_str()), Value::Struct(record)],
                )
                .await
                .unwrap();
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "seeded {slices} slices through create_gid + register in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (name, value) in [("cpu_share", "8"), ("disk_max", "1000000")] {
        plc.ok(&["slice", "attr", "set", "pl_b0", name, value]);
    }
    let db = std::fs::metadata(plc.path("plc.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("plc.db: {} KiB", db / 1024);

    let mut rng = Lcg(42);
    let ticket = |cred: String, hrn: String| {
        let alice = Arc::clone(&alice);
        async move {
            let t = Instant::now();
            let v = alice
                .call(
                    "get_ticket",
                    vec![
                        Value::from(cred.as_str()),
                        Value::from(hrn.as_str()),
                        Value::Struct(Struct::new()),
                    ],
                )
                .await
                .unwrap();
            assert!(v.as_str().is_some_and(|s| s.contains("BEGIN CERTIFICATE")));
            t.elapsed()
        }
    };
    // Warm the connection and the authority credential's cache entry.
    for _ in 0..50 {
        ticket(sa_cred.clone(), "planetlab.us.pl.b0".into()).await;
    }
    let mut samples = Vec::new();
    for _ in 0..calls {
        let hrn = format!("planetlab.us.pl.b{}", rng.below(slices));
        samples.push(ticket(sa_cred.clone(), hrn).await);
    }
    report("get_ticket, authority credential, random slice", samples);

    let fresh = calls.min(500);
    let mut creds = Vec::new();
    for _ in 0..fresh {
        let hrn = format!("planetlab.us.pl.b{}", rng.below(slices));
        let cred = alice
            .call(
                "get_credential",
                vec![
                    Value::from(user_cred.as_str()),
                    Value::from("slice"),
                    Value::from(hrn.as_str()),
                ],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        creds.push((cred, hrn));
    }
    let mut samples = Vec::new();
    for (cred, hrn) in creds {
        samples.push(ticket(cred, hrn).await);
    }
    report(
        "get_ticket, fresh slice credential (cold verify), random slice",
        samples,
    );
}
