//! The `plcapi` backend against the PLCAPI double over HTTPS on loopback: every trait method,
//! authentication, faults, malformed answers, an unreachable or restarting PLC, batching, and
//! the `[plc.plcapi]` settings.

use std::path::Path;
use std::time::{Duration, Instant};

use geni_xmlrpc::{Struct, Value};
use plcapi_double::{ADMIN_EMAIL, ADMIN_PASSWORD, Plc, PlcDouble, Scale, Table};

use super::*;

fn settings(double: &PlcDouble, dir: &Path) -> PlcApiSettings {
    let ca = dir.join("plc-ca.pem");
    double.write_ca(&ca).unwrap();
    PlcApiSettings {
        url: double.url(),
        auth: AuthMethod::Password,
        username: Some(ADMIN_EMAIL.to_owned()),
        password: Some(Secret(ADMIN_PASSWORD.to_owned())),
        session: None,
        ca_file: Some(ca),
        danger_accept_any_certificate: false,
        retry: RetrySettings {
            max_attempts: 3,
            initial_backoff_ms: 50,
            max_backoff_ms: 200,
            timeout_secs: 20,
        },
        multicall_batch: 100,
        ids_per_call: 200,
    }
}

async fn connect(settings: &PlcApiSettings) -> PlcResult<PlcApiBackend> {
    PlcApiBackend::new(settings).unwrap().connect().await
}

async fn small() -> (PlcDouble, tempfile::TempDir) {
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    (double, tempfile::tempdir().unwrap())
}

#[tokio::test]
async fn reads_match_what_plc_holds() {
    let (double, dir) = small().await;
    let plc = connect(&settings(&double, dir.path())).await.unwrap();

    let sites = plc.get_sites(Lookup::All).await.unwrap();
    assert_eq!(sites.len(), 5);
    let expected = double.with_plc(|p| p.site(2).cloned()).unwrap();
    let site = sites.iter().find(|s| s.site_id == 2).unwrap();
    assert_eq!(site.login_base, expected.login_base);
    assert_eq!(site.name, expected.name);
    assert_eq!(site.person_ids, expected.person_ids);
    assert_eq!(site.slice_ids, expected.slice_ids);
    assert_eq!(site.node_ids, expected.node_ids);
    assert_eq!(site.max_slices, expected.max_slices);
    // `raw` is the struct PLCAPI sent, members PLCAPI has and we do not type included.
    assert_eq!(
        site.raw.get("url").and_then(Value::as_str),
        expected.url.as_deref()
    );
    assert!(site.raw.contains("peer_id") && site.raw.contains("address_ids"));

    let by_name = plc
        .get_sites(Lookup::Names(vec!["pl".into(), "nosuch".into()]))
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].site_id, 1);

    let persons = plc.get_persons(Lookup::Ids(vec![1, 4, 999])).await.unwrap();
    let ids: Vec<i64> = persons.iter().map(|p| p.person_id).collect();
    assert_eq!(ids, [1, 4]);
    assert_eq!(persons[0].email, ADMIN_EMAIL);
    assert_eq!(persons[0].roles, ["admin", "pi", "user", "tech"]);
    let p4 = double.with_plc(|p| p.person(4).cloned()).unwrap();
    assert_eq!(
        (&persons[1].first_name, &persons[1].last_name),
        (&p4.first_name, &p4.last_name)
    );
    assert_eq!(persons[1].key_ids, p4.key_ids);
    assert!(!persons[1].raw.contains("password"));

    let keys = plc.get_keys(Lookup::Ids(p4.key_ids.clone())).await.unwrap();
    assert_eq!(keys.len(), p4.key_ids.len());
    assert!(keys.iter().all(|k| k.person_id == 4 && k.key_type == "ssh"));

    let slices = plc.get_slices(Lookup::All).await.unwrap();
    assert_eq!(slices.len(), 20);
    let s20 = slices.iter().find(|s| s.slice_id == 20).unwrap();
    let expected = double.with_plc(|p| p.slice(20).cloned()).unwrap();
    assert_eq!(
        (&s20.name, &s20.instantiation, s20.expires, s20.site_id),
        (
            &expected.name,
            &expected.instantiation,
            expected.expires,
            expected.site_id
        )
    );
    assert_eq!(s20.person_ids, expected.person_ids);
    assert_eq!(s20.node_ids, expected.node_ids);

    let nodes = plc
        .get_nodes(Lookup::Names(vec![
            double.with_plc(|p| p.node(3).unwrap().hostname.clone()),
        ]))
        .await
        .unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node_id, 3);
    let model = double.with_plc(|p| p.node(3).unwrap().model.clone());
    assert_eq!(Some(nodes[0].model.clone()), model);

    let attrs = plc.get_slice_attributes(20).await.unwrap();
    let pairs: Vec<(&str, &str)> = attrs
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("vref", "planetlab-f8-i386"), ("initscript", "sirius")]
    );
    assert!(
        attrs
            .iter()
            .all(|a| a.node_id.is_none() && a.slice_id == 20)
    );
    assert!(attrs[0].raw.contains("attribute_type_id") && attrs[0].raw.contains("min_role_id"));
    // Slice 13 carries a node-specific attribute.
    let node_specific = plc.get_slice_attributes(13).await.unwrap();
    assert!(node_specific.iter().any(|a| a.node_id.is_some()));

    let scripts = plc
        .get_initscripts(Lookup::Names(vec!["codeen".into()]))
        .await
        .unwrap();
    assert_eq!(scripts.len(), 1);
    assert!(scripts[0].enabled && scripts[0].script.contains("codeen"));

    // Nothing asked, nothing sent.
    double.reset_stats();
    assert!(
        plc.get_persons(Lookup::Ids(vec![]))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(double.stats().requests, 0);
}

