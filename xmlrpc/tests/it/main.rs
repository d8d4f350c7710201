//! geni-xmlrpc's integration tests, one binary: interop with Python's `xmlrpclib`, and the
//! property tests of the codec.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod python_interop;
mod roundtrip;
