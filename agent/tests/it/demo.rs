//! `geni-agent demo` as a user runs it: in a fresh directory it must finish with exit 0 after the
//! whole flow, show the file the slice's initscript wrote, and leave no server behind; `--keep`
//! must leave both servers usable by genicli as it says; a directory that is not a previous demo,
//! or whose kept servers still run, is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

const GENI_AGENT: &str = env!("CARGO_BIN_EXE_geni-agent");
const GENICLI: &str = env!("CARGO_BIN_EXE_genicli");

fn demo(cwd: &Path, args: &[&str]) -> Output {
    Command::new(GENI_AGENT)
        .current_dir(cwd)
        .arg("demo")
        .args(args)
        .env_remove("GENI_LOG")
        .output()
        .unwrap()
}

/// SIGTERMs the kept servers however the test ends.
struct Kept(Vec<String>);

impl Drop for Kept {
    fn drop(&mut self) {
        for p in &self.0 {
            if let Ok(pid) = p.parse::<i32>() {
                let _ = signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
    }
}

fn alive(pid: &str) -> bool {
    // A zombie is not running any more.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// The pids the demo printed for its servers (`plc: https://… (pid N, …)`).
fn server_pids(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once("(pid ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split(',').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_demo_runs_the_whole_flow_and_stops_its_servers() {
    let cwd = tempfile::tempdir().unwrap();
    let out = demo(cwd.path(), &[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default directory, and every step of the flow with its 2008-style output.
    assert!(cwd.path().join("demo/.geni-agent-demo").is_file());
    for n in 1..=15 {
        assert!(
            stdout.contains(&format!("\n-- {n}. ")),
            "step {n} missing:\n{stdout}"
        );
    }
    for expected in [
        "RESULT:\nCREDENTIAL planetlab.us.pl.alice\n      privs: refresh,resolve,info\n",
        "RESULT:\nCREDENTIAL planetlab.us.pl\n      privs: authority\n",
        "RESULT:\nTICKET planetlab.us.pl.testcw\n",
        "RESULT:\nCREDENTIAL planetlab.us.pl.node1.pl_testcw\n      privs: control,info\n",
        "RESULT:\nstarted planetlab.us.pl.testcw\n",
        "RESULT:\npl_testcw (running, pid ",
        "RESULT:\ndeleted planetlab.us.pl.testcw\n",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
    // What the initscript wrote on the node, shown.
    let shown = stdout
        .split("the initscript ran in the sliver and wrote demo/node/state/slivers/pl_testcw/hello.txt:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no initscript file shown:\n{stdout}"));
    assert!(
        shown.starts_with("hello from slice pl_testcw, started "),
        "{shown}"
    );
    // Both servers stopped on SIGTERM and are gone.
    assert!(
        stdout.contains(" plc: stopped (exit status: 0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node: stopped (exit status: 0)"),
        "{stdout}"
    );
    let pids = server_pids(&stdout);
    assert_eq!(pids.len(), 2, "{stdout}");
    assert!(pids.iter().all(|p| !alive(p)));

    // A second run replaces the previous demo.
    let again = demo(cwd.path(), &[]);
    assert_eq!(again.status.code(), Some(0));
}

#[test]
fn keep_leaves_servers_that_genicli_can_use() {
    let cwd = tempfile::tempdir().unwrap();
    let out = demo(cwd.path(), &["kept", "--keep"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let pids: Vec<String> = fs::read_to_string(cwd.path().join("kept/servers.pid"))
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let kept = Kept(pids.clone());
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(p)));
    assert!(
        stdout.contains(&format!("Stop them with: kill {}", pids.join(" "))),
        "{stdout}"
    );

    // The first command the demo suggests, run as it says.
    let suggested = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("genicli ") && l.contains(" resolve "))
        .unwrap_or_else(|| panic!("no resolve suggested:\n{stdout}"));
    let args: Vec<&str> = suggested.split_whitespace().skip(1).collect();
    let user = cwd.path().join("kept/user");
    let cli = Command::new(GENICLI)
        .current_dir(&user)
        .args(&args)
        .output()
        .unwrap();
    let cli_out = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(
        cli.status.code(),
        Some(0),
        "{cli_out}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        cli_out.starts_with("RESULT:\nRECORD planetlab.us.pl.alice\n"),
        "{cli_out}"
    );

    // While they run, the directory is not replaced.
    let refused = demo(cwd.path(), &["kept"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("still run") && err.contains(&format!("kill {}", pids.join(" "))),
        "{err}"
    );

    // Stop them as the demo said (kill sends SIGTERM).
    drop(kept);
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|p| alive(p)) {
        assert!(Instant::now() < deadline, "servers did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_directory_that_is_not_a_demo_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    fs::create_dir(cwd.path().join("mine")).unwrap();
    fs::write(cwd.path().join("mine/precious.txt"), "keep me").unwrap();
    let out = demo(cwd.path(), &["mine"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mine exists and is not a previous demo"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(cwd.path().join("mine/precious.txt")).unwrap(),
        "keep me"
    );
}
