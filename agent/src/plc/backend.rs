//! The PLC side's view of PlanetLab's own database: sites, persons, keys, slices, slice
//! attributes, nodes and initscripts, with the field names and shapes of PLCAPI's `Get*` structs
//! (`reference/nodemanager.md` §6, `reference/geniwrapper-2008.md` §4.2).
//!
//! Two backends implement [`PlcBackend`]: `embedded` (the same tables in the registry's own
//! database, the default) and `plcapi` (a remote PLCAPI over XML-RPC). The registry, the ticket
//! builder and `plc import` are written once against this trait, so whatever one backend answers,
//! the other answers in the same shape. Every typed row keeps the struct it came from in `raw`,
//! because a record's `pl_info` is the raw PLC struct (2008 §1.6), not our projection of it.

use std::future::Future;

use geni_xmlrpc::Struct;

/// What a `Get*` call selects. Names are the natural key of the table: `login_base` for sites,
/// `email` for persons, `name` for slices and initscripts, `hostname` for nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    All,
    Ids(Vec<i64>),
    Names(Vec<String>),
}

/// PLCAPI `GetSites` row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Site {
    pub(crate) site_id: i64,
    pub(crate) login_base: String,
    pub(crate) name: String,
    pub(crate) abbreviated_name: String,
    pub(crate) enabled: bool,
    pub(crate) is_public: bool,
    pub(crate) max_slices: i64,
    pub(crate) person_ids: Vec<i64>,
    pub(crate) slice_ids: Vec<i64>,
    pub(crate) node_ids: Vec<i64>,
    pub(crate) raw: Struct,
}

/// PLCAPI `GetPersons` row. `roles` are role names (`admin`, `pi`, `user`, `tech`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Person {
    pub(crate) person_id: i64,
    pub(crate) email: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) enabled: bool,
    pub(crate) roles: Vec<String>,
    pub(crate) site_ids: Vec<i64>,
    pub(crate) key_ids: Vec<i64>,
    pub(crate) slice_ids: Vec<i64>,
    pub(crate) raw: Struct,
}

/// PLCAPI `GetKeys` row. `key_type` is `ssh` for the keys a ticket carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub(crate) key_id: i64,
    pub(crate) person_id: i64,
    pub(crate) key_type: String,
    pub(crate) key: String,
    pub(crate) raw: Struct,
}

/// PLCAPI `GetSlices` row. `expires` is Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slice {
    pub(crate) slice_id: i64,
    pub(crate) site_id: i64,
    pub(crate) name: String,
    pub(crate) instantiation: String,
    pub(crate) max_nodes: i64,
    pub(crate) expires: i64,
    pub(crate) person_ids: Vec<i64>,
    pub(crate) node_ids: Vec<i64>,
    pub(crate) raw: Struct,
}

/// PLCAPI `GetNodes` row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlcNode {
    pub(crate) node_id: i64,
    pub(crate) site_id: i64,
    pub(crate) hostname: String,
    pub(crate) model: String,
    pub(crate) raw: Struct,
}

/// PLCAPI 4.2 `GetSliceAttributes` row; `node_id` is set for node-specific rows. Values are PLC
/// strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SliceAttribute {
    pub(crate) slice_attribute_id: i64,
    pub(crate) slice_id: i64,
    pub(crate) node_id: Option<i64>,
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) raw: Struct,
}

/// PLCAPI `GetInitScripts` row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InitScript {
    pub(crate) initscript_id: i64,
    pub(crate) name: String,
    pub(crate) enabled: bool,
    pub(crate) script: String,
    pub(crate) raw: Struct,
}

/// Why a PLC call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlcError {
    /// PLCAPI answered with a value of the wrong shape (`what` names the method and field).
    #[error("PLC answered a malformed value: {what}")]
    Malformed { what: String },
    /// The row asked for does not exist (`what` names it, e.g. `slice 12`).
    #[error("{what} is not in PLC")]
    NotFound { what: String },
    /// PLC refused: a PLCAPI fault, or the embedded store's equivalent (duplicate login_base,
    /// unknown id). The message is PLC's own and is shown to the caller.
    #[error("PLC refused ({code}): {message}")]
    Refused { code: i64, message: String },
    /// PLCAPI could not be reached, or the database failed; nothing was changed as far as we know.
    #[error("{0}")]
    Unavailable(String),
}

pub(crate) type PlcResult<T> = Result<T, PlcError>;

/// What the accounts check needs of a person ([`PlcBackend::person_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PersonState {
    pub(crate) enabled: bool,
    pub(crate) site_ids: Vec<i64>,
}

/// What the accounts check needs of a site ([`PlcBackend::site_states`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SiteState {
    pub(crate) login_base: String,
    pub(crate) enabled: bool,
}

