//! [`GeniClient`]: the Geni protocol's client side (genicli, plc → node calls), XML-RPC over
//! HTTPS presenting our certificate and trusting the server by pinned key or certificate.
//!
//! It adds no policy to the channel: no retry, because a Geni call (`redeem_ticket`, `register`)
//! may have taken effect when the connection broke, and only the caller can tell whether sending
//! it again is safe.

use std::time::Duration;

use geni_xmlrpc::{MethodCall, Value};

use super::https::HttpsChannel;
use crate::RpcError;
use crate::tls::{ServerAuth, TlsIdentity, client_config};

/// A client of one Geni server (registry, slice manager or component manager).
#[derive(Debug)]
pub struct GeniClient {
    channel: HttpsChannel,
}

impl GeniClient {
    /// A client of `url` (`https://host:port/` or `https://host:port/RPC2`) presenting
    /// `identity` and trusting the server per `auth`. `timeout` bounds each call, connecting
    /// included. Nothing is connected until the first call.
    pub fn new(
        url: &str,
        identity: TlsIdentity,
        auth: ServerAuth,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        let config = client_config(Some(&identity), auth)?;
        Ok(Self {
            channel: HttpsChannel::new(url, config, timeout)?,
        })
    }

    /// Calls `method`. A fault comes back as [`RpcError::Fault`], an unreachable or misbehaving
    /// server as [`RpcError::Transport`], an exceeded timeout as [`RpcError::Timeout`].
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, RpcError> {
        let call = MethodCall {
            method: method.to_owned(),
            params,
        };
        self.channel.call(&call).await.map_err(RpcError::from)
    }
}
