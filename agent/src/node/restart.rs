//! Operator actions on a node that are not serving: `--check-config`, and `--restart` for nodes
//! without systemd (under systemd, `systemctl restart geni-agent-node` is the way).
//!
//! `--restart` stops the node its pid file names (SIGTERM, which finishes calls in flight; SIGKILL
//! only if it has not exited after [`STOP_TIMEOUT`]: the backends lose no acknowledged state to
//! `kill -9`) and starts `geni-agent` again with the same flags, `--restart` replaced by the
//! hidden `--detached`: the new process starts its own session (no controlling terminal, so the
//! SSH session that asked can end), reads nothing from stdin, and writes its output to the log
//! file. It reports success only once the new node has written its pid file, which happens after
//! it listens.

use std::ffi::OsString;
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::config::NodeConfig;
use super::pidfile::{self, Running};
use crate::ExitCode;
use crate::config::NodeSection;

/// How long a node may take to exit after SIGTERM: the server lets calls in flight finish for up
/// to 30 s (`geni_rpc::Limits::drain_timeout`), plus a margin. The systemd units' TimeoutStopSec
/// is the same.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a SIGKILLed node may take to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new node may take to load its roots and state and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Variables that belong to the service manager of the process that ran `--restart`, not to a
/// detached node.
const SERVICE_ENV: [&str; 7] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
];

/// Flags of `geni-agent node` for operating it rather than configuring it.
#[derive(Debug, Args)]
pub(crate) struct OpsArgs {
    /// Check the configuration (file, environment and flags) and exit: 0 valid, 2 not.
    #[arg(long, conflicts_with = "restart")]
    check_config: bool,
    /// Stop the node named by the pid file, if one runs, and start it again detached with these
    /// same flags; prints the new pid. For hosts without systemd.
    #[arg(long)]
    restart: bool,
    /// The pid file (node.pid_file) [default: node.pid in the state directory].
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Where a node started by --restart writes its output [default: node.log in the state
    /// directory].
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Set by --restart on the node it starts: begin a new session, detached from the terminal.
    #[arg(long, hide = true, conflicts_with_all = ["restart", "check_config"])]
    detached: bool,
}

impl OpsArgs {
    /// Applies the flags that are also configuration keys.
    pub(crate) fn apply(&self, section: &mut NodeSection) {
        if let Some(p) = &self.pid_file {
            section.pid_file = Some(p.clone());
        }
    }

