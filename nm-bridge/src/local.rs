//! The `local` backend, the default: a sliver is a directory under the state directory (its
//! home, with `.ssh/authorized_keys` and its `initscript`), optionally a Unix account, and its
//! initscript run as a process group with the rspec's limits.
//!
//! State (records, states, pids with their start times) lives in one JSON file written
//! crash-safely (temp file, fsync, rename, fsync of the directory) before any call returns, and
//! every change is ordered so that `kill -9` at any point leaves something [`LocalManager::open`]
//! repairs: files are written before the state names the sliver, the state forgets a sliver
//! before its files go, and "running" is recorded before the process is spawned. On open,
//! directories the state does not name are removed, missing files of named slivers are
//! rewritten, processes found in a sliver's directory that the state does not account for are
//! killed, running slivers whose process is alive (same pid *and* start time: a recycled pid is
//! not ours) are adopted, and those whose process is gone are started again.
//!
//! Limits go through the shell's `ulimit` because setting them between fork and exec would need
//! `unsafe` (`pre_exec`), which this crate forbids.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    BoxFuture, NmError, SliverManager, SliverName, SliverRecord, SliverState, SliverStatus,
};

/// How the local backend runs.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub state_dir: PathBuf,
    /// Make a Unix account per sliver (`useradd`) and run its initscript as that user. Needs root.
    pub manage_accounts: bool,
    /// Between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/geni-agent".into(),
            manage_accounts: false,
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// The local sliver manager.
#[derive(Debug, Clone)]
pub struct LocalManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: LocalOptions,
    state: Mutex<State>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    slivers: BTreeMap<SliverName, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    record: SliverRecord,
    state: Persisted,
    /// Process-group leader and its start time (clock ticks since boot, `/proc/<pid>/stat` field
    /// 22): together they name one process, where a pid alone may have been reused.
    pid: Option<(u32, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Persisted {
    Created,
    Running,
    Stopped,
    Exited,
}

const STATE_FILE: &str = "local-state.json";

impl LocalManager {
    /// Loads the state and repairs what a crash left (see the module documentation).
    pub async fn open(options: LocalOptions) -> Result<Self, NmError> {
        if options.manage_accounts && !nix::unistd::geteuid().is_root() {
            return Err(NmError::Permission(
                "manage_accounts needs the agent to run as root".into(),
            ));
        }
        let slivers_dir = options.state_dir.join("slivers");
        fs::create_dir_all(&slivers_dir).map_err(|e| NmError::io(&slivers_dir, e))?;
        let path = options.state_dir.join(STATE_FILE);
        let state: State = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| NmError::InvalidRecord(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(NmError::io(&path, e)),
        };
        let manager = Self {
            inner: Arc::new(Inner {
                options,
                state: Mutex::new(state),
            }),
        };
        manager.repair().await?;
        Ok(manager)
    }

    fn dir(&self, name: &SliverName) -> PathBuf {
        self.inner
            .options
            .state_dir
            .join("slivers")
            .join(name.as_str())
    }

    async fn repair(&self) -> Result<(), NmError> {
        let mut state = self.inner.state.lock().await;
        // Leftover temp files and directories of slivers the state does not name.
        let slivers_dir = self.inner.options.state_dir.join("slivers");
        for entry in fs::read_dir(&slivers_dir)
            .map_err(|e| NmError::io(&slivers_dir, e))?
            .flatten()
        {
            let known = entry
                .file_name()
                .to_str()
                .and_then(|n| SliverName::parse(n).ok())
                .is_some_and(|n| state.slivers.contains_key(&n));
            if !known {
                kill_strays(&entry.path(), None);
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let names: Vec<SliverName> = state.slivers.keys().cloned().collect();
        let mut restart = Vec::new();
        for name in names {
            let dir = self.dir(&name);
            let Some(e) = state.slivers.get_mut(&name) else {
                continue;
            };
            write_files(&dir, &e.record)?;
            let live = e.pid.filter(|(pid, start)| alive(*pid, *start));
            kill_strays(&dir, live.map(|(pid, _)| pid));
            match (e.state, live) {
                (Persisted::Running, Some((pid, start))) => {
                    tracing::info!(sliver = %name, pid, "Adopted running sliver");
                    self.watch(name.clone(), pid, start, None);
                }
                (Persisted::Running, None) => restart.push(name.clone()),
                _ => e.pid = None,
            }
        }
        for name in restart {
            tracing::info!(sliver = %name, "Restarting sliver whose process is gone");
            self.spawn_locked(&mut state, &name).await?;
        }
        self.persist(&state)
    }

    fn persist(&self, state: &State) -> Result<(), NmError> {
        let path = self.inner.options.state_dir.join(STATE_FILE);
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|e| NmError::InvalidRecord(e.to_string()))?;
        write_durably(&path, &bytes, 0o600)
    }

    /// Marks `running` before spawning, so that a crash in between restarts it on open rather
    /// than leaving a process the state does not know.
    async fn spawn_locked(&self, state: &mut State, name: &SliverName) -> Result<(), NmError> {
        let dir = self.dir(name);
        let entry = state
            .slivers
            .get_mut(name)
            .ok_or_else(|| NmError::NotFound(name.to_string()))?;
        entry.state = Persisted::Running;
        entry.pid = None;
        let record = entry.record.clone();
        self.persist(state)?;
        let (pid, start, child) = spawn(&dir, &record, self.inner.options.manage_accounts)?;
        if let Some(e) = state.slivers.get_mut(name) {
            e.pid = Some((pid, start));
        }
        self.persist(state)?;
        self.watch(name.clone(), pid, start, Some(child));
        Ok(())
    }

    /// Notices the end of the sliver's process and records it as exited (unless it was stopped).
    fn watch(&self, name: SliverName, pid: u32, start: u64, child: Option<tokio::process::Child>) {
        let me = self.clone();
        tokio::spawn(async move {
            match child {
                Some(mut c) => {
                    let _ = c.wait().await;
                }
                None => {
                    while alive(pid, start) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            let mut state = me.inner.state.lock().await;
            if let Some(e) = state.slivers.get_mut(&name)
                && e.state == Persisted::Running
                && e.pid == Some((pid, start))
            {
                e.state = Persisted::Exited;
                e.pid = None;
                if let Err(err) = me.persist(&state) {
                    tracing::error!(sliver = %name, error = %err, "Cannot record the end of a sliver");
                }
            }
        });
    }

    /// SIGTERM to the group, SIGKILL after the grace period; waits for the leader to go.
    async fn kill(&self, name: &SliverName, pid: u32, start: u64) {
        let Ok(raw) = i32::try_from(pid) else { return };
        let group = Pid::from_raw(raw);
        if alive(pid, start) {
            let _ = killpg(group, Signal::SIGTERM);
        }
        let deadline = Instant::now() + self.inner.options.stop_grace;
        while alive(pid, start) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Whatever is left of the group, leader gone or not.
        let _ = killpg(group, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(pid, start) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        kill_strays(&self.dir(name), None);
    }

    /// Ends the sliver's processes without recording it: reset and destroy record only their
    /// final state, so that a crash half-way leaves the old state (restarted on open) or the new
    /// one, never an intermediate "stopped" nobody asked for.
    async fn terminate(&self, name: &SliverName) -> Result<(), NmError> {
        let pid = {
            let mut state = self.inner.state.lock().await;
            let e = state
                .slivers
                .get_mut(name)
                .ok_or_else(|| NmError::NotFound(name.to_string()))?;
            // Detach the process in memory only: the watcher then ignores the end we cause, and
            // a crash before the caller records the outcome finds the old state on disk.
            e.pid.take()
        };
        if let Some((pid, start)) = pid {
            self.kill(name, pid, start).await;
        }
        Ok(())
    }

    async fn stop_inner(&self, name: &SliverName) -> Result<(), NmError> {
        self.terminate(name).await?;
        let mut state = self.inner.state.lock().await;
        let e = state
            .slivers
            .get_mut(name)
            .ok_or_else(|| NmError::NotFound(name.to_string()))?;
        e.state = Persisted::Stopped;
        e.pid = None;
        self.persist(&state)
    }
}

impl SliverManager for LocalManager {
    fn create(&self, record: SliverRecord) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut state = self.inner.state.lock().await;
            let name = record.name.clone();
            let dir = self.dir(&name);
            if let Some(e) = state.slivers.get(&name)
                && record.timestamp <= e.record.timestamp
            {
                return Err(NmError::Stale {
                    name: name.to_string(),
                    current: e.record.timestamp,
                    offered: record.timestamp,
                });
            }
            let is_new = !state.slivers.contains_key(&name);
            if is_new && self.inner.options.manage_accounts {
                account(&name, &dir, true).await?;
            }
            // Files first: a crash now leaves a directory the state does not name, which open
            // removes.
            write_files(&dir, &record)?;
            match state.slivers.get_mut(&name) {
                Some(e) => e.record = record,
                None => {
                    state.slivers.insert(
                        name,
                        Entry {
                            record,
                            state: Persisted::Created,
                            pid: None,
                        },
                    );
                }
            }
            self.persist(&state)
        })
    }

    fn start<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut state = self.inner.state.lock().await;
            let e = state
                .slivers
                .get(name)
                .ok_or_else(|| NmError::NotFound(name.to_string()))?;
            if e.state == Persisted::Running && e.pid.is_some_and(|(p, s)| alive(p, s)) {
                return Ok(());
            }
            self.spawn_locked(&mut state, name).await
        })
    }

    fn stop<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(self.stop_inner(name))
    }

    fn reset<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.terminate(name).await?;
            let mut state = self.inner.state.lock().await;
            let record = state
                .slivers
                .get(name)
                .ok_or_else(|| NmError::NotFound(name.to_string()))?
                .record
                .clone();
            let dir = self.dir(name);
            fs::remove_dir_all(&dir).map_err(|e| NmError::io(&dir, e))?;
            write_files(&dir, &record)?;
            self.spawn_locked(&mut state, name).await
        })
    }

    fn destroy<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.terminate(name).await?;
            let mut state = self.inner.state.lock().await;
            state
                .slivers
                .remove(name)
                .ok_or_else(|| NmError::NotFound(name.to_string()))?;
            // Forget first: a crash now leaves a directory open() removes, never a sliver
            // without its files.
            self.persist(&state)?;
            let dir = self.dir(name);
            if self.inner.options.manage_accounts {
                account(name, &dir, false).await?;
            }
            fs::remove_dir_all(&dir).map_err(|e| NmError::io(&dir, e))
        })
    }

    fn list(&self) -> BoxFuture<'_, Vec<SliverStatus>> {
        Box::pin(async move {
            let state = self.inner.state.lock().await;
            Ok(state.slivers.iter().map(|(n, e)| status_of(n, e)).collect())
        })
    }

    fn status<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, SliverStatus> {
        Box::pin(async move {
            let state = self.inner.state.lock().await;
            state
                .slivers
                .get(name)
                .map(|e| status_of(name, e))
                .ok_or_else(|| NmError::NotFound(name.to_string()))
        })
    }
}