#[tokio::test]
async fn writes_reach_plc_and_read_back() {
    let (double, dir) = small().await;
    let plc = connect(&settings(&double, dir.path())).await.unwrap();

    let site = plc
        .add_site(
            Struct::new()
                .with("login_base", "geni")
                .with("name", "planetlab.us.geni")
                .with("abbreviated_name", "planetlab.us.geni")
                .with("enabled", true)
                .with("is_public", true),
        )
        .await
        .unwrap();
    let person = plc
        .add_person(
            Struct::new()
                .with("email", "alice@geni.example.org")
                .with("first_name", "geni")
                .with("last_name", "planetlab.us.geni.alice"),
        )
        .await
        .unwrap();
    plc.add_person_to_site(person, site).await.unwrap();
    plc.add_role_to_person("user", person).await.unwrap();
    let key_line = plcapi_double::synthetic_rsa_key(7, "alice@geni");
    let key = plc.add_person_key(person, "ssh", &key_line).await.unwrap();
    let slice = plc
        .add_slice(
            Struct::new()
                .with("name", "geni_exp")
                .with("instantiation", "delegated")
                .with("max_nodes", 10_i64),
        )
        .await
        .unwrap();
    plc.add_person_to_slice(person, slice).await.unwrap();
    let node = plc
        .add_node(
            "geni",
            Struct::new()
                .with("hostname", "node1.geni.example.org")
                .with("model", "geni"),
        )
        .await
        .unwrap();
    let script = plc
        .add_initscript("hello", "#!/bin/sh\necho hello\n")
        .await
        .unwrap();

    // set_slice_attribute adds, then replaces in place; node-specific rows are their own.
    let a1 = plc
        .set_slice_attribute(slice, "initscript", "hello", None)
        .await
        .unwrap();
    let a2 = plc
        .set_slice_attribute(slice, "initscript", "base", None)
        .await
        .unwrap();
    assert_eq!(a1, a2);
    let a3 = plc
        .set_slice_attribute(slice, "net_max_rate", "100", Some(node))
        .await
        .unwrap();
    assert_ne!(a3, a1);
    let attrs = plc.get_slice_attributes(slice).await.unwrap();
    let got: Vec<(&str, &str, Option<i64>)> = attrs
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str(), a.node_id))
        .collect();
    assert_eq!(
        got,
        [
            ("initscript", "base", None),
            ("net_max_rate", "100", Some(node))
        ]
    );

    let p = &plc.get_persons(Lookup::Ids(vec![person])).await.unwrap()[0];
    assert_eq!(
        (p.site_ids.as_slice(), p.slice_ids.as_slice()),
        ([site].as_slice(), [slice].as_slice())
    );
    assert_eq!(p.roles, ["user"]);
    assert_eq!(p.key_ids, [key]);
    let k = &plc.get_keys(Lookup::Ids(vec![key])).await.unwrap()[0];
    assert_eq!(k.key, key_line);
    let s = &plc
        .get_slices(Lookup::Names(vec!["geni_exp".into()]))
        .await
        .unwrap()[0];
    assert_eq!(
        (s.site_id, s.instantiation.as_str(), s.max_nodes),
        (site, "delegated", 10)
    );
    assert_eq!(
        plc.get_initscripts(Lookup::Ids(vec![script]))
            .await
            .unwrap()[0]
            .name,
        "hello"
    );

    plc.update_site(site, Struct::new().with("name", "GENI"))
        .await
        .unwrap();
    plc.update_person(person, Struct::new().with("first_name", "Alice"))
        .await
        .unwrap();
    plc.update_slice(slice, Struct::new().with("max_nodes", 20_i64))
        .await
        .unwrap();
    plc.update_node(node, Struct::new().with("model", "Custom"))
        .await
        .unwrap();
    assert_eq!(
        plc.get_sites(Lookup::Ids(vec![site])).await.unwrap()[0].name,
        "GENI"
    );
    assert_eq!(
        plc.get_persons(Lookup::Ids(vec![person])).await.unwrap()[0].first_name,
        "Alice"
    );
    assert_eq!(
        plc.get_slices(Lookup::Ids(vec![slice])).await.unwrap()[0].max_nodes,
        20
    );
    assert_eq!(
        plc.get_nodes(Lookup::Ids(vec![node])).await.unwrap()[0].model,
        "Custom"
    );

    plc.delete_node(node).await.unwrap();
    plc.delete_slice(slice).await.unwrap();
    plc.delete_person(person).await.unwrap();
    plc.delete_site(site).await.unwrap();
    assert!(
        plc.get_sites(Lookup::Ids(vec![site]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        plc.get_persons(Lookup::Ids(vec![person]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        plc.get_slices(Lookup::Ids(vec![slice]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        plc.get_nodes(Lookup::Ids(vec![node]))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn faults_are_refused_or_not_found_and_change_nothing() {
    let (double, dir) = small().await;
    let plc = connect(&settings(&double, dir.path())).await.unwrap();
    let before = double.with_plc(|p| p.counts());

    let dup = Struct::new()
        .with("login_base", "pl")
        .with("name", "x")
        .with("abbreviated_name", "x");
    assert_eq!(
        plc.add_site(dup).await.unwrap_err(),
        PlcError::Refused {
            code: 102,
            message: "Invalid argument: login_base already in use".into()
        }
    );
    assert_eq!(
        plc.update_site(999, Struct::new()).await.unwrap_err(),
        PlcError::NotFound {
            what: "site 999".into()
        }
    );
    assert_eq!(
        plc.add_person_to_site(1, 999).await.unwrap_err(),
        PlcError::NotFound {
            what: "site 999".into()
        }
    );
    assert_eq!(
        plc.add_person_to_slice(999, 1).await.unwrap_err(),
        PlcError::NotFound {
            what: "person 999".into()
        }
    );
    assert_eq!(
        plc.add_node("nosite", Struct::new().with("hostname", "a.b.org"))
            .await
            .unwrap_err(),
        PlcError::NotFound {
            what: "site nosite".into()
        }
    );
    assert_eq!(
        plc.set_slice_attribute(1, "colour", "red", None)
            .await
            .unwrap_err(),
        PlcError::NotFound {
            what: "slice attribute type colour".into()
        }
    );
    assert_eq!(
        plc.delete_person(999).await.unwrap_err(),
        PlcError::NotFound {
            what: "person 999".into()
        }
    );
    let bad_key = plc.add_person_key(1, "ssh", "not a key").await.unwrap_err();
    assert_eq!(
        bad_key,
        PlcError::Refused {
            code: 102,
            message: "Invalid argument: Invalid SSH version 2 public key".into()
        }
    );
    assert_eq!(double.with_plc(|p| p.counts()), before);
}

#[tokio::test]
async fn auth_failure_stops_connect() {
    let (double, dir) = small().await;
    let mut s = settings(&double, dir.path());
    s.password = Some(Secret("wrong".into()));
    double.reset_stats();
    assert_eq!(
        connect(&s).await.unwrap_err(),
        PlcError::Refused {
            code: 103,
            message: "Failed to authenticate call: Password verification failed".into()
        }
    );
    // Discovery, then AuthCheck once: a fault is never retried.
    let stats = double.stats();
    assert_eq!(stats.calls_of("system.listMethods"), 1);
    assert_eq!(stats.calls_of("AuthCheck"), 1);

    s.username = Some("nobody@example.org".into());
    assert!(matches!(
        connect(&s).await.unwrap_err(),
        PlcError::Refused { code: 103, message } if message.ends_with("No such account")
    ));
}

#[tokio::test]
async fn session_auth_works() {
    let (double, dir) = small().await;
    let key = double.with_plc(|p| p.new_session(1));
    let mut s = settings(&double, dir.path());
    s.auth = AuthMethod::Session;
    s.password = None;
    s.username = None;
    s.session = Some(Secret(key));
    let plc = connect(&s).await.unwrap();
    assert_eq!(plc.get_sites(Lookup::Ids(vec![1])).await.unwrap().len(), 1);
    s.session = Some(Secret("forged".into()));
    assert!(matches!(
        connect(&s).await.unwrap_err(),
        PlcError::Refused { code: 103, message } if message.ends_with("No such session")
    ));
}

#[tokio::test]
async fn wrong_shapes_are_malformed_naming_method_and_field() {
    let (double, dir) = small().await;
    let plc = connect(&settings(&double, dir.path())).await.unwrap();
    let cases = [
        (
            Table::Sites,
            "login_base",
            Some(Value::Int(3)),
            "GetSites: field login_base is int, expected string",
        ),
        (
            Table::Sites,
            "person_ids",
            Some(Value::from("1,2")),
            "GetSites: field person_ids is string, expected array",
        ),
        (
            Table::Sites,
            "enabled",
            None,
            "GetSites: field enabled is missing",
        ),
        (
            Table::Sites,
            "node_ids",
            Some(Value::Array(vec!["x".into()])),
            "GetSites: field node_ids is string, expected ints",
        ),
    ];
    for (table, field, value, expected) in cases {
        double.with_plc(|p| p.override_field(table, 2, field, value.clone()));
        assert_eq!(
            plc.get_sites(Lookup::All).await.unwrap_err(),
            PlcError::Malformed {
                what: expected.into()
            },
            "{field}"
        );
        double.with_plc(|p| *p = Plc::generate(Scale::SMALL));
    }
    double.with_plc(|p| {
        p.override_field(
            Table::Persons,
            1,
            "roles",
            Some(Value::Array(vec![Value::Int(10)])),
        )
    });
    assert_eq!(
        plc.get_persons(Lookup::Ids(vec![1])).await.unwrap_err(),
        PlcError::Malformed {
            what: "GetPersons: field roles is int, expected strings".into()
        }
    );
    double.with_plc(|p| {
        p.override_field(Table::SliceAttributes, 1, "node_id", Some(Value::from("n")))
    });
    let slice = double.with_plc(|p| {
        (1..=20)
            .find(|s| {
                p.slice(*s)
                    .is_some_and(|s| s.slice_attribute_ids.contains(&1))
            })
            .unwrap()
    });
    assert_eq!(
        plc.get_slice_attributes(slice).await.unwrap_err(),
        PlcError::Malformed {
            what: "GetSliceAttributes: field node_id is string, expected int or nil".into()
        }
    );
    double.with_plc(|p| p.override_field(Table::Slices, 1, "slice_id", Some(Value::Double(1.5))));
    assert_eq!(
        plc.get_slices(Lookup::Ids(vec![1])).await.unwrap_err(),
        PlcError::Malformed {
            what: "GetSlices: field slice_id is double, expected int".into()
        }
    );
}

#[tokio::test]
async fn an_unreachable_plc_is_retried_a_bounded_number_of_times() {
    let (mut double, dir) = small().await;
    let plc = connect(&settings(&double, dir.path())).await.unwrap();
    double.stop().await;
    let started = Instant::now();
    let err = plc.get_sites(Lookup::All).await.unwrap_err();
    let took = started.elapsed();
    let PlcError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}");
    };
    let port = double.addr().port();
    assert!(
        message.starts_with(&format!(
            "PLCAPI GetSites: cannot connect to localhost:{port}"
        )),
        "{message}"
    );
    assert!(message.ends_with("(gave up after 3 attempts)"), "{message}");
    // Pauses of 50 and 100 ms, and no more.
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(10),
        "{took:?}"
    );

    // PLC comes back while we wait: the next call gets through after a retry.
    let mut s = settings(&double, dir.path());
    s.retry.max_attempts = 10;
    s.retry.initial_backoff_ms = 100;
    let patient = PlcApiBackend::new(&s).unwrap();
    let restart = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        double.restart().await.unwrap();
    };
    let (connected, ()) = tokio::join!(patient.connect(), restart);
    let patient = connected.unwrap();
    assert_eq!(patient.get_sites(Lookup::All).await.unwrap().len(), 5);
}

#[tokio::test]
async fn bulk_reads_are_batched_through_multicall() {
    let double = PlcDouble::start(Plc::generate(Scale {
        sites: 10,
        persons: 450,
        slices: 30,
        nodes: 20,
    }))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&double, dir.path());
    s.ids_per_call = 100;
    s.multicall_batch = 3;
    let plc = connect(&s).await.unwrap();
    double.reset_stats();

    let persons = plc.get_persons(Lookup::All).await.unwrap();
    assert_eq!(persons.len(), 450);
    let ids: Vec<i64> = persons.iter().map(|p| p.person_id).collect();
    assert_eq!(ids, (1..=450).collect::<Vec<_>>());
    let stats = double.stats();
    // One call for the ids, then 5 calls of 100 ids in two multicall requests (3 + 2).
    assert_eq!(stats.calls_of("GetPersons"), 1 + 5);
    assert_eq!((stats.multicalls, stats.requests), (2, 3));

    // Ids and names asked twice come back once.
    double.reset_stats();
    let email = persons[9].email.clone();
    let mut lookup: Vec<i64> = (1..=250).collect();
    lookup.push(10);
    let again = plc.get_persons(Lookup::Ids(lookup)).await.unwrap();
    assert_eq!(again.len(), 250);
    let mixed = plc
        .get_persons(Lookup::Names(vec![email.clone(), email]))
        .await
        .unwrap();
    assert_eq!(mixed.len(), 1);
    let stats = double.stats();
    assert_eq!((stats.multicalls, stats.calls_of("GetPersons")), (1, 4));
}

#[test]
fn settings_from_toml() {
    let text = r#"
        url = "https://plc.example.org/PLCAPI/"
        username = "maint@plc.example.org"
        password = "s3cret"
        ca_file = "/etc/geni-agent/plc-ca.pem"
        ids_per_call = 50
        [retry]
        max_attempts = 2
        initial_backoff_ms = 10
    "#;
    let s: PlcApiSettings = parse(text).unwrap();
    assert_eq!(s.auth, AuthMethod::Password);
    assert_eq!((s.multicall_batch, s.ids_per_call), (100, 50));
    assert_eq!(s.retry.max_attempts, 2);
    assert_eq!(s.retry.timeout_secs, 60);
    let shown = format!("{s:?}");
    assert!(
        shown.contains("maint@plc.example.org") && !shown.contains("s3cret"),
        "{shown}"
    );
    let (auth, server, retry) = s.parts().unwrap();
    assert!(matches!(auth, PlcAuth::Password { .. }));
    assert!(matches!(server, PlcServerAuth::CaFile(_)));
    assert_eq!(retry.initial_backoff, Duration::from_millis(10));

    let session = parse(
        r#"url = "https://plc/PLCAPI/"
           auth = "session"
           session = "abc"
           danger_accept_any_certificate = true"#,
    )
    .unwrap();
    assert!(matches!(
        session.parts().unwrap().1,
        PlcServerAuth::DangerAcceptAny
    ));

    let refused = [
        (
            "url = \"https://p/\"\nusername = \"u\"\npassword = \"p\"",
            "set ca_file",
        ),
        (
            "url = \"http://p/\"\nusername = \"u\"\npassword = \"p\"\nca_file = \"c\"",
            "https://",
        ),
        (
            "url = \"https://p/\"\nusername = \"u\"\nca_file = \"c\"",
            "needs username and password",
        ),
        (
            "url = \"https://p/\"\nauth = \"session\"\nca_file = \"c\"",
            "needs session",
        ),
        (
            "url = \"https://p/\"\nusername = \"u\"\npassword = \"p\"\nca_file = \"c\"\ndanger_accept_any_certificate = true",
            "not both",
        ),
        (
            "url = \"https://p/\"\nusername = \"u\"\npassword = \"p\"\nca_file = \"c\"\n[retry]\nmax_attempts = 0",
            "at least 1",
        ),
    ];
    for (text, expected) in refused {
        let err = parse(text).unwrap().parts().unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
    // Unknown keys and unknown auth methods are errors, not silently ignored.
    assert!(parse("url = \"https://p/\"\npasword = \"typo\"").is_err());
    assert!(parse("url = \"https://p/\"\nauth = \"hmac\"").is_err());
}

fn parse(text: &str) -> anyhow::Result<PlcApiSettings> {
    Ok(config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()?
        .try_deserialize()?)
}

/// The accounts check's narrow read: login_base and enabled of the sites that exist, as
/// `GetSites` with only those return fields (a site's row otherwise lists all its slices).
#[tokio::test]
async fn site_states_are_the_enabled_flags_of_the_sites_that_exist() {
    let (double, dir) = small().await;
    let plc = connect(&settings(&double, dir.path())).await.unwrap();
    plc.update_site(3, Struct::new().with("enabled", false))
        .await
        .unwrap();
    let states = plc.site_states(vec![2, 999, 3]).await.unwrap();
    let expected: Vec<SiteState> = [2, 3]
        .iter()
        .map(|&id| {
            let site = double.with_plc(|p| p.site(id).cloned()).unwrap();
            SiteState {
                login_base: site.login_base,
                enabled: site.enabled,
            }
        })
        .collect();
    assert_eq!(states, expected);
    assert!(states[0].enabled && !states[1].enabled, "{states:?}");
    assert_eq!(plc.site_states(Vec::new()).await.unwrap(), []);
}

#[tokio::test]
async fn person_state_is_the_enabled_flag_and_sites_of_a_person_that_exists() {
    let (double, dir) = small().await;
    let plc = connect(&settings(&double, dir.path())).await.unwrap();
    plc.update_person(4, Struct::new().with("enabled", false))
        .await
        .unwrap();
    let expected = double.with_plc(|p| p.person(4).cloned()).unwrap();
    assert_eq!(
        plc.person_state(4).await.unwrap(),
        Some(PersonState {
            enabled: false,
            site_ids: expected.site_ids,
        })
    );
    assert!(plc.person_state(1).await.unwrap().unwrap().enabled);
    assert_eq!(plc.person_state(999).await.unwrap(), None);
}
