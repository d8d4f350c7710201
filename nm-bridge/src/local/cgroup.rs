//! cgroup v2 limits for slivers, where the unified hierarchy is mounted at `/sys/fs/cgroup` and
//! writable (root on a cgroup2 host). Elsewhere, including hybrid v1 hosts, this does nothing
//! and says so at debug level: rlimits still apply.
//!
//! Each sliver gets `<root>/geni-agent/<name>` with `cpu.weight` from `cpu_share` (clamped to
//! 1..=10000; weights only compete among slivers, since they are siblings) and `memory.max`
//! from the VServer/LXC tag `memlock_hard` (KiB) when given. The initscript's wrapper is moved
//! in before it runs anything, so everything it starts is inside.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::Rspec;

pub(super) const ROOT: &str = "/sys/fs/cgroup";

/// `<root>/geni-agent`, once known to be usable.
#[derive(Debug)]
pub(super) struct Cgroups {
    base: PathBuf,
}

impl Cgroups {
    /// The sliver parent under `root`, made if needed, with cpu and memory control delegated to
    /// it; None when `root` is not a writable cgroup2 hierarchy.
    pub(super) fn detect(root: &Path) -> Option<Self> {
        if !root.join("cgroup.controllers").is_file() {
            tracing::debug!(root = %root.display(), "No cgroup2 hierarchy: slivers get rlimits only");
            return None;
        }
        let base = root.join("geni-agent");
        if let Err(e) = fs::create_dir(&base)
            && e.kind() != io::ErrorKind::AlreadyExists
        {
            tracing::debug!(path = %base.display(), error = %e, "cgroup2 not writable: slivers get rlimits only");
            return None;
        }
        for dir in [root, base.as_path()] {
            for controller in ["+cpu", "+memory"] {
                // Each controller separately: one may be unavailable while the other works.
                if let Err(e) = fs::write(dir.join("cgroup.subtree_control"), controller) {
                    tracing::debug!(path = %dir.display(), controller, error = %e, "Cannot enable cgroup controller");
                }
            }
        }
        Some(Self { base })
    }

    /// Makes the sliver's cgroup, sets its limits and moves `pid` into it. Limits that cannot be
    /// set are logged; failing to move the process is an error.
    pub(super) fn attach(&self, name: &str, pid: u32, rspec: &Rspec) -> io::Result<()> {
        let dir = self.base.join(name);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let weight = rspec.int("cpu_share").unwrap_or(1).clamp(1, 10_000);
        let memory = rspec
            .tags()
            .find(|(k, _)| *k == "memlock_hard")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .filter(|kib| *kib > 0)
            .map_or_else(
                || "max".to_owned(),
                |kib| kib.saturating_mul(1024).to_string(),
            );
        for (file, value) in [("cpu.weight", weight.to_string()), ("memory.max", memory)] {
            if let Err(e) = fs::write(dir.join(file), &value) {
                tracing::debug!(sliver = name, file, value, error = %e, "Cannot set cgroup limit");
            }
        }
        fs::write(dir.join("cgroup.procs"), pid.to_string())
    }

    /// Removes the sliver's cgroup (only possible once it is empty; logged otherwise).
    pub(super) fn remove(&self, name: &str) {
        let dir = self.base.join(name);
        match fs::remove_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::debug!(sliver = name, error = %e, "Cannot remove the sliver's cgroup");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use geni_xmlrpc::Struct;

    #[test]
    fn a_plain_directory_is_not_a_cgroup2_root() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Cgroups::detect(dir.path()).is_none());
    }

    /// A directory that looks like a cgroup2 root: the files written are the ones a real one
    /// would get.
    #[test]
    fn limits_and_the_pid_are_written_to_the_slivers_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), "cpu memory").unwrap();
        let cg = Cgroups::detect(dir.path()).unwrap();
        let rspec = Rspec::from_ticket(
            &Struct::new()
                .with("cpu_share", "20000")
                .with("memlock_hard", "2048"),
        )
        .unwrap();
        cg.attach("pl_cg", 4242, &rspec).unwrap();
        let read =
            |f: &str| fs::read_to_string(dir.path().join("geni-agent/pl_cg").join(f)).unwrap();
        assert_eq!(read("cpu.weight"), "10000");
        assert_eq!(read("memory.max"), "2097152");
        assert_eq!(read("cgroup.procs"), "4242");
        assert_eq!(
            fs::read_to_string(dir.path().join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
    }
}
