//! The backend's own record of the slivers it redeemed into NodeManager: one file per sliver in
//! the state directory, written crash-safely (temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old record or the new one, never a torn one.
//!
//! NM cannot be relied on to remember what it was given: its PLC sync removes locally delivered
//! records that PLC does not list (`reference/nodemanager.md` §3.5), and NM7 starts with an empty
//! database after a restart (§2.3). This store is what the reconcile loop re-delivers from, what
//! `create` applies NM's newer-timestamp rule against, and where `list` and `status` find the
//! ticket's timestamp and expiry. Files are XML-RPC documents, the codec this crate already uses,
//! and stay readable by hand.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use geni_xmlrpc::{Limits, MethodResponse, Struct, Value};

use crate::{NmError, Rspec, SliverName, SliverRecord, SliverState};

const SUFFIX: &str = ".xml";
const TEMP_SUFFIX: &str = ".xml.tmp";

/// One redeemed sliver.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    /// As redeemed; its timestamp is the ticket's.
    pub(super) record: SliverRecord,
    /// The timestamp of the last delivery to NM (see `NodeManagerBackend::deliver`).
    pub(super) delivered: f64,
    /// What the last successful call made of it; NM has no call that reports it.
    pub(super) state: SliverState,
}

/// The state directory.
#[derive(Debug, Clone)]
pub(super) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating, mode 0700) `dir` and reads every record in it. A leftover temporary file
    /// is the half of a write a crash interrupted: the record before it is still whole, so the
    /// temporary file is removed.
    pub(super) fn open(dir: &Path) -> Result<(Self, BTreeMap<SliverName, Stored>), NmError> {
        fs::create_dir_all(dir).map_err(|e| NmError::io(dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| NmError::io(dir, e))?;
        let mut slivers = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(|e| NmError::io(dir, e))? {
            let path = entry.map_err(|e| NmError::io(dir, e))?.path();
            let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if file.ends_with(TEMP_SUFFIX) {
                fs::remove_file(&path).map_err(|e| NmError::io(&path, e))?;
            } else if file.ends_with(SUFFIX) {
                let stored = read(&path)?;
                slivers.insert(stored.record.name.clone(), stored);
            }
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
            },
            slivers,
        ))
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `stored` so that it survives a crash once this returns.
    pub(super) fn save(&self, stored: &Stored) -> Result<(), NmError> {
        let name = stored.record.name.as_str();
        let path = self.dir.join(format!("{name}{SUFFIX}"));
        let temp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let text = geni_xmlrpc::write_method_response(&MethodResponse::Success(Value::Struct(
            encode(stored),
        )))
        .map_err(|e| NmError::InvalidRecord(format!("sliver {name} cannot be stored: {e}")))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| NmError::io(&temp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| NmError::io(&temp, e))?;
        drop(file);
        fs::rename(&temp, &path).map_err(|e| NmError::io(&path, e))?;
        self.sync_dir()
    }

    /// Forgets a sliver; forgetting one that is not stored succeeds.
    pub(super) fn remove(&self, name: &SliverName) -> Result<(), NmError> {
        let path = self.dir.join(format!("{name}{SUFFIX}"));
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NmError::io(&path, e)),
        }
    }

    /// Makes a rename or removal in the directory durable.
    fn sync_dir(&self) -> Result<(), NmError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| NmError::io(&self.dir, e))
    }
}

fn read(path: &Path) -> Result<Stored, NmError> {
    let bad = |why: String| {
        NmError::InvalidRecord(format!(
            "state file {} is unreadable ({why}); move it away to start without that sliver",
            path.display()
        ))
    };
    let text = fs::read_to_string(path).map_err(|e| NmError::io(path, e))?;
    match geni_xmlrpc::parse_method_response(&text, &Limits::default()) {
        Ok(MethodResponse::Success(Value::Struct(s))) => decode(&s).map_err(bad),
        Ok(_) => Err(bad("not a record".to_owned())),
        Err(e) => Err(bad(e.to_string())),
    }
}

