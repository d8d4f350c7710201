//! Crash safety of `geni-agent node`: a stream of operations (redeem, start, stop, reset,
//! delete) runs against the node while the test kills it with SIGKILL at a random moment; after a
//! restart the slivers must be exactly what was acknowledged, except for the one operation in flight, which
//! may have happened or not — never half. Repeated 20 times on the same state directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use geni_trust::{ChainForm, RecordType, RightList};
use geni_xmlrpc::{Struct, Value};
use support::{Principal, World, alive, hrn, principal};

/// What the test knows of one sliver: its state as acknowledged, and the operation in flight
/// when the node died, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Absent,
    Created,
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Redeem,
    Start,
    Stop,
    Reset,
    Delete,
}

impl Op {
    fn after(self, before: Known) -> Known {
        match (self, before) {
            (Self::Redeem, Known::Absent) => Known::Created,
            (Self::Redeem, k) => k,
            (Self::Start | Self::Stop | Self::Reset, Known::Absent) | (Self::Delete, _) => {
                Known::Absent
            }
            (Self::Start | Self::Reset, _) => Known::Running,
            (Self::Stop, _) => Known::Stopped,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap() % n
    }
}

fn ticket(w: &World, slice: &Principal, name: &str, timestamp: f64) -> String {
    let attrs = Struct::new()
        .with("name", name)
        .with("keys", Value::Array(vec![Value::from("ssh-rsa AAAA k@x")]))
        .with("timestamp", Value::Double(timestamp))
        .with("initscript", "#!/bin/sh\nexec sleep 1000\n");
    w.h.issue_ticket(
        &w.alice.gid,
        &slice.gid,
        &attrs,
        &Struct::new(),
        Some(&hrn("planetlab.us.pl.node1")),
        86_400,
    )
    .unwrap()
    .to_chain_string(ChainForm::Separator)
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_sigkill() {
    let mut w = World::new();
    let seed = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % u128::from(u64::MAX),
    )
    .unwrap();
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let slices: Vec<(String, Principal)> = (0..3)
        .map(|i| {
            (
                format!("pl_k{i}"),
                principal(&w.h, &format!("planetlab.us.pl.k{i}")),
            )
        })
        .collect();
    let creds: Vec<String> = slices
        .iter()
        .map(|(_, s)| {
            w.h.issue_credential(
                &w.alice.gid,
                &s.gid,
                &RightList::for_record_type(RecordType::Slice),
                false,
                86_400,
            )
            .unwrap()
            .to_chain_string(ChainForm::Separator)
            .unwrap()
        })
        .collect();
    let (site, site_cred) = w.site();

    let known: Arc<Mutex<BTreeMap<String, Known>>> = Arc::new(Mutex::new(
        slices
            .iter()
            .map(|(n, _)| (n.clone(), Known::Absent))
            .collect(),
    ));
    let mut timestamp = 1.0;
    for round in 0..20 {
        // A stream of operations; each records itself as in flight, then as acknowledged.
        let mut plan = Vec::new();
        for _ in 0..40 {
            let i = rng.next(slices.len());
            let op = [Op::Redeem, Op::Start, Op::Stop, Op::Reset, Op::Delete][rng.next(5)];
            timestamp += 1.0;
            let payload = match op {
                Op::Redeem => ticket(&w, &slices[i].1, &slices[i].0, timestamp),
                _ => creds[i].clone(),
            };
            plan.push((i, op, payload));
        }
        let in_flight: Arc<Mutex<Option<(String, Op)>>> = Arc::new(Mutex::new(None));
        let client = w.client(&w.alice);
        let names: Vec<String> = slices.iter().map(|(n, _)| n.clone()).collect();
        let (k, f) = (Arc::clone(&known), Arc::clone(&in_flight));
        let stream = tokio::spawn(async move {
            for (i, op, payload) in plan {
                let name = names[i].clone();
                *f.lock().unwrap() = Some((name.clone(), op));
                let method = match op {
                    Op::Redeem => "redeem_ticket",
                    Op::Start => "start_slice",
                    Op::Stop => "stop_slice",
                    Op::Reset => "reset_slice",
                    Op::Delete => "delete_slice",
                };
                match client
                    .call(method, vec![Value::from(payload.as_str())])
                    .await
                {
                    Ok(_) => {
                        let mut k = k.lock().unwrap();
                        let before = k[&name];
                        k.insert(name, op.after(before));
                    }
                    // A fault (no such sliver, stale ticket) is an answer too: nothing changed.
                    Err(geni_rpc::RpcError::Fault(_)) => {}
                    Err(_) => return,
                }
                *f.lock().unwrap() = None;
            }
        });
        tokio::time::sleep(Duration::from_millis(
            20 + u64::try_from(rng.next(300)).unwrap(),
        ))
        .await;
        w.kill_agent();
        let _ = stream.await;
        w.start_agent();

        let admin = w.client(&site);
        let listed = support::listed(&admin, &site_cred).await;
        let flight = in_flight.lock().unwrap().clone();
        let known_now = known.lock().unwrap().clone();
        for (name, acked) in &known_now {
            let row = listed.iter().find(|(n, _, _)| n == name);
            let seen = match row.map(|r| r.1.as_str()) {
                None => Known::Absent,
                Some("created") => Known::Created,
                Some("running") => Known::Running,
                Some("stopped" | "exited") => Known::Stopped,
                Some(other) => panic!("round {round}: unknown state {other}"),
            };
            let mut allowed = vec![*acked];
            if let Some((n, op)) = &flight
                && n == name
            {
                allowed.push(op.after(*acked));
            }
            assert!(
                allowed.contains(&seen),
                "round {round}: {name} is {seen:?}, acknowledged {acked:?}, in flight {flight:?}"
            );
            // Running means a live process: adopted after the crash or restarted.
            if seen == Known::Running {
                let pid = row.and_then(|r| r.2).expect("running slivers have a pid");
                assert!(alive(pid), "round {round}: {name} claims pid {pid}");
            }
            // No half-made sliver: a listed sliver has its files; an unlisted one has none.
            let dir = w.sliver_dir(name);
            assert_eq!(
                seen != Known::Absent,
                dir.join(".ssh/authorized_keys").is_file(),
                "round {round}: {name} files vs state {seen:?}"
            );
            if seen == Known::Absent {
                assert!(
                    !dir.exists(),
                    "round {round}: {name} left a directory behind"
                );
            }
            // The test's model follows what the node now says.
            known.lock().unwrap().insert(name.clone(), seen);
        }
    }
    // Leave no sliver processes behind.
    let client = w.client(&w.alice);
    for cred in &creds {
        let _ = client
            .call("delete_slice", vec![Value::from(cred.as_str())])
            .await;
    }
}
