//! JSON ↔ XML-RPC values for the authority tools: `--attributes`/`--rspec` arrive as JSON and
//! become the ticket's XML-RPC structs; `show --json` and `verify --json` turn decoded values
//! back into JSON.
//!
//! Struct member order is kept both ways (the `preserve_order` feature of `serde_json`), because the order an
//! operator writes is the order the ticket payload carries, and a 2008 peer's order is worth
//! seeing as it was.

use std::fs;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use geni_xmlrpc::{Struct, Value};
use serde_json::Value as Json;

/// Reads a `--attributes`/`--rspec` argument (JSON text, or `@FILE`) into a struct.
pub(super) fn struct_from_json_arg(arg: &str, flag: &str) -> anyhow::Result<Struct> {
    let (text, source) = match arg.strip_prefix('@') {
        Some(path) => (
            fs::read_to_string(path).with_context(|| format!("reading {flag} file {path}"))?,
            format!("{flag} file {path}"),
        ),
        None => (arg.to_owned(), flag.to_owned()),
    };
    let json: Json =
        serde_json::from_str(&text).with_context(|| format!("{source} is not valid JSON"))?;
    match json_to_value(json) {
        Value::Struct(s) => Ok(s),
        other => bail!(
            "{source} must be a JSON object ({{\"name\": value, …}}), not a JSON {}",
            json_kind(&other)
        ),
    }
}

/// JSON → XML-RPC: integers that fit in i64 stay integers, every other number is a double.
pub(super) fn json_to_value(json: Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            // serde_json numbers are finite, so this is always a real double.
            None => Value::Double(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Value::String(s),
        Json::Array(items) => Value::Array(items.into_iter().map(json_to_value).collect()),
        Json::Object(map) => Value::Struct(
            map.into_iter()
                .map(|(k, v)| (k, json_to_value(v)))
                .collect(),
        ),
    }
}

/// XML-RPC → JSON. Types JSON lacks become strings: base64 as its base64 text, dateTime as
/// sent.
pub(super) fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Base64(bytes) => Json::String(STANDARD.encode(bytes)),
        Value::Bool(b) => Json::Bool(*b),
        Value::DateTime(d) => Json::String(d.clone()),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::Int(i) => Json::from(*i),
        Value::Nil => Json::Null,
        Value::String(s) => Json::String(s.clone()),
        Value::Struct(s) => struct_to_json(s),
    }
}

pub(super) fn struct_to_json(s: &Struct) -> Json {
    Json::Object(
        s.iter()
            .map(|(k, v)| (k.to_owned(), value_to_json(v)))
            .collect(),
    )
}

/// The JSON name of what a value came from, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::Bool(_) => "boolean",
        Value::Double(_) | Value::Int(_) => "number",
        Value::Nil => "null",
        Value::String(_) | Value::Base64(_) | Value::DateTime(_) => "string",
        Value::Struct(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_xmlrpc_in_order() {
        let s = struct_from_json_arg(
            r#"{"name":"pl_slice","keys":["ssh-rsa AAA x"],"timestamp":1227612345.5,
                "n":7,"big":18446744073709551615,"on":true,"none":null,"a":{"z":1,"b":2}}"#,
            "--attributes",
        )
        .unwrap();
        let names: Vec<&str> = s.names().collect();
        assert_eq!(
            names,
            ["name", "keys", "timestamp", "n", "big", "on", "none", "a"]
        );
        assert_eq!(s.get("name"), Some(&Value::from("pl_slice")));
        assert_eq!(
            s.get("keys"),
            Some(&Value::Array(vec![Value::from("ssh-rsa AAA x")]))
        );
        assert_eq!(s.get("timestamp"), Some(&Value::Double(1_227_612_345.5)));
        assert_eq!(s.get("n"), Some(&Value::Int(7)));
        assert!(matches!(s.get("big"), Some(Value::Double(_))));
        assert_eq!(s.get("on"), Some(&Value::Bool(true)));
        assert_eq!(s.get("none"), Some(&Value::Nil));
        let inner: Vec<&str> = s
            .get("a")
            .and_then(Value::as_struct)
            .unwrap()
            .names()
            .collect();
        assert_eq!(inner, ["z", "b"]);
    }

    #[test]
    fn top_level_must_be_an_object() {
        for (bad, kind) in [("[1]", "array"), ("\"x\"", "string"), ("3", "number")] {
            let err = struct_from_json_arg(bad, "--rspec")
                .unwrap_err()
                .to_string();
            assert!(err.contains("must be a JSON object"), "{err}");
            assert!(err.contains(kind), "{err}");
        }
        let err = format!("{:#}", struct_from_json_arg("{", "--rspec").unwrap_err());
        assert!(err.contains("--rspec is not valid JSON"), "{err}");
    }

    #[test]
    fn at_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rspec.json");
        fs::write(&path, r#"{"cpu_share":"32"}"#).unwrap();
        let s = struct_from_json_arg(&format!("@{}", path.display()), "--rspec").unwrap();
        assert_eq!(s.get("cpu_share"), Some(&Value::from("32")));
        let err = format!(
            "{:#}",
            struct_from_json_arg("@/nonexistent/rspec.json", "--rspec").unwrap_err()
        );
        assert!(err.contains("reading --rspec file"), "{err}");
    }

    #[test]
    fn values_round_trip_to_json() {
        let s = Struct::new()
            .with("b", Value::Base64(b"hi".to_vec()))
            .with("d", Value::Double(0.5))
            .with("t", Value::DateTime("20081125T12:00:00".into()));
        assert_eq!(
            serde_json::to_string(&struct_to_json(&s)).unwrap(),
            r#"{"b":"aGk=","d":0.5,"t":"20081125T12:00:00"}"#
        );
    }
}
