//! XML-RPC over HTTPS to one URL: parsing the URL, TCP and TLS connects, and the one keep-alive
//! connection kept between calls. Shared by [`GeniClient`](super::GeniClient) and
//! [`PlcApiClient`](super::PlcApiClient), which differ only in their TLS configuration and in
//! what they do with a failure.
//!
//! A call reuses the idle connection when there is one. If the server closed it while it sat
//! idle and nothing of the request went out, the call moves to a fresh connection once; a request
//! that may have reached the server is never sent again here (retrying is the caller's policy).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use geni_xmlrpc::{MethodCall, Value};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tokio_rustls::TlsConnector;

use super::http::{Connection, Deadline, Failure, SendFailure, Target, describe_io};
use crate::RpcError;

/// Calls to one HTTPS URL, keeping one idle connection for the next call.
#[derive(Debug)]
pub(super) struct HttpsChannel {
    target: Target,
    /// Host to connect to: a name, or an IP address without brackets.
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
    idle: Mutex<Option<Connection>>,
}

/// The parts of an `https://` URL the clients use.
#[derive(Debug, PartialEq, Eq)]
struct HttpsUrl {
    host: String,
    port: u16,
    path: String,
}

// === impl HttpsChannel ===

impl HttpsChannel {
    /// For `url` (`https://host[:port][/path]`, port 443 and path `/` by default). `timeout`
    /// bounds each call from connecting to the last byte of the answer.
    pub(super) fn new(
        url: &str,
        config: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        let HttpsUrl { host, port, path } = HttpsUrl::parse(url)?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| RpcError::config(format!("{url}: {host:?} is not a host name: {e}")))?;
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let host_header = if port == 443 {
            bracketed.clone()
        } else {
            format!("{bracketed}:{port}")
        };
        let target = Target::new(format!("{bracketed}:{port}"), &host_header, &path)?;
        Ok(Self {
            target,
            host,
            port,
            server_name,
            config,
            timeout,
            idle: Mutex::new(None),
        })
    }

    /// `host:port`, as messages name the server.
    pub(super) fn peer(&self) -> &str {
        self.target.peer()
    }

    /// Sends `call` and reads its answer, within the channel's timeout.
    pub(super) async fn call(&self, call: &MethodCall) -> Result<Value, Failure> {
        let deadline = Deadline::after(self.timeout);
        let request = self.target.request(call)?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (mut connection, request) = match idle {
            Some(mut connection) => {
                match connection
                    .send(request, &self.target, &call.method, &deadline)
                    .await
                {
                    Err(SendFailure::NotSent(request)) => {
                        tracing::debug!(peer = %self.peer(), "idle connection was closed; reconnecting");
                        (self.connect(&deadline).await?, *request)
                    }
                    result => return self.finish(connection, result),
                }
            }
            None => (self.connect(&deadline).await?, request),
        };
        let result = connection
            .send(request, &self.target, &call.method, &deadline)
            .await;
        self.finish(connection, result)
    }

    /// Keeps `connection` for the next call when this one left it usable.
    fn finish(
        &self,
        connection: Connection,
        result: Result<Value, SendFailure>,
    ) -> Result<Value, Failure> {
        let reusable = matches!(
            &result,
            Ok(_) | Err(SendFailure::Failed(Failure::Final(RpcError::Fault(_))))
        );
        if reusable && !connection.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Concurrent calls each opened their own; one kept is enough.
            if idle.is_none() {
                *idle = Some(connection);
            }
        }
        result.map_err(|e| match e {
            SendFailure::NotSent(_) => Failure::Retryable(RpcError::Transport(format!(
                "{} closed a new connection before the request was sent",
                self.peer()
            ))),
            SendFailure::Failed(f) => f,
        })
    }

    /// TCP, TLS and HTTP/1.1 to the server, before `deadline`.
    async fn connect(&self, deadline: &Deadline) -> Result<Connection, Failure> {
        let peer = self.peer();
        let work = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| {
                    Failure::Retryable(RpcError::Transport(format!(
                        "cannot connect to {peer}: {}",
                        describe_io(&e)
                    )))
                })?;
            // Best effort: a call is one small write each way, which Nagle would only delay.
            let _ = tcp.set_nodelay(true);
            let tls = TlsConnector::from(Arc::clone(&self.config))
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| {
                    Failure::Retryable(RpcError::Transport(format!(
                        "TLS handshake with {peer} failed: {}",
                        describe_io(&e)
                    )))
                })?;
            Connection::open(tls, &self.target).await
        };
        match timeout_at(deadline.at(), work).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Retryable(
                deadline.expired(&format!("connecting to {peer}")),
            )),
        }
    }
}

// === impl HttpsUrl ===

impl HttpsUrl {
    fn parse(url: &str) -> Result<Self, RpcError> {
        let bad = |why: &str| RpcError::config(format!("{url:?} is not a usable URL: {why}"));
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("it must start with https://"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
        if authority.contains('@') {
            return Err(bad("credentials do not belong in the URL"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
            None => 443,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::HttpsUrl;

    fn parsed(url: &str) -> (String, u16, String) {
        let u = HttpsUrl::parse(url).unwrap();
        (u.host, u.port, u.path)
    }

    #[test]
    fn urls() {
        assert_eq!(parsed("https://h:12345/"), ("h".into(), 12345, "/".into()));
        assert_eq!(
            parsed("https://h:12345/RPC2"),
            ("h".into(), 12345, "/RPC2".into())
        );
        assert_eq!(
            parsed("https://plc.example"),
            ("plc.example".into(), 443, "/".into())
        );
        assert_eq!(
            parsed("https://[::1]:8443/PLCAPI/"),
            ("::1".into(), 8443, "/PLCAPI/".into())
        );
        assert!(HttpsUrl::parse("http://h/").is_err());
        assert!(HttpsUrl::parse("https://u:p@h/").is_err());
        assert!(HttpsUrl::parse("https://h:x/").is_err());
        assert!(HttpsUrl::parse("https://:1/").is_err());
    }
}
