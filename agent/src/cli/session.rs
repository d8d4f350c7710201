//! [`Session`]: the Geni calls of 2008's `geniclient.py` (reference §4.4) on one server, typed.
//! Credentials, GIDs and tickets go out as the text they were read from and come back parsed
//! with their text kept ([`Wire`]); records come back as [`Record`]s.
//!
//! The same session serves the plc and a node: the method called decides, the URL says where.
//! Nothing here prints; `genicli` and `geni-agent demo` decide how results look.

use std::time::Duration;

use geni_rpc::client::GeniClient;
use geni_rpc::{ServerAuth, TlsIdentity};
use geni_trust::{Credential, Gid, Hrn, RecordType, Ticket, TrustError};
use geni_xmlrpc::{Struct, Value};

use super::args::SliceOp;
use super::error::CliError;
use super::files::Wire;
use super::record::Record;

/// A client of one Geni server.
#[derive(Debug)]
pub struct Session {
    client: GeniClient,
    url: String,
}

impl Session {
    /// A session with `url` presenting `identity`, trusting the server per `auth`; `timeout`
    /// bounds each call. Nothing is connected until the first call.
    pub fn new(
        url: &str,
        identity: TlsIdentity,
        auth: ServerAuth,
        timeout: Duration,
    ) -> Result<Self, CliError> {
        let client = GeniClient::new(url, identity, auth, timeout).map_err(|e| match e {
            geni_rpc::RpcError::Config(m) => CliError::usage(format!("--server: {m}")),
            other => CliError::usage(format!("--server {url}: {other}")),
        })?;
        Ok(Self {
            client,
            url: url.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One call; failures say which server and method.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, CliError> {
        self.client
            .call(method, params)
            .await
            .map_err(|e| CliError::from_rpc(&self.url, method, e))
    }

    /// `get_self_credential(type, hrn)`: needs no credential, only the key of the record's GID.
    pub async fn get_self_credential(
        &self,
        kind: RecordType,
        hrn: &Hrn,
    ) -> Result<Wire<Credential>, CliError> {
        let method = "get_self_credential";
        let v = self
            .call(method, vec![kind.as_str().into(), hrn.as_str().into()])
            .await?;
        self.object(method, &v, "credential", Credential::parse)
    }

    /// `get_credential(cred, type, hrn)`.
    pub async fn get_credential(
        &self,
        cred: &str,
        kind: RecordType,
        hrn: &Hrn,
    ) -> Result<Wire<Credential>, CliError> {
        let method = "get_credential";
        let v = self
            .call(
                method,
                vec![cred.into(), kind.as_str().into(), hrn.as_str().into()],
            )
            .await?;
        self.object(method, &v, "credential", Credential::parse)
    }

    /// `resolve(cred, hrn)`: every record at that name.
    pub async fn resolve(&self, cred: &str, hrn: &Hrn) -> Result<Vec<Record>, CliError> {
        let v = self
            .call("resolve", vec![cred.into(), hrn.as_str().into()])
            .await?;
        self.records("resolve", &v)
    }

    /// `list(cred[, hrn])`: the records under an authority.
    pub async fn list(&self, cred: &str, hrn: Option<&Hrn>) -> Result<Vec<Record>, CliError> {
        let mut params = vec![Value::from(cred)];
        if let Some(h) = hrn {
            params.push(h.as_str().into());
        }
        let v = self.call("list", params).await?;
        self.records("list", &v)
    }

    /// `create_gid(cred, hrn, uuid, pubkey)`: a GID for `pubkey_pem` (SPKI PEM) signed by the
    /// registry; a random uuid when `uuid` is `None`.
    pub async fn create_gid(
        &self,
        cred: &str,
        hrn: &Hrn,
        uuid: Option<&str>,
        pubkey_pem: &str,
    ) -> Result<Wire<Gid>, CliError> {
        let method = "create_gid";
        let uuid = uuid.map_or(Value::Nil, Value::from);
        let v = self
            .call(
                method,
                vec![cred.into(), hrn.as_str().into(), uuid, pubkey_pem.into()],
            )
            .await?;
        self.object(method, &v, "GID", Gid::parse)
    }

    /// `register(cred, record)`: returns the registered record's GID.
    pub async fn register(&self, cred: &str, record: &Record) -> Result<Wire<Gid>, CliError> {
        let method = "register";
        let v = self
            .call(method, vec![cred.into(), record.to_value()])
            .await?;
        self.object(method, &v, "GID", Gid::parse)
    }

    /// `remove(cred, record)`.
    pub async fn remove(&self, cred: &str, record: &Record) -> Result<Value, CliError> {
        self.call("remove", vec![cred.into(), record.to_value()])
            .await
    }

    /// `update(cred, record)`.
    pub async fn update(&self, cred: &str, record: &Record) -> Result<Value, CliError> {
        self.call("update", vec![cred.into(), record.to_value()])
            .await
    }

    /// `get_ticket(cred, hrn, rspec[, node])`; 2008's client always sent an empty rspec. With
    /// `node`, the ticket is good only on that node.
    pub async fn get_ticket(
        &self,
        cred: &str,
        hrn: &Hrn,
        node: Option<&Hrn>,
    ) -> Result<Wire<Ticket>, CliError> {
        let method = "get_ticket";
        let mut params = vec![cred.into(), hrn.as_str().into(), Struct::new().into()];
        if let Some(n) = node {
            params.push(n.as_str().into());
        }
        let v = self.call(method, params).await?;
        self.object(method, &v, "ticket", Ticket::parse)
    }

    /// `redeem_ticket(ticket)`: our nodes answer with a sliver credential (2008 returned
    /// nothing), which is returned when present.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<Option<Wire<Credential>>, CliError> {
        let method = "redeem_ticket";
        let v = self.call(method, vec![ticket.into()]).await?;
        match &v {
            Value::String(_) => self
                .object(method, &v, "sliver credential", Credential::parse)
                .map(Some),
            _ => Ok(None),
        }
    }

    /// `start_slice`, `stop_slice`, `reset_slice` or `delete_slice` with `cred`, and the slice
    /// when the credential is over an authority.
    pub async fn slice_op(
        &self,
        op: SliceOp,
        cred: &str,
        hrn: Option<&Hrn>,
    ) -> Result<Value, CliError> {
        self.call(op.method(), credential_params(cred, hrn)).await
    }

    /// The slivers the credential may see: `list_slivers(cred)`'s `{name, slice, state, …}`
    /// structs from our node, or `list_slices(cred)`'s bare names from a node that has no
    /// `list_slivers` (2008's component).
    pub async fn list_slices(&self, cred: &str, hrn: Option<&Hrn>) -> Result<Vec<Value>, CliError> {
        let mut method = "list_slivers";
        let v = match self.call(method, credential_params(cred, hrn)).await {
            Err(CliError::Fault { code: -32601, .. }) => {
                method = "list_slices";
                self.call(method, credential_params(cred, hrn)).await?
            }
            other => other?,
        };
        match v {
            Value::Array(items) => Ok(items),
            other => Err(self.bad_answer(method, &format!("a {}", other.type_name()), "a list")),
        }
    }

    fn records(&self, method: &str, v: &Value) -> Result<Vec<Record>, CliError> {
        Record::list_from_value(v, method).map_err(|m| CliError::Connection {
            url: self.url.clone(),
            message: m,
            hint: None,
        })
    }

    /// A string answer parsed as `what`, its text kept.
    fn object<T>(
        &self,
        method: &str,
        v: &Value,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, TrustError>,
    ) -> Result<Wire<T>, CliError> {
        let Value::String(text) = v else {
            return Err(self.bad_answer(method, &format!("a {}", v.type_name()), what));
        };
        let value = parse(text)
            .map_err(|e| self.bad_answer(method, &format!("an unreadable {what} ({e})"), what))?;
        Ok(Wire {
            value,
            text: text.clone(),
        })
    }

    fn bad_answer(&self, method: &str, got: &str, wanted: &str) -> CliError {
        CliError::Connection {
            url: self.url.clone(),
            message: format!("{method} returned {got}, not {wanted}"),
            hint: Some("is --server a Geni server of this protocol?".to_owned()),
        }
    }
}

fn credential_params(cred: &str, hrn: Option<&Hrn>) -> Vec<Value> {
    let mut params = vec![Value::from(cred)];
    if let Some(h) = hrn {
        params.push(h.as_str().into());
    }
    params
}
