//! `geni-agent plc`: its flags and subcommands, the one place a PLC backend is chosen, and
//! `plc serve` (load and check the configuration and identity, open the database and backend,
//! serve; SIGTERM/SIGINT stop gracefully, SIGHUP reloads the trusted roots).
//!
//! The registry refuses to start rather than run half-set-up: no root in its trusted roots, no
//! interface authority in the hierarchy, a TLS key that does not match its GID, a database that
//! cannot be brought to the schema. Each error says which command fixes it (usually
//! `geni-agent plc init`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use geni_rpc::{Server, ServerOptions, TlsIdentity};
use geni_trust::{CertMode, Gid, Hierarchy, Keypair, Policy, TrustedRoots, Verifier};

use super::Registry;
use super::admin;
use super::authorities::Authorities;
use super::backend::PlcBackend;
use super::config::PlcConfig;
use super::db::{self, Db};
use super::embedded::Embedded;
use super::import;
use super::plcapi::PlcApiBackend;
use super::store::Store;
use crate::ExitCode;
use crate::node::config as file_config;

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
    #[arg(long, value_parser = ["embedded", "plcapi"], global = true)]
    backend: Option<String>,
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
    if let Some(v) = &c.backend {
        p.backend.clone_from(v);
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

/// Work done against an open registry, whatever its PLC backend.
pub(super) trait RegistryTask {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        config: &PlcConfig,
    ) -> anyhow::Result<ExitCode>;
}

/// Opens the database and the configured backend and runs `task` on them: the one place a
/// backend is chosen.
pub(super) async fn with_registry<T: RegistryTask>(
    config: &PlcConfig,
    task: T,
) -> anyhow::Result<ExitCode> {
    let parts = open_parts(config).await?;
    let outcome = match config.section.backend.as_str() {
        "embedded" => {
            let plc = Embedded::new(parts.db.clone());
            task.run(parts.registry(plc, config), config).await
        }
        "plcapi" => match connect_plcapi(config).await {
            Ok(plc) => task.run(parts.registry(plc, config), config).await,
            Err(e) => Err(e),
        },
        other => Err(anyhow::anyhow!(
            "plc.backend must be \"embedded\" or \"plcapi\", not {other:?}"
        )),
    };
    parts.db.close().await;
    outcome
}

/// The `[plc.plcapi]` backend, connected: its methods listed and our credentials accepted
/// (`AuthCheck`), so that a wrong password stops the command here.
async fn connect_plcapi(config: &PlcConfig) -> anyhow::Result<PlcApiBackend> {
    let settings = config
        .section
        .plcapi
        .as_ref()
        .context("plc.backend = \"plcapi\" needs a [plc.plcapi] table")?;
    PlcApiBackend::new(settings)?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("PLCAPI at {}: {e}", settings.url))
}

/// What every registry needs besides its backend.
struct Parts {
    db: Db,
    verifier: Arc<Verifier>,
    authorities: Authorities,
}

impl Parts {
    fn registry<B: PlcBackend>(&self, plc: B, config: &PlcConfig) -> Registry<B> {
        Registry {
            verifier: Arc::clone(&self.verifier),
            authorities: self.authorities.clone(),
            store: Store::new(self.db.clone()),
            plc,
            credential_lifetime: config.credential_lifetime,
            ticket_lifetime: config.ticket_lifetime,
        }
    }
}

async fn open_parts(config: &PlcConfig) -> anyhow::Result<Parts> {
    let authorities = Authorities::new(hierarchy(config));
    if !authorities.holds(&config.authority) {
        bail!(
            "no authority {} in {}; run `geni-agent plc init` first",
            config.authority,
            config.authorities_dir.display()
        );
    }
    let roots = TrustedRoots::load_dir(&config.trusted_roots).with_context(|| {
        format!(
            "the registry's trusted roots ({}); `geni-agent plc init` exports the root GID there",
            config.trusted_roots.display()
        )
    })?;
    let policy = Policy {
        legacy_digests: config.section.legacy_digests,
        clock_skew_secs: config.section.clock_skew_secs,
        ..Policy::default()
    };
    let db = Db::open(&config.database)
        .await
        .with_context(|| format!("opening {}", db::redact(&config.database)))?;
    Ok(Parts {
        db,
        verifier: Arc::new(Verifier::new(roots, policy)),
        authorities,
    })
}

/// The hierarchy under the state directory, writing in the configured form.
pub(super) fn hierarchy(config: &PlcConfig) -> Hierarchy {
    let mode = if config.section.compat_2008 {
        CertMode::Compat2008
    } else {
        CertMode::Modern
    };
    Hierarchy::new(&config.authorities_dir).with_mode(mode)
}

// === serve ===

struct Serve;

impl RegistryTask for Serve {
    async fn run<B: PlcBackend + 'static>(
        self,
        registry: Registry<B>,
        config: &PlcConfig,
    ) -> anyhow::Result<ExitCode> {
        let (key, gid_text) = identity(&registry, config)?;
        let registry = Arc::new(registry);
        let tls = TlsIdentity::from_pem(&key.to_pem()?, &gid_text)?;
        let options = ServerOptions {
            tcp: Some(config.listen),
            unix: None,
            limits: config.section.limits.to_limits(),
        };
        let server = Server::bind(options, &tls, registry.dispatcher()).await?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            authority = %config.authority,
            listen = ?server.local_addr(),
            backend = %config.section.backend,
            database = %db::redact(&config.database),
            "Registry serving"
        );
        // Scripts (and the end-to-end tests) wait for this line to know the port.
        if let Some(addr) = server.local_addr() {
            println!("listening on {addr}");
        }
        tokio::spawn(signals(
            server.shutdown_handle(),
            Arc::clone(&registry.verifier),
            config.trusted_roots.clone(),
        ));
        crate::notify::ready();
        server.serve().await?;
        tracing::info!("Registry stopped");
        Ok(ExitCode::Success)
    }
}

/// The TLS key and GID chain text: the configured files, or the interface authority's own.
/// They must match, and the GID must verify against the registry's roots.
fn identity<B: PlcBackend>(
    registry: &Registry<B>,
    config: &PlcConfig,
) -> anyhow::Result<(Keypair, String)> {
    let (_, auth_gid, auth_key, _) = registry.authorities.hierarchy().paths(&config.authority)?;
    let key_path = config.section.key.clone().unwrap_or(auth_key);
    let gid_path = config.section.gid.clone().unwrap_or(auth_gid);
    let key = Keypair::load(&key_path)?;
    let gid_text = std::fs::read_to_string(&gid_path)
        .with_context(|| format!("reading the registry GID {}", gid_path.display()))?;
    let gid = Gid::parse(&gid_text)?;
    if *gid.public_key() != key.public_key() {
        bail!(
            "the registry GID {} is not for the key {}",
            gid_path.display(),
            key_path.display()
        );
    }
    registry
        .verifier
        .verify_gid(&gid)
        .with_context(|| format!("the registry GID {} does not verify", gid_path.display()))?;
    Ok((key, gid_text))
}

async fn signals(stop: geni_rpc::ShutdownHandle, verifier: Arc<Verifier>, roots_dir: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("Cannot install signal handlers; stop the registry with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match TrustedRoots::load_dir(&roots_dir) {
                Ok(roots) => {
                    tracing::info!(roots = roots.len(), "Trusted roots reloaded");
                    verifier.replace_roots(roots);
                }
                Err(e) => tracing::error!(error = %e, "Reload failed; keeping the roots in use"),
            },
        }
    }
    crate::notify::stopping();
    tracing::info!("Stopping: finishing calls in flight");
    stop.shutdown();
}
