//! The `local` backend against real processes and files: lifecycle, stale records, exits,
//! SIGKILL after the grace period, re-adoption after a crash, pid reuse, crash leftovers,
//! rlimits, and (as root with `useradd`) Unix accounts.
//!
//! Every test uses its own state directory under Cargo's target tmpdir (not /tmp, which may be
//! mounted noexec) and bounded waits, and cleans up the processes it starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
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
        let Ok(files) = fs::read_dir(self.path().join("state")) else {
            return;
        };
        for file in files.flatten() {
            let Ok(bytes) = fs::read(file.path()) else {
                continue;
            };
            let state: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let s = &state["sliver"];
            let (Some(pid), Some(start)) = (s["pid"].as_u64(), s["start_time"].as_u64()) else {
                continue;
            };
            let pid = u32::try_from(pid).unwrap();
            // Gone leader: its group id is not reused while members live, so the rest is ours.
            if stat(pid).is_none_or(|(_, _, t)| t == start) {
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

/// Slivers share one uid, nobody's, when the test is root (accounts, the default for root,
/// have their own tests, with names no other test uses), and run as the test otherwise.
fn options(dir: &Path) -> LocalOptions {
    LocalOptions {
        stop_grace: Duration::from_secs(2),
        manage_accounts: false,
        danger_shared_uid: true,
        run_as: (NOBODY, NOBODY),
        ..LocalOptions::new(dir)
    }
}

const NOBODY: u32 = 65_534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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

/// The sliver's state file, `state/<name>.json`.
fn sliver_json(dir: &Path, name: &str) -> serde_json::Value {
    let path = dir.join("state").join(format!("{name}.json"));
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The state directory holds nothing but the lock, the homes and one state file per sliver.
fn assert_no_temp_files(dir: &Path) {
    assert_eq!(names_in(dir), ["local.lock", "slivers", "state"]);
    for name in names_in(&dir.join("state")) {
        assert!(
            Path::new(&name).extension().is_some_and(|e| e == "json"),
            "{name} in the state directory"
        );
    }
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
        0o700
    );
    assert_eq!(fs::metadata(&h).unwrap().mode() & 0o777, 0o700);
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
    let recorded = sliver_json(dir.path(), "pl_life")["sliver"].clone();
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
        sliver_json(dir.path(), "pl_exits")["sliver"]["state"],
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
    // The wrapper makes its own session (and group) right after start.
    assert!(
        wait_until(5, || stat(pid2)
            .is_some_and(|(_, g, _)| g == i64::from(pid2)))
        .await
    );
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
    let (uid, gid) = if is_root() {
        (NOBODY, NOBODY)
    } else {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    };
    // A state file of version 1, the single file of earlier agents: migrated at open.
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
    let kept_file = dir.path().join("state/pl_kept.json");
    let before = fs::read(&kept_file).unwrap();
    drop(m);
    // A state write that never finished, and a create that wrote its home but was never
    // recorded.
    fs::write(
        dir.path().join("state/pl_kept.json.tmp"),
        b"{\"version\":2,\"sli",
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
    assert_eq!(fs::read(&kept_file).unwrap(), before);
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
        if step < 3 {
            assert_eq!(sliver_json(dir.path(), "pl_more")["version"], 2);
        }
    }
    assert!(!dir.path().join("state/pl_more.json").exists());
    m.destroy(&n).await.unwrap();
    assert!(names_in(&dir.path().join("state")).is_empty());
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
async fn a_shared_uid_runs_slivers_as_run_as_and_needs_a_reachable_home() {
    if !is_root() {
        println!("skipped: only root can run initscripts as another user");
        return;
    }
    let dir = state_dir();
    let closed = dir
        .path()
        .ancestors()
        .find(|a| fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0));
    assert!(closed.is_none(), "nobody cannot enter {closed:?}");
    let m = open(dir.path()).await;
    let n = name("pl_nobody");
    let script = "#!/bin/sh\nid -u > uid.tmp && mv uid.tmp uid\nwhile :; do sleep 1; done\n";
    m.create(simple("pl_nobody", script)).await.unwrap();
    let w = home(dir.path(), "pl_nobody");
    assert_eq!(fs::metadata(&w).unwrap().uid(), NOBODY);
    m.start(&n).await.unwrap();
    assert!(wait_until(5, || w.join("uid").exists()).await);
    assert_eq!(read_trim(&w.join("uid")), "65534");
    m.destroy(&n).await.unwrap();

    // Under a directory nobody cannot enter, start fails and says why.
    let closed = state_dir();
    fs::set_permissions(closed.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let m = open(&closed.path().join("state")).await;
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

// === isolation (root: accounts, cgroups, sshd) ===

/// Accounts made by a test, removed (after killing what their uids run) even when it fails.
struct Accounts(Vec<String>);

impl Drop for Accounts {
    fn drop(&mut self) {
        for user in &self.0 {
            let Some(u) = nix::unistd::User::from_name(user).ok().flatten() else {
                continue;
            };
            for pid in pids_of_uid(u.uid.as_raw()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(100));
            let _ = std::process::Command::new("userdel").arg(user).status();
            let _ = std::process::Command::new("groupdel").arg(user).status();
        }
    }
}

/// Sliver names no other test (nor another run of this one) uses: `<prefix>_<pid><n>`.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{:x}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live (non-zombie) processes with `uid` as real, effective, saved or filesystem uid.
fn pids_of_uid(uid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let field = |k: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap_or_default()
                    .to_owned()
            };
            !field("State:").trim().starts_with('Z')
                && field("Uid:")
                    .split_whitespace()
                    .any(|u| u.parse::<u32>().ok() == Some(uid))
        })
        .collect()
}

/// Root, useradd present: the account tests run. Otherwise they say so and pass (a developer's
/// laptop); CI runs as root on Debian, where they always run.
fn can_make_accounts() -> bool {
    if !is_root() {
        println!("SKIPPED: accounts need root");
        return false;
    }
    assert!(
        ["/usr/sbin/useradd", "/sbin/useradd"]
            .iter()
            .any(|p| Path::new(p).exists()),
        "root but no useradd: install passwd (Debian) or shadow-utils (Fedora)"
    );
    true
}

/// A writable cgroup hierarchy as this test sees it, independently of the backend: pure v2
/// (`/sys/fs/cgroup/cgroup.controllers`) or the v1 `pids` hierarchy of a hybrid host. When
/// there is one, the cgroup tests must really run (and do assert on the kernel's counters).
fn cgroups_writable() -> bool {
    if !is_root() {
        println!("SKIPPED: cgroups need root");
        return false;
    }
    let probe = |dir: PathBuf| {
        let made = fs::create_dir(&dir).is_ok();
        let _ = fs::remove_dir(&dir);
        made
    };
    let name = format!("nm-probe-{}", std::process::id());
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
        && probe(Path::new("/sys/fs/cgroup").join(&name));
    let v1 = Path::new("/sys/fs/cgroup/pids/cgroup.procs").is_file()
        && probe(Path::new("/sys/fs/cgroup/pids").join(&name));
    if !v2 && !v1 {
        println!("SKIPPED: no writable cgroup hierarchy on this host");
    }
    v2 || v1
}

/// The directory of `pid`'s cgroup in `controller`'s hierarchy (None: the v2 tree), from
/// `/proc/<pid>/cgroup`, on either layout.
fn cgroup_dir(pid: u32, controller: Option<&str>) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let rel = path.trim_start_matches('/');
        match controller {
            _ if pure_v2 && ctrls.is_empty() => return Path::new("/sys/fs/cgroup").join(rel),
            None if ctrls.is_empty() => return Path::new("/sys/fs/cgroup/unified").join(rel),
            Some(c) if ctrls.split(',').any(|x| x == c) => {
                return Path::new("/sys/fs/cgroup").join(c).join(rel);
            }
            _ => {}
        }
    }
    panic!("pid {pid} is in no {controller:?} cgroup: {text}");
}