fn status_of(name: &SliverName, e: &Entry) -> SliverStatus {
    let state = match e.state {
        Persisted::Created => SliverState::Created,
        Persisted::Running => SliverState::Running,
        Persisted::Stopped => SliverState::Stopped,
        Persisted::Exited => SliverState::Exited,
    };
    SliverStatus {
        name: name.clone(),
        state,
        pid: e.pid.map(|(p, _)| p),
        timestamp: e.record.timestamp,
        expires: e.record.expires,
    }
}

// === files ===

/// The sliver's home: authorized_keys (0600) and the initscript (0755); rewritten whole.
fn write_files(dir: &Path, record: &SliverRecord) -> Result<(), NmError> {
    let ssh = dir.join(".ssh");
    fs::create_dir_all(&ssh).map_err(|e| NmError::io(&ssh, e))?;
    let mut keys = record.keys.join("\n");
    if !keys.is_empty() {
        keys.push('\n');
    }
    write_durably(&ssh.join("authorized_keys"), keys.as_bytes(), 0o600)?;
    write_durably(&dir.join("initscript"), record.initscript.as_bytes(), 0o755)
}

/// Temp file, fsync, rename, fsync of the directory: the file is the old or the new one.
fn write_durably(path: &Path, data: &[u8], mode: u32) -> Result<(), NmError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| NmError::io(path, e))
}

