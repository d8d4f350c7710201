//! genicli's human output: the 2008 `dump()` layouts, line for line (reference §4.5 and the
//! design document's samples), so that a 2008 user's eyes and scripts find what they knew.
//!
//! GIDs and credentials use `geni-trust`'s 2008 layout (`CREDENTIAL <subject>`, `      privs:`,
//! `  gidCaller:`, …). Records and tickets are laid out here, from `GeniRecord.dump` and
//! `Ticket.dump`: Python 2 `print` statements, so fields are `str()`'d, lists and dicts `repr()`'d,
//! and dict members come in CPython 2.7's order (`py2`). One deliberate difference: with
//! `--dump_parents` every parent is shown, where 2008's `GID.dump` stopped after one level.

use std::fmt::Write as _;

use geni_trust::{Credential, Gid, Ticket};
use geni_xmlrpc::Value;

use super::py2;
use super::record::Record;

/// `GID.dump(indent)`: `  hrn: …` and ` uuid: …` under `indent` spaces.
pub fn gid(gid: &Gid, dump_parents: bool) -> String {
    gid.dump(0, dump_parents)
}

/// `Credential.dump()`: the design document's `CREDENTIAL …` block.
pub fn credential(credential: &Credential, dump_parents: bool) -> String {
    credential.dump(dump_parents)
}

/// `Ticket.dump()` as 2008's `geniticket.py` printed it.
pub fn ticket(ticket: &Ticket, dump_parents: bool) -> String {
    let mut out = String::new();
    let mut current = Some(ticket);
    let mut first = true;
    while let Some(t) = current {
        let prefix = if first { "" } else { "PARENT " };
        let _ = writeln!(out, "{prefix}TICKET {}", t.subject());
        let _ = writeln!(out, "  gidCaller:");
        if let Some(g) = t.caller() {
            out.push_str(&g.dump(8, dump_parents));
        }
        let _ = writeln!(out, "  gidObject:");
        if let Some(g) = t.object() {
            out.push_str(&g.dump(8, dump_parents));
        }
        let _ = writeln!(out, "  attributes:");
        for (name, value) in py2::members(t.attributes()) {
            let _ = writeln!(out, "         {name} {}", py2::str(value));
        }
        let _ = writeln!(out, "       rspec:");
        let _ = writeln!(
            out,
            "         {}",
            py2::str(&Value::Struct(t.rspec().clone()))
        );
        current = if dump_parents { t.parent() } else { None };
        first = false;
    }
    out
}

/// `GeniRecord.dump()`: the design document's `RECORD …` block.
pub fn record(record: &Record, dump_parents: bool) -> String {
    let mut out = String::new();
    let name = record.name();
    let _ = writeln!(out, "RECORD {name}");
    let _ = writeln!(out, "        hrn: {name}");
    let _ = writeln!(out, "       type: {}", record.kind());
    let _ = writeln!(out, "        gid:");
    out.push_str(&record.gid().dump(8, dump_parents));
    let pointer = record.pointer().map_or_else(|| "None".to_owned(), py2::str);
    let _ = writeln!(out, "    pointer: {pointer}");
    let _ = writeln!(out, "  geni_info:");
    if let Some(info) = record.geni_info() {
        for (k, v) in py2::members(info) {
            let _ = writeln!(out, "        {k} : {}", py2::str(v));
        }
    }
    let _ = writeln!(out, "    pl_info:");
    if let Some(info) = record.pl_info() {
        for (k, v) in py2::members(info) {
            let _ = writeln!(out, "        {k} : {}", py2::str(v));
        }
    }
    out
}

