//! The `local` backend against real processes and files: lifecycle, stale records, exits,
//! SIGKILL after the grace period, re-adoption after a crash, pid reuse, crash leftovers,
//! rlimits, and (as root with `useradd`) Unix accounts.
//!
//! Every test uses its own state directory under Cargo's target tmpdir (not /tmp, which may be
//! mounted noexec) and bounded waits, and cleans up the processes it starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use geni_xmlrpc::{Struct, Value};
use nm_bridge::local::{LocalManager, LocalOptions};
use nm_bridge::{NmError, SliverManager, SliverName, SliverRecord, SliverState};

// === helpers ===

/// A state directory that, when dropped (also by a failing test), kills the process groups
/// its state file still records, so that a failure leaves no initscript running.
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Ok(bytes) = fs::read(self.path().join("local-state.json")) else {
            return;
        };
        let state: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        for s in state["slivers"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let (Some(pid), Some(start)) = (s["pid"].as_u64(), s["start_time"].as_u64()) else {
                continue;
            };
            let pid = u32::try_from(pid).unwrap();
            if stat(pid).is_some_and(|(_, _, t)| t == start) {
                let pgid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

fn state_dir() -> TestDir {
    let dir = tempfile::Builder::new()
        .prefix("nm-local-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    // Sliver accounts must be able to reach their homes inside it.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    TestDir(dir)
}

/// Initscripts run as the test itself (root or not); the default, nobody when root, has its
/// own test.
fn options(dir: &Path) -> LocalOptions {
    LocalOptions {
        stop_grace: Duration::from_secs(2),
        run_as: None,
        ..LocalOptions::new(dir)
    }
}

fn record(
    name: &str,
    timestamp: f64,
    keys: &[&str],
    initscript: &str,
    rspec: Struct,
) -> SliverRecord {
    let attrs = Struct::new()
        .with("name", name)
        .with("timestamp", Value::Double(timestamp))
        .with("initscript", initscript)
        .with(
            "keys",
            Value::Array(keys.iter().map(|k| Value::from(*k)).collect()),
        );
    SliverRecord::from_ticket(&attrs, &rspec, 2_000_000_000, "plc.test.alice").unwrap()
}

async fn open(dir: &Path) -> LocalManager {
    LocalManager::open(options(dir)).await.unwrap()
}

/// A record with no keys and no rspec beyond the defaults.
fn simple(name: &str, initscript: &str) -> SliverRecord {
    record(name, 1.0, &[], initscript, Struct::new())
}

fn name(s: &str) -> SliverName {
    SliverName::parse(s).unwrap()
}

fn home(dir: &Path, name: &str) -> PathBuf {
    dir.join("slivers").join(name)
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
async fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// (state, process group, start time) from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(char, i64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f[0].chars().next()?,
        f[2].parse().ok()?,
        f[19].parse().ok()?,
    ))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(s, _, _)| s != 'Z' && s != 'X')
}

/// Live (non-zombie) members of process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat(*p).is_some_and(|(s, g, _)| g == i64::from(pgid) && s != 'Z' && s != 'X'))
        .collect()
}

fn state_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("local-state.json")).unwrap()).unwrap()
}

/// The state directory holds nothing but the state file, the lock and the homes.
fn assert_no_temp_files(dir: &Path) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["local-state.json", "local.lock", "slivers"]);
}

async fn running_pid(m: &LocalManager, n: &SliverName) -> u32 {
    let st = m.status(n).await.unwrap();
    assert_eq!(st.state, SliverState::Running, "{st:?}");
    st.pid
        .expect("a running sliver with an initscript has a pid")
}

/// Waits (up to 5 s) for the sliver to reach `want`.
async fn wait_state(m: &LocalManager, n: &SliverName, want: SliverState) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = m.status(n).await.unwrap().state;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "{n} is still {now}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_trim(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default().trim().to_owned()
}

const LONG_RUNNING: &str = "#!/bin/sh\necho $$ > ran\nsleep 1000 &\necho $! > child\nwait\n";

// === tests ===

