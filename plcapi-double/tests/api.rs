//! The double on the wire: geni-rpc's PLCAPI client and Python's `xmlrpc.client` (what NEPI and
//! the 2008 wrapper used) against it over HTTPS on loopback, checking PLCAPI's argument order,
//! authentication faults, filters, return fields, unknown ids and `system.*` methods.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use geni_rpc::RpcError;
use geni_rpc::client::{PlcApiClient, PlcAuth, PlcServerAuth, RetryOptions};
use geni_xmlrpc::{Fault, Struct, Value};
use plcapi_double::{ADMIN_EMAIL, ADMIN_PASSWORD, Plc, PlcDouble, Scale, Table};

fn retry() -> RetryOptions {
    RetryOptions {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(20),
    }
}

fn client(double: &PlcDouble, auth: PlcAuth) -> (PlcApiClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    double.write_ca(&ca).unwrap();
    let c = PlcApiClient::new(&double.url(), PlcServerAuth::CaFile(ca), auth, retry()).unwrap();
    (c, dir)
}

fn admin() -> PlcAuth {
    PlcAuth::Password {
        username: ADMIN_EMAIL.into(),
        password: ADMIN_PASSWORD.into(),
    }
}

fn fault(result: Result<Value, RpcError>) -> Fault {
    match result {
        Err(RpcError::Fault(f)) => f,
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn rows(v: &Value) -> Vec<&Struct> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_struct().unwrap())
        .collect()
}

fn int_field(s: &Struct, name: &str) -> i64 {
    s.get(name).and_then(Value::as_i64).unwrap()
}

#[tokio::test]
async fn authentication_follows_plcapi() {
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let (c, _d) = client(&double, admin());
    c.auth_check().await.unwrap();

    let wrong = PlcAuth::Password {
        username: ADMIN_EMAIL.into(),
        password: "nope".into(),
    };
    let (bad, _d2) = client(&double, wrong);
    let f = fault(bad.call("AuthCheck", vec![]).await);
    assert_eq!(
        (f.code, f.string.as_str()),
        (
            103,
            "Failed to authenticate call: Password verification failed"
        )
    );
    let nobody = PlcAuth::Password {
        username: "nobody@example.org".into(),
        password: "x".into(),
    };
    let (bad, _d3) = client(&double, nobody);
    assert_eq!(
        fault(bad.call("GetSites", vec![]).await).string,
        "Failed to authenticate call: No such account"
    );

    // A session from GetSession authenticates; a made-up one does not.
    let session = c.call("GetSession", vec![]).await.unwrap();
    let (s, _d4) = client(&double, PlcAuth::Session(session.as_str().unwrap().into()));
    s.auth_check().await.unwrap();
    let (s, _d5) = client(&double, PlcAuth::Session("forged".into()));
    assert_eq!(fault(s.auth_check().await.map(|()| Value::Nil)).code, 103);

    // A plain user reads but may not write.
    let user = PlcAuth::Password {
        username: "user5@pl.example.edu".into(),
        password: "password-5".into(),
    };
    let (u, _d6) = client(&double, user);
    u.call("GetSites", vec![]).await.unwrap();
    let f = fault(
        u.call(
            "AddSite",
            vec![Struct::new().with("login_base", "x").into()],
        )
        .await,
    );
    assert_eq!(
        f.string,
        "Failed to authenticate call: Not allowed to call method"
    );
}

