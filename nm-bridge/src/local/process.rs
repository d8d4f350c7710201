//! A sliver's processes: identifying a process by pid *and* start time, spawning the initscript
//! in its own session (and so its own process group) under the rspec's limits, and ending that
//! group. Processes that leave the group (`setsid` daemons) are the cgroup's and the uid kill's
//! business (`cgroup`, `account`).
//!
//! A pid alone does not name a process across an agent restart (pids are recycled), so every
//! process this backend records is a [`ProcId`]: the pid plus field 22 of `/proc/<pid>/stat`
//! (start time in clock ticks since boot). Nothing is ever signalled unless it is that process,
//! or the rest of its process group while the group's id is provably still ours (see
//! [`Group`]).
//!
//! The initscript is spawned behind a small `/bin/sh` wrapper that first waits for a "go" line
//! on its stdin. The manager writes that line only after the state file names the new process,
//! so a crash between spawn and persist closes the pipe and the wrapper exits without running
//! anything: no process the state does not know. Limits are set by the wrapper's `ulimit`
//! builtin because setting them between fork and exec (`pre_exec`) needs `unsafe`, which this
//! crate forbids.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

use crate::Rspec;

/// One process, as opposed to one pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcId {
    pub(super) pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot at which it started.
    pub(super) start_time: u64,
}

/// The fields of `/proc/<pid>/stat` this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// `R`, `S`, `D`, `Z`, …
    state: char,
    pgrp: i64,
    start_time: u64,
}

/// What is left of a process group led by a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// The leader itself is alive.
    Leader,
    /// The leader is gone or a zombie but members of its group live on. Safe to signal: Linux
    /// does not hand out a pid while it is still some process's group id, so the group is
    /// still the one the recorded leader made.
    Remnant,
    /// Nothing to signal, or the pid now names another process (never signalled).
    Gone,
}

impl ProcId {
    /// The process with this pid now, zombie or not.
    pub(super) fn of(pid: u32) -> Option<Self> {
        read_stat(pid).map(|s| Self {
            pid,
            start_time: s.start_time,
        })
    }

    /// Whether this very process still runs (a zombie has ended: it only awaits its parent).
    pub(super) fn is_alive(self) -> bool {
        read_stat(self.pid).is_some_and(|s| s.start_time == self.start_time && !s.is_dead())
    }

    fn group(self) -> Group {
        match read_stat(self.pid) {
            Some(s) if s.start_time == self.start_time && !s.is_dead() => Group::Leader,
            // The pid belongs to a different process: our group, if it ever had other
            // members, is gone (the pid could not have been reused otherwise).
            Some(s) if s.start_time != self.start_time => Group::Gone,
            // Zombie leader (still holds the pid) or no process with this pid at all.
            _ if group_has_live_members(self.pid) => Group::Remnant,
            _ => Group::Gone,
        }
    }

    /// Whether neither the leader nor any member of its group is alive.
    pub(super) fn group_is_gone(self) -> bool {
        self.group() == Group::Gone
    }

    /// Sends `signal` to the group if it is still ours; false when there was nothing to signal.
    fn signal_group(self, signal: Signal) -> Result<bool, String> {
        if self.group() == Group::Gone {
            return Ok(false);
        }
        let pgid = i32::try_from(self.pid).map_err(|_| format!("pid {} out of range", self.pid))?;
        match killpg(Pid::from_raw(pgid), signal) {
            Ok(()) => Ok(true),
            // Just started: the wrapper has not made its session yet, and so has no children
            // either (it execs all the way to the initscript). The process itself is the lot.
            Err(Errno::ESRCH) if self.is_alive() => match kill(Pid::from_raw(pgid), signal) {
                Ok(()) => Ok(true),
                Err(Errno::ESRCH) => Ok(false),
                Err(e) => Err(format!("cannot send {signal} to process {pgid}: {e}")),
            },
            Err(Errno::ESRCH) => Ok(false),
            Err(e) => Err(format!("cannot send {signal} to process group {pgid}: {e}")),
        }
    }
}

