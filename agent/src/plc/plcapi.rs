//! The `plcapi` PLC backend: [`PlcBackend`] over a remote PLCAPI, as the 2008 wrapper's
//! `remoteshell` and NEPI's `PLCAPI` class drive it (`seeds/nepi-plcapi-client.py`), through
//! `geni_rpc::client::PlcApiClient`.
//!
//! On connecting it lists PLCAPI's methods (warning about any of ours it lacks, and learning
//! whether `system.multicall` is there) and runs `AuthCheck`, so that a wrong password stops
//! `geni-agent plc` at start rather than in the middle of an import. Calls that got no answer are
//! retried with back-off a bounded number of times; a fault never is. Bulk reads are batched:
//! `Lookup::All` first asks for the ids alone (so no answer grows with the whole table), then the
//! rows go `ids_per_call` at a time, several calls per `system.multicall` request.
//!
//! Every row is checked against PLCAPI 4.2's struct shapes (`reference/nodemanager.md` §6,
//! `reference/geniwrapper-2008.md` §4.2) and keeps the struct it came from in `raw`; a member of
//! the wrong type or missing is [`PlcError::Malformed`] naming the method and the field. PLCAPI's
//! `Invalid argument: No such …` faults become [`PlcError::NotFound`] naming the object asked for;
//! other faults are [`PlcError::Refused`] with PLC's own message.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use geni_rpc::RpcError;
use geni_rpc::client::{PlcApiClient, PlcAuth, PlcServerAuth, RetryOptions};
use geni_xmlrpc::{Fault, Struct, Value};
use serde::Deserialize;

use super::backend::{
    InitScript, Key, Lookup, Person, PersonState, PlcBackend, PlcError, PlcNode, PlcResult, Site,
    SiteState, Slice, SliceAttribute,
};

/// Every PLCAPI method this backend calls, for discovery.
const METHODS: [&str; 29] = [
    "AuthCheck",
    "GetSites",
    "GetPersons",
    "GetKeys",
    "GetSlices",
    "GetNodes",
    "GetSliceAttributes",
    "GetInitScripts",
    "AddSite",
    "AddPerson",
    "AddSlice",
    "AddNode",
    "AddPersonKey",
    "AddPersonToSite",
    "AddRoleToPerson",
    "AddPersonToSlice",
    "AddSliceAttribute",
    "UpdateSliceAttribute",
    "AddInitScript",
    "UpdateSite",
    "UpdatePerson",
    "UpdateSlice",
    "UpdateNode",
    "DeleteSite",
    "DeletePerson",
    "DeleteSlice",
    "DeleteNode",
    "system.listMethods",
    "system.multicall",
];

const MULTICALL: &str = "system.multicall";

/// `[plc.plcapi]`: where PLCAPI is, who we are to it, how we trust it, how hard we try.
///
/// ```toml
/// [plc.plcapi]
/// url = "https://www.planet-lab.org:443/PLCAPI/"
/// auth = "password"              # or "session"
/// username = "maint@localhost.localdomain"
/// password = "…"                 # or session = "…"; GENI_AGENT_PLC__PLCAPI__PASSWORD works too
/// ca_file = "/etc/geni-agent/plc-ca.pem"
/// multicall_batch = 100
/// ids_per_call = 200
/// [plc.plcapi.retry]
/// max_attempts = 5
/// initial_backoff_ms = 5000
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlcApiSettings {
    /// `https://host[:port]/PLCAPI/`.
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) auth: AuthMethod,
    /// The account for password auth (PLCAPI's `Username`, an e-mail address).
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<Secret>,
    /// A key from `GetSession`, for session auth.
    #[serde(default)]
    pub(crate) session: Option<Secret>,
    /// PEM file of the CA (or the self-signed certificate) PLCAPI's certificate must chain to.
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    /// Accept any server certificate: the password then goes to whoever answers.
    #[serde(default)]
    pub(crate) danger_accept_any_certificate: bool,
    #[serde(default)]
    pub(crate) retry: RetrySettings,
    /// Calls per `system.multicall` request.
    #[serde(default = "default_multicall_batch")]
    pub(crate) multicall_batch: usize,
    /// Ids or names per `Get*` call in bulk reads.
    #[serde(default = "default_ids_per_call")]
    pub(crate) ids_per_call: usize,
}

