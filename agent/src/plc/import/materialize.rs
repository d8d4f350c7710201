//! Making what a [`Plan`](super::plan::Plan) says: the authorities on disk, then one GID per
//! record, signed by the record's authority.
//!
//! This is where the import spends its time: every new authority needs a fresh RSA key (2048
//! bits: about 0.2 s each on one core here), and every GID an RSA signature. Both are independent
//! per object, so they run on every core; authorities go level by level, because a child is
//! signed by its parent.
//!
//! Records with no key of their own (every slice and node, users without a usable SSH key) get
//! a key whose private half nobody keeps, as in 2008, which generated one per record and threw it
//! away. By default one such key serves the whole run ([`UnownedKeys::SharedPerRun`]): it is
//! made in memory and dropped when the GIDs are signed, so nobody can act with it, exactly as
//! nobody could with 2008's; sharing its public half gives no one anything, and it saves a key
//! generation per record (about 27 minutes of CPU for a PlanetLab-sized import).
//! [`UnownedKeys::PerRecord`] makes one per record, as 2008 did.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use geni_trust::{AuthorityInfo, Gid, Hierarchy, Hrn, Keypair, RecordType, TrustError};

use super::Progress;
use super::plan::{KeySource, PlannedRecord};

/// A record ready for the registry.
#[derive(Debug, Clone)]
pub(crate) struct NewRecord {
    pub(crate) hrn: Hrn,
    pub(crate) kind: RecordType,
    pub(crate) pointer: i64,
    pub(crate) gid: Gid,
}

/// Where records without a key of their own get one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum UnownedKeys {
    /// One key per run, dropped after signing (see the module text).
    #[default]
    SharedPerRun,
    /// A key per record, as 2008 made them.
    PerRecord,
}

/// Creates `authorities` (parents before children, as planned), in parallel within each depth.
pub(crate) fn create_authorities(
    h: &Hierarchy,
    authorities: &[Hrn],
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut by_depth: Vec<&Hrn> = authorities.iter().collect();
    by_depth.sort_by_key(|a| a.depth());
    let done = AtomicUsize::new(0);
    for level in by_depth.chunk_by(|a, b| a.depth() == b.depth()) {
        // Two workers per core: each authority also waits on half a dozen fsyncs (its key,
        // GID and dbinfo, and their directories), during which another can generate a key.
        parallel(level, 2, |hrn| {
            // An authority made by a run that stopped before its records is reused.
            if !h.exists(hrn) {
                h.create_authority(hrn, false)?;
            }
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress.step("authorities", n, authorities.len());
            Ok(())
        })?;
    }
    Ok(())
}

/// A GID for each planned record, in plan order.
pub(crate) fn make_gids(
    h: &Hierarchy,
    records: &[PlannedRecord],
    unowned: UnownedKeys,
    progress: &Progress,
) -> anyhow::Result<Vec<NewRecord>> {
    let shared = match unowned {
        UnownedKeys::SharedPerRun if records.iter().any(|r| r.key == KeySource::Unowned) => {
            Some(Keypair::generate(Keypair::DEFAULT_BITS)?.public_key())
        }
        _ => None,
    };
    // Each authority's key and GID are read once, not once per record under it.
    let mut authorities: HashMap<Hrn, AuthorityInfo> = HashMap::new();
    for r in records {
        let signer = match r.key {
            KeySource::Authority => r.hrn.clone(),
            _ => r.hrn.authority().unwrap_or_else(|| r.hrn.clone()),
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = authorities.entry(signer) {
            let info = h.authority(slot.key())?;
            slot.insert(info);
        }
    }
    let authority_of = |hrn: &Hrn| -> Result<&AuthorityInfo, TrustError> {
        let above = hrn.authority().unwrap_or_else(|| hrn.clone());
        authorities
            .get(&above)
            .ok_or_else(|| TrustError::MissingAuthority {
                hrn: above.to_string(),
                dir: h.base().to_owned(),
            })
    };
    let done = AtomicUsize::new(0);
    parallel(records, 1, |r| {
        let gid = match (&r.key, &shared) {
            (KeySource::Authority, _) => authorities
                .get(&r.hrn)
                .map(|a| a.gid.clone())
                .ok_or_else(|| TrustError::MissingAuthority {
                    hrn: r.hrn.to_string(),
                    dir: h.base().to_owned(),
                })?,
            (KeySource::Ssh { key, .. }, _) => {
                h.create_gid_by(authority_of(&r.hrn)?, &r.hrn, None, key)?
            }
            (KeySource::Unowned, Some(key)) => {
                h.create_gid_by(authority_of(&r.hrn)?, &r.hrn, None, key)?
            }
            (KeySource::Unowned, None) => {
                let key = Keypair::generate(Keypair::DEFAULT_BITS)?;
                h.create_gid_by(authority_of(&r.hrn)?, &r.hrn, None, &key.public_key())?
            }
        };
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress.step("records", n, records.len());
        Ok(NewRecord {
            hrn: r.hrn.clone(),
            kind: r.kind,
            pointer: r.pointer,
            gid,
        })
    })
}

/// `f` over `items` on `per_core` threads per core, results in order; the first error stops the
/// others.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    per_core: usize,
    f: impl Fn(&T) -> Result<R, TrustError> + Sync,
) -> anyhow::Result<Vec<R>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .saturating_mul(per_core)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        match f(item) {
                            Ok(r) => mine.push((i, r)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                let mut slot = first_error
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                slot.get_or_insert(e);
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            // A worker that panicked returns nothing; the count check below reports it.
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let error = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = error {
        return Err(e.into());
    }
    if done.len() != items.len() {
        anyhow::bail!("an import worker thread stopped unexpectedly");
    }
    done.sort_unstable_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}
