//! geni-rpc's integration tests, one binary: the server as a peer sees it, and the clients
//! against small servers written here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clients;
mod server;
