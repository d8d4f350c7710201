//! Literal-byte tests of the encoder; every expected string was printed by Python 2.7.18's
//! `xmlrpclib.dumps`.

use super::*;
use crate::{Fault, Struct};

fn one(value: Value) -> String {
    dumps_params(&[value], true).unwrap()
}

/// The `<params>` document around one value's bytes.
fn wrap(value: &str) -> String {
    format!("<params>\n<param>\n{value}</param>\n</params>\n")
}

#[test]
fn gid_payload_2008() {
    let gid = Struct::new()
        .with("hrn", "planetlab.us.pl")
        .with("uuid", "294786197975089072547582920862317666209");
    assert_eq!(
        dumps_params(&[gid.into()], false).unwrap(),
        "<params>\n<param>\n<value><struct>\n<member>\n<name>hrn</name>\n\
         <value><string>planetlab.us.pl</string></value>\n</member>\n<member>\n<name>uuid</name>\n\
         <value><string>294786197975089072547582920862317666209</string></value>\n</member>\n\
         </struct></value>\n</param>\n</params>\n"
    );
}

#[test]
fn credential_payload_ends_with_bare_nil() {
    let mut cred = Struct::new()
        .with("privileges", "refresh,resolve")
        .with("delegate", true);
    cred.insert("lifeTime", Value::Nil);
    assert_eq!(
        one(cred.into()),
        "<params>\n<param>\n<value><struct>\n<member>\n<name>privileges</name>\n\
         <value><string>refresh,resolve</string></value>\n</member>\n<member>\n\
         <name>delegate</name>\n<value><boolean>1</boolean></value>\n</member>\n<member>\n\
         <name>lifeTime</name>\n<value><nil/></value></member>\n</struct></value>\n</param>\n\
         </params>\n"
    );
}

#[test]
fn scalars() {
    let cases = [
        (Value::from("x"), "<value><string>x</string></value>\n"),
        (Value::from(""), "<value><string></string></value>\n"),
        (
            Value::from("<>&\"'\r\n\t"),
            "<value><string>&lt;&gt;&amp;\"'\r\n\t</string></value>\n",
        ),
        (
            Value::from("café € 😀"),
            "<value><string>café € 😀</string></value>\n",
        ),
        (Value::Int(-5), "<value><int>-5</int></value>\n"),
        (
            Value::Int(2_147_483_647),
            "<value><int>2147483647</int></value>\n",
        ),
        (
            Value::Int(-2_147_483_648),
            "<value><int>-2147483648</int></value>\n",
        ),
        (Value::Bool(true), "<value><boolean>1</boolean></value>\n"),
        (Value::Bool(false), "<value><boolean>0</boolean></value>\n"),
        (Value::Nil, "<value><nil/></value>"),
        (
            Value::DateTime("20080101T00:00:00".into()),
            "<value><dateTime.iso8601>20080101T00:00:00</dateTime.iso8601></value>\n",
        ),
        (
            Value::Base64(vec![]),
            "<value><base64>\n</base64></value>\n",
        ),
        (
            Value::Base64(vec![0, 0xff, 0xfe]),
            "<value><base64>\nAP/+\n</base64></value>\n",
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(one(value), wrap(expected));
    }
}

#[test]
fn base64_lines_of_76() {
    let line = "YWFh".repeat(19);
    assert_eq!(
        one(Value::Base64(vec![b'a'; 57])),
        wrap(&format!("<value><base64>\n{line}\n</base64></value>\n"))
    );
    assert_eq!(
        one(Value::Base64(vec![b'a'; 58])),
        wrap(&format!(
            "<value><base64>\n{line}\nYQ==\n</base64></value>\n"
        ))
    );
}

#[test]
fn float_repr() {
    let cases = [
        (1_227_612_345.5, "1227612345.5"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (1e16, "1e+16"),
        (1e-5, "1e-05"),
        (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (0.0001, "0.0001"),
        (1e15, "1000000000000000.0"),
        (9_999_999_999_999_998.0, "9999999999999998.0"),
        (1.5e-5, "1.5e-05"),
        (1.2345e20, "1.2345e+20"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (-2.5, "-2.5"),
        (100.0, "100.0"),
        (0.1 + 0.2, "0.30000000000000004"),
    ];
    for (x, repr) in cases {
        assert_eq!(
            one(Value::Double(x)),
            wrap(&format!("<value><double>{repr}</double></value>\n"))
        );
    }
}

#[test]
fn containers() {
    let nested = Value::Array(vec![
        Value::Array(vec![Value::Int(1), "a".into()]),
        Value::Struct(Struct::new()),
    ]);
    assert_eq!(
        dumps_params(
            &[Value::Array(vec![]), nested, Value::Struct(Struct::new())],
            false
        )
        .unwrap(),
        "<params>\n<param>\n<value><array><data>\n</data></array></value>\n</param>\n<param>\n\
         <value><array><data>\n<value><array><data>\n<value><int>1</int></value>\n\
         <value><string>a</string></value>\n</data></array></value>\n<value><struct>\n\
         </struct></value>\n</data></array></value>\n</param>\n<param>\n<value><struct>\n\
         </struct></value>\n</param>\n</params>\n"
    );
    assert_eq!(dumps_params(&[], false).unwrap(), "<params>\n</params>\n");
}

#[test]
fn refuses_what_python_or_xml_cannot_carry() {
    let refused = [
        Value::Int(2_147_483_648),
        Value::Int(i64::MIN),
        Value::Double(f64::NAN),
        Value::Double(f64::INFINITY),
        Value::from("bell\u{7}"),
        Value::from("\u{FFFE}"),
        Value::DateTime("2008-01-01".into()),
        Value::Struct(Struct::new().with("nul\0", 1_i64)),
    ];
    for value in refused {
        assert!(matches!(
            dumps_params(&[value], true),
            Err(XmlRpcError::Unencodable(_))
        ));
    }
    assert!(matches!(
        dumps_params(&[Value::Nil], false),
        Err(XmlRpcError::Unencodable(_))
    ));
}

#[test]
fn method_call() {
    let call = MethodCall {
        method: "GetVersion".into(),
        params: vec![],
    };
    assert_eq!(
        write_method_call(&call).unwrap(),
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>GetVersion</methodName>\n<params>\n\
         </params>\n</methodCall>\n"
    );
    let call = MethodCall {
        method: "a<b".into(),
        params: vec![Value::Int(1 << 40), Value::Nil],
    };
    assert_eq!(
        write_method_call(&call).unwrap(),
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>a&lt;b</methodName>\n<params>\n\
         <param>\n<value><i8>1099511627776</i8></value>\n</param>\n<param>\n<value><nil/></value>\
         </param>\n</params>\n</methodCall>\n"
    );
}

#[test]
fn method_response_and_fault() {
    let ok = MethodResponse::Success(Struct::new().with("a", Value::Nil).into());
    assert_eq!(
        write_method_response(&ok).unwrap(),
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n<member>\n\
         <name>a</name>\n<value><nil/></value></member>\n</struct></value>\n</param>\n</params>\n\
         </methodResponse>\n"
    );
    let fault = MethodResponse::Fault(Fault {
        code: 1,
        string: "a<b".into(),
    });
    assert_eq!(
        write_method_response(&fault).unwrap(),
        "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n\
         <name>faultCode</name>\n<value><int>1</int></value>\n</member>\n<member>\n\
         <name>faultString</name>\n<value><string>a&lt;b</string></value>\n</member>\n\
         </struct></value>\n</fault>\n</methodResponse>\n"
    );
}
