//! `register(cred, record)`: adds a record under an authority the credential holds (operation
//! `register`, so authority rights only), creating its PLC object as 2008 did: `AddSite` for an
//! sa/ma (shared by the sa and ma of one authority), `AddSlice` (delegated, 10 nodes, named
//! `<login_base>_<leaf>`), `AddPerson` (e-mail from `geni_info`), `AddNode` (hostname from
//! `geni_info.dns`).
//!
//! Fixed from 2008: an sa/ma record stores the new authority's own GID (2008 stored its
//! parent's); a user, slice or node GID must verify against the trusted roots and name the
//! record; a duplicate is refused before anything is created; and when a later step fails, the
//! PLC object and authority made for this record are removed again, so a refused register changes
//! nothing. Returns the record's GID.

use std::sync::Arc;

use geni_rpc::{CallContext, HandlerFuture, RpcError};
use geni_trust::{
    ChainForm, Hrn, Operation, RecordType, hrn_to_pl_login_base, hrn_to_pl_slicename,
};
use geni_xmlrpc::{Struct, Value};

use super::backend::{Lookup, PlcBackend};
use super::record::RecordDict;
use super::store::StoredRecord;
use super::{Registry, plc_fault, require_permission, store_fault};

pub(super) const HELP: &str = "register(credential, record): adds the record {name, type, gid, \
     geni_info} and its PLC object under an authority the credential holds; returns its GID. \
     Needs register (authority rights).";

pub(super) fn call<B: PlcBackend + 'static>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> HandlerFuture {
    Box::pin(async move {
        let [Value::String(credential), record] = params.as_slice() else {
            return Err(RpcError::invalid_params(
                "register",
                "takes a credential and a record struct",
            ));
        };
        let verified = registry.authenticate(&ctx, credential, Operation::Register)?;
        let dict = RecordDict::parse("register", record)?;
        let Some(authority) = dict.name.authority() else {
            return Err(RpcError::invalid_params(
                "register",
                format!(
                    "{} is a top-level name; the root authority is made by `geni-agent plc init`",
                    dict.name
                ),
            ));
        };
        registry.require_ours(&dict.name)?;
        require_permission(&verified, &authority)?;
        if registry
            .store
            .find(&dict.name, dict.kind)
            .await
            .map_err(store_fault)?
            .is_some()
        {
            return Err(RpcError::Exists(format!(
                "{} record {}",
                dict.kind, dict.name
            )));
        }
        let gid = match dict.kind {
            RecordType::Sa | RecordType::Ma => register_authority(&registry, &dict).await?,
            RecordType::Slice => register_slice(&registry, &dict).await?,
            RecordType::User => register_user(&registry, &dict, &authority).await?,
            RecordType::Node => register_node(&registry, &dict, &authority).await?,
        };
        tracing::info!(
            caller = %verified.caller().hrn(),
            hrn = %dict.name,
            kind = %dict.kind,
            "Record registered"
        );
        Ok(Value::String(gid))
    })
}

/// The caller's GID for a user, slice or node record: it must verify and name the record.
fn principal_gid<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
) -> Result<String, RpcError> {
    let Some(text) = &dict.gid else {
        return Err(RpcError::invalid_params(
            "register",
            format!(
                "a {} record needs its gid (make one with create_gid)",
                dict.kind
            ),
        ));
    };
    let verified = registry.verifier.verify_gid_str(text)?;
    if verified.hrn() != &dict.name {
        return Err(RpcError::invalid_params(
            "register",
            format!("the gid is for {}, not for {}", verified.hrn(), dict.name),
        ));
    }
    Ok(text.clone())
}

/// The user records named in `geni_info.researcher`, as PLC person ids.
pub(super) async fn researcher_ids<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
    method: &str,
) -> Result<Vec<i64>, RpcError> {
    let mut ids = Vec::new();
    for hrn in dict.geni_hrns(method, "researcher")? {
        let user = registry
            .store
            .find(&hrn, RecordType::User)
            .await
            .map_err(store_fault)?
            .ok_or_else(|| {
                RpcError::invalid_params(
                    method,
                    format!("researcher {hrn} has no user record; register it first"),
                )
            })?;
        if user.pointer < 0 {
            return Err(RpcError::invalid_params(
                method,
                format!("researcher {hrn} has no PLC person"),
            ));
        }
        ids.push(user.pointer);
    }
    Ok(ids)
}

async fn insert<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
    gid: &str,
    pointer: i64,
) -> Result<(), RpcError> {
    registry
        .store
        .insert(&StoredRecord {
            hrn: dict.name.clone(),
            kind: dict.kind,
            gid: gid.to_owned(),
            pointer,
        })
        .await
        .map_err(store_fault)
}

/// Undoes a PLC add after a later step failed; a failure to undo is logged, and the original
/// error is what the caller sees.
fn undo(what: &str, id: i64, result: Result<(), super::backend::PlcError>) {
    if let Err(e) = result {
        tracing::error!(what, id, error = ?e, "Could not undo a PLC add after a failed register");
    }
}

