//! Unix accounts for slivers (`useradd` / `userdel`), when the agent runs as root and account
//! management is enabled; ending every process of a uid; and who the agent itself is.
//!
//! An account is only ever treated as a sliver's when its home directory is that sliver's home:
//! an existing account of the same name that is not ours is refused, never taken over, and never
//! deleted. Accounts get an explicit uid (and a user group with the same number) from the
//! configured range, chosen by the manager, and the password `*`: no password ever
//! matches, but the account is not "locked" (`!`), so sshd lets the ticket's keys in.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::{Gid, Group, Uid, User, getegid, geteuid};
use tokio::process::Command;

use crate::{NmError, SliverName};

pub(super) fn is_root() -> bool {
    geteuid().is_root()
}

/// The agent's own effective uid and gid.
pub(super) fn own_ids() -> (u32, u32) {
    (geteuid().as_raw(), getegid().as_raw())
}

/// A passwd entry: uid, gid and home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Account {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) home: PathBuf,
}

pub(super) fn lookup(name: &str) -> Result<Option<Account>, NmError> {
    let user = User::from_name(name).map_err(|e| NmError::Process {
        name: name.to_owned(),
        message: format!("cannot look up its Unix account: {e}"),
    })?;
    Ok(user.map(|u| Account {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir,
    }))
}

/// Why [`add`] did not make the account.
#[derive(Debug)]
pub(super) enum AddError {
    /// Another account has this uid (made since the caller looked): try the next one.
    UidTaken,
    Other(NmError),
}

/// Creates the sliver's account with `uid` (and a user group with the same gid) and `home` as
/// its home (which the caller makes), or returns the one a crash left
/// behind if its home is `home`.
pub(super) async fn add(name: &SliverName, home: &Path, uid: u32) -> Result<Account, AddError> {
    if let Some(existing) = lookup(name.as_str()).map_err(AddError::Other)? {
        if existing.home == home {
            return Ok(existing);
        }
        return Err(AddError::Other(NmError::Permission(format!(
            "sliver {name}: a Unix account named {name} already exists (home {}) and is not \
             this sliver's; refusing to take it over",
            existing.home.display()
        ))));
    }
    let uid_text = uid.to_string();
    // The user group gets the uid's number too (GID_MIN = GID_MAX = uid), in the same useradd:
    // files the sliver leaves are plainly its own in both columns. A taken gid fails like a
    // taken uid (exit 4), and the caller tries the next uid.
    let gid_min = format!("GID_MIN={uid}");
    let gid_max = format!("GID_MAX={uid}");
    let args: Vec<&std::ffi::OsStr> = vec![
        "--home-dir".as_ref(),
        home.as_os_str(),
        "--no-create-home".as_ref(),
        "--shell".as_ref(),
        "/bin/sh".as_ref(),
        "--uid".as_ref(),
        uid_text.as_ref(),
        "--user-group".as_ref(),
        "-K".as_ref(),
        gid_min.as_ref(),
        "-K".as_ref(),
        gid_max.as_ref(),
        // Key-only logins: `*` matches no password, and unlike `!` sshd does not treat it as a
        // locked account.
        "--password".as_ref(),
        "*".as_ref(),
        // No subordinate uids: a block of them could overlap other slivers' uids, which
        // newuidmap would then let this account map into a user namespace.
        "-K".as_ref(),
        "SUB_UID_COUNT=0".as_ref(),
        "-K".as_ref(),
        "SUB_GID_COUNT=0".as_ref(),
        name.as_str().as_ref(),
    ];
    match run(name, "useradd", &args).await {
        Ok(()) => {}
        Err(RunError::Exit(4, _)) => return Err(AddError::UidTaken),
        Err(e) => return Err(AddError::Other(e.into_nm(name, "useradd"))),
    }
    lookup(name.as_str())
        .map_err(AddError::Other)?
        .ok_or_else(|| {
            AddError::Other(NmError::Process {
                name: name.to_string(),
                message: "useradd succeeded but the account cannot be found".into(),
            })
        })
}

/// Whether `uid` is free to give a new sliver: no account and no group has it, and no process
/// runs with it (a process of a destroyed sliver that somehow survived, or anything else).
pub(super) fn uid_is_free(uid: u32, busy: &std::collections::HashSet<u32>) -> bool {
    !busy.contains(&uid)
        && User::from_uid(Uid::from_raw(uid)).is_ok_and(|u| u.is_none())
        && Group::from_gid(Gid::from_raw(uid)).is_ok_and(|g| g.is_none())
}

