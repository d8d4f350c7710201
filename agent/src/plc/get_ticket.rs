//! `get_ticket(cred, name, rspec[, node])`: a ticket for the caller on slice `name`, carrying
//! the slice's PLC state (operation `getticket`: `embed`, `bind` or authority rights, over the
//! slice).
//!
//! As 2008 built it (`reference/geniwrapper-2008.md` §1.5): issued and signed by the slice's
//! authority with the slice's key, `gidCaller` the caller, `gidObject` the slice, parent the
//! authority's ticket; `attributes` = `name` (the PLC slice name), `keys` (every SSH key of every
//! person in the slice), `instantiation`, `vref` (the slice's `vref` attribute, else `default`),
//! `timestamp` (now, a double), `slice_id`, and `initscript` (the body of the initscript the
//! slice's `initscript` attribute names) when set; `rspec` = every other slice attribute. The
//! `rspec` argument is ignored, as in 2008.
//!
//! Beyond 2008: the optional fourth argument names the node (hrn of a node record) the ticket is
//! for; the node refuses it anywhere else, and that node's own attribute rows override the
//! slice-wide ones (rows for other nodes are left out; 2008 let whichever came last win). The
//! ticket expires after the configured lifetime, or with the slice if sooner; an expired slice
//! gets no ticket.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use geni_rpc::{CallContext, RpcError};
use geni_trust::{ChainForm, Clock, Hrn, Operation, RecordType, SystemClock, format_utc};
use geni_xmlrpc::{Struct, Value};

use super::backend::{Lookup, PlcBackend};
use super::{Registry, hrn_arg, parse_stored_gid, plc_fault, require_permission};

pub(super) const NAME: &str = "get_ticket";

pub(super) const HELP: &str = "get_ticket(credential, name, rspec[, node]): a ticket on slice \
     name with its PLC attributes and keys, redeemable by the caller (on node, if named). Needs \
     getticket.";

/// A ticket's payload, from the slice's PLC data.
#[derive(Debug)]
pub(crate) struct TicketData {
    pub(crate) attributes: Struct,
    pub(crate) rspec: Struct,
    /// The slice's expiry, Unix seconds.
    pub(crate) expires: i64,
}

pub(super) async fn call<B: PlcBackend>(
    registry: Arc<Registry<B>>,
    ctx: CallContext,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let (credential, name, node) = match params.as_slice() {
        [Value::String(c), n] | [Value::String(c), n, _] | [Value::String(c), n, _, Value::Nil] => {
            (c, n, None)
        }
        [Value::String(c), n, _, node] => (c, n, Some(hrn_arg(NAME, node)?)),
        _ => {
            return Err(RpcError::invalid_params(
                NAME,
                "takes a credential, a slice name, an rspec (ignored) and optionally a node hrn",
            ));
        }
    };
    let verified = registry
        .authenticate(&ctx, credential, Operation::GetTicket)
        .await?;
    let name = hrn_arg(NAME, name)?;
    registry.require_ours(&name)?;
    require_permission(&verified, &name)?;
    let slice = registry.record(&name, RecordType::Slice).await?;
    let node_id = match &node {
        Some(n) => Some(registry.record(n, RecordType::Node).await?.pointer),
        None => None,
    };
    let data = ticket_data(&registry.plc, &name, slice.pointer, node_id).await?;
    let now = SystemClock.now();
    if data.expires <= now {
        return Err(RpcError::Failed(format!(
            "slice {name} expired at {}; renew it before asking for a ticket",
            format_utc(data.expires)
        )));
    }
    let lifetime = registry.ticket_lifetime.min(data.expires - now);
    let slice_gid = parse_stored_gid(&slice)?;
    let caller = verified.caller().gid();
    let ticket = registry.authorities.issue_ticket(
        caller,
        &slice_gid,
        &data.attributes,
        &data.rspec,
        node.as_ref(),
        lifetime,
    )?;
    tracing::info!(
        caller = %caller.hrn(),
        slice = %name,
        node = ?node.as_ref().map(Hrn::as_str),
        "Ticket issued"
    );
    Ok(Value::String(ticket.to_chain_string(ChainForm::Separator)?))
}

/// The attributes and rspec of slice `slice_id` (the registry record `name`) as a ticket for
/// `node_id` (or any node) carries them.
pub(crate) async fn ticket_data<B: PlcBackend>(
    plc: &B,
    name: &Hrn,
    slice_id: i64,
    node_id: Option<i64>,
) -> Result<TicketData, RpcError> {
    let slice = plc
        .get_slices(Lookup::Ids(vec![slice_id]))
        .await
        .map_err(plc_fault)?
        .pop()
        .ok_or_else(|| RpcError::NotFound(format!("PLC slice {slice_id} of record {name}")))?;
    let keys = plc
        .get_keys_of_persons(slice.person_ids.clone())
        .await
        .map_err(plc_fault)?;
    let keys: Vec<Value> = keys
        .into_iter()
        .filter(|k| k.key_type == "ssh")
        .map(|k| Value::String(k.key))
        .collect();

    // Slice-wide rows first, then the target node's own rows over them.
    let rows = plc
        .get_slice_attributes(slice.slice_id)
        .await
        .map_err(plc_fault)?;
    let mut rspec = Struct::new();
    for row in rows.iter().filter(|r| r.node_id.is_none()) {
        rspec.insert(row.name.as_str(), row.value.as_str());
    }
    if let Some(node) = node_id {
        for row in rows.iter().filter(|r| r.node_id == Some(node)) {
            rspec.insert(row.name.as_str(), row.value.as_str());
        }
    }
    let vref = match rspec.remove("vref") {
        Some(Value::String(v)) => v,
        _ => "default".to_owned(),
    };
    let initscript = match rspec.remove("initscript") {
        Some(Value::String(script_name)) => {
            let script = plc
                .get_initscripts(Lookup::Names(vec![script_name.clone()]))
                .await
                .map_err(plc_fault)?
                .pop()
                .ok_or_else(|| {
                    RpcError::Failed(format!(
                        "slice {} names initscript {script_name:?}, which PLC does not have",
                        slice.name
                    ))
                })?;
            Some(script.script)
        }
        _ => None,
    };
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut attributes = Struct::new()
        .with("name", slice.name.as_str())
        .with("keys", Value::Array(keys))
        .with("instantiation", slice.instantiation.as_str())
        .with("vref", vref)
        .with("timestamp", Value::Double(timestamp))
        .with("slice_id", slice.slice_id);
    if let Some(body) = initscript {
        attributes.insert("initscript", body);
    }
    Ok(TicketData {
        attributes,
        rspec,
        expires: slice.expires,
    })
}
