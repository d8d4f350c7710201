//! The `local` backend, the default: a sliver is a private home under the state directory (its
//! SSH keys and initscript), its own Unix account (when the agent is root), and its initscript
//! run in its own session and its own cgroup under the sliver's uid with the rspec's limits
//! (rlimits always; `pids.max`, memory and cpu weight where a cgroup hierarchy is writable).
//!
//! This module owns [`LocalOptions`], [`LocalManager`] and the order of every operation; the
//! pieces live in `local/`: `state` (the crash-safe per-sliver state files), `files` (the home),
//! `process` (pid + start time, spawning, signals), `account` (useradd/userdel, uid kill) and
//! `cgroup`.
//!
//! Isolation. A root agent gives each sliver an account named after it, with a uid from
//! [`LocalOptions::uids`] that no other sliver and no host account has, taken round-robin so a
//! freed uid is the last to come back, and never while a process still runs with it. The home
//! and the initscript are 0700, so a sliver can neither read nor write another's files nor
//! signal its processes. Stop and destroy end *every* process of the sliver: its process group
//! (SIGTERM, grace, SIGKILL), then its cgroup (`cgroup.kill` or freeze-kill-thaw), then
//! everything its uid runs (`kill(-1, SIGKILL)` as that uid), so double-forked `setsid` daemons
//! die too. Destroy then removes what the uid left at the top of `/tmp`, `/var/tmp` and
//! `/dev/shm`. Sharing one uid between slivers is possible only with
//! [`LocalOptions::danger_shared_uid`]; root is never a sliver's account.
//!
//! Crash safety (`kill -9` at any point loses no acknowledged state and leaves no half-made
//! sliver). Every change is written to the sliver's state file (temp, fsync, rename, fsync the
//! directory) before the call returns, and the steps are ordered so that [`LocalManager::open`]
//! can finish or undo whatever a crash interrupted:
//!
//! * create writes the home (and makes the account) first, then records the sliver: a crash in
//!   between leaves a home the state does not name, which open removes (with an account whose
//!   home it is);
//! * start spawns a wrapper that waits for a "go" line, records the pid and start time, then
//!   sends "go": a crash in between closes the pipe and the wrapper exits having run nothing,
//!   and open starts the sliver again because it is recorded as running;
//! * destroy stops the sliver and removes the account while it is still recorded, forgets it,
//!   then removes the home: a crash leaves either a stopped sliver or an unnamed home;
//! * open rewrites every named sliver's keys and initscript from the state (a reset interrupted
//!   between wipe and re-create comes back whole), adopts running slivers whose process is the
//!   recorded one (same pid *and* start time, in the same boot: a recycled pid is never adopted
//!   nor signalled), and restarts those recorded as running whose process is gone.
//!
//! Choices: an empty initscript makes start record the sliver as running with no process (pid
//! None). Stop of a created, stopped or exited sliver succeeds and records it as stopped, after
//! ending anything an exited initscript left running. A newer record replaces the keys and the
//! initscript file but does not restart a running initscript. One mutex covers the in-memory
//! state but is never held while waiting for a sliver's processes to end (see `halt`): callers
//! serialise operations on one sliver (the node's per-sliver lock), and different slivers
//! proceed side by side. A lock file keeps a second agent off the state directory.

mod account;
mod cgroup;
mod files;
mod process;
mod state;

use std::fmt;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::ops::RangeInclusive;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::Mutex;

use self::cgroup::Cgroups;
use self::files::Home;
use self::process::{Launch, Limits, ProcId};
/// Crash-safe replacement of a small file (temp, fsync, rename, fsync dir), for the node's other
/// state beside the slivers'.
pub use self::state::write_atomic;
use self::state::{Sliver, Slivers, lock_state_dir};
use crate::{
    BoxFuture, NmError, SliverManager, SliverName, SliverRecord, SliverState, SliverStatus,
};

