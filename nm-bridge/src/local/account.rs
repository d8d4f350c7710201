//! Unix accounts for slivers (`useradd` / `userdel`), when the agent runs as root and account
//! management is enabled, and who the agent itself is.
//!
//! An account is only ever treated as a sliver's when its home directory is that sliver's home:
//! an existing account of the same name that is not ours is refused, never taken over, and never
//! deleted.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, getegid, geteuid};
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

/// Creates the sliver's account with `home` as its home (which the caller makes), or returns
/// the one a crash left behind if its home is `home`.
pub(super) async fn add(name: &SliverName, home: &Path) -> Result<Account, NmError> {
    if let Some(existing) = lookup(name.as_str())? {
        if existing.home == home {
            return Ok(existing);
        }
        return Err(NmError::Permission(format!(
            "sliver {name}: a Unix account named {name} already exists (home {}) and is not \
             this sliver's; refusing to take it over",
            existing.home.display()
        )));
    }
    // Normal (not --system) users with their own group; the agent makes the home itself.
    run(
        name,
        "useradd",
        &[
            "--home-dir".as_ref(),
            home.as_os_str(),
            "--no-create-home".as_ref(),
            "--shell".as_ref(),
            "/bin/sh".as_ref(),
            "--user-group".as_ref(),
            name.as_str().as_ref(),
        ],
    )
    .await?;
    lookup(name.as_str())?.ok_or_else(|| NmError::Process {
        name: name.to_string(),
        message: "useradd succeeded but the account cannot be found".into(),
    })
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
    kill_uid(account.uid).await;
    let sliver = SliverName::parse(name)?;
    run(&sliver, "userdel", &[name.as_ref()]).await
}

/// SIGKILL to every process whose real or effective uid is `uid` (never root's or the
/// agent's own), a few rounds in case one forks meanwhile.
async fn kill_uid(uid: u32) {
    if uid == 0 || uid == own_ids().0 {
        return;
    }
    for _ in 0..10 {
        let pids = pids_of_uid(uid);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Live processes (not zombies) running with `uid` as real or effective uid.
fn pids_of_uid(uid: u32) -> Vec<u32> {
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

/// Runs `useradd` or `userdel` (from /usr/sbin or /sbin when there, for a PATH without them).
async fn run(name: &SliverName, tool: &str, args: &[&std::ffi::OsStr]) -> Result<(), NmError> {
    let program = ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(tool));
    let out = Command::new(&program)
        .args(args)
        .output()
        .await
        .map_err(|e| NmError::Process {
            name: name.to_string(),
            message: format!("cannot run {}: {e}", program.display()),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NmError::Process {
        name: name.to_string(),
        message: format!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}
