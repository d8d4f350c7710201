//! The method table: name → handler, plus the `system.*` introspection methods and
//! `system.multicall`, and the per-call context a handler receives.
//!
//! Handlers see the TLS peer's certificate ([`PeerIdentity`]) with every call, never shared
//! server state: 2008 stored the caller on the server object, which threads then raced on.
//!
//! A multicall is bounded ([`Dispatcher::set_max_multicall`]) and isolates its sub-calls: each
//! failure, and each success whose value XML-RPC cannot carry, becomes that entry's own fault
//! while the others are answered. Errors answered as "internal error" are logged here with their
//! full cause, since the peer sees none of it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use geni_trust::work::WorkBudget;
use geni_xmlrpc::{Fault, MethodCall, MethodResponse, Struct, Value};

use crate::error::{clean, is_internal};
use crate::ratelimit::RateLimit;
use crate::{RpcError, fault_of};

/// What a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;

/// A method implementation. Closures `Fn(CallContext, Vec<Value>) -> impl Future` implement it.
pub trait Handler: Send + Sync {
    fn call(&self, ctx: CallContext, params: Vec<Value>) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(CallContext, Vec<Value>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
{
    fn call(&self, ctx: CallContext, params: Vec<Value>) -> HandlerFuture {
        Box::pin(self(ctx, params))
    }
}

/// The TLS peer of a connection: the certificate it presented and proved it holds the key of.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    certificate_der: Vec<u8>,
    spki: Vec<u8>,
    subject: String,
}

/// Everything a handler knows about the call besides its parameters.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub peer: Arc<PeerIdentity>,
    /// The TCP peer address (`None` on a Unix socket).
    pub remote: Option<SocketAddr>,
    /// What this request's verifications may cost (`geni_trust::work`), one budget for all the
    /// calls of a `system.multicall`.
    pub work: Arc<WorkBudget>,
}

struct Method {
    help: String,
    handler: Arc<dyn Handler>,
}

/// Name → handler, with `system.listMethods`, `system.methodHelp` and `system.multicall` built
/// in.
pub struct Dispatcher {
    methods: BTreeMap<String, Method>,
    max_multicall: usize,
    internal_errors: RateLimit,
}

/// Most calls one `system.multicall` may carry unless configured otherwise.
pub const DEFAULT_MAX_MULTICALL: usize = 64;

const LIST_METHODS: &str = "system.listMethods";
const METHOD_HELP: &str = "system.methodHelp";
const MULTICALL: &str = "system.multicall";

// === impl PeerIdentity ===

