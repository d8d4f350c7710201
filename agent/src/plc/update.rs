//! `update(cred, record)`: changes a record's PLC object and, for users, slices and nodes, its
//! GID (operation `update`: `refresh` or authority rights, over the record).
//!
//! `pl_info` is filtered to the fields PLCAPI lets each `Update*` change (2008 did so for
//! persons; other read-only members such as ids, which `resolve` returns, are dropped so that a
//! resolved record can be sent back as is). From `geni_info`: a user's `email`, a node's `dns`
//! and a slice's `researcher` list (researchers are added; PLCAPI's interface here has no
//! removal). A new GID must verify and name the record; an authority's GID is its hierarchy's and
//! cannot change. Everything is checked before anything changes, and when a write fails the
//! earlier ones are undone (fields put back, added researchers taken off), so a failed update
//! leaves PLC and the store as they were. Returns nil, as 2008 did.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::{Hrn, Operation, RecordType};
use geni_xmlrpc::{Struct, Value};

use super::backend::{Lookup, PlcBackend};
use super::policy::{self, ADMIN_ONLY_FIELDS};
use super::record::RecordDict;
use super::{Registry, plc_fault, register, require_permission, store_fault};

pub(super) const NAME: &str = "update";

pub(super) const HELP: &str = "update(credential, record): changes the record's PLC fields \
     (pl_info, geni_info) and GID. Needs update (refresh or authority rights).";

/// What each `Update*` may change (PLCAPI's `can_update` fields; persons as 2008 filtered them).
const PERSON_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "title",
    "email",
    "password",
    "phone",
    "url",
    "bio",
    "accepted_aup",
    "enabled",
];
const SLICE_FIELDS: &[&str] = &[
    "instantiation",
    "url",
    "description",
    "max_nodes",
    "expires",
];
const SITE_FIELDS: &[&str] = &[
    "name",
    "abbreviated_name",
    "url",
    "enabled",
    "is_public",
    "latitude",
    "longitude",
    "max_slices",
    "max_slivers",
];
const NODE_FIELDS: &[&str] = &["hostname", "boot_state", "model", "version"];

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let [Value::String(credential), record] = params.as_slice() else {
        return Err(RpcError::invalid_params(
            NAME,
            "takes a credential and a record struct",
        ));
    };
    let verified = registry
        .authenticate(&ctx, credential, Operation::Update)
        .await?;
    let dict = RecordDict::parse("update", record)?;
    require_permission(&verified, &dict.name)?;
    let stored = registry.record(&dict.name, dict.kind).await?;

    // Everything is checked before anything changes.
    let allowed = match dict.kind {
        RecordType::User => PERSON_FIELDS,
        RecordType::Slice => SLICE_FIELDS,
        RecordType::Sa | RecordType::Ma => SITE_FIELDS,
        RecordType::Node => NODE_FIELDS,
    };
    let mut fields: Struct = dict
        .pl_info
        .iter()
        .filter(|(k, _)| allowed.contains(k))
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    if !policy::is_admin(&verified) {
        fields =
            without_unchanged_admin_fields(&registry, dict.kind, stored.pointer, fields).await?;
        if let Some(field) = ADMIN_ONLY_FIELDS.iter().find(|f| fields.contains(f)) {
            policy::require_admin(&verified, &format!("changing {field}"))?;
        }
    }
    match dict.kind {
        RecordType::User => {
            if let Some(email) = dict.geni_str("update", "email")? {
                fields.insert("email", email);
            }
        }
        RecordType::Node => {
            if let Some(dns) = dict.geni_str("update", "dns")? {
                fields.insert("hostname", dns);
            }
        }
        _ => {}
    }
    let researchers = if dict.kind == RecordType::Slice {
        register::researcher_ids(&registry, &dict, "update").await?
    } else {
        Vec::new()
    };
    let new_gid = match &dict.gid {
        Some(g) if *g != stored.gid => {
            if matches!(dict.kind, RecordType::Sa | RecordType::Ma) {
                return Err(RpcError::invalid_params(
                    NAME,
                    "an authority's GID is the one in its hierarchy and cannot be replaced",
                ));
            }
            let verified_gid = registry.verifier.verify_gid_str(g)?;
            if verified_gid.hrn() != &dict.name {
                return Err(RpcError::invalid_params(
                    NAME,
                    format!(
                        "the gid is for {}, not for {}",
                        verified_gid.hrn(),
                        dict.name
                    ),
                ));
            }
            Some(g.clone())
        }
        _ => None,
    };
    if (!fields.is_empty() || !researchers.is_empty()) && stored.pointer < 0 {
        return Err(RpcError::Failed(format!(
            "{} {} has no PLC object to update",
            dict.kind, dict.name
        )));
    }

    // The writes, each undone if a later one fails: the PLC fields (put back to the values PLC
    // had), the researchers this call added (taken off again), then the GID.
    let id = stored.pointer;
    let mut undo = Undo::default();
    let outcome = async {
        if !fields.is_empty() {
            undo.fields = Some(current_values(&registry, dict.kind, id, &fields).await?);
            update_fields(&registry, dict.kind, id, fields).await?;
        }
        let already = if researchers.is_empty() {
            Vec::new()
        } else {
            slice_persons(&registry, id).await?
        };
        for person in researchers.into_iter().filter(|p| !already.contains(p)) {
            registry
                .plc
                .add_person_to_slice(person, id)
                .await
                .map_err(plc_fault)?;
            undo.researchers.push(person);
        }
        if let Some(g) = new_gid {
            let mut changed = stored.clone();
            changed.gid = g;
            registry.store.update(&changed).await.map_err(store_fault)?;
        }
        Ok::<(), RpcError>(())
    }
    .await;
    if let Err(e) = outcome {
        undo.run(&registry, dict.kind, id, &dict.name).await;
        return Err(e);
    }
    tracing::info!(caller = %verified.caller().hrn(), hrn = %dict.name, kind = %dict.kind, "Record updated");
    Ok(Value::Nil)
}

