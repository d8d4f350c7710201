//! `update(cred, record)`: changes a record's PLC object and, for users, slices and nodes, its
//! GID (operation `update`: `refresh` or authority rights, over the record).
//!
//! `pl_info` is filtered to the fields PLCAPI lets each `Update*` change (2008 did so for
//! persons; other read-only members such as ids, which `resolve` returns, are dropped so that a
//! resolved record can be sent back as is). From `geni_info`: a user's `email`, a node's `dns`
//! and a slice's `researcher` list (researchers are added; PLCAPI's interface here has no
//! removal). A new GID must verify and name the record; an authority's GID is its hierarchy's and
//! cannot change. Returns nil, as 2008 did.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::{Operation, RecordType};
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
    let mut stored = registry.record(&dict.name, dict.kind).await?;

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

    let plc = &registry.plc;
    if !fields.is_empty() {
        let id = stored.pointer;
        match dict.kind {
            RecordType::User => plc.update_person(id, fields).await,
            RecordType::Slice => plc.update_slice(id, fields).await,
            RecordType::Sa | RecordType::Ma => plc.update_site(id, fields).await,
            RecordType::Node => plc.update_node(id, fields).await,
        }
        .map_err(plc_fault)?;
    }
    for person in researchers {
        plc.add_person_to_slice(person, stored.pointer)
            .await
            .map_err(plc_fault)?;
    }
    if let Some(g) = new_gid {
        stored.gid = g;
        registry.store.update(&stored).await.map_err(store_fault)?;
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
