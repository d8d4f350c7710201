//! One cgroup per sliver, with the rspec's limits, and the cgroup half of "stop ends every
//! process of the sliver".
//!
//! Two layouts are supported. Pure cgroup v2 (Fedora nodes): one hierarchy at `/sys/fs/cgroup`
//! with `pids.max`, `memory.max` (and `memory.swap.max`) and `cpu.weight`, ended with
//! `cgroup.kill` (or, on kernels before 5.14, `cgroup.freeze` + SIGKILL to every member + thaw).
//! Hybrid (cgroup v1 controllers under `/sys/fs/cgroup/<controller>`, cgroup2 at
//! `/sys/fs/cgroup/unified`): a directory per sliver in each of the `pids`, `memory`, `cpu` and
//! `freezer` hierarchies and in the unified tree, with `pids.max`, `memory.limit_in_bytes` (and
//! `memory.memsw.limit_in_bytes`) and `cpu.shares`, ended with the unified tree's
//! `cgroup.kill`, or the v1 freezer when the unified tree cannot kill.
//!
//! Where: the sliver cgroups sit in one parent directory (named by the manager) made under the
//! agent's own cgroup in each hierarchy, which under systemd is the unit's delegated subtree
//! (`Delegate=yes`), or under a configured root. On pure v2 a cgroup with processes cannot
//! also give controllers to children, so when the agent's own cgroup refuses, the agent moves
//! itself into a leaf `<own>/geni-agent.supervisor` first (what systemd's delegation documentation
//! prescribes). The initscript's wrapper is moved in before it runs anything, so everything it
//! starts is inside and stays inside (an unprivileged process cannot leave its cgroup).
//!
//! This module only writes files under `/sys/fs/cgroup` (or the root it is given): it never
//! decides who may be signalled beyond "the members of this sliver's cgroup".

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Rspec;

pub(super) const ROOT: &str = "/sys/fs/cgroup";

/// The leaf the agent itself lives in on pure cgroup v2 when its own cgroup is the subtree
/// (the unit's `DelegateSubgroup=`).
const SUPERVISOR: &str = "geni-agent.supervisor";

/// What the limits are set from when the rspec says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Defaults {
    /// `pids.max` when the rspec has no `nproc_hard`; None: no limit.
    pub(super) pids_max: Option<u64>,
}

/// The hierarchies a sliver's cgroup lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Pure cgroup v2: every controller, and `cgroup.kill`.
    V2,
    /// The cgroup2 tree of a hybrid host: no controllers, but `cgroup.kill`.
    Unified,
    Pids,
    Memory,
    Cpu,
    Freezer,
}

/// One hierarchy's parent directory of sliver cgroups.
#[derive(Debug, Clone)]
struct Parent {
    kind: Kind,
    dir: PathBuf,
}

/// The slivers' cgroups on this host, once known to be usable.
#[derive(Debug)]
pub(super) struct Cgroups {
    parents: Vec<Parent>,
    defaults: Defaults,
}

/// The cgroup path of this process in a hierarchy, from `/proc/self/cgroup` (`0::/x` for v2,
/// `N:pids:/x` or `N:cpu,cpuacct:/x` for v1).
fn own_path(proc_self_cgroup: &str, controller: Option<&str>) -> Option<PathBuf> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        matches.then(|| PathBuf::from(path.trim_start_matches('/')))
    })
}

fn make_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

