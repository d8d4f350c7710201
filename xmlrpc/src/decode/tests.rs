//! Decoder tests: every type, the XML features peers use, and every refusal.

use super::*;

/// Decodes `<value>{inner}</value>` as the single param of a bare `<params>` document.
fn value(inner: &str) -> Result<Value> {
    let doc = format!("<params><param><value>{inner}</value></param></params>");
    let mut params = parse_params(&doc, &Limits::default())?;
    assert_eq!(params.len(), 1);
    Ok(params.remove(0))
}

fn ok(inner: &str) -> Value {
    value(inner).unwrap_or_else(|e| panic!("{inner:?}: {e}"))
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

#[test]
fn scalars() {
    assert_eq!(ok("<int>42</int>"), Value::Int(42));
    assert_eq!(ok("<i4> -7 </i4>"), Value::Int(-7));
    assert_eq!(ok("<int>+3</int>"), Value::Int(3));
    assert_eq!(ok("<i8>9223372036854775807</i8>"), Value::Int(i64::MAX));
    assert_eq!(ok("<boolean>1</boolean>"), Value::Bool(true));
    assert_eq!(ok("<boolean>\n0\n</boolean>"), Value::Bool(false));
    assert_eq!(
        ok("<double>1227612345.5</double>"),
        Value::Double(1_227_612_345.5)
    );
    assert_eq!(ok("<double>1e-05</double>"), Value::Double(1e-5));
    assert_eq!(ok("<double>-0.0</double>"), Value::Double(-0.0));
    assert_eq!(ok("<string> a b </string>"), s(" a b "));
    assert_eq!(
        ok("<dateTime.iso8601> 20081125T12:00:00 </dateTime.iso8601>"),
        Value::DateTime("20081125T12:00:00".into())
    );
    assert_eq!(
        ok("<dateTime.iso8601>2008-11-25T12:00:00</dateTime.iso8601>"),
        Value::DateTime("2008-11-25T12:00:00".into())
    );
    assert_eq!(
        ok("<base64>\nAP/+\n</base64>"),
        Value::Base64(vec![0, 0xff, 0xfe])
    );
    assert_eq!(
        ok("<base64>YW Fh\r\nYQ==</base64>"),
        Value::Base64(b"aaaa".to_vec())
    );
    assert_eq!(ok("<base64>\n</base64>"), Value::Base64(vec![]));
    assert_eq!(ok("<nil/>"), Value::Nil);
    assert_eq!(ok("<nil></nil>"), Value::Nil);
    assert_eq!(ok("<ex:nil/>"), Value::Nil);
}

#[test]
fn untyped_and_empty_values() {
    assert_eq!(ok("plain"), s("plain"));
    assert_eq!(ok("  spaced\n"), s("  spaced\n"));
    assert_eq!(ok(""), s(""));
    assert_eq!(ok("<string/>"), s(""));
    assert_eq!(ok("<string></string>"), s(""));
    let params = parse_params(
        "<params><param><value/></param></params>",
        &Limits::default(),
    );
    assert_eq!(params.unwrap(), vec![s("")]);
    assert_eq!(ok("\n  <int>1</int>\n  "), Value::Int(1));
}

#[test]
fn containers() {
    assert_eq!(ok("<array><data/></array>"), Value::Array(vec![]));
    assert_eq!(
        ok(
            "<array><data>\n<value><int>1</int></value>\n<value>x</value>\n\
            <value><array><data><value/></data></array></value></data></array>"
        ),
        Value::Array(vec![Value::Int(1), s("x"), Value::Array(vec![s("")])])
    );
    assert_eq!(ok("<struct/>"), Value::Struct(Struct::new()));
    let v = ok(
        "<struct>\n<member>\n<name>b</name>\n<value><int>1</int></value>\n</member>\n\
                <member><name></name><value><struct><member><name>c</name><value/></member>\
                </struct></value></member></struct>",
    );
    let inner = Struct::new().with("c", "");
    assert_eq!(
        v,
        Value::Struct(Struct::new().with("b", 1_i64).with("", inner))
    );
    // Order is the document's, not sorted.
    let names: Vec<_> = v.as_struct().unwrap().names().map(str::to_owned).collect();
    assert_eq!(names, ["b", ""]);
}

#[test]
fn xml_features() {
    assert_eq!(ok("<string><![CDATA[<a & b>]]></string>"), s("<a & b>"));
    assert_eq!(ok("<string>x<![CDATA[]]>y<!-- c -->z</string>"), s("xyz"));
    assert_eq!(
        ok("<string>&amp;&lt;&gt;&quot;&apos;</string>"),
        s("&<>\"'")
    );
    assert_eq!(
        ok("<string>&#65;&#x42;&#x1F600;&#13;&#9;</string>"),
        s("AB😀\r\t")
    );
    assert_eq!(ok("<string>a\r\nb\rc\n</string>"), s("a\nb\nc\n"));
    assert_eq!(ok("<string><![CDATA[a\r\nb]]></string>"), s("a\nb"));
    assert_eq!(ok("a&amp;b"), s("a&b"));
    let doc = "<?xml version='1.0' encoding='UTF-8'?>\n<!-- head -->\n<methodCall>\n\
               <methodName> GetVersion\n</methodName><!-- mid --></methodCall>\n<!-- tail -->\n";
    let call = parse_method_call(doc, &Limits::default()).unwrap();
    assert_eq!(
        call,
        MethodCall {
            method: "GetVersion".into(),
            params: vec![]
        }
    );
    let doc = "\u{feff}<methodCall><methodName>m</methodName><params/></methodCall>";
    assert_eq!(
        parse_method_call(doc, &Limits::default()).unwrap().method,
        "m"
    );
}

#[test]
fn method_call_with_params() {
    let doc = "<?xml version='1.0'?>\n<methodCall>\n<methodName>Resolve</methodName>\n<params>\n\
               <param>\n<value><string>plc.princeton</string></value>\n</param>\n<param>\n\
               <value><int>3</int></value>\n</param>\n</params>\n</methodCall>\n";
    let call = parse_method_call(doc, &Limits::default()).unwrap();
    assert_eq!(call.method, "Resolve");
    assert_eq!(call.params, vec![s("plc.princeton"), Value::Int(3)]);
}

#[test]
fn method_responses_and_faults() {
    let limits = Limits::default();
    let doc = "<methodResponse><params><param><value><boolean>1</boolean></value></param>\
               </params></methodResponse>";
    assert_eq!(
        parse_method_response(doc, &limits).unwrap(),
        MethodResponse::Success(true.into())
    );
    let doc = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n\
               <name>faultCode</name>\n<value><int>102</int></value>\n</member>\n<member>\n\
               <name>faultString</name>\n<value><string>no &lt;such&gt; record</string></value>\n\
               </member>\n</struct></value>\n</fault>\n</methodResponse>\n";
    let fault = Fault {
        code: 102,
        string: "no <such> record".into(),
    };
    assert_eq!(
        parse_method_response(doc, &limits).unwrap(),
        MethodResponse::Fault(fault)
    );
    // Untyped faultString and an extra member, as some servers send.
    let doc = "<methodResponse><fault><value><struct><member><name>faultString</name>\
               <value>boom</value></member><member><name>faultCode</name><value><i4>-1</i4>\
               </value></member><member><name>x</name><value/></member></struct></value></fault>\
               </methodResponse>";
    let fault = Fault {
        code: -1,
        string: "boom".into(),
    };
    assert_eq!(
        parse_method_response(doc, &limits).unwrap(),
        MethodResponse::Fault(fault)
    );

    let bad_faults = [
        "<value><struct><member><name>faultCode</name><value><int>1</int></value></member>\
         </struct></value>",
        "<value><string>boom</string></value>",
        "<value><struct><member><name>faultCode</name><value>1</value></member><member>\
         <name>faultString</name><value>x</value></member></struct></value>",
    ];
    for fault in bad_faults {
        let doc = format!("<methodResponse><fault>{fault}</fault></methodResponse>");
        let err = parse_method_response(&doc, &limits).unwrap_err();
        assert!(
            matches!(err, XmlRpcError::Malformed { .. }),
            "{fault}: {err}"
        );
    }
    let doc = "<methodResponse><fault><value><struct><member><name>faultCode</name>\
               <value><i8>4294967296</i8></value></member><member><name>faultString</name>\
               <value>x</value></member></struct></value></fault></methodResponse>";
    let err = parse_method_response(doc, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            XmlRpcError::InvalidValue {
                kind: "faultCode",
                ..
            }
        ),
        "{err}"
    );

    for params in ["", "<param><value/></param><param><value/></param>"] {
        let doc = format!("<methodResponse><params>{params}</params></methodResponse>");
        let err = parse_method_response(&doc, &limits).unwrap_err();
        assert!(matches!(err, XmlRpcError::Malformed { .. }), "{err}");
    }
}

