//! geni-agent's integration tests, one binary with a module per subject (as ripgrep's
//! `tests/tests.rs`): each drives the real `geni-agent` and `genicli` binaries, over real TLS on
//! loopback, on real files and databases. The worlds they share (a node, a registry, the
//! NodeManager double) come from the `geni-tests` harness crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authority_cli;
mod authority_geni;
mod demo;
mod faults;
mod genicli_node;
mod genicli_offline;
mod genicli_plc;
mod node;
mod node_authz;
mod node_crash;
mod node_geni;
mod node_hostile;
mod node_local;
mod node_nodemanager;
mod node_ops;
mod plc;
mod plc_import;