    /// Runs the action asked for, returning how the process ends; `None` means serve. Before
    /// serving, refuses to start beside a running node with the same pid file.
    pub(crate) fn before_serve(&self, config: &NodeConfig) -> anyhow::Result<Option<ExitCode>> {
        let pid_file = pidfile::path(&config.section);
        if self.check_config {
            check_config(config, &pid_file);
            return Ok(Some(ExitCode::Success));
        }
        if self.restart {
            let log = self
                .log_file
                .clone()
                .unwrap_or_else(|| config.section.state_dir.join("node.log"));
            restart(&pid_file, &log)?;
            return Ok(Some(ExitCode::Success));
        }
        if self.detached {
            nix::unistd::setsid().context("starting a new session for the detached node")?;
        }
        pidfile::ensure_free(&pid_file)?;
        Ok(None)
    }
}

/// The configuration parsed and passed [`NodeConfig::check`] before this is called; say so, and
/// point out the files a node needs that are not there yet (a fresh RPM install has none).
fn check_config(config: &NodeConfig, pid_file: &Path) {
    let c = &config.section;
    println!("node configuration is valid");
    println!("  listen        {}", c.listen);
    if let Some(socket) = &c.unix_socket {
        println!("  unix_socket   {}", socket.display());
    }
    println!("  backend       {}", c.backend);
    println!("  state_dir     {}", c.state_dir.display());
    println!("  pid_file      {}", pid_file.display());
    let needed = [
        ("node.key", &c.key),
        ("node.gid", &c.gid),
        ("node.credential", &c.credential),
        ("node.trusted_roots", &c.trusted_roots),
    ];
    for (key, path) in needed {
        if !path.exists() {
            eprintln!(
                "note: {key} {} does not exist yet; the node will not start without it",
                path.display()
            );
        }
    }
}

fn restart(pid_file: &Path, log: &Path) -> anyhow::Result<()> {
    let old = pidfile::running(pid_file)?;
    if let Some(old) = old {
        let cgroup = fs::read_to_string(format!("/proc/{}/cgroup", old.pid)).unwrap_or_default();
        if let Some(unit) = systemd_unit(&cgroup) {
            // Replacing it here would leave systemd believing the service stopped cleanly while
            // a node it does not supervise runs on.
            bail!(
                "the running node (pid {}) is the systemd service {unit}; restart it with \
                 `systemctl restart {unit}`",
                old.pid
            );
        }
        stop(old)?;
    }
    let exe = std::env::current_exe().context("finding this program's path")?;
    let args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .map(|a| {
            if a == "--restart" {
                "--detached".into()
            } else {
                a
            }
        })
        .collect();
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(log)
        .with_context(|| format!("opening the log file {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("opening the log file {}", log.display()))?;
    let mut command = Command::new(&exe);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for var in SERVICE_ENV {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let new = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the new node")? {
            bail!(
                "the new node exited ({status}) instead of serving; the end of {}:\n{}",
                log.display(),
                tail(log)
            );
        }
        if pidfile::running(pid_file)?.is_some_and(|r| r.pid == new) {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the new node (pid {new}) has not listened within {}s; it is still running; see {}",
                START_TIMEOUT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match old {
        Some(old) => println!(
            "geni-agent node: stopped pid {}, started pid {new} (output in {})",
            old.pid,
            log.display()
        ),
        None => println!(
            "geni-agent node: none was running; started pid {new} (output in {})",
            log.display()
        ),
    }
    Ok(())
}

/// The geni-agent systemd unit a process runs in, from its `/proc/<pid>/cgroup`
/// (`0::/system.slice/geni-agent-node.service`).
fn systemd_unit(cgroup: &str) -> Option<&str> {
    cgroup
        .lines()
        .filter_map(|line| line.rsplit('/').next())
        .find(|unit| unit.starts_with("geni-agent") && unit.ends_with(".service"))
}

/// SIGTERM, then SIGKILL if the node has not exited within [`STOP_TIMEOUT`].
fn stop(node: Running) -> anyhow::Result<()> {
    let pid = Pid::from_raw(
        i32::try_from(node.pid).with_context(|| format!("pid {} is out of range", node.pid))?,
    );
    for (signal, timeout) in [
        (Signal::SIGTERM, STOP_TIMEOUT),
        (Signal::SIGKILL, KILL_TIMEOUT),
    ] {
        match kill(pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => bail!(
                "cannot stop the running node (pid {pid}): {} (run as the node's user)",
                e.desc()
            ),
        }
        let deadline = Instant::now() + timeout;
        while node.is_alive() {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !node.is_alive() {
            return Ok(());
        }
        tracing::warn!(%pid, ?signal, "The node did not exit in time");
    }
    bail!("the running node (pid {pid}) did not exit even after SIGKILL")
}

/// The last lines of the log, for an error message.
fn tail(log: &Path) -> String {
    const MAX: u64 = 2000;
    let Ok(mut f) = fs::File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_under_systemd_is_recognised_by_its_cgroup() {
        assert_eq!(
            systemd_unit("0::/system.slice/geni-agent-node.service\n"),
            Some("geni-agent-node.service")
        );
        assert_eq!(
            systemd_unit("12:pids:/system.slice/geni-agent-node.service\n1:name=systemd:/x\n"),
            Some("geni-agent-node.service")
        );
        // Started by hand, from cron, or in a container: not a geni-agent unit.
        assert_eq!(
            systemd_unit("0::/user.slice/user-0.slice/session-3.scope\n"),
            None
        );
        assert_eq!(systemd_unit("0::/system.slice/cron.service\n"), None);
        assert_eq!(systemd_unit("0::/\n"), None);
        assert_eq!(systemd_unit(""), None);
    }
}