fn accounts_options(dir: &Path) -> LocalOptions {
    LocalOptions {
        manage_accounts: true,
        danger_shared_uid: false,
        ..options(dir)
    }
}

fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .unwrap()
        .expect("no account")
        .uid
        .as_raw()
}

/// See issue 17: a hostile sliver A tries everything against sliver B; nothing works, and B is
/// untouched and still running.
#[tokio::test]
async fn a_sliver_cannot_read_write_list_or_signal_another() {
    if !can_make_accounts() {
        return;
    }
    let (a, b) = (unique("ia"), unique("ib"));
    let _accounts = Accounts(vec![a.clone(), b.clone()]);
    let dir = state_dir();
    let m = LocalManager::open(accounts_options(dir.path()))
        .await
        .unwrap();
    let b_script = "#!/bin/sh\necho $$ > pid.tmp && mv pid.tmp pid\nexec sleep 1000\n";
    m.create(record(
        &b,
        1.0,
        &["ssh-ed25519 BKEY b@x"],
        b_script,
        Struct::new(),
    ))
    .await
    .unwrap();
    let a_script = r##"#!/bin/sh
while [ ! -f target ]; do sleep 0.05; done
. ./target
try() { what=$1; shift; if "$@" >/dev/null 2>&1; then echo "$what allowed"; else echo "$what denied"; fi; }
try list ls "$BHOME"
try read cat "$BHOME/initscript"
try read_keys cat "$BHOME/.ssh/authorized_keys"
try write sh -c 'echo x > "$1/planted"' - "$BHOME"
try append_key sh -c 'echo "ssh-ed25519 EVIL a@x" >> "$1/.ssh/authorized_keys"' - "$BHOME"
try rewrite_initscript sh -c 'echo "#!/bin/sh" > "$1/initscript"' - "$BHOME"
try kill kill -9 "$BPID"
sleep 1000 &
try kill_all kill -9 -1
echo done
"##;
    m.create(record(&a, 1.0, &[], a_script, Struct::new()))
        .await
        .unwrap();
    let (na, nb) = (name(&a), name(&b));
    let (ha, hb) = (home(dir.path(), &a), home(dir.path(), &b));
    let (ua, ub) = (uid_of(&a), uid_of(&b));
    assert_ne!(ua, ub);
    assert!((600_000..=665_535).contains(&ua) && (600_000..=665_535).contains(&ub));
    for h in [&ha, &hb] {
        assert_eq!(fs::metadata(h).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            fs::metadata(h.join("initscript")).unwrap().mode() & 0o777,
            0o700
        );
    }
    m.start(&nb).await.unwrap();
    let b_pid = running_pid(&m, &nb).await;
    assert!(wait_until(5, || read_trim(&hb.join("pid")) == b_pid.to_string()).await);
    let b_keys = fs::read(hb.join(".ssh/authorized_keys")).unwrap();
    let b_initscript = fs::read(hb.join("initscript")).unwrap();

    // A's results go to stdout, which the wrapper appends to A's initscript.log.
    fs::write(
        ha.join("target"),
        format!("BHOME={}\nBPID={b_pid}\n", hb.display()),
    )
    .unwrap();
    m.start(&na).await.unwrap();
    let log = ha.join("initscript.log");
    assert!(
        wait_until(10, || read_trim(&log).contains("kill_all")).await,
        "A's initscript did not get through its attempts: {}",
        read_trim(&log)
    );
    let results = read_trim(&log);
    for attempt in [
        "list",
        "read",
        "read_keys",
        "write",
        "append_key",
        "rewrite_initscript",
        "kill",
    ] {
        assert!(
            results.lines().any(|l| l == format!("{attempt} denied")),
            "{attempt} was not denied:\n{results}"
        );
    }
    // kill -9 -1 as A reaches A's own processes only: A's sleeper is gone, B is not.
    assert!(alive(b_pid), "B's initscript died");
    assert_eq!(running_pid(&m, &nb).await, b_pid);
    assert_eq!(fs::read(hb.join(".ssh/authorized_keys")).unwrap(), b_keys);
    assert_eq!(fs::read(hb.join("initscript")).unwrap(), b_initscript);
    assert!(!hb.join("planted").exists());
    assert!(
        pids_of_uid(ub).contains(&b_pid),
        "B's process is no longer B's"
    );
    m.destroy(&na).await.unwrap();
    assert!(alive(b_pid));
    m.destroy(&nb).await.unwrap();
    assert!(!alive(b_pid));
}

