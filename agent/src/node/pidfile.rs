//! The node's pid file: which process is the running node, for `geni-agent node --restart` and
//! for init scripts on nodes without systemd.
//!
//! The file is written (temp file and rename) only once the node listens, so a new pid in it
//! means a node that answers, and removed when the node exits cleanly. Its first line is the pid,
//! as every pid-file reader expects; the second is the process's start time in clock ticks since
//! boot (`/proc/<pid>/stat` field 22). A file left by `kill -9` or a crash is stale: the pid is
//! gone, or was reused by a process that started at another time or is not a `geni-agent node`.
//! Stale files are overwritten, never trusted.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::NodeSection;

/// The pid file's name in the state directory when `node.pid_file` is not set.
const DEFAULT_NAME: &str = "node.pid";

/// Where the pid file of a node with this configuration lives.
pub(crate) fn path(section: &NodeSection) -> PathBuf {
    section
        .pid_file
        .clone()
        .unwrap_or_else(|| section.state_dir.join(DEFAULT_NAME))
}

/// A running node, as its pid file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Running {
    pub(crate) pid: u32,
    start: u64,
}

impl Running {
    /// Whether the process is still there (a zombie has exited: its sockets are closed).
    pub(crate) fn is_alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// The node that `path` names, if that node is running; `None` when there is no file or it is
/// stale. An unreadable file is an error (it may belong to a running node we cannot see).
pub(crate) fn running(path: &Path) -> anyhow::Result<Option<Running>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the pid file {}", path.display()));
        }
    };
    let mut lines = text.lines();
    let Some(pid) = lines.next().and_then(|l| l.trim().parse::<u32>().ok()) else {
        tracing::warn!(pid_file = %path.display(), "Pid file does not start with a pid; ignoring it");
        return Ok(None);
    };
    let recorded = lines.next().and_then(|l| l.trim().parse::<u64>().ok());
    let Some(start) = start_time(pid) else {
        return Ok(None);
    };
    // A file without the start time (written by hand or by another tool) is judged by the
    // command line alone.
    if recorded.is_some_and(|r| r != start) || !is_node(pid) {
        return Ok(None);
    }
    Ok(Some(Running { pid, start }))
}

/// Fails when a live node other than this process holds `path`: two nodes on one pid file
/// would share a state directory, and the local backend's crash repair assumes it is alone.
pub(crate) fn ensure_free(path: &Path) -> anyhow::Result<()> {
    match running(path)? {
        Some(other) if other.pid != std::process::id() => bail!(
            "another geni-agent node (pid {}) is running with the pid file {}; stop it, or use \
             `geni-agent node --restart` to replace it",
            other.pid,
            path.display()
        ),
        _ => Ok(()),
    }
}

/// This process's claim on the pid file, removed when dropped (a clean exit, an error return,
/// or an unwinding panic).
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's pid to `path`, replacing a stale file; refuses if a live node holds
    /// it.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        ensure_free(path)?;
        let pid = std::process::id();
        let start = start_time(pid).context("reading this process's start time from /proc")?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .with_context(|| format!("creating the pid file's directory {}", dir.display()))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            writeln!(f, "{pid}\n{start}")?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing the pid file {}", path.display()));
        }
        Ok(Self {
            path: path.to_owned(),
            pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own claim: a node started by `--restart` may already have replaced it.
        let ours = fs::read_to_string(&self.path).is_ok_and(|t| {
            t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) == Some(self.pid)
        });
        if ours && let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(pid_file = %self.path.display(), error = %e, "Cannot remove the pid file");
        }
    }
}

/// The start time of a live (not zombie) process in clock ticks since boot.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether `pid` runs `geni-agent … node …`, whatever the binary's path (an upgrade may have
/// replaced or moved it).
fn is_node(pid: u32) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    let program = args.next().unwrap_or_default();
    let name = program.rsplit(|b| *b == b'/').next().unwrap_or_default();
    name.starts_with(b"geni-agent") && args.any(|a| a == b"node")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_naming_a_process_that_is_not_a_node_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.pid");
        assert_eq!(running(&path).unwrap(), None);
        // This test process is alive but is no `geni-agent node`.
        fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(running(&path).unwrap(), None);
        fs::write(&path, "not a pid\n").unwrap();
        assert_eq!(running(&path).unwrap(), None);
        // A pid that cannot exist (above the kernel's pid_max limit).
        fs::write(&path, "4194305\n1\n").unwrap();
        assert_eq!(running(&path).unwrap(), None);
    }

    #[test]
    fn the_claim_is_written_and_removed_and_replaces_a_stale_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("node.pid");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "4194305\n1\n").unwrap();
        let claim = PidFile::create(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(std::process::id().to_string().as_str()));
        let start: u64 = lines.next().unwrap().parse().unwrap();
        assert_eq!(Some(start), start_time(std::process::id()));
        drop(claim);
        assert!(!path.exists());
    }

    #[test]
    fn a_claim_replaced_by_another_process_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.pid");
        let claim = PidFile::create(&path).unwrap();
        fs::write(&path, "1\n").unwrap();
        drop(claim);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");
    }

    #[test]
    fn the_default_is_in_the_state_directory() {
        let mut section = NodeSection::default();
        assert_eq!(path(&section), Path::new("/var/lib/geni-agent/node.pid"));
        section.pid_file = Some("/run/geni-agent/node.pid".into());
        assert_eq!(path(&section), Path::new("/run/geni-agent/node.pid"));
    }
}
