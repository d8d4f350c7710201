//! The local backend's isolation settings as `geni-agent node` applies them at start: root is
//! never a sliver's account (refused, with a message, before anything is made), and an agent
//! that is not root says once, at start, that its slivers are not isolated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use support::{World, bin, write};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The world's files, with the node it started stopped and its state directory gone.
fn files() -> World {
    let mut w = World::new();
    if let Some(mut c) = w.agent.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    std::fs::remove_dir_all(w.path("state")).unwrap();
    w
}

/// `geni-agent node` with the world's files and `config` as its agent.toml; (exit code, stderr).
fn node(w: &World, config: &str, check_only: bool) -> (Option<i32>, String) {
    write(&w.path("agent.toml"), config);
    let mut cmd = Command::new(bin());
    cmd.arg("node");
    if check_only {
        cmd.arg("--check-config");
    }
    let out = cmd
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(w.path("agent.toml"))
        .arg("--trusted-roots")
        .arg(w.path("roots"))
        .arg("--state-dir")
        .arg(w.path("state"))
        .arg("--key")
        .arg(w.path("node.pkey"))
        .arg("--gid")
        .arg(w.path("node.gid"))
        .arg("--credential")
        .arg(w.path("node.cred"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_as_root_is_refused_at_start_with_a_message() {
    if !is_root() {
        println!("SKIPPED: run_as only applies to a root agent");
        return;
    }
    let w = files();
    let config = "[node.local]\ndanger_shared_uid = true\nrun_as = \"root\"\n";
    for check_only in [true, false] {
        let (code, stderr) = node(&w, config, check_only);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("run_as = \"root\" is root") && stderr.contains("never buy root"),
            "{stderr}"
        );
        assert!(
            !w.path("state").exists(),
            "a refused start made the state directory"
        );
    }
    // Sharing one uid at all needs the danger switch.
    let (code, stderr) = node(&w, "[node.local]\nmanage_accounts = false\n", true);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("danger_shared_uid"), "{stderr}");
}

/// The agent runs as nobody here: it serves, and its log says exactly once that slivers are
/// not isolated.
#[test]
fn an_agent_that_is_not_root_warns_once_that_slivers_are_not_isolated() {
    if !is_root() {
        println!("SKIPPED: the test switches to nobody to run the agent as a plain user");
        return;
    }
    let w = files();
    write(&w.path("agent.toml"), "[node.local]\nstop_grace_secs = 1\n");
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(w.dir.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let mut child = Command::new(bin())
        .args(["node", "--listen", "127.0.0.1:0", "--config"])
        .arg(w.path("agent.toml"))
        .arg("--trusted-roots")
        .arg(w.path("roots"))
        .arg("--state-dir")
        .arg(w.path("state"))
        .arg("--key")
        .arg(w.path("node.pkey"))
        .arg("--gid")
        .arg(w.path("node.gid"))
        .arg("--credential")
        .arg(w.path("node.cred"))
        .env("GENI_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .uid(65_534)
        .gid(65_534)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let serving = line.starts_with("listening on ");
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        serving,
        "the agent did not start as nobody: {line:?}\n{stderr}"
    );
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("not isolated"))
        .count();
    assert_eq!(warnings, 1, "{stderr}");
    assert!(
        stderr.contains("as the agent itself (not root)"),
        "{stderr}"
    );
}
