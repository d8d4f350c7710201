//! The `embedded` PLC backend (the default): PlanetLab's sites, persons, keys, roles, slices,
//! slice attributes, nodes and initscripts kept in the registry's own database, answering with
//! PLCAPI's struct shapes and refusing what PLCAPI refuses.
//!
//! PLCAPI semantics kept: `login_base`, e-mail, slice name, hostname and initscript name are
//! unique (a duplicate is refused with PLCAPI's fault code 102, `PLCInvalidArgument`); a slice's
//! name starts with its site's `login_base` and `_`, and that prefix picks the site; new persons
//! are disabled and new slices `plc-instantiated` with 100 nodes and two weeks unless told
//! otherwise; deleting a site deletes its slices and nodes. Stricter than PLCAPI: a field this
//! backend does not know is refused rather than silently dropped, so a typo is never lost.
//!
//! Rows are read one per statement, with their id lists aggregated in the same statement, so a
//! ticket's data costs a handful of indexed lookups however large the tables are.

use std::fmt::Write as _;

use geni_trust::{Clock, SystemClock};
use geni_xmlrpc::{Limits, MethodResponse, Struct, Value};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::backend::{
    InitScript, Key, Lookup, Person, PersonState, PlcBackend, PlcError, PlcNode, PlcResult, Site,
    SiteState, Slice, SliceAttribute,
};
use super::db::{self, Db, StoreError, is_unique_violation};

/// PLCAPI's `PLCInvalidArgument` fault code.
const INVALID_ARGUMENT: i64 = 102;
/// A slice's lifetime when `AddSlice` is not given `expires` (PLC's default).
const DEFAULT_SLICE_SECS: i64 = 14 * 86_400;
/// PLC's role names.
const ROLES: &[&str] = &["admin", "pi", "tech", "user"];

/// The embedded PLC on an open database.
#[derive(Debug, Clone)]
pub(crate) struct Embedded {
    db: Db,
}

/// The type a PLCAPI field must have.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Double,
    Int,
    Str,
}

/// Optional fields each table keeps in its `extra` column.
const SITE_EXTRA: &[(&str, Kind)] = &[
    ("url", Kind::Str),
    ("latitude", Kind::Double),
    ("longitude", Kind::Double),
    ("max_slivers", Kind::Int),
];
const PERSON_EXTRA: &[(&str, Kind)] = &[
    ("title", Kind::Str),
    ("phone", Kind::Str),
    ("url", Kind::Str),
    ("bio", Kind::Str),
];
const SLICE_EXTRA: &[(&str, Kind)] = &[("url", Kind::Str), ("description", Kind::Str)];
const NODE_EXTRA: &[(&str, Kind)] = &[
    ("boot_state", Kind::Str),
    ("version", Kind::Str),
    ("node_type", Kind::Str),
];

// Each entity's SELECT, with its id lists aggregated in place (`string_agg … ORDER BY` reads the
// same in PostgreSQL and SQLite ≥ 3.44). Macros, because sqlx takes only literal SQL and
// `concat!` only literals.
macro_rules! site_select {
    () => {
        "SELECT s.site_id, s.login_base, s.name, s.abbreviated_name, s.enabled, s.is_public, \
         s.max_slices, s.extra, \
         (SELECT string_agg(CAST(x.person_id AS TEXT), ',' ORDER BY x.person_id) \
            FROM plc_person_sites x WHERE x.site_id = s.site_id) AS person_ids, \
         (SELECT string_agg(CAST(x.slice_id AS TEXT), ',' ORDER BY x.slice_id) \
            FROM plc_slices x WHERE x.site_id = s.site_id) AS slice_ids, \
         (SELECT string_agg(CAST(x.node_id AS TEXT), ',' ORDER BY x.node_id) \
            FROM plc_nodes x WHERE x.site_id = s.site_id) AS node_ids \
         FROM plc_sites s "
    };
}
macro_rules! person_select {
    () => {
        "SELECT p.person_id, p.email, p.first_name, p.last_name, p.enabled, p.extra, \
         (SELECT string_agg(x.role, ',' ORDER BY x.role) \
            FROM plc_person_roles x WHERE x.person_id = p.person_id) AS roles, \
         (SELECT string_agg(CAST(x.site_id AS TEXT), ',' ORDER BY x.site_id) \
            FROM plc_person_sites x WHERE x.person_id = p.person_id) AS site_ids, \
         (SELECT string_agg(CAST(x.key_id AS TEXT), ',' ORDER BY x.key_id) \
            FROM plc_keys x WHERE x.person_id = p.person_id) AS key_ids, \
         (SELECT string_agg(CAST(x.slice_id AS TEXT), ',' ORDER BY x.slice_id) \
            FROM plc_slice_persons x WHERE x.person_id = p.person_id) AS slice_ids \
         FROM plc_persons p "
    };
}
macro_rules! key_select {
    () => {
        "SELECT k.key_id, k.person_id, k.key_type, k.key_text FROM plc_keys k "
    };
}
macro_rules! slice_select {
    () => {
        "SELECT s.slice_id, s.site_id, s.name, s.instantiation, s.max_nodes, s.expires, s.extra, \
         (SELECT string_agg(CAST(x.person_id AS TEXT), ',' ORDER BY x.person_id) \
            FROM plc_slice_persons x WHERE x.slice_id = s.slice_id) AS person_ids, \
         (SELECT string_agg(CAST(x.slice_attribute_id AS TEXT), ',' ORDER BY x.slice_attribute_id) \
            FROM plc_slice_attributes x WHERE x.slice_id = s.slice_id) AS slice_attribute_ids \
         FROM plc_slices s "
    };
}
macro_rules! node_select {
    () => {
        "SELECT n.node_id, n.site_id, n.hostname, n.model, n.extra FROM plc_nodes n "
    };
}
macro_rules! initscript_select {
    () => {
        "SELECT i.initscript_id, i.name, i.enabled, i.script FROM plc_initscripts i "
    };
}

