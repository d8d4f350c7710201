//! nm-bridge's integration tests, one binary: the `local` backend against real processes and
//! files, the `nodemanager` backend against the NodeManager double of the `geni-tests` harness,
//! and their fixtures (`support`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod local;
mod nodemanager;
mod support;
