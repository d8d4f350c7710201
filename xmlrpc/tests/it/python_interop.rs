//! Interop with the real `xmlrpclib`: documents Python writes decode to the expected values and
//! re-encode to the very same bytes, and documents we write load in Python as expected.
//!
//! Python 3 (`xmlrpc.client`) is used when `python3` runs; Python 2.7 (`xmlrpclib`, what 2008
//! Geniwrapper used) additionally when `python2.7` or `python2` runs. Missing interpreters make
//! the test print a skipping line rather than fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use geni_xmlrpc::{
    Fault, Limits, MethodCall, MethodResponse, Struct, Value, dumps_params, parse_method_call,
    parse_method_response, parse_params, write_method_call, write_method_response,
};

/// Imports the marshaller under one name in either Python.
const PRELUDE: &str = "import sys\ntry:\n    import xmlrpclib as x\nexcept ImportError:\n    \
                       import xmlrpc.client as x\nout = getattr(sys.stdout, 'buffer', sys.stdout)\n\
                       def emit(s):\n    out.write(s if isinstance(s, bytes) else s.encode('utf-8'))\n    \
                       out.write(b'\\0')\n";

/// Values written in Python (valid in 2.7 and 3) with what they must decode to. Python 2 orders
/// dict members by hash, so the structs that are compared by value have a single member.
const VALUES: &str = "(u'planetlab.us.pl', 42, -2147483648, True, False, 1227612345.5, 1e-05, 1e16, \
                      -0.0, None, [1, u'a', []], {u'k': {u'x': None}}, x.Binary(b'\\x00\\xff' * 50), \
                      x.DateTime('20081125T12:00:00'), u'<&>\"\\' caf\\xe9 \\U0001f600\\n\\t', u'', \
                      {u'hrn': u'planetlab.us.pl', u'uuid': u'294786197975089072547582920862317666209'})";

fn expected_values() -> Vec<Value> {
    vec![
        "planetlab.us.pl".into(),
        Value::Int(42),
        Value::Int(-2_147_483_648),
        Value::Bool(true),
        Value::Bool(false),
        Value::Double(1_227_612_345.5),
        Value::Double(1e-5),
        Value::Double(1e16),
        Value::Double(-0.0),
        Value::Nil,
        Value::Array(vec![Value::Int(1), "a".into(), Value::Array(vec![])]),
        Struct::new()
            .with("k", Struct::new().with("x", Value::Nil))
            .into(),
        Value::Base64([0, 0xff].repeat(50)),
        Value::DateTime("20081125T12:00:00".into()),
        "<&>\"' café 😀\n\t".into(),
        "".into(),
    ]
}

/// Runs `script` after [`PRELUDE`]; `None` when the interpreter cannot be started or lacks
/// `xmlrpclib`. Output is split at the NULs [`PRELUDE`]'s `emit` writes.
fn python(interpreter: &str, script: &str, stdin: &str) -> Option<Vec<String>> {
    let mut child = Command::new(interpreter)
        .arg("-c")
        .arg(format!("{PRELUDE}{script}"))
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Python reads all of stdin before writing, so writing first cannot deadlock.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A pyenv shim or a broken install: not this crate's failure.
        if stderr.contains("command not found") || stderr.contains("No module named") {
            return None;
        }
        panic!("{interpreter} failed: {stderr}");
    }
    let text = String::from_utf8(output.stdout).unwrap();
    let mut docs: Vec<String> = text.split('\0').map(str::to_owned).collect();
    docs.pop(); // after the last NUL
    Some(docs)
}

