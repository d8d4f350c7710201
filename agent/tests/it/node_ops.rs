//! Operating a node with the real binary: `--check-config` on the packaged default
//! configuration, the pid file, `--restart` (a new detached process answers on the same port,
//! the old one is gone, a running sliver is adopted, not restarted), and
//! `packaging/ssh-restart.sh` driving `--restart` through a fake `ssh`.
//!
//! The fake `ssh` is a test double for a remote host: it runs the remote command on this machine
//! (as the real ssh would run it on the host) or, for hosts named `unreachable*`, fails the way
//! ssh fails when it cannot connect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use geni_xmlrpc::Value;
use support::{SCRIPT, World, alive, bin, listed, wait_until};

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The world's node flags on a fixed port, so that a restarted node must come back on it.
fn node_args(w: &World, port: u16) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["node".into(), "--listen".into()];
    args.push(format!("127.0.0.1:{port}").into());
    for (flag, file) in [
        ("--config", "agent.toml"),
        ("--trusted-roots", "roots"),
        ("--state-dir", "state"),
        ("--key", "node.pkey"),
        ("--gid", "node.gid"),
        ("--credential", "node.cred"),
    ] {
        args.push(flag.into());
        args.push(w.path(file).into());
    }
    args
}

/// Starts a node and waits until it listens.
fn start(args: &[OsString]) -> Child {
    let mut child = Command::new(bin())
        .args(args)
        .env("GENI_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on "), "node said {line:?}");
    child
}

fn pid_in(file: &Path) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The detached node is no child of this test: kill it however the test ends.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// `/proc/<pid>/stat` field 6: the session the process belongs to.
fn session_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(3).unwrap().parse().unwrap()
}

async fn noop(w: &World) -> Result<Value, geni_rpc::RpcError> {
    w.client(&w.alice)
        .call(
            "noop",
            vec![Value::from(w.user_cred(&w.alice).as_str()), "ping".into()],
        )
        .await
}