/// Every uid (real, effective, saved or filesystem) of a live process.
pub(super) fn uids_in_use() -> std::collections::HashSet<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return std::collections::HashSet::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| {
                    u.split_whitespace()
                        .filter_map(|x| x.parse::<u32>().ok())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Removes the sliver's account (and its user group) if it is ours, after killing every process
/// still running under its uid (`userdel` refuses while any does).
pub(super) async fn remove(name: &str, home: &Path) -> Result<(), NmError> {
    let Some(account) = lookup(name)? else {
        return Ok(());
    };
    if account.home != home {
        tracing::warn!(sliver = name, home = %account.home.display(),
            "Not removing an account of the same name that is not this sliver's");
        return Ok(());
    }
    kill_uid(account.uid, account.gid).await?;
    let sliver = SliverName::parse(name)?;
    run(&sliver, "userdel", &[name.as_ref()])
        .await
        .map_err(|e| e.into_nm(&sliver, "userdel"))?;
    // userdel removes the user group only where login.defs has USERGROUPS_ENAB (Debian and
    // Fedora do).
    if Group::from_name(name)
        .ok()
        .flatten()
        .is_some_and(|g| g.gid.as_raw() == account.uid)
    {
        let _ = run(&sliver, "groupdel", &[name.as_ref()]).await;
    }
    Ok(())
}

/// Ends every process of `uid`, double-forked and `setsid` daemons included: a short-lived
/// child switches to the uid and calls `kill(-1, SIGKILL)`, which reaches exactly the
/// processes that uid may signal (its own; never the agent's or another sliver's), a few rounds
/// in case one forks meanwhile, until `/proc` shows none. Never for root or the agent's own
/// uid: callers only use it for a uid that belongs to one sliver.
pub(super) async fn kill_uid(uid: u32, gid: u32) -> Result<(), NmError> {
    if uid == 0 || uid == own_ids().0 || !is_root() {
        return Ok(());
    }
    let failed = |message: String| NmError::Process {
        name: format!("uid {uid}"),
        message,
    };
    for _ in 0..20 {
        if pids_of_uid(uid).is_empty() {
            return Ok(());
        }
        // The shell's builtin kill (`-9 -1`: dash reads `-s KILL -1` as an option); the shell
        // itself is spared by kill(-1).
        let status = Command::new("/bin/sh")
            .args(["-c", "kill -9 -1"])
            .env_clear()
            .current_dir("/")
            .uid(uid)
            .gid(gid)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .map_err(|e| failed(format!("cannot start the kill helper: {e}")))?;
        tracing::debug!(uid, %status, "Killed every process of the uid");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = pids_of_uid(uid);
    if left.is_empty() {
        return Ok(());
    }
    Err(failed(format!(
        "processes {left:?} survived kill(-1, SIGKILL)"
    )))
}

/// Live processes (not zombies) running with `uid` as real or effective uid.
pub(super) fn pids_of_uid(uid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            let field = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            // Uid: real, effective, saved, filesystem.
            !field("State:").starts_with('Z')
                && field("Uid:")
                    .split_whitespace()
                    .take(2)
                    .any(|u| u.parse::<u32>().ok() == Some(uid))
        })
        .collect()
}

/// How running an account tool failed.
#[derive(Debug)]
enum RunError {
    Spawn(String),
    Exit(i32, String),
}

impl RunError {
    fn into_nm(self, name: &SliverName, tool: &str) -> NmError {
        NmError::Process {
            name: name.to_string(),
            message: match self {
                Self::Spawn(m) => m,
                Self::Exit(code, stderr) => format!("{tool} failed (exit {code}): {stderr}"),
            },
        }
    }
}

/// Runs `useradd`, `userdel` or `groupdel` (from /usr/sbin or /sbin when there,
/// for a PATH without them). Another agent or admin holding the passwd lock (exit 1 or 10) is
/// waited out for a few seconds.
async fn run(name: &SliverName, tool: &str, args: &[&std::ffi::OsStr]) -> Result<(), RunError> {
    let program = ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(tool));
    let mut delay = Duration::from_millis(20);
    let mut attempt = 0;
    loop {
        let out = Command::new(&program)
            .args(args)
            .output()
            .await
            .map_err(|e| RunError::Spawn(format!("cannot run {}: {e}", program.display())))?;
        if out.status.success() {
            return Ok(());
        }
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let locked = matches!(code, 1 | 10) && stderr.contains("lock");
        if !locked || attempt >= 8 {
            return Err(RunError::Exit(code, stderr));
        }
        tracing::debug!(sliver = %name, tool, stderr, "Account files are locked; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
        attempt += 1;
    }
}

/// The shared writable places a sliver may leave files in, emptied of its uid's at delete.
pub(super) const SHARED_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// Removes every entry directly in `dirs` that `uid` owns (whole, if a directory). Only the top
/// level: these directories are sticky, so nobody but the owner (dead by now) and root can
/// rename or replace such an entry, and `remove_dir_all` never follows a symlink inside. Files
/// the sliver left inside other users' directories are not searched for. Returns how many
/// entries were removed.
pub(super) fn remove_files_of_uid(uid: u32, dirs: &[&Path]) -> usize {
    use std::os::unix::fs::MetadataExt;
    if uid == 0 || uid == own_ids().0 {
        return 0;
    }
    let mut removed = 0;
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.uid() != uid {
                continue;
            }
            let path = entry.path();
            let gone = if meta.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match gone {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "Cannot remove a deleted sliver's file");
                }
            }
        }
    }
    removed
}