/// An initscript that double-forks a `setsid` sleeper (ordinary daemonising). `how` ends the
/// sliver; afterwards no process of its uid may exist.
async fn daemons_die(how: &str, opts: fn(&Path) -> LocalOptions) {
    let user = unique(&format!("d{}", &how[..2]));
    let _accounts = Accounts(vec![user.clone()]);
    let dir = state_dir();
    let m = LocalManager::open(opts(dir.path())).await.unwrap();
    let script = "#!/bin/sh\n(setsid sh -c 'echo $$ > daemon.tmp; mv daemon.tmp daemon; \
                  exec sleep 1000' &) \nexec sleep 1000\n";
    m.create(record(&user, 1.0, &[], script, Struct::new()))
        .await
        .unwrap();
    let n = name(&user);
    let uid = uid_of(&user);
    m.start(&n).await.unwrap();
    let pid = running_pid(&m, &n).await;
    let daemon_file = home(dir.path(), &user).join("daemon");
    assert!(wait_until(5, || daemon_file.exists()).await);
    let daemon: u32 = read_trim(&daemon_file).parse().unwrap();
    assert!(alive(daemon));
    let (_, daemon_group, _) = stat(daemon).unwrap();
    assert_ne!(
        daemon_group,
        i64::from(pid),
        "the daemon did not leave the group"
    );
    assert!(pids_of_uid(uid).len() >= 2, "{:?}", pids_of_uid(uid));
    match how {
        "stop" => m.stop(&n).await.unwrap(),
        _ => m.destroy(&n).await.unwrap(),
    }
    assert_eq!(
        pids_of_uid(uid),
        Vec::<u32>::new(),
        "processes of {user} survived {how}"
    );
    assert!(!alive(daemon));
    if how == "stop" {
        assert_eq!(m.status(&n).await.unwrap().state, SliverState::Stopped);
        m.destroy(&n).await.unwrap();
    }
}

