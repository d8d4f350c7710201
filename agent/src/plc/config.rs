//! The PLC side's validated configuration: [`PlcConfig::check`] turns the `[plc]` table of
//! `agent.toml` (its schema and loading are `crate::config`'s) into what `geni-agent plc` runs
//! with, every default path resolved against the state directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use geni_trust::Hrn;

use super::db::{self, DbKind};
use crate::config::{PlcBackendKind, PlcSection};

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
        if section.backend == PlcBackendKind::Plcapi && section.plcapi.is_none() {
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
    use crate::config::load;

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
        assert_eq!(c.section.backend, PlcBackendKind::Embedded);
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
        assert!(parse("[plc]\nbackend = \"mysql\"\n").is_err());
        for bad in [
            "[plc]\ndatabase = \"mysql://x/y\"\n",
            "[plc]\nauthority = \"a..b\"\n",
            "[plc]\ncredential_lifetime_days = 0\n",
            "[plc]\nlisten = \"nowhere\"\n",
        ] {
            assert!(PlcConfig::check(parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
