//! Fuzzes the XML-RPC decoder: any bytes must decode or fail cleanly, never panic, and whatever
//! decodes must survive re-encoding: encode → decode gives the same values back.
//!
//! Strings can only differ by line ends: a `\r` decoded from `&#13;` is written raw, as
//! xmlrpclib writes it, and any XML reader turns it into `\n`.
#![no_main]

use geni_xmlrpc::{
    Limits, MethodCall, MethodResponse, Struct, Value, XmlRpcError, dumps_params,
    parse_method_call, parse_method_response, parse_params, write_method_call,
    write_method_response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let doc = String::from_utf8_lossy(data);
    let limits = Limits::default();
    if let Ok(params) = parse_params(&doc, &limits) {
        // Python 2 refuses ints beyond i32; the method writers carry them as <i8>.
        match dumps_params(&params, true) {
            Ok(again) => check(parse_params(&again, &limits), &params, &again),
            Err(e) => assert!(matches!(e, XmlRpcError::Unencodable(_)), "{e}"),
        }
        check_call(&params);
    }
    if let Ok(call) = parse_method_call(&doc, &limits) {
        check_call(&call.params);
        let again = write_method_call(&call).unwrap();
        if !again.contains('\r') {
            assert_eq!(
                parse_method_call(&again, &limits).unwrap().method,
                call.method
            );
        }
    }
    if let Ok(response) = parse_method_response(&doc, &limits) {
        let again = write_method_response(&response).unwrap();
        match (&response, parse_method_response(&again, &limits)) {
            (MethodResponse::Success(v), Ok(MethodResponse::Success(w))) => {
                assert_eq!(w, normalise(v), "{again}");
            }
            (MethodResponse::Fault(f), Ok(MethodResponse::Fault(g))) => {
                assert_eq!((g.code, g.string), (f.code, normalise_text(&f.string)));
            }
            (_, result) => assert!(again.contains('\r'), "{result:?}\n{again}"),
        }
    }
});

fn check_call(params: &[Value]) {
    let call = MethodCall {
        method: "m".into(),
        params: params.to_vec(),
    };
    let again = write_method_call(&call).unwrap();
    check(
        parse_method_call(&again, &Limits::default()).map(|c| c.params),
        params,
        &again,
    );
}

fn check(result: Result<Vec<Value>, XmlRpcError>, original: &[Value], doc: &str) {
    match result {
        Ok(again) => {
            let expected: Vec<Value> = original.iter().map(normalise).collect();
            assert_eq!(again, expected, "{doc}");
        }
        // Member names that differed only by CR and LF are the same name once normalised.
        Err(XmlRpcError::DuplicateMember { .. }) if doc.contains('\r') => {}
        Err(e) => panic!("re-encoded document refused: {e}\n{doc}"),
    }
}

fn normalise_text(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// The value as an XML reader sees it after the encoder wrote its strings raw.
fn normalise(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(normalise_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Struct(members) => {
            let mut out = Struct::new();
            for (name, member) in members.iter() {
                out.insert(normalise_text(name), normalise(member));
            }
            Value::Struct(out)
        }
        other => other.clone(),
    }
}
