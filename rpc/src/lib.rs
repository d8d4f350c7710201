//! The Geni protocol: XML-RPC over HTTPS, where each request carries the TLS peer's certificate
//! so that the application can bind the caller to the key in its GID.
//!
//! This crate owns the HTTPS server ([`Server`]: rustls with a mandatory client certificate of any
//! issuer, X.509 v1 and 1024-bit keys included; request limits; one tracing span per connection;
//! graceful shutdown), the method table ([`Dispatcher`], with `system.listMethods`,
//! `system.methodHelp` and `system.multicall`), the crate's one error type [`RpcError`] and the
//! one function that turns it into a fault ([`fault_of`]), and the TLS pieces clients use. It
//! decides no trust itself: handlers receive the peer's certificate and call `geni-trust`.
//!
//! # Fault codes
//!
//! Stable; a client may branch on them. Messages say what was wrong, never internals.
//!
//! | code | meaning |
//! |---|---|
//! | -32700 | the request is not well-formed XML-RPC |
//! | -32601 | no such method |
//! | -32602 | wrong number or type of arguments |
//! | -32603 | internal error (details only in the server log) |
//! | 100 | a credential, GID or ticket could not be read |
//! | 101 | a credential, GID or ticket did not verify (expired, untrusted, forged, …) |
//! | 102 | the TLS client key does not match the caller's GID |
//! | 103 | the credential's rights do not allow the operation |
//! | 104 | the caller may not act on that object |
//! | 105 | no such record or sliver |
//! | 106 | the record or sliver already exists |
//! | 107 | the operation failed (the message says why and what to do) |
#![forbid(unsafe_code)]

mod admission;
mod blocking;
mod dispatch;
mod error;
mod ratelimit;
mod server;
mod tls;

pub use blocking::{cpu_workers, run_blocking, set_cpu_workers};
pub use dispatch::{
    CallContext, DEFAULT_MAX_MULTICALL, Dispatcher, Handler, HandlerFuture, PeerIdentity,
};
pub use error::{MAX_FAULT_CHARS, RpcError, clean, fault_of};
pub use server::{DEFAULT_PORT, Limits, Server, ServerOptions, ShutdownHandle, termination_signal};
pub use tls::{ServerAuth, ServerCheck, TlsIdentity};
pub mod client;