/// The three statements of one entity's `Get*`: every row, by id, by name.
struct Selects {
    all: &'static str,
    by_id: &'static str,
    by_name: Option<&'static str>,
}

const SITES: Selects = Selects {
    all: concat!(site_select!(), "ORDER BY s.site_id"),
    by_id: concat!(site_select!(), "WHERE s.site_id = $1"),
    by_name: Some(concat!(site_select!(), "WHERE s.login_base = $1")),
};
const PERSONS: Selects = Selects {
    all: concat!(person_select!(), "ORDER BY p.person_id"),
    by_id: concat!(person_select!(), "WHERE p.person_id = $1"),
    by_name: Some(concat!(person_select!(), "WHERE p.email = $1")),
};
const KEYS: Selects = Selects {
    all: concat!(key_select!(), "ORDER BY k.key_id"),
    by_id: concat!(key_select!(), "WHERE k.key_id = $1"),
    by_name: None,
};
const SLICES: Selects = Selects {
    all: concat!(slice_select!(), "ORDER BY s.slice_id"),
    by_id: concat!(slice_select!(), "WHERE s.slice_id = $1"),
    by_name: Some(concat!(slice_select!(), "WHERE s.name = $1")),
};
const NODES: Selects = Selects {
    all: concat!(node_select!(), "ORDER BY n.node_id"),
    by_id: concat!(node_select!(), "WHERE n.node_id = $1"),
    by_name: Some(concat!(node_select!(), "WHERE n.hostname = $1")),
};
const INITSCRIPTS: Selects = Selects {
    all: concat!(initscript_select!(), "ORDER BY i.initscript_id"),
    by_id: concat!(initscript_select!(), "WHERE i.initscript_id = $1"),
    by_name: Some(concat!(initscript_select!(), "WHERE i.name = $1")),
};

// === impl Embedded ===

impl Embedded {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes every PLC row (`plc nuke --plc`); the id counters keep counting, so an old id
    /// never names a new row.
    pub(crate) async fn clear(&self) -> PlcResult<()> {
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        for sql in [
            "DELETE FROM plc_slice_attributes",
            "DELETE FROM plc_slice_persons",
            "DELETE FROM plc_slices",
            "DELETE FROM plc_keys",
            "DELETE FROM plc_person_roles",
            "DELETE FROM plc_person_sites",
            "DELETE FROM plc_persons",
            "DELETE FROM plc_nodes",
            "DELETE FROM plc_sites",
            "DELETE FROM plc_initscripts",
        ] {
            sqlx::query(sql)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn select<T>(
        &self,
        lookup: Lookup,
        selects: &Selects,
        what: &str,
        decode: fn(&AnyRow) -> PlcResult<T>,
    ) -> PlcResult<Vec<T>> {
        let pool = self.db.pool();
        let mut rows = Vec::new();
        match lookup {
            Lookup::All => {
                for row in sqlx::query(selects.all)
                    .fetch_all(pool)
                    .await
                    .map_err(unavailable)?
                {
                    rows.push(decode(&row)?);
                }
            }
            // PLCAPI's Get* answers the rows that exist and skips the rest.
            Lookup::Ids(ids) => {
                for id in ids {
                    if let Some(row) = sqlx::query(selects.by_id)
                        .bind(id)
                        .fetch_optional(pool)
                        .await
                        .map_err(unavailable)?
                    {
                        rows.push(decode(&row)?);
                    }
                }
            }
            Lookup::Names(names) => {
                let Some(sql) = selects.by_name else {
                    return Err(refused(format!("{what} are looked up by id, not by name")));
                };
                for name in names {
                    if let Some(row) = sqlx::query(sql)
                        .bind(name)
                        .fetch_optional(pool)
                        .await
                        .map_err(unavailable)?
                    {
                        rows.push(decode(&row)?);
                    }
                }
            }
        }
        Ok(rows)
    }

    async fn site_id_of(&self, login_base: &str) -> PlcResult<i64> {
        sqlx::query_scalar("SELECT site_id FROM plc_sites WHERE login_base = $1")
            .bind(login_base)
            .fetch_optional(self.db.pool())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| PlcError::NotFound {
                what: format!("site {login_base}"),
            })
    }
}

impl PlcBackend for Embedded {
    async fn get_sites(&self, lookup: Lookup) -> PlcResult<Vec<Site>> {
        self.select(lookup, &SITES, "sites", decode_site).await
    }

