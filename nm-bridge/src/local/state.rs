//! The state file `<state_dir>/local-state.json`: every sliver's record, state, process
//! identity, uid and gid, as one JSON document that is replaced crash-safely on every change.
//!
//! [`write_atomic`] is the only way the file is written: temp file, fsync, rename over the old
//! file, fsync of the directory. After a crash the file is the old or the new version, never a
//! mixture; a leftover temp file is a write that was never acknowledged and is removed at open.
//! [`Slivers::commit`] changes memory only after the disk has the change, so what callers see
//! is always what a restart would load. [`lock_state_dir`] keeps a second agent off the file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use geni_xmlrpc::{Struct, Value};
use serde::{Deserialize, Serialize};

use super::process::ProcId;
use crate::{NmError, Rspec, SliverName, SliverRecord, SliverState};

pub(super) const STATE_FILE: &str = "local-state.json";
const LOCK_FILE: &str = "local.lock";
const VERSION: u32 = 1;

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
    path: PathBuf,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`), written with the state: start times
    /// count from boot, so a process recorded in another boot is never this boot's process.
    boot_id: String,
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Slivers {
    /// Loads `path` (no file: no slivers), after removing a temp file a crash left behind.
    pub(super) fn load(path: PathBuf) -> Result<Self, NmError> {
        Self::load_in_boot(path, boot_id())
    }

    fn load_in_boot(path: PathBuf, boot_id: String) -> Result<Self, NmError> {
        let tmp = temp_path(&path);
        match fs::remove_file(&tmp) {
            Ok(()) => tracing::info!(path = %tmp.display(), "Removed an unfinished state write"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(NmError::io(tmp, e)),
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    map: BTreeMap::new(),
                    path,
                    boot_id,
                });
            }
            Err(e) => return Err(NmError::io(path, e)),
        };
        let invalid =
            |what: String| NmError::io(&path, io::Error::new(io::ErrorKind::InvalidData, what));
        let file: StoredFile = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("not a valid state file: {e}")))?;
        if file.version != VERSION {
            return Err(invalid(format!(
                "state file version {} (this agent reads {VERSION})",
                file.version
            )));
        }
        let rebooted = file.boot_id != boot_id;
        let mut map = BTreeMap::new();
        for (name, stored) in file.slivers {
            let mut sliver = stored
                .into_sliver(&name)
                .map_err(|e| invalid(format!("sliver {name}: {e}")))?;
            if rebooted {
                // Every recorded process died with the previous boot; its pid and start time
                // may match an unrelated process of this one.
                sliver.proc = None;
            }
            map.insert(sliver.record.name.clone(), sliver);
        }
        Ok(Self { map, path, boot_id })
    }

    /// Sets (`Some`) or removes (`None`) one sliver, on disk first: when the write fails,
    /// memory keeps the old value and the error names the sliver.
    pub(super) fn commit(
        &mut self,
        name: &SliverName,
        value: Option<Sliver>,
    ) -> Result<(), NmError> {
        let old = match value {
            Some(v) => self.map.insert(name.clone(), v),
            None => self.map.remove(name),
        };
        let result = self
            .encode()
            .and_then(|bytes| write_atomic(&self.path, &bytes));
        if let Err(e) = result {
            match old {
                Some(o) => self.map.insert(name.clone(), o),
                None => self.map.remove(name),
            };
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
        Ok(())
    }

    fn encode(&self) -> Result<Vec<u8>, NmError> {
        let file = StoredFile {
            version: VERSION,
            boot_id: self.boot_id.clone(),
            slivers: self
                .map
                .iter()
                .map(|(n, s)| (n.as_str().to_owned(), StoredSliver::from(s)))
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| NmError::io(&self.path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
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
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NmError::io(dir, e))
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

#[derive(Debug, Serialize, Deserialize)]
struct StoredFile {
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

    #[test]
    fn commit_then_load_gives_the_same_slivers_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let mut s = Slivers::load(path.clone()).unwrap();
        let one = sliver();
        let name = one.record.name.clone();
        s.commit(&name, Some(one.clone())).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STATE_FILE]);
        let back = Slivers::load(path.clone()).unwrap();
        let got = &back.map[&name];
        assert_eq!(got.record, one.record);
        assert_eq!(got.state, one.state);
        assert_eq!(got.proc, one.proc);
        assert_eq!((got.uid, got.gid, got.account), (1000, 1001, true));
        s.commit(&name, None).unwrap();
        assert!(Slivers::load(path).unwrap().map.is_empty());
    }

    #[test]
    fn a_failed_write_keeps_memory_unchanged_and_names_the_sliver() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the state file should be: rename over it fails.
        let path = dir.path().join(STATE_FILE);
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), "x").unwrap();
        let mut s = Slivers {
            map: BTreeMap::new(),
            path,
            boot_id: boot_id(),
        };
        let one = sliver();
        let e = s
            .commit(&one.record.name.clone(), Some(one))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pl_state"), "{e}");
        assert!(s.map.is_empty());
        assert!(!dir.path().join("local-state.json.tmp").exists());
    }

    #[test]
    fn processes_recorded_in_another_boot_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let mut s = Slivers::load_in_boot(path.clone(), "boot-a".into()).unwrap();
        let one = sliver();
        let name = one.record.name.clone();
        s.commit(&name, Some(one)).unwrap();
        let same = Slivers::load_in_boot(path.clone(), "boot-a".into()).unwrap();
        assert!(same.map[&name].proc.is_some());
        let after_reboot = Slivers::load_in_boot(path, "boot-b".into()).unwrap();
        assert_eq!(after_reboot.map[&name].proc, None);
        assert_eq!(after_reboot.map[&name].state, SliverState::Running);
    }

    #[test]
    fn a_leftover_temp_file_is_removed_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        write_atomic(&path, br#"{"version":1,"slivers":{}}"#).unwrap();
        fs::write(temp_path(&path), b"{\"version\":1,\"sli").unwrap();
        let s = Slivers::load(path.clone()).unwrap();
        assert!(s.map.is_empty());
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        fs::write(&path, b"{not json").unwrap();
        let e = Slivers::load(path).unwrap_err().to_string();
        assert!(e.contains("not a valid state file"), "{e}");
    }
}