#[tokio::test]
async fn get_filters_return_fields_and_unknown_ids() {
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let (c, _d) = client(&double, admin());
    let all = c.call("GetSites", vec![]).await.unwrap();
    assert_eq!(rows(&all).len(), 5);
    let site = rows(&all)[1];
    for field in [
        "site_id",
        "name",
        "abbreviated_name",
        "login_base",
        "is_public",
        "enabled",
        "max_slices",
        "person_ids",
        "slice_ids",
        "node_ids",
        "peer_id",
    ] {
        assert!(site.contains(field), "{field}");
    }

    // Ids and names mixed (OR), an unknown id gives no row, duplicates one row.
    let some = c
        .call(
            "GetSites",
            vec![Value::Array(vec![
                Value::Int(2),
                "pl".into(),
                Value::Int(999),
                Value::Int(2),
            ])],
        )
        .await
        .unwrap();
    let ids: Vec<i64> = rows(&some)
        .iter()
        .map(|s| int_field(s, "site_id"))
        .collect();
    assert_eq!(ids, [1, 2]);

    // A struct filter (AND) with return fields.
    let filtered = c
        .call(
            "GetPersons",
            vec![
                Struct::new()
                    .with("enabled", true)
                    .with("email", "user1*")
                    .into(),
                Value::Array(vec!["person_id".into(), "email".into()]),
            ],
        )
        .await
        .unwrap();
    let persons = rows(&filtered);
    assert!(!persons.is_empty());
    for p in &persons {
        assert_eq!(p.names().collect::<Vec<_>>(), ["person_id", "email"]);
        assert!(
            p.get("email")
                .unwrap()
                .as_str()
                .unwrap()
                .starts_with("user1")
        );
    }
    // Passwords never leave PLCAPI.
    let admin_row = c.call("GetPersons", vec![Value::Int(1)]).await.unwrap();
    assert!(!rows(&admin_row)[0].contains("password"));

    // 4.2 slice attribute rows, by a struct filter on slice_id.
    let attrs = c
        .call(
            "GetSliceAttributes",
            vec![Struct::new().with("slice_id", 20_i64).into()],
        )
        .await
        .unwrap();
    let names: Vec<&str> = rows(&attrs)
        .iter()
        .map(|a| {
            assert_eq!(
                a.names().collect::<Vec<_>>(),
                [
                    "slice_attribute_id",
                    "slice_id",
                    "node_id",
                    "attribute_type_id",
                    "name",
                    "description",
                    "min_role_id",
                    "value"
                ]
            );
            a.get("name").unwrap().as_str().unwrap()
        })
        .collect();
    assert_eq!(names, ["vref", "initscript"]);

    // A filter on a field PLCAPI does not have is refused; so is a wrong filter type.
    let f = fault(
        c.call("GetNodes", vec![Struct::new().with("colour", "red").into()])
            .await,
    );
    assert_eq!(
        (f.code, f.string.as_str()),
        (102, "Invalid argument: Invalid filter field 'colour'")
    );
    assert_eq!(fault(c.call("GetKeys", vec!["x".into()]).await).code, 102);
}

#[tokio::test]
async fn writes_fault_on_unknown_ids_and_bad_values() {
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let (c, _d) = client(&double, admin());
    let cases: [(&str, Vec<Value>, &str); 6] = [
        (
            "UpdateSite",
            vec![Value::Int(999), Struct::new().into()],
            "Invalid argument: No such site",
        ),
        (
            "DeleteSlice",
            vec![Value::Int(999)],
            "Invalid argument: No such slice",
        ),
        (
            "AddPersonToSite",
            vec![Value::Int(999), Value::Int(1)],
            "Invalid argument: No such account",
        ),
        (
            "AddNode",
            vec![
                "nosite".into(),
                Struct::new().with("hostname", "a.b.org").into(),
            ],
            "Invalid argument: No such site",
        ),
        (
            "AddSite",
            vec![
                Struct::new()
                    .with("login_base", "pl")
                    .with("name", "x")
                    .with("abbreviated_name", "x")
                    .into(),
            ],
            "Invalid argument: login_base already in use",
        ),
        (
            "UpdateSlice",
            vec![Value::Int(1), Struct::new().with("max_nodes", "ten").into()],
            "Invalid slice_fields[max_nodes] value: expected int, got string",
        ),
    ];
    for (method, params, expected) in cases {
        let f = fault(c.call(method, params).await);
        assert_eq!((f.code, f.string.as_str()), (102, expected), "{method}");
    }
    assert_eq!(
        fault(c.call("NoSuchMethod", vec![]).await).string,
        "Invalid method NoSuchMethod"
    );
    assert_eq!(
        fault(
            c.call("GetSites", vec![Value::Nil, Value::Nil, Value::Nil])
                .await
        )
        .string,
        "Expected 1-3 arguments, got 4"
    );
    // Nothing changed.
    let before = Plc::generate(Scale::SMALL).counts();
    assert_eq!(double.with_plc(|p| p.counts()), before);
}