fn encode(stored: &Stored) -> Struct {
    let r = &stored.record;
    let mut s = Struct::new().with("name", r.name.as_str());
    if let Some(id) = r.slice_id {
        s.insert("slice_id", id);
    }
    s.with("instantiation", r.instantiation.as_str())
        .with(
            "keys",
            Value::Array(r.keys.iter().map(|k| Value::from(k.as_str())).collect()),
        )
        .with("initscript", r.initscript.as_str())
        .with("vref", r.vref.as_str())
        .with("timestamp", Value::Double(r.timestamp))
        .with("expires", r.expires)
        .with("rspec", r.rspec.to_struct())
        .with("caller", r.caller.as_str())
        .with("slice", r.slice.as_str())
        .with("delivered", Value::Double(stored.delivered))
        .with("state", stored.state.to_string())
}

fn decode(s: &Struct) -> Result<Stored, String> {
    let text = |key: &str| {
        s.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{key} is not a string"))
    };
    let number = |key: &str| match s.get(key) {
        Some(Value::Double(d)) => Ok(*d),
        #[allow(clippy::cast_precision_loss)]
        Some(Value::Int(i)) => Ok(*i as f64),
        _ => Err(format!("{key} is not a number")),
    };
    let keys = s
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("keys is not a list")?
        .iter()
        .map(|k| k.as_str().map(str::to_owned).ok_or("a key is not a string"))
        .collect::<Result<_, _>>()?;
    let rspec = s
        .get("rspec")
        .and_then(Value::as_struct)
        .ok_or("rspec is not a struct")?;
    let state = match text("state")?.as_str() {
        "created" => SliverState::Created,
        "running" => SliverState::Running,
        "stopped" => SliverState::Stopped,
        "exited" => SliverState::Exited,
        other => return Err(format!("unknown state {other:?}")),
    };
    let record = SliverRecord {
        name: SliverName::parse(&text("name")?).map_err(|e| e.to_string())?,
        slice_id: s.get("slice_id").and_then(Value::as_i64),
        instantiation: text("instantiation")?,
        keys,
        initscript: text("initscript")?,
        vref: text("vref")?,
        timestamp: number("timestamp")?,
        expires: s
            .get("expires")
            .and_then(Value::as_i64)
            .ok_or("expires is not an integer")?,
        rspec: Rspec::from_ticket(rspec).map_err(|e| e.to_string())?,
        caller: text("caller")?,
        // Absent in state written before slivers were bound to their slice.
        slice: text("slice").unwrap_or_default(),
    };
    Ok(Stored {
        record,
        delivered: number("delivered")?,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_round_trip_and_a_torn_write_is_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let (store, empty) = Store::open(dir.path()).unwrap();
        assert!(empty.is_empty());
        let stored = Stored {
            record: SliverRecord {
                name: SliverName::parse("pl_demo").unwrap(),
                slice_id: None,
                instantiation: "delegated".into(),
                keys: vec!["ssh-rsa AAAA a@b".into(), "ssh-ed25519 BBBB c@d".into()],
                initscript: "#!/bin/sh\n".into(),
                vref: "default".into(),
                timestamp: 1_227_612_345.5,
                expires: 3_000_000_000,
                rspec: Rspec::from_ticket(&Struct::new().with("cpu_share", "9").with("t", "x"))
                    .unwrap(),
                caller: "plc.pl.alice".into(),
                slice: "plc.pl.demo".into(),
            },
            delivered: 1_700_000_000.25,
            state: SliverState::Stopped,
        };
        store.save(&stored).unwrap();
        fs::write(dir.path().join("pl_other.xml.tmp"), "torn").unwrap();
        let (_, loaded) = Store::open(dir.path()).unwrap();
        let back = &loaded[&stored.record.name];
        assert_eq!(back.record, stored.record);
        assert_eq!(back.delivered.to_bits(), stored.delivered.to_bits());
        assert_eq!(back.state, SliverState::Stopped);
        assert!(!dir.path().join("pl_other.xml.tmp").exists());
        store.remove(&stored.record.name).unwrap();
        store.remove(&stored.record.name).unwrap();
        assert!(Store::open(dir.path()).unwrap().1.is_empty());
    }
}