    async fn person_state(&self, id: i64) -> PlcResult<Option<PersonState>> {
        let row = sqlx::query(
            "SELECT p.enabled, (SELECT string_agg(CAST(x.site_id AS TEXT), ',' ORDER BY x.site_id) \
             FROM plc_person_sites x WHERE x.person_id = p.person_id) AS site_ids \
             FROM plc_persons p WHERE p.person_id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(unavailable)?;
        row.map(|row| {
            Ok(PersonState {
                enabled: get::<i64>(&row, "enabled")? != 0,
                site_ids: id_list(&row, "site_ids", &format!("person {id}"))?,
            })
        })
        .transpose()
    }

    async fn site_states(&self, ids: Vec<i64>) -> PlcResult<Vec<SiteState>> {
        let mut states = Vec::new();
        for id in ids {
            let row = sqlx::query("SELECT login_base, enabled FROM plc_sites WHERE site_id = $1")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await
                .map_err(unavailable)?;
            if let Some(row) = row {
                states.push(SiteState {
                    login_base: get(&row, "login_base")?,
                    enabled: get::<i64>(&row, "enabled")? != 0,
                });
            }
        }
        Ok(states)
    }

    async fn get_persons(&self, lookup: Lookup) -> PlcResult<Vec<Person>> {
        self.select(lookup, &PERSONS, "persons", decode_person)
            .await
    }

    async fn get_keys(&self, lookup: Lookup) -> PlcResult<Vec<Key>> {
        self.select(lookup, &KEYS, "keys", decode_key).await
    }

    async fn get_slices(&self, lookup: Lookup) -> PlcResult<Vec<Slice>> {
        self.select(lookup, &SLICES, "slices", decode_slice).await
    }

    async fn get_nodes(&self, lookup: Lookup) -> PlcResult<Vec<PlcNode>> {
        self.select(lookup, &NODES, "nodes", decode_node).await
    }

    async fn get_slice_attributes(&self, slice_id: i64) -> PlcResult<Vec<SliceAttribute>> {
        let rows = sqlx::query(
            "SELECT slice_attribute_id, slice_id, node_id, name, value FROM plc_slice_attributes \
             WHERE slice_id = $1 ORDER BY slice_attribute_id",
        )
        .bind(slice_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(unavailable)?;
        rows.iter().map(decode_attribute).collect()
    }

    async fn get_initscripts(&self, lookup: Lookup) -> PlcResult<Vec<InitScript>> {
        self.select(lookup, &INITSCRIPTS, "initscripts", decode_initscript)
            .await
    }

    async fn get_keys_of_persons(&self, person_ids: Vec<i64>) -> PlcResult<Vec<Key>> {
        let mut keys = Vec::new();
        for id in person_ids {
            let rows = sqlx::query(concat!(
                key_select!(),
                "WHERE k.person_id = $1 ORDER BY k.key_id"
            ))
            .bind(id)
            .fetch_all(self.db.pool())
            .await
            .map_err(unavailable)?;
            for row in &rows {
                keys.push(decode_key(row)?);
            }
        }
        Ok(keys)
    }

    async fn add_site(&self, fields: Struct) -> PlcResult<i64> {
        let mut f = Fields::new(fields, "AddSite");
        let login_base = f.required_str("login_base")?;
        check_login_base(&login_base)?;
        let name = f.required_str("name")?;
        let abbreviated_name = f.required_str("abbreviated_name")?;
        let enabled = f.bool("enabled")?.unwrap_or(true);
        let is_public = f.bool("is_public")?.unwrap_or(true);
        let max_slices = f.int("max_slices")?.unwrap_or(0);
        let extra = f.extra(SITE_EXTRA)?;
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        let id = db::next_id(&mut tx, "site")
            .await
            .map_err(store_unavailable)?;
        sqlx::query(
            "INSERT INTO plc_sites (site_id, login_base, name, abbreviated_name, enabled, \
             is_public, max_slices, extra) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(&login_base)
        .bind(name)
        .bind(abbreviated_name)
        .bind(i64::from(enabled))
        .bind(i64::from(is_public))
        .bind(max_slices)
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate(e, format!("login_base {login_base} is already in use")))?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn add_person(&self, fields: Struct) -> PlcResult<i64> {
        let mut f = Fields::new(fields, "AddPerson");
        let email = f.required_str("email")?;
        check_email(&email)?;
        let first_name = f.required_str("first_name")?;
        let last_name = f.required_str("last_name")?;
        let enabled = f.bool("enabled")?.unwrap_or(false);
        f.refuse_password()?;
        let extra = f.extra(PERSON_EXTRA)?;
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        let id = db::next_id(&mut tx, "person")
            .await
            .map_err(store_unavailable)?;
        sqlx::query(
            "INSERT INTO plc_persons (person_id, email, first_name, last_name, enabled, extra) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&email)
        .bind(first_name)
        .bind(last_name)
        .bind(i64::from(enabled))
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate(e, format!("e-mail address {email} is already in use")))?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn add_slice(&self, fields: Struct) -> PlcResult<i64> {
        let mut f = Fields::new(fields, "AddSlice");
        let name = f.required_str("name")?;
        let login_base = check_slice_name(&name)?;
        let instantiation = f
            .str("instantiation")?
            .unwrap_or_else(|| "plc-instantiated".to_owned());
        check_instantiation(&instantiation)?;
        let max_nodes = f.int("max_nodes")?.unwrap_or(100);
        let expires = f
            .int("expires")?
            .unwrap_or_else(|| SystemClock.now().saturating_add(DEFAULT_SLICE_SECS));
        let extra = f.extra(SLICE_EXTRA)?;
        let site_id = self.site_id_of(login_base).await.map_err(|_| {
            refused(format!(
                "slice name {name} must begin with the login_base of an existing site \
                 (no site {login_base})"
            ))
        })?;
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        let id = db::next_id(&mut tx, "slice")
            .await
            .map_err(store_unavailable)?;
        sqlx::query(
            "INSERT INTO plc_slices (slice_id, site_id, name, instantiation, max_nodes, expires, \
             extra) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(site_id)
        .bind(&name)
        .bind(instantiation)
        .bind(max_nodes)
        .bind(expires)
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate(e, format!("slice name {name} is already in use")))?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn add_node(&self, login_base: &str, fields: Struct) -> PlcResult<i64> {
        let mut f = Fields::new(fields, "AddNode");
        let hostname = f.required_str("hostname")?;
        check_hostname(&hostname)?;
        let model = f.str("model")?.unwrap_or_default();
        let extra = f.extra(NODE_EXTRA)?;
        let site_id = self.site_id_of(login_base).await?;
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        let id = db::next_id(&mut tx, "node")
            .await
            .map_err(store_unavailable)?;
        sqlx::query(
            "INSERT INTO plc_nodes (node_id, site_id, hostname, model, extra) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(site_id)
        .bind(&hostname)
        .bind(model)
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate(e, format!("hostname {hostname} is already in use")))?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn add_person_key(&self, person_id: i64, key_type: &str, key: &str) -> PlcResult<i64> {
        if key_type != "ssh" {
            return Err(refused(format!(
                "key type {key_type:?} is not one PLC knows (ssh)"
            )));
        }
        let key = key.trim();
        if key.is_empty() || key.contains(['\n', '\r']) {
            return Err(refused("a key is one non-empty line"));
        }
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        let id = db::next_id(&mut tx, "key")
            .await
            .map_err(store_unavailable)?;
        require_row(&mut tx, PERSON_EXISTS, person_id, "person").await?;
        sqlx::query(
            "INSERT INTO plc_keys (key_id, person_id, key_type, key_text) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(person_id)
        .bind(key_type)
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn add_person_to_site(&self, person_id: i64, site_id: i64) -> PlcResult<()> {
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, PERSON_EXISTS, person_id, "person").await?;
        require_row(&mut tx, SITE_EXISTS, site_id, "site").await?;
        sqlx::query(
            "INSERT INTO plc_person_sites (person_id, site_id) VALUES ($1, $2) \
             ON CONFLICT (person_id, site_id) DO NOTHING",
        )
        .bind(person_id)
        .bind(site_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn add_role_to_person(&self, role: &str, person_id: i64) -> PlcResult<()> {
        if !ROLES.contains(&role) {
            return Err(refused(format!(
                "role {role:?} is not one of {}",
                ROLES.join(", ")
            )));
        }
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, PERSON_EXISTS, person_id, "person").await?;
        sqlx::query(
            "INSERT INTO plc_person_roles (person_id, role) VALUES ($1, $2) \
             ON CONFLICT (person_id, role) DO NOTHING",
        )
        .bind(person_id)
        .bind(role)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn add_person_to_slice(&self, person_id: i64, slice_id: i64) -> PlcResult<()> {
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, PERSON_EXISTS, person_id, "person").await?;
        require_row(&mut tx, SLICE_EXISTS, slice_id, "slice").await?;
        sqlx::query(
            "INSERT INTO plc_slice_persons (slice_id, person_id) VALUES ($1, $2) \
             ON CONFLICT (slice_id, person_id) DO NOTHING",
        )
        .bind(slice_id)
        .bind(person_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn set_slice_attribute(
        &self,
        slice_id: i64,
        name: &str,
        value: &str,
        node_id: Option<i64>,
    ) -> PlcResult<i64> {
        check_attribute_name(name)?;
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        let id = db::next_id(&mut tx, "slice_attribute")
            .await
            .map_err(store_unavailable)?;
        require_row(&mut tx, SLICE_EXISTS, slice_id, "slice").await?;
        if let Some(node) = node_id {
            require_row(&mut tx, NODE_EXISTS, node, "node").await?;
        }
        // An existing row keeps its id and takes the new value (the id drawn above is unused).
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO plc_slice_attributes (slice_attribute_id, slice_id, node_id, name, value) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (slice_id, name, node_id) \
             DO UPDATE SET value = excluded.value RETURNING slice_attribute_id",
        )
        .bind(id)
        .bind(slice_id)
        .bind(node_id.unwrap_or(0))
        .bind(name)
        .bind(value)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn add_initscript(&self, name: &str, script: &str) -> PlcResult<i64> {
        if name.trim().is_empty() {
            return Err(refused("an initscript needs a name"));
        }
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        let id = db::next_id(&mut tx, "initscript")
            .await
            .map_err(store_unavailable)?;
        sqlx::query(
            "INSERT INTO plc_initscripts (initscript_id, name, enabled, script) \
             VALUES ($1, $2, 1, $3)",
        )
        .bind(id)
        .bind(name)
        .bind(script)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate(e, format!("initscript name {name} is already in use")))?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn update_site(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let mut current = self
            .get_sites(Lookup::Ids(vec![id]))
            .await?
            .pop()
            .ok_or_else(|| not_found("site", id))?;
        let mut f = Fields::new(fields, "UpdateSite");
        if let Some(v) = f.str("login_base")? {
            check_login_base(&v)?;
            current.login_base = v;
        }
        if let Some(v) = f.str("name")? {
            current.name = v;
        }
        if let Some(v) = f.str("abbreviated_name")? {
            current.abbreviated_name = v;
        }
        if let Some(v) = f.bool("enabled")? {
            current.enabled = v;
        }
        if let Some(v) = f.bool("is_public")? {
            current.is_public = v;
        }
        if let Some(v) = f.int("max_slices")? {
            current.max_slices = v;
        }
        let extra = merge_extra(&current.raw, f.extra(SITE_EXTRA)?, SITE_EXTRA);
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, SITE_EXISTS, id, "site").await?;
        sqlx::query(
            "UPDATE plc_sites SET login_base = $2, name = $3, abbreviated_name = $4, \
             enabled = $5, is_public = $6, max_slices = $7, extra = $8 WHERE site_id = $1",
        )
        .bind(id)
        .bind(&current.login_base)
        .bind(current.name)
        .bind(current.abbreviated_name)
        .bind(i64::from(current.enabled))
        .bind(i64::from(current.is_public))
        .bind(current.max_slices)
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            duplicate(
                e,
                format!("login_base {} is already in use", current.login_base),
            )
        })?;
        tx.commit().await.map_err(unavailable)
    }

    async fn update_person(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let mut current = self
            .get_persons(Lookup::Ids(vec![id]))
            .await?
            .pop()
            .ok_or_else(|| not_found("person", id))?;
        let mut f = Fields::new(fields, "UpdatePerson");
        if let Some(v) = f.str("email")? {
            check_email(&v)?;
            current.email = v;
        }
        if let Some(v) = f.str("first_name")? {
            current.first_name = v;
        }
        if let Some(v) = f.str("last_name")? {
            current.last_name = v;
        }
        if let Some(v) = f.bool("enabled")? {
            current.enabled = v;
        }
        f.refuse_password()?;
        let extra = merge_extra(&current.raw, f.extra(PERSON_EXTRA)?, PERSON_EXTRA);
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, PERSON_EXISTS, id, "person").await?;
        sqlx::query(
            "UPDATE plc_persons SET email = $2, first_name = $3, last_name = $4, enabled = $5, \
             extra = $6 WHERE person_id = $1",
        )
        .bind(id)
        .bind(&current.email)
        .bind(current.first_name)
        .bind(current.last_name)
        .bind(i64::from(current.enabled))
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            duplicate(
                e,
                format!("e-mail address {} is already in use", current.email),
            )
        })?;
        tx.commit().await.map_err(unavailable)
    }

    async fn update_slice(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let mut current = self
            .get_slices(Lookup::Ids(vec![id]))
            .await?
            .pop()
            .ok_or_else(|| not_found("slice", id))?;
        let mut f = Fields::new(fields, "UpdateSlice");
        if let Some(v) = f.str("instantiation")? {
            check_instantiation(&v)?;
            current.instantiation = v;
        }
        if let Some(v) = f.int("max_nodes")? {
            current.max_nodes = v;
        }
        if let Some(v) = f.int("expires")? {
            current.expires = v;
        }
        let extra = merge_extra(&current.raw, f.extra(SLICE_EXTRA)?, SLICE_EXTRA);
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, SLICE_EXISTS, id, "slice").await?;
        sqlx::query(
            "UPDATE plc_slices SET instantiation = $2, max_nodes = $3, expires = $4, extra = $5 \
             WHERE slice_id = $1",
        )
        .bind(id)
        .bind(current.instantiation)
        .bind(current.max_nodes)
        .bind(current.expires)
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn update_node(&self, id: i64, fields: Struct) -> PlcResult<()> {
        let mut current = self
            .get_nodes(Lookup::Ids(vec![id]))
            .await?
            .pop()
            .ok_or_else(|| not_found("node", id))?;
        let mut f = Fields::new(fields, "UpdateNode");
        if let Some(v) = f.str("hostname")? {
            check_hostname(&v)?;
            current.hostname = v;
        }
        if let Some(v) = f.str("model")? {
            current.model = v;
        }
        let extra = merge_extra(&current.raw, f.extra(NODE_EXTRA)?, NODE_EXTRA);
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, NODE_EXISTS, id, "node").await?;
        sqlx::query(
            "UPDATE plc_nodes SET hostname = $2, model = $3, extra = $4 WHERE node_id = $1",
        )
        .bind(id)
        .bind(&current.hostname)
        .bind(current.model)
        .bind(encode_struct(&extra)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            duplicate(
                e,
                format!("hostname {} is already in use", current.hostname),
            )
        })?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete_site(&self, id: i64) -> PlcResult<()> {
        // Slices, nodes, attribute rows and memberships go with it (foreign keys cascade); the
        // node-specific attribute rows of other slices on its nodes are removed by hand.
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, SITE_EXISTS, id, "site").await?;
        sqlx::query(
            "DELETE FROM plc_slice_attributes WHERE node_id IN \
             (SELECT node_id FROM plc_nodes WHERE site_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        delete_row(&mut tx, "DELETE FROM plc_sites WHERE site_id = $1", id).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete_person_from_slice(&self, person_id: i64, slice_id: i64) -> PlcResult<()> {
        sqlx::query("DELETE FROM plc_slice_persons WHERE slice_id = $1 AND person_id = $2")
            .bind(slice_id)
            .bind(person_id)
            .execute(self.db.pool())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_person(&self, id: i64) -> PlcResult<()> {
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, PERSON_EXISTS, id, "person").await?;
        delete_row(&mut tx, "DELETE FROM plc_persons WHERE person_id = $1", id).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete_slice(&self, id: i64) -> PlcResult<()> {
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, SLICE_EXISTS, id, "slice").await?;
        delete_row(&mut tx, "DELETE FROM plc_slices WHERE slice_id = $1", id).await?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete_node(&self, id: i64) -> PlcResult<()> {
        let mut tx = self.db.pool().begin().await.map_err(unavailable)?;
        require_row(&mut tx, NODE_EXISTS, id, "node").await?;
        sqlx::query("DELETE FROM plc_slice_attributes WHERE node_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        delete_row(&mut tx, "DELETE FROM plc_nodes WHERE node_id = $1", id).await?;
        tx.commit().await.map_err(unavailable)
    }
}

// === row existence ===

// Each is a write that changes nothing: it takes the row's lock (and, in SQLite, the database's
// write lock) at the start of the transaction, so that the transaction never has to upgrade a
// read lock later, and it says whether the row exists.
const SITE_EXISTS: &str = "UPDATE plc_sites SET site_id = site_id WHERE site_id = $1";
const PERSON_EXISTS: &str = "UPDATE plc_persons SET person_id = person_id WHERE person_id = $1";
const SLICE_EXISTS: &str = "UPDATE plc_slices SET slice_id = slice_id WHERE slice_id = $1";
const NODE_EXISTS: &str = "UPDATE plc_nodes SET node_id = node_id WHERE node_id = $1";

async fn require_row(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sql: &'static str,
    id: i64,
    what: &str,
) -> PlcResult<()> {
    let done = sqlx::query(sql)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    if done.rows_affected() == 0 {
        return Err(not_found(what, id));
    }
    Ok(())
}

async fn delete_row(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sql: &'static str,
    id: i64,
) -> PlcResult<()> {
    sqlx::query(sql)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

// === decoding rows ===

fn decode_site(row: &AnyRow) -> PlcResult<Site> {
    let site_id: i64 = get(row, "site_id")?;
    let what = || format!("site {site_id}");
    let mut site = Site {
        site_id,
        login_base: get(row, "login_base")?,
        name: get(row, "name")?,
        abbreviated_name: get(row, "abbreviated_name")?,
        enabled: get::<i64>(row, "enabled")? != 0,
        is_public: get::<i64>(row, "is_public")? != 0,
        max_slices: get(row, "max_slices")?,
        person_ids: id_list(row, "person_ids", &what())?,
        slice_ids: id_list(row, "slice_ids", &what())?,
        node_ids: id_list(row, "node_ids", &what())?,
        raw: Struct::new(),
    };
    site.raw = Struct::new()
        .with("site_id", site.site_id)
        .with("login_base", site.login_base.as_str())
        .with("name", site.name.as_str())
        .with("abbreviated_name", site.abbreviated_name.as_str())
        .with("enabled", site.enabled)
        .with("is_public", site.is_public)
        .with("max_slices", site.max_slices)
        .with("person_ids", ids_value(&site.person_ids))
        .with("slice_ids", ids_value(&site.slice_ids))
        .with("node_ids", ids_value(&site.node_ids));
    append(&mut site.raw, &extra_of(row, &what())?);
    Ok(site)
}

fn decode_person(row: &AnyRow) -> PlcResult<Person> {
    let person_id: i64 = get(row, "person_id")?;
    let what = || format!("person {person_id}");
    let roles: Option<String> = get(row, "roles")?;
    let mut person = Person {
        person_id,
        email: get(row, "email")?,
        first_name: get(row, "first_name")?,
        last_name: get(row, "last_name")?,
        enabled: get::<i64>(row, "enabled")? != 0,
        roles: roles
            .map(|r| r.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        site_ids: id_list(row, "site_ids", &what())?,
        key_ids: id_list(row, "key_ids", &what())?,
        slice_ids: id_list(row, "slice_ids", &what())?,
        raw: Struct::new(),
    };
    person.raw = Struct::new()
        .with("person_id", person.person_id)
        .with("email", person.email.as_str())
        .with("first_name", person.first_name.as_str())
        .with("last_name", person.last_name.as_str())
        .with("enabled", person.enabled)
        .with(
            "roles",
            Value::Array(
                person
                    .roles
                    .iter()
                    .map(|r| Value::from(r.as_str()))
                    .collect(),
            ),
        )
        .with("site_ids", ids_value(&person.site_ids))
        .with("key_ids", ids_value(&person.key_ids))
        .with("slice_ids", ids_value(&person.slice_ids));
    append(&mut person.raw, &extra_of(row, &what())?);
    Ok(person)
}

fn decode_key(row: &AnyRow) -> PlcResult<Key> {
    let key = Key {
        key_id: get(row, "key_id")?,
        person_id: get(row, "person_id")?,
        key_type: get(row, "key_type")?,
        key: get(row, "key_text")?,
        raw: Struct::new(),
    };
    Ok(Key {
        raw: Struct::new()
            .with("key_id", key.key_id)
            .with("person_id", key.person_id)
            .with("key_type", key.key_type.as_str())
            .with("key", key.key.as_str()),
        ..key
    })
}

fn decode_slice(row: &AnyRow) -> PlcResult<Slice> {
    let slice_id: i64 = get(row, "slice_id")?;
    let what = || format!("slice {slice_id}");
    let mut slice = Slice {
        slice_id,
        site_id: get(row, "site_id")?,
        name: get(row, "name")?,
        instantiation: get(row, "instantiation")?,
        max_nodes: get(row, "max_nodes")?,
        expires: get(row, "expires")?,
        person_ids: id_list(row, "person_ids", &what())?,
        // The embedded PLC does not bind slices to nodes: a GENI ticket names its node.
        node_ids: Vec::new(),
        raw: Struct::new(),
    };
    slice.raw = Struct::new()
        .with("slice_id", slice.slice_id)
        .with("site_id", slice.site_id)
        .with("name", slice.name.as_str())
        .with("instantiation", slice.instantiation.as_str())
        .with("max_nodes", slice.max_nodes)
        .with("expires", slice.expires)
        .with("person_ids", ids_value(&slice.person_ids))
        .with("node_ids", ids_value(&slice.node_ids))
        .with(
            "slice_attribute_ids",
            ids_value(&id_list(row, "slice_attribute_ids", &what())?),
        );
    append(&mut slice.raw, &extra_of(row, &what())?);
    Ok(slice)
}

fn decode_node(row: &AnyRow) -> PlcResult<PlcNode> {
    let node_id: i64 = get(row, "node_id")?;
    let mut node = PlcNode {
        node_id,
        site_id: get(row, "site_id")?,
        hostname: get(row, "hostname")?,
        model: get(row, "model")?,
        raw: Struct::new(),
    };
    node.raw = Struct::new()
        .with("node_id", node.node_id)
        .with("site_id", node.site_id)
        .with("hostname", node.hostname.as_str())
        .with("model", node.model.as_str());
    append(&mut node.raw, &extra_of(row, &format!("node {node_id}"))?);
    Ok(node)
}

fn decode_attribute(row: &AnyRow) -> PlcResult<SliceAttribute> {
    let node: i64 = get(row, "node_id")?;
    let node_id = (node != 0).then_some(node);
    let a = SliceAttribute {
        slice_attribute_id: get(row, "slice_attribute_id")?,
        slice_id: get(row, "slice_id")?,
        node_id,
        name: get(row, "name")?,
        value: get(row, "value")?,
        raw: Struct::new(),
    };
    Ok(SliceAttribute {
        raw: Struct::new()
            .with("slice_attribute_id", a.slice_attribute_id)
            .with("slice_id", a.slice_id)
            .with("node_id", node_id.map_or(Value::Nil, Value::Int))
            .with("name", a.name.as_str())
            .with("value", a.value.as_str()),
        ..a
    })
}

fn decode_initscript(row: &AnyRow) -> PlcResult<InitScript> {
    let s = InitScript {
        initscript_id: get(row, "initscript_id")?,
        name: get(row, "name")?,
        enabled: get::<i64>(row, "enabled")? != 0,
        script: get(row, "script")?,
        raw: Struct::new(),
    };
    Ok(InitScript {
        raw: Struct::new()
            .with("initscript_id", s.initscript_id)
            .with("name", s.name.as_str())
            .with("enabled", s.enabled)
            .with("script", s.script.as_str()),
        ..s
    })
}

fn get<'r, T>(row: &'r AnyRow, column: &str) -> PlcResult<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(unavailable)
}

fn id_list(row: &AnyRow, column: &str, what: &str) -> PlcResult<Vec<i64>> {
    let text: Option<String> = get(row, column)?;
    text.as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim().parse().map_err(|_| PlcError::Malformed {
                what: format!("{what} {column}: {s:?}"),
            })
        })
        .collect()
}

fn ids_value(ids: &[i64]) -> Value {
    Value::Array(ids.iter().copied().map(Value::Int).collect())
}

fn extra_of(row: &AnyRow, what: &str) -> PlcResult<Struct> {
    let text: String = get(row, "extra")?;
    decode_struct(&text, what)
}

fn append(to: &mut Struct, extra: &Struct) {
    for (name, value) in extra.iter() {
        to.insert(name, value.clone());
    }
}

/// The extras a row keeps: those it had, overridden by `new`.
fn merge_extra(raw: &Struct, new: Struct, known: &[(&str, Kind)]) -> Struct {
    let mut merged = Struct::new();
    for (name, _) in known {
        if let Some(v) = new.get(name).or_else(|| raw.get(name)) {
            merged.insert(*name, v.clone());
        }
    }
    merged
}

/// A struct as the XML-RPC text it is stored as (wide integers and nil allowed).
fn encode_struct(s: &Struct) -> PlcResult<String> {
    geni_xmlrpc::write_method_response(&MethodResponse::Success(Value::Struct(s.clone())))
        .map_err(|e| refused(format!("a field cannot be stored: {e}")))
}

fn decode_struct(text: &str, what: &str) -> PlcResult<Struct> {
    match geni_xmlrpc::parse_method_response(text, &Limits::default()) {
        Ok(MethodResponse::Success(Value::Struct(s))) => Ok(s),
        _ => Err(PlcError::Malformed {
            what: format!("stored fields of {what}"),
        }),
    }
}

// === fields of Add*/Update* ===

/// The fields of one `Add*`/`Update*` call, taken one by one; whatever is left at the end is a
/// field this backend does not know.
struct Fields {
    fields: Struct,
    method: &'static str,
}

impl Fields {
    fn new(fields: Struct, method: &'static str) -> Self {
        Self { fields, method }
    }

    fn take(&mut self, name: &str, kind: Kind) -> PlcResult<Option<Value>> {
        let Some(v) = self.fields.remove(name) else {
            return Ok(None);
        };
        let ok = match (kind, &v) {
            (_, Value::Nil) => return Ok(None),
            (Kind::Str, Value::String(_))
            | (Kind::Int, Value::Int(_))
            | (Kind::Bool, Value::Bool(_) | Value::Int(0 | 1))
            | (Kind::Double, Value::Double(_) | Value::Int(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(refused(format!(
                "{}: field {name} must be {}, not {}",
                self.method,
                match kind {
                    Kind::Bool => "a boolean",
                    Kind::Double => "a number",
                    Kind::Int => "an integer",
                    Kind::Str => "a string",
                },
                v.type_name()
            )));
        }
        Ok(Some(v))
    }

    fn str(&mut self, name: &str) -> PlcResult<Option<String>> {
        Ok(match self.take(name, Kind::Str)? {
            Some(Value::String(s)) => Some(s),
            _ => None,
        })
    }

    fn required_str(&mut self, name: &str) -> PlcResult<String> {
        match self.str(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(refused(format!(
                "{}: field {name} is required",
                self.method
            ))),
        }
    }

    fn int(&mut self, name: &str) -> PlcResult<Option<i64>> {
        Ok(self.take(name, Kind::Int)?.and_then(|v| v.as_i64()))
    }

    fn bool(&mut self, name: &str) -> PlcResult<Option<bool>> {
        Ok(match self.take(name, Kind::Bool)? {
            Some(Value::Bool(b)) => Some(b),
            Some(Value::Int(i)) => Some(i != 0),
            _ => None,
        })
    }

    fn refuse_password(&mut self) -> PlcResult<()> {
        if self.fields.contains("password") {
            return Err(refused(format!(
                "{}: the embedded PLC keeps no passwords (GENI callers authenticate with keys)",
                self.method
            )));
        }
        Ok(())
    }

    /// The optional fields in `known`; anything else still present is refused.
    fn extra(mut self, known: &[(&str, Kind)]) -> PlcResult<Struct> {
        let mut extra = Struct::new();
        for (name, kind) in known {
            if let Some(v) = self.take(name, *kind)? {
                extra.insert(*name, v);
            }
        }
        if !self.fields.is_empty() {
            let mut names = String::new();
            for (i, n) in self.fields.names().enumerate() {
                if i > 0 {
                    names.push_str(", ");
                }
                let _ = write!(names, "{n}");
            }
            return Err(refused(format!(
                "{}: unknown field(s) {names}",
                self.method
            )));
        }
        Ok(extra)
    }
}

// === PLCAPI's checks ===

fn check_login_base(s: &str) -> PlcResult<()> {
    if s.is_empty()
        || s.len() > 20
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(refused(format!(
            "login_base {s:?} must be 1 to 20 lowercase letters or digits"
        )));
    }
    Ok(())
}

fn check_email(s: &str) -> PlcResult<()> {
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && !host.is_empty() && !host.contains('@')
        });
    if !ok {
        return Err(refused(format!("{s:?} is not an e-mail address")));
    }
    Ok(())
}

/// A slice name is `<login_base>_<name>`, lowercase letters, digits and `_`, at most 32 long
/// (it becomes a Unix account on the nodes). Returns the login_base.
fn check_slice_name(s: &str) -> PlcResult<&str> {
    let ok = s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    match s.split_once('_') {
        Some((base, rest)) if ok && !base.is_empty() && !rest.is_empty() => Ok(base),
        _ => Err(refused(format!(
            "slice name {s:?} must be <login_base>_<name>: at most 32 lowercase letters, digits \
             and _, starting with a letter"
        ))),
    }
}

fn check_instantiation(s: &str) -> PlcResult<()> {
    if matches!(
        s,
        "not-instantiated" | "plc-instantiated" | "delegated" | "nm-controller"
    ) {
        Ok(())
    } else {
        Err(refused(format!(
            "instantiation {s:?} is not one of not-instantiated, plc-instantiated, delegated, \
             nm-controller"
        )))
    }
}

fn check_hostname(s: &str) -> PlcResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !s.starts_with(['.', '-']);
    if !ok {
        return Err(refused(format!("{s:?} is not a hostname")));
    }
    Ok(())
}

fn check_attribute_name(s: &str) -> PlcResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(refused(format!(
            "slice attribute name {s:?} must be letters, digits, _, . and -"
        )));
    }
    Ok(())
}

// === errors ===

fn refused(message: impl Into<String>) -> PlcError {
    PlcError::Refused {
        code: INVALID_ARGUMENT,
        message: message.into(),
    }
}

fn not_found(what: &str, id: i64) -> PlcError {
    PlcError::NotFound {
        what: format!("{what} {id}"),
    }
}

fn unavailable(e: sqlx::Error) -> PlcError {
    PlcError::Unavailable(format!("database: {e}"))
}

fn store_unavailable(e: StoreError) -> PlcError {
    PlcError::Unavailable(e.to_string())
}

/// A unique violation as PLCAPI's refusal, anything else as an unavailable database.
fn duplicate(e: sqlx::Error, message: String) -> PlcError {
    if is_unique_violation(&e) {
        refused(message)
    } else {
        unavailable(e)
    }
}

#[cfg(test)]
mod tests;