impl PeerIdentity {
    /// From the DER of the certificate the TLS handshake verified possession of.
    pub fn from_der(der: &[u8]) -> Result<Self, RpcError> {
        let x509 = openssl::x509::X509::from_der(der)
            .map_err(|e| RpcError::Internal(format!("peer certificate: {e}")))?;
        let spki = x509
            .public_key()
            .and_then(|k| k.public_key_to_der())
            .map_err(|e| RpcError::Internal(format!("peer certificate key: {e}")))?;
        let subject = x509
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .unwrap_or_default();
        Ok(Self {
            certificate_der: der.to_vec(),
            spki,
            subject,
        })
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The peer's SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The certificate's subject CN (empty when it has none); for logs, never for trust.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Whether the peer holds `key`.
    pub fn holds(&self, key: &geni_trust::PublicKey) -> bool {
        self.spki == key.spki_der()
    }

    /// Binds the caller to the TLS connection: the peer must hold the caller GID's key.
    pub fn require_caller(&self, caller: &geni_trust::Gid) -> Result<(), RpcError> {
        if self.holds(caller.public_key()) {
            Ok(())
        } else {
            Err(RpcError::KeyMismatch {
                caller: caller.hrn().to_string(),
            })
        }
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

// === impl Dispatcher ===

impl Default for Dispatcher {
    fn default() -> Self {
        Self {
            methods: BTreeMap::new(),
            max_multicall: DEFAULT_MAX_MULTICALL,
            internal_errors: RateLimit::new(std::time::Duration::from_secs(1)),
        }
    }
}

impl Dispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Most calls one `system.multicall` may carry; a longer one is refused whole before any of
    /// its calls runs (each call can cost a chain verification).
    pub fn set_max_multicall(&mut self, max: usize) {
        self.max_multicall = max;
    }

    /// Adds `name`. Names beginning with `system.` are reserved.
    pub fn register(&mut self, name: &str, help: &str, handler: impl Handler + 'static) {
        debug_assert!(!name.starts_with("system."), "system.* names are reserved");
        self.methods.insert(
            name.to_owned(),
            Method {
                help: help.to_owned(),
                handler: Arc::new(handler),
            },
        );
    }

    /// Every method name, `system.*` included, sorted.
    pub fn method_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.methods.keys().cloned().collect();
        names.extend([LIST_METHODS, METHOD_HELP, MULTICALL].map(str::to_owned));
        names.sort();
        names
    }

    /// Runs one call to its response (a fault for every error).
    pub async fn dispatch(&self, ctx: CallContext, call: MethodCall) -> MethodResponse {
        match self.run(ctx, &call.method, call.params).await {
            Ok(v) => MethodResponse::Success(v),
            Err(e) => MethodResponse::Fault(self.fault(&call.method, &e)),
        }
    }

    /// The fault for `err`, logging the cause of an internal error (the peer is told only that
    /// there was one).
    fn fault(&self, method: &str, err: &RpcError) -> Fault {
        if is_internal(err)
            && let Some(suppressed) = self.internal_errors.allow()
        {
            tracing::error!(
                method = %clean(method, crate::MAX_FAULT_CHARS),
                error = %clean(&err.to_string(), 4096),
                suppressed,
                "Internal error"
            );
        }
        fault_of(err)
    }

    async fn run(
        &self,
        ctx: CallContext,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, RpcError> {
        match method {
            LIST_METHODS => Ok(Value::Array(
                self.method_names().into_iter().map(Value::String).collect(),
            )),
            METHOD_HELP => {
                let name = match params.as_slice() {
                    [Value::String(name)] => name,
                    _ => {
                        return Err(RpcError::invalid_params(
                            METHOD_HELP,
                            "takes one method name",
                        ));
                    }
                };
                let help = match name.as_str() {
                    LIST_METHODS => "system.listMethods(): the names of every method.",
                    METHOD_HELP => "system.methodHelp(name): what a method does.",
                    MULTICALL => {
                        "system.multicall([{methodName, params}, …]): several calls in one request."
                    }
                    other => {
                        &self
                            .methods
                            .get(other)
                            .ok_or_else(|| RpcError::MethodNotFound(other.to_owned()))?
                            .help
                    }
                };
                Ok(Value::String(help.to_owned()))
            }
            MULTICALL => self.multicall(ctx, params).await,
            name => {
                let m = self
                    .methods
                    .get(name)
                    .ok_or_else(|| RpcError::MethodNotFound(name.to_owned()))?;
                m.handler.call(ctx, params).await
            }
        }
    }

    /// Python's `MultiCall` convention: a success is `[value]`, a failure `{faultCode,
    /// faultString}`. Calls run in order; nesting is refused.
    async fn multicall(&self, ctx: CallContext, params: Vec<Value>) -> Result<Value, RpcError> {
        let calls = match params.into_iter().next() {
            Some(Value::Array(calls)) => calls,
            _ => {
                return Err(RpcError::invalid_params(
                    MULTICALL,
                    "takes one array of {methodName, params}",
                ));
            }
        };
        if calls.len() > self.max_multicall {
            return Err(RpcError::invalid_params(
                MULTICALL,
                format!(
                    "{} calls is over the limit of {} per multicall",
                    calls.len(),
                    self.max_multicall
                ),
            ));
        }
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            let (name, outcome) = match split_call(call) {
                Ok((name, _)) if name == MULTICALL => {
                    let e =
                        RpcError::invalid_params(MULTICALL, "system.multicall cannot be nested");
                    (name, Err(e))
                }
                Ok((name, params)) => {
                    let outcome = Box::pin(self.run(ctx.clone(), &name, params)).await;
                    (name, outcome)
                }
                Err(e) => (String::new(), Err(e)),
            };
            // One entry XML-RPC cannot carry must not cost the other entries their answers.
            let outcome = outcome.and_then(|v| {
                match geni_xmlrpc::dumps_params(std::slice::from_ref(&v), true) {
                    Ok(_) => Ok(v),
                    Err(e) => Err(RpcError::Internal(format!("unencodable result: {e}"))),
                }
            });
            results.push(match outcome {
                Ok(v) => Value::Array(vec![v]),
                Err(e) => fault_value(&self.fault(&name, &e)),
            });
        }
        Ok(Value::Array(results))
    }
}

fn split_call(call: Value) -> Result<(String, Vec<Value>), RpcError> {
    let bad = || {
        RpcError::invalid_params(
            MULTICALL,
            "each call is a struct {methodName: string, params: array}",
        )
    };
    let Value::Struct(mut s) = call else {
        return Err(bad());
    };
    let name = match s.remove("methodName") {
        Some(Value::String(n)) => n,
        _ => return Err(bad()),
    };
    let params = match s.remove("params") {
        Some(Value::Array(p)) => p,
        None => Vec::new(),
        Some(_) => return Err(bad()),
    };
    Ok((name, params))
}

fn fault_value(f: &Fault) -> Value {
    Value::Struct(
        Struct::new()
            .with("faultCode", i64::from(f.code))
            .with("faultString", f.string.clone()),
    )
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}
