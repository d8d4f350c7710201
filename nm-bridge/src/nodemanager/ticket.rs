//! The data NodeManager's `AdminTicket` takes: one GetSlivers-shaped batch
//! (`reference/nodemanager.md` §2.1, §2.2, §6) holding the sliver being delivered, built from a
//! [`SliverRecord`], and any records NM must not lose in the `sync()` that follows (ours, or
//! stand-ins for slivers we do not hold), serialized as `xmlrpclib.dumps((data,))`.
//!
//! The shapes follow NodeManager's reader (`slivermanager.GetSlivers`), not Geniwrapper's November
//! 2008 writer, which NM tripped over three times: it sent `initscripts` as a dict (NM iterates a
//! list of `{name, script}`), attributes as `{name, value}` (NM reads `tagname`), and put the rspec
//! nowhere NM looks. Here every rspec value becomes a `{tagname, value}` attribute with a string
//! value, as PLC sends them, and the initscript body travels in `initscripts` under the sliver's
//! name with the sliver's `initscript` tag naming it.

use geni_xmlrpc::{Struct, Value};

use crate::{NmError, RspecValue, SliverRecord};

/// Tags that the record's own fields set. A same-named rspec tag would contradict them, and
/// `initscript_code` would even replace the initscript (§2.2).
const RECORD_TAGS: [&str; 3] = ["initscript", "initscript_code", "vref"];

/// One `AdminTicket`'s data: a GetSlivers-shaped batch. NM delivers every sliver in it, runs one
/// `sync()`, and then `Create`s only the first (§1.4, §3.5).
#[derive(Debug)]
pub(super) struct Batch {
    timestamp: f64,
    slivers: Vec<Value>,
    initscripts: Vec<Value>,
}

/// The batch delivering `record` alone, stamped `timestamp`, with `expires` as given (NM drops
/// the record at its next `sync()` once that is past).
#[cfg(test)]
pub(super) fn batch(record: &SliverRecord, timestamp: f64, expires: i64) -> Struct {
    let mut batch = Batch::new(timestamp);
    batch.sliver(record, timestamp, expires);
    batch.into_data()
}

impl Batch {
    /// An empty batch; `timestamp` is the batch's, which NM gives slivers that carry none.
    pub(super) fn new(timestamp: f64) -> Self {
        Self {
            timestamp,
            slivers: Vec::new(),
            initscripts: Vec::new(),
        }
    }

    /// Adds `record`, stamped `timestamp`, expiring at `expires`.
    pub(super) fn sliver(&mut self, record: &SliverRecord, timestamp: f64, expires: i64) {
        let name = record.name.as_str();
        let mut attributes = Vec::new();
        let mut tag = |tagname: &str, value: String| {
            attributes.push(Value::Struct(
                Struct::new().with("tagname", tagname).with("value", value),
            ));
        };
        for (key, value) in record.rspec.values() {
            let text = match value {
                RspecValue::Int(i) => i.to_string(),
                RspecValue::Str(s) => s.clone(),
            };
            tag(key, text);
        }
        for (key, value) in record.rspec.tags() {
            if !RECORD_TAGS.contains(&key) {
                tag(key, value.to_owned());
            }
        }
        tag("vref", record.vref.clone());
        if !record.initscript.is_empty() {
            tag("initscript", name.to_owned());
            self.initscripts.push(Value::Struct(
                Struct::new()
                    .with("name", name)
                    .with("script", record.initscript.as_str()),
            ));
        }
        let keys = record
            .keys
            .iter()
            .map(|key| {
                Value::Struct(
                    Struct::new()
                        .with("key_type", "ssh")
                        .with("key", key.as_str()),
                )
            })
            .collect();
        let mut sliver = Struct::new().with("name", name);
        if let Some(id) = record.slice_id {
            sliver.insert("slice_id", id);
        }
        let sliver = sliver
            .with("instantiation", record.instantiation.as_str())
            .with("expires", clamp_expiry(expires))
            .with("timestamp", Value::Double(timestamp))
            .with("keys", Value::Array(keys))
            .with("attributes", Value::Array(attributes));
        self.slivers.push(Value::Struct(sliver));
    }

    /// Adds a stand-in record for a sliver account NM has no record of (a restarted NM7 before
    /// its first PLC sync, §2.3, §3.4). Without it, the `sync()` that follows this delivery would
    /// destroy that account and wipe its sliver, because `sync()` destroys every sliver account
    /// missing from the database. The stand-in leaves the sliver as it is: `delegated`, so
    /// `sync()` touches it only through a Worker that is running it, and a restarted NM has none;
    /// no keys, tags or initscript that could be applied; timestamp 0, so PLC's record replaces it
    /// at the first sync, and `set_min_timestamp` removes it (and NM the sliver) if PLC no longer
    /// lists the slice, as NM would have done anyway.
    pub(super) fn placeholder(&mut self, name: &str) {
        let sliver = Struct::new()
            .with("name", name)
            .with("instantiation", "delegated")
            .with("expires", clamp_expiry(i64::MAX))
            .with("timestamp", Value::Double(0.0))
            .with("keys", Value::Array(Vec::new()))
            .with("attributes", Value::Array(Vec::new()));
        self.slivers.push(Value::Struct(sliver));
    }