#[tokio::test]
async fn lifecycle_create_start_stop_start_reset_destroy() {
    let dir = state_dir();
    let m = open(dir.path()).await;
    let n = name("pl_life");
    m.create(record(
        "pl_life",
        1.0,
        &["ssh-rsa AAA a@b", "ssh-ed25519 BBB c@d"],
        LONG_RUNNING,
        Struct::new(),
    ))
    .await
    .unwrap();
    let h = home(dir.path(), "pl_life");
    let keys = h.join(".ssh/authorized_keys");
    assert_eq!(
        fs::read_to_string(&keys).unwrap(),
        "ssh-rsa AAA a@b\nssh-ed25519 BBB c@d\n"
    );
    assert_eq!(fs::metadata(&keys).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        fs::metadata(h.join("initscript")).unwrap().mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs::read_to_string(h.join("initscript")).unwrap(),
        LONG_RUNNING
    );
    assert_eq!(m.status(&n).await.unwrap().state, SliverState::Created);
    assert_no_temp_files(dir.path());

    // start: the script really runs, as the recorded process.
    m.start(&n).await.unwrap();
    let pid = running_pid(&m, &n).await;
    let ran = home(dir.path(), "pl_life").join("ran");
    assert!(
        wait_until(5, || read_trim(&ran) == pid.to_string()).await,
        "the initscript did not run"
    );
    let recorded = state_json(dir.path())["slivers"]["pl_life"].clone();
    assert_eq!(recorded["state"], "running");
    assert_eq!(recorded["pid"], pid);
    assert_eq!(recorded["start_time"], stat(pid).unwrap().2);
    let list = m.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].state, list[0].pid),
        (SliverState::Running, Some(pid))
    );
    m.start(&n).await.unwrap();
    assert_eq!(
        running_pid(&m, &n).await,
        pid,
        "start of a running sliver changes nothing"
    );

    // stop: the whole group goes, the backgrounded child too.
    let child_file = home(dir.path(), "pl_life").join("child");
    assert!(wait_until(5, || !read_trim(&child_file).is_empty()).await);
    let child: u32 = read_trim(&child_file).parse().unwrap();
    assert!(alive(child));
    m.stop(&n).await.unwrap();
    assert!(
        group_members(pid).is_empty(),
        "{:?} survived stop",
        group_members(pid)
    );
    assert!(!alive(pid) && !alive(child));
    let st = m.status(&n).await.unwrap();
    assert_eq!((st.state, st.pid), (SliverState::Stopped, None));
    m.stop(&n).await.unwrap();

    // start again.
    m.start(&n).await.unwrap();
    let pid2 = running_pid(&m, &n).await;
    assert_ne!(pid2, pid);
    assert!(wait_until(5, || read_trim(&ran) == pid2.to_string()).await);

    // reset: pristine home, a new run.
    fs::write(home(dir.path(), "pl_life").join("marker"), "x").unwrap();
    m.reset(&n).await.unwrap();
    let pid3 = running_pid(&m, &n).await;
    assert_ne!(pid3, pid2);
    assert!(group_members(pid2).is_empty());
    assert!(
        !home(dir.path(), "pl_life").join("marker").exists(),
        "reset kept old files"
    );
    assert!(
        wait_until(5, || read_trim(&ran) == pid3.to_string()).await,
        "the new run did not write its file"
    );

    // destroy.
    m.destroy(&n).await.unwrap();
    assert!(group_members(pid3).is_empty());
    assert!(!h.exists());
    assert!(m.list().await.unwrap().is_empty());
    assert!(matches!(m.status(&n).await, Err(NmError::NotFound(_))));
    assert!(matches!(m.destroy(&n).await, Err(NmError::NotFound(_))));
    assert!(matches!(m.start(&n).await, Err(NmError::NotFound(_))));
    assert_no_temp_files(dir.path());
}

