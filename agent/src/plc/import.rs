//! `geni-agent plc import`: PlanetLab's sites, persons, slices and nodes into the registry, as
//! 2008's `plc/import.py` did (`reference/geniwrapper-2008.md` §4.2 "Tools").
//!
//! Four steps, each its own module or function: read PLC through any [`PlcBackend`] ([`fetch`],
//! bulk reads batched by the backend); decide what to create from PLC's rows and what the
//! registry already holds ([`plan`], pure); create the authorities and one GID per new record
//! ([`materialize`], on every core); store the records ([`ImportSink`]) and export the root GID
//! into `trusted_roots/` for nodes. Authorities are written before their records, records in
//! batches, so a run that stops half-way leaves nothing a second run cannot finish, and a second
//! run over an unchanged PLC adds and changes nothing. Progress goes to stderr only when it is
//! a terminal.

mod materialize;
mod plan;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use geni_trust::{ChainForm, Hierarchy, Hrn, RecordType, TrustError};

use super::Registry;
use super::config::PlcConfig;
use super::open::{RegistryTask, hierarchy, with_registry};
use super::store::{Store, StoredRecord};
use crate::ExitCode;
use crate::plc::backend::{Lookup, PlcBackend, PlcResult};
pub(crate) use materialize::{NewRecord, UnownedKeys};
pub(crate) use plan::{Existing, Plan, Skipped, Snapshot};

/// Records stored per [`ImportSink::insert`] call (one transaction each).
const INSERT_BATCH: usize = 1_000;

/// `plc import`.
#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// Make a key for every record without one of its own (every slice and node, users with no
    /// usable SSH key), as 2008 did, instead of one per run; about 0.2 s of CPU per record.
    #[arg(long)]
    key_per_record: bool,
}

/// Runs `plc import`: first what the registry needs to open (the root and interface authorities,
/// the root GID in `trusted_roots/`), then the import over the configured backend.
pub(super) async fn run(config: &PlcConfig, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let h = hierarchy(config);
    let mut chain: Vec<Hrn> =
        std::iter::successors(Some(config.authority.clone()), Hrn::authority).collect();
    chain.reverse();
    let mut created = 0;
    for authority in &chain {
        if !h.exists(authority) {
            h.create_authority(authority, false)
                .with_context(|| format!("creating authority {authority}"))?;
            created += 1;
        }
    }
    let root = chain.first().unwrap_or(&config.authority);
    let root_export = export_root(&h, root, &config.trusted_roots)?;
    let task = ImportTask {
        unowned_keys: if args.key_per_record {
            UnownedKeys::PerRecord
        } else {
            UnownedKeys::SharedPerRun
        },
        created,
        root_export,
    };
    with_registry(config, task).await
}

/// The import proper, once the registry is open.
struct ImportTask {
    unowned_keys: UnownedKeys,
    /// Authorities [`run`] created before opening the registry.
    created: usize,
    root_export: RootExport,
}

impl RegistryTask for ImportTask {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        config: &PlcConfig,
    ) -> anyhow::Result<ExitCode> {
        let options = ImportOptions {
            level1: config.authority.clone(),
            trusted_roots: config.trusted_roots.clone(),
            unowned_keys: self.unowned_keys,
        };
        let mut report = import(
            &registry.plc,
            &registry.store,
            registry.authorities.hierarchy(),
            &options,
            &Progress::on_stderr(),
        )
        .await?;
        report.authorities_created += self.created;
        if !matches!(report.root, RootExport::Differs(_)) {
            report.root = self.root_export;
        }
        print!("{report}");
        Ok(ExitCode::Success)
    }
}

impl ImportSink for Store {
    async fn existing(&self) -> anyhow::Result<HashSet<(String, RecordType)>> {
        Ok(self.keys().await?.into_iter().collect())
    }

    async fn insert(&self, records: &[NewRecord]) -> anyhow::Result<()> {
        let stored = records
            .iter()
            .map(|r| {
                Ok(StoredRecord {
                    hrn: r.hrn.clone(),
                    kind: r.kind,
                    gid: r.gid.to_chain_string(ChainForm::Separator)?,
                    pointer: r.pointer,
                })
            })
            .collect::<Result<Vec<_>, TrustError>>()?;
        self.insert_all(&stored).await?;
        Ok(())
    }
}

