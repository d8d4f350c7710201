//! `remove(cred, record)` (2008) and `remove(cred, type, hrn)` (2009): deletes a record and its
//! PLC object (operation `remove`: `refresh` or authority rights, over the record).
//!
//! The record is looked up here; the caller's pointer is never trusted. Every check comes
//! first; then the record is deleted and then its PLC object, and if PLC refuses, the record is
//! put back, so a failed remove leaves the store and PLC as they were. A site goes only with
//! the last of its sa and ma records, and not while records remain under the authority (2008
//! left them orphaned). An unknown record is a clean "not found" fault (2008 raised a NameError
//! building it). A PLC object already gone is not an error: the record still goes.

use std::sync::Arc;

use geni_rpc::{CallContext, RpcError};
use geni_trust::{Operation, RecordType};
use geni_xmlrpc::Value;

use super::backend::{PlcBackend, PlcError};
use super::record::RecordDict;
use super::{Registry, hrn_arg, plc_fault, require_permission, store_fault, type_arg};
use super::{policy, register};

pub(super) const NAME: &str = "remove";

pub(super) const HELP: &str = "remove(credential, record) or remove(credential, type, hrn): \
     deletes the record and its PLC object. Needs remove (refresh or authority rights).";

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let (credential, name, kind) = match params.as_slice() {
        [Value::String(c), record @ Value::Struct(_)] => {
            let dict = RecordDict::parse("remove", record)?;
            (c, dict.name, dict.kind)
        }
        [Value::String(c), kind, name] => (c, hrn_arg(NAME, name)?, type_arg(NAME, kind)?),
        _ => {
            return Err(RpcError::invalid_params(
                NAME,
                "takes a credential and a record struct, or a credential, a type and an hrn",
            ));
        }
    };
    let verified = registry
        .authenticate(&ctx, credential, Operation::Remove)
        .await?;
    require_permission(&verified, &name)?;
    let record = registry.record(&name, kind).await?;
    // Every check first; then the record goes before its PLC object, because a record can be
    // put back exactly if PLC then refuses, and a deleted PLC object cannot.
    let plc_object = match kind {
        RecordType::User => Some(PlcObject::Person),
        RecordType::Slice => Some(PlcObject::Slice),
        RecordType::Node => Some(PlcObject::Node),
        RecordType::Sa | RecordType::Ma => {
            let shared = register::sibling_exists(&registry, &name, kind).await?;
            if shared || record.pointer < 0 {
                None
            } else {
                let under = registry.store.under(&name).await.map_err(store_fault)?;
                if !under.is_empty() {
                    return Err(RpcError::Failed(format!(
                        "{} record(s) are still under {name}; remove them before its last \
                         authority record",
                        under.len()
                    )));
                }
                // Deleting a PLC site is PLCAPI's DeleteSite, the admin's.
                policy::require_admin(&verified, &format!("deleting the site of {name}"))?;
                Some(PlcObject::Site)
            }
        }
    };
    registry
        .store
        .delete(&name, kind)
        .await
        .map_err(store_fault)?;
    if let Some(object) = plc_object {
        let plc = &registry.plc;
        let id = record.pointer;
        let gone = match object {
            PlcObject::Person => plc.delete_person(id).await,
            PlcObject::Slice => plc.delete_slice(id).await,
            PlcObject::Node => plc.delete_node(id).await,
            PlcObject::Site => plc.delete_site(id).await,
        };
        match gone {
            // Already gone from PLC: the record goes all the same.
            Ok(()) | Err(PlcError::NotFound { .. }) => {}
            Err(e) => {
                if let Err(undo) = registry.store.insert(&record).await {
                    tracing::error!(
                        hrn = %name, kind = %kind, error = %undo,
                        "Remove failed at PLC and the record could not be put back: the {kind} \
                         record {name} is missing while its PLC object remains"
                    );
                }
                return Err(plc_fault(e));
            }
        }
    }
    tracing::info!(caller = %verified.caller().hrn(), hrn = %name, kind = %kind, "Record removed");
    Ok(Value::Bool(true))
}

/// The PLC object a removed record takes with it.
#[derive(Debug, Clone, Copy)]
enum PlcObject {
    Person,
    Slice,
    Node,
    Site,
}