#[tokio::test]
async fn stop_ends_setsid_daemons_too() {
    if can_make_accounts() {
        daemons_die("stop", accounts_options).await;
    }
}

#[tokio::test]
async fn delete_ends_setsid_daemons_too() {
    if can_make_accounts() {
        daemons_die("delete", accounts_options).await;
    }
}

/// Without cgroups, the kill by uid alone still gets the daemon.
#[tokio::test]
async fn the_uid_kill_alone_ends_setsid_daemons() {
    if can_make_accounts() {
        daemons_die("stop", |d| LocalOptions {
            cgroups: false,
            ..accounts_options(d)
        })
        .await;
    }
}

/// With one shared uid there is no kill by uid (it would hit the other slivers): the cgroup
/// alone must end the daemon, and only this sliver's processes.
#[tokio::test]
async fn the_cgroup_alone_ends_setsid_daemons_and_nothing_else() {
    if !cgroups_writable() {
        return;
    }
    let dir = state_dir();
    let m = open(dir.path()).await;
    let script = "#!/bin/sh\n(setsid sh -c 'echo $$ > daemon.tmp; mv daemon.tmp daemon; \
                  exec sleep 1000' &) \nexec sleep 1000\n";
    let (n, other) = (name("pl_cgd"), name("pl_cgother"));
    m.create(simple("pl_cgd", script)).await.unwrap();
    m.create(simple("pl_cgother", "#!/bin/sh\nexec sleep 1000\n"))
        .await
        .unwrap();
    m.start(&n).await.unwrap();
    m.start(&other).await.unwrap();
    let other_pid = running_pid(&m, &other).await;
    let daemon_file = home(dir.path(), "pl_cgd").join("daemon");
    assert!(wait_until(5, || daemon_file.exists()).await);
    let daemon: u32 = read_trim(&daemon_file).parse().unwrap();
    let pid = running_pid(&m, &n).await;
    // Both in the sliver's own cgroup, in every hierarchy that can end them.
    let kill_dir = cgroup_dir(pid, None);
    assert!(
        kill_dir.ends_with("pl_cgd"),
        "{} is not the sliver's cgroup",
        kill_dir.display()
    );
    assert!(
        kill_dir.join("cgroup.kill").is_file(),
        "this host's cgroup2 tree has no cgroup.kill"
    );
    assert_eq!(cgroup_dir(daemon, None), kill_dir);
    m.stop(&n).await.unwrap();
    assert!(!alive(daemon), "the setsid daemon survived stop");
    assert!(!alive(pid));
    assert!(
        alive(other_pid),
        "stop of one sliver ended another's process"
    );
    m.destroy(&n).await.unwrap();
    assert!(!kill_dir.exists(), "the sliver's cgroup outlived delete");
    m.destroy(&other).await.unwrap();
}