/// PLCAPI's `AuthMethod`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuthMethod {
    #[default]
    Password,
    Session,
}

/// `[plc.plcapi.retry]`: [`RetryOptions`] in configuration units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetrySettings {
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff_ms: u64,
    pub(crate) max_backoff_ms: u64,
    pub(crate) timeout_secs: u64,
}

/// A password or session key: read from the configuration, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn default_multicall_batch() -> usize {
    100
}

fn default_ids_per_call() -> usize {
    200
}

impl Default for RetrySettings {
    fn default() -> Self {
        let d = RetryOptions::default();
        Self {
            max_attempts: d.max_attempts,
            initial_backoff_ms: millis(d.initial_backoff),
            max_backoff_ms: millis(d.max_backoff),
            timeout_secs: d.timeout.as_secs(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl PlcApiSettings {
    /// The auth struct, server trust and retry policy these settings ask for, checked.
    fn parts(&self) -> anyhow::Result<(PlcAuth, PlcServerAuth, RetryOptions)> {
        if !self.url.starts_with("https://") {
            bail!("plc.plcapi.url must be an https:// URL, not {:?}", self.url);
        }
        let auth = match self.auth {
            AuthMethod::Password => {
                if self.session.is_some() {
                    bail!("plc.plcapi: session is set but auth = \"password\"");
                }
                match (&self.username, &self.password) {
                    (Some(username), Some(password)) if !username.is_empty() => PlcAuth::Password {
                        username: username.clone(),
                        password: password.0.clone(),
                    },
                    _ => bail!(
                        "plc.plcapi: auth = \"password\" needs username and password \
                         (or set auth = \"session\" and session)"
                    ),
                }
            }
            AuthMethod::Session => match &self.session {
                Some(key) if self.password.is_none() && !key.0.is_empty() => {
                    PlcAuth::Session(key.0.clone())
                }
                Some(_) => bail!("plc.plcapi: password is set but auth = \"session\""),
                None => bail!("plc.plcapi: auth = \"session\" needs session"),
            },
        };
        let server = match (&self.ca_file, self.danger_accept_any_certificate) {
            (Some(path), false) => PlcServerAuth::CaFile(path.clone()),
            (None, true) => PlcServerAuth::DangerAcceptAny,
            (Some(_), true) => {
                bail!("plc.plcapi: set either ca_file or danger_accept_any_certificate, not both")
            }
            (None, false) => bail!(
                "plc.plcapi: set ca_file to the CA that signed PLCAPI's certificate \
                 (danger_accept_any_certificate = true skips the check, for test beds only)"
            ),
        };
        let r = &self.retry;
        if r.max_attempts == 0 {
            bail!("plc.plcapi.retry.max_attempts must be at least 1");
        }
        if r.timeout_secs == 0 {
            bail!("plc.plcapi.retry.timeout_secs must be at least 1");
        }
        if self.multicall_batch == 0 || self.ids_per_call == 0 {
            bail!("plc.plcapi.multicall_batch and ids_per_call must be at least 1");
        }
        let retry = RetryOptions {
            max_attempts: r.max_attempts,
            initial_backoff: Duration::from_millis(r.initial_backoff_ms),
            max_backoff: Duration::from_millis(r.max_backoff_ms.max(r.initial_backoff_ms)),
            timeout: Duration::from_secs(r.timeout_secs),
        };
        Ok((auth, server, retry))
    }
}

/// A remote PLCAPI.
#[derive(Debug)]
pub(crate) struct PlcApiBackend {
    client: PlcApiClient,
    url: String,
    ids_per_call: usize,
    /// Whether PLCAPI listed `system.multicall`; without it bulk reads go call by call.
    multicall: bool,
}

// === impl PlcApiBackend ===

impl PlcApiBackend {
    /// A backend for `settings`, checked and with its CA file read; nothing is sent yet.
    pub(crate) fn new(settings: &PlcApiSettings) -> anyhow::Result<Self> {
        let (auth, server, retry) = settings.parts()?;
        let client = PlcApiClient::new(&settings.url, server, auth, retry)
            .with_context(|| format!("PLCAPI at {}", settings.url))?
            .with_multicall_batch(settings.multicall_batch);
        Ok(Self {
            client,
            url: settings.url.clone(),
            ids_per_call: settings.ids_per_call,
            multicall: true,
        })
    }

    /// Lists PLCAPI's methods and checks our credentials with `AuthCheck`, as the 2008 wrapper
    /// did on connecting.
    pub(crate) async fn connect(mut self) -> PlcResult<Self> {
        match self.client.discover(&METHODS).await {
            Ok(methods) => self.multicall = methods.iter().any(|m| m == MULTICALL),
            // Some PLCAPI front ends do not answer system.listMethods; calls still work.
            Err(RpcError::Fault(f)) => {
                tracing::warn!(
                    url = %self.url,
                    fault.code = f.code,
                    fault.string = %f.string,
                    "PLCAPI did not list its methods; assuming system.multicall"
                );
            }
            Err(e) => return Err(unavailable("system.listMethods", &e)),
        }
        self.client
            .auth_check()
            .await
            .map_err(|e| error_of("AuthCheck", e, &[]))?;
        tracing::info!(url = %self.url, multicall = self.multicall, "PLCAPI accepted our credentials");
        Ok(self)
    }

    /// `Get<table>` rows for `lookup`, in batches (see the module text).
    async fn get_rows(&self, spec: &TableSpec, lookup: Lookup) -> PlcResult<Vec<Struct>> {
        let method = spec.method;
        let keys: Vec<Value> = match lookup {
            Lookup::All => {
                // No filter is nil, not `{}`: PLCAPI 4.2's `Filter` accepts None, while an empty
                // struct builds SQL some of its versions reject.
                let only_ids = vec![Value::Nil, Value::Array(vec![spec.id_field.into()])];
                let answer = self.call(method, only_ids, &[]).await?;
                rows_of(method, answer)?
                    .iter()
                    .map(|row| Row::new(method, row).int(spec.id_field).map(Value::Int))
                    .collect::<PlcResult<_>>()?
            }
            Lookup::Ids(ids) => ids.into_iter().map(Value::Int).collect(),
            Lookup::Names(names) => names.into_iter().map(Value::String).collect(),
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let calls: Vec<(String, Vec<Value>)> = keys
            .chunks(self.ids_per_call)
            .map(|chunk| (method.to_owned(), vec![Value::Array(chunk.to_vec())]))
            .collect();
        let answers = if calls.len() > 1 && self.multicall {
            self.client
                .multicall(calls)
                .await
                .map_err(|e| error_of(MULTICALL, e, &[]))?
                .into_iter()
                .map(|r| r.map_err(|f| error_of(method, RpcError::Fault(f), &[])))
                .collect::<PlcResult<Vec<_>>>()?
        } else {
            let mut answers = Vec::with_capacity(calls.len());
            for (_, params) in calls {
                answers.push(self.call(method, params, &[]).await?);
            }
            answers
        };
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        for answer in answers {
            for row in rows_of(method, answer)? {
                // Overlapping lookups (an id and its name) answer the same row twice.
                if seen.insert(Row::new(method, &row).int(spec.id_field)?) {
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }

    /// One call; `subjects` name the objects PLCAPI's "No such …" may refer to.
    async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        subjects: &[(&str, String)],
    ) -> PlcResult<Value> {
        self.client
            .call(method, params)
            .await
            .map_err(|e| error_of(method, e, subjects))
    }

    /// A call answering a new id.
    async fn add(
        &self,
        method: &str,
        params: Vec<Value>,
        subjects: &[(&str, String)],
    ) -> PlcResult<i64> {
        match self.call(method, params, subjects).await? {
            Value::Int(id) => Ok(id),
            other => Err(PlcError::Malformed {
                what: format!("{method}: answered {}, not the new id", other.type_name()),
            }),
        }
    }

    /// A call answering 1 on success.
    async fn done(
        &self,
        method: &str,
        params: Vec<Value>,
        subjects: &[(&str, String)],
    ) -> PlcResult<()> {
        match self.call(method, params, subjects).await? {
            Value::Int(_) | Value::Bool(true) => Ok(()),
            other => Err(PlcError::Malformed {
                what: format!("{method}: answered {}, not 1", other.type_name()),
            }),
        }
    }
}

/// A PLCAPI table: its `Get*` method and primary key.
struct TableSpec {
    method: &'static str,
    id_field: &'static str,
}

const SITES: TableSpec = TableSpec {
    method: "GetSites",
    id_field: "site_id",
};
const PERSONS: TableSpec = TableSpec {
    method: "GetPersons",
    id_field: "person_id",
};
const KEYS: TableSpec = TableSpec {
    method: "GetKeys",
    id_field: "key_id",
};
const SLICES: TableSpec = TableSpec {
    method: "GetSlices",
    id_field: "slice_id",
};
const NODES: TableSpec = TableSpec {
    method: "GetNodes",
    id_field: "node_id",
};
const INITSCRIPTS: TableSpec = TableSpec {
    method: "GetInitScripts",
    id_field: "initscript_id",
};

impl PlcBackend for PlcApiBackend {
    async fn get_sites(&self, lookup: Lookup) -> PlcResult<Vec<Site>> {
        let rows = self.get_rows(&SITES, lookup).await?;
        rows.into_iter().map(site_of).collect()
    }

    async fn person_state(&self, id: i64) -> PlcResult<Option<PersonState>> {
        // Only the two fields: PLCAPI's GetPersons otherwise lists every slice of the person.
        let fields = Value::Array(vec!["enabled".into(), "site_ids".into()]);
        let ids = Value::Array(vec![Value::Int(id)]);
        let answer = self.call(PERSONS.method, vec![ids, fields], &[]).await?;
        rows_of(PERSONS.method, answer)?
            .first()
            .map(|raw| {
                let r = Row::new(PERSONS.method, raw);
                Ok(PersonState {
                    enabled: r.bool("enabled")?,
                    site_ids: r.ints("site_ids")?,
                })
            })
            .transpose()
    }

    async fn site_states(&self, ids: Vec<i64>) -> PlcResult<Vec<SiteState>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Only the two fields: PLCAPI's GetSites otherwise lists every slice of the site.
        let fields = Value::Array(vec!["login_base".into(), "enabled".into()]);
        let ids = Value::Array(ids.into_iter().map(Value::Int).collect());
        let answer = self.call(SITES.method, vec![ids, fields], &[]).await?;
        rows_of(SITES.method, answer)?
            .iter()
            .map(|raw| {
                let r = Row::new(SITES.method, raw);
                Ok(SiteState {
                    login_base: r.string("login_base")?,
                    enabled: r.bool("enabled")?,
                })
            })
            .collect()
    }

    async fn get_persons(&self, lookup: Lookup) -> PlcResult<Vec<Person>> {
        let rows = self.get_rows(&PERSONS, lookup).await?;
        rows.into_iter().map(person_of).collect()
    }

    async fn get_keys(&self, lookup: Lookup) -> PlcResult<Vec<Key>> {
        let rows = self.get_rows(&KEYS, lookup).await?;
        rows.into_iter().map(key_of).collect()
    }

    async fn get_slices(&self, lookup: Lookup) -> PlcResult<Vec<Slice>> {
        let rows = self.get_rows(&SLICES, lookup).await?;
        rows.into_iter().map(slice_of).collect()
    }

    async fn get_nodes(&self, lookup: Lookup) -> PlcResult<Vec<PlcNode>> {
        let rows = self.get_rows(&NODES, lookup).await?;
        rows.into_iter().map(node_of).collect()
    }

    async fn get_slice_attributes(&self, slice_id: i64) -> PlcResult<Vec<SliceAttribute>> {
        // The 2008 call: GetSliceAttributes({'slice_id': id}).
        let filter = Struct::new().with("slice_id", slice_id);
        let answer = self
            .call("GetSliceAttributes", vec![filter.into()], &[])
            .await?;
        rows_of("GetSliceAttributes", answer)?
            .into_iter()
            .map(slice_attribute_of)
            .collect()
    }

    async fn get_initscripts(&self, lookup: Lookup) -> PlcResult<Vec<InitScript>> {
        let rows = self.get_rows(&INITSCRIPTS, lookup).await?;
        rows.into_iter().map(initscript_of).collect()
    }

    async fn add_site(&self, fields: Struct) -> PlcResult<i64> {
        self.add("AddSite", vec![fields.into()], &[]).await
    }

    async fn add_person(&self, fields: Struct) -> PlcResult<i64> {
        self.add("AddPerson", vec![fields.into()], &[]).await
    }

    async fn add_slice(&self, fields: Struct) -> PlcResult<i64> {
        self.add("AddSlice", vec![fields.into()], &[]).await
    }

    async fn add_node(&self, login_base: &str, fields: Struct) -> PlcResult<i64> {
        let subjects = [("site", format!("site {login_base}"))];
        self.add("AddNode", vec![login_base.into(), fields.into()], &subjects)
            .await
    }

    async fn add_person_key(&self, person_id: i64, key_type: &str, key: &str) -> PlcResult<i64> {
        let fields = Struct::new().with("key_type", key_type).with("key", key);
        let subjects = [("account", format!("person {person_id}"))];
        self.add(
            "AddPersonKey",
            vec![Value::Int(person_id), fields.into()],
            &subjects,
        )
        .await
    }

    async fn add_person_to_site(&self, person_id: i64, site_id: i64) -> PlcResult<()> {
        let subjects = [
            ("account", format!("person {person_id}")),
            ("site", format!("site {site_id}")),
        ];
        let params = vec![Value::Int(person_id), Value::Int(site_id)];
        self.done("AddPersonToSite", params, &subjects).await
    }

    async fn add_role_to_person(&self, role: &str, person_id: i64) -> PlcResult<()> {
        let subjects = [("account", format!("person {person_id}"))];
        let params = vec![role.into(), Value::Int(person_id)];
        self.done("AddRoleToPerson", params, &subjects).await
    }

    async fn add_person_to_slice(&self, person_id: i64, slice_id: i64) -> PlcResult<()> {
        let subjects = [
            ("account", format!("person {person_id}")),
            ("slice", format!("slice {slice_id}")),
        ];
        let params = vec![Value::Int(person_id), Value::Int(slice_id)];
        self.done("AddPersonToSlice", params, &subjects).await
    }

    async fn set_slice_attribute(
        &self,
        slice_id: i64,
        name: &str,
        value: &str,
        node_id: Option<i64>,
    ) -> PlcResult<i64> {
        // PLCAPI 4.2 has no "set": update the row for this name and node, or add one.
        let existing = self.get_slice_attributes(slice_id).await?;
        if let Some(row) = existing
            .iter()
            .find(|a| a.name == name && a.node_id == node_id)
        {
            let id = row.slice_attribute_id;
            let subjects = [("slice attribute", format!("slice attribute {id}"))];
            let params = vec![Value::Int(id), value.into()];
            self.done("UpdateSliceAttribute", params, &subjects).await?;
            return Ok(id);
        }
        let mut params = vec![Value::Int(slice_id), name.into(), value.into()];
        let mut subjects = vec![
            ("slice", format!("slice {slice_id}")),
            ("slice attribute", format!("slice attribute type {name}")),
        ];
        if let Some(node) = node_id {
            params.push(Value::Int(node));
            subjects.push(("node", format!("node {node}")));
        }
        self.add("AddSliceAttribute", params, &subjects).await
    }

    async fn add_initscript(&self, name: &str, script: &str) -> PlcResult<i64> {
        let fields = Struct::new()
            .with("name", name)
            .with("enabled", true)
            .with("script", script);
        self.add("AddInitScript", vec![fields.into()], &[]).await
    }

    async fn update_site(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let subjects = [("site", format!("site {id}"))];
        self.done("UpdateSite", vec![Value::Int(id), fields.into()], &subjects)
            .await
    }

    async fn update_person(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let subjects = [("account", format!("person {id}"))];
        self.done(
            "UpdatePerson",
            vec![Value::Int(id), fields.into()],
            &subjects,
        )
        .await
    }

    async fn update_slice(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let subjects = [("slice", format!("slice {id}"))];
        self.done(
            "UpdateSlice",
            vec![Value::Int(id), fields.into()],
            &subjects,
        )
        .await
    }

    async fn update_node(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let subjects = [("node", format!("node {id}"))];
        self.done("UpdateNode", vec![Value::Int(id), fields.into()], &subjects)
            .await
    }

    async fn delete_site(&self, id: i64) -> PlcResult<()> {
        let subjects = [("site", format!("site {id}"))];
        self.done("DeleteSite", vec![Value::Int(id)], &subjects)
            .await
    }

    async fn delete_person_from_slice(&self, person_id: i64, slice_id: i64) -> PlcResult<()> {
        let subjects = [
            ("account", format!("person {person_id}")),
            ("slice", format!("slice {slice_id}")),
        ];
        let params = vec![Value::Int(person_id), Value::Int(slice_id)];
        self.done("DeletePersonFromSlice", params, &subjects).await
    }

    async fn delete_person(&self, id: i64) -> PlcResult<()> {
        let subjects = [("account", format!("person {id}"))];
        self.done("DeletePerson", vec![Value::Int(id)], &subjects)
            .await
    }

    async fn delete_slice(&self, id: i64) -> PlcResult<()> {
        let subjects = [("slice", format!("slice {id}"))];
        self.done("DeleteSlice", vec![Value::Int(id)], &subjects)
            .await
    }

    async fn delete_node(&self, id: i64) -> PlcResult<()> {
        let subjects = [("node", format!("node {id}"))];
        self.done("DeleteNode", vec![Value::Int(id)], &subjects)
            .await
    }
}

// === errors ===

/// The one mapping from a failed PLCAPI call to [`PlcError`].
fn error_of(method: &str, error: RpcError, subjects: &[(&str, String)]) -> PlcError {
    match error {
        RpcError::Fault(f) => fault_error(method, f, subjects),
        other => unavailable(method, &other),
    }
}

fn unavailable(method: &str, error: &RpcError) -> PlcError {
    PlcError::Unavailable(format!("PLCAPI {method}: {error}"))
}

/// PLCAPI answers an unknown id with `102 Invalid argument: No such <noun>`; the noun says
/// which of the call's objects it did not find.
fn fault_error(method: &str, f: Fault, subjects: &[(&str, String)]) -> PlcError {
    const NO_SUCH: &str = "No such ";
    if f.code == 102
        && let Some(at) = f.string.find(NO_SUCH)
    {
        let noun = f.string[at + NO_SUCH.len()..].trim();
        let what = subjects
            .iter()
            .find(|(n, _)| *n == noun)
            .map_or_else(|| format!("{noun} (in {method})"), |(_, w)| w.clone());
        return PlcError::NotFound { what };
    }
    PlcError::Refused {
        code: i64::from(f.code),
        message: f.string,
    }
}

// === rows ===

/// The structs of a `Get*` answer.
fn rows_of(method: &str, answer: Value) -> PlcResult<Vec<Struct>> {
    let Value::Array(items) = answer else {
        return Err(PlcError::Malformed {
            what: format!("{method}: answered {}, not an array", answer.type_name()),
        });
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Struct(s) => Ok(s),
            other => Err(PlcError::Malformed {
                what: format!("{method}: a row is {}, not a struct", other.type_name()),
            }),
        })
        .collect()
}

/// Typed access to one row's members; every failure names the method and the field.
struct Row<'a> {
    method: &'static str,
    s: &'a Struct,
}

impl<'a> Row<'a> {
    fn new(method: &'static str, s: &'a Struct) -> Self {
        Self { method, s }
    }

    fn bad(&self, field: &str, why: &str) -> PlcError {
        PlcError::Malformed {
            what: format!("{}: field {field} {why}", self.method),
        }
    }

    fn get(&self, field: &str) -> PlcResult<&'a Value> {
        self.s
            .get(field)
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    fn wrong(&self, field: &str, expected: &str, got: &Value) -> PlcError {
        self.bad(
            field,
            &format!("is {}, expected {expected}", got.type_name()),
        )
    }

    fn int(&self, field: &str) -> PlcResult<i64> {
        match self.get(field)? {
            Value::Int(i) => Ok(*i),
            other => Err(self.wrong(field, "int", other)),
        }
    }

    fn opt_int(&self, field: &str) -> PlcResult<Option<i64>> {
        match self.get(field)? {
            Value::Int(i) => Ok(Some(*i)),
            Value::Nil => Ok(None),
            other => Err(self.wrong(field, "int or nil", other)),
        }
    }

    fn string(&self, field: &str) -> PlcResult<String> {
        match self.get(field)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.wrong(field, "string", other)),
        }
    }

    /// A string PLCAPI may send as nil (`nullok`); nil reads as empty.
    fn nullable_string(&self, field: &str) -> PlcResult<String> {
        match self.get(field)? {
            Value::String(s) => Ok(s.clone()),
            Value::Nil => Ok(String::new()),
            other => Err(self.wrong(field, "string or nil", other)),
        }
    }

    fn bool(&self, field: &str) -> PlcResult<bool> {
        match self.get(field)? {
            Value::Bool(b) => Ok(*b),
            other => Err(self.wrong(field, "boolean", other)),
        }
    }

    fn ints(&self, field: &str) -> PlcResult<Vec<i64>> {
        match self.get(field)? {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_i64().ok_or_else(|| self.wrong(field, "ints", v)))
                .collect(),
            other => Err(self.wrong(field, "array", other)),
        }
    }

    fn strings(&self, field: &str) -> PlcResult<Vec<String>> {
        match self.get(field)? {
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| self.wrong(field, "strings", v))
                })
                .collect(),
            other => Err(self.wrong(field, "array", other)),
        }
    }
}