/// The registry as the import needs it.
pub(crate) trait ImportSink: Sync {
    /// `(hrn, type)` of every record held.
    fn existing(
        &self,
    ) -> impl Future<Output = anyhow::Result<HashSet<(String, RecordType)>>> + Send;
    /// Stores `records` (none of which exists yet) all or nothing.
    fn insert(&self, records: &[NewRecord]) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// What a run did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) sites: usize,
    pub(crate) persons: usize,
    pub(crate) slices: usize,
    pub(crate) nodes: usize,
    pub(crate) authorities_created: usize,
    /// New records by type, in [`KINDS`] order.
    pub(crate) created: [usize; 5],
    /// Records already held, by type.
    pub(crate) present: [usize; 5],
    pub(crate) skipped: Vec<Skipped>,
    pub(crate) root: RootExport,
}

const KINDS: [RecordType; 5] = [
    RecordType::Sa,
    RecordType::Ma,
    RecordType::User,
    RecordType::Slice,
    RecordType::Node,
];

/// What became of the root GID in `trusted_roots/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum RootExport {
    #[default]
    NotYet,
    Written(PathBuf),
    Unchanged(PathBuf),
    /// A different file of that name is there and was left alone.
    Differs(PathBuf),
}

impl Report {
    pub(crate) fn created_total(&self) -> usize {
        self.created.iter().sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = |c: &[usize; 5]| {
            KINDS
                .iter()
                .zip(c)
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "PLC: {} sites, {} persons, {} slices, {} nodes",
            self.sites, self.persons, self.slices, self.nodes
        )?;
        writeln!(f, "authorities created: {}", self.authorities_created)?;
        writeln!(
            f,
            "records created: {} ({})",
            self.created_total(),
            counts(&self.created)
        )?;
        writeln!(f, "records already present: {}", counts(&self.present))?;
        match &self.root {
            RootExport::NotYet => {}
            RootExport::Written(p) => writeln!(f, "root GID written to {}", p.display())?,
            RootExport::Unchanged(p) => writeln!(f, "root GID already in {}", p.display())?,
            RootExport::Differs(p) => writeln!(
                f,
                "root GID NOT written: {} holds a different certificate; replace it if the \
                 root authority was re-created",
                p.display()
            )?,
        }
        writeln!(f, "skipped: {}", self.skipped.len())?;
        for s in &self.skipped {
            writeln!(f, "  {}: {}", s.what, s.reason)?;
        }
        Ok(())
    }
}

/// How to import.
#[derive(Debug, Clone)]
pub(crate) struct ImportOptions {
    /// The authority sites go under (`planetlab.us`); the root is its top label.
    pub(crate) level1: Hrn,
    /// Where the root GID is exported for nodes.
    pub(crate) trusted_roots: PathBuf,
    pub(crate) unowned_keys: UnownedKeys,
}

/// Imports `plc` into `sink` and the authority tree `h`.
pub(crate) async fn import(
    plc: &impl PlcBackend,
    sink: &impl ImportSink,
    h: &Hierarchy,
    options: &ImportOptions,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let level1 = &options.level1;
    progress.note("reading PLC");
    let started = Instant::now();
    let snapshot = fetch(plc)
        .await
        .map_err(|e| anyhow::anyhow!("reading PLC: {e}"))?;
    tracing::info!(
        sites = snapshot.sites.len(),
        persons = snapshot.persons.len(),
        slices = snapshot.slices.len(),
        nodes = snapshot.nodes.len(),
        took = ?started.elapsed(),
        "Read PLC"
    );
    progress.note("reading the registry");
    let records = sink.existing().await.context("reading the registry")?;
    let authorities = plan::candidate_authorities(&snapshot, level1)
        .into_iter()
        .filter(|a| h.exists(a))
        .map(|a| a.to_string())
        .collect();
    let existing = Existing {
        records,
        authorities,
    };
    let plan = plan::plan(&snapshot, &existing, level1);
    let mut report = Report {
        sites: snapshot.sites.len(),
        persons: snapshot.persons.len(),
        slices: snapshot.slices.len(),
        nodes: snapshot.nodes.len(),
        authorities_created: plan.authorities.len(),
        ..Report::default()
    };
    for (i, kind) in KINDS.iter().enumerate() {
        report.created[i] = plan.count(*kind);
        report.present[i] = plan.present.get(kind).copied().unwrap_or(0);
    }
    let Plan {
        authorities,
        records,
        skipped,
        ..
    } = plan;
    report.skipped = skipped;

    let new_records = {
        let (h, progress, unowned) = (h.clone(), progress.clone(), options.unowned_keys);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            materialize::create_authorities(&h, &authorities, &progress)
                .context("creating authorities")?;
            tracing::info!(authorities = authorities.len(), took = ?started.elapsed(), "Created authorities");
            let started = Instant::now();
            let made = materialize::make_gids(&h, &records, unowned, &progress)
                .context("creating GIDs")?;
            tracing::info!(gids = made.len(), took = ?started.elapsed(), "Created GIDs");
            Ok::<_, anyhow::Error>(made)
        })
        .await
        .context("the GID workers stopped")??
    };
    let started = Instant::now();
    for (n, batch) in new_records.chunks(INSERT_BATCH).enumerate() {
        sink.insert(batch).await.context("storing records")?;
        progress.step(
            "stored",
            (n * INSERT_BATCH + batch.len()).min(new_records.len()),
            new_records.len(),
        );
    }
    tracing::info!(records = new_records.len(), took = ?started.elapsed(), "Stored records");
    let root = std::iter::successors(Some(level1.clone()), Hrn::authority)
        .last()
        .unwrap_or_else(|| level1.clone());
    report.root = export_root(h, &root, &options.trusted_roots)?;
    progress.done();
    Ok(report)
}