#[tokio::test]
async fn a_record_replaces_another_only_when_strictly_newer() {
    let dir = state_dir();
    let m = open(dir.path()).await;
    let n = name("pl_stale");
    m.create(record("pl_stale", 5.0, &["old-key"], "", Struct::new()))
        .await
        .unwrap();
    let e = m
        .create(record(
            "pl_stale",
            5.0,
            &["same-time-key"],
            "",
            Struct::new(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, NmError::Stale { .. }), "{e}");
    assert!(e.to_string().contains("pl_stale"), "{e}");
    assert!(matches!(
        m.create(record("pl_stale", 4.0, &["older"], "", Struct::new()))
            .await,
        Err(NmError::Stale { .. })
    ));
    let keys = home(dir.path(), "pl_stale").join(".ssh/authorized_keys");
    assert_eq!(fs::read_to_string(&keys).unwrap(), "old-key\n");
    m.create(record("pl_stale", 6.0, &["new-key"], "", Struct::new()))
        .await
        .unwrap();
    assert_eq!(fs::read_to_string(&keys).unwrap(), "new-key\n");
    let st = m.status(&n).await.unwrap();
    assert_eq!((st.state, st.timestamp), (SliverState::Created, 6.0));

    // An empty initscript: running, with no process.
    m.start(&n).await.unwrap();
    let st = m.status(&n).await.unwrap();
    assert_eq!((st.state, st.pid), (SliverState::Running, None));
    m.stop(&n).await.unwrap();
    assert_eq!(m.status(&n).await.unwrap().state, SliverState::Stopped);
    m.destroy(&n).await.unwrap();
}

#[tokio::test]
async fn an_initscript_that_ends_by_itself_leaves_the_sliver_exited() {
    let dir = state_dir();
    let m = open(dir.path()).await;
    let n = name("pl_exits");
    // Like a SysV initscript: start a daemon in the background, then end.
    let script = "#!/bin/sh\necho bye\nsleep 1000 &\necho $! > daemon\nexit 3\n";
    m.create(simple("pl_exits", script)).await.unwrap();
    m.start(&n).await.unwrap();
    wait_state(&m, &n, SliverState::Exited).await;
    assert_eq!(m.status(&n).await.unwrap().pid, None);
    assert_eq!(
        state_json(dir.path())["slivers"]["pl_exits"]["state"],
        "exited"
    );
    assert!(
        fs::read_to_string(home(dir.path(), "pl_exits").join("initscript.log"))
            .unwrap()
            .contains("bye")
    );
    // Stop ends what the exited initscript left running, and records the sliver as stopped.
    let daemon: u32 = read_trim(&home(dir.path(), "pl_exits").join("daemon"))
        .parse()
        .unwrap();
    assert!(alive(daemon));
    m.stop(&n).await.unwrap();
    assert!(
        !alive(daemon),
        "the exited initscript's daemon survived stop"
    );
    assert_eq!(m.status(&n).await.unwrap().state, SliverState::Stopped);
    // Start runs it again.
    m.start(&n).await.unwrap();
    wait_state(&m, &n, SliverState::Exited).await;
    m.destroy(&n).await.unwrap();
}

#[tokio::test]
async fn a_script_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = state_dir();
    let grace = Duration::from_millis(300);
    let m = LocalManager::open(LocalOptions {
        stop_grace: grace,
        ..options(dir.path())
    })
    .await
    .unwrap();
    let n = name("pl_stubborn");
    let script = "#!/bin/sh\ntrap '' TERM\necho ready > ready\nwhile :; do sleep 1; done\n";
    m.create(simple("pl_stubborn", script)).await.unwrap();
    m.start(&n).await.unwrap();
    let pid = running_pid(&m, &n).await;
    let ready = home(dir.path(), "pl_stubborn").join("ready");
    assert!(wait_until(5, || ready.exists()).await);
    let began = Instant::now();
    m.stop(&n).await.unwrap();
    let took = began.elapsed();
    assert!(
        took >= grace,
        "stopped after {took:?}: SIGTERM should have been ignored"
    );
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    assert!(group_members(pid).is_empty());
    assert_eq!(m.status(&n).await.unwrap().state, SliverState::Stopped);
    m.destroy(&n).await.unwrap();
}

