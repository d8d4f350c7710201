//! The embedded PLC against a real SQLite file: PLCAPI's refusals, shapes and cascades.

use super::*;
use crate::plc::db::sqlite_url;

async fn plc() -> (tempfile::TempDir, Embedded) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&sqlite_url(&dir.path().join("plc.db")))
        .await
        .unwrap();
    (dir, Embedded::new(db))
}

fn site(login_base: &str) -> Struct {
    Struct::new()
        .with("login_base", login_base)
        .with("name", format!("Site {login_base}"))
        .with("abbreviated_name", login_base)
}

fn refused_with(r: PlcResult<impl std::fmt::Debug>, text: &str) {
    match r {
        Err(PlcError::Refused { code: 102, message }) => {
            assert!(message.contains(text), "{message:?} lacks {text:?}");
        }
        other => panic!("expected a refusal mentioning {text:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn duplicates_and_bad_fields_are_refused_and_change_nothing() {
    let (_dir, plc) = plc().await;
    let pl = plc.add_site(site("pl")).await.unwrap();
    refused_with(
        plc.add_site(site("pl")).await,
        "login_base pl is already in use",
    );
    refused_with(plc.add_site(site("PL")).await, "lowercase");
    refused_with(
        plc.add_site(site("x").with("colour", "red")).await,
        "unknown field(s) colour",
    );
    refused_with(
        plc.add_site(site("y").with("max_slices", "ten")).await,
        "max_slices must be an integer",
    );
    refused_with(
        plc.add_site(Struct::new().with("login_base", "z")).await,
        "field name is required",
    );
    let sites = plc.get_sites(Lookup::All).await.unwrap();
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0].site_id, pl);

    let person = Struct::new()
        .with("email", "o'hara\";--@example.org")
        .with("first_name", "Ro'b")
        .with("last_name", "x); DROP TABLE plc_persons; --");
    let p = plc.add_person(person.clone()).await.unwrap();
    refused_with(plc.add_person(person).await, "already in use");
    let got = plc
        .get_persons(Lookup::Names(vec!["o'hara\";--@example.org".into()]))
        .await
        .unwrap();
    assert_eq!(got[0].person_id, p);
    assert_eq!(got[0].last_name, "x); DROP TABLE plc_persons; --");
    assert!(!got[0].enabled, "PLC creates persons disabled");

    refused_with(
        plc.add_slice(Struct::new().with("name", "zz_s1")).await,
        "no site zz",
    );
    refused_with(
        plc.add_slice(Struct::new().with("name", "pl_Big")).await,
        "lowercase",
    );
    let s = plc
        .add_slice(Struct::new().with("name", "pl_s1"))
        .await
        .unwrap();
    refused_with(
        plc.add_slice(Struct::new().with("name", "pl_s1")).await,
        "slice name pl_s1 is already in use",
    );
    let slice = plc
        .get_slices(Lookup::Ids(vec![s]))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(slice.site_id, pl);
    assert_eq!(slice.instantiation, "plc-instantiated");
    assert_eq!(slice.max_nodes, 100);
    assert!(matches!(
        plc.update_slice(999, Struct::new()).await,
        Err(PlcError::NotFound { .. })
    ));
}