impl Stat {
    fn is_dead(self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself
/// contain spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether any live (non-zombie) process has `pgid` as its process group.
fn group_has_live_members(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(read_stat)
            .is_some_and(|s| s.pgrp == i64::from(pgid) && !s.is_dead())
    })
}

/// SIGTERM to the group, up to `grace` for all of it to end, then SIGKILL to what is left.
/// Returns once the group is gone, or after a bounded wait if something survives SIGKILL
/// (a process stuck in the kernel), which is logged by the caller's error.
pub(super) async fn terminate(id: ProcId, grace: Duration) -> Result<(), String> {
    if !id.signal_group(Signal::SIGTERM)? {
        return Ok(());
    }
    if !wait_gone(id, grace).await && id.signal_group(Signal::SIGKILL)? {
        // SIGKILL cannot be ignored, but delivery and exit take a moment: wait so that "stop
        // returned" means "nothing runs".
        if !wait_gone(id, Duration::from_secs(2)).await {
            return Err(format!("process group {} survived SIGKILL for 2 s", id.pid));
        }
    }
    Ok(())
}

/// Polls (quickly at first) until the group is gone or `limit` has passed.
async fn wait_gone(id: ProcId, limit: Duration) -> bool {
    // A day is forever here, and keeps the addition from overflowing on an absurd grace.
    let deadline = Instant::now() + limit.min(Duration::from_secs(86_400));
    let mut step = Duration::from_millis(5);
    loop {
        if id.group_is_gone() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(step.min(deadline - now)).await;
        step = (step * 2).min(Duration::from_millis(100));
    }
}

// === limits ===

/// The rlimits a sliver's initscript runs under, from its rspec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Limits {
    /// `RLIMIT_FSIZE` in 512-byte blocks: from `disk_max` (KB). A per-file cap is the closest
    /// rlimit to NodeManager's per-sliver disk quota; the quota itself needs a filesystem.
    pub(super) file_blocks: Option<u64>,
    /// `RLIMIT_NOFILE`, from the VServer-style key `nofile_hard`.
    pub(super) nofile: Option<u64>,
    /// `RLIMIT_NPROC`, from `nproc_hard`.
    pub(super) nproc: Option<u64>,
}

impl Limits {
    pub(super) fn from_rspec(rspec: &Rspec) -> Self {
        Self {
            file_blocks: positive(rspec, "disk_max").map(|kb| kb.saturating_mul(2)),
            nofile: positive(rspec, "nofile_hard"),
            nproc: positive(rspec, "nproc_hard"),
        }
    }

    /// Shell commands setting both soft and hard limits (a sliver may not raise them again).
    /// The units were checked against dash and bash-as-sh: `ulimit -f` counts 512-byte blocks
    /// in both (bash uses 1024 only outside POSIX mode); the process limit is `-u` in bash and
    /// `-p` in dash, so `-u` is tried first, quietly.
    fn shell(&self) -> String {
        let mut s = String::new();
        if let Some(n) = self.file_blocks {
            let _ = writeln!(s, "ulimit -f {n} || exit 126");
        }
        if let Some(n) = self.nofile {
            let _ = writeln!(s, "ulimit -n {n} || exit 126");
        }
        if let Some(n) = self.nproc {
            let _ = writeln!(s, "ulimit -u {n} 2>/dev/null || ulimit -p {n} || exit 126");
        }
        s
    }
}

/// An rspec integer (a NodeManager default or a tag) when it is a usable limit. VServer's
/// "keep" sentinels (negative, or too large for an i64) mean no limit.
fn positive(rspec: &Rspec, key: &str) -> Option<u64> {
    let value = rspec.int(key).or_else(|| {
        rspec
            .tags()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.trim().parse::<i64>().ok())
    })?;
    u64::try_from(value).ok().filter(|v| *v > 0)
}

// === spawning ===

/// Everything the initscript is started with.
#[derive(Debug)]
pub(super) struct Launch<'a> {
    pub(super) name: &'a str,
    /// Also the working directory; the log is `initscript.log` in it.
    pub(super) home: &'a Path,
    pub(super) initscript: &'a Path,
    /// uid and gid to switch to; None runs it as the agent itself.
    pub(super) ids: Option<(u32, u32)>,
    pub(super) limits: &'a Limits,
}