#[test]
fn refuses_doctype_and_entities() {
    let limits = Limits::default();
    let bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n\
                <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n\
                <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n\
                <methodCall><methodName>&lol3;</methodName></methodCall>";
    assert_eq!(
        parse_method_call(bomb, &limits),
        Err(XmlRpcError::Doctype { position: 22 })
    );
    let xxe = "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
               <params><param><value>&xxe;</value></param></params>";
    assert!(matches!(
        parse_params(xxe, &limits),
        Err(XmlRpcError::Doctype { .. })
    ));
    let unclosed = "<!DOCTYPE x [<!ENTITY a \"b\">";
    assert!(matches!(
        parse_params(unclosed, &limits),
        Err(XmlRpcError::Doctype { .. })
    ));
    let inner = "<params><!DOCTYPE x></params>";
    assert!(matches!(
        parse_params(inner, &limits),
        Err(XmlRpcError::Doctype { .. })
    ));

    for (inner, name) in [
        ("&foo;", "foo"),
        ("&xxe;", "xxe"),
        ("&#0;", "#0"),
        ("&#1;", "#1"),
    ] {
        let err = value(&format!("<string>{inner}</string>")).unwrap_err();
        assert!(
            matches!(&err, XmlRpcError::Entity { name: n, position: 30 } if n == name),
            "{inner}: {err:?}"
        );
    }
    for inner in [
        "&#xD800;",
        "&#x110000;",
        "&#xFFFE;",
        "&#-1;",
        "&#X41;",
        "&#;",
    ] {
        assert!(
            matches!(value(inner), Err(XmlRpcError::Entity { .. })),
            "{inner}"
        );
    }
    assert!(matches!(value("a & b"), Err(XmlRpcError::Malformed { .. })));
    assert!(matches!(
        value("bell\u{7}"),
        Err(XmlRpcError::Malformed { .. })
    ));
    assert!(matches!(
        value("<![CDATA[\u{1}]]>"),
        Err(XmlRpcError::Malformed { .. })
    ));
}

