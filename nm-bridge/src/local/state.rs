//! The per-sliver state files `<state_dir>/state/<name>.json`: one small JSON document per sliver
//! (record, state, process identity, uid and gid), each replaced crash-safely on every change
//! of that sliver, so that an operation costs O(1) in the number of slivers. The uid counter
//! (`<state_dir>/uid-next`) lives beside them.
//!
//! [`write_atomic`] is the only way a file is written: temp file, fsync, rename over the old
//! file, fsync of the directory. After a crash a file is the old or the new version, never a
//! mixture; a leftover temp file is a write that was never acknowledged and is removed at open.
//! Removing a sliver unlinks its file and fsyncs the directory. [`Slivers::commit`] changes
//! memory only after the disk has the change, so what callers see is always what a restart
//! would load. [`lock_state_dir`] keeps a second agent off the directory. The single
//! `local-state.json` of earlier versions is split into per-sliver files at the first open and
//! then removed.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use geni_xmlrpc::{Struct, Value};
use serde::{Deserialize, Serialize};

use super::process::ProcId;
use crate::{NmError, Rspec, SliverName, SliverRecord, SliverState};

/// The directory of per-sliver state files, in the state directory.
pub(super) const STATE_DIR: &str = "state";
const V1_FILE: &str = "local-state.json";
const UID_FILE: &str = "uid-next";
const LOCK_FILE: &str = "local.lock";
const VERSION: u32 = 2;

/// One sliver as the manager knows it.
#[derive(Debug, Clone)]
pub(super) struct Sliver {
    pub(super) record: SliverRecord,
    pub(super) state: SliverState,
    /// The initscript's process-group leader: kept after it exits by itself so that a later
    /// stop can still end what it left running in its group.
    pub(super) proc: Option<ProcId>,
    /// Who the initscript runs as.
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Whether this backend made a Unix account for it (and so removes it on destroy).
    pub(super) account: bool,
}

