//! The bridge between a verified request and the thing that really makes slivers.
//!
//! This crate will own the `SliverManager` trait (create, start, stop, reset, destroy, list,
//! status), the NodeManager-shaped sliver record with NodeManager's rspec defaults, and two
//! backends: `local`, the built-in default, where a sliver is a directory, optionally a Unix
//! account, and a supervised process group with the rspec's limits; and `nodemanager`, which
//! drives a real PlanetLab NodeManager over its XML-RPC Unix socket with the caller-uid rules NM
//! enforces. It arrives with issue 4. It takes only verified types from `geni-trust`, never raw
//! credentials, so nothing here can be reached by an unauthenticated caller.
#![forbid(unsafe_code)]
