//! `geni-agent node`: load and check the configuration and the node's identity, open the
//! backend, serve, and handle signals (SIGTERM/SIGINT stop gracefully, SIGHUP reloads the
//! trusted roots) and systemd's notify protocol.
//!
//! The node refuses to start rather than run half-trusted: no usable trusted root, a key others
//! can read, a GID that does not match the key or does not chain to a root, or a node credential
//! that could not be the parent of sliver credentials are all errors that say what to fix.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use geni_rpc::{Server, ServerOptions, TlsIdentity};
use geni_trust::{Credential, Gid, Keypair, Policy, RightList, TrustedRoots, Verifier};
use nm_bridge::SliverManager;
use nm_bridge::local::LocalManager;
use nm_bridge::nodemanager::{NodeManagerBackend, NodeManagerOptions};

use super::config::NodeConfig;
use super::tombstones::Tombstones;
use super::{Node, pidfile, reap, restart};
use crate::ExitCode;
use crate::config::{self, NodeBackend};

/// Flags of `geni-agent node`; each overrides the configuration file and environment.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Configuration file [default: /etc/geni-agent/agent.toml, used if present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (node.listen), e.g. 0.0.0.0:12345.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory of trusted root GIDs (node.trusted_roots).
    #[arg(long, value_name = "DIR")]
    trusted_roots: Option<PathBuf>,
    /// Where slivers and their state live (node.state_dir).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The node's private key, mode 0600 (node.key).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The node's GID (node.gid).
    #[arg(long, value_name = "FILE")]
    gid: Option<PathBuf>,
    /// The credential over itself the node's authority issued (node.credential).
    #[arg(long, value_name = "FILE")]
    credential: Option<PathBuf>,
    /// Sliver backend (node.backend).
    #[arg(long, value_enum)]
    backend: Option<NodeBackend>,
    /// Accept md5 and sha1 signatures (2008 objects) (node.legacy_digests).
    #[arg(long)]
    legacy_digests: bool,
    #[command(flatten)]
    ops: restart::OpsArgs,
}

/// Runs the node until SIGTERM or SIGINT.
pub(crate) fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    let mut file = config::load(args.config.as_deref())?;
    let n = &mut file.node;
    if let Some(v) = &args.listen {
        n.listen.clone_from(v);
    }
    if let Some(v) = &args.trusted_roots {
        n.trusted_roots.clone_from(v);
    }
    if let Some(v) = &args.state_dir {
        n.state_dir.clone_from(v);
    }
    if let Some(v) = &args.key {
        n.key.clone_from(v);
    }
    if let Some(v) = &args.gid {
        n.gid.clone_from(v);
    }
    if let Some(v) = &args.credential {
        n.credential.clone_from(v);
    }
    if let Some(v) = args.backend {
        n.backend = v;
    }
    n.legacy_digests |= args.legacy_digests;
    args.ops.apply(n);
    let config = NodeConfig::check(file.node)?;
    if let Some(code) = args.ops.before_serve(&config)? {
        return Ok(code);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(config, args.config.clone()))?;
    Ok(ExitCode::Success)
}

async fn serve(config: NodeConfig, config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let c = &config.section;
    let roots = TrustedRoots::load_dir(&c.trusted_roots).map_err(|e| roots_hint(e, c))?;
    let policy = Policy {
        legacy_digests: c.legacy_digests,
        clock_skew_secs: c.clock_skew_secs,
        ..Policy::default()
    };
    let verifier = Arc::new(Verifier::new(roots, policy));

    let key = Keypair::load(&c.key)?;
    let gid_text = std::fs::read_to_string(&c.gid)
        .with_context(|| format!("reading the node GID {}", c.gid.display()))?;
    let gid = Gid::parse(&gid_text)?;
    if *gid.public_key() != key.public_key() {
        bail!(
            "the node GID {} is not for the key {}",
            c.gid.display(),
            c.key.display()
        );
    }
    verifier
        .verify_gid(&gid)
        .with_context(|| format!("the node GID {} does not verify", c.gid.display()))?;
    let credential = node_credential(&verifier, &gid, &key, &c.credential)?;

    let backend = open_backend(c).await?;
    let tombstones = Tombstones::open(&c.state_dir.join("tombstones"))?;
    let node = Arc::new(Node::new(
        Arc::clone(&verifier),
        backend,
        gid,
        key.clone(),
        credential,
        c.reboot_command.clone(),
        tombstones,
    ));
    reap::spawn_reaper(Arc::clone(&node), Duration::from_secs(c.reap_secs));
    let identity = TlsIdentity::from_pem(&key.to_pem()?, &gid_text)?;
    let options = ServerOptions {
        tcp: config.listen,
        unix: c.unix_socket.clone(),
        limits: c.limits.to_limits(),
    };
    let server = Server::bind(options, &identity, node.dispatcher()).await?;
    // Written once the node listens: a new pid in it tells `--restart` the node answers.
    let _pid_file = pidfile::PidFile::create(&pidfile::path(c))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        hrn = %node.hrn(),
        listen = ?server.local_addr(),
        backend = %c.backend,
        "Node serving"
    );
    let stop = server.shutdown_handle();
    let live = Live {
        verifier: Arc::clone(&verifier),
        node: Arc::clone(&node),
        roots_dir: c.trusted_roots.clone(),
        config_file,
    };
    crate::daemon::signals(stop, move || live.reload());
    // Only now: a SIGHUP sent as soon as the node says it is up must find its handler.
    // Scripts (and the end-to-end tests) wait for this line to know the port.
    if let Some(addr) = server.local_addr() {
        println!("listening on {addr}");
    }
    crate::notify::ready();
    server.serve().await?;
    tracing::info!("Node stopped");
    Ok(())
}