fn site_of(raw: Struct) -> PlcResult<Site> {
    let r = Row::new("GetSites", &raw);
    let site = Site {
        site_id: r.int("site_id")?,
        login_base: r.string("login_base")?,
        name: r.string("name")?,
        abbreviated_name: r.string("abbreviated_name")?,
        enabled: r.bool("enabled")?,
        is_public: r.bool("is_public")?,
        max_slices: r.int("max_slices")?,
        person_ids: r.ints("person_ids")?,
        slice_ids: r.ints("slice_ids")?,
        node_ids: r.ints("node_ids")?,
        raw: Struct::new(),
    };
    Ok(Site { raw, ..site })
}

fn person_of(raw: Struct) -> PlcResult<Person> {
    let r = Row::new("GetPersons", &raw);
    let person = Person {
        person_id: r.int("person_id")?,
        email: r.string("email")?,
        first_name: r.string("first_name")?,
        last_name: r.string("last_name")?,
        enabled: r.bool("enabled")?,
        roles: r.strings("roles")?,
        site_ids: r.ints("site_ids")?,
        key_ids: r.ints("key_ids")?,
        slice_ids: r.ints("slice_ids")?,
        raw: Struct::new(),
    };
    Ok(Person { raw, ..person })
}

fn key_of(raw: Struct) -> PlcResult<Key> {
    let r = Row::new("GetKeys", &raw);
    let key = Key {
        key_id: r.int("key_id")?,
        person_id: r.int("person_id")?,
        key_type: r.string("key_type")?,
        key: r.string("key")?,
        raw: Struct::new(),
    };
    Ok(Key { raw, ..key })
}