/// Documents Python writes: bare params, a response, a fault and a call. Each must decode and
/// re-encode byte for byte; with Python 3 (ordered dicts) the values are checked too.
fn python_documents_decode_and_reencode(interpreter: &str) -> bool {
    let script = format!(
        "v = {VALUES}\nemit(x.dumps(v, allow_none=True))\n\
         emit(x.dumps((v,), methodresponse=True, allow_none=True))\n\
         emit(x.dumps(x.Fault(102, u'no <such> record'), methodresponse=True))\n\
         emit(x.dumps(v, 'Resolve', allow_none=True))\n"
    );
    let Some(docs) = python(interpreter, &script, "") else {
        println!("skipping {interpreter}: interpreter or xmlrpclib not found");
        return false;
    };
    let [params_doc, response_doc, fault_doc, call_doc] = &docs[..] else {
        panic!("expected four documents, got {docs:?}");
    };
    let limits = Limits::default();
    let check_values = interpreter.starts_with("python3");
    let gid = Struct::new()
        .with("hrn", "planetlab.us.pl")
        .with("uuid", "294786197975089072547582920862317666209");

    let params = parse_params(params_doc, &limits).unwrap();
    assert_eq!(params.len(), 17);
    assert_eq!(params[16].as_struct().unwrap().get("uuid"), gid.get("uuid"));
    if check_values {
        assert_eq!(params[..16], expected_values()[..]);
        assert_eq!(params[16], Value::Struct(gid));
    }
    assert_eq!(&dumps_params(&params, true).unwrap(), params_doc);

    let response = parse_method_response(response_doc, &limits).unwrap();
    assert_eq!(
        response,
        MethodResponse::Success(Value::Array(params.clone()))
    );
    assert_eq!(&write_method_response(&response).unwrap(), response_doc);

    let fault = parse_method_response(fault_doc, &limits).unwrap();
    let expected = Fault {
        code: 102,
        string: "no <such> record".into(),
    };
    assert_eq!(fault, MethodResponse::Fault(expected));
    assert_eq!(&write_method_response(&fault).unwrap(), fault_doc);

    let call = parse_method_call(call_doc, &limits).unwrap();
    assert_eq!(
        call,
        MethodCall {
            method: "Resolve".into(),
            params
        }
    );
    assert_eq!(&write_method_call(&call).unwrap(), call_doc);
    true
}

#[test]
fn python3_documents() {
    if !python_documents_decode_and_reencode("python3") {
        println!("skipping: python3 not found");
    }
}

#[test]
fn python2_documents_when_available() {
    let found = ["python2.7", "python2"]
        .iter()
        .any(|p| python_documents_decode_and_reencode(p));
    if !found {
        println!("skipping: no working python2 (xmlrpclib) found");
    }
}

#[test]
fn our_documents_load_in_python3() {
    let params = vec![
        Value::Int(1 << 40),
        Value::Nil,
        Struct::new()
            .with("a", Value::Array(vec![Value::Int(1), "b".into()]))
            .into(),
        Value::Base64(vec![0, 0xff]),
        Value::DateTime("20081125T12:00:00".into()),
        Value::Double(0.1),
        "<&>\" é\n".into(),
    ];
    let call = write_method_call(&MethodCall {
        method: "Resolve".into(),
        params,
    })
    .unwrap();
    let fault = MethodResponse::Fault(Fault {
        code: 7,
        string: "bad <thing> & more".into(),
    });
    let fault = write_method_response(&fault).unwrap();
    let bare = dumps_params(&["x".into(), Value::Bool(true)], false).unwrap();
    let script = "docs = sys.stdin.read().split('\\0')\n\
                  emit(repr(x.loads(docs[0], use_builtin_types=True)))\n\
                  try:\n    x.loads(docs[1])\nexcept x.Fault as f:\n    \
                  emit('%d %r' % (f.faultCode, f.faultString))\n\
                  emit(repr(x.loads(docs[2])))\n";
    let Some(out) = python("python3", script, &format!("{call}\0{fault}\0{bare}")) else {
        println!("skipping: python3 not found");
        return;
    };
    assert_eq!(
        out,
        [
            "((1099511627776, None, {'a': [1, 'b']}, b'\\x00\\xff', \
             datetime.datetime(2008, 11, 25, 12, 0), 0.1, '<&>\" é\\n'), 'Resolve')",
            "7 'bad <thing> & more'",
            "(('x', True), None)",
        ]
    );
}

/// `repr(float)` of Python 3 equals 2.7's; compare ours on many bit patterns and round numbers.
#[test]
fn float_repr_matches_python() {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut floats = Vec::new();
    while floats.len() < 3000 {
        // xorshift64*: deterministic, no dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let x = match floats.len() % 3 {
            0 => f64::from_bits(bits),
            1 => f64::from(u32::try_from(bits >> 40).unwrap()) / 1000.0,
            _ => 10f64.powi(i32::try_from(bits % 40).unwrap() - 20) * 1.5,
        };
        if x.is_finite() {
            floats.push(x);
        }
    }
    let hex: Vec<String> = floats
        .iter()
        .map(|x| format!("{:016x}", x.to_bits()))
        .collect();
    let script = "import struct\nfor h in sys.stdin.read().split():\n    \
                  emit(repr(struct.unpack('>d', bytes.fromhex(h))[0]))\n";
    let Some(python_reprs) = python("python3", script, &hex.join("\n")) else {
        println!("skipping: python3 not found");
        return;
    };
    let params: Vec<Value> = floats.iter().copied().map(Value::Double).collect();
    let doc = dumps_params(&params, false).unwrap();
    let ours: Vec<&str> = doc
        .split("<double>")
        .skip(1)
        .map(|rest| rest.split_once("</double>").unwrap().0)
        .collect();
    assert_eq!(ours, python_reprs);
}
