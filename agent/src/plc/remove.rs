//! `remove(cred, record)` (2008) and `remove(cred, type, hrn)` (2009): deletes a record and its
//! PLC object (operation `remove`: `refresh` or authority rights, over the record).
//!
//! The record is looked up here; the caller's pointer is never trusted. A site goes only with
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
    let plc = &registry.plc;
    let gone = match kind {
        RecordType::User => plc.delete_person(record.pointer).await,
        RecordType::Slice => plc.delete_slice(record.pointer).await,
        RecordType::Node => plc.delete_node(record.pointer).await,
        RecordType::Sa | RecordType::Ma => {
            let shared = register::sibling_exists(&registry, &name, kind).await?;
            if shared || record.pointer < 0 {
                Ok(())
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
                plc.delete_site(record.pointer).await
            }
        }
    };
    match gone {
        Ok(()) | Err(PlcError::NotFound { .. }) => {}
        Err(e) => return Err(plc_fault(e)),
    }
    registry
        .store
        .delete(&name, kind)
        .await
        .map_err(store_fault)?;
    tracing::info!(caller = %verified.caller().hrn(), hrn = %name, kind = %kind, "Record removed");
    Ok(Value::Bool(true))
}
