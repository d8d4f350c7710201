//! Opening the registry: the authority hierarchy, the trusted roots, the database and the one
//! place a PLC backend is chosen, for every subcommand that works on an open registry (`serve`,
//! the admin `add`s, `import`).
//!
//! The registry refuses to open rather than run half-set-up: no interface authority in the
//! hierarchy, no root in its trusted roots, a database that cannot be brought to the schema, a
//! PLCAPI that refuses our credentials. Each error says which command fixes it (usually
//! `geni-agent plc init`).

use std::sync::Arc;

use anyhow::{Context, bail};
use geni_trust::{CertMode, Hierarchy, Policy, TrustedRoots, Verifier};

use super::Registry;
use super::authorities::Authorities;
use super::backend::PlcBackend;
use super::config::PlcConfig;
use super::db::{self, Db};
use super::embedded::Embedded;
use super::plcapi::PlcApiBackend;
use super::store::Store;
use crate::ExitCode;
use crate::config::PlcBackendKind;

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
    let outcome = match config.section.backend {
        PlcBackendKind::Embedded => {
            let plc = Embedded::new(parts.db.clone());
            task.run(parts.registry(plc, config), config).await
        }
        PlcBackendKind::Plcapi => match connect_plcapi(config).await {
            Ok(plc) => task.run(parts.registry(plc, config), config).await,
            Err(e) => Err(e),
        },
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
