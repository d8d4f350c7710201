//! The node's validated configuration: [`NodeConfig::check`] turns the `[node]` table of
//! `agent.toml` (its schema and loading are `crate::config`'s) into what the node runs with,
//! refusing values that cannot work before anything starts.

use std::net::SocketAddr;

use anyhow::{Context, bail};

use crate::config::NodeSection;

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
        Ok(Self { listen, section })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigFile, NodeBackend, load};

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
}
