//! End-to-end tests of `geni-agent node` on loopback: the real binary, real TLS with client
//! certificates, real sliver processes and files. A ticket made with `geni-agent authority` is
//! redeemed; start really runs the initscript (visible in /proc), stop ends it, reset gives a
//! pristine sliver, delete removes it, list follows each step; and each rejection the issue
//! names has its own test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::process::Command;
use std::sync::Arc;

use geni_trust::{ChainForm, Clock, Hierarchy, RecordType, RightList, SystemClock};
use geni_xmlrpc::Value;
use support::{SCRIPT, World, alive, bin, fault_code, hrn, listed, principal, wait_until, write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_becomes_a_sliver_that_really_runs() {
    let w = World::new();
    let alice = w.client(&w.alice);
    let cred = w.slice_cred(&w.alice, &w.s1);
    let ticket = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 1_227_612_345.5);

    // Redeem: a sliver credential comes back and verifies under the same roots.
    let sliver_cred = alice
        .call("redeem_ticket", vec![Value::from(ticket.as_str())])
        .await
        .unwrap();
    let sliver_cred = sliver_cred.as_str().unwrap().to_owned();
    let out = Command::new(bin())
        .args([
            "authority",
            "verify",
            "--json",
            "--kind",
            "credential",
            "--trusted-roots",
        ])
        .arg(w.path("roots"))
        .arg({
            let p = w.path("sliver.cred");
            write(&p, &sliver_cred);
            p
        })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["object"], "planetlab.us.pl.node1.pl_s1");
    assert_eq!(json["caller"], "planetlab.us.pl.alice");
    assert_eq!(json["rights"], "control,info");
    assert!(w.sliver_dir("pl_s1").join(".ssh/authorized_keys").is_file());
    assert_eq!(
        listed(&alice, &cred).await,
        [("pl_s1".to_owned(), "created".to_owned(), None)]
    );

    // Start: the initscript really runs.
    alice
        .call("start_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
    let rows = listed(&alice, &cred).await;
    assert_eq!(rows[0].1, "running");
    let pid = rows[0].2.expect("a running sliver has a pid");
    assert!(alive(pid));
    let started = w.sliver_dir("pl_s1").join("started.txt");
    wait_until("the initscript's file", || started.is_file()).await;
    // A ticket does not buy root: a root agent without accounts runs initscripts as nobody.
    if nix_uid() == 0 {
        assert_eq!(uid_of(pid), 65_534, "the initscript's uid");
    }
    // Starting again changes nothing.
    alice
        .call("start_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
    assert_eq!(listed(&alice, &cred).await[0].2, Some(pid));

    // Stop, with the sliver credential: the process ends.
    alice
        .call("stop_slice", vec![Value::from(sliver_cred.as_str())])
        .await
        .unwrap();
    wait_until("the process to end", || !alive(pid)).await;
    assert_eq!(listed(&alice, &cred).await[0].1, "stopped");

    // Reset: pristine (the old file is gone, the new run writes it once), running again.
    alice
        .call("reset_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
    let rows = listed(&alice, &cred).await;
    assert_eq!(rows[0].1, "running");
    let pid2 = rows[0].2.unwrap();
    assert_ne!(pid2, pid);
    wait_until("the new run's file", || started.is_file()).await;
    assert_eq!(std::fs::read_to_string(&started).unwrap(), "started\n");

    // Delete: everything goes.
    alice
        .call("delete_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
    wait_until("the process to end", || !alive(pid2)).await;
    assert!(!w.sliver_dir("pl_s1").exists());
    assert!(listed(&alice, &cred).await.is_empty());
    let (code, msg) = fault_code(
        alice
            .call("start_slice", vec![Value::from(cred.as_str())])
            .await,
    );
    assert_eq!(code, 105, "{msg}");
    assert!(msg.contains("pl_s1"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_each_with_its_reason() {
    let w = World::new();
    let alice = w.client(&w.alice);
    let bob = w.client(&w.bob);
    let ticket = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 100.0);

    // A ticket redeemed by someone other than its caller.
    let (code, msg) = fault_code(
        bob.call("redeem_ticket", vec![Value::from(ticket.as_str())])
            .await,
    );
    assert_eq!(code, 102, "{msg}");
    alice
        .call("redeem_ticket", vec![Value::from(ticket.as_str())])
        .await
        .unwrap();

    // An older (or equal) ticket than the sliver's record.
    let older = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 50.0);
    let (code, msg) = fault_code(
        alice
            .call("redeem_ticket", vec![Value::from(older.as_str())])
            .await,
    );
    assert_eq!(code, 107, "{msg}");
    assert!(msg.contains("older"), "{msg}");

    // A ticket whose sliver name is not its slice's.
    let wrong = w.ticket(&w.alice, &w.s1, "pl_s2", SCRIPT, 200.0);
    let (code, msg) = fault_code(
        alice
            .call("redeem_ticket", vec![Value::from(wrong.as_str())])
            .await,
    );
    assert_eq!(code, 104, "{msg}");

    let cred = w.slice_cred(&w.alice, &w.s1);
    // TLS key ≠ caller GID: bob presents alice's credential.
    let (code, msg) = fault_code(
        bob.call("stop_slice", vec![Value::from(cred.as_str())])
            .await,
    );
    assert_eq!(code, 102, "{msg}");
    assert!(msg.contains("planetlab.us.pl.alice"), "{msg}");

    // Forged: the payload changed after signing.
    let forged = cred.replacen("MII", "MIJ", 1);
    let (code, _) = fault_code(
        alice
            .call("stop_slice", vec![Value::from(forged.as_str())])
            .await,
    );
    assert!(code == 100 || code == 101, "{code}");

    // Expired: issued by a hierarchy whose clock is two days behind, for one day.
    #[derive(Debug)]
    struct Past;
    impl Clock for Past {
        fn now(&self) -> i64 {
            SystemClock.now() - 2 * 86_400
        }
    }
    let old = Hierarchy::new(w.path("authorities")).with_clock(Arc::new(Past));
    let expired = old
        .issue_credential(
            &w.alice.gid,
            &w.s1.gid,
            &RightList::for_record_type(RecordType::Slice),
            false,
            86_400,
        )
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let (code, msg) = fault_code(
        alice
            .call("stop_slice", vec![Value::from(expired.as_str())])
            .await,
    );
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains("expired"), "{msg}");

    // Untrusted: a parallel hierarchy with its own planetlab root.
    let other = Hierarchy::new(w.path("other"));
    other
        .create_authority(&hrn("planetlab.us.pl"), true)
        .unwrap();
    let eve = principal(&other, "planetlab.us.pl.alice");
    let s1 = principal(&other, "planetlab.us.pl.s1");
    let untrusted = other
        .issue_credential(
            &eve.gid,
            &s1.gid,
            &RightList::for_record_type(RecordType::Slice),
            false,
            86_400,
        )
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let (code, msg) = fault_code(
        w.client(&eve)
            .call("stop_slice", vec![Value::from(untrusted.as_str())])
            .await,
    );
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains("trusted root"), "{msg}");

    // Missing right: a user credential cannot stop a slice.
    let user = w.user_cred(&w.alice);
    let (code, msg) = fault_code(
        alice
            .call("stop_slice", vec![Value::from(user.as_str())])
            .await,
    );
    assert_eq!(code, 103, "{msg}");

    // Object of another slice: alice's s1 credential aimed at s2.
    let (code, msg) = fault_code(
        alice
            .call(
                "stop_slice",
                vec![
                    Value::from(cred.as_str()),
                    Value::from("planetlab.us.pl.s2"),
                ],
            )
            .await,
    );
    assert_eq!(code, 104, "{msg}");
    let _ = &w.s2;

    // Reboot needs authority rights; with them it runs the configured command.
    let (code, msg) = fault_code(alice.call("reboot", vec![Value::from(cred.as_str())]).await);
    assert_eq!(code, 103, "{msg}");
    assert!(!w.path("rebooted").exists());
    let (site_principal, auth_cred) = w.site();
    w.client(&site_principal)
        .call("reboot", vec![Value::from(auth_cred.as_str())])
        .await
        .unwrap();
    assert!(w.path("rebooted").exists());

    // Tickets come from the PLC side.
    let (code, msg) = fault_code(
        alice
            .call("get_ticket", vec![Value::from(cred.as_str())])
            .await,
    );
    assert_eq!(code, 107, "{msg}");
    assert!(msg.contains("PLC side"), "{msg}");

    // noop echoes, resources report.
    let echoed = alice
        .call("noop", vec![Value::from(cred.as_str()), Value::Int(42)])
        .await
        .unwrap();
    assert_eq!(echoed, Value::Int(42));
    let report = w
        .client(&site_principal)
        .call(
            "list_component_resources",
            vec![Value::from(auth_cred.as_str())],
        )
        .await
        .unwrap();
    assert!(
        report
            .as_struct()
            .unwrap()
            .get("cpus")
            .and_then(Value::as_i64)
            .unwrap()
            >= 1
    );
}

#[test]
fn a_node_without_trusted_roots_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("roots");
    std::fs::create_dir(&empty).unwrap();
    let toml = dir.path().join("agent.toml");
    std::fs::write(&toml, "").unwrap();
    let out = Command::new(bin())
        .args(["node", "--listen", "127.0.0.1:0", "--config"])
        .arg(&toml)
        .arg("--trusted-roots")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no usable trusted root"), "{err}");
    assert!(err.contains("trusted_roots.example"), "{err}");
}

/// A newcomer's first `geni-agent node`, with no configuration anywhere: the error says what was
/// looked for and the ways on, not just "No such file or directory".
#[test]
fn a_first_run_without_configuration_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-roots");
    let out = Command::new(bin())
        .args(["node", "--listen", "127.0.0.1:0", "--trusted-roots"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needed in [
        missing.to_str().unwrap(),
        "--trusted-roots",
        "--config",
        "/etc/geni-agent/agent.toml",
        "geni-agent demo",
    ] {
        assert!(err.contains(needed), "{needed:?} missing from: {err}");
    }
    assert!(!dir.path().join("no-such-roots").exists());
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| std::os::unix::fs::MetadataExt::uid(&m))
}

/// The real uid of a process, from `/proc/<pid>/status`.
fn uid_of(pid: i64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Under systemd (`Type=notify`): READY=1 once serving, WATCHDOG=1 at half the interval asked
/// for, RELOADING=1 and READY=1 around a SIGHUP (which also applies a changed reboot_command),
/// STOPPING=1 on SIGTERM; all to `$NOTIFY_SOCKET`, here a datagram socket of the test's.
#[tokio::test]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let mut w = World::new();
    w.kill_agent();
    let path = w.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    w.envs = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), "200000".into()),
    ];
    w.start_agent();
    let next = || {
        let mut buf = [0_u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    assert_eq!(next(), "READY=1");
    // start_agent returned once the node said where it listens, so it is serving now.
    assert_eq!(next(), "WATCHDOG=1");
    assert_eq!(next(), "WATCHDOG=1");
    let pid = w.agent.as_ref().unwrap().id().to_string();

    // SIGHUP: the new reboot_command is used by the next reboot, without a restart.
    let moved = w.path("rebooted-after-reload");
    write(
        &w.path("agent.toml"),
        &format!(
            "[node]\nreboot_command = [\"touch\", \"{}\"]\n[node.local]\nstop_grace_secs = 1\ndanger_shared_uid = true\n",
            moved.display()
        ),
    );
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut heard = (0..20).map(|_| next()).filter(|m| m != "WATCHDOG=1");
    assert_eq!(heard.next().as_deref(), Some("RELOADING=1"));
    assert_eq!(heard.next().as_deref(), Some("READY=1"));
    drop(heard);
    let (site, auth_cred) = w.site();
    w.client(&site)
        .call("reboot", vec![Value::from(auth_cred.as_str())])
        .await
        .unwrap();
    assert!(moved.exists());
    assert!(!w.path("rebooted").exists());

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopping = (0..20).map(|_| next()).find(|m| m != "WATCHDOG=1");
    assert_eq!(stopping.as_deref(), Some("STOPPING=1"));
}