#[test]
fn the_packaged_configuration_is_valid() {
    let out = Command::new(bin())
        .args(["node", "--check-config", "--config"])
        .arg(packaging("agent.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("node configuration is valid"), "{said}");
    assert!(said.contains("/var/lib/geni-agent/node.pid"), "{said}");

    // The same check rejects what the node would reject, and names it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("agent.toml");
    let text = std::fs::read_to_string(packaging("agent.toml")).unwrap();
    std::fs::write(
        &bad,
        text.replace("backend = \"local\"", "backend = \"vserver\""),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["node", "--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vserver"));
    std::fs::write(&bad, format!("{text}\n[node.local]\nstop_grace = 1\n")).unwrap();
    let out = Command::new(bin())
        .args(["node", "--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The keys `packaging/agent.toml` shows (set or commented out) under each table.
fn packaged_keys() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(packaging("agent.toml")).unwrap();
    let mut table = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.to_owned();
            keys.push((
                "node".to_owned(),
                name.trim_start_matches("node.").to_owned(),
            ));
            continue;
        }
        let line = line.strip_prefix("# ").unwrap_or(line);
        if let Some((key, _)) = line.split_once(" = ")
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            keys.push((table.clone(), key.to_owned()));
        }
    }
    keys
}

/// Every key node mode knows is in the packaged file: the node's own "unknown field" error lists
/// the keys of each table, so a key added to the node without documenting it here fails this.
#[test]
fn the_packaged_configuration_names_every_key() {
    let packaged = packaged_keys();
    let dir = tempfile::tempdir().unwrap();
    for table in ["node", "node.limits", "node.local", "node.nodemanager"] {
        let probe = dir.path().join("probe.toml");
        std::fs::write(&probe, format!("[{table}]\nno_such_key = 1\n")).unwrap();
        let out = Command::new(bin())
            .args(["node", "--check-config", "--config"])
            .arg(&probe)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let known = err
            .split_once("expected one of ")
            .and_then(|(_, rest)| rest.split_once(" for key"))
            .unwrap_or_else(|| panic!("no key list in {err:?}"))
            .0;
        let known: Vec<&str> = known.split(", ").map(|k| k.trim_matches('`')).collect();
        assert!(known.len() >= 3, "{err}");
        for key in known {
            assert!(
                packaged.contains(&(table.to_owned(), key.to_owned())),
                "packaging/agent.toml does not show {table}.{key}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replaces_the_node_and_keeps_its_slivers() {
    let mut w = World::new();
    w.kill_agent();
    let port = free_port();
    let args = node_args(&w, port);
    w.agent = Some(start(&args));
    w.addr = format!("127.0.0.1:{port}");
    let old = w.agent.as_ref().unwrap().id();
    let pid_file = w.path("state/node.pid");
    assert_eq!(pid_in(&pid_file), old);

    // A running sliver, to see that a restart adopts it rather than killing or restarting it.
    let alice = w.client(&w.alice);
    let cred = w.slice_cred(&w.alice, &w.s1);
    let ticket = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 100.0);
    alice
        .call("redeem_ticket", vec![Value::from(ticket.as_str())])
        .await
        .unwrap();
    alice
        .call("start_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
    let sliver = listed(&alice, &cred).await[0].2.unwrap();

    let out = Command::new(bin())
        .args(&args)
        .arg("--restart")
        .env("GENI_LOG", "warn")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = pid_in(&pid_file);
    let _guard = KillOnDrop(new);
    assert_ne!(new, old);
    assert!(
        said.contains(&format!("stopped pid {old}, started pid {new}")),
        "{said}"
    );
    // The old node exited cleanly on SIGTERM; the new one leads its own session.
    let status = w.agent.take().unwrap().wait().unwrap();
    assert!(status.success(), "the old node ended with {status}");
    assert!(alive(i64::from(new)));
    assert_eq!(session_of(new), new);
    assert!(w.path("state/node.log").is_file());

    // The new process answers on the same port, and the sliver runs on, adopted.
    noop(&w).await.unwrap();
    let rows = listed(&w.client(&w.alice), &cred).await;
    assert_eq!(rows[0].1, "running");
    assert_eq!(rows[0].2, Some(sliver));
    assert!(alive(sliver));

    // A clean stop removes the pid file.
    Command::new("kill").arg(new.to_string()).status().unwrap();
    wait_until("the pid file to go", || !pid_file.exists()).await;
    wait_until("the node to exit", || !alive(i64::from(new))).await;
    let _ = Command::new("kill")
        .args(["-KILL", &sliver.to_string()])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_pid_files_are_replaced_and_live_ones_refused() {
    let mut w = World::new();
    w.kill_agent();
    let pid_file = w.path("state/node.pid");
    // SIGKILL leaves the pid file behind.
    assert!(pid_file.is_file());

    // A pid file naming a live process that is not a node is stale too.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(&pid_file, format!("{}\n", sleeper.id())).unwrap();
    let port = free_port();
    let args = node_args(&w, port);
    w.agent = Some(start(&args));
    let first = w.agent.as_ref().unwrap().id();
    assert_eq!(pid_in(&pid_file), first);
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // A second node on the same state directory (another port) is refused, and says why.
    let mut second = node_args(&w, free_port());
    second.push("--pid-file".into());
    second.push(pid_file.clone().into());
    let out = Command::new(bin()).args(&second).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {first}")), "{err}");
    assert_eq!(pid_in(&pid_file), first);

    // --restart with nothing running (killed; its pid file stale) just starts one.
    w.kill_agent();
    let out = Command::new(bin())
        .args(&args)
        .arg("--restart")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let new = pid_in(&pid_file);
    let _guard = KillOnDrop(new);
    assert!(said.contains("none was running"), "{said}");
    w.addr = format!("127.0.0.1:{port}");
    noop(&w).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_start_is_reported_by_restart() {
    let mut w = World::new();
    w.kill_agent();
    let mut args = node_args(&w, free_port());
    // A key others can read: the node refuses to start, and --restart must say so.
    std::fs::set_permissions(w.path("node.pkey"), std::fs::Permissions::from_mode(0o644)).unwrap();
    args.push("--restart".into());
    let out = Command::new(bin()).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exited"), "{err}");
    assert!(err.contains("node.pkey"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_restart_reports_each_host() {
    let mut w = World::new();
    w.kill_agent();
    let port = free_port();
    let args = node_args(&w, port);
    w.agent = Some(start(&args));
    w.addr = format!("127.0.0.1:{port}");
    let old = w.agent.as_ref().unwrap().id();

    let bin_dir = w.path("fake-bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let ssh = bin_dir.join("ssh");
    std::fs::write(
        &ssh,
        "#!/bin/sh\n\
         # Test double for ssh: runs the remote command here, or fails to connect.\n\
         while [ $# -gt 0 ]; do case \"$1\" in -o) shift 2 ;; -*) shift ;; *) break ;; esac; done\n\
         host=$1; shift\n\
         echo \"$host\" >> \"$(dirname \"$0\")/hosts.log\"\n\
         case \"$host\" in unreachable*) echo \"ssh: connect to host $host port 22: Connection refused\" >&2; exit 255 ;; esac\n\
         exec sh -c \"$*\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let command = std::iter::once(OsString::from(bin()))
        .chain(args.iter().cloned())
        .chain(["--restart".into()])
        .map(|a| a.into_string().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let run = |hosts: &[&str]| {
        Command::new(packaging("ssh-restart.sh"))
            .args(["--via", "direct", "--command", &command])
            .args(hosts)
            .env("SSH", &ssh)
            .env("GENI_LOG", "warn")
            .output()
            .unwrap()
    };

    let out = run(&["node1.example", "unreachable.example"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let new = pid_in(&w.path("state/node.pid"));
    let _guard = KillOnDrop(new);
    assert_ne!(new, old);
    assert!(
        said.contains(&format!(
            "node1.example: ok (via pid file), started pid {new}"
        )),
        "{said}"
    );
    assert!(
        said.contains("unreachable.example: FAILED (exit 255): ssh failed: ssh: connect to host"),
        "{said}"
    );
    assert!(said.contains("1 ok, 1 failed"), "{said}");
    assert!(w.agent.take().unwrap().wait().unwrap().success());
    noop(&w).await.unwrap();

    // Every host fine: exit 0; a restart again replaces the node.
    let out = run(&["node1.example"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let newer = pid_in(&w.path("state/node.pid"));
    let _guard2 = KillOnDrop(newer);
    assert_ne!(newer, new);
    wait_until("the previous node to exit", || !alive(i64::from(new))).await;
    noop(&w).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(bin_dir.join("hosts.log")).unwrap(),
        "node1.example\nunreachable.example\nnode1.example\n"
    );

    // No hosts is a usage error.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
}
