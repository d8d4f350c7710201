//! `agent.toml` (`/etc/geni-agent/agent.toml`): the schema of the whole file, one table per mode,
//! and [`load`], which reads it and then the `GENI_AGENT_*` environment variables
//! (`GENI_AGENT_NODE__LISTEN=…`), each overriding the one before; command-line flags override
//! both in each mode's `run`. Unknown keys and unknown backend names are errors, so a typo is
//! reported rather than silently ignored.
//!
//! What is here is what the file says, without I/O beyond reading it and without validation:
//! `node/config.rs` and `plc/config.rs` each `check` their table into the validated config their
//! mode runs with. The node and the plc share this schema and nothing else, so neither mode's
//! modules import the other's.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::plc::PlcApiSettings;

/// Where the configuration is read from when `--config` is not given.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/geni-agent/agent.toml";

/// The whole file: one table per mode.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) node: NodeSection,
    #[serde(default)]
    pub(crate) plc: PlcSection,
}

/// `node.backend`: where slivers live. The file, the environment and `--backend` spell it the
/// same way: the names are clap's, read by [`by_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(try_from = "String")]
pub(crate) enum NodeBackend {
    /// Built in: a home, an account, processes and a cgroup per sliver.
    Local,
    /// A PlanetLab NodeManager, through its XML-RPC API on a Unix socket.
    #[value(name = "nodemanager")]
    NodeManager,
}

/// `plc.backend`: where PLC's own data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(try_from = "String")]
pub(crate) enum PlcBackendKind {
    /// PLC's tables in the registry's own database.
    Embedded,
    /// A remote PLCAPI over XML-RPC (`[plc.plcapi]`).
    Plcapi,
}

/// The variant of `T` named `name` as its flag is, or an error naming every accepted value.
fn by_name<T: clap::ValueEnum>(name: &str) -> Result<T, String> {
    T::from_str(name, false).map_err(|_| {
        let accepted: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| format!("{:?}", p.get_name()))
            .collect();
        format!("{name:?} is not one of {}", accepted.join(", "))
    })
}

// === impl NodeBackend ===

impl NodeBackend {
    /// The name the file and the flags use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::NodeManager => "nodemanager",
        }
    }
}

impl TryFrom<String> for NodeBackend {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        by_name(&name)
    }
}

impl fmt::Display for NodeBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl PlcBackendKind ===

impl PlcBackendKind {
    /// The name the file and the flags use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Plcapi => "plcapi",
        }
    }
}

impl TryFrom<String> for PlcBackendKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        by_name(&name)
    }
}

impl fmt::Display for PlcBackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[node]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NodeSection {
    pub(crate) listen: String,
    pub(crate) unix_socket: Option<PathBuf>,
    pub(crate) key: PathBuf,
    pub(crate) gid: PathBuf,
    pub(crate) credential: PathBuf,
    pub(crate) trusted_roots: PathBuf,
    pub(crate) state_dir: PathBuf,
    /// The pid file (`pidfile.rs`); `None` means `node.pid` in the state directory.
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) backend: NodeBackend,
    pub(crate) reboot_command: Vec<String>,
    pub(crate) legacy_digests: bool,
    pub(crate) clock_skew_secs: i64,
    /// How often slivers past their ticket's expiry are stopped and removed (also once at start).
    pub(crate) reap_secs: u64,
    pub(crate) limits: LimitsSection,
    pub(crate) local: LocalSection,
    pub(crate) nodemanager: NodeManagerSection,
}

/// `[node.limits]` and `[plc.limits]`: what one peer, one request and all of them together may
/// cost the server (`geni_rpc::Limits`, whose defaults these are).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    pub(crate) max_body_bytes: usize,
    pub(crate) max_xml_depth: usize,
    pub(crate) max_xml_values: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_peer: usize,
    pub(crate) max_bytes_in_flight: usize,
    pub(crate) max_waiting_bodies: usize,
    pub(crate) max_multicall: usize,
    pub(crate) max_verification_work: u64,
    pub(crate) handshake_timeout_secs: u64,
    pub(crate) header_timeout_secs: u64,
    pub(crate) pressure_timeout_secs: u64,
    pub(crate) body_timeout_secs: u64,
    pub(crate) write_timeout_secs: u64,
    pub(crate) idle_timeout_secs: u64,
}

