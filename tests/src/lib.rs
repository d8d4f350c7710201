//! Shared harness for the cross-process end-to-end tests.
//!
//! This crate will own the tests that start the real `geni-agent plc`, `geni-agent node` and
//! `genicli` binaries on loopback and drive the canonical flow across them (issue 6): the demo
//! flow, two nodes trusting one root, restarts mid-flow, root rotation with SIGHUP, and Python's
//! `xmlrpc.client` as a client no one here wrote. Unit and crate-level tests live with their
//! crates; only what needs several processes lives here.
#![forbid(unsafe_code)]
