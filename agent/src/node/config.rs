//! Node configuration: `/etc/geni-agent/agent.toml` (the `[node]` table), then `GENI_AGENT_*`
//! environment variables (`GENI_AGENT_NODE__LISTEN=…`), then command-line flags, each overriding
//! the one before. Unknown keys are errors, so a typo is reported rather than silently ignored.
//!
//! [`ConfigFile`] is what the file says, without I/O or validation; [`NodeConfig`] is the checked
//! result the node runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Where the configuration is read from when `--config` is not given.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/geni-agent/agent.toml";

/// The whole file: one table per mode.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) node: NodeSection,
    #[serde(default)]
    pub(crate) plc: crate::plc::PlcSection,
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
    pub(crate) backend: String,
    pub(crate) reboot_command: Vec<String>,
    pub(crate) legacy_digests: bool,
    pub(crate) clock_skew_secs: i64,
    /// How often slivers past their ticket's expiry are stopped and removed (also once at start).
    pub(crate) reap_secs: u64,
    pub(crate) limits: LimitsSection,
    pub(crate) local: LocalSection,
    pub(crate) nodemanager: NodeManagerSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    pub(crate) max_body_bytes: usize,
    pub(crate) max_xml_depth: usize,
    pub(crate) max_connections: usize,
    pub(crate) handshake_timeout_secs: u64,
    pub(crate) header_timeout_secs: u64,
    pub(crate) body_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LocalSection {
    /// Make a Unix account per sliver (`useradd`); needs root.
    pub(crate) manage_accounts: bool,
    pub(crate) stop_grace_secs: u64,
    /// The account initscripts run as when accounts are not managed and the agent is root. A
    /// ticket must not buy root on the node, so this is never the agent itself unless
    /// `danger_run_as_agent` says so.
    pub(crate) run_as: String,
    /// Run initscripts as the agent's own user (root on a real node) when accounts are not
    /// managed. For test rigs only.
    pub(crate) danger_run_as_agent: bool,
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

/// The checked configuration.
#[derive(Debug)]
pub(crate) struct NodeConfig {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) section: NodeSection,
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
            backend: "local".into(),
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
            max_connections: d.max_connections,
            handshake_timeout_secs: d.handshake_timeout.as_secs(),
            header_timeout_secs: d.header_timeout.as_secs(),
            body_timeout_secs: d.body_timeout.as_secs(),
        }
    }
}

impl Default for LocalSection {
    fn default() -> Self {
        Self {
            manage_accounts: false,
            stop_grace_secs: 5,
            run_as: "nobody".into(),
            danger_run_as_agent: false,
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
            max_connections: self.max_connections,
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
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
    let built = config::Config::builder()
        .add_source(
            config::File::from(path.as_path())
                .format(config::FileFormat::Toml)
                .required(required),
        )
        .add_source(
            config::Environment::with_prefix("GENI_AGENT")
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

impl NodeConfig {
    /// Checks what can be checked without touching the files it names.
    pub(crate) fn check(section: NodeSection) -> anyhow::Result<Self> {
        let listen = if section.listen.is_empty() {
            None
        } else {
            Some(
                section
                    .listen
                    .parse()
                    .with_context(|| format!("listen address {:?}", section.listen))?,
            )
        };
        if listen.is_none() && section.unix_socket.is_none() {
            bail!("set node.listen or node.unix_socket: the node must listen somewhere");
        }
        if !matches!(section.backend.as_str(), "local" | "nodemanager") {
            bail!(
                "node.backend must be \"local\" or \"nodemanager\", not {:?}",
                section.backend
            );
        }
        if section.clock_skew_secs < 0 {
            bail!("node.clock_skew_secs cannot be negative");
        }
        if section.reap_secs == 0 {
            bail!("node.reap_secs must be at least 1 (how often expired slivers are removed)");
        }
        Ok(Self { listen, section })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> anyhow::Result<ConfigFile> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, toml)?;
        load(Some(&path))
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = parse("[node]\nlisten = \"127.0.0.1:9999\"\n[node.local]\nstop_grace_secs = 2\n")
            .unwrap();
        assert_eq!(c.node.listen, "127.0.0.1:9999");
        assert_eq!(c.node.local.stop_grace_secs, 2);
        assert_eq!(c.node.backend, "local");
        assert_eq!(c.node.limits.max_body_bytes, 4 * 1024 * 1024);
        NodeConfig::check(c.node).unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = format!("{:#}", parse("[node]\nlisten_addr = \"x\"\n").unwrap_err());
        assert!(e.contains("listen_addr"), "{e}");
        let e = format!("{:#}", parse("[nodes]\n").unwrap_err());
        assert!(e.contains("nodes"), "{e}");
        let c = parse("[node]\nbackend = \"vserver\"\n").unwrap();
        assert!(
            NodeConfig::check(c.node)
                .unwrap_err()
                .to_string()
                .contains("vserver")
        );
        let c = parse("[node]\nlisten = \"nowhere\"\n").unwrap();
        assert!(NodeConfig::check(c.node).is_err());
        assert!(load(Some(Path::new("/nonexistent/agent.toml"))).is_err());
    }
}