/// PlanetLab's database as the registry needs it. Add/update calls take PLCAPI field structs
/// (the 2008 code passes them straight to `Add*`/`Update*`); each returns the new id.
pub(crate) trait PlcBackend: Send + Sync {
    fn get_sites(&self, lookup: Lookup) -> impl Future<Output = PlcResult<Vec<Site>>> + Send;
    /// Whether each site in `ids` that exists is enabled, and its login_base. Every credentialed
    /// call asks this, so a backend that can should not read the whole row: a site's row lists
    /// its slices, and with 10,000 of them `get_ticket` took 8.4 ms at p50 instead of ~2.
    /// Whether person `id` is enabled and its sites, if it exists: as [`Self::site_states`], for
    /// the accounts check (a person's row also lists every slice it is in).
    fn person_state(&self, id: i64) -> impl Future<Output = PlcResult<Option<PersonState>>> + Send {
        async move {
            Ok(self
                .get_persons(Lookup::Ids(vec![id]))
                .await?
                .pop()
                .map(|p| PersonState {
                    enabled: p.enabled,
                    site_ids: p.site_ids,
                }))
        }
    }
    fn site_states(&self, ids: Vec<i64>) -> impl Future<Output = PlcResult<Vec<SiteState>>> + Send {
        async move {
            Ok(self
                .get_sites(Lookup::Ids(ids))
                .await?
                .into_iter()
                .map(|s| SiteState {
                    login_base: s.login_base,
                    enabled: s.enabled,
                })
                .collect())
        }
    }
    fn get_persons(&self, lookup: Lookup) -> impl Future<Output = PlcResult<Vec<Person>>> + Send;
    fn get_keys(&self, lookup: Lookup) -> impl Future<Output = PlcResult<Vec<Key>>> + Send;
    fn get_slices(&self, lookup: Lookup) -> impl Future<Output = PlcResult<Vec<Slice>>> + Send;
    fn get_nodes(&self, lookup: Lookup) -> impl Future<Output = PlcResult<Vec<PlcNode>>> + Send;
    /// Every attribute row of one slice, global and node-specific.
    fn get_slice_attributes(
        &self,
        slice_id: i64,
    ) -> impl Future<Output = PlcResult<Vec<SliceAttribute>>> + Send;
    fn get_initscripts(
        &self,
        lookup: Lookup,
    ) -> impl Future<Output = PlcResult<Vec<InitScript>>> + Send;
    /// The keys of the persons `person_ids` (what a ticket's `keys` carries). The default reads
    /// the persons, then their keys; a backend that can ask by person directly should, because a
    /// person row lists every slice the person is in and a ticket needs none of that.
    fn get_keys_of_persons(
        &self,
        person_ids: Vec<i64>,
    ) -> impl Future<Output = PlcResult<Vec<Key>>> + Send {
        async move {
            let persons = self.get_persons(Lookup::Ids(person_ids)).await?;
            let key_ids: Vec<i64> = persons
                .iter()
                .flat_map(|p| p.key_ids.iter().copied())
                .collect();
            if key_ids.is_empty() {
                return Ok(Vec::new());
            }
            self.get_keys(Lookup::Ids(key_ids)).await
        }
    }

    fn add_site(&self, fields: Struct) -> impl Future<Output = PlcResult<i64>> + Send;
    fn add_person(&self, fields: Struct) -> impl Future<Output = PlcResult<i64>> + Send;
    fn add_slice(&self, fields: Struct) -> impl Future<Output = PlcResult<i64>> + Send;
    /// `AddNode(site_id_or_login_base, fields)`; we always pass the login_base, as 2008 did.
    fn add_node(
        &self,
        login_base: &str,
        fields: Struct,
    ) -> impl Future<Output = PlcResult<i64>> + Send;
    fn add_person_key(
        &self,
        person_id: i64,
        key_type: &str,
        key: &str,
    ) -> impl Future<Output = PlcResult<i64>> + Send;
    fn add_person_to_site(
        &self,
        person_id: i64,
        site_id: i64,
    ) -> impl Future<Output = PlcResult<()>> + Send;
    fn add_role_to_person(
        &self,
        role: &str,
        person_id: i64,
    ) -> impl Future<Output = PlcResult<()>> + Send;
    fn add_person_to_slice(
        &self,
        person_id: i64,
        slice_id: i64,
    ) -> impl Future<Output = PlcResult<()>> + Send;
    /// PLCAPI `DeletePersonFromSlice`: the undo of [`PlcBackend::add_person_to_slice`].
    fn delete_person_from_slice(
        &self,
        person_id: i64,
        slice_id: i64,
    ) -> impl Future<Output = PlcResult<()>> + Send;
    /// Sets (adds or replaces) a slice attribute; `node_id` makes it node-specific.
    fn set_slice_attribute(
        &self,
        slice_id: i64,
        name: &str,
        value: &str,
        node_id: Option<i64>,
    ) -> impl Future<Output = PlcResult<i64>> + Send;
    fn add_initscript(
        &self,
        name: &str,
        script: &str,
    ) -> impl Future<Output = PlcResult<i64>> + Send;

    fn update_site(&self, id: i64, fields: Struct) -> impl Future<Output = PlcResult<()>> + Send;
    fn update_person(&self, id: i64, fields: Struct) -> impl Future<Output = PlcResult<()>> + Send;
    fn update_slice(&self, id: i64, fields: Struct) -> impl Future<Output = PlcResult<()>> + Send;
    fn update_node(&self, id: i64, fields: Struct) -> impl Future<Output = PlcResult<()>> + Send;

    fn delete_site(&self, id: i64) -> impl Future<Output = PlcResult<()>> + Send;
    fn delete_person(&self, id: i64) -> impl Future<Output = PlcResult<()>> + Send;
    fn delete_slice(&self, id: i64) -> impl Future<Output = PlcResult<()>> + Send;
    fn delete_node(&self, id: i64) -> impl Future<Output = PlcResult<()>> + Send;
}