/// PLC's sites and what they list: persons, their keys, slices and nodes, in bulk reads.
pub(crate) async fn fetch(plc: &impl PlcBackend) -> PlcResult<Snapshot> {
    let sites = plc.get_sites(Lookup::All).await?;
    let ids = |f: &dyn Fn(&crate::plc::backend::Site) -> &[i64]| -> Vec<i64> {
        let set: BTreeSet<i64> = sites.iter().flat_map(|s| f(s).iter().copied()).collect();
        set.into_iter().collect()
    };
    let (person_ids, slice_ids, node_ids) = (
        ids(&|s| &s.person_ids),
        ids(&|s| &s.slice_ids),
        ids(&|s| &s.node_ids),
    );
    let persons = plc.get_persons(Lookup::Ids(person_ids)).await?;
    let key_ids: BTreeSet<i64> = persons
        .iter()
        .flat_map(|p| p.key_ids.iter().copied())
        .collect();
    let keys = plc
        .get_keys(Lookup::Ids(key_ids.into_iter().collect()))
        .await?;
    let slices = plc.get_slices(Lookup::Ids(slice_ids)).await?;
    let nodes = plc.get_nodes(Lookup::Ids(node_ids)).await?;
    Ok(Snapshot {
        sites,
        persons: persons.into_iter().map(|p| (p.person_id, p)).collect(),
        keys: keys.into_iter().map(|k| (k.key_id, k)).collect(),
        slices: slices.into_iter().map(|s| (s.slice_id, s)).collect(),
        nodes: nodes.into_iter().map(|n| (n.node_id, n)).collect(),
    })
}

/// Writes the root authority's GID to `<dir>/<root>.gid` for nodes, unless a file of that name
/// is already there: the same one is left as it is, a different one is reported, never replaced
/// (it is a trust anchor someone put there).
fn export_root(h: &Hierarchy, root: &Hrn, dir: &Path) -> anyhow::Result<RootExport> {
    let gid = h
        .authority(root)
        .with_context(|| format!("loading root authority {root}"))?
        .gid;
    let text = gid.to_chain_string(ChainForm::Separator)?;
    let path = dir.join(format!("{root}.gid"));
    match std::fs::read_to_string(&path) {
        Ok(old) if old == text => return Ok(RootExport::Unchanged(path)),
        Ok(_) => return Ok(RootExport::Differs(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{root}.gid.tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(RootExport::Written(path))
}

/// A one-line progress display on stderr, drawn only when stderr is a terminal and at most ten
/// times a second.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    shown: bool,
    last: std::sync::Arc<Mutex<Option<Instant>>>,
}

impl Progress {
    /// Shown when stderr is a terminal.
    pub(crate) fn on_stderr() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    #[cfg(test)]
    pub(crate) fn hidden() -> Self {
        Self::new(false)
    }

    fn new(shown: bool) -> Self {
        Self {
            shown,
            last: std::sync::Arc::default(),
        }
    }

    fn note(&self, what: &str) {
        self.draw(&format!("import: {what}…"), true);
    }

    fn step(&self, what: &str, done: usize, total: usize) {
        self.draw(&format!("import: {what} {done}/{total}"), done == total);
    }

    fn draw(&self, line: &str, always: bool) {
        if !self.shown {
            return;
        }
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if always || due {
            *last = Some(Instant::now());
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{line}");
            let _ = err.flush();
        }
    }

    fn done(&self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests;
