//! `plc serve`: the registry's TLS identity (checked against its key and its roots), the
//! HTTPS XML-RPC server with the registry's dispatcher, and the daemon's signals (SIGTERM/SIGINT
//! stop gracefully, SIGHUP reloads the trusted roots, `daemon.rs`).

use std::sync::Arc;

use anyhow::{Context, bail};
use geni_rpc::{Server, ServerOptions, TlsIdentity};
use geni_trust::{Gid, Keypair};

use super::Registry;
use super::backend::PlcBackend;
use super::config::PlcConfig;
use super::db;
use super::open::RegistryTask;
use crate::ExitCode;

/// The `serve` subcommand, run on the open registry.
pub(super) struct Serve;

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
        // Before anything says the registry is up: a SIGHUP from then on must find its handler.
        let verifier = Arc::clone(&registry.verifier);
        let roots_dir = config.trusted_roots.clone();
        crate::daemon::signals(server.shutdown_handle(), move || {
            crate::daemon::reload_roots(&verifier, &roots_dir);
        });
        // Scripts (and the end-to-end tests) wait for this line to know the port.
        if let Some(addr) = server.local_addr() {
            println!("listening on {addr}");
        }
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
