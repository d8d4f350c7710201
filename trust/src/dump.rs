//! Human-readable dumps of GIDs, credentials and tickets, laid out as the 2008 classes' `dump()`
//! printed them (the design document's `CREDENTIAL …` samples), for `geni-agent authority show`
//! and genicli.

use std::fmt::Write;

use geni_xmlrpc::Value;

use crate::{Credential, Gid, Ticket};

impl Gid {
    /// 2008 `GID.dump(indent, dump_parents)`.
    pub fn dump(&self, indent: usize, dump_parents: bool) -> String {
        let mut out = String::new();
        self.dump_into(&mut out, indent, dump_parents);
        out
    }

    fn dump_into(&self, out: &mut String, indent: usize, dump_parents: bool) {
        let pad = " ".repeat(indent);
        let _ = writeln!(out, "{pad}  hrn: {}", self.hrn());
        let _ = writeln!(out, "{pad} uuid: {}", self.uuid().unwrap_or("None"));
        if let (Some(parent), true) = (self.parent(), dump_parents) {
            let _ = writeln!(out, "{pad} parent:");
            parent.dump_into(out, indent + 4, dump_parents);
        }
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

impl Credential {
    /// 2008 `Credential.dump(dump_parents)`.
    pub fn dump(&self, dump_parents: bool) -> String {
        let mut out = String::new();
        let mut cur = Some(self);
        let mut first = true;
        while let Some(c) = cur {
            let prefix = if first { "" } else { "PARENT " };
            let _ = writeln!(out, "{prefix}CREDENTIAL {}", c.subject());
            let _ = writeln!(out, "      privs: {}", c.privileges());
            let _ = writeln!(out, "  gidCaller:");
            if let Some(g) = c.caller() {
                g.dump_into(&mut out, 8, dump_parents);
            }
            let _ = writeln!(out, "  gidObject:");
            if let Some(g) = c.object() {
                g.dump_into(&mut out, 8, dump_parents);
            }
            let _ = writeln!(out, "   delegate: {}", py_bool(c.delegate()));
            cur = if dump_parents { c.parent() } else { None };
            first = false;
        }
        out
    }
}

impl Ticket {
    /// A dump in the style of the credential's: caller, object, attributes and rspec.
    pub fn dump(&self, dump_parents: bool) -> String {
        let mut out = String::new();
        let mut cur = Some(self);
        let mut first = true;
        while let Some(t) = cur {
            let prefix = if first { "" } else { "PARENT " };
            let _ = writeln!(out, "{prefix}TICKET {}", t.subject());
            let _ = writeln!(out, "  gidCaller:");
            if let Some(g) = t.caller() {
                g.dump_into(&mut out, 8, dump_parents);
            }
            let _ = writeln!(out, "  gidObject:");
            if let Some(g) = t.object() {
                g.dump_into(&mut out, 8, dump_parents);
            }
            let _ = writeln!(out, "   delegate: {}", py_bool(t.delegate()));
            if let Some(target) = t.target() {
                let _ = writeln!(out, "     target: {target}");
            }
            let _ = writeln!(out, " attributes:");
            for (k, v) in t.attributes().iter() {
                let _ = writeln!(out, "         {k}: {}", show_value(v));
            }
            let _ = writeln!(out, "      rspec:");
            for (k, v) in t.rspec().iter() {
                let _ = writeln!(out, "         {k}: {}", show_value(v));
            }
            cur = if dump_parents { t.parent() } else { None };
            first = false;
        }
        out
    }
}

/// A one-line rendering of a value, with strings escaped so that an initscript stays on its line.
pub(crate) fn show_value(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(show_value).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Base64(b) => format!("<{} bytes>", b.len()),
        Value::Bool(b) => py_bool(*b).to_owned(),
        Value::DateTime(d) => d.clone(),
        Value::Double(d) => d.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Nil => "None".to_owned(),
        Value::String(s) => format!("{s:?}"),
        Value::Struct(s) => {
            let parts: Vec<String> = s
                .iter()
                .map(|(k, v)| format!("{k}: {}", show_value(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}
