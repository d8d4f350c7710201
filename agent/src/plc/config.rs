//! PLC configuration: the `[plc]` table of `/etc/geni-agent/agent.toml`, then `GENI_AGENT_PLC__*`
//! environment variables, then `geni-agent plc` flags, each overriding the one before (the file
//! and environment are read by the node's loader, which owns the whole file). Unknown keys are
//! errors.
//!
//! [`PlcSection`] is what the file says; [`PlcConfig`] is the checked result with every default
//! path resolved against the state directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use geni_trust::Hrn;
use serde::Deserialize;

use super::db::{self, DbKind};
use super::plcapi::PlcApiSettings;
use crate::node::config::LimitsSection;

/// `[plc]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PlcSection {
    /// Address the registry listens on.
    pub(crate) listen: String,
    /// Where `authorities/`, `trusted_roots/` and `plc.db` live.
    pub(crate) state_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; empty means `sqlite` file `<state_dir>/plc.db`.
    pub(crate) database: String,
    /// The registry's interface authority (2008 `planetlab.us`): sites are authorities under
    /// it, and its top label is the root.
    pub(crate) authority: String,
    /// TLS key and GID; empty means the interface authority's own from the hierarchy.
    pub(crate) key: Option<PathBuf>,
    pub(crate) gid: Option<PathBuf>,
    /// Roots the registry verifies callers against; empty means `<state_dir>/trusted_roots`,
    /// where `plc init` exports the root GID for nodes.
    pub(crate) trusted_roots: Option<PathBuf>,
    /// `embedded` (PLC tables in the same database) or `plcapi` (a remote PLCAPI).
    pub(crate) backend: String,
    pub(crate) credential_lifetime_days: u32,
    pub(crate) ticket_lifetime_hours: u32,
    /// Write objects in the exact 2008 shape (md5, v1, 1024-bit authority keys).
    pub(crate) compat_2008: bool,
    pub(crate) legacy_digests: bool,
    pub(crate) clock_skew_secs: i64,
    pub(crate) limits: LimitsSection,
    /// `[plc.plcapi]`: the remote PLCAPI, for `backend = "plcapi"`.
    pub(crate) plcapi: Option<PlcApiSettings>,
}

impl Default for PlcSection {
    fn default() -> Self {
        Self {
            listen: format!("0.0.0.0:{}", geni_rpc::DEFAULT_PORT),
            state_dir: "/var/lib/geni-agent/plc".into(),
            database: String::new(),
            authority: "planetlab.us".into(),
            key: None,
            gid: None,
            trusted_roots: None,
            backend: "embedded".into(),
            credential_lifetime_days: 30,
            ticket_lifetime_hours: 24,
            compat_2008: false,
            legacy_digests: false,
            clock_skew_secs: 300,
            limits: LimitsSection::default(),
            plcapi: None,
        }
    }
}

/// The checked configuration.
#[derive(Debug)]
pub(crate) struct PlcConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) authority: Hrn,
    pub(crate) database: String,
    pub(crate) authorities_dir: PathBuf,
    pub(crate) trusted_roots: PathBuf,
    pub(crate) credential_lifetime: i64,
    pub(crate) ticket_lifetime: i64,
    pub(crate) section: PlcSection,
}

impl PlcConfig {
    /// Checks what can be checked without touching the files it names.
    pub(crate) fn check(section: PlcSection) -> anyhow::Result<Self> {
        let listen = section
            .listen
            .parse()
            .with_context(|| format!("plc.listen address {:?}", section.listen))?;
        let authority = Hrn::parse(&section.authority).context("plc.authority")?;
        if !matches!(section.backend.as_str(), "embedded" | "plcapi") {
            bail!(
                "plc.backend must be \"embedded\" or \"plcapi\", not {:?}",
                section.backend
            );
        }
        if section.backend == "plcapi" && section.plcapi.is_none() {
            bail!(
                "plc.backend = \"plcapi\" needs a [plc.plcapi] table (url, credentials, ca_file)"
            );
        }
        if section.credential_lifetime_days == 0 || section.credential_lifetime_days > 5 * 365 {
            bail!("plc.credential_lifetime_days must be 1 to 1825 (the authorities live 5 years)");
        }
        if section.ticket_lifetime_hours == 0 || section.ticket_lifetime_hours > 5 * 365 * 24 {
            bail!("plc.ticket_lifetime_hours must be 1 to 43800");
        }
        if section.clock_skew_secs < 0 {
            bail!("plc.clock_skew_secs cannot be negative");
        }
        let database = if section.database.is_empty() {
            db::sqlite_url(&section.state_dir.join("plc.db"))
        } else {
            DbKind::of(&section.database).context("plc.database")?;
            section.database.clone()
        };
        let trusted_roots = section
            .trusted_roots
            .clone()
            .unwrap_or_else(|| section.state_dir.join("trusted_roots"));
        Ok(Self {
            listen,
            authority,
            database,
            authorities_dir: section.state_dir.join("authorities"),
            trusted_roots,
            credential_lifetime: i64::from(section.credential_lifetime_days) * 86_400,
            ticket_lifetime: i64::from(section.ticket_lifetime_hours) * 3_600,
            section,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::load;

    fn parse(toml: &str) -> anyhow::Result<PlcSection> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, toml)?;
        Ok(load(Some(&path))?.plc)
    }

    #[test]
    fn defaults_and_derived_paths() {
        let s = parse("[plc]\nstate_dir = \"/srv/plc\"\nticket_lifetime_hours = 2\n").unwrap();
        let c = PlcConfig::check(s).unwrap();
        assert_eq!(c.database, "sqlite:///srv/plc/plc.db?mode=rwc");
        assert_eq!(c.trusted_roots, PathBuf::from("/srv/plc/trusted_roots"));
        assert_eq!(c.authorities_dir, PathBuf::from("/srv/plc/authorities"));
        assert_eq!(c.credential_lifetime, 30 * 86_400);
        assert_eq!(c.ticket_lifetime, 7_200);
        assert_eq!(c.authority.as_str(), "planetlab.us");
        assert_eq!(c.section.backend, "embedded");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = format!("{:#}", parse("[plc]\ndatabse = \"x\"\n").unwrap_err());
        assert!(e.contains("databse"), "{e}");
        // The node's table and the plc's coexist in one file.
        parse("[node]\nbackend = \"local\"\n[plc]\nbackend = \"plcapi\"\n").unwrap();
        // plcapi needs its table, whose unknown keys are errors too.
        let e = format!(
            "{:#}",
            PlcConfig::check(parse("[plc]\nbackend = \"plcapi\"\n").unwrap()).unwrap_err()
        );
        assert!(e.contains("[plc.plcapi]"), "{e}");
        let with = "[plc]\nbackend = \"plcapi\"\n[plc.plcapi]\nurl = \"https://plc/PLCAPI/\"\n";
        let c = PlcConfig::check(parse(with).unwrap()).unwrap();
        assert_eq!(c.section.plcapi.unwrap().url, "https://plc/PLCAPI/");
        assert!(parse(&format!("{with}urll = \"x\"\n")).is_err());
        for bad in [
            "[plc]\nbackend = \"mysql\"\n",
            "[plc]\ndatabase = \"mysql://x/y\"\n",
            "[plc]\nauthority = \"a..b\"\n",
            "[plc]\ncredential_lifetime_days = 0\n",
            "[plc]\nlisten = \"nowhere\"\n",
        ] {
            assert!(PlcConfig::check(parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