impl Cgroups {
    /// The parent of sliver cgroups, `<base>/<name>` in each hierarchy under `mount` (normally
    /// [`ROOT`]), where `<base>` is `root` if given (a path inside each hierarchy) or the agent's
    /// own cgroup. None, logged, when no hierarchy is writable: slivers then get rlimits and the
    /// kill-by-uid only.
    pub(super) fn detect(
        mount: &Path,
        root: Option<&Path>,
        name: &str,
        defaults: Defaults,
    ) -> Option<Self> {
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let base = |controller: Option<&str>| -> PathBuf {
            match root {
                Some(r) => r.strip_prefix("/").unwrap_or(r).to_owned(),
                None => own_path(&own, controller).unwrap_or_default(),
            }
        };
        let mut parents = Vec::new();
        if mount.join("cgroup.controllers").is_file() {
            let mut base_path = base(None);
            if root.is_none() && base_path.ends_with(SUPERVISOR) {
                // Placed in the leaf already (systemd's DelegateSubgroup=, or a restart of an
                // agent that moved itself): the subtree is its parent.
                base_path.pop();
            }
            let base_dir = mount.join(base_path);
            match v2_parent(mount, &base_dir, name, root.is_none()) {
                Ok(dir) => parents.push(Parent {
                    kind: Kind::V2,
                    dir,
                }),
                Err(e) => {
                    tracing::warn!(path = %base_dir.display(), error = %e,
                        "cgroup v2 is not writable here: slivers get rlimits and kill-by-uid only");
                }
            }
        } else {
            let hierarchies = [
                (Kind::Unified, "unified", None),
                (Kind::Pids, "pids", Some("pids")),
                (Kind::Memory, "memory", Some("memory")),
                (Kind::Cpu, "cpu", Some("cpu")),
                (Kind::Freezer, "freezer", Some("freezer")),
            ];
            for (kind, dir, controller) in hierarchies {
                let mount_dir = mount.join(dir);
                if !mount_dir.join("cgroup.procs").is_file() {
                    continue;
                }
                let parent = mount_dir.join(base(controller)).join(name);
                match make_dir(&parent) {
                    Ok(()) => parents.push(Parent { kind, dir: parent }),
                    Err(e) => {
                        tracing::debug!(path = %parent.display(), error = %e, "cgroup hierarchy not writable");
                    }
                }
            }
        }
        if parents.is_empty() {
            tracing::warn!(mount = %mount.display(),
                "No writable cgroup hierarchy: slivers get rlimits and kill-by-uid only");
            return None;
        }
        // Made again by the first attach: an agent that never starts a sliver (or is killed)
        // leaves no empty directory behind. Fails, harmlessly, while slivers live in it.
        for p in &parents {
            let _ = fs::remove_dir(&p.dir);
        }
        let cg = Self { parents, defaults };
        tracing::info!(cgroups = %cg.describe(), "Slivers get their own cgroups");
        Some(cg)
    }