/// `[node.local]`: how the local backend isolates slivers (`nm_bridge::local`; checked into its
/// options by `node::config`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LocalSection {
    /// A Unix account per sliver (`useradd`); needs root. Unset: on for a root agent (unless
    /// `danger_shared_uid`), off otherwise.
    pub(crate) manage_accounts: Option<bool>,
    /// The uids sliver accounts get, far from the host's own.
    pub(crate) uid_min: u32,
    pub(crate) uid_max: u32,
    /// Run every sliver as the one account `run_as` instead of an account each: slivers can
    /// then read, write and signal each other's everything. For test rigs only.
    pub(crate) danger_shared_uid: bool,
    /// The shared account under `danger_shared_uid`; never root.
    pub(crate) run_as: String,
    pub(crate) stop_grace_secs: u64,
    /// A cgroup per sliver where a hierarchy is writable.
    pub(crate) cgroups: bool,
    /// Where sliver cgroups go, inside each hierarchy; unset: the agent's own cgroup (under
    /// systemd, the unit's delegated subtree).
    pub(crate) cgroup_root: Option<PathBuf>,
    /// `pids.max` of a sliver whose rspec has no `nproc_hard`; 0: no limit.
    pub(crate) pids_max: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NodeManagerSection {
    pub(crate) socket: PathBuf,
    pub(crate) admin_account: String,
    pub(crate) reconcile_secs: u64,
    /// Bounds each NodeManager call (NM's own forwarder gives a call 120 s).
    pub(crate) timeout_secs: u64,
}

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
    pub(crate) backend: PlcBackendKind,
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
            backend: PlcBackendKind::Embedded,
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

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            listen: format!("0.0.0.0:{}", geni_rpc::DEFAULT_PORT),
            unix_socket: None,
            key: "/etc/geni-agent/node.pkey".into(),
            gid: "/etc/geni-agent/node.gid".into(),
            credential: "/etc/geni-agent/node.cred".into(),
            trusted_roots: "/etc/geni-agent/trusted_roots".into(),
            state_dir: "/var/lib/geni-agent".into(),
            pid_file: None,
            backend: NodeBackend::Local,
            reboot_command: vec!["systemctl".into(), "reboot".into()],
            legacy_digests: false,
            clock_skew_secs: 300,
            reap_secs: 60,
            limits: LimitsSection::default(),
            local: LocalSection::default(),
            nodemanager: NodeManagerSection::default(),
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        let d = geni_rpc::Limits::default();
        Self {
            max_body_bytes: d.max_body_bytes,
            max_xml_depth: d.max_xml_depth,
            max_xml_values: d.max_xml_values,
            max_connections: d.max_connections,
            max_connections_per_peer: d.max_connections_per_peer,
            max_bytes_in_flight: d.max_bytes_in_flight,
            max_waiting_bodies: d.max_waiting_bodies,
            max_multicall: d.max_multicall,
            max_verification_work: d.max_verification_work,
            handshake_timeout_secs: d.handshake_timeout.as_secs(),
            header_timeout_secs: d.header_timeout.as_secs(),
            pressure_timeout_secs: d.pressure_timeout.as_secs(),
            body_timeout_secs: d.body_timeout.as_secs(),
            write_timeout_secs: d.write_timeout.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
        }
    }
}

impl Default for LocalSection {
    fn default() -> Self {
        let uids = nm_bridge::local::DEFAULT_UIDS;
        Self {
            manage_accounts: None,
            uid_min: *uids.start(),
            uid_max: *uids.end(),
            danger_shared_uid: false,
            run_as: "nobody".into(),
            stop_grace_secs: 5,
            cgroups: true,
            cgroup_root: None,
            pids_max: 4096,
        }
    }
}

impl Default for NodeManagerSection {
    fn default() -> Self {
        Self {
            socket: "/tmp/nodemanager.api".into(),
            // NM7 gives AdminTicket's raw-arguments path to exactly `<prefix>_sfacm`.
            admin_account: "pl_sfacm".into(),
            reconcile_secs: 60,
            timeout_secs: 120,
        }
    }
}

impl LimitsSection {
    pub(crate) fn to_limits(&self) -> geni_rpc::Limits {
        geni_rpc::Limits {
            max_body_bytes: self.max_body_bytes,
            max_xml_depth: self.max_xml_depth,
            max_xml_values: self.max_xml_values,
            max_connections: self.max_connections,
            max_connections_per_peer: self.max_connections_per_peer,
            max_bytes_in_flight: self.max_bytes_in_flight,
            max_waiting_bodies: self.max_waiting_bodies,
            max_multicall: self.max_multicall,
            max_verification_work: self.max_verification_work,
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            pressure_timeout: Duration::from_secs(self.pressure_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            write_timeout: Duration::from_secs(self.write_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            ..geni_rpc::Limits::default()
        }
    }
}

/// Reads the file (required when named explicitly, optional at the default path) and the
/// environment.
pub(crate) fn load(explicit: Option<&Path>) -> anyhow::Result<ConfigFile> {
    let (path, required) = match explicit {
        Some(p) => (p.to_owned(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    if required && !path.is_file() {
        bail!("configuration file {} does not exist", path.display());
    }
    let built = ::config::Config::builder()
        .add_source(
            ::config::File::from(path.as_path())
                .format(::config::FileFormat::Toml)
                .required(required),
        )
        .add_source(
            ::config::Environment::with_prefix("GENI_AGENT")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .with_context(|| format!("reading {}", path.display()))?;
    built
        .try_deserialize()
        .with_context(|| format!("in {} or GENI_AGENT_* variables", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    fn parse(toml: &str) -> anyhow::Result<ConfigFile> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, toml)?;
        load(Some(&path))
    }

    #[test]
    fn backends_are_names_from_a_closed_set() {
        let c = parse("[node]\nbackend = \"nodemanager\"\n[plc]\nbackend = \"plcapi\"\n").unwrap();
        assert_eq!(c.node.backend, NodeBackend::NodeManager);
        assert_eq!(c.plc.backend, PlcBackendKind::Plcapi);
        let e = format!(
            "{:#}",
            parse("[node]\nbackend = \"vserver\"\n").unwrap_err()
        );
        assert!(e.contains("vserver") && e.contains("nodemanager"), "{e}");
        let e = format!("{:#}", parse("[plc]\nbackend = \"mysql\"\n").unwrap_err());
        assert!(e.contains("mysql") && e.contains("plcapi"), "{e}");
    }

    #[test]
    fn flags_and_file_spell_each_backend_alike() {
        for b in NodeBackend::value_variants() {
            let flag = b.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), b.as_str());
            let file = parse(&format!("[node]\nbackend = \"{b}\"\n")).unwrap();
            assert_eq!(file.node.backend, *b);
        }
        for b in PlcBackendKind::value_variants() {
            let flag = b.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), b.as_str());
            let file = parse(&format!("[plc]\nbackend = \"{b}\"\n")).unwrap();
            assert_eq!(file.plc.backend, *b);
        }
    }

    #[test]
    fn a_named_file_must_exist() {
        assert!(load(Some(Path::new("/nonexistent/agent.toml"))).is_err());
    }
}