#[test]
fn refuses_processing_instructions_and_late_declarations() {
    let limits = Limits::default();
    for doc in [
        "<?php echo 1; ?><params/>",
        "<params><?pi x?></params>",
        " <?xml version='1.0'?><params/>",
        "<?xml version='1.0'?><?xml version='1.0'?><params/>",
    ] {
        assert!(
            matches!(
                parse_params(doc, &limits),
                Err(XmlRpcError::Malformed { .. })
            ),
            "{doc}"
        );
    }
}

#[test]
fn refuses_unknown_and_misplaced_tags() {
    let err = value("<foo>1</foo>").unwrap_err();
    assert_eq!(
        err,
        XmlRpcError::UnexpectedTag {
            tag: "foo".into(),
            expected: "a type element or </value>",
            position: 22
        }
    );
    assert_eq!(
        err.to_string(),
        "unexpected <foo> (at byte 22); expected a type element or </value>"
    );
    for inner in [
        "<member/>",
        "<int><i4>1</i4></int>",
        "<array><value/></array>",
        "<array><data><int>1</int></data></array>",
        "<struct><value/></struct>",
        "<struct><member><value/><name>a</name></member></struct>",
        "<struct><member><name>a</name></member></struct>",
        "<struct><member><name>a</name><value/><value/></member></struct>",
        "<int>1</int><int>2</int>",
        "<array><data/><data/></array>",
    ] {
        assert!(
            matches!(value(inner), Err(XmlRpcError::UnexpectedTag { .. })),
            "{inner}"
        );
    }
    let limits = Limits::default();
    let err = parse_method_call("<methodCall><params/></methodCall>", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            XmlRpcError::UnexpectedTag {
                expected: "<methodName>",
                ..
            }
        ),
        "{err}"
    );
    let err = parse_method_call("<methodCall></methodCall>", &limits).unwrap_err();
    assert!(matches!(&err, XmlRpcError::UnexpectedTag { tag, .. } if tag == "/methodCall"));
    let err = parse_method_call("<params/>", &limits).unwrap_err();
    assert!(matches!(
        err,
        XmlRpcError::UnexpectedTag {
            expected: "<methodCall>",
            ..
        }
    ));
    let err = parse_params("<params><param/></params>", &limits).unwrap_err();
    assert!(matches!(
        err,
        XmlRpcError::UnexpectedTag {
            expected: "<value>",
            ..
        }
    ));
    let err = parse_method_response("<methodResponse/>", &limits).unwrap_err();
    assert!(matches!(
        err,
        XmlRpcError::UnexpectedTag {
            expected: "<params> or <fault>",
            ..
        }
    ));
}

