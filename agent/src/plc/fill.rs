//! Filling a record for display (2008 `fill_record_pl_info` / `fill_record_geni_info`):
//! `pl_info` is the PLC struct the record points at, `geni_info` is derived from it per type, and
//! the people in it are named by their user records' hrns.
//!
//! Also the role questions the permission checks ask: is a person a researcher of a slice, a PI
//! of a site, an operator or owner of its management authority.

use geni_rpc::RpcError;
use geni_trust::{Hrn, RecordType};
use geni_xmlrpc::{Struct, Value};

use super::backend::{Lookup, Person, PlcBackend};
use super::store::StoredRecord;
use super::{Registry, plc_fault, store_fault};

/// What PLC says about a record.
#[derive(Debug, Default)]
pub(crate) struct Filled {
    pub(crate) pl_info: Struct,
    pub(crate) geni_info: Struct,
}

impl<B: PlcBackend> Registry<B> {
    /// The record's PLC data, or `None` when the PLC object it points at is gone. Records with no
    /// PLC object (pointer −1, a top-level authority) fill to nothing.
    pub(crate) async fn fill(&self, record: &StoredRecord) -> Result<Option<Filled>, RpcError> {
        if record.pointer < 0 {
            return Ok(Some(Filled::default()));
        }
        let ids = || Lookup::Ids(vec![record.pointer]);
        let filled = match record.kind {
            RecordType::User => {
                let Some(p) = self.plc.get_persons(ids()).await.map_err(plc_fault)?.pop() else {
                    return Ok(None);
                };
                Filled {
                    geni_info: Struct::new().with("email", p.email.as_str()),
                    pl_info: p.raw,
                }
            }
            RecordType::Slice => {
                let Some(s) = self.plc.get_slices(ids()).await.map_err(plc_fault)?.pop() else {
                    return Ok(None);
                };
                let researchers = self.user_hrns(&s.person_ids).await?;
                Filled {
                    geni_info: Struct::new().with("researcher", hrn_list(&researchers)),
                    pl_info: s.raw,
                }
            }
            RecordType::Sa | RecordType::Ma => {
                let Some(site) = self.plc.get_sites(ids()).await.map_err(plc_fault)?.pop() else {
                    return Ok(None);
                };
                let persons = self
                    .plc
                    .get_persons(Lookup::Ids(site.person_ids.clone()))
                    .await
                    .map_err(plc_fault)?;
                let with_role = |role: &str| -> Vec<i64> {
                    persons
                        .iter()
                        .filter(|p| p.roles.iter().any(|r| r == role))
                        .map(|p| p.person_id)
                        .collect()
                };
                let geni_info = if record.kind == RecordType::Sa {
                    Struct::new().with("pi", hrn_list(&self.user_hrns(&with_role("pi")).await?))
                } else {
                    Struct::new()
                        .with(
                            "operator",
                            hrn_list(&self.user_hrns(&with_role("tech")).await?),
                        )
                        .with(
                            "owner",
                            hrn_list(&self.user_hrns(&with_role("admin")).await?),
                        )
                };
                Filled {
                    geni_info,
                    pl_info: site.raw,
                }
            }
            RecordType::Node => {
                let Some(n) = self.plc.get_nodes(ids()).await.map_err(plc_fault)?.pop() else {
                    return Ok(None);
                };
                Filled {
                    geni_info: Struct::new().with("dns", n.hostname.as_str()),
                    pl_info: n.raw,
                }
            }
        };
        Ok(Some(filled))
    }

    /// The hrns of the user records pointing at `person_ids`; persons without one are left out.
    pub(crate) async fn user_hrns(&self, person_ids: &[i64]) -> Result<Vec<Hrn>, RpcError> {
        let mut hrns = Vec::new();
        for id in person_ids {
            for r in self
                .store
                .by_pointer(RecordType::User, *id)
                .await
                .map_err(store_fault)?
            {
                hrns.push(r.hrn);
            }
        }
        Ok(hrns)
    }

    /// The PLC person behind the user record `hrn`, if there is one.
    pub(crate) async fn person_of(&self, hrn: &Hrn) -> Result<Option<Person>, RpcError> {
        let Some(user) = self
            .store
            .find(hrn, RecordType::User)
            .await
            .map_err(store_fault)?
        else {
            return Ok(None);
        };
        Ok(self
            .plc
            .get_persons(Lookup::Ids(vec![user.pointer]))
            .await
            .map_err(plc_fault)?
            .pop())
    }

    /// Whether the user `who` holds a role on `record` that lets them see it and get its
    /// credential (the fix of 2009 `c4ffc19e`): researcher of a slice, PI of an sa, operator
    /// (tech) or owner (admin) of an ma, at that record's site.
    pub(crate) async fn holds_role(
        &self,
        who: &Hrn,
        record: &StoredRecord,
    ) -> Result<bool, RpcError> {
        if record.pointer < 0
            || !matches!(
                record.kind,
                RecordType::Slice | RecordType::Sa | RecordType::Ma
            )
        {
            return Ok(false);
        }
        let Some(person) = self.person_of(who).await? else {
            return Ok(false);
        };
        let has = |role: &str| person.roles.iter().any(|r| r == role);
        Ok(match record.kind {
            RecordType::Slice => person.slice_ids.contains(&record.pointer),
            RecordType::Sa => person.site_ids.contains(&record.pointer) && has("pi"),
            RecordType::Ma => {
                person.site_ids.contains(&record.pointer) && (has("tech") || has("admin"))
            }
            RecordType::User | RecordType::Node => false,
        })
    }
}

fn hrn_list(hrns: &[Hrn]) -> Value {
    Value::Array(hrns.iter().map(|h| Value::from(h.as_str())).collect())
}
