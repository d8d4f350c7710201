//! A registry record as it travels: the struct `{name, gid, type, pointer, pl_info, geni_info}` of
//! 2008's `GeniRecord.as_dict()` (reference §1.6), read from a server's answer and written back for
//! `register` and `update`.
//!
//! Reading keeps the struct the server sent, so that `update` returns every field it did not
//! change exactly as it came; the typed accessors are views of it.

use geni_trust::{Gid, Hrn, RecordType};
use geni_xmlrpc::{Struct, Value};

/// One record, with the server's struct kept whole.
#[derive(Debug, Clone)]
pub struct Record {
    name: Hrn,
    kind: String,
    gid: Gid,
    fields: Struct,
}

impl Record {
    /// Reads one record from an answer; `method` names the call in messages.
    pub fn from_value(value: &Value, method: &str) -> Result<Self, String> {
        let fields = value.as_struct().ok_or_else(|| {
            format!(
                "{method} returned a {} where a record belongs",
                value.type_name()
            )
        })?;
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a record from {method} has no {name} string"))
        };
        let name = Hrn::parse(text("name")?)
            .map_err(|e| format!("a record from {method} has a bad name: {e}"))?;
        let kind = text("type")?.to_owned();
        let gid = Gid::parse(text("gid")?)
            .map_err(|e| format!("the record {name} from {method} has an unreadable GID: {e}"))?;
        Ok(Self {
            name,
            kind,
            gid,
            fields: fields.clone(),
        })
    }

    /// A list of records, as `resolve` and `list` return them.
    pub fn list_from_value(value: &Value, method: &str) -> Result<Vec<Self>, String> {
        let items = value.as_array().ok_or_else(|| {
            format!(
                "{method} returned a {}, not a list of records",
                value.type_name()
            )
        })?;
        items.iter().map(|v| Self::from_value(v, method)).collect()
    }

    /// A new record as `genicli register` sends it (2008: `pointer = -1`, `geni_info` only when
    /// it has something, no `pl_info`).
    pub fn new_for_register(
        name: &Hrn,
        kind: RecordType,
        gid_text: &str,
        geni_info: Struct,
    ) -> Result<Self, String> {
        let gid = Gid::parse(gid_text).map_err(|e| format!("cannot read the GID: {e}"))?;
        let mut fields = Struct::new()
            .with("name", name.as_str())
            .with("gid", gid_text)
            .with("type", kind.as_str())
            .with("pointer", -1_i64);
        if !geni_info.is_empty() {
            fields.insert("geni_info", geni_info);
        }
        Ok(Self {
            name: name.clone(),
            kind: kind.as_str().to_owned(),
            gid,
            fields,
        })
    }

    pub fn name(&self) -> &Hrn {
        &self.name
    }

    /// The record type as the server wrote it (`user`, `slice`, `sa`, `ma`, `node`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn gid(&self) -> &Gid {
        &self.gid
    }

    /// `pointer`, the PLC id behind the record, as sent.
    pub fn pointer(&self) -> Option<&Value> {
        self.fields.get("pointer")
    }

    pub fn geni_info(&self) -> Option<&Struct> {
        self.fields.get("geni_info").and_then(Value::as_struct)
    }

    pub fn pl_info(&self) -> Option<&Struct> {
        self.fields.get("pl_info").and_then(Value::as_struct)
    }

    /// Sets `geni_info[name]`, creating `geni_info` when the record had none (2008 `update`).
    pub fn set_geni_info(&mut self, name: &str, value: impl Into<Value>) {
        let mut info = self.geni_info().cloned().unwrap_or_default();
        info.insert(name, value);
        self.fields.insert("geni_info", info);
    }

    /// The struct to send.
    pub fn to_value(&self) -> Value {
        Value::Struct(self.fields.clone())
    }
}