#[test]
fn refuses_text_where_elements_belong() {
    for inner in [
        "x<int>1</int>",
        "<int>1</int>x",
        "<array>x<data/></array>",
        "<struct>x</struct>",
    ] {
        assert!(
            matches!(value(inner), Err(XmlRpcError::Malformed { .. })),
            "{inner}"
        );
    }
}

#[test]
fn refuses_bad_scalars() {
    for (inner, kind) in [
        ("<int>1.5</int>", "int"),
        ("<int></int>", "int"),
        ("<i4>x</i4>", "i4"),
        ("<i8>9223372036854775808</i8>", "i8"),
        ("<int>1 2</int>", "int"),
        ("<boolean>true</boolean>", "boolean"),
        ("<boolean>2</boolean>", "boolean"),
        ("<boolean/>", "boolean"),
        ("<double>nan</double>", "double"),
        ("<double>inf</double>", "double"),
        ("<double>1e400</double>", "double"),
        ("<double>1,5</double>", "double"),
        ("<double/>", "double"),
        ("<base64>AP/</base64>", "base64"),
        ("<base64>AP/+=</base64>", "base64"),
        ("<base64>A*/+</base64>", "base64"),
        (
            "<dateTime.iso8601>2008</dateTime.iso8601>",
            "dateTime.iso8601",
        ),
        (
            "<dateTime.iso8601>20081125 12:00:00</dateTime.iso8601>",
            "dateTime.iso8601",
        ),
        (
            "<dateTime.iso8601>2008112aT12:00:00</dateTime.iso8601>",
            "dateTime.iso8601",
        ),
        ("<nil>x</nil>", "nil"),
    ] {
        let err = value(inner).unwrap_err();
        assert!(
            matches!(err, XmlRpcError::InvalidValue { kind: k, .. } if k == kind),
            "{inner}"
        );
    }
    let doc = "<methodCall><methodName> \n </methodName></methodCall>";
    let err = parse_method_call(doc, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            XmlRpcError::InvalidValue {
                kind: "methodName",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn refuses_duplicate_members() {
    let err = value(
        "<struct><member><name>a</name><value/></member>\
         <member><name>a</name><value>2</value></member></struct>",
    )
    .unwrap_err();
    assert_eq!(
        err,
        XmlRpcError::DuplicateMember {
            name: "a".into(),
            position: 69
        }
    );
}

#[test]
fn refuses_deep_nesting_without_overflowing() {
    let deep = format!(
        "<params><param><value>{}{}</value></param></params>",
        "<array><data><value>".repeat(2000),
        "</value></data></array>".repeat(2000)
    );
    let err = parse_params(&deep, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, XmlRpcError::TooDeep { limit: 64, .. }),
        "{err}"
    );
    // Even a limit far past any recursion budget is safe: nesting lives on the heap.
    let roomy = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    let v = parse_params(&deep, &roomy).unwrap();
    assert!(v[0].as_array().is_some());
    let structs = format!(
        "<params><param>{}</param></params>",
        "<value><struct><member><name>a</name>".repeat(100)
    );
    assert!(matches!(
        parse_params(&structs, &Limits::default()),
        Err(XmlRpcError::TooDeep { .. })
    ));
    let exact = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    assert!(parse_params("<params><param><value/></param></params>", &exact).is_ok());
    let err = parse_params(
        "<params><param><value><int>1</int></value></param></params>",
        &exact,
    );
    assert_eq!(
        err,
        Err(XmlRpcError::TooDeep {
            limit: 3,
            position: 22
        })
    );
}

// See: issue 13 ("1,024 buffered 4 MiB bodies (plus the decoded values)"): 8 bytes of markup
// became a 32-byte value, so a document's memory was not bounded by its size.
#[test]
fn r13_values_are_counted_and_capped() {
    let limits = Limits {
        max_values: 10,
        ..Limits::default()
    };
    let array = |n: usize| {
        format!(
            "<params><param><value><array><data>{}</data></array></value></param></params>",
            "<value/>".repeat(n)
        )
    };
    // The array itself and nine items: ten values.
    assert_eq!(
        parse_params(&array(9), &limits).unwrap()[0]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    let err = parse_params(&array(10), &limits).unwrap_err();
    assert!(
        matches!(err, XmlRpcError::TooManyValues { limit: 10, .. }),
        "{err}"
    );
    // Members count too: a struct, four members and their four values are nine.
    let members = |n: usize| {
        let m: String = (0..n)
            .map(|i| format!("<member><name>m{i}</name><value/></member>"))
            .collect();
        format!("<params><param><value><struct>{m}</struct></value></param></params>")
    };
    assert!(parse_params(&members(4), &limits).is_ok());
    assert!(matches!(
        parse_params(&members(5), &limits),
        Err(XmlRpcError::TooManyValues { .. })
    ));
    // Across parameters and in method calls and responses alike.
    let call = format!(
        "<methodCall><methodName>m</methodName><params>{}</params></methodCall>",
        "<param><value/></param>".repeat(11)
    );
    assert!(matches!(
        parse_method_call(&call, &limits),
        Err(XmlRpcError::TooManyValues { .. })
    ));
    let response = format!(
        "<methodResponse><params><param><value><array><data>{}</data></array></value></param>\
         </params></methodResponse>",
        "<value><int>1</int></value>".repeat(10)
    );
    assert!(matches!(
        parse_method_response(&response, &limits),
        Err(XmlRpcError::TooManyValues { .. })
    ));
}

/// A decoded value's footprint covers what it holds: at least its inline size per value and
/// every byte of its strings, and never less than the document for dense markup.
#[test]
fn footprint_counts_what_a_document_decodes_to() {
    let n = 50_000;
    let dense = format!(
        "<params><param><value><array><data>{}</data></array></value></param></params>",
        "<value/>".repeat(n)
    );
    let v = parse_params(&dense, &Limits::default()).unwrap();
    let fp = v[0].footprint();
    assert!(fp >= n * size_of::<Value>(), "{fp}");
    assert!(
        fp > dense.len() * 3,
        "8 bytes of markup are 32 of value: {fp} vs {}",
        dense.len()
    );
    let big = "x".repeat(1 << 20);
    let doc = format!(
        "<methodCall><methodName>m</methodName><params><param><value>{big}</value></param></params></methodCall>"
    );
    let call = parse_method_call(&doc, &Limits::default()).unwrap();
    let fp = call.footprint();
    assert!((1 << 20..(1 << 20) + 1024).contains(&fp), "{fp}");
    let st = Value::Struct(
        (0..100)
            .map(|i| (format!("name{i}"), Value::from("v")))
            .collect(),
    );
    assert!(
        st.footprint() >= 100 * (size_of::<(String, Value)>() + 5 + 1),
        "{}",
        st.footprint()
    );
}

#[test]
fn refuses_oversize_before_parsing() {
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let err = parse_params("<params></params>", &limits).unwrap_err();
    assert_eq!(
        err,
        XmlRpcError::TooLarge {
            size: 17,
            limit: 10
        }
    );
    let limits = Limits {
        max_bytes: 17,
        ..Limits::default()
    };
    assert_eq!(parse_params("<params></params>", &limits), Ok(vec![]));
}

#[test]
fn refuses_broken_documents() {
    let limits = Limits::default();
    for doc in [
        "",
        "   ",
        "<!-- only a comment -->",
        "garbage",
        "\0\u{1}\u{2}",
        "<params></params><params></params>",
        "<params></params>x",
        "x<params></params>",
        "<params>",
        "<params><param><value><string>abc",
        "<params><param><value><string>abc</value></string></param></params>",
        "<params></param>",
        "<params",
        "<params><param><value><![CDATA[x</value></param></params>",
        "<params><!-- x </params>",
    ] {
        let err = parse_params(doc, &limits).unwrap_err();
        assert!(
            matches!(err, XmlRpcError::Malformed { .. }),
            "{doc:?}: {err:?}"
        );
    }
    let doc = "<methodCall><methodName>m</methodName>";
    assert!(matches!(
        parse_method_call(doc, &limits),
        Err(XmlRpcError::Malformed { .. })
    ));
}