/// A sliver as `listSlices` shows it: 2008 printed bare names; our node's `list_slivers` also
/// says its state.
pub fn sliver(value: &Value) -> String {
    match value {
        Value::Struct(s) => {
            let name = s.get("name").map_or_else(String::new, py2::str);
            match (s.get("state"), s.get("pid").and_then(Value::as_i64)) {
                (Some(state), Some(pid)) => format!("{name} ({}, pid {pid})", py2::str(state)),
                (Some(state), None) => format!("{name} ({})", py2::str(state)),
                _ => name,
            }
        }
        other => py2::str(other),
    }
}

/// The sliver's name alone, for `--outfile` (2008 wrote the names, one per line).
pub fn sliver_name(value: &Value) -> String {
    match value {
        Value::Struct(s) => s.get("name").map_or_else(String::new, py2::str),
        other => py2::str(other),
    }
}

#[cfg(test)]
mod tests {
    use geni_trust::{CertMode, Hierarchy, Hrn, Keypair, RecordType};
    use geni_xmlrpc::Struct;

    use super::*;

    /// The design document's §5.1.2 sample (`resolve planetlab.us.pl.account_test`), whose
    /// text extraction lost the leading spaces; the spaces are 2008 `GeniRecord.dump()`'s.
    const DOC_SAMPLE: &str = "\
RECORD planetlab.us.pl.account_test
        hrn: planetlab.us.pl.account_test
       type: user
        gid:
          hrn: planetlab.us.pl.account_test
         uuid: 276262316202422735940395896620385479122
    pointer: 6
  geni_info:
        email : test@test.com
    pl_info:
        bio : None
        first_name : test
        last_name : account
        last_updated : 1222497672
        uuid : None
        roles : ['user']
        title : None
        url : None
        key_ids : [1]
        enabled : True
        slice_ids : [24]
        phone : None
        peer_person_id : None
        role_ids : [30]
        person_id : 6
        date_created : 1219083140
        site_ids : [1]
        peer_id : None
        email : test@test.com
";

    #[test]
    fn a_record_dumps_as_the_design_document_shows() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(dir.path()).with_mode(CertMode::Compat2008);
        let site = Hrn::parse("planetlab.us.pl").unwrap();
        h.create_authority(&site, true).unwrap();
        let hrn = Hrn::parse("planetlab.us.pl.account_test").unwrap();
        let key = Keypair::generate(1024).unwrap();
        let gid = h
            .create_gid(
                &hrn,
                Some("276262316202422735940395896620385479122"),
                &key.public_key(),
            )
            .unwrap();
        // PLCAPI's GetPersons fields, sent in alphabetical order: the dump's order is Python's.
        let pl_info = Struct::new()
            .with("bio", Value::Nil)
            .with("date_created", 1_219_083_140_i64)
            .with("email", "test@test.com")
            .with("enabled", true)
            .with("first_name", "test")
            .with("key_ids", Value::Array(vec![Value::Int(1)]))
            .with("last_name", "account")
            .with("last_updated", 1_222_497_672_i64)
            .with("peer_id", Value::Nil)
            .with("peer_person_id", Value::Nil)
            .with("person_id", 6_i64)
            .with("phone", Value::Nil)
            .with("role_ids", Value::Array(vec![Value::Int(30)]))
            .with("roles", Value::Array(vec![Value::from("user")]))
            .with("site_ids", Value::Array(vec![Value::Int(1)]))
            .with("slice_ids", Value::Array(vec![Value::Int(24)]))
            .with("title", Value::Nil)
            .with("url", Value::Nil)
            .with("uuid", Value::Nil);
        let wire = Struct::new()
            .with("name", hrn.as_str())
            .with(
                "gid",
                gid.to_chain_string(geni_trust::ChainForm::Separator)
                    .unwrap(),
            )
            .with("type", RecordType::User.as_str())
            .with("pointer", 6_i64)
            .with("geni_info", Struct::new().with("email", "test@test.com"))
            .with("pl_info", pl_info);
        let resolved = Record::from_value(&Value::Struct(wire), "resolve").unwrap();
        assert_eq!(record(&resolved, false), DOC_SAMPLE);
    }
}
