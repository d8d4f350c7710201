//! `geni-agent node` with `backend = "nodemanager"`, end to end: a ticket made by
//! `geni-agent authority` is redeemed over TLS and reaches NodeManager as `AdminTicket` from the
//! admin account; start, stop, reset and delete reach it as the sliver's own account through the
//! node's `nm-connect` helper; a PLC sync that drops the sliver is undone by the reconcile loop.
//!
//! NodeManager is the double nm-bridge's tests use too (from the `geni-tests` harness), so that
//! there is one double, the one that follows `reference/nodemanager.md` §7 (SO_PEERCRED identity, permission
//! order, fault codes). Needs root (accounts, uid switching); elsewhere it prints "skipping".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use geni_xmlrpc::Value;
use support::accounts::Users;
use support::nm_double::NmDouble;
use support::{SCRIPT, World, bin, listed, wait_until};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// (caller, method) of NodeManager's last call.
fn last_call(double: &NmDouble) -> (String, String) {
    let c = double.calls().pop().unwrap();
    (c.caller, c.method)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slivers_reach_nodemanager_as_the_right_accounts() {
    if !nix_is_root() {
        eprintln!("skipping: not root (the node switches uid and the test creates accounts)");
        return;
    }
    // Distinct per run: account names are global to the host.
    let prefix = format!(
        "gta{:06x}",
        (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            ^ std::process::id())
            & 0x00ff_ffff
    );
    let (admin, sliver) = (format!("{prefix}_sfacm"), format!("{prefix}_s1"));
    let mut users = Users::default();
    users.add(&admin);
    users.add(&sliver);

    // The socket and the agent binary (which is also its own connect helper) must be reachable
    // by the sliver accounts; Cargo's target directory may not be.
    let nm_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(nm_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent: PathBuf = nm_dir.path().join("geni-agent");
    std::fs::copy(bin(), &agent).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let double = NmDouble::start(nm_dir.path(), &prefix).unwrap();
    let extra = format!(
        "[node.nodemanager]\nsocket = \"{}\"\nadmin_account = \"{admin}\"\nreconcile_secs = 1\n\
         timeout_secs = 10\n",
        double.socket().display()
    );
    let w = World::build(&prefix, "nodemanager", &extra, agent);
    let alice = w.client(&w.alice);
    let cred = w.slice_cred(&w.alice, &w.s1);

    // Redeem: AdminTicket, from the admin account, carrying the ticket's record.
    let ticket = w.ticket(&w.alice, &w.s1, &sliver, SCRIPT, now());
    alice
        .call("redeem_ticket", vec![Value::from(ticket.as_str())])
        .await
        .unwrap();
    assert_eq!(last_call(&double), (admin.clone(), "AdminTicket".into()));
    let record = double.record(&sliver).expect("NM holds the sliver");
    assert_eq!(
        record.get("initscript").and_then(Value::as_str),
        Some(SCRIPT)
    );
    let rows = listed(&alice, &cred).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, sliver);

    // Start, stop, reset: each as the sliver's own account.
    for (method, nm_method, running) in [
        ("start_slice", "Start", true),
        ("stop_slice", "Stop", false),
        ("reset_slice", "ReCreate", true),
    ] {
        alice
            .call(method, vec![Value::from(cred.as_str())])
            .await
            .unwrap();
        assert_eq!(
            last_call(&double),
            (sliver.clone(), nm_method.into()),
            "{method}"
        );
        assert_eq!(double.running(&sliver), Some(running), "{method}");
    }

    // PLC's sync drops the redeemed sliver; the reconcile loop delivers it again.
    double.plc_sync(now(), Vec::new());
    assert!(double.record(&sliver).is_none());
    wait_until("the sliver to be re-delivered", || {
        double.record(&sliver).is_some()
    })
    .await;
    assert_eq!(last_call(&double).1, "AdminTicket");

    // Delete: Destroy as the sliver; its account is gone from NM (which keeps a delegated
    // sliver's record, as NM does) and the sliver from the node's list.
    alice
        .call("delete_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
    assert_eq!(last_call(&double), (sliver.clone(), "Destroy".into()));
    assert!(!double.xids().contains_key(&sliver));
    assert!(listed(&alice, &cred).await.is_empty());
    // Forgotten: two reconcile periods later it has not been delivered again.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(!double.xids().contains_key(&sliver));
    assert!(listed(&alice, &cred).await.is_empty());
    drop(w);
    drop(users);
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}