/// A storm of 200 background sleepers (a fork bomb that ends by itself, so that a broken limit
/// cannot take this shared machine down) meets `pids.max`, and a hog that buffers 200 MB
/// meets the memory limit: the kernel's own counters show both limits at work.
#[tokio::test]
async fn pids_max_bounds_a_fork_storm_and_the_memory_limit_stops_a_hog() {
    if !cgroups_writable() {
        return;
    }
    let dir = state_dir();
    let m = LocalManager::open(LocalOptions {
        pids_max: Some(16),
        ..options(dir.path())
    })
    .await
    .unwrap();
    // dash gives up at the first fork that fails: the storm ends there.
    let storm = "#!/bin/sh\nwhile [ ! -f go ]; do sleep 0.05; done\n\
                 i=0\nwhile [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done\n\
                 echo unbounded > unbounded\nexec sleep 1000\n";
    let n = name("pl_storm");
    m.create(record(
        "pl_storm",
        1.0,
        &[],
        storm,
        Struct::new().with("cpu_share", "50"),
    ))
    .await
    .unwrap();
    m.start(&n).await.unwrap();
    let pid = running_pid(&m, &n).await;
    let w = home(dir.path(), "pl_storm");
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
    let pids_dir = cgroup_dir(pid, (!pure_v2).then_some("pids"));
    assert!(pids_dir.ends_with("pl_storm"), "{}", pids_dir.display());
    assert_eq!(read_trim(&pids_dir.join("pids.max")), "16");
    let refused = || -> u64 {
        read_trim(&pids_dir.join("pids.events"))
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(refused(), 0);
    // cpu_share 50: weight 50, or shares 512 (1024 is v1's 100).
    if pure_v2 {
        assert_eq!(read_trim(&pids_dir.join("cpu.weight")), "50");
    } else {
        assert_eq!(
            read_trim(&cgroup_dir(pid, Some("cpu")).join("cpu.shares")),
            "512"
        );
    }
    fs::write(w.join("go"), "").unwrap();
    assert!(
        wait_until(20, || refused() > 0).await,
        "pids.max never refused a fork: {}",
        read_trim(&w.join("initscript.log"))
    );
    assert!(!w.join("unbounded").exists(), "all 200 forks succeeded");
    let current: u64 = read_trim(&pids_dir.join("pids.current")).parse().unwrap();
    assert!(current <= 16, "{current} processes under pids.max 16");
    let members = fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap();
    assert!(members.lines().count() <= 16);
    m.destroy(&n).await.unwrap();
    assert!(!pids_dir.exists());

    // memlock_hard 32768 KiB: 32 MiB. The subshell holding the buffer is killed (status 137).
    let hog = "#!/bin/sh\n( v=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived > survived )\n\
               echo $? > status.tmp && mv status.tmp status\nexec sleep 1000\n";
    let n = name("pl_hog");
    m.create(record(
        "pl_hog",
        1.0,
        &[],
        hog,
        Struct::new().with("memlock_hard", "32768"),
    ))
    .await
    .unwrap();
    m.start(&n).await.unwrap();
    let pid = running_pid(&m, &n).await;
    let w = home(dir.path(), "pl_hog");
    assert!(
        wait_until(30, || w.join("status").exists()).await,
        "the hog never ended"
    );
    assert_eq!(
        read_trim(&w.join("status")),
        "137",
        "the hog was not SIGKILLed"
    );
    assert!(!w.join("survived").exists());
    if pure_v2 {
        let mem = cgroup_dir(pid, None);
        assert_eq!(read_trim(&mem.join("memory.max")), "33554432");
        let events = read_trim(&mem.join("memory.events"));
        assert!(
            events
                .lines()
                .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
            "{events}"
        );
    } else {
        let mem = cgroup_dir(pid, Some("memory"));
        assert!(mem.ends_with("pl_hog"), "{}", mem.display());
        assert_eq!(read_trim(&mem.join("memory.limit_in_bytes")), "33554432");
        // Usage reached the limit (this kernel's v1 failcnt stays 0) and the OOM killer ran
        // in this cgroup.
        assert_eq!(
            read_trim(&mem.join("memory.max_usage_in_bytes")),
            "33554432",
            "the memory limit was never reached"
        );
        let oom = read_trim(&mem.join("memory.oom_control"));
        assert!(
            oom.lines()
                .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
            "{oom}"
        );
    }
    m.destroy(&n).await.unwrap();
}

/// uids are distinct per sliver, taken round-robin, and skipped while any process runs with
/// them; a full range refuses the create and leaves nothing behind.
#[tokio::test]
async fn uids_are_distinct_and_not_reused_while_a_process_holds_them() {
    if !can_make_accounts() {
        return;
    }
    // Two uids of the default range that no other test reaches (they start at its bottom).
    let base = 665_000 + (std::process::id() % 250) * 2;
    let names: Vec<String> = (0..4).map(|_| unique("iu")).collect();
    let _accounts = Accounts(names.clone());
    let dir = state_dir();
    let m = LocalManager::open(LocalOptions {
        uids: base..=base + 1,
        ..accounts_options(dir.path())
    })
    .await
    .unwrap();
    let make = |i: usize| record(&names[i], 1.0, &[], "", Struct::new());
    m.create(make(0)).await.unwrap();
    m.create(make(1)).await.unwrap();
    assert_eq!((uid_of(&names[0]), uid_of(&names[1])), (base, base + 1));
    // Its user group has the same number.
    let account = nix::unistd::User::from_name(&names[0]).unwrap().unwrap();
    assert_eq!(account.gid.as_raw(), base);
    assert_eq!(
        nix::unistd::Group::from_gid(account.gid)
            .unwrap()
            .unwrap()
            .name,
        names[0]
    );
    m.destroy(&name(&names[0])).await.unwrap();
    // A process still runs with the first uid (left by anything at all).
    let mut holder = std::process::Command::new("sleep")
        .arg("1000")
        .uid(base)
        .gid(base)
        .spawn()
        .unwrap();
    m.destroy(&name(&names[1])).await.unwrap();
    m.create(make(2)).await.unwrap();
    assert_eq!(
        uid_of(&names[2]),
        base + 1,
        "took a uid a process still holds"
    );
    let e = m.create(make(3)).await.unwrap_err().to_string();
    assert!(e.contains("no free uid"), "{e}");
    assert!(nix::unistd::User::from_name(&names[3]).unwrap().is_none());
    assert!(!home(dir.path(), &names[3]).exists());
    assert!(!dir.path().join(format!("state/{}.json", names[3])).exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    m.create(make(3)).await.unwrap();
    assert_eq!(uid_of(&names[3]), base);
    m.destroy(&name(&names[2])).await.unwrap();
    m.destroy(&name(&names[3])).await.unwrap();
}

/// What a deleted sliver left in /tmp, /var/tmp and /dev/shm goes with it; others' files stay.
#[tokio::test]
async fn delete_removes_the_slivers_files_in_shared_places() {
    if !can_make_accounts() {
        return;
    }
    let user = unique("it");
    let _accounts = Accounts(vec![user.clone()]);
    let dir = state_dir();
    let m = LocalManager::open(accounts_options(dir.path()))
        .await
        .unwrap();
    let script = format!(
        "#!/bin/sh\nmkdir /tmp/{user}.d && echo x > /tmp/{user}.d/f && echo y > /dev/shm/{user} \
         && echo z > /var/tmp/{user} && echo ok > done\nexec sleep 1000\n"
    );
    m.create(record(&user, 1.0, &[], &script, Struct::new()))
        .await
        .unwrap();
    let keep = PathBuf::from(format!("/tmp/{user}.keep"));
    fs::write(&keep, "root's").unwrap();
    let n = name(&user);
    m.start(&n).await.unwrap();
    let h = home(dir.path(), &user);
    assert!(
        wait_until(5, || h.join("done").exists()).await,
        "{}",
        read_trim(&h.join("initscript.log"))
    );
    let left = [
        format!("/tmp/{user}.d"),
        format!("/dev/shm/{user}"),
        format!("/var/tmp/{user}"),
    ];
    for f in &left {
        assert!(Path::new(f).exists());
    }
    m.destroy(&n).await.unwrap();
    for f in &left {
        assert!(!Path::new(f).exists(), "{f} survived delete");
    }
    assert_eq!(fs::read_to_string(&keep).unwrap(), "root's");
    fs::remove_file(&keep).unwrap();
}

#[tokio::test]
async fn root_is_never_a_slivers_account_and_sharing_needs_the_danger_switch() {
    if !is_root() {
        println!("SKIPPED: these refusals concern a root agent");
        return;
    }
    let dir = state_dir();
    let state = dir.path().join("state-dir");
    let refused = |o: LocalOptions| async move { LocalManager::open(o).await.unwrap_err() };
    let e = refused(LocalOptions {
        run_as: (0, 0),
        ..options(&state)
    })
    .await;
    assert!(
        matches!(e, NmError::Permission(_)) && e.to_string().contains("root"),
        "{e}"
    );
    let e = refused(LocalOptions {
        danger_shared_uid: false,
        ..options(&state)
    })
    .await;
    assert!(e.to_string().contains("danger_shared_uid"), "{e}");
    let e = refused(LocalOptions {
        uids: 0..=10,
        ..accounts_options(&state)
    })
    .await;
    assert!(e.to_string().contains("uid 0"), "{e}");
    assert!(!state.exists(), "a refused open made the state directory");
    // The default for root: accounts.
    assert!(LocalOptions::new(&state).manage_accounts);

    // A sliver an earlier agent recorded as running as root is not started as root.
    let pwned = state.join("pwned");
    assert!(!pwned.exists());
    let old = serde_json::json!({
        "version": 1,
        "slivers": { "pl_asroot": {
            "record": {
                "slice_id": null, "instantiation": "delegated", "keys": [],
                "initscript": format!("#!/bin/sh\ntouch {}\n", pwned.display()),
                "vref": "default", "timestamp": 1.0, "expires": 2_000_000_000, "rspec": {},
                "caller": "x"
            },
            "state": "created", "uid": 0, "gid": 0
        }}
    });
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("local-state.json"), old.to_string()).unwrap();
    let m = open(&state).await;
    let n = name("pl_asroot");
    let e = m.start(&n).await.unwrap_err().to_string();
    assert!(e.contains("never run as root"), "{e}");
    assert_eq!(m.status(&n).await.unwrap().state, SliverState::Created);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pwned.exists(), "the initscript ran as root");
    m.destroy(&n).await.unwrap();
}