/// nobody's uid and nogroup's gid on Debian and Fedora alike.
const NOBODY: u32 = 65_534;

/// The default state directory; its slivers' cgroups are plainly `geni-agent`.
const DEFAULT_STATE_DIR: &str = "/var/lib/geni-agent";

/// The default uids of sliver accounts: far above any host's own accounts (Debian and Fedora
/// hand out 1000–60000, systemd's dynamic users 61184–65519) and below 2^16 + 600000, so that
/// 65,536 slivers fit.
pub const DEFAULT_UIDS: RangeInclusive<u32> = 600_000..=665_535;

/// How the local backend runs.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Holds `state/<name>.json`, `slivers/<name>/` and `uid-next`; made if missing.
    pub state_dir: PathBuf,
    /// A Unix account per sliver (`useradd`, `userdel` on destroy), named after it, whose
    /// initscript runs as that account. Needs root: [`LocalManager::open`] refuses otherwise.
    /// Default: whether the agent is root.
    pub manage_accounts: bool,
    /// The uids (and user-group gids) sliver accounts get. Must not contain 0.
    pub uids: RangeInclusive<u32>,
    /// Let a root agent run every sliver as the one account [`Self::run_as`] instead of an
    /// account each. Slivers can then read, write and signal each other's everything: for test
    /// rigs that cannot make accounts. Ignored when `manage_accounts` is on.
    pub danger_shared_uid: bool,
    /// (uid, gid) every sliver runs as under `danger_shared_uid`; never root. Default nobody.
    pub run_as: (u32, u32),
    /// Between SIGTERM and SIGKILL when stopping.
    pub stop_grace: Duration,
    /// Give each sliver a cgroup where a hierarchy is writable (see `cgroup`). Off: rlimits and
    /// kill-by-uid only.
    pub cgroups: bool,
    /// Where sliver cgroups go, as a path inside each hierarchy (`/geni` means
    /// `/sys/fs/cgroup/geni/...`); None: the agent's own cgroup, which under systemd is the
    /// unit's delegated subtree.
    pub cgroup_root: Option<PathBuf>,
    /// `pids.max` of a sliver whose rspec has no `nproc_hard`. NodeManager sets no such limit;
    /// this one keeps a fork bomb from taking the node. None: no limit.
    pub pids_max: Option<u64>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            manage_accounts: account::is_root(),
            uids: DEFAULT_UIDS,
            danger_shared_uid: false,
            run_as: (NOBODY, NOBODY),
            stop_grace: Duration::from_secs(5),
            cgroups: true,
            cgroup_root: None,
            pids_max: Some(4096),
        }
    }
}

impl LocalOptions {
    /// The defaults with `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            ..Self::default()
        }
    }
}

/// Who slivers run as, decided once at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunAs {
    /// Each sliver its own account (root agent).
    Accounts,
    /// Every sliver as this (uid, gid) (root agent, `danger_shared_uid`).
    Shared(u32, u32),
    /// As the agent itself (an agent that is not root cannot switch).
    Agent,
}

/// The (uid, gid) of the account `name`, for [`LocalOptions::run_as`]; an error names an account
/// this host does not have.
pub fn account_ids(name: &str) -> Result<(u32, u32), NmError> {
    match account::lookup(name)? {
        Some(a) => Ok((a.uid, a.gid)),
        None => Err(NmError::Permission(format!(
            "there is no account {name:?} on this host to run initscripts as"
        ))),
    }
}

/// The local sliver manager. Dropping it leaves running slivers running: the next
/// [`LocalManager::open`] on the same state directory adopts them.
pub struct LocalManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `<state_dir>/local.lock`, flocked while this manager lives: two agents on one state
    /// directory would both adopt, restart and record the same slivers.
    _lock: fs::File,
    options: LocalOptions,
    root: bool,
    run_as: RunAs,
    slivers_dir: PathBuf,
    cgroups: Option<Cgroups>,
    slivers: Mutex<Slivers>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Only possible when no sliver cgroup is left in them; running slivers keep theirs.
        if let Some(cg) = &self.cgroups {
            cg.remove_parents();
        }
    }
}

