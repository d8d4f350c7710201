//! A sliver's home directory, `<state_dir>/slivers/<name>/`, and the files the agent keeps in it.
//!
//! ```text
//! <name>/                  0700: the account's home and the initscript's working directory
//!   .ssh/                  0700
//!   .ssh/authorized_keys   0600: the ticket's keys, one per line
//!   initscript             0700: the record's initscript body
//!   initscript.log         its stdout and stderr, appended (opened by the initscript's wrapper)
//! ```
//!
//! Private: with one uid per sliver, no other sliver can list, read or write any of it (the
//! slivers directory above is 0711, root's). Everything belongs to the sliver's uid, so a
//! sliver may rename, replace or symlink anything
//! in its home. The agent, often root, therefore never follows a path inside a home: it opens
//! the home (whose parent is the agent's) without following symlinks and does every further
//! step relative to that directory descriptor (`mkdirat`, `openat` with `O_NOFOLLOW`, `renameat`),
//! and it never opens anything there for writing except its own fresh temp files. A sliver
//! can break its own home, never make the agent write elsewhere.
//!
//! These files are derived from the record in the state file and rewritten from it at open, so
//! they need no fsync of their own.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};

use crate::{NmError, SliverRecord};

/// The paths of one sliver's home.
#[derive(Debug, Clone)]
pub(super) struct Home {
    pub(super) dir: PathBuf,
}

impl Home {
    pub(super) fn new(slivers_dir: &Path, name: &str) -> Self {
        Self {
            dir: slivers_dir.join(name),
        }
    }

    pub(super) fn initscript(&self) -> PathBuf {
        self.dir.join("initscript")
    }

    /// Makes whatever is missing and brings `.ssh/authorized_keys` and `initscript` to the
    /// record's content, owned by `owner` (uid, gid; None: left to the agent, which is not root
    /// or runs the sliver as itself). Files already right are not rewritten.
    pub(super) fn write(
        &self,
        record: &SliverRecord,
        owner: Option<(u32, u32)>,
    ) -> Result<(), NmError> {
        let mut keys = record.keys.join("\n");
        if !keys.is_empty() {
            keys.push('\n');
        }
        let at = |what: &str, e: io::Error| NmError::io(self.dir.join(what), e);
        match DirBuilder::new().mode(0o700).create(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(NmError::io(&self.dir, e));
            }
            _ => {}
        }
        let home = open(&self.dir, dir_flags(), Mode::empty()).map_err(|e| at("", e.into()))?;
        set_meta(&home, 0o700, owner).map_err(|e| at("", e))?;
        let ssh = dir_at(&home, ".ssh", 0o700, owner).map_err(|e| at(".ssh", e))?;
        file_at(&ssh, "authorized_keys", keys.as_bytes(), 0o600, owner)
            .map_err(|e| at(".ssh/authorized_keys", e))?;
        file_at(
            &home,
            "initscript",
            record.initscript.as_bytes(),
            0o700,
            owner,
        )
        .map_err(|e| at("initscript", e))
    }

    /// Removes the whole home (std removes symlinks inside, never follows them).
    pub(super) fn remove(&self) -> Result<(), NmError> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NmError::io(&self.dir, e)),
            _ => Ok(()),
        }
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits)
}

/// Sets mode and owner of an open file or directory when they differ.
fn set_meta(fd: &OwnedFd, bits: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let st = fstat(fd)?;
    if st.st_mode & 0o7777 != bits {
        fchmod(fd, mode(bits))?;
    }
    if let Some((uid, gid)) = owner
        && (st.st_uid, st.st_gid) != (uid, gid)
    {
        fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    }
    Ok(())
}

/// Opens directory `name` in `parent`, making it if missing and replacing whatever non-directory
/// (a symlink, say) the sliver put there.
fn dir_at(
    parent: &OwnedFd,
    name: &str,
    bits: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<OwnedFd> {
    match mkdirat(parent, name, mode(bits)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = match openat(parent, name, dir_flags(), Mode::empty()) {
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)?;
            mkdirat(parent, name, mode(bits))?;
            openat(parent, name, dir_flags(), Mode::empty())?
        }
        other => other?,
    };
    set_meta(&fd, bits, owner)?;
    Ok(fd)
}

