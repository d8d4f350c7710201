//! Property tests: encode → decode is the identity, and no input makes the decoder panic.
//!
//! Strings never hold `\r`: xmlrpclib writes it raw and every XML parser (ours, expat) reads it
//! back as `\n`, so it cannot round-trip through any conforming pair. The decoder keeps `\r`
//! written as `&#13;`, which the mutation test below can produce; that case is checked modulo
//! line-end normalisation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_xmlrpc::{
    Fault, Limits, MethodCall, MethodResponse, Struct, Value, dumps_params, parse_method_call,
    parse_method_response, parse_params, write_method_call, write_method_response,
};
use proptest::prelude::*;

/// XML-legal text leaning on what breaks naive codecs: markup characters, quotes, newlines,
/// tabs, non-ASCII and astral characters.
fn xml_string() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec!['<', '>', '&', '"', '\'', '\n', '\t', ' ', ']', ';']);
    let exotic = prop::sample::select(vec!['é', '€', '😀', '中', '\u{FFFD}', '\u{E000}', '\u{85}']);
    let any_legal = any::<char>().prop_filter("XML 1.0 Char, no CR", |c| {
        matches!(*c, '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    });
    let c =
        prop_oneof![4 => prop::char::range('a', 'z'), 3 => special, 1 => exotic, 1 => any_legal];
    prop::collection::vec(c, 0..12).prop_map(String::from_iter)
}

fn datetime() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{8}T[0-9]{2}:[0-9]{2}:[0-9]{2}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}",
    ]
}

/// Any value; `wide` allows integers beyond `i32`, which only the method writers carry (`<i8>`).
fn value(wide: bool) -> impl Strategy<Value = Value> {
    let int = if wide {
        any::<i64>().boxed()
    } else {
        any::<i32>().prop_map(i64::from).boxed()
    };
    let finite = prop::num::f64::POSITIVE
        | prop::num::f64::NEGATIVE
        | prop::num::f64::NORMAL
        | prop::num::f64::SUBNORMAL
        | prop::num::f64::ZERO;
    let leaf = prop_oneof![
        xml_string().prop_map(Value::String),
        int.prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        finite.prop_map(Value::Double),
        Just(Value::Nil),
        datetime().prop_map(Value::DateTime),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Value::Base64),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((xml_string(), inner), 0..6)
                .prop_map(|members| Value::Struct(members.into_iter().collect())),
        ]
    })
}

fn method_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.:/]{0,20}"
}

/// The value as a conforming XML reader sees it after writing it raw: CR and CRLF become LF.
fn normalise_line_ends(value: &Value) -> Value {
    let text = |s: &str| s.replace("\r\n", "\n").replace('\r', "\n");
    match value {
        Value::String(s) => Value::String(text(s)),
        Value::Array(items) => Value::Array(items.iter().map(normalise_line_ends).collect()),
        Value::Struct(members) => {
            let mut out = Struct::new();
            for (name, member) in members.iter() {
                out.insert(text(name), normalise_line_ends(member));
            }
            Value::Struct(out)
        }
        other => other.clone(),
    }
}

/// Whatever the decoder accepted, the encoder writes back to the same values.
fn assert_reencodes(params: &[Value]) {
    let call = MethodCall {
        method: "m".into(),
        params: params.to_vec(),
    };
    let doc = write_method_call(&call).unwrap();
    match parse_method_call(
        &doc,
        &Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        },
    ) {
        Ok(again) => {
            let expected: Vec<Value> = params.iter().map(normalise_line_ends).collect();
            assert_eq!(again.params, expected, "{doc}");
        }
        // Names differing only in CR vs LF collapse into one after normalisation.
        Err(geni_xmlrpc::XmlRpcError::DuplicateMember { .. }) if doc.contains('\r') => {}
        Err(e) => panic!("re-encoded document refused: {e}\n{doc}"),
    }
}

/// Breaks a document in the ways that reach unusual decoder paths.
fn mutate(doc: &str, edits: &[(prop::sample::Index, u8, prop::sample::Index)]) -> String {
    const SNIPPETS: [&str; 16] = [
        "<",
        ">",
        "&",
        "/",
        "</value>",
        "<value>",
        "<!DOCTYPE x>",
        "&#0;",
        "&#13;",
        "]]>",
        "<![CDATA[",
        "<!--",
        "<ex:nil/>",
        "<struct>",
        "&lt;",
        "\r\n",
    ];
    let mut doc = doc.to_owned();
    for (at, kind, pick) in edits {
        let mut i = at.index(doc.len() + 1);
        while !doc.is_char_boundary(i) {
            i -= 1;
        }
        match kind % 3 {
            0 => doc.insert_str(i, pick.get::<&str>(&SNIPPETS[..])),
            1 => {
                let mut end = (i + pick.index(8)).min(doc.len());
                while !doc.is_char_boundary(end) {
                    end -= 1;
                }
                doc.replace_range(i..end, "");
            }
            _ => doc.truncate(i),
        }
    }
    doc
}

fn parse_all(doc: &str) {
    let limits = Limits::default();
    if let Ok(params) = parse_params(doc, &limits) {
        assert_reencodes(&params);
    }
    if let Ok(call) = parse_method_call(doc, &limits) {
        assert_reencodes(&call.params);
    }
    if let Ok(MethodResponse::Success(value)) = parse_method_response(doc, &limits) {
        assert_reencodes(&[value]);
    }
}

proptest! {
    #[test]
    fn params_round_trip(v in value(false)) {
        let doc = dumps_params(std::slice::from_ref(&v), true).unwrap();
        prop_assert_eq!(parse_params(&doc, &Limits::default()).unwrap(), vec![v]);
    }

    #[test]
    fn method_call_round_trip(method in method_name(), params in prop::collection::vec(value(true), 0..4)) {
        let call = MethodCall { method, params };
        let doc = write_method_call(&call).unwrap();
        prop_assert_eq!(parse_method_call(&doc, &Limits::default()).unwrap(), call);
    }

    #[test]
    fn method_response_round_trip(v in value(true), code in any::<i32>(), string in xml_string()) {
        for response in [MethodResponse::Success(v.clone()), MethodResponse::Fault(Fault { code, string: string.clone() })] {
            let doc = write_method_response(&response).unwrap();
            prop_assert_eq!(parse_method_response(&doc, &Limits::default()).unwrap(), response);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_strings(doc in ".*") {
        parse_all(&doc);
    }

    #[test]
    fn never_panics_on_xmlish_noise(doc in "(<|>|/|&|;|#|x|[a-z]{1,6}|value|params|param|struct|member|name|array|data|int|string|!--|-->|\\?| |\n)*") {
        parse_all(&doc);
    }

    #[test]
    fn never_panics_on_mutated_documents(
        v in value(true),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<prop::sample::Index>()), 1..4),
    ) {
        let call = MethodCall { method: "m".into(), params: vec![v.clone()] };
        for doc in [
            write_method_call(&call).unwrap(),
            write_method_response(&MethodResponse::Success(v)).unwrap(),
        ] {
            parse_all(&mutate(&doc, &edits));
            let bare = &doc[doc.find("<params>").unwrap()..doc.rfind("</params>").unwrap() + 10];
            parse_all(&mutate(bare, &edits));
        }
    }
}