    /// The data `AdminTicket` reads.
    pub(super) fn into_data(self) -> Struct {
        // NM ignores a batch without `initscripts` altogether (§2.2), so it is always present.
        Struct::new()
            .with("timestamp", Value::Double(self.timestamp))
            .with("initscripts", Value::Array(self.initscripts))
            .with("slivers", Value::Array(self.slivers))
    }
}

/// PLC clamps expiry to what Python's XML-RPC can carry (§6); NM cannot answer GetRecord for a
/// record holding a larger integer (fault 1).
fn clamp_expiry(expires: i64) -> i64 {
    expires.clamp(0, i64::from(i32::MAX))
}

/// `AdminTicket`'s one argument: `xmlrpclib.dumps((data,))`, which NM reads back with
/// `xmlrpc.client.loads`.
pub(super) fn encode(data: Struct) -> Result<String, NmError> {
    geni_xmlrpc::dumps_params(&[Value::Struct(data)], false).map_err(|e| {
        NmError::InvalidRecord(format!("the record cannot be sent to NodeManager: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rspec, SliverName};

    fn record() -> SliverRecord {
        SliverRecord {
            name: SliverName::parse("pl_demo").unwrap(),
            slice_id: Some(7),
            instantiation: "delegated".into(),
            keys: vec!["ssh-rsa AAAA a@b".into()],
            initscript: "#!/bin/sh\necho hi\n".into(),
            vref: "f31".into(),
            timestamp: 1.5,
            expires: i64::MAX,
            rspec: Rspec::from_ticket(
                &Struct::new()
                    .with("cpu_share", "32")
                    .with("x_tag", "7")
                    .with("vref", "other"),
            )
            .unwrap(),
            caller: "plc.pl.alice".into(),
            slice: "plc.pl.demo".into(),
        }
    }

    fn tags(sliver: &Struct) -> Vec<(String, String)> {
        let Some(Value::Array(attrs)) = sliver.get("attributes") else {
            panic!("no attributes")
        };
        attrs
            .iter()
            .map(|a| {
                let a = a.as_struct().unwrap();
                let text = |k| a.get(k).and_then(Value::as_str).unwrap().to_owned();
                (text("tagname"), text("value"))
            })
            .collect()
    }

    #[test]
    fn the_batch_has_the_shapes_nodemanager_reads() {
        let data = batch(&record(), 10.25, i64::MAX);
        let Some(Value::Array(scripts)) = data.get("initscripts") else {
            panic!("initscripts must be a list")
        };
        let script = scripts[0].as_struct().unwrap();
        assert_eq!(script.get("name").and_then(Value::as_str), Some("pl_demo"));
        let sliver = data.get("slivers").and_then(Value::as_array).unwrap()[0]
            .as_struct()
            .unwrap();
        assert_eq!(
            sliver.get("expires"),
            Some(&Value::Int(i64::from(i32::MAX)))
        );
        assert_eq!(sliver.get("timestamp"), Some(&Value::Double(10.25)));
        let tags = tags(sliver);
        assert!(tags.contains(&("cpu_share".into(), "32".into())));
        assert!(tags.contains(&("x_tag".into(), "7".into())));
        assert!(tags.contains(&("initscript".into(), "pl_demo".into())));
        // The record's vref wins over an rspec tag of the same name, which is not sent at all.
        let vrefs: Vec<_> = tags.iter().filter(|(k, _)| k == "vref").collect();
        assert_eq!(vrefs, [&("vref".to_owned(), "f31".to_owned())]);
        let text = encode(data).unwrap();
        assert!(text.starts_with("<params>"), "{text}");
    }

    #[test]
    fn a_placeholder_is_delegated_bare_and_older_than_any_plc_record() {
        let mut batch = Batch::new(5.0);
        batch.sliver(&record(), 5.0, 99);
        batch.placeholder("pl_foreign");
        let data = batch.into_data();
        let slivers = data.get("slivers").and_then(Value::as_array).unwrap();
        // Ours first: AdminTicket `Create`s only the first sliver.
        let names: Vec<_> = slivers
            .iter()
            .map(|s| s.as_struct().unwrap().get("name").and_then(Value::as_str))
            .collect();
        assert_eq!(names, [Some("pl_demo"), Some("pl_foreign")]);
        let stand_in = slivers[1].as_struct().unwrap();
        assert_eq!(
            stand_in.get("instantiation"),
            Some(&Value::from("delegated"))
        );
        assert_eq!(stand_in.get("timestamp"), Some(&Value::Double(0.0)));
        assert_eq!(stand_in.get("keys"), Some(&Value::Array(Vec::new())));
        assert_eq!(stand_in.get("attributes"), Some(&Value::Array(Vec::new())));
        assert_eq!(
            stand_in.get("expires"),
            Some(&Value::Int(i64::from(i32::MAX)))
        );
        // Only our sliver brings an initscript.
        assert_eq!(
            data.get("initscripts")
                .and_then(Value::as_array)
                .map(<[_]>::len),
            Some(1)
        );
    }

    #[test]
    fn no_initscript_means_an_empty_list_and_no_tag() {
        let mut r = record();
        r.initscript.clear();
        let data = batch(&r, 1.0, 5);
        assert_eq!(data.get("initscripts"), Some(&Value::Array(Vec::new())));
        let sliver = data.get("slivers").and_then(Value::as_array).unwrap()[0]
            .as_struct()
            .unwrap();
        assert!(!tags(sliver).iter().any(|(k, _)| k == "initscript"));
    }
}
