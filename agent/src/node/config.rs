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
use nm_bridge::local::{self, LocalOptions};
use serde::Deserialize;

/// nobody's uid and nogroup's gid on Debian and Fedora alike.
const NOBODY: u32 = 65_534;

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

/// `[node.local]`: how the local backend isolates slivers (`nm_bridge::local`).
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
        let uids = local::DEFAULT_UIDS;
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

impl LocalSection {
    /// The local backend's options for an agent that is (`root`) or is not root, and the
    /// warnings to log once at start. Refuses what would run a sliver as root or leave a root
    /// agent's slivers sharing a uid without `danger_shared_uid`.
    pub(crate) fn options(
        &self,
        state_dir: &Path,
        root: bool,
    ) -> anyhow::Result<(LocalOptions, Vec<String>)> {
        if self.uid_min == 0 || self.uid_min > self.uid_max {
            bail!(
                "node.local.uid_min..uid_max ({}..{}) must be a non-empty range above 0 (root)",
                self.uid_min,
                self.uid_max
            );
        }
        if self.manage_accounts == Some(true) && self.danger_shared_uid {
            bail!(
                "node.local.manage_accounts and danger_shared_uid contradict each other: an \
                 account per sliver, or one shared account"
            );
        }
        let mut warnings = Vec::new();
        let accounts = self
            .manage_accounts
            .unwrap_or(root && !self.danger_shared_uid);
        let mut run_as = (NOBODY, NOBODY);
        if !root {
            if accounts {
                bail!(
                    "node.local.manage_accounts needs the agent to run as root (it runs useradd \
                     and userdel, and starts initscripts as each sliver's account)"
                );
            }
            warnings.push(
                "Not running as root: every sliver runs as the agent's own user, so slivers are \
                 not isolated from each other or from the agent (run as root for an account, \
                 a private home and a cgroup per sliver)"
                    .to_owned(),
            );
        } else if !accounts {
            if !self.danger_shared_uid {
                bail!(
                    "node.local.manage_accounts = false on a root agent: slivers would share one \
                     account and could read, write and signal each other; leave manage_accounts \
                     unset for an account per sliver, or set danger_shared_uid = true to accept \
                     that"
                );
            }
            run_as = local::account_ids(&self.run_as).context("node.local.run_as")?;
            if run_as.0 == 0 {
                bail!(
                    "node.local.run_as = {:?} is root: a ticket must never buy root on the node; \
                     name an unprivileged account such as \"nobody\"",
                    self.run_as
                );
            }
            warnings.push(format!(
                "node.local.danger_shared_uid: every sliver runs as {} (uid {}), so slivers can \
                 read, write and signal each other",
                self.run_as, run_as.0
            ));
        }
        let options = LocalOptions {
            state_dir: state_dir.to_owned(),
            manage_accounts: accounts,
            uids: self.uid_min..=self.uid_max,
            danger_shared_uid: self.danger_shared_uid,
            run_as,
            stop_grace: Duration::from_secs(self.stop_grace_secs),
            cgroups: self.cgroups,
            cgroup_root: self.cgroup_root.clone(),
            pids_max: (self.pids_max > 0).then_some(self.pids_max),
        };
        Ok((options, warnings))
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
        if section.backend == "local" {
            // Refused here too, so that --check-config and a start fail alike.
            section
                .local
                .options(&section.state_dir, nix::unistd::geteuid().is_root())?;
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

    fn local(toml: &str) -> LocalSection {
        parse(&format!("[node.local]\n{toml}")).unwrap().node.local
    }

    #[test]
    fn a_root_agent_gives_each_sliver_an_account_by_default() {
        let (o, warnings) = local("").options(Path::new("/s"), true).unwrap();
        assert!(o.manage_accounts);
        assert_eq!(o.uids, 600_000..=665_535);
        assert_eq!(o.pids_max, Some(4096));
        assert!(warnings.is_empty(), "{warnings:?}");
        let (o, _) = local("uid_min = 700000\nuid_max = 700009\npids_max = 0\n")
            .options(Path::new("/s"), true)
            .unwrap();
        assert_eq!((o.uids, o.pids_max), (700_000..=700_009, None));
    }

    #[test]
    fn root_is_refused_as_the_slivers_account_with_a_message() {
        let e = local("danger_shared_uid = true\nrun_as = \"root\"\n")
            .options(Path::new("/s"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("run_as") && e.contains("root"), "{e}");
        let e = local("uid_min = 0\n")
            .options(Path::new("/s"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("uid_min"), "{e}");
    }

    #[test]
    fn sharing_one_uid_needs_the_danger_switch_and_is_warned_about() {
        let e = local("manage_accounts = false\n")
            .options(Path::new("/s"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("danger_shared_uid"), "{e}");
        let (o, warnings) = local("danger_shared_uid = true\n")
            .options(Path::new("/s"), true)
            .unwrap();
        assert!(!o.manage_accounts && o.danger_shared_uid);
        assert_eq!(o.run_as, (NOBODY, NOBODY));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("danger_shared_uid"), "{warnings:?}");
        assert!(
            local("manage_accounts = true\ndanger_shared_uid = true\n")
                .options(Path::new("/s"), true)
                .is_err()
        );
    }

    #[test]
    fn an_agent_that_is_not_root_warns_once_and_cannot_make_accounts() {
        let (o, warnings) = local("").options(Path::new("/s"), false).unwrap();
        assert!(!o.manage_accounts);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("not isolated"), "{warnings:?}");
        let e = local("manage_accounts = true\n")
            .options(Path::new("/s"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("root"), "{e}");
    }
}