async fn register_authority<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
) -> Result<String, RpcError> {
    let name = &dict.name;
    let sibling_kind = if dict.kind == RecordType::Sa {
        RecordType::Ma
    } else {
        RecordType::Sa
    };
    let sibling = registry
        .store
        .find(name, sibling_kind)
        .await
        .map_err(store_fault)?;
    // The site: the sibling's, else an existing PLC site with this login_base that no other
    // authority has claimed, else a new one.
    let login_base = hrn_to_pl_login_base(name);
    let existing_site = match &sibling {
        Some(s) => Some(s.pointer),
        None => {
            let site = registry
                .plc
                .get_sites(Lookup::Names(vec![login_base.clone()]))
                .await
                .map_err(plc_fault)?
                .pop();
            if let Some(site) = &site {
                for kind in [RecordType::Sa, RecordType::Ma] {
                    if let Some(owner) = registry
                        .store
                        .by_pointer(kind, site.site_id)
                        .await
                        .map_err(store_fault)?
                        .into_iter()
                        .find(|r| &r.hrn != name)
                    {
                        return Err(RpcError::Failed(format!(
                            "PLC site {login_base} already belongs to authority {}",
                            owner.hrn
                        )));
                    }
                }
            }
            site.map(|s| s.site_id)
        }
    };
    let created = !registry.authorities.holds(name);
    if created {
        registry.authorities.create(name).await?;
    }
    let gid = match registry
        .authorities
        .gid(name)
        .and_then(|g| Ok(g.to_chain_string(ChainForm::Separator)?))
    {
        Ok(g) => g,
        Err(e) => {
            if created {
                registry.authorities.discard(name);
            }
            return Err(e);
        }
    };
    let (site_id, added) = match existing_site {
        Some(id) => (id, false),
        None => {
            let fields = Struct::new()
                .with("login_base", login_base.as_str())
                .with("name", name.as_str())
                .with("abbreviated_name", name.as_str())
                .with("enabled", true)
                .with("is_public", true);
            match registry.plc.add_site(fields).await {
                Ok(id) => (id, true),
                Err(e) => {
                    if created {
                        registry.authorities.discard(name);
                    }
                    return Err(plc_fault(e));
                }
            }
        }
    };
    if let Err(e) = insert(registry, dict, &gid, site_id).await {
        if added {
            undo("site", site_id, registry.plc.delete_site(site_id).await);
        }
        if created {
            registry.authorities.discard(name);
        }
        return Err(e);
    }
    Ok(gid)
}

async fn register_slice<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
) -> Result<String, RpcError> {
    let gid = principal_gid(registry, dict)?;
    let researchers = researcher_ids(registry, dict, "register").await?;
    let slicename = hrn_to_pl_slicename(&dict.name)?;
    let fields = Struct::new()
        .with("name", slicename)
        .with("instantiation", "delegated")
        .with("max_nodes", 10);
    let slice_id = registry.plc.add_slice(fields).await.map_err(plc_fault)?;
    let mut result = Ok(());
    for person in researchers {
        if let Err(e) = registry.plc.add_person_to_slice(person, slice_id).await {
            result = Err(plc_fault(e));
            break;
        }
    }
    if result.is_ok() {
        result = insert(registry, dict, &gid, slice_id).await;
    }
    if let Err(e) = result {
        undo("slice", slice_id, registry.plc.delete_slice(slice_id).await);
        return Err(e);
    }
    Ok(gid)
}

async fn register_user<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
    authority: &Hrn,
) -> Result<String, RpcError> {
    let gid = principal_gid(registry, dict)?;
    let Some(email) = dict.geni_str("register", "email")? else {
        return Err(RpcError::invalid_params(
            "register",
            "a user record needs geni_info.email",
        ));
    };
    let site = site_of(registry, authority).await?;
    let fields = Struct::new()
        .with("email", email)
        .with("first_name", "geni")
        .with("last_name", dict.name.as_str());
    let person_id = registry.plc.add_person(fields).await.map_err(plc_fault)?;
    let mut result = Ok(());
    if let Some(site) = site {
        result = registry
            .plc
            .add_person_to_site(person_id, site)
            .await
            .map_err(plc_fault);
    }
    if result.is_ok() {
        result = registry
            .plc
            .add_role_to_person("user", person_id)
            .await
            .map_err(plc_fault);
    }
    if result.is_ok() {
        result = insert(registry, dict, &gid, person_id).await;
    }
    if let Err(e) = result {
        undo(
            "person",
            person_id,
            registry.plc.delete_person(person_id).await,
        );
        return Err(e);
    }
    Ok(gid)
}

async fn register_node<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
    authority: &Hrn,
) -> Result<String, RpcError> {
    let gid = principal_gid(registry, dict)?;
    let Some(dns) = dict.geni_str("register", "dns")? else {
        return Err(RpcError::invalid_params(
            "register",
            "a node record needs geni_info.dns (its hostname)",
        ));
    };
    let fields = Struct::new().with("hostname", dns).with("model", "geni");
    let node_id = registry
        .plc
        .add_node(&hrn_to_pl_login_base(authority), fields)
        .await
        .map_err(plc_fault)?;
    if let Err(e) = insert(registry, dict, &gid, node_id).await {
        undo("node", node_id, registry.plc.delete_node(node_id).await);
        return Err(e);
    }
    Ok(gid)
}

/// The PLC site of authority `hrn`, from its sa or ma record.
async fn site_of<B: PlcBackend>(
    registry: &Registry<B>,
    hrn: &Hrn,
) -> Result<Option<i64>, RpcError> {
    for kind in [RecordType::Sa, RecordType::Ma] {
        if let Some(r) = registry.store.find(hrn, kind).await.map_err(store_fault)?
            && r.pointer >= 0
        {
            return Ok(Some(r.pointer));
        }
    }
    Ok(None)
}