/// A spawned wrapper waiting for [`Started::release`].
#[derive(Debug)]
pub(super) struct Started {
    pub(super) id: ProcId,
    child: Child,
    go: ChildStdin,
}

/// The wrapper: `$0` is the initscript, `$1` the sliver name. It runs nothing unless the first
/// line on stdin is `go` (EOF means the agent died before recording the process). It opens the
/// log itself, as the sliver's uid: the agent never opens a file in a home the sliver controls.
/// It then becomes a session leader with `setsid` (which does not fork, since the wrapper is
/// not a group leader: the pid stays the recorded one, and is now also the session and group
/// id), leaving the agent's session and controlling terminal. The initscript gets
/// NodeManager's vinit arguments, `start <name>`.
fn wrapper(limits: &Limits) -> String {
    format!(
        "IFS= read -r go || exit 125\n\
         [ \"$go\" = go ] || exit 125\n\
         exec </dev/null >>initscript.log 2>&1\n\
         {}\
         exec setsid \"$0\" start \"$1\"\n",
        limits.shell()
    )
}

/// Spawns the wrapper (which makes itself a session and group leader before running the
/// initscript), in the sliver's home, with a clean environment.
pub(super) fn spawn(l: &Launch<'_>) -> Result<Started, String> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(wrapper(l.limits))
        .arg(l.initscript)
        .arg(l.name)
        .current_dir(l.home)
        // The agent's environment may hold configuration the sliver has no business seeing.
        .env_clear()
        .env("HOME", l.home)
        .env(
            "PATH",
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        )
        .env("SHELL", "/bin/sh")
        .env("USER", l.name)
        .env("LOGNAME", l.name)
        .env("SLIVER", l.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(false);
    if let Some((uid, gid)) = l.ids {
        // std also drops supplementary groups when the parent is root.
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn().map_err(|e| match l.ids {
        Some((uid, _)) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "cannot start its initscript as uid {uid} in {}: {e} (every directory above the \
             home needs o+x)",
            l.home.display()
        ),
        _ => format!("cannot start /bin/sh for its initscript: {e}"),
    })?;
    let go = child.stdin.take();
    // Not yet reaped (nothing has polled it), so /proc/<pid> exists even if it already ended.
    let id = child.id().and_then(ProcId::of);
    match (id, go) {
        (Some(id), Some(go)) => Ok(Started { id, child, go }),
        _ => {
            let _ = child.start_kill();
            Err("its initscript wrapper vanished right after spawn".into())
        }
    }
}

impl Started {
    /// Lets the wrapper run the initscript; hands back the child for supervision.
    pub(super) async fn release(mut self) -> Child {
        // A failure means the wrapper has already ended (killed from outside): the supervisor
        // will see it exit.
        let _ = self.go.write_all(b"go\n").await;
        drop(self.go);
        self.child
    }

    /// Undoes a spawn whose state could not be recorded. The wrapper has run nothing yet.
    pub(super) async fn abort(mut self) {
        drop(self.go);
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// How a supervised initscript ended, for the log.
pub(super) fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4242);
        assert_eq!(s.start_time, 987_654);
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S 1").is_none());
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcId::of(std::process::id()).unwrap();
        assert!(me.is_alive());
        let other = ProcId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
        assert_eq!(other.group(), Group::Gone);
    }

    #[test]
    fn limits_come_from_the_rspec_and_tags() {
        use geni_xmlrpc::Struct;
        let given = Struct::new()
            .with("disk_max", "1000")
            .with("nofile_hard", "64")
            .with("nproc_hard", "-1");
        let l = Limits::from_rspec(&Rspec::from_ticket(&given).unwrap());
        assert_eq!(
            l,
            Limits {
                file_blocks: Some(2000),
                nofile: Some(64),
                nproc: None
            }
        );
        assert!(wrapper(&l).contains("ulimit -f 2000 ||"));
    }
}