// === processes ===

/// Start time (field 22 of `/proc/<pid>/stat`) of a live, non-zombie process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Kills every process whose working directory is inside `dir`, except `keep`'s group: what a
/// crash between spawn and persist could leave running unaccounted for.
fn kill_strays(dir: &Path, keep: Option<u32>) {
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cwd) = fs::read_link(p.path().join("cwd")) else {
            continue;
        };
        if !cwd.starts_with(dir) {
            continue;
        }
        let group = nix::unistd::getpgid(Some(Pid::from_raw(pid))).ok();
        if keep
            .and_then(|k| i32::try_from(k).ok())
            .is_some_and(|k| group == Some(Pid::from_raw(k)))
        {
            continue;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The initscript under `sh` with the rspec's limits, in its own process group, in its home.
fn spawn(
    dir: &Path,
    record: &SliverRecord,
    as_account: bool,
) -> Result<(u32, u64, tokio::process::Child), NmError> {
    let name = record.name.as_str();
    let fail = |m: String| NmError::Process {
        name: name.to_owned(),
        message: m,
    };
    let mut limits = String::new();
    // disk_max is in KB; dash's `ulimit -f` counts 512-byte blocks.
    if let Some(kb) = record.rspec.int("disk_max").filter(|kb| *kb > 0) {
        limits.push_str(&format!("ulimit -f {} 2>/dev/null; ", kb.saturating_mul(2)));
    }
    let script = if record.initscript.trim().is_empty() {
        // Nothing to run: a sliver without an initscript still "runs" as an idle process, so
        // that start, stop and list mean the same for every sliver.
        format!("{limits}exec sleep 2147483647")
    } else {
        format!("{limits}exec /bin/sh ./initscript")
    };
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("initscript.log"))
        .map_err(|e| NmError::io(dir.join("initscript.log"), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| NmError::io(dir.join("initscript.log"), e))?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("HOME", dir)
        .env("SLIVER", name);
    cmd.stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .kill_on_drop(false);
    if as_account {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| fail(format!("looking up its account: {e}")))?
            .ok_or_else(|| fail("its account does not exist".into()))?;
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start its initscript: {e}")))?;
    let pid = child
        .id()
        .ok_or_else(|| fail("its initscript ended at once".into()))?;
    let start = start_time(pid).ok_or_else(|| fail("its initscript ended at once".into()))?;
    Ok((pid, start, child))
}

/// `useradd` / `userdel` for a sliver's account.
async fn account(name: &SliverName, dir: &Path, create: bool) -> Result<(), NmError> {
    let mut cmd = if create {
        let mut c = tokio::process::Command::new("useradd");
        c.args(["--home-dir"]).arg(dir).args([
            "--no-create-home",
            "--shell",
            "/bin/sh",
            "--user-group",
            name.as_str(),
        ]);
        c
    } else {
        let mut c = tokio::process::Command::new("userdel");
        c.arg(name.as_str());
        c
    };
    let out = cmd
        .output()
        .await
        .map_err(|e| NmError::Permission(format!("cannot run useradd/userdel: {e}")))?;
    if !out.status.success() {
        return Err(NmError::Permission(format!(
            "{} {name} failed: {}",
            if create { "useradd" } else { "userdel" },
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if create {
        let user = nix::unistd::User::from_name(name.as_str()).ok().flatten();
        if let Some(u) = user {
            let _ = nix::unistd::chown(dir, Some(u.uid), Some(u.gid));
        }
    }
    Ok(())
}
