//! The 2008 record on the wire (`util/record.py` `as_dict`): `{name, gid, type, pointer}` plus
//! `pl_info` (the raw PLC struct) and `geni_info` (per type: a slice's `researcher`, an sa's
//! `pi`, an ma's `operator` and `owner`, a node's `dns`, a user's `email`) when not empty.
//!
//! This module owns reading a caller's record dict strictly (each malformed part gets its own
//! message and nothing is stored) and writing ours. Filling `pl_info` and `geni_info` from PLC is
//! `fill`'s business.

use geni_rpc::RpcError;
use geni_trust::{Hrn, RecordType};
use geni_xmlrpc::{Struct, Value};

use super::store::StoredRecord;

/// A record dict as a caller sent it (`register`, `update`, `remove`).
#[derive(Debug, Clone)]
pub(crate) struct RecordDict {
    pub(crate) name: Hrn,
    pub(crate) kind: RecordType,
    /// The GID chain text, when sent.
    pub(crate) gid: Option<String>,
    pub(crate) geni_info: Struct,
    pub(crate) pl_info: Struct,
}

impl RecordDict {
    /// Reads `value` as the record dict argument of `method`.
    pub(crate) fn parse(method: &str, value: &Value) -> Result<Self, RpcError> {
        let bad = |reason: String| RpcError::invalid_params(method, reason);
        let Value::Struct(s) = value else {
            return Err(bad(format!(
                "the record must be a struct {{name, type, gid, …}}, not a {}",
                value.type_name()
            )));
        };
        let name = match s.get("name") {
            Some(Value::String(n)) => {
                Hrn::parse(n).map_err(|e| bad(format!("record name: {e}")))?
            }
            Some(v) => {
                return Err(bad(format!(
                    "record name must be a string, not a {}",
                    v.type_name()
                )));
            }
            None => return Err(bad("the record has no name".into())),
        };
        let kind = match s.get("type") {
            Some(Value::String(t)) => t.parse().map_err(|_| {
                bad(format!(
                    "record type {t:?} is not one of user, slice, sa, ma, node"
                ))
            })?,
            Some(v) => {
                return Err(bad(format!(
                    "record type must be a string, not a {}",
                    v.type_name()
                )));
            }
            None => return Err(bad("the record has no type".into())),
        };
        let gid = match s.get("gid") {
            None | Some(Value::Nil) => None,
            Some(Value::String(g)) if g.trim().is_empty() => None,
            Some(Value::String(g)) => Some(g.clone()),
            Some(v) => {
                return Err(bad(format!(
                    "record gid must be a string, not a {}",
                    v.type_name()
                )));
            }
        };
        match s.get("pointer") {
            None | Some(Value::Nil | Value::Int(_)) => {}
            Some(v) => {
                return Err(bad(format!(
                    "record pointer must be an integer, not a {}",
                    v.type_name()
                )));
            }
        }
        let info = |field: &str| -> Result<Struct, RpcError> {
            match s.get(field) {
                None | Some(Value::Nil) => Ok(Struct::new()),
                Some(Value::Struct(i)) => Ok(i.clone()),
                Some(v) => Err(bad(format!(
                    "record {field} must be a struct, not a {}",
                    v.type_name()
                ))),
            }
        };
        Ok(Self {
            name,
            kind,
            gid,
            geni_info: info("geni_info")?,
            pl_info: info("pl_info")?,
        })
    }

    /// A string member of `geni_info`, or an error naming it when required and absent.
    pub(crate) fn geni_str(&self, method: &str, field: &str) -> Result<Option<&str>, RpcError> {
        match self.geni_info.get(field) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(RpcError::invalid_params(
                method,
                format!(
                    "geni_info.{field} must be a string, not a {}",
                    v.type_name()
                ),
            )),
        }
    }

    /// A list of hrns in `geni_info` (`researcher`, `pi`, …).
    pub(crate) fn geni_hrns(&self, method: &str, field: &str) -> Result<Vec<Hrn>, RpcError> {
        let bad = |reason: String| RpcError::invalid_params(method, reason);
        match self.geni_info.get(field) {
            None | Some(Value::Nil) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => {
                        Hrn::parse(s).map_err(|e| bad(format!("geni_info.{field}: {e}")))
                    }
                    v => Err(bad(format!(
                        "geni_info.{field} must list strings, not a {}",
                        v.type_name()
                    ))),
                })
                .collect(),
            Some(v) => Err(bad(format!(
                "geni_info.{field} must be an array of hrns, not a {}",
                v.type_name()
            ))),
        }
    }
}

/// A stored record as the wire dict, with `pl_info` and `geni_info` when not empty.
pub(crate) fn to_value(record: &StoredRecord, pl_info: Struct, geni_info: Struct) -> Value {
    let mut s = Struct::new()
        .with("name", record.hrn.as_str())
        .with("gid", record.gid.as_str())
        .with("type", record.kind.as_str())
        .with("pointer", record.pointer);
    if !pl_info.is_empty() {
        s.insert("pl_info", pl_info);
    }
    if !geni_info.is_empty() {
        s.insert("geni_info", geni_info);
    }
    Value::Struct(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(v: Value) -> String {
        match RecordDict::parse("register", &v) {
            Err(RpcError::InvalidParams { reason, .. }) => reason,
            other => panic!("expected invalid params, got {other:?}"),
        }
    }

    #[test]
    fn malformed_dicts_say_what_is_wrong() {
        assert!(reason(Value::from("x")).contains("must be a struct"));
        let ok = Struct::new()
            .with("name", "planetlab.us.pl.s1")
            .with("type", "slice");
        assert!(reason(Value::Struct(Struct::new().with("type", "slice"))).contains("no name"));
        assert!(reason(Value::Struct(ok.clone().with("type", "frob"))).contains("frob"));
        assert!(reason(Value::Struct(ok.clone().with("name", "a..b"))).contains("record name"));
        assert!(reason(Value::Struct(ok.clone().with("gid", 3))).contains("gid must be a string"));
        assert!(reason(Value::Struct(ok.clone().with("pointer", "x"))).contains("pointer"));
        assert!(reason(Value::Struct(ok.clone().with("geni_info", "x"))).contains("geni_info"));
        let d = RecordDict::parse(
            "register",
            &Value::Struct(ok.with(
                "geni_info",
                Struct::new().with(
                    "researcher",
                    Value::Array(vec![Value::from("planetlab.us.pl.alice")]),
                ),
            )),
        )
        .unwrap();
        assert_eq!(d.kind, RecordType::Slice);
        assert_eq!(d.geni_hrns("register", "researcher").unwrap().len(), 1);
        assert!(d.geni_str("register", "researcher").is_err());
    }
}