#[tokio::test]
async fn multicall_and_list_methods() {
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let (c, _d) = client(&double, admin());
    let methods = c
        .discover(&["GetSites", "AddSliceAttribute"])
        .await
        .unwrap();
    assert!(methods.iter().any(|m| m == "system.multicall"));
    double.reset_stats();
    let results = c
        .multicall(vec![
            ("GetSites".into(), vec![Value::Array(vec![Value::Int(1)])]),
            ("DeleteNode".into(), vec![Value::Int(12345)]),
            ("system.multicall".into(), vec![Value::Array(vec![])]),
        ])
        .await
        .unwrap();
    assert_eq!(rows(results[0].as_ref().unwrap()).len(), 1);
    assert_eq!(
        results[1].as_ref().unwrap_err().string,
        "Invalid argument: No such node"
    );
    assert!(results[2].is_err());
    let stats = double.stats();
    assert_eq!((stats.requests, stats.multicalls), (1, 1));
    assert_eq!(stats.calls_of("GetSites"), 1);
}

#[tokio::test]
async fn add_and_update_round_trip() {
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let (c, _d) = client(&double, admin());
    let site = c
        .call(
            "AddSite",
            vec![
                Struct::new()
                    .with("login_base", "newsite")
                    .with("name", "New Site")
                    .with("abbreviated_name", "New")
                    .into(),
            ],
        )
        .await
        .unwrap();
    let slice = c
        .call(
            "AddSlice",
            vec![Struct::new().with("name", "newsite_exp").into()],
        )
        .await
        .unwrap();
    let attr = c
        .call(
            "AddSliceAttribute",
            vec![slice.clone(), "initscript".into(), "base".into()],
        )
        .await
        .unwrap();
    c.call("UpdateSliceAttribute", vec![attr, "codeen".into()])
        .await
        .unwrap();
    let got = c
        .call("GetSlices", vec!["newsite_exp".into()])
        .await
        .unwrap();
    let row = rows(&got)[0];
    assert_eq!(row.get("site_id"), Some(&site));
    assert_eq!(
        row.get("instantiation").unwrap().as_str(),
        Some("plc-instantiated")
    );
    let a = c
        .call(
            "GetSliceAttributes",
            vec![Struct::new().with("slice_id", slice).into()],
        )
        .await
        .unwrap();
    assert_eq!(rows(&a)[0].get("value").unwrap().as_str(), Some("codeen"));
    double.with_plc(|p| {
        p.override_field(Table::Sites, 1, "login_base", Some(Value::Int(7)));
    });
    let pl = c.call("GetSites", vec![Value::Int(1)]).await.unwrap();
    assert_eq!(rows(&pl)[0].get("login_base"), Some(&Value::Int(7)));
}

#[tokio::test]
async fn python_xmlrpc_client_talks_to_it() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: python3 not found");
        return;
    }
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    double.write_ca(&ca).unwrap();
    // As NEPI's PLCAPI class calls it: auth first, a filter and return fields, and a MultiCall.
    let script = format!(
        r#"
import ssl, xmlrpc.client
ctx = ssl.create_default_context(cafile={ca:?})
api = xmlrpc.client.ServerProxy({url:?}, context=ctx, allow_none=True)
auth = dict(AuthMethod='password', Username={user:?}, AuthString={pw:?})
assert api.AuthCheck(auth) == 1
nodes = api.GetNodes(auth, {{'boot_state': 'boot'}}, ['hostname', 'node_id'])
assert nodes and all(sorted(n) == ['hostname', 'node_id'] for n in nodes), nodes
mc = xmlrpc.client.MultiCall(api)
mc.GetSites(auth, ['pl'])
mc.GetSlices(auth, [1, 2])
sites, slices = tuple(mc())
assert sites[0]['login_base'] == 'pl' and len(slices) == 2
try:
    api.DeletePerson(auth, 99999)
    raise SystemExit('no fault')
except xmlrpc.client.Fault as f:
    assert (f.faultCode, f.faultString) == (102, 'Invalid argument: No such account'), f
print('ok')
"#,
        ca = ca.display().to_string(),
        url = double.url(),
        user = ADMIN_EMAIL,
        pw = ADMIN_PASSWORD,
    );
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
