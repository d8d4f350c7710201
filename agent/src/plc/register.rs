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
//!
//! The order of those steps and their undo are [`provision`]'s, shared with `plc … add`; this
//! module reads the record, checks who may add it, and maps a failed add to its fault.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::{Hrn, Operation, RecordType, hrn_to_pl_login_base, hrn_to_pl_slicename};
use geni_xmlrpc::{Struct, Value};

use super::backend::PlcBackend;
use super::policy;
use super::provision::{self, NewNode, NewPerson, NewSlice, ProvisionError, SiteSource};
use super::record::RecordDict;
use super::{Registry, plc_fault, require_permission, store_fault};

pub(super) const NAME: &str = "register";

pub(super) const HELP: &str = "register(credential, record): adds the record {name, type, gid, \
     geni_info} and its PLC object under an authority the credential holds; returns its GID. \
     Needs register (authority rights).";

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
        .authenticate(&ctx, credential, Operation::Register)
        .await?;
    let dict = RecordDict::parse("register", record)?;
    let Some(authority) = dict.name.authority() else {
        return Err(RpcError::invalid_params(
            NAME,
            format!(
                "{} is a top-level name; the root authority is made by `geni-agent plc init`",
                dict.name
            ),
        ));
    };
    registry.require_ours(&dict.name)?;
    require_permission(&verified, &authority)?;
    if matches!(dict.kind, RecordType::Sa | RecordType::Ma)
        && !sibling_exists(&registry, &dict.name, dict.kind).await?
    {
        // A new authority is a new (or claimed) PLC site: PLCAPI's AddSite is the admin's.
        policy::require_admin(
            &verified,
            &format!("creating or claiming the site of {}", dict.name),
        )?;
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
}

/// The caller's GID for a user, slice or node record: it must verify and name the record.
fn principal_gid<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
) -> Result<String, RpcError> {
    let Some(text) = &dict.gid else {
        return Err(RpcError::invalid_params(
            NAME,
            format!(
                "a {} record needs its gid (make one with create_gid)",
                dict.kind
            ),
        ));
    };
    let verified = registry.verifier.verify_gid_str(text)?;
    if verified.hrn() != &dict.name {
        return Err(RpcError::invalid_params(
            NAME,
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

/// The one mapping from a failed add to a fault (the add has already undone itself).
fn provision_fault(e: ProvisionError) -> RpcError {
    match e {
        ProvisionError::Authority(e) => e,
        ProvisionError::Exists { hrn, kind } => RpcError::Exists(format!("{kind} record {hrn}")),
        ProvisionError::Plc(e) => plc_fault(e),
        e @ ProvisionError::SiteClaimed { .. } => RpcError::Failed(e.to_string()),
        ProvisionError::Store(e) => store_fault(e),
    }
}

async fn register_authority<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
) -> Result<String, RpcError> {
    let fields = Struct::new()
        .with("name", dict.name.as_str())
        .with("abbreviated_name", dict.name.as_str());
    let added = provision::add_site(
        registry,
        &dict.name,
        &[dict.kind],
        fields,
        SiteSource::Adopt,
    )
    .await
    .map_err(provision_fault)?;
    Ok(added.gid)
}

async fn register_slice<B: PlcBackend>(
    registry: &Registry<B>,
    dict: &RecordDict,
) -> Result<String, RpcError> {
    let gid = principal_gid(registry, dict)?;
    let person_ids = researcher_ids(registry, dict, "register").await?;
    let fields = Struct::new()
        .with("name", hrn_to_pl_slicename(&dict.name)?)
        .with("instantiation", "delegated")
        .with("max_nodes", 10);
    let slice = NewSlice {
        hrn: dict.name.clone(),
        gid: gid.clone(),
        fields,
        person_ids,
    };
    provision::add_slice(registry, slice)
        .await
        .map_err(provision_fault)?;
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
            NAME,
            "a user record needs geni_info.email",
        ));
    };
    let person = NewPerson {
        hrn: dict.name.clone(),
        gid: gid.clone(),
        fields: Struct::new()
            .with("email", email)
            .with("first_name", "geni")
            .with("last_name", dict.name.as_str()),
        // The PI who registers a researcher vouches for them; only the PLC admin changes
        // `enabled` afterwards.
        enabled: true,
        site_id: site_of(registry, authority).await?,
        roles: vec!["user".to_owned()],
        ssh_keys: Vec::new(),
    };
    provision::add_person(registry, person)
        .await
        .map_err(provision_fault)?;
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
            NAME,
            "a node record needs geni_info.dns (its hostname)",
        ));
    };
    let node = NewNode {
        hrn: dict.name.clone(),
        gid: gid.clone(),
        login_base: hrn_to_pl_login_base(authority),
        fields: Struct::new().with("hostname", dns).with("model", "geni"),
    };
    provision::add_node(registry, node)
        .await
        .map_err(provision_fault)?;
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

/// Whether the other authority record (ma for an sa, sa for an ma) of `hrn` is already here:
/// then its PLC site is this registry's already, and adding the sibling creates no site.
pub(super) async fn sibling_exists<B: PlcBackend>(
    registry: &Registry<B>,
    hrn: &Hrn,
    kind: RecordType,
) -> Result<bool, RpcError> {
    let sibling = if kind == RecordType::Sa {
        RecordType::Ma
    } else {
        RecordType::Sa
    };
    Ok(registry
        .store
        .find(hrn, sibling)
        .await
        .map_err(store_fault)?
        .is_some())
}