    /// The hierarchies in use, for the log.
    pub(super) fn describe(&self) -> String {
        self.parents
            .iter()
            .map(|p| format!("{:?} {}", p.kind, p.dir.display()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn dirs(&self, name: &str) -> impl Iterator<Item = (Kind, PathBuf)> + '_ {
        let name = name.to_owned();
        self.parents
            .iter()
            .map(move |p| (p.kind, p.dir.join(&name)))
    }

    /// Makes the sliver's cgroups, sets their limits from `rspec` and moves `pid` into them.
    /// A limit that cannot be set is logged; failing to move the process into a hierarchy that
    /// can end it (v2, unified or freezer) is an error, since stop relies on it.
    pub(super) fn attach(&self, name: &str, pid: u32, rspec: &Rspec) -> io::Result<()> {
        let limits = Limits::from_rspec(rspec, self.defaults);
        let mut killable = false;
        let mut last_error = None;
        for p in &self.parents {
            make_dir(&p.dir)?;
            if p.kind == Kind::V2 {
                enable_controllers(&p.dir)?;
            }
        }
        for (kind, dir) in self.dirs(name) {
            make_dir(&dir)?;
            for (file, value) in limits.files(kind) {
                // Optional files (memsw without swap accounting, swap.max without swap) may be
                // missing; the limit itself is still set.
                if let Err(e) = fs::write(dir.join(file), &value) {
                    tracing::warn!(sliver = name, file, value, error = %e, "Cannot set cgroup limit");
                }
            }
            match fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                Ok(()) => killable |= matches!(kind, Kind::V2 | Kind::Unified | Kind::Freezer),
                Err(e) => {
                    tracing::warn!(sliver = name, dir = %dir.display(), error = %e, "Cannot move the initscript into its cgroup");
                    last_error = Some(e);
                }
            }
        }
        match (killable, last_error) {
            (false, Some(e)) => Err(e),
            (false, None) => Err(io::Error::other(
                "no cgroup hierarchy here can end a sliver's processes",
            )),
            (true, _) => Ok(()),
        }
    }

    /// Live members of the sliver's cgroup (from the first hierarchy that has the sliver).
    pub(super) fn members(&self, name: &str) -> Vec<u32> {
        self.dirs(name)
            .find_map(|(_, dir)| fs::read_to_string(dir.join("cgroup.procs")).ok())
            .map(|procs| {
                procs
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends `signal` to every member (the polite first half of a stop).
    pub(super) fn signal(&self, name: &str, signal: Signal) {
        for pid in self.members(name) {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), signal);
            }
        }
    }

    /// Ends every process in the sliver's cgroup, whatever its uid, session or group, and
    /// waits (up to 2 s) until the cgroup is empty. `cgroup.kill` where the kernel has it,
    /// else freeze, SIGKILL every member, thaw: frozen processes cannot fork meanwhile.
    pub(super) async fn kill_all(&self, name: &str) -> Result<(), String> {
        if self.members(name).is_empty() {
            return Ok(());
        }
        let dirs: Vec<(Kind, PathBuf)> = self.dirs(name).collect();
        let killer = dirs.iter().find(|(k, d)| {
            matches!(k, Kind::V2 | Kind::Unified) && d.join("cgroup.kill").is_file()
        });
        let how = if let Some((_, dir)) = killer {
            fs::write(dir.join("cgroup.kill"), "1")
                .map_err(|e| format!("cannot write {}: {e}", dir.join("cgroup.kill").display()))?;
            "cgroup.kill"
        } else if let Some((kind, dir)) = dirs
            .iter()
            .find(|(k, _)| matches!(k, Kind::V2 | Kind::Freezer))
        {
            freeze_kill(*kind, dir).await?;
            "freeze and kill"
        } else {
            // Only pids/memory/cpu v1: kill the members a few rounds (they may fork meanwhile;
            // the uid kill that follows catches the rest where the sliver has its own uid).
            for _ in 0..10 {
                self.signal(name, Signal::SIGKILL);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            "kill members"
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.members(name).is_empty() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "processes {:?} survived {how} of its cgroup for 2 s",
                    self.members(name)
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::debug!(
            sliver = name,
            how,
            "Ended every process of the sliver's cgroup"
        );
        Ok(())
    }

    /// Removes the sliver's cgroups (only possible once empty; logged otherwise).
    pub(super) fn remove(&self, name: &str) {
        for (_, dir) in self.dirs(name) {
            match fs::remove_dir(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(sliver = name, dir = %dir.display(), error = %e, "Cannot remove the sliver's cgroup");
                }
                _ => {}
            }
        }
    }

    /// Removes the parent directories if no sliver cgroup is left in them (after the last
    /// destroy, and when the manager goes).
    pub(super) fn remove_parents(&self) {
        for p in &self.parents {
            let _ = fs::remove_dir(&p.dir);
        }
    }
}

/// Pure v2: makes `<base>/<name>` with the controllers slivers need, enabling them on the way
/// down. When `<base>` is the agent's own cgroup and refuses (it has processes), the agent
/// moves into the leaf `<base>/geni-agent.supervisor` and tries again.
fn v2_parent(mount: &Path, base: &Path, name: &str, own: bool) -> io::Result<PathBuf> {
    let enable = enable_controllers;
    // Every ancestor from the mount down to base must pass the controllers on.
    let mut ancestors: Vec<&Path> = base
        .ancestors()
        .take_while(|a| a.starts_with(mount))
        .collect();
    ancestors.reverse();
    for dir in ancestors.iter().take(ancestors.len().saturating_sub(1)) {
        if let Err(e) = enable(dir) {
            tracing::debug!(path = %dir.display(), error = %e, "Cannot pass cgroup controllers down");
        }
    }
    if let Err(e) = enable(base) {
        if !(own && e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32)) {
            return Err(e);
        }
        let leaf = base.join(SUPERVISOR);
        make_dir(&leaf)?;
        // Everything in the subtree's root: the agent, and whatever helper it runs just now.
        let procs = fs::read_to_string(base.join("cgroup.procs"))?;
        for pid in procs.lines().map(str::trim).filter(|p| !p.is_empty()) {
            if let Err(e) = fs::write(leaf.join("cgroup.procs"), pid) {
                tracing::debug!(pid, error = %e, "Cannot move a process into the supervisor leaf");
            }
        }
        tracing::info!(cgroup = %leaf.display(), "Moved the agent into a leaf of its delegated cgroup");
        enable(base)?;
    }
    let parent = base.join(name);
    make_dir(&parent)?;
    enable(&parent)?;
    Ok(parent)
}

/// Gives the children of `dir` the controllers slivers need, those `dir` has.
fn enable_controllers(dir: &Path) -> io::Result<()> {
    let available = fs::read_to_string(dir.join("cgroup.controllers"))?;
    for c in ["pids", "memory", "cpu"] {
        if available.split_whitespace().any(|a| a == c) {
            fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"))?;
        }
    }
    Ok(())
}

/// Freezes the cgroup, SIGKILLs every member, thaws it (a frozen process dies once thawed).
async fn freeze_kill(kind: Kind, dir: &Path) -> Result<(), String> {
    let (file, frozen, thawed) = match kind {
        Kind::Freezer => ("freezer.state", "FROZEN", "THAWED"),
        _ => ("cgroup.freeze", "1", "0"),
    };
    let state = dir.join(file);
    fs::write(&state, frozen).map_err(|e| format!("cannot freeze {}: {e}", dir.display()))?;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now_frozen = match kind {
            Kind::Freezer => fs::read_to_string(&state).is_ok_and(|s| s.trim() == "FROZEN"),
            _ => fs::read_to_string(dir.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1")),
        };
        if now_frozen || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    fs::write(&state, thawed).map_err(|e| format!("cannot thaw {}: {e}", dir.display()))
}

/// The cgroup limits of one sliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    pids: Option<u64>,
    /// Bytes.
    memory: Option<u64>,
    /// cgroup v2 `cpu.weight`, 1..=10000.
    weight: u64,
}

impl Limits {
    /// `pids.max` from the VServer rlimit tag `nproc_hard` (else the node's default),
    /// `memory` from the LXC tag `memlock_hard` in KiB (NodeManager's LXC `configure()`; no
    /// default: NodeManager sets none), the weight from `cpu_share` (NodeManager's default 1).
    fn from_rspec(rspec: &Rspec, defaults: Defaults) -> Self {
        let tag = |key: &str| {
            rspec
                .tags()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.trim().parse::<i64>().ok())
                .and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v > 0)
        };
        let share = rspec
            .int("cpu_share")
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(1);
        Self {
            pids: tag("nproc_hard").or(defaults.pids_max),
            memory: tag("memlock_hard").map(|kib| kib.saturating_mul(1024)),
            weight: share.clamp(1, 10_000),
        }
    }

    /// (file, value) pairs for one hierarchy. Unlimited is written too, so that a newer record
    /// without a limit lifts the old one.
    fn files(&self, kind: Kind) -> Vec<(&'static str, String)> {
        let max = |v: Option<u64>| v.map_or_else(|| "max".to_owned(), |v| v.to_string());
        // v1 says "no limit" with -1.
        let v1 = |v: Option<u64>| v.map_or_else(|| "-1".to_owned(), |v| v.to_string());
        // cpu.shares 1024 is v1's default as cpu.weight 100 is v2's: keep the ratio.
        let shares = (self.weight * 1024 / 100).clamp(2, 262_144);
        match kind {
            Kind::V2 => vec![
                ("pids.max", max(self.pids)),
                ("memory.max", max(self.memory)),
                // Swap would let a hog outgrow memory.max.
                (
                    "memory.swap.max",
                    self.memory.map_or("max", |_| "0").to_owned(),
                ),
                ("cpu.weight", self.weight.to_string()),
            ],
            Kind::Pids => vec![("pids.max", max(self.pids))],
            // memsw is limit + swap and may not be below the limit: raise it first when
            // lifting, set it after when lowering. -1 for both when unlimited.
            Kind::Memory => match self.memory {
                Some(m) => vec![
                    ("memory.limit_in_bytes", m.to_string()),
                    ("memory.memsw.limit_in_bytes", m.to_string()),
                ],
                None => vec![
                    ("memory.memsw.limit_in_bytes", v1(None)),
                    ("memory.limit_in_bytes", v1(None)),
                ],
            },
            Kind::Cpu => vec![("cpu.shares", shares.to_string())],
            Kind::Unified | Kind::Freezer => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use geni_xmlrpc::Struct;

    const DEFAULTS: Defaults = Defaults {
        pids_max: Some(4096),
    };

    #[test]
    fn a_plain_directory_is_not_a_cgroup_mount() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Cgroups::detect(dir.path(), None, "geni-agent", DEFAULTS).is_none());
    }

    #[test]
    fn own_paths_are_read_per_hierarchy() {
        let text = "9:name=systemd:/\n4:memory:/process_api/41\n1:cpu,cpuacct:/a b\n0::/\n";
        assert_eq!(
            own_path(text, Some("memory")).unwrap(),
            Path::new("process_api/41")
        );
        assert_eq!(own_path(text, Some("cpuacct")).unwrap(), Path::new("a b"));
        assert_eq!(own_path(text, None).unwrap(), Path::new(""));
        assert_eq!(own_path(text, Some("pids")), None);
    }

    #[test]
    fn limits_come_from_the_rspec_with_nodemanagers_defaults() {
        let silent = Limits::from_rspec(&Rspec::from_ticket(&Struct::new()).unwrap(), DEFAULTS);
        assert_eq!(
            silent,
            Limits {
                pids: Some(4096),
                memory: None,
                weight: 1
            }
        );
        let given = Struct::new()
            .with("cpu_share", "20000")
            .with("memlock_hard", "2048")
            .with("nproc_hard", "64");
        let l = Limits::from_rspec(&Rspec::from_ticket(&given).unwrap(), DEFAULTS);
        assert_eq!(
            l,
            Limits {
                pids: Some(64),
                memory: Some(2_097_152),
                weight: 10_000
            }
        );
        assert_eq!(
            l.files(Kind::V2),
            [
                ("pids.max", "64".to_owned()),
                ("memory.max", "2097152".to_owned()),
                ("memory.swap.max", "0".to_owned()),
                ("cpu.weight", "10000".to_owned()),
            ]
        );
        assert_eq!(l.files(Kind::Cpu), [("cpu.shares", "102400".to_owned())]);
        assert_eq!(silent.files(Kind::Cpu), [("cpu.shares", "10".to_owned())]);
        assert_eq!(
            silent.files(Kind::Memory)[1],
            ("memory.limit_in_bytes", "-1".to_owned())
        );
    }

    /// The fallback kill (freeze, SIGKILL every member, thaw) on real cgroups of this host: the
    /// v1 freezer and cgroup2's `cgroup.freeze`, each with a `setsid` daemon inside. Asserted
    /// wherever the hierarchy is writable (it is on the build machine); said when skipped.
    #[tokio::test]
    async fn freeze_kill_ends_every_member_of_a_real_cgroup() {
        use std::io::Write as _;
        if !nix::unistd::geteuid().is_root() {
            println!("SKIPPED: cgroups need root");
            return;
        }
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
        let candidates = [
            (
                Kind::Freezer,
                Path::new("/sys/fs/cgroup/freezer"),
                Some("freezer"),
            ),
            (Kind::V2, Path::new("/sys/fs/cgroup/unified"), None),
            (Kind::V2, Path::new("/sys/fs/cgroup"), None),
        ];
        let mut ran = 0;
        for (kind, mount, controller) in candidates {
            let is_v2_mount = mount == Path::new("/sys/fs/cgroup");
            if is_v2_mount != pure_v2 || !mount.join("cgroup.procs").is_file() {
                continue;
            }
            let dir = mount
                .join(own_path(&own, controller).unwrap())
                .join(format!("nm-freeze-{}", std::process::id()));
            if fs::create_dir(&dir).is_err() {
                continue;
            }
            let mut child = std::process::Command::new("/bin/sh")
                .args(["-c", "read x; (setsid sleep 1000 &); exec sleep 1000"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
            writeln!(child.stdin.take().unwrap(), "go").unwrap();
            let members = || -> Vec<i32> {
                fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse().ok())
                    .collect()
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while members().len() < 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let before = members();
            assert_eq!(
                before.len(),
                2,
                "{kind:?}: the daemon did not start: {before:?}"
            );
            freeze_kill(kind, &dir).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(2);
            while !members().is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(members().is_empty(), "{kind:?}: {:?} survived", members());
            let _ = child.wait();
            fs::remove_dir(&dir).unwrap();
            ran += 1;
        }
        if ran == 0 {
            println!("SKIPPED: no writable freezer or cgroup2 tree on this host");
        } else {
            println!("freeze-kill checked in {ran} hierarchies");
        }
    }
}
