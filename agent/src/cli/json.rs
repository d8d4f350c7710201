//! `--json`: each command prints one JSON object, `{"ok": true, "command": …, "result": …}` or
//! `{"ok": false, "command": …, "error": {"kind", "message", "hint", …}}`, so that a script reads
//! the same fields the human output shows without parsing the 2008 layout.
//!
//! Credentials, GIDs and tickets become their decoded fields (not their PEM text: `--outfile`
//! saves that); records keep the server's member order.

use geni_trust::{Credential, Gid, Ticket};
use geni_xmlrpc::{Struct, Value};
use serde_json::{Map, Value as Json, json};

use super::error::CliError;
use super::record::Record;

/// The object printed for a command that succeeded.
pub fn ok(command: &str, result: Json) -> Json {
    json!({ "ok": true, "command": command, "result": result })
}

/// The object printed for a command that failed.
pub fn error(command: &str, e: &CliError) -> Json {
    let mut err = Map::new();
    err.insert("kind".into(), e.kind().into());
    err.insert("message".into(), e.to_string().into());
    err.insert("hint".into(), e.hint().into());
    err.insert("exit_status".into(), e.status().code().into());
    match e {
        CliError::Fault {
            url,
            method,
            code,
            string,
        } => {
            err.insert("server".into(), url.as_str().into());
            err.insert("method".into(), method.as_str().into());
            err.insert("fault_code".into(), (*code).into());
            err.insert("fault_string".into(), string.as_str().into());
        }
        CliError::Connection { url, .. } => {
            err.insert("server".into(), url.as_str().into());
        }
        _ => {}
    }
    json!({ "ok": false, "command": command, "error": Json::Object(err) })
}

pub fn gid(gid: &Gid, parents: bool) -> Json {
    let validity = gid.certificate().validity();
    let mut obj = Map::new();
    obj.insert("hrn".into(), gid.hrn().as_str().into());
    obj.insert("uuid".into(), gid.uuid().into());
    obj.insert("issuer".into(), gid.certificate().issuer().into());
    obj.insert("not_after".into(), validity.not_after.into());
    if let (Some(parent), true) = (gid.parent(), parents) {
        obj.insert("parent".into(), self::gid(parent, parents));
    }
    Json::Object(obj)
}

fn embedded(g: Option<&Gid>, parents: bool) -> Json {
    g.map_or(Json::Null, |g| gid(g, parents))
}

pub fn credential(c: &Credential, parents: bool) -> Json {
    let mut obj = Map::new();
    obj.insert("kind".into(), "credential".into());
    obj.insert("subject".into(), c.subject().into());
    obj.insert("privileges".into(), c.privileges().to_string().into());
    obj.insert("delegate".into(), c.delegate().into());
    obj.insert("caller".into(), embedded(c.caller(), parents));
    obj.insert("object".into(), embedded(c.object(), parents));
    obj.insert(
        "not_after".into(),
        c.certificate().validity().not_after.into(),
    );
    if let (Some(parent), true) = (c.parent(), parents) {
        obj.insert("parent".into(), credential(parent, parents));
    }
    Json::Object(obj)
}

pub fn ticket(t: &Ticket, parents: bool) -> Json {
    let mut obj = Map::new();
    obj.insert("kind".into(), "ticket".into());
    obj.insert("subject".into(), t.subject().into());
    obj.insert("caller".into(), embedded(t.caller(), parents));
    obj.insert("object".into(), embedded(t.object(), parents));
    obj.insert("attributes".into(), struct_json(t.attributes()));
    obj.insert("rspec".into(), struct_json(t.rspec()));
    obj.insert("delegate".into(), t.delegate().into());
    obj.insert(
        "not_after".into(),
        t.certificate().validity().not_after.into(),
    );
    if let (Some(parent), true) = (t.parent(), parents) {
        obj.insert("parent".into(), ticket(parent, parents));
    }
    Json::Object(obj)
}

pub fn record(r: &Record, parents: bool) -> Json {
    json!({
        "name": r.name().as_str(),
        "type": r.kind(),
        "gid": gid(r.gid(), parents),
        "pointer": r.pointer().map_or(Json::Null, value),
        "geni_info": r.geni_info().map_or(Json::Null, struct_json),
        "pl_info": r.pl_info().map_or(Json::Null, struct_json),
    })
}

pub fn struct_json(s: &Struct) -> Json {
    Json::Object(s.iter().map(|(k, v)| (k.to_owned(), value(v))).collect())
}

/// XML-RPC → JSON; base64 as its base64 text, dateTime as sent, non-finite doubles cannot occur
/// (the decoder refuses them).
pub fn value(v: &Value) -> Json {
    use base64::Engine as _;
    match v {
        Value::Array(items) => Json::Array(items.iter().map(value).collect()),
        Value::Base64(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Value::Bool(b) => (*b).into(),
        Value::DateTime(d) => d.as_str().into(),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::Int(i) => (*i).into(),
        Value::Nil => Json::Null,
        Value::String(s) => s.as_str().into(),
        Value::Struct(s) => struct_json(s),
    }
}
