//! `geni-agent plc`: its flags and subcommands, merged over the configuration file into a
//! checked [`PlcConfig`], and the hand-off of each subcommand to the module that does it
//! ([`open`] for what needs an open registry, [`serve`], [`admin`], [`import`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::config::PlcConfig;
use super::open::with_registry;
use super::serve::Serve;
use super::{admin, import};
use crate::ExitCode;
use crate::config::{self as file_config, PlcBackendKind};

/// `geni-agent plc`.
#[derive(Debug, Args)]
#[command(after_help = "\
A new registry, step by step (state in /var/lib/geni-agent/plc unless --state-dir says \
otherwise):
  geni-agent plc init                      # root and interface authorities, plc.db, trusted_roots/
  geni-agent plc site add pl --name 'Princeton'
  geni-agent plc person add alice@princeton.edu --site pl --key alice.ssh.pub --role pi
  geni-agent plc slice add pl_test --person alice@princeton.edu
  geni-agent plc slice attr set pl_test cpu_share 8
  geni-agent plc node add node1.princeton.edu --site pl --pubkey node1.pub
  geni-agent plc serve                     # prints `listening on ADDR` once it accepts calls
Nodes trust the registry through the root GID in <state-dir>/trusted_roots/.")]
pub(crate) struct PlcArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: PlcCommand,
}

/// Flags every subcommand takes; each overrides the `[plc]` table and the environment.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Configuration file [default: /etc/geni-agent/agent.toml, used if present].
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Where authorities/, trusted_roots/ and plc.db live (plc.state_dir).
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
    /// Database URL, postgres://… or sqlite://… (plc.database) [default: <state-dir>/plc.db].
    #[arg(long, value_name = "URL", global = true)]
    database: Option<String>,
    /// The interface authority, e.g. planetlab.us (plc.authority).
    #[arg(long, value_name = "HRN", global = true)]
    authority: Option<String>,
    /// PLC backend (plc.backend).
    #[arg(long, value_enum, global = true)]
    backend: Option<PlcBackendKind>,
}

#[derive(Debug, Subcommand)]
enum PlcCommand {
    /// Run the registry and slice interface (HTTPS XML-RPC) until SIGTERM.
    Serve(ServeArgs),
    /// Create the root and interface authorities and the database, and export the root GID
    /// into trusted_roots/ for nodes. Safe to run again.
    Init,
    /// Manage PLC sites (each is an authority with sa and ma records).
    #[command(subcommand)]
    Site(admin::SiteCommand),
    /// Manage PLC persons (each is a user record).
    #[command(subcommand)]
    Person(admin::PersonCommand),
    /// Manage PLC slices and their attributes (each slice is a slice record).
    #[command(subcommand)]
    Slice(admin::SliceCommand),
    /// Manage PLC nodes (each is a node record).
    #[command(subcommand)]
    Node(admin::NodeCommand),
    /// Manage PLC initscripts (what a slice's `initscript` attribute names).
    #[command(subcommand)]
    Initscript(admin::InitscriptCommand),
    /// Delete every registry record (and with --plc the embedded PLC's data); asks first.
    Nuke(admin::NukeArgs),
    /// Import PLC's sites, persons, slices and nodes into the registry as 2008's import.py did:
    /// an authority with sa and ma records per site, a user per person and site, a slice and a
    /// node record each. Creates the root and interface authorities if missing and exports the
    /// root GID into trusted_roots/. Safe to run again: only what is new is added.
    Import(import::ImportArgs),
}

/// Flags of `plc serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (plc.listen), e.g. 0.0.0.0:12345.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The TLS private key, mode 0600 (plc.key) [default: the interface authority's].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The TLS GID (plc.gid) [default: the interface authority's].
    #[arg(long, value_name = "FILE")]
    gid: Option<PathBuf>,
    /// Directory of trusted root GIDs (plc.trusted_roots) [default: <state-dir>/trusted_roots].
    #[arg(long, value_name = "DIR")]
    trusted_roots: Option<PathBuf>,
    /// Accept md5 and sha1 signatures (2008 objects) (plc.legacy_digests).
    #[arg(long)]
    legacy_digests: bool,
}

impl PlcArgs {
    /// Whether this invocation is the long-running daemon (it logs at info).
    pub(crate) fn is_daemon(&self) -> bool {
        matches!(self.command, PlcCommand::Serve(_))
    }
}

/// Runs one `geni-agent plc` subcommand.
pub(crate) fn run(args: PlcArgs) -> anyhow::Result<ExitCode> {
    let mut file = file_config::load(args.common.config.as_deref())?;
    let p = &mut file.plc;
    let c = &args.common;
    if let Some(v) = &c.state_dir {
        p.state_dir.clone_from(v);
    }
    if let Some(v) = &c.database {
        p.database.clone_from(v);
    }
    if let Some(v) = &c.authority {
        p.authority.clone_from(v);
    }
    if let Some(v) = c.backend {
        p.backend = v;
    }
    if let PlcCommand::Serve(s) = &args.command {
        if let Some(v) = &s.listen {
            p.listen.clone_from(v);
        }
        if let Some(v) = &s.key {
            p.key = Some(v.clone());
        }
        if let Some(v) = &s.gid {
            p.gid = Some(v.clone());
        }
        if let Some(v) = &s.trusted_roots {
            p.trusted_roots = Some(v.clone());
        }
        p.legacy_digests |= s.legacy_digests;
    }
    let config = PlcConfig::check(file.plc)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match args.command {
            PlcCommand::Serve(_) => with_registry(&config, Serve).await,
            PlcCommand::Init => admin::init(&config).await,
            PlcCommand::Nuke(a) => admin::nuke(&config, &a).await,
            PlcCommand::Site(cmd) => with_registry(&config, cmd).await,
            PlcCommand::Person(cmd) => with_registry(&config, cmd).await,
            PlcCommand::Slice(cmd) => with_registry(&config, cmd).await,
            PlcCommand::Node(cmd) => with_registry(&config, cmd).await,
            PlcCommand::Initscript(cmd) => with_registry(&config, cmd).await,
            PlcCommand::Import(a) => import::run(&config, a).await,
        }
    })
}