/// Replaces `name` in `dir` through a fresh temp file and `renameat` (readers never see half a
/// file; a symlink at `name` is replaced, not followed), unless it already is a regular file
/// with this content, mode and owner.
fn file_at(
    dir: &OwnedFd,
    name: &str,
    content: &[u8],
    bits: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    if is_already(dir, name, content, bits, owner) {
        return Ok(());
    }
    let tmp = format!(".{name}.tmp");
    match unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, tmp.as_str(), flags, mode(bits))?;
    let written = (|| {
        set_meta(&fd, bits, owner)?;
        File::from(fd).write_all(content)?;
        renameat(dir, tmp.as_str(), dir, name)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// Whether `name` is a regular file with exactly this content, mode and owner. Opened
/// non-blocking and checked before reading: a sliver may have put a FIFO or a huge file there.
fn is_already(
    dir: &OwnedFd,
    name: &str,
    content: &[u8],
    bits: u32,
    owner: Option<(u32, u32)>,
) -> bool {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    let Ok(st) = fstat(&fd) else {
        return false;
    };
    let regular = st.st_mode & S_IFMT == S_IFREG;
    let right_owner = owner.is_none_or(|(u, g)| (st.st_uid, st.st_gid) == (u, g));
    if !regular || st.st_mode & 0o7777 != bits || !right_owner {
        return false;
    }
    if u64::try_from(st.st_size).ok() != u64::try_from(content.len()).ok() {
        return false;
    }
    let mut old = Vec::with_capacity(content.len());
    File::from(fd).read_to_end(&mut old).is_ok() && old == content
}

// File type bits of st_mode (stat(2)).
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use geni_xmlrpc::{Struct, Value};
    use std::os::unix::fs::{MetadataExt, symlink};

    fn record() -> SliverRecord {
        let attrs = Struct::new()
            .with("name", "pl_files")
            .with("timestamp", Value::Double(1.0))
            .with("initscript", "#!/bin/sh\n")
            .with(
                "keys",
                Value::Array(vec![Value::from("k1"), Value::from("k2")]),
            );
        SliverRecord::from_ticket(&attrs, &Struct::new(), 0, "x").unwrap()
    }

    #[test]
    fn files_get_their_modes_and_are_rewritten_only_when_they_differ() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path(), "pl_files");
        let mut record = record();
        home.write(&record, None).unwrap();
        let meta = |p: &str| fs::symlink_metadata(home.dir.join(p)).unwrap();
        assert_eq!(meta("").mode() & 0o7777, 0o700);
        assert_eq!(meta(".ssh").mode() & 0o7777, 0o700);
        assert_eq!(meta(".ssh/authorized_keys").mode() & 0o7777, 0o600);
        assert_eq!(meta("initscript").mode() & 0o7777, 0o700);
        let keys = home.dir.join(".ssh/authorized_keys");
        assert_eq!(fs::read_to_string(&keys).unwrap(), "k1\nk2\n");
        let inode = meta("initscript").ino();
        home.write(&record, None).unwrap();
        assert_eq!(
            meta("initscript").ino(),
            inode,
            "rewritten although unchanged"
        );
        record.keys = vec!["k3".into()];
        home.write(&record, None).unwrap();
        assert_eq!(fs::read_to_string(&keys).unwrap(), "k3\n");
        home.remove().unwrap();
        assert!(!home.dir.exists());
        home.remove().unwrap();
    }

    /// A sliver that points its `.ssh` and `initscript` elsewhere gets them replaced; the
    /// targets are never written.
    #[test]
    fn symlinks_planted_in_a_home_are_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("authorized_keys"), "victim\n").unwrap();
        fs::write(elsewhere.join("target"), "victim\n").unwrap();
        let home = Home::new(dir.path(), "pl_files");
        fs::create_dir(&home.dir).unwrap();
        symlink(&elsewhere, home.dir.join(".ssh")).unwrap();
        symlink(elsewhere.join("target"), home.dir.join("initscript")).unwrap();
        home.write(&record(), None).unwrap();
        assert_eq!(
            fs::read_to_string(elsewhere.join("authorized_keys")).unwrap(),
            "victim\n"
        );
        assert_eq!(
            fs::read_to_string(elsewhere.join("target")).unwrap(),
            "victim\n"
        );
        assert!(
            fs::symlink_metadata(home.dir.join(".ssh"))
                .unwrap()
                .is_dir()
        );
        assert_eq!(
            fs::read_to_string(home.dir.join(".ssh/authorized_keys")).unwrap(),
            "k1\nk2\n"
        );
        assert_eq!(
            fs::read_to_string(home.initscript()).unwrap(),
            "#!/bin/sh\n"
        );
    }
}
