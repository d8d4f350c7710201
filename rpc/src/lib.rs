//! The Geni protocol: XML-RPC over HTTPS, where the server hands each request the TLS peer
//! certificate so that the application can bind the caller to the key in its GID.
//!
//! This crate will own the axum + rustls server (client certificate mandatory, any issuer
//! accepted at the TLS layer, X.509 v1 client certificates verified by raw key), the dispatch
//! table with `system.listMethods` / `system.methodHelp` / `system.multicall`, the single
//! error-to-fault mapping, request limits, and the clients (HTTPS with a client certificate,
//! plain HTTPS for PLCAPI, HTTP over a Unix socket for NodeManager). It arrives with issue 3; the
//! value codec it builds on is `geni-xmlrpc`, and the trust decisions are `geni-trust`'s.
#![forbid(unsafe_code)]
