//! The node's validated configuration: [`NodeConfig::check`] turns the `[node]` table of
//! `agent.toml` (its schema and loading are `crate::config`'s) into what the node runs with,
//! refusing values that cannot work before anything starts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use nm_bridge::local::{self, LocalOptions};

use crate::config::{LocalSection, NodeBackend, NodeSection};

/// nobody's uid and nogroup's gid on Debian and Fedora alike.
const NOBODY: u32 = 65_534;

/// The checked configuration.
#[derive(Debug)]
pub(crate) struct NodeConfig {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) section: NodeSection,
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
        if section.clock_skew_secs < 0 {
            bail!("node.clock_skew_secs cannot be negative");
        }
        if section.reap_secs == 0 {
            bail!("node.reap_secs must be at least 1 (how often expired slivers are removed)");
        }
        if section.backend == NodeBackend::Local {
            // Refused here too, so that --check-config and a start fail alike.
            section
                .local
                .options(&section.state_dir, nix::unistd::geteuid().is_root())?;
        }
        Ok(Self { listen, section })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigFile, load};

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
        assert_eq!(c.node.backend, NodeBackend::Local);
        assert_eq!(c.node.limits.max_body_bytes, 4 * 1024 * 1024);
        NodeConfig::check(c.node).unwrap();
    }

    #[test]
    fn every_server_limit_can_be_set() {
        let c = parse(
            "[node.limits]\nmax_connections_per_peer = 3\nmax_bytes_in_flight = 1000\n\
             max_multicall = 5\npressure_timeout_secs = 1\nwrite_timeout_secs = 7\n\
             idle_timeout_secs = 9\n",
        )
        .unwrap();
        let l = c.node.limits.to_limits();
        assert_eq!(
            (
                l.max_connections_per_peer,
                l.max_bytes_in_flight,
                l.max_multicall
            ),
            (3, 1000, 5)
        );
        assert_eq!(
            (
                l.pressure_timeout.as_secs(),
                l.write_timeout.as_secs(),
                l.idle_timeout.as_secs()
            ),
            (1, 7, 9)
        );
        // Unset keys keep the server's defaults.
        let d = geni_rpc::Limits::default();
        let l = parse("").unwrap().node.limits.to_limits();
        assert_eq!(
            (
                l.max_connections_per_peer,
                l.max_bytes_in_flight,
                l.max_multicall
            ),
            (
                d.max_connections_per_peer,
                d.max_bytes_in_flight,
                d.max_multicall
            )
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = format!("{:#}", parse("[node]\nlisten_addr = \"x\"\n").unwrap_err());
        assert!(e.contains("listen_addr"), "{e}");
        let e = format!("{:#}", parse("[nodes]\n").unwrap_err());
        assert!(e.contains("nodes"), "{e}");
        let e = format!(
            "{:#}",
            parse("[node]\nbackend = \"vserver\"\n").unwrap_err()
        );
        assert!(e.contains("vserver"), "{e}");
        let c = parse("[node]\nlisten = \"nowhere\"\n").unwrap();
        assert!(NodeConfig::check(c.node).is_err());
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
