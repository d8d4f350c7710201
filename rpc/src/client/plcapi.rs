//! [`PlcApiClient`]: PlanetLab Central's XML-RPC API (PLCAPI) over plain HTTPS, as the PLC
//! backend and `import` use it.
//!
//! Modelled on NEPI's `PLCAPI` class (`seeds/nepi-plcapi-client.py`): the auth struct goes first in
//! every call's arguments, `system.multicall` batches calls, `system.listMethods` is checked
//! against the methods we expect, and network errors are retried with a growing pause. Unlike
//! NEPI's `_retry`, the retry is bounded by [`RetryOptions::max_attempts`] (NEPI made a sixth,
//! unguarded attempt), the pause doubles instead of growing by 5 s, and nothing is retried once
//! the server answered: a fault, an HTTP error or an unreadable answer is final. A call whose
//! connection broke after it was sent may still have run, as with NEPI; PLCAPI's writes are
//! mostly idempotent (`Update*`, `Delete*`) or fail cleanly on a duplicate (`Add*`).

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use geni_xmlrpc::{Fault, MethodCall, Struct, Value};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::http::Failure;
use super::https::HttpsChannel;
use crate::RpcError;
use crate::tls::{ServerAuth, client_config};

const AUTH_CHECK: &str = "AuthCheck";
const LIST_METHODS: &str = "system.listMethods";
const MULTICALL: &str = "system.multicall";

/// Calls per `system.multicall` request unless [`PlcApiClient::with_multicall_batch`] says
/// otherwise: large enough to save round trips, small enough to stay far below the answer limit.
const DEFAULT_BATCH: usize = 100;

/// A client of one PLCAPI server.
#[derive(Debug)]
pub struct PlcApiClient {
    channel: HttpsChannel,
    auth: PlcAuth,
    options: RetryOptions,
    batch: usize,
}

/// How the client trusts the PLCAPI server.
#[derive(Debug, Clone)]
pub enum PlcServerAuth {
    /// The server's certificate must chain to a root in this PEM file and name the URL's host.
    CaFile(PathBuf),
    /// Any server certificate: the password then goes to whoever answers. For test beds only.
    DangerAcceptAny,
}

/// Who we are to PLCAPI: the struct sent as every call's first argument. `Debug` never shows the
/// password or the session key.
#[derive(Clone)]
pub enum PlcAuth {
    /// `{AuthMethod: "anonymous"}`.
    Anonymous,
    /// `{AuthMethod: "password", Username, AuthString}`.
    Password { username: String, password: String },
    /// `{AuthMethod: "session", session}`, with a key from `GetSession`.
    Session(String),
}

/// When and how often a call that got no answer is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Attempts in all, the first included (at least one is made).
    pub max_attempts: u32,
    /// Pause after the first failure; each further pause doubles.
    pub initial_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
    /// Bound on each attempt, connecting included.
    pub timeout: Duration,
}

// === impl PlcApiClient ===

impl PlcApiClient {
    /// A client of `url` (such as `https://www.planet-lab.eu:443/PLCAPI/`). Reads the CA file
    /// now; connects on the first call.
    pub fn new(
        url: &str,
        server: PlcServerAuth,
        auth: PlcAuth,
        options: RetryOptions,
    ) -> Result<Self, RpcError> {
        let config = match server {
            PlcServerAuth::CaFile(path) => ca_config(&path)?,
            PlcServerAuth::DangerAcceptAny => client_config(None, ServerAuth::DangerAcceptAny)?,
        };
        Ok(Self {
            channel: HttpsChannel::new(url, config, options.timeout)?,
            auth,
            options,
            batch: DEFAULT_BATCH,
        })
    }

    /// Sends at most `calls` calls per `system.multicall` request (at least one).
    #[must_use]
    pub fn with_multicall_batch(mut self, calls: usize) -> Self {
        self.batch = calls.max(1);
        self
    }