impl fmt::Debug for LocalManager {
    // Not the records: they hold users' keys and initscripts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalManager")
            .field("state_dir", &self.inner.options.state_dir)
            .field("run_as", &self.inner.run_as)
            .finish_non_exhaustive()
    }
}

impl LocalManager {
    /// Checks the options, loads the state, removes what a crash left half-made, and re-adopts
    /// or restarts running slivers (see the module documentation).
    ///
    /// Refused: accounts without root; a root agent without accounts unless
    /// `danger_shared_uid`; root (uid 0) as the shared account or inside the uid range.
    pub async fn open(options: LocalOptions) -> Result<Self, NmError> {
        let root = account::is_root();
        let run_as = run_as(&options, root)?;
        let slivers_dir = options.state_dir.join("slivers");
        make_dir(&options.state_dir)?;
        make_dir(&slivers_dir)?;
        // Sliver accounts must reach their homes; 0711 lets them without listing the others.
        fs::set_permissions(&slivers_dir, Permissions::from_mode(0o711))
            .map_err(|e| NmError::io(&slivers_dir, e))?;
        if run_as != RunAs::Agent {
            let closed = options
                .state_dir
                .ancestors()
                .find(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 == 0));
            if let Some(dir) = closed {
                tracing::warn!(dir = %dir.display(),
                    "Slivers run as other users but cannot enter this directory (no o+x) on the way to their homes: their initscripts will not start");
            }
        }
        let lock = lock_state_dir(&options.state_dir).await?;
        let slivers = Slivers::load(&options.state_dir)?;
        let cgroups = if root && options.cgroups {
            Cgroups::detect(
                Path::new(cgroup::ROOT),
                options.cgroup_root.as_deref(),
                &cgroup_name(&options.state_dir),
                cgroup::Defaults {
                    pids_max: options.pids_max,
                },
            )
        } else {
            None
        };
        let inner = Arc::new(Inner {
            _lock: lock,
            options,
            root,
            run_as,
            slivers_dir,
            cgroups,
            slivers: Mutex::new(slivers),
        });
        inner.repair().await?;
        Ok(Self { inner })
    }

    /// A one-line description of how slivers are isolated here, for the agent's start-up log.
    pub fn isolation(&self) -> String {
        let who = match self.inner.run_as {
            RunAs::Accounts => format!(
                "an account each (uids {}-{})",
                self.inner.options.uids.start(),
                self.inner.options.uids.end()
            ),
            RunAs::Shared(uid, _) => format!("all as uid {uid} (danger_shared_uid)"),
            RunAs::Agent => "as the agent itself (not root)".to_owned(),
        };
        let cgroups = self
            .inner
            .cgroups
            .as_ref()
            .map_or_else(|| "none".to_owned(), Cgroups::describe);
        format!("slivers run {who}; cgroups: {cgroups}")
    }
}

/// Who slivers run as, or why these options are refused.
fn run_as(options: &LocalOptions, root: bool) -> Result<RunAs, NmError> {
    if !root {
        if options.manage_accounts {
            return Err(NmError::Permission(
                "manage_accounts needs the agent to run as root (it runs useradd and userdel)"
                    .into(),
            ));
        }
        return Ok(RunAs::Agent);
    }
    if options.manage_accounts {
        let (lo, hi) = (*options.uids.start(), *options.uids.end());
        if lo == 0 || lo > hi {
            return Err(NmError::Permission(format!(
                "the sliver uid range {lo}-{hi} must be non-empty and must not contain root's uid 0"
            )));
        }
        return Ok(RunAs::Accounts);
    }
    if !options.danger_shared_uid {
        return Err(NmError::Permission(
            "a root agent gives each sliver its own Unix account (manage_accounts); running \
             every sliver as one shared account needs danger_shared_uid, and leaves slivers \
             able to read, write and signal each other"
                .into(),
        ));
    }
    let (uid, gid) = options.run_as;
    if uid == 0 {
        return Err(NmError::Permission(
            "slivers never run as root: run_as must name another account".into(),
        ));
    }
    Ok(RunAs::Shared(uid, gid))
}

