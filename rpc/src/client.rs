//! The clients: XML-RPC calls to a Geni server ([`GeniClient`], HTTPS with our certificate), to
//! PLCAPI ([`PlcApiClient`], plain HTTPS with password or session auth, retry, multicall) and to
//! NodeManager ([`UnixClient`], HTTP over a Unix socket).
//!
//! All three share one HTTP/1.1 exchange (`http`), so a call fails the same way whatever carries
//! it: a fault is [`RpcError::Fault`](crate::RpcError::Fault), no usable answer is
//! [`RpcError::Transport`](crate::RpcError::Transport) with a message naming the peer and the
//! method, and an exceeded timeout is [`RpcError::Timeout`](crate::RpcError::Timeout). Whether a
//! failed call is sent again is each client's policy, stated on it. Deciding whether the server's
//! key belongs to whom it claims is not done here: the caller pins a key ([`ServerAuth`]) or a
//! CA ([`PlcServerAuth`]).

mod geni;
mod http;
mod https;
mod plcapi;
mod unix;

pub use geni::GeniClient;
pub use plcapi::{PlcApiClient, PlcAuth, PlcServerAuth, RetryOptions};
pub use unix::UnixClient;

use crate::tls::ServerAuth;

/// Trusts the server holding `gid`'s key, such as a node or registry whose GID we have: the
/// pin a 2008 client never made.
pub fn server_auth_from_gid(gid: &geni_trust::Gid) -> ServerAuth {
    ServerAuth::PinnedKey(gid.public_key().spki_der().to_vec())
}
