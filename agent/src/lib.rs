//! geni-agent as a library: what more than one binary of this package drives. Today that is
//! genicli's client ([`cli`]), used by the `genicli` binary and by `geni-agent demo`.
#![forbid(unsafe_code)]

pub mod cli;