    /// Calls `method` with the auth struct prepended to `params`, retrying per the options while
    /// no answer comes. A fault is [`RpcError::Fault`] and is never retried.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, RpcError> {
        let call = MethodCall {
            method: method.to_owned(),
            params: self.with_auth(params),
        };
        self.send(&call).await
    }

    /// Checks that PLCAPI accepts our credentials (`AuthCheck`), as the 2008 code did on
    /// connecting: a wrong password is a fault here rather than in the middle of an import.
    pub async fn auth_check(&self) -> Result<(), RpcError> {
        self.call(AUTH_CHECK, Vec::new()).await.map(drop)
    }

    /// Runs `calls` (method, arguments without auth) through `system.multicall`, in requests of
    /// at most the batch size, and returns one result per call in order: the value, or the
    /// fault that call alone raised. An error means a whole request failed; results of earlier
    /// requests are then lost, though those calls did run.
    pub async fn multicall(
        &self,
        calls: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<Result<Value, Fault>>, RpcError> {
        let mut results = Vec::with_capacity(calls.len());
        let mut calls = calls.into_iter().peekable();
        while calls.peek().is_some() {
            let batch: Vec<Value> = calls
                .by_ref()
                .take(self.batch)
                .map(|(method, params)| {
                    Struct::new()
                        .with("methodName", method)
                        .with("params", Value::Array(self.with_auth(params)))
                        .into()
                })
                .collect();
            let sent = batch.len();
            let call = MethodCall {
                method: MULTICALL.to_owned(),
                params: vec![Value::Array(batch)],
            };
            let answer = self.send(&call).await?;
            results.extend(self.multicall_results(answer, sent)?);
        }
        Ok(results)
    }

    /// Lists the server's methods (`system.listMethods`) and warns once, naming them, about
    /// the `expected` ones it lacks.
    pub async fn discover(&self, expected: &[&str]) -> Result<Vec<String>, RpcError> {
        let call = MethodCall {
            method: LIST_METHODS.to_owned(),
            params: Vec::new(),
        };
        let answer = self.send(&call).await?;
        let Value::Array(items) = answer else {
            return Err(self.unexpected(LIST_METHODS, answer.type_name()));
        };
        let methods = items
            .into_iter()
            .map(|item| match item {
                Value::String(name) => Ok(name),
                other => Err(self.unexpected(LIST_METHODS, other.type_name())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let known: HashSet<&str> = methods.iter().map(String::as_str).collect();
        let mut missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|m| !known.contains(m))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            tracing::warn!(
                peer = %self.channel.peer(),
                count = missing.len(),
                missing = %missing.join(", "),
                "PLCAPI lacks expected methods"
            );
        }
        Ok(methods)
    }

    /// `params` behind the auth struct, as PLCAPI's signatures want.
    fn with_auth(&self, params: Vec<Value>) -> Vec<Value> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(self.auth.to_value());
        all.extend(params);
        all
    }

    /// One call, sent again after a pause for as long as no answer came and attempts remain.
    async fn send(&self, call: &MethodCall) -> Result<Value, RpcError> {
        let attempts = self.options.max_attempts.max(1);
        let mut backoff = self.options.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.channel.call(call).await {
                Ok(value) => return Ok(value),
                Err(Failure::Retryable(e)) if attempt < attempts => {
                    tracing::warn!(
                        peer = %self.channel.peer(),
                        method = %call.method,
                        attempt,
                        retry_in = ?backoff,
                        error = %e,
                        "PLCAPI call got no answer; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(self.options.max_backoff);
                    attempt += 1;
                }
                Err(Failure::Retryable(e)) if attempt > 1 => return Err(gave_up(e, attempt)),
                Err(failure) => return Err(failure.into()),
            }
        }
    }

    /// Each item of a `system.multicall` answer: `[value]` or `{faultCode, faultString}`.
    fn multicall_results(
        &self,
        answer: Value,
        sent: usize,
    ) -> Result<Vec<Result<Value, Fault>>, RpcError> {
        let items = match answer {
            Value::Array(items) if items.len() == sent => items,
            Value::Array(items) => {
                let what = format!("{} results for {sent} calls", items.len());
                return Err(self.unexpected(MULTICALL, &what));
            }
            other => return Err(self.unexpected(MULTICALL, other.type_name())),
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::Array(one) => match <[Value; 1]>::try_from(one) {
                    Ok([value]) => Ok(Ok(value)),
                    Err(_) => Err(self.unexpected(MULTICALL, "an array that is not [value]")),
                },
                Value::Struct(s) => fault_of_struct(&s)
                    .map(Err)
                    .ok_or_else(|| self.unexpected(MULTICALL, "a struct that is not a fault")),
                other => Err(self.unexpected(MULTICALL, other.type_name())),
            })
            .collect()
    }

    fn unexpected(&self, method: &str, what: &str) -> RpcError {
        RpcError::Transport(format!(
            "{} answered {method} with {what}, which PLCAPI does not send",
            self.channel.peer()
        ))
    }
}

/// Verifies the server with rustls' WebPKI verifier against the roots in `path`.
fn ca_config(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, RpcError> {
    let shown = path.display();
    let bad = |why: String| RpcError::config(format!("PLCAPI CA file {shown}: {why}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".to_owned()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| RpcError::config(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn fault_of_struct(s: &Struct) -> Option<Fault> {
    let code = s.get("faultCode")?.as_i64()?;
    Some(Fault {
        code: i32::try_from(code).ok()?,
        string: s.get("faultString")?.as_str()?.to_owned(),
    })
}

/// The last error, saying that it was the last of several attempts.
fn gave_up(error: RpcError, attempts: u32) -> RpcError {
    match error {
        RpcError::Transport(m) => {
            RpcError::Transport(format!("{m} (gave up after {attempts} attempts)"))
        }
        RpcError::Timeout(m) => {
            RpcError::Timeout(format!("{m} (gave up after {attempts} attempts)"))
        }
        other => other,
    }
}

// === impl PlcAuth ===

impl PlcAuth {
    /// The struct PLCAPI reads, member names as NEPI sends them.
    fn to_value(&self) -> Value {
        let auth = match self {
            Self::Anonymous => Struct::new().with("AuthMethod", "anonymous"),
            Self::Password { username, password } => Struct::new()
                .with("AuthMethod", "password")
                .with("Username", username.as_str())
                .with("AuthString", password.as_str()),
            Self::Session(key) => Struct::new()
                .with("AuthMethod", "session")
                .with("session", key.as_str()),
        };
        Value::Struct(auth)
    }
}

impl fmt::Debug for PlcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Session(_) => f.write_str("Session(..)"),
        }
    }
}

// === impl RetryOptions ===

impl Default for RetryOptions {
    /// Five attempts with pauses of 5, 10, 20 and 40 s: NEPI's first pause, and its 75 s of
    /// pauses in all, in one fewer attempt. A minute per attempt: PLCAPI's `GetSlivers` and
    /// `GetSlices` on a large PLC take tens of seconds.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
        }
    }
}