/// A real SSH login with a key from the ticket, as the sliver's own account, into its home;
/// refused after delete_slice. Runs Debian's sshd (openssh-server, installed by .ci/run) on a
/// loopback port with a test configuration.
#[tokio::test]
async fn the_tickets_key_logs_in_over_ssh_until_delete() {
    if !can_make_accounts() {
        return;
    }
    let sshd_bin = Path::new("/usr/sbin/sshd");
    assert!(
        sshd_bin.is_file(),
        "root but no /usr/sbin/sshd: install openssh-server (.ci/run does)"
    );
    let user = unique("is");
    let _accounts = Accounts(vec![user.clone()]);
    let dir = state_dir();
    let keys = tempfile::tempdir().unwrap();
    let keygen = |path: &Path| {
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let client_key = keys.path().join("id");
    let host_key = keys.path().join("host");
    keygen(&client_key);
    keygen(&host_key);
    let public = read_trim(&keys.path().join("id.pub"));
    let m = LocalManager::open(accounts_options(dir.path()))
        .await
        .unwrap();
    m.create(record(&user, 1.0, &[&public], "", Struct::new()))
        .await
        .unwrap();
    let n = name(&user);
    let uid = uid_of(&user);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = keys.path().join("sshd_config");
    fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile .ssh/authorized_keys\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes yes\nPermitRootLogin no\nLogLevel VERBOSE\n",
            host_key.display(),
            keys.path().join("sshd.pid").display()
        ),
    )
    .unwrap();
    // sshd's privilege-separation directory.
    fs::create_dir_all("/run/sshd").unwrap();
    let log = fs::File::create(keys.path().join("sshd.log")).unwrap();
    let sshd = std::process::Command::new(sshd_bin)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sshd = Kill(sshd);
    assert!(
        wait_until(10, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok())
        .await,
        "sshd did not listen: {}",
        read_trim(&keys.path().join("sshd.log"))
    );
    let ssh = || {
        std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(&client_key)
            .args([
                "-p",
                &port.to_string(),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=5",
                &format!("{user}@127.0.0.1"),
                "id -u; pwd",
            ])
            .output()
            .unwrap()
    };
    let out = ssh();
    assert!(
        out.status.success(),
        "login failed: {}\nsshd: {}",
        String::from_utf8_lossy(&out.stderr),
        read_trim(&keys.path().join("sshd.log"))
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], uid.to_string());
    assert_eq!(Path::new(lines[1]), home(dir.path(), &user));

    m.destroy(&n).await.unwrap();
    let out = ssh();
    assert!(!out.status.success(), "logged in after delete_slice");
    assert!(nix::unistd::User::from_name(&user).unwrap().is_none());
}