/// A stop waiting out its grace period holds up neither `list` nor another sliver's start:
/// the state lock is not held while a process group is ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stop_does_not_hold_up_other_slivers() {
    let dir = state_dir();
    let m = std::sync::Arc::new(
        LocalManager::open(LocalOptions {
            stop_grace: Duration::from_secs(4),
            ..options(dir.path())
        })
        .await
        .unwrap(),
    );
    let (slow, quick) = (name("pl_slow"), name("pl_quick"));
    let script = "#!/bin/sh\ntrap '' TERM\necho ready > ready\nwhile :; do sleep 1; done\n";
    m.create(simple("pl_slow", script)).await.unwrap();
    m.create(simple("pl_quick", "#!/bin/sh\nexec sleep 1000\n"))
        .await
        .unwrap();
    m.start(&slow).await.unwrap();
    let ready = home(dir.path(), "pl_slow").join("ready");
    assert!(wait_until(5, || ready.exists()).await);

    let stopping = {
        let (m, slow) = (std::sync::Arc::clone(&m), slow.clone());
        tokio::spawn(async move { m.stop(&slow).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    m.start(&quick).await.unwrap();
    assert_eq!(m.list().await.unwrap().len(), 2);
    let took = began.elapsed();
    assert!(
        !stopping.is_finished(),
        "the stop should still be in its grace period"
    );
    assert!(
        took < Duration::from_secs(2),
        "start and list waited {took:?} behind another sliver's stop"
    );
    stopping.await.unwrap().unwrap();
    assert_eq!(m.status(&slow).await.unwrap().state, SliverState::Stopped);
    m.destroy(&slow).await.unwrap();
    m.destroy(&quick).await.unwrap();
}

#[tokio::test]
async fn after_a_crash_running_slivers_are_adopted_or_restarted() {
    let dir = state_dir();
    let n = name("pl_phoenix");
    let script = "#!/bin/sh\necho $$ >> runs\nwhile :; do sleep 1; done\n";
    let m = open(dir.path()).await;
    m.create(simple("pl_phoenix", script)).await.unwrap();
    m.start(&n).await.unwrap();
    let pid = running_pid(&m, &n).await;
    // A crash: the manager goes away without stopping anything.
    drop(m);
    assert!(alive(pid));

    let m = open(dir.path()).await;
    assert_eq!(running_pid(&m, &n).await, pid, "not adopted");
    m.stop(&n).await.unwrap();
    assert!(
        group_members(pid).is_empty(),
        "stop did not reach the adopted process"
    );
    assert_eq!(m.status(&n).await.unwrap().state, SliverState::Stopped);

    // Recorded as running, but its process dies while no agent runs: restarted at open.
    m.start(&n).await.unwrap();
    let pid2 = running_pid(&m, &n).await;
    drop(m);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(i32::try_from(pid2).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(5, || !alive(pid2)).await);
    let m = open(dir.path()).await;
    let pid3 = running_pid(&m, &n).await;
    assert_ne!(pid3, pid2);
    assert!(alive(pid3));
    let runs = home(dir.path(), "pl_phoenix").join("runs");
    assert!(wait_until(5, || read_trim(&runs).ends_with(&pid3.to_string())).await);

    // An adopted process that ends by itself is noticed (polled every second).
    drop(m);
    let m = open(dir.path()).await;
    assert_eq!(running_pid(&m, &n).await, pid3);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(i32::try_from(pid3).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_state(&m, &n, SliverState::Exited).await;
    m.destroy(&n).await.unwrap();
}

#[tokio::test]
async fn a_recycled_pid_is_neither_adopted_nor_signalled() {
    let dir = state_dir();
    let mut stranger = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = stranger.id();
    let real_start = stat(pid).unwrap().2;
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let state = serde_json::json!({
        "version": 1,
        "slivers": {
            "pl_reused": {
                "record": {
                    "slice_id": null, "instantiation": "delegated", "keys": ["k"],
                    "initscript": "#!/bin/sh\nwhile :; do sleep 1; done\n", "vref": "default",
                    "timestamp": 1.0, "expires": 2_000_000_000, "rspec": {}, "caller": "x"
                },
                "state": "running",
                "pid": pid,
                "start_time": real_start + 12_345,
                "uid": uid,
                "gid": gid
            }
        }
    });
    fs::write(dir.path().join("local-state.json"), state.to_string()).unwrap();
    let m = open(dir.path()).await;
    let n = name("pl_reused");
    let new_pid = running_pid(&m, &n).await;
    assert_ne!(new_pid, pid, "adopted a process that is not the sliver's");
    assert!(alive(pid), "signalled a process that is not the sliver's");
    // Its files were written from the state at open.
    assert_eq!(
        fs::read_to_string(home(dir.path(), "pl_reused").join(".ssh/authorized_keys")).unwrap(),
        "k\n"
    );
    m.destroy(&n).await.unwrap();
    assert!(
        alive(pid),
        "destroy signalled a process that is not the sliver's"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[tokio::test]
async fn open_cleans_up_what_a_crash_left_half_made() {
    let dir = state_dir();
    let n = name("pl_kept");
    let m = open(dir.path()).await;
    m.create(record("pl_kept", 1.0, &["k"], "", Struct::new()))
        .await
        .unwrap();
    let before = fs::read(dir.path().join("local-state.json")).unwrap();
    drop(m);
    // A state write that never finished, and a create that wrote its home but was never
    // recorded.
    fs::write(
        dir.path().join("local-state.json.tmp"),
        b"{\"version\":1,\"sli",
    )
    .unwrap();
    let orphan = home(dir.path(), "pl_orphan");
    fs::create_dir_all(orphan.join(".ssh")).unwrap();
    fs::write(orphan.join("initscript"), "#!/bin/sh\n").unwrap();
    // A reset interrupted between wiping and re-creating the home.
    fs::remove_dir_all(home(dir.path(), "pl_kept")).unwrap();

    let m = open(dir.path()).await;
    assert_no_temp_files(dir.path());
    assert!(!orphan.exists(), "an unrecorded home survived open");
    assert_eq!(
        fs::read(dir.path().join("local-state.json")).unwrap(),
        before
    );
    let names: Vec<String> = m
        .list()
        .await
        .unwrap()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, ["pl_kept"]);
    assert_eq!(
        fs::read_to_string(home(dir.path(), "pl_kept").join(".ssh/authorized_keys")).unwrap(),
        "k\n"
    );

    // Every change leaves a complete state file and no temp file behind.
    let n2 = name("pl_more");
    m.create(simple("pl_more", "")).await.unwrap();
    for step in 0..4 {
        match step {
            0 => m.start(&n2).await.unwrap(),
            1 => m.stop(&n2).await.unwrap(),
            2 => m.reset(&n2).await.unwrap(),
            _ => m.destroy(&n2).await.unwrap(),
        }
        assert_no_temp_files(dir.path());
        assert_eq!(state_json(dir.path())["version"], 1);
    }
    m.destroy(&n).await.unwrap();
    assert_eq!(state_json(dir.path())["slivers"], serde_json::json!({}));
}

#[tokio::test]
async fn one_manager_per_state_directory() {
    let dir = state_dir();
    let first = open(dir.path()).await;
    let opts = options(dir.path());
    let second = tokio::spawn(async move { LocalManager::open(opts).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a second manager opened a state directory in use"
    );
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(3), second)
        .await
        .expect("the lock was not released with the first manager")
        .unwrap();
    assert!(second.unwrap().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn rspec_limits_apply_to_the_initscript() {
    let dir = state_dir();
    let m = open(dir.path()).await;
    let n = name("pl_limited");
    // disk_max 1000 KB: files up to 1,024,000 bytes. Writing 2 MB stops there (SIGXFSZ).
    let script = "#!/bin/sh\nulimit -f > fsize\nulimit -n > nofile\n\
                  head -c 2000000 /dev/zero > big\necho done > finished\n\
                  while :; do sleep 1; done\n";
    let rspec = Struct::new()
        .with("disk_max", "1000")
        .with("nofile_hard", "64")
        .with("nproc_hard", "500");
    m.create(record("pl_limited", 1.0, &[], script, rspec))
        .await
        .unwrap();
    m.start(&n).await.unwrap();
    let pid = running_pid(&m, &n).await;
    let w = home(dir.path(), "pl_limited");
    assert!(wait_until(5, || w.join("finished").exists()).await);
    assert_eq!(
        read_trim(&w.join("fsize")),
        "2000",
        "ulimit -f counts 512-byte blocks"
    );
    assert_eq!(read_trim(&w.join("nofile")), "64");
    assert_eq!(fs::metadata(w.join("big")).unwrap().len(), 1_024_000);
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = |label: &str| -> Vec<String> {
        let line = limits.lines().find(|l| l.starts_with(label)).unwrap();
        line[label.len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("Max file size")[..2], ["1024000", "1024000"]);
    assert_eq!(row("Max open files")[..2], ["64", "64"]);
    assert_eq!(row("Max processes")[..2], ["500", "500"]);
    m.destroy(&n).await.unwrap();
}

/// Removes the test account even when the test fails half-way.
struct AccountGuard(String);

impl Drop for AccountGuard {
    fn drop(&mut self) {
        let Some(user) = nix::unistd::User::from_name(&self.0).ok().flatten() else {
            return;
        };
        // userdel refuses while the account runs anything: end what this test's uid runs.
        let uid_line = format!("Uid:\t{}\t", user.uid);
        for pid in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = pid.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status.lines().any(|l| l.starts_with(&uid_line)) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::process::Command::new("userdel").arg(&self.0).status();
    }
}

fn have_useradd() -> bool {
    ["/usr/sbin/useradd", "/sbin/useradd"]
        .iter()
        .any(|p| Path::new(p).exists())
}

#[tokio::test]
async fn accounts_are_made_used_and_removed_when_root() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: account management needs root");
        return;
    }
    if !have_useradd() {
        println!("skipped: useradd is not installed");
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let user = format!("gtest_{:x}{:x}", std::process::id(), nanos);
    let _guard = AccountGuard(user.clone());
    let n = name(&user);
    let dir = state_dir();
    let m = LocalManager::open(LocalOptions {
        manage_accounts: true,
        ..options(dir.path())
    })
    .await
    .unwrap();
    let script = "#!/bin/sh\necho $(id -u) $(id -g) > ids.tmp && mv ids.tmp ids\n\
                  while :; do sleep 1; done\n";
    m.create(record(&user, 1.0, &["k"], script, Struct::new()))
        .await
        .unwrap();
    let account = nix::unistd::User::from_name(&user)
        .unwrap()
        .expect("no account made");
    let h = home(dir.path(), &user);
    assert_eq!(account.dir, h);
    let uid = account.uid.as_raw();
    assert_ne!(uid, 0);
    assert_eq!(fs::metadata(home(dir.path(), &user)).unwrap().uid(), uid);
    assert_eq!(
        fs::metadata(h.join(".ssh/authorized_keys")).unwrap().uid(),
        uid
    );
    m.start(&n).await.unwrap();
    let w = home(dir.path(), &user);
    assert!(
        wait_until(5, || w.join("ids").exists()).await,
        "the initscript did not run"
    );
    assert_eq!(
        read_trim(&w.join("ids")),
        format!("{uid} {}", account.gid.as_raw())
    );
    m.destroy(&n).await.unwrap();
    assert!(
        nix::unistd::User::from_name(&user).unwrap().is_none(),
        "the account survived destroy"
    );
    assert!(!h.exists());

    // A crash after useradd, before the sliver was recorded: open removes both.
    drop(m);
    fs::create_dir_all(&h).unwrap();
    let made = std::process::Command::new("useradd")
        .args([
            "--home-dir",
            h.to_str().unwrap(),
            "--no-create-home",
            "--user-group",
            &user,
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let m = LocalManager::open(LocalOptions {
        manage_accounts: true,
        ..options(dir.path())
    })
    .await
    .unwrap();
    assert!(
        nix::unistd::User::from_name(&user).unwrap().is_none(),
        "orphan account kept"
    );
    assert!(!h.exists());
    assert!(m.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn as_root_initscripts_run_as_nobody_by_default() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: only root can run initscripts as another user");
        return;
    }
    let dir = state_dir();
    let closed = dir
        .path()
        .ancestors()
        .find(|a| fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0));
    if let Some(a) = closed {
        println!("skipped: nobody cannot enter {}", a.display());
        return;
    }
    let m = LocalManager::open(LocalOptions::new(dir.path()))
        .await
        .unwrap();
    let n = name("pl_nobody");
    let script = "#!/bin/sh\nid -u > uid.tmp && mv uid.tmp uid\nwhile :; do sleep 1; done\n";
    m.create(simple("pl_nobody", script)).await.unwrap();
    let w = home(dir.path(), "pl_nobody");
    assert_eq!(fs::metadata(&w).unwrap().uid(), 65_534);
    m.start(&n).await.unwrap();
    assert!(wait_until(5, || w.join("uid").exists()).await);
    assert_eq!(read_trim(&w.join("uid")), "65534");
    m.destroy(&n).await.unwrap();

    // Under a directory nobody cannot enter, start fails and says why.
    let closed = state_dir();
    fs::set_permissions(closed.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let m = LocalManager::open(LocalOptions::new(closed.path().join("state")))
        .await
        .unwrap();
    m.create(simple("pl_nobody", script)).await.unwrap();
    let e = m.start(&n).await.unwrap_err().to_string();
    assert!(e.contains("pl_nobody") && e.contains("o+x"), "{e}");
    assert_eq!(m.status(&n).await.unwrap().state, SliverState::Created);
}

#[tokio::test]
async fn managing_accounts_without_root_is_refused_at_open() {
    if nix::unistd::geteuid().is_root() {
        println!("skipped: this checks what happens when the agent is not root");
        return;
    }
    let dir = state_dir();
    let e = LocalManager::open(LocalOptions {
        manage_accounts: true,
        ..options(dir.path())
    })
    .await
    .unwrap_err();
    assert!(matches!(e, NmError::Permission(_)), "{e}");
}