/// A missing trusted-roots directory is most often a first run with no configuration: say what
/// was looked for and the ways on.
fn roots_hint(e: geni_trust::TrustError, c: &config::NodeSection) -> anyhow::Error {
    let missing = matches!(&e, geni_trust::TrustError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound);
    if !missing {
        return e.into();
    }
    anyhow::anyhow!(
        "no trusted roots directory at {dir} (node.trusted_roots). A node verifies every \
         credential against the root authorities' GIDs kept there, and will not start without \
         one. Point it at yours with --trusted-roots DIR, or give --config FILE (the packaged \
         configuration is {default}, see packaging/agent.toml); to try the whole flow on \
         loopback first, run `geni-agent demo`.",
        dir = c.trusted_roots.display(),
        default = config::DEFAULT_CONFIG,
    )
}

/// The node's credential over itself must be able to parent sliver credentials: it verifies,
/// its object is the node, its certificate key is the node's, it allows delegation, and it
/// carries `control` and `info`.
fn node_credential(
    verifier: &Verifier,
    gid: &Gid,
    key: &Keypair,
    path: &std::path::Path,
) -> anyhow::Result<Credential> {
    let hint = "make one with `geni-agent authority credential --caller node.gid --object node.gid \
                --rights control,info --delegate --out node.cred`";
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the node credential {} ({hint})", path.display()))?;
    let credential = Credential::parse(&text)?;
    let verified = verifier
        .verify_credential(&credential)
        .with_context(|| format!("the node credential {} does not verify", path.display()))?;
    let needed: RightList = "control,info".parse()?;
    if verified.object().hrn() != gid.hrn()
        || !credential.delegate()
        || *credential.certificate().public_key() != key.public_key()
        || !credential.privileges().is_superset(&needed)
    {
        bail!(
            "the node credential {} must be over the node itself ({}), with the delegate bit and the control and info rights; {hint}",
            path.display(),
            gid.hrn()
        );
    }
    Ok(credential)
}

/// What SIGHUP reloads: the trusted roots, and the settings that can change without a restart.
struct Live {
    verifier: Arc<Verifier>,
    node: Arc<Node>,
    roots_dir: PathBuf,
    /// `--config`, or None for the default path.
    config_file: Option<PathBuf>,
}

impl Live {
    fn reload(&self) {
        crate::daemon::reload_roots(&self.verifier, &self.roots_dir);
        // Only reboot_command changes live; listen address, identity, state and backend are
        // bound at start, and a changed value there takes a restart.
        match config::load(self.config_file.as_deref()) {
            Ok(file) => {
                let mut command = self
                    .node
                    .reboot_command
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *command != file.node.reboot_command {
                    tracing::info!(command = ?file.node.reboot_command, "reboot_command reloaded");
                    *command = file.node.reboot_command;
                }
            }
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "Configuration reload failed; keeping the settings in use"
                );
            }
        }
    }
}

/// Opens the configured sliver backend; for `nodemanager`, also starts the loop that re-delivers
/// redeemed slivers NodeManager's PLC sync dropped.
async fn open_backend(c: &config::NodeSection) -> anyhow::Result<Arc<dyn SliverManager>> {
    if c.backend == NodeBackend::NodeManager {
        let nm = &c.nodemanager;
        let backend = Arc::new(NodeManagerBackend::new(NodeManagerOptions {
            socket: nm.socket.clone(),
            admin_account: nm.admin_account.clone(),
            state_dir: c.state_dir.join("nodemanager"),
            timeout: Duration::from_secs(nm.timeout_secs),
            reconcile_every: Duration::from_secs(nm.reconcile_secs),
            ..NodeManagerOptions::default()
        })?);
        // The task holds a weak reference: it ends with the backend.
        drop(backend.spawn_reconcile());
        return Ok(backend);
    }
    let (options, warnings) = c
        .local
        .options(&c.state_dir, nix::unistd::geteuid().is_root())?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let local = LocalManager::open(options).await?;
    tracing::info!(isolation = %local.isolation(), "Local backend open");
    Ok(Arc::new(local))
}