fn slice_of(raw: Struct) -> PlcResult<Slice> {
    let r = Row::new("GetSlices", &raw);
    let slice = Slice {
        slice_id: r.int("slice_id")?,
        site_id: r.int("site_id")?,
        name: r.string("name")?,
        instantiation: r.string("instantiation")?,
        max_nodes: r.int("max_nodes")?,
        expires: r.int("expires")?,
        person_ids: r.ints("person_ids")?,
        node_ids: r.ints("node_ids")?,
        raw: Struct::new(),
    };
    Ok(Slice { raw, ..slice })
}

fn node_of(raw: Struct) -> PlcResult<PlcNode> {
    let r = Row::new("GetNodes", &raw);
    let node = PlcNode {
        node_id: r.int("node_id")?,
        site_id: r.int("site_id")?,
        hostname: r.string("hostname")?,
        model: r.nullable_string("model")?,
        raw: Struct::new(),
    };
    Ok(PlcNode { raw, ..node })
}

fn slice_attribute_of(raw: Struct) -> PlcResult<SliceAttribute> {
    let r = Row::new("GetSliceAttributes", &raw);
    let attribute = SliceAttribute {
        slice_attribute_id: r.int("slice_attribute_id")?,
        slice_id: r.int("slice_id")?,
        node_id: r.opt_int("node_id")?,
        name: r.string("name")?,
        value: r.string("value")?,
        raw: Struct::new(),
    };
    Ok(SliceAttribute { raw, ..attribute })
}

fn initscript_of(raw: Struct) -> PlcResult<InitScript> {
    let r = Row::new("GetInitScripts", &raw);
    let script = InitScript {
        initscript_id: r.int("initscript_id")?,
        name: r.string("name")?,
        enabled: r.bool("enabled")?,
        script: r.string("script")?,
        raw: Struct::new(),
    };
    Ok(InitScript { raw, ..script })
}

#[cfg(test)]
mod tests;