#[tokio::test]
async fn rows_have_plcapi_shapes_and_lists() {
    let (_dir, plc) = plc().await;
    let pl = plc
        .add_site(site("pl").with("url", "http://pl.example"))
        .await
        .unwrap();
    let p = plc
        .add_person(
            Struct::new()
                .with("email", "alice@pl.example")
                .with("first_name", "Alice")
                .with("last_name", "Liddell")
                .with("enabled", true),
        )
        .await
        .unwrap();
    plc.add_person_to_site(p, pl).await.unwrap();
    plc.add_person_to_site(p, pl).await.unwrap();
    plc.add_role_to_person("pi", p).await.unwrap();
    plc.add_role_to_person("user", p).await.unwrap();
    refused_with(plc.add_role_to_person("boss", p).await, "role");
    let k = plc
        .add_person_key(p, "ssh", "ssh-rsa AAAA alice@x\n")
        .await
        .unwrap();
    refused_with(plc.add_person_key(p, "dsa", "x").await, "key type");
    let s = plc
        .add_slice(
            Struct::new()
                .with("name", "pl_s1")
                .with("instantiation", "delegated"),
        )
        .await
        .unwrap();
    plc.add_person_to_slice(p, s).await.unwrap();
    let n = plc
        .add_node(
            "pl",
            Struct::new()
                .with("hostname", "node1.pl.example")
                .with("model", "geni"),
        )
        .await
        .unwrap();
    let a1 = plc
        .set_slice_attribute(s, "cpu_share", "8", None)
        .await
        .unwrap();
    let a2 = plc
        .set_slice_attribute(s, "cpu_share", "16", None)
        .await
        .unwrap();
    assert_eq!(a1, a2, "setting again replaces the value in place");
    plc.set_slice_attribute(s, "cpu_share", "32", Some(n))
        .await
        .unwrap();
    assert!(matches!(
        plc.set_slice_attribute(s, "x", "1", Some(999)).await,
        Err(PlcError::NotFound { .. })
    ));
    let i = plc
        .add_initscript("hello", "#!/bin/sh\necho hi\n")
        .await
        .unwrap();
    refused_with(plc.add_initscript("hello", "").await, "already in use");

    let site = plc
        .get_sites(Lookup::Names(vec!["pl".into()]))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(site.person_ids, [p]);
    assert_eq!(site.slice_ids, [s]);
    assert_eq!(site.node_ids, [n]);
    assert_eq!(
        site.raw.get("url").and_then(Value::as_str),
        Some("http://pl.example")
    );
    let person = plc.get_persons(Lookup::Ids(vec![p, 999])).await.unwrap();
    assert_eq!(person.len(), 1, "missing ids are skipped");
    assert_eq!(person[0].roles, ["pi", "user"]);
    assert_eq!(person[0].key_ids, [k]);
    assert_eq!(person[0].slice_ids, [s]);
    assert_eq!(person[0].site_ids, [pl]);
    let key = plc.get_keys(Lookup::Ids(vec![k])).await.unwrap().remove(0);
    assert_eq!(
        plc.get_keys_of_persons(vec![p, 999]).await.unwrap(),
        std::slice::from_ref(&key)
    );
    assert_eq!(key.key, "ssh-rsa AAAA alice@x");
    let attrs = plc.get_slice_attributes(s).await.unwrap();
    let rows: Vec<_> = attrs
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str(), a.node_id))
        .collect();
    assert_eq!(
        rows,
        [("cpu_share", "16", None), ("cpu_share", "32", Some(n))]
    );
    let script = plc
        .get_initscripts(Lookup::Names(vec!["hello".into()]))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(script.initscript_id, i);
    assert!(script.script.contains("echo hi"));

    // Updates keep what they are not given; deleting the site takes its slices and nodes.
    plc.update_person(p, Struct::new().with("phone", "555"))
        .await
        .unwrap();
    plc.update_person(p, Struct::new().with("first_name", "Al"))
        .await
        .unwrap();
    let person = plc
        .get_persons(Lookup::Ids(vec![p]))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(person.first_name, "Al");
    assert_eq!(person.raw.get("phone").and_then(Value::as_str), Some("555"));
    refused_with(
        plc.update_person(p, Struct::new().with("password", "x"))
            .await,
        "no passwords",
    );
    plc.delete_site(pl).await.unwrap();
    assert!(plc.get_slices(Lookup::All).await.unwrap().is_empty());
    assert!(plc.get_nodes(Lookup::All).await.unwrap().is_empty());
    assert!(plc.get_slice_attributes(s).await.unwrap().is_empty());
    assert_eq!(plc.get_persons(Lookup::All).await.unwrap().len(), 1);
    assert!(matches!(
        plc.delete_site(pl).await,
        Err(PlcError::NotFound { .. })
    ));
}
