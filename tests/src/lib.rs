//! geni-tests: the workspace's shared test harness, and the home of the cross-process end-to-end
//! tests (`tests/it/`: plc, node and genicli together on loopback, the packaging).
//!
//! What more than one crate's tests need is here, once, as a library that the other crates take
//! as a dev-dependency: the node [`World`] (an authority tree, a running `geni-agent node`,
//! clients with TLS client certificates), the registry world [`plc::Plc`], the NodeManager double
//! [`nm_double::NmDouble`], throw-away Unix [`accounts`], and [`bin`] and [`genicli_bin`], which
//! find the binaries Cargo built. Each crate's integration tests are one binary,
//! `tests/it/main.rs` with a module per subject (as ripgrep's `tests/tests.rs`), so that the
//! workspace links a few test binaries rather than one per file.
#![forbid(unsafe_code)]
// A harness: a setup step that fails is a failed test, reported at the line that failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod accounts;
pub mod nm_double;
pub mod plc;
mod world;

pub use world::{
    OtherNode, Principal, SCRIPT, World, alive, bin, fault_code, genicli_bin, hrn, listed,
    node_files, now, principal, spawn_node, wait_until, write,
};

// The double's state is behind a lock shared with its threads; what identifies one is its socket.
impl std::fmt::Debug for nm_double::NmDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NmDouble")
            .field("socket", &self.socket())
            .finish_non_exhaustive()
    }
}