/// The directory of sliver cgroups: `geni-agent` for the default state directory; for any other,
/// `geni-agent-<hash of the directory>`, so that two agents on one host (test rigs) never share
/// a sliver's cgroup, and a restarted agent finds its own again.
fn cgroup_name(state_dir: &Path) -> String {
    if state_dir == Path::new(DEFAULT_STATE_DIR) {
        return "geni-agent".to_owned();
    }
    let canonical = fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = canonical
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("geni-agent-{hash:016x}")
}

impl Inner {
    fn home(&self, name: &str) -> Home {
        Home::new(&self.slivers_dir, name)
    }

    /// Who a new sliver's initscript runs as when it has no account of its own.
    fn default_ids(&self) -> (u32, u32) {
        match self.run_as {
            RunAs::Shared(uid, gid) => (uid, gid),
            RunAs::Accounts | RunAs::Agent => account::own_ids(),
        }
    }

    /// Makes the sliver's account with the next free uid of the range (round-robin from
    /// `uid-next`, skipping uids any account, group, sliver or live process has).
    async fn add_account(
        &self,
        slivers: &Slivers,
        name: &SliverName,
        home: &Path,
    ) -> Result<account::Account, NmError> {
        let (lo, hi) = (*self.options.uids.start(), *self.options.uids.end());
        let span = u64::from(hi - lo) + 1;
        let next = state::read_next_uid(&self.options.state_dir)
            .filter(|u| self.options.uids.contains(u))
            .unwrap_or(lo);
        let mut busy = account::uids_in_use();
        busy.extend(slivers.map.values().map(|s| s.uid));
        for step in 0..span {
            let offset = (u64::from(next - lo) + step) % span;
            // Within the range by construction: offset < span.
            let uid = lo + u32::try_from(offset).unwrap_or(0);
            if !account::uid_is_free(uid, &busy) {
                continue;
            }
            match account::add(name, home, uid).await {
                Ok(a) => {
                    let after = if uid == hi { lo } else { uid + 1 };
                    if let Err(e) = state::write_next_uid(&self.options.state_dir, after) {
                        // Only the round-robin order suffers: the next create starts lower.
                        tracing::warn!(error = %e, "Cannot record the next sliver uid");
                    }
                    return Ok(a);
                }
                Err(account::AddError::UidTaken) => {}
                Err(account::AddError::Other(e)) => return Err(e),
            }
        }
        Err(NmError::Permission(format!(
            "sliver {name}: no free uid left in {lo}-{hi} (every one has an account, a group, a \
             sliver or a running process)"
        )))
    }

    /// The owner to give the sliver's files: only root can give them away.
    fn owner(&self, s: &Sliver) -> Option<(u32, u32)> {
        self.root.then_some((s.uid, s.gid))
    }

    async fn repair(self: &Arc<Self>) -> Result<(), NmError> {
        let mut slivers = self.slivers.lock().await;
        self.remove_orphans(&slivers).await?;
        let names: Vec<SliverName> = slivers.map.keys().cloned().collect();
        for name in names {
            if let Err(e) = self.repair_one(&mut slivers, &name).await {
                // One broken sliver must not keep the node down: it is reported and its next
                // operation fails with the cause.
                tracing::error!(sliver = %name, error = %e, "Cannot restore sliver");
            }
        }
        Ok(())
    }

