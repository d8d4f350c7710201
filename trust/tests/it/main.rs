//! geni-trust's integration tests, one binary with a module per subject: the 2008 vectors and
//! the GENI vectors read where they are (`../shared/vectors/`), and the interop with the real
//! `xmlsec1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod geni_vectors;
mod geni_xmlsec1;
mod vectors;