/// `fields` without the admin-only ones whose value is the one PLC already has: a record that
/// `resolve` returned can be sent back as is, and only a real change needs the admin.
async fn without_unchanged_admin_fields<B: PlcBackend>(
    registry: &Registry<B>,
    kind: RecordType,
    id: i64,
    mut fields: Struct,
) -> Result<Struct, RpcError> {
    if id < 0 || !ADMIN_ONLY_FIELDS.iter().any(|f| fields.contains(f)) {
        return Ok(fields);
    }
    let current = match kind {
        RecordType::User => registry
            .plc
            .get_persons(Lookup::Ids(vec![id]))
            .await
            .map_err(plc_fault)?
            .pop()
            .map(|p| p.raw),
        RecordType::Sa | RecordType::Ma => registry
            .plc
            .get_sites(Lookup::Ids(vec![id]))
            .await
            .map_err(plc_fault)?
            .pop()
            .map(|s| s.raw),
        RecordType::Slice | RecordType::Node => None,
    };
    if let Some(current) = current {
        for field in ADMIN_ONLY_FIELDS {
            if fields
                .get(field)
                .is_some_and(|v| same(v, current.get(field)))
            {
                fields.remove(field);
            }
        }
    }
    Ok(fields)
}

/// PLC values compared as PLCAPI would store them (a boolean may come back as 0 or 1).
fn same(given: &Value, current: Option<&Value>) -> bool {
    let as_int = |v: &Value| match v {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Int(i) => Some(*i),
        _ => None,
    };
    match current {
        Some(c) => given == c || (as_int(given).is_some() && as_int(given) == as_int(c)),
        None => false,
    }
}

/// What a failed update puts back.
#[derive(Debug, Default)]
struct Undo {
    /// The PLC values the changed fields had, and the names of those that had none (an optional
    /// PLCAPI field never set cannot be unset again, so it is logged as left behind).
    fields: Option<(Struct, Vec<String>)>,
    /// The researchers this call added to the slice.
    researchers: Vec<i64>,
}

impl Undo {
    /// Newest first; a step that cannot be undone is logged with what it leaves behind.
    async fn run<B: PlcBackend>(
        self,
        registry: &Registry<B>,
        kind: RecordType,
        id: i64,
        hrn: &Hrn,
    ) {
        for person in self.researchers.into_iter().rev() {
            if let Err(e) = registry.plc.delete_person_from_slice(person, id).await {
                tracing::error!(%hrn, person, error = %e, "Update failed and a researcher it added stays on the slice");
            }
        }
        let Some((old, unset)) = self.fields else {
            return;
        };
        if !unset.is_empty() {
            tracing::error!(%hrn, %kind, fields = ?unset, "Update failed and these PLC fields, unset before, keep their new values");
        }
        if !old.is_empty()
            && let Err(e) = update_fields(registry, kind, id, old).await
        {
            tracing::error!(%hrn, %kind, error = %e, "Update failed and the PLC fields it changed could not be put back");
        }
    }
}

async fn update_fields<B: PlcBackend>(
    registry: &Registry<B>,
    kind: RecordType,
    id: i64,
    fields: Struct,
) -> Result<(), RpcError> {
    let plc = &registry.plc;
    match kind {
        RecordType::User => plc.update_person(id, fields).await,
        RecordType::Slice => plc.update_slice(id, fields).await,
        RecordType::Sa | RecordType::Ma => plc.update_site(id, fields).await,
        RecordType::Node => plc.update_node(id, fields).await,
    }
    .map_err(plc_fault)
}

/// The values PLC has now for the names in `fields`, and the names it has no value for.
async fn current_values<B: PlcBackend>(
    registry: &Registry<B>,
    kind: RecordType,
    id: i64,
    fields: &Struct,
) -> Result<(Struct, Vec<String>), RpcError> {
    let plc = &registry.plc;
    let ids = || Lookup::Ids(vec![id]);
    let raw = match kind {
        RecordType::User => plc
            .get_persons(ids())
            .await
            .map(|mut v| v.pop().map(|r| r.raw)),
        RecordType::Slice => plc
            .get_slices(ids())
            .await
            .map(|mut v| v.pop().map(|r| r.raw)),
        RecordType::Sa | RecordType::Ma => plc
            .get_sites(ids())
            .await
            .map(|mut v| v.pop().map(|r| r.raw)),
        RecordType::Node => plc
            .get_nodes(ids())
            .await
            .map(|mut v| v.pop().map(|r| r.raw)),
    }
    .map_err(plc_fault)?
    .unwrap_or_default();
    let old = fields
        .names()
        .filter_map(|name| raw.get(name).map(|v| (name.to_owned(), v.clone())))
        .collect();
    let unset = fields
        .names()
        .filter(|name| !raw.contains(name))
        .map(str::to_owned)
        .collect();
    Ok((old, unset))
}

/// The persons of slice `id` now.
async fn slice_persons<B: PlcBackend>(
    registry: &Registry<B>,
    id: i64,
) -> Result<Vec<i64>, RpcError> {
    Ok(registry
        .plc
        .get_slices(Lookup::Ids(vec![id]))
        .await
        .map_err(plc_fault)?
        .pop()
        .map(|s| s.person_ids)
        .unwrap_or_default())
}
