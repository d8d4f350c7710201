//! Tombstones: what a deleted or expired sliver leaves behind so that its tickets cannot bring it
//! back. One small file per slice (`<state dir>/tombstones/<sha256 of the slice hrn>.json`:
//! slice hrn, sliver name, the newest ticket timestamp the sliver had, and that ticket's expiry),
//! written crash-safely before the sliver is destroyed and kept until that expiry, after which
//! `redeem_ticket` refuses the ticket as expired anyway. A ticket for that slice is then refused unless it is strictly
//! newer than the tombstone: a researcher removed from a slice cannot redeem an older ticket and
//! get the sliver back, while a newly issued ticket renews the slice as usual.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use geni_trust::Hrn;
use nm_bridge::{NmError, SliverStatus};
use serde::{Deserialize, Serialize};

/// The tombstones of this node, on disk and in memory.
#[derive(Debug)]
pub(crate) struct Tombstones {
    dir: PathBuf,
    by_slice: Mutex<HashMap<String, Tombstone>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tombstone {
    slice: String,
    sliver: String,
    timestamp: f64,
    expires: i64,
}

impl Tombstones {
    /// Reads `dir` (made 0700 if missing, in a state directory that must exist: its mode is the
    /// backend's business, since sliver accounts walk through it to their homes); files that
    /// cannot be read are logged and left alone, and leftovers of an interrupted write are
    /// removed.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("creating the tombstones directory {}", dir.display())
                });
            }
        }
        let mut by_slice = HashMap::new();
        let entries = fs::read_dir(dir)
            .with_context(|| format!("reading the tombstones directory {}", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading the tombstones directory {}", dir.display()))?
                .path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => match read(&path) {
                    Ok(t) => {
                        by_slice.insert(t.slice.clone(), t);
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "Unreadable tombstone kept aside")
                    }
                },
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                }
                _ => {}
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            by_slice: Mutex::new(by_slice),
        })
    }

    /// Refuses a ticket for `slice` that is not newer than the slice's live tombstone.
    pub(crate) fn check(&self, slice: &Hrn, timestamp: f64, now: i64) -> Result<(), String> {
        let map = self.by_slice.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(slice.as_str()) {
            Some(t) if t.expires >= now && timestamp <= t.timestamp => Err(format!(
                "the ticket for slice {slice} (timestamp {timestamp}) is not newer than its sliver \
                 {} that was deleted (ticket timestamp {}); a deleted sliver comes back only with a \
                 newly issued ticket",
                t.sliver, t.timestamp
            )),
            _ => Ok(()),
        }
    }

    /// Records that the sliver `status` describes is going away. Durable before it returns.
    pub(crate) fn bury(&self, status: &SliverStatus) -> Result<(), NmError> {
        let t = Tombstone {
            slice: status.slice.clone(),
            sliver: status.name.to_string(),
            timestamp: status.timestamp,
            expires: status.expires,
        };
        let bytes = serde_json::to_vec(&t)
            .map_err(|e| NmError::InvalidRecord(format!("tombstone of {}: {e}", t.sliver)))?;
        nm_bridge::local::write_atomic(&self.path(&t.slice), &bytes)?;
        self.by_slice
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(t.slice.clone(), t);
        Ok(())
    }

    /// Undoes [`Tombstones::bury`] when the sliver could not be destroyed after all.
    pub(crate) fn unbury(&self, slice: &str) {
        self.by_slice
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(slice);
        let path = self.path(slice);
        if let Err(e) = fs::remove_file(&path) {
            tracing::error!(path = %path.display(), error = %e, "Could not remove a tombstone while undoing a failed delete; it only refuses tickets not newer than the sliver's own record");
        }
    }

    /// Forgets tombstones whose ticket has expired (it no longer verifies anyway).
    pub(crate) fn prune(&self, now: i64) {
        let mut map = self.by_slice.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|slice, t| {
            if t.expires >= now {
                return true;
            }
            let path = self.path(slice);
            match fs::remove_file(&path) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "Cannot remove an expired tombstone");
                    true
                }
            }
        });
    }

    fn path(&self, slice: &str) -> PathBuf {
        let digest = openssl::sha::sha256(slice.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.json"))
    }
}

fn read(path: &Path) -> anyhow::Result<Tombstone> {
    let bytes = fs::read(path)?;
    Ok(serde_json::from_slice(&bytes)?)
}
