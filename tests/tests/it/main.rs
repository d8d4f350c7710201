//! The cross-process end-to-end tests, one binary: real `geni-agent plc`, `geni-agent node` and
//! `genicli` processes together on loopback (the node side, the PLC side), and the packaging.
//! The worlds come from this crate's library, the workspace's shared harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_e2e;
mod packaging;
mod plc_e2e;