/// All slivers, and where they are persisted.
#[derive(Debug)]
pub(super) struct Slivers {
    pub(super) map: BTreeMap<SliverName, Sliver>,
    /// `<state_dir>/state`: one `<name>.json` per sliver.
    dir: PathBuf,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`), written with each sliver: start
    /// times count from boot, so a process recorded in another boot is never this boot's.
    boot_id: String,
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Slivers {
    /// Loads every `<state_dir>/state/*.json` (none: no slivers), after removing temp files a
    /// crash left behind and migrating a version-1 `local-state.json`.
    pub(super) fn load(state_dir: &Path) -> Result<Self, NmError> {
        Self::load_in_boot(state_dir, boot_id())
    }

    fn load_in_boot(state_dir: &Path, boot_id: String) -> Result<Self, NmError> {
        let dir = state_dir.join(STATE_DIR);
        match DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(NmError::io(&dir, e));
            }
            _ => {}
        }
        let mut slivers = Self {
            map: BTreeMap::new(),
            dir,
            boot_id,
        };
        let entries = fs::read_dir(&slivers.dir).map_err(|e| NmError::io(&slivers.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| NmError::io(&slivers.dir, e))?;
            let path = entry.path();
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(|e| NmError::io(&path, e))?;
                tracing::info!(path = %path.display(), "Removed an unfinished state write");
                continue;
            }
            let Some(stem) = file_name.strip_suffix(".json") else {
                continue;
            };
            let bytes = fs::read(&path).map_err(|e| NmError::io(&path, e))?;
            let file: StoredFile = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(&path, format!("not a valid sliver state file: {e}")))?;
            if file.version != VERSION {
                return Err(invalid(
                    &path,
                    format!(
                        "sliver state file version {} (this agent reads {VERSION})",
                        file.version
                    ),
                ));
            }
            let rebooted = file.boot_id != slivers.boot_id;
            slivers.insert_loaded(stem, file.sliver, rebooted, &path)?;
        }
        slivers.migrate_v1(&state_dir.join(V1_FILE))?;
        Ok(slivers)
    }

    fn insert_loaded(
        &mut self,
        name: &str,
        stored: StoredSliver,
        rebooted: bool,
        path: &Path,
    ) -> Result<(), NmError> {
        let mut sliver = stored
            .into_sliver(name)
            .map_err(|e| invalid(path, format!("sliver {name}: {e}")))?;
        if rebooted {
            // Every recorded process died with the previous boot; its pid and start time
            // may match an unrelated process of this one.
            sliver.proc = None;
        }
        self.map.insert(sliver.record.name.clone(), sliver);
        Ok(())
    }

    /// Splits the one state file of version 1 into per-sliver files, then removes it. A crash
    /// half-way leaves the old file, and the next open does it again.
    fn migrate_v1(&mut self, v1: &Path) -> Result<(), NmError> {
        let _ = fs::remove_file(temp_path(v1));
        let bytes = match fs::read(v1) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(NmError::io(v1, e)),
        };
        let file: StoredFileV1 = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(v1, format!("not a valid state file: {e}")))?;
        if file.version != 1 {
            return Err(invalid(
                v1,
                format!("state file version {} (this agent reads 1)", file.version),
            ));
        }
        let rebooted = file.boot_id != self.boot_id;
        for (name, stored) in file.slivers {
            self.insert_loaded(&name, stored, rebooted, v1)?;
        }
        for (name, sliver) in &self.map {
            self.write(name, sliver)?;
        }
        fs::remove_file(v1).map_err(|e| NmError::io(v1, e))?;
        sync_dir(v1.parent().unwrap_or(Path::new(".")))?;
        tracing::info!(
            slivers = self.map.len(),
            "Split local-state.json into per-sliver state files"
        );
        Ok(())
    }

    fn path(&self, name: &SliverName) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn write(&self, name: &SliverName, sliver: &Sliver) -> Result<(), NmError> {
        let file = StoredFile {
            version: VERSION,
            boot_id: self.boot_id.clone(),
            sliver: StoredSliver::from(sliver),
        };
        let path = self.path(name);
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| NmError::io(&path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)
    }

    /// Sets (`Some`) or removes (`None`) one sliver, on disk first: when the write fails,
    /// memory keeps the old value and the error names the sliver.
    pub(super) fn commit(
        &mut self,
        name: &SliverName,
        value: Option<Sliver>,
    ) -> Result<(), NmError> {
        let result = match &value {
            Some(v) => self.write(name, v),
            None => {
                let path = self.path(name);
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NmError::io(&path, e)),
                    _ => sync_dir(&self.dir),
                }
            }
        };
        if let Err(e) = result {
            return Err(match e {
                NmError::Io { path, error } => NmError::io(
                    path,
                    io::Error::new(
                        error.kind(),
                        format!("recording the new state of sliver {name}: {error}"),
                    ),
                ),
                other => other,
            });
        }
        match value {
            Some(v) => self.map.insert(name.clone(), v),
            None => self.map.remove(name),
        };
        Ok(())
    }
}

fn invalid(path: &Path, what: String) -> NmError {
    NmError::io(path, io::Error::new(io::ErrorKind::InvalidData, what))
}

/// The uid counter `<state_dir>/uid-next`: the next uid to try when a sliver gets an account,
/// so that uids go round the whole range before one comes back (a freed uid is the last to be
/// reused, not the first). Missing or unreadable: None (start at the range's beginning).
pub(super) fn read_next_uid(state_dir: &Path) -> Option<u32> {
    fs::read_to_string(state_dir.join(UID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(super) fn write_next_uid(state_dir: &Path, uid: u32) -> Result<(), NmError> {
    write_atomic(&state_dir.join(UID_FILE), format!("{uid}\n").as_bytes())
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn sync_dir(dir: &Path) -> Result<(), NmError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NmError::io(dir, e))
}

/// Replaces `path` with `bytes` so that a crash at any point leaves the old or the new content:
/// write a temp file beside it, fsync it, rename it over `path`, fsync the directory (which
/// makes the rename itself durable). The file is created 0600: records hold users' keys.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NmError> {
    let tmp = temp_path(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(NmError::io(tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(NmError::io(path, e));
    }
    sync_dir(dir)
}

/// Takes the state directory's lock, waiting up to 5 s for a previous agent to finish exiting
/// (a restart may overlap it).
pub(super) async fn lock_state_dir(state_dir: &Path) -> Result<File, NmError> {
    let path = state_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| NmError::io(&path, e))?;
    for _ in 0..50 {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(fs::TryLockError::Error(e)) => return Err(NmError::io(&path, e)),
        }
    }
    Err(NmError::Permission(format!(
        "another agent is using the state directory {} (it holds {LOCK_FILE})",
        state_dir.display()
    )))
}

// === the JSON shape ===

/// `state/<name>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct StoredFile {
    version: u32,
    #[serde(default)]
    boot_id: String,
    sliver: StoredSliver,
}

/// Version 1's `local-state.json`, read once to migrate it.
#[derive(Debug, Deserialize)]
struct StoredFileV1 {
    version: u32,
    #[serde(default)]
    boot_id: String,
    slivers: BTreeMap<String, StoredSliver>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSliver {
    record: StoredRecord,
    state: StoredState,
    /// Process-group leader, with its start time (field 22 of `/proc/<pid>/stat`).
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    start_time: Option<u64>,
    uid: u32,
    gid: u32,
    #[serde(default)]
    account: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredState {
    Created,
    Running,
    Stopped,
    Exited,
}

/// [`SliverRecord`] without its name (the key) and with the rspec as plain values: the record
/// type itself is the crate's contract and carries no serde.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRecord {
    slice_id: Option<i64>,
    instantiation: String,
    keys: Vec<String>,
    initscript: String,
    vref: String,
    timestamp: f64,
    expires: i64,
    rspec: BTreeMap<String, StoredValue>,
    caller: String,
    /// Absent in state written before slivers were bound to their slice.
    #[serde(default)]
    slice: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum StoredValue {
    Int(i64),
    Str(String),
}

impl From<&Sliver> for StoredSliver {
    fn from(s: &Sliver) -> Self {
        let r = &s.record;
        let rspec = r
            .rspec
            .to_struct()
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Int(i) => Some((k.to_owned(), StoredValue::Int(*i))),
                Value::String(t) => Some((k.to_owned(), StoredValue::Str(t.clone()))),
                // to_struct only makes ints and strings.
                _ => None,
            })
            .collect();
        Self {
            record: StoredRecord {
                slice_id: r.slice_id,
                instantiation: r.instantiation.clone(),
                keys: r.keys.clone(),
                initscript: r.initscript.clone(),
                vref: r.vref.clone(),
                timestamp: r.timestamp,
                expires: r.expires,
                rspec,
                caller: r.caller.clone(),
                slice: r.slice.clone(),
            },
            state: match s.state {
                SliverState::Created => StoredState::Created,
                SliverState::Running => StoredState::Running,
                SliverState::Stopped => StoredState::Stopped,
                SliverState::Exited => StoredState::Exited,
            },
            pid: s.proc.map(|p| p.pid),
            start_time: s.proc.map(|p| p.start_time),
            uid: s.uid,
            gid: s.gid,
            account: s.account,
        }
    }
}

impl StoredSliver {
    fn into_sliver(self, name: &str) -> Result<Sliver, NmError> {
        let r = self.record;
        // Rspec::from_ticket rebuilds exactly what to_struct took apart: defaults by key,
        // everything else as tags.
        let rspec: Struct = r
            .rspec
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    StoredValue::Int(i) => Value::Int(i),
                    StoredValue::Str(s) => Value::String(s),
                };
                (k, v)
            })
            .collect();
        let record = SliverRecord {
            name: SliverName::parse(name)?,
            slice_id: r.slice_id,
            instantiation: r.instantiation,
            keys: r.keys,
            initscript: r.initscript,
            vref: r.vref,
            timestamp: r.timestamp,
            expires: r.expires,
            rspec: Rspec::from_ticket(&rspec)?,
            caller: r.caller,
            slice: r.slice,
        };
        let proc = match (self.pid, self.start_time) {
            (Some(pid), Some(start_time)) => Some(ProcId { pid, start_time }),
            _ => None,
        };
        Ok(Sliver {
            record,
            state: match self.state {
                StoredState::Created => SliverState::Created,
                StoredState::Running => SliverState::Running,
                StoredState::Stopped => SliverState::Stopped,
                StoredState::Exited => SliverState::Exited,
            },
            proc,
            uid: self.uid,
            gid: self.gid,
            account: self.account,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sliver() -> Sliver {
        let attrs = Struct::new()
            .with("name", "pl_state")
            .with("timestamp", Value::Double(12.5))
            .with("initscript", "#!/bin/sh\necho hi\n")
            .with(
                "keys",
                Value::Array(vec![Value::from("ssh-rsa A a@b"), Value::from("ssh-rsa B")]),
            );
        let rspec = Struct::new().with("cpu_share", "7").with("x_tag", "v");
        Sliver {
            record: SliverRecord::from_ticket(&attrs, &rspec, 99, "plc.alice").unwrap(),
            state: SliverState::Running,
            proc: Some(ProcId {
                pid: 42,
                start_time: 4242,
            }),
            uid: 1000,
            gid: 1001,
            account: true,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_then_load_gives_the_same_slivers_one_file_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Slivers::load(dir.path()).unwrap();
        let one = sliver();
        let name = one.record.name.clone();
        s.commit(&name, Some(one.clone())).unwrap();
        let mut two = sliver();
        two.record.name = SliverName::parse("pl_other").unwrap();
        s.commit(&two.record.name.clone(), Some(two)).unwrap();
        let state = dir.path().join(STATE_DIR);
        assert_eq!(files(&state), ["pl_other.json", "pl_state.json"]);
        let back = Slivers::load(dir.path()).unwrap();
        let got = &back.map[&name];
        assert_eq!(got.record, one.record);
        assert_eq!(got.state, one.state);
        assert_eq!(got.proc, one.proc);
        assert_eq!((got.uid, got.gid, got.account), (1000, 1001, true));
        s.commit(&name, None).unwrap();
        assert_eq!(files(&state), ["pl_other.json"]);
        assert_eq!(Slivers::load(dir.path()).unwrap().map.len(), 1);
    }

    #[test]
    fn a_failed_write_keeps_memory_unchanged_and_names_the_sliver() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Slivers::load(dir.path()).unwrap();
        // A directory where the sliver's file should be: rename over it fails.
        let path = dir.path().join(STATE_DIR).join("pl_state.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), "x").unwrap();
        let one = sliver();
        let e = s
            .commit(&one.record.name.clone(), Some(one))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pl_state"), "{e}");
        assert!(s.map.is_empty());
        assert!(
            !dir.path()
                .join(STATE_DIR)
                .join("pl_state.json.tmp")
                .exists()
        );
    }

    #[test]
    fn processes_recorded_in_another_boot_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Slivers::load_in_boot(dir.path(), "boot-a".into()).unwrap();
        let one = sliver();
        let name = one.record.name.clone();
        s.commit(&name, Some(one)).unwrap();
        let same = Slivers::load_in_boot(dir.path(), "boot-a".into()).unwrap();
        assert!(same.map[&name].proc.is_some());
        let after_reboot = Slivers::load_in_boot(dir.path(), "boot-b".into()).unwrap();
        assert_eq!(after_reboot.map[&name].proc, None);
        assert_eq!(after_reboot.map[&name].state, SliverState::Running);
    }

    #[test]
    fn a_leftover_temp_file_is_removed_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(STATE_DIR);
        fs::create_dir(&state).unwrap();
        fs::write(state.join("pl_x.json.tmp"), b"{\"version\":2,\"sli").unwrap();
        let s = Slivers::load(dir.path()).unwrap();
        assert!(s.map.is_empty());
        assert!(files(&state).is_empty());
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_node() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(STATE_DIR);
        fs::create_dir(&state).unwrap();
        fs::write(state.join("pl_x.json"), b"{not json").unwrap();
        let e = Slivers::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a valid sliver state file"), "{e}");
    }

    /// The one file of version 1 becomes one file per sliver, and is gone.
    #[test]
    fn a_version_1_state_file_is_split_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let one = sliver();
        let v1 = serde_json::json!({
            "version": 1,
            "boot_id": boot_id(),
            "slivers": { "pl_state": StoredSliver::from(&one) },
        });
        fs::write(dir.path().join(V1_FILE), v1.to_string()).unwrap();
        let s = Slivers::load(dir.path()).unwrap();
        assert_eq!(s.map[&one.record.name].record, one.record);
        assert_eq!(s.map[&one.record.name].proc, one.proc);
        assert!(!dir.path().join(V1_FILE).exists());
        assert_eq!(files(&dir.path().join(STATE_DIR)), ["pl_state.json"]);
        let again = Slivers::load(dir.path()).unwrap();
        assert_eq!(again.map[&one.record.name].record, one.record);
    }

    #[test]
    fn the_uid_counter_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_next_uid(dir.path()), None);
        write_next_uid(dir.path(), 600_123).unwrap();
        assert_eq!(read_next_uid(dir.path()), Some(600_123));
    }
}
