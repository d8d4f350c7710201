//! Node figures for DESIGN §10: the `geni-agent node` process's RSS idle and with 1,000
//! slivers, and authenticated `list_slices` requests per second over keep-alive HTTPS with 64
//! clients. The node runs as a real process with the local backend; clients run in this process
//! on the same cores, so the figures are a floor.
//!
//! ```sh
//! cargo bench -p geni-agent --bench node_load [-- --slivers 1000 --seconds 10]
//! GENI_BENCH_BIN=path/to/static/geni-agent cargo bench -p geni-agent --bench node_load
//! ```
//!
//! `GENI_BENCH_BIN` measures another build of the node, e.g. the static musl binary that ships.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::time::{Duration, Instant};

use geni_trust::{ChainForm, Keypair, RecordType, RightList};
use geni_xmlrpc::{Struct, Value};
use support::{World, hrn};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// RssAnon / RssFile: heap and stacks versus the executable's own pages.
fn rss_parts(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("RssAnon:") || l.starts_with("RssFile:"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let slivers = arg("--slivers", 1000);
    let seconds = arg("--seconds", 10);
    let w = match std::env::var_os("GENI_BENCH_BIN") {
        Some(bin) => World::build("pl", "local", "", bin.into()),
        None => World::new(),
    };
    let pid = w.agent.as_ref().unwrap().id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("node idle RSS: {} KiB ({})", rss_kib(pid), rss_parts(pid));

    // One slice key for every sliver: key generation is not what is measured.
    let key = Keypair::generate(2048).unwrap();
    let alice = w.client(&w.alice);
    let started = Instant::now();
    let mut last_cred = String::new();
    // Each redeem's latency: DESIGN §10 holds the 1,000th to at most twice the 1st.
    let mut redeems = Vec::new();
    for i in 0..slivers {
        let slice =
            w.h.create_gid(
                &hrn(&format!("planetlab.us.pl.b{i}")),
                None,
                &key.public_key(),
            )
            .unwrap();
        let attrs = Struct::new()
            .with("name", format!("pl_b{i}"))
            .with(
                "keys",
                Value::Array(vec![Value::from("ssh-rsa AAAA bench@x")]),
            )
            .with("timestamp", Value::Double(1.0));
        let ticket =
            w.h.issue_ticket(&w.alice.gid, &slice, &attrs, &Struct::new(), None, 86_400)
                .unwrap()
                .to_chain_string(ChainForm::Separator)
                .unwrap();
        let call = Instant::now();
        alice
            .call("redeem_ticket", vec![Value::from(ticket.as_str())])
            .await
            .unwrap();
        redeems.push(call.elapsed());
        if i + 1 == slivers {
            last_cred =
                w.h.issue_credential(
                    &w.alice.gid,
                    &slice,
                    &RightList::for_record_type(RecordType::Slice),
                    false,
                    86_400,
                )
                .unwrap()
                .to_chain_string(ChainForm::Separator)
                .unwrap();
        }
    }
    println!(
        "redeemed {slivers} tickets in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let (Some(first), Some(last)) = (redeems.first(), redeems.last()) {
        // Single calls are noisy: also the medians of the first and the last ten.
        let median = |s: &[Duration]| {
            let mut v = s.to_vec();
            v.sort();
            v[v.len() / 2]
        };
        let k = redeems.len().min(10);
        let (head, tail) = (median(&redeems[..k]), median(&redeems[redeems.len() - k..]));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "redeem of sliver 1: {:.2} ms, of sliver {slivers}: {:.2} ms ({:.2}x); medians of the \
             first and last {k}: {:.2} ms, {:.2} ms ({:.2}x)",
            ms(*first),
            ms(*last),
            ms(*last) / ms(*first),
            ms(head),
            ms(tail),
            ms(tail) / ms(head)
        );
    }
    println!("node RSS with {slivers} slivers: {} KiB", rss_kib(pid));

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = w.client(&w.alice);
        let cred = last_cred.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                client
                    .call("list_slices", vec![Value::from(cred.as_str())])
                    .await
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let t0 = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = t0.elapsed().as_secs_f64();
    all.sort_unstable();
    let p99 = all
        .get((all.len().saturating_sub(1) * 99).div_ceil(100))
        .copied()
        .unwrap_or_default();
    println!(
        "list_slices, 64 keep-alive clients, {slivers} slivers: {:.0} req/s, p99 {:.2} ms",
        all.len() as f64 / secs,
        p99.as_secs_f64() * 1e3
    );
    println!("node RSS under load: {} KiB", rss_kib(pid));
}