    /// Homes the state does not name: a create interrupted before it was recorded, or a destroy
    /// after it was forgotten.
    ///
    /// Failures are logged, not fatal: the leftovers are retried at the next open.
    async fn remove_orphans(&self, slivers: &Slivers) -> Result<(), NmError> {
        let entries =
            fs::read_dir(&self.slivers_dir).map_err(|e| NmError::io(&self.slivers_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| NmError::io(&self.slivers_dir, e))?;
            if let Err(e) = self.remove_orphan(slivers, &entry).await {
                tracing::warn!(error = %e, "Cannot remove the leftovers of an unfinished sliver");
            }
        }
        Ok(())
    }

    async fn remove_orphan(&self, slivers: &Slivers, entry: &fs::DirEntry) -> Result<(), NmError> {
        let file_name = entry.file_name();
        let name = file_name.to_str().and_then(|n| SliverName::parse(n).ok());
        if name.as_ref().is_some_and(|n| slivers.map.contains_key(n)) {
            return Ok(());
        }
        let path = entry.path();
        tracing::info!(path = %path.display(), "Removing the leftovers of an unfinished sliver");
        if self.run_as == RunAs::Accounts
            && let Some(name) = name
        {
            // Only an account whose home is this very directory.
            account::remove(name.as_str(), &path).await?;
        }
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| NmError::io(&path, e))
    }

    async fn repair_one(
        self: &Arc<Self>,
        slivers: &mut Slivers,
        name: &SliverName,
    ) -> Result<(), NmError> {
        let Some(mut s) = slivers.map.get(name).cloned() else {
            return Ok(());
        };
        let home = self.home(name.as_str());
        if s.account && account::lookup(name.as_str())?.is_none() {
            // A destroy interrupted after userdel: give the sliver its account back, with its
            // uid if still free.
            let a = match account::add(name, &home.dir, s.uid).await {
                Ok(a) => a,
                Err(account::AddError::UidTaken) => {
                    self.add_account(slivers, name, &home.dir).await?
                }
                Err(account::AddError::Other(e)) => return Err(e),
            };
            (s.uid, s.gid) = (a.uid, a.gid);
            slivers.commit(name, Some(s.clone()))?;
        }
        home.write(&s.record, self.owner(&s))?;
        if s.state != SliverState::Running {
            return Ok(());
        }
        match s.proc {
            Some(id) if id.is_alive() => {
                tracing::info!(sliver = %name, pid = id.pid, "Adopted running sliver");
                self.watch_adopted(name.clone(), id);
                Ok(())
            }
            None if s.record.initscript.trim().is_empty() => Ok(()),
            _ => {
                tracing::info!(sliver = %name, "Restarting sliver whose process is gone");
                let started = self.start_locked(slivers, name).await;
                if started.is_err() {
                    // Not "running" with nothing running: it ended, and start may be retried.
                    let exited = Sliver {
                        state: SliverState::Exited,
                        ..s
                    };
                    slivers.commit(name, Some(exited))?;
                }
                started
            }
        }
    }

    fn get<'s>(&self, slivers: &'s Slivers, name: &SliverName) -> Result<&'s Sliver, NmError> {
        slivers
            .map
            .get(name)
            .ok_or_else(|| NmError::NotFound(name.to_string()))
    }

    async fn create(self: &Arc<Self>, record: SliverRecord) -> Result<(), NmError> {
        let name = record.name.clone();
        if !record.timestamp.is_finite() {
            return Err(NmError::InvalidRecord(format!(
                "sliver {name}: timestamp {} is not a number",
                record.timestamp
            )));
        }
        let mut slivers = self.slivers.lock().await;
        let home = self.home(name.as_str());
        if let Some(current) = slivers.map.get(&name) {
            if record.timestamp <= current.record.timestamp {
                return Err(NmError::Stale {
                    name: name.to_string(),
                    current: current.record.timestamp,
                    offered: record.timestamp,
                });
            }
            // Newer record: new keys and initscript (the running initscript is not restarted;
            // the new one runs at the next start or reset), same state and process.
            let updated = Sliver {
                record,
                ..current.clone()
            };
            home.write(&updated.record, self.owner(&updated))?;
            return slivers.commit(&name, Some(updated));
        }
        // Pristine: nothing may be left of an earlier sliver of this name. The home exists
        // before the account, so that a crash leaves an account open() can find by its home.
        home.remove()?;
        home.write(&record, None)?;
        let (ids, made_account) = if self.run_as == RunAs::Accounts {
            match self.add_account(&slivers, &name, &home.dir).await {
                Ok(a) => ((a.uid, a.gid), true),
                Err(e) => {
                    let _ = home.remove();
                    return Err(e);
                }
            }
        } else {
            (self.default_ids(), false)
        };
        let sliver = Sliver {
            record,
            state: SliverState::Created,
            proc: None,
            uid: ids.0,
            gid: ids.1,
            account: made_account,
        };
        // Gives the home and its files to the sliver's uid.
        let made = home
            .write(&sliver.record, self.owner(&sliver))
            .and_then(|()| slivers.commit(&name, Some(sliver)));
        if let Err(e) = made {
            if made_account && let Err(undo) = account::remove(name.as_str(), &home.dir).await {
                tracing::warn!(sliver = %name, error = %undo, "Cannot remove the account of a failed create");
            }
            let _ = home.remove();
            return Err(e);
        }
        Ok(())
    }

    async fn start_locked(
        self: &Arc<Self>,
        slivers: &mut Slivers,
        name: &SliverName,
    ) -> Result<(), NmError> {
        let s = self.get(slivers, name)?.clone();
        let empty = s.record.initscript.trim().is_empty();
        if s.state == SliverState::Running {
            match s.proc {
                Some(id) if id.is_alive() => return Ok(()),
                None if empty => return Ok(()),
                _ => {}
            }
        }
        if s.proc.is_some() || s.state == SliverState::Exited {
            // What an exited initscript left running (its daemons).
            self.end_sliver(name, &s, s.proc).await?;
        }
        if empty {
            return slivers.commit(
                name,
                Some(Sliver {
                    state: SliverState::Running,
                    proc: None,
                    ..s
                }),
            );
        }
        if self.root && s.uid == 0 {
            // A sliver recorded by an agent that ran initscripts as itself (root): never again.
            return Err(NmError::Permission(format!(
                "sliver {name} is recorded to run as root; slivers never run as root: delete it \
                 and redeem its ticket again"
            )));
        }
        let home = self.home(name.as_str());
        // Cheap when nothing changed; makes start work after the files were damaged.
        home.write(&s.record, self.owner(&s))?;
        let limits = Limits::from_rspec(&s.record.rspec);
        let initscript = home.initscript();
        let launch = Launch {
            name: name.as_str(),
            home: &home.dir,
            initscript: &initscript,
            ids: self.root.then_some((s.uid, s.gid)),
            limits: &limits,
        };
        let started = process::spawn(&launch).map_err(|message| NmError::Process {
            name: name.to_string(),
            message,
        })?;
        let id = started.id;
        if let Some(cg) = &self.cgroups
            && let Err(e) = cg.attach(name.as_str(), id.pid, &s.record.rspec)
        {
            // Stop relies on the cgroup to reach setsid daemons: refuse to run without one.
            started.abort().await;
            return Err(NmError::Process {
                name: name.to_string(),
                message: format!("cannot put its initscript into its cgroup: {e}"),
            });
        }
        let running = Sliver {
            state: SliverState::Running,
            proc: Some(id),
            ..s
        };
        if let Err(e) = slivers.commit(name, Some(running)) {
            started.abort().await;
            return Err(e);
        }
        let child = started.release().await;
        tracing::info!(sliver = %name, pid = id.pid, "Started sliver");
        let weak = Arc::downgrade(self);
        let name = name.clone();
        tokio::spawn(async move {
            let mut child = child;
            let status = child.wait().await;
            if let Some(inner) = weak.upgrade() {
                inner.ended(&name, id, &process::describe(&status)).await;
            }
        });
        Ok(())
    }

    /// Polls an adopted process (not our child, so it cannot be waited for).
    fn watch_adopted(self: &Arc<Self>, name: SliverName, id: ProcId) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if weak.strong_count() == 0 {
                    return;
                }
                if !id.is_alive() {
                    if let Some(inner) = weak.upgrade() {
                        inner.ended(&name, id, "ended (adopted)").await;
                    }
                    return;
                }
            }
        });
    }

    /// The initscript `id` ended by itself: Exited, unless the sliver has moved on (stopped,
    /// restarted) since.
    async fn ended(&self, name: &SliverName, id: ProcId, how: &str) {
        let mut slivers = self.slivers.lock().await;
        let Some(s) = slivers.map.get(name) else {
            return;
        };
        if s.state != SliverState::Running || s.proc != Some(id) {
            return;
        }
        tracing::info!(sliver = %name, pid = id.pid, status = how, "Sliver's initscript ended");
        let exited = Sliver {
            state: SliverState::Exited,
            ..s.clone()
        };
        if let Err(e) = slivers.commit(name, Some(exited)) {
            tracing::error!(sliver = %name, error = %e, "Cannot record that the sliver's initscript ended");
        }
    }

    /// Ends every process of the sliver: SIGTERM to its process group and its cgroup, up to
    /// the grace period for them to go, then SIGKILL to the group, the cgroup kill, and the
    /// kill of everything its uid runs (own account only: a shared uid is other slivers' too).
    async fn end_sliver(
        &self,
        name: &SliverName,
        s: &Sliver,
        proc: Option<ProcId>,
    ) -> Result<(), NmError> {
        let failed = |message: String| NmError::Process {
            name: name.to_string(),
            message,
        };
        let cg = self.cgroups.as_ref();
        if let Some(cg) = cg {
            cg.signal(name.as_str(), Signal::SIGTERM);
        }
        match proc {
            Some(id) => process::terminate(id, self.options.stop_grace)
                .await
                .map_err(failed)?,
            None => {
                if let Some(cg) = cg {
                    // No group leader to wait for: give the cgroup's members the same grace.
                    let deadline = Instant::now() + self.options.stop_grace;
                    while !cg.members(name.as_str()).is_empty() && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
        if let Some(cg) = cg {
            cg.kill_all(name.as_str()).await.map_err(failed)?;
        }
        if s.account && self.run_as == RunAs::Accounts {
            account::kill_uid(s.uid, s.gid).await?;
        }
        Ok(())
    }

    /// Ends the sliver's processes without holding the state lock, so that a stop's grace
    /// period stalls neither `list` nor other slivers. Operations on one sliver are serialised
    /// by the caller (the node's per-sliver lock).
    ///
    /// The process is detached in memory only: its supervisor then ignores the end we cause (no
    /// "exited" on disk that nobody asked for), and a crash before the caller records its
    /// outcome (stopped, reset, destroyed) finds the old state on disk, which open restores.
    async fn halt(&self, name: &SliverName) -> Result<(), NmError> {
        let (proc, s) = {
            let mut slivers = self.slivers.lock().await;
            let s = slivers
                .map
                .get_mut(name)
                .ok_or_else(|| NmError::NotFound(name.to_string()))?;
            (s.proc.take(), s.clone())
        };
        let ended = self.end_sliver(name, &s, proc).await;
        if ended.is_err()
            && let Some(id) = proc
        {
            // Still alive: keep it tracked so that a later stop or open can end it.
            let mut slivers = self.slivers.lock().await;
            if let Some(s) = slivers.map.get_mut(name)
                && s.proc.is_none()
            {
                s.proc = Some(id);
            }
        }
        ended
    }

    fn stop_locked(&self, slivers: &mut Slivers, name: &SliverName) -> Result<(), NmError> {
        let s = self.get(slivers, name)?.clone();
        if s.state == SliverState::Stopped && s.proc.is_none() {
            return Ok(());
        }
        let stopped = Sliver {
            state: SliverState::Stopped,
            proc: None,
            ..s
        };
        slivers.commit(name, Some(stopped))?;
        tracing::info!(sliver = %name, "Stopped sliver");
        Ok(())
    }

    async fn reset(self: &Arc<Self>, name: &SliverName) -> Result<(), NmError> {
        self.halt(name).await?;
        let mut slivers = self.slivers.lock().await;
        let s = self.get(&slivers, name)?.clone();
        let home = self.home(name.as_str());
        // Only the final state is recorded: a crash from here on leaves the state before the
        // reset, whose files open rewrites and whose initscript it restarts if it was running.
        home.remove()?;
        home.write(&s.record, self.owner(&s))?;
        self.start_locked(&mut slivers, name).await
    }

    async fn destroy(&self, name: &SliverName) -> Result<(), NmError> {
        self.halt(name).await?;
        let mut slivers = self.slivers.lock().await;
        // Not recorded as stopped first: a crash before the sliver is forgotten leaves it as it
        // was (restarted by open if it was running), never a "stopped" nobody asked for.
        let s = self.get(&slivers, name)?.clone();
        let home = self.home(name.as_str());
        if s.account {
            // Nothing of the uid runs any more (halt): what it left in the shared writable
            // places goes before the uid is freed.
            let shared: Vec<&Path> = account::SHARED_DIRS.iter().map(Path::new).collect();
            let removed = account::remove_files_of_uid(s.uid, &shared);
            if removed > 0 {
                tracing::info!(sliver = %name, removed, "Removed the sliver's files in /tmp, /var/tmp and /dev/shm");
            }
            account::remove(name.as_str(), &home.dir).await?;
        }
        slivers.commit(name, None)?;
        if let Some(cg) = &self.cgroups {
            cg.remove(name.as_str());
            cg.remove_parents();
        }
        // Forgotten already: if this fails, the home is an orphan the next open removes.
        if let Err(e) = home.remove() {
            tracing::warn!(sliver = %name, error = %e, "Cannot remove the destroyed sliver's home yet");
        }
        tracing::info!(sliver = %name, "Destroyed sliver");
        Ok(())
    }
}

fn make_dir(dir: &Path) -> Result<(), NmError> {
    match DirBuilder::new().recursive(true).mode(0o755).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(NmError::io(dir, e)),
        _ => Ok(()),
    }
}

fn status_of(name: &SliverName, s: &Sliver) -> SliverStatus {
    SliverStatus {
        name: name.clone(),
        state: s.state,
        // Only a running sliver's process is reported: an exited one's is history.
        pid: s
            .proc
            .filter(|_| s.state == SliverState::Running)
            .map(|p| p.pid),
        timestamp: s.record.timestamp,
        slice: s.record.slice.clone(),
        expires: s.record.expires,
    }
}

impl SliverManager for LocalManager {
    fn create(&self, record: SliverRecord) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.create(record))
    }

    fn start<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut slivers = self.inner.slivers.lock().await;
            self.inner.start_locked(&mut slivers, name).await
        })
    }

    fn stop<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.inner.halt(name).await?;
            let mut slivers = self.inner.slivers.lock().await;
            self.inner.stop_locked(&mut slivers, name)
        })
    }

    fn reset<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(self.inner.reset(name))
    }

    fn destroy<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(self.inner.destroy(name))
    }

    fn list(&self) -> BoxFuture<'_, Vec<SliverStatus>> {
        Box::pin(async move {
            let slivers = self.inner.slivers.lock().await;
            // BTreeMap: already sorted by name.
            Ok(slivers.map.iter().map(|(n, s)| status_of(n, s)).collect())
        })
    }

    fn status<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, SliverStatus> {
        Box::pin(async move {
            let slivers = self.inner.slivers.lock().await;
            let s = self.inner.get(&slivers, name)?;
            Ok(status_of(name, s))
        })
    }
}
