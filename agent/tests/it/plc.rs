//! End-to-end tests of `geni-agent plc` on loopback: the real binary, real TLS with client
//! certificates, real databases. Every registry test runs twice, on a SQLite file and on a
//! PostgreSQL database (skipped, saying so, when `GENI_TEST_POSTGRES_URL` is unset).
//!
//! The canonical 2008 flow (self-credential → sa credential → create_gid → register slice →
//! slice credential → ticket) ends with the ticket verified by a node's verifier and redeemed on
//! a real `geni-agent node`; every method has its test, and each rejection the issue names has
//! its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use geni_rpc::TlsIdentity;
use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_trust::{
    ChainForm, Clock, Gid, Hierarchy, Hrn, Keypair, Policy, RightList, SystemClock, TrustError,
    TrustedRoots, Verifier, VerifyError,
};
use geni_xmlrpc::{Struct, Value};
use support::plc::{Db, Plc, SCRIPT, user};
use support::{bin, fault_code};

/// Runs each scenario on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Postgres).await;
                }
            )*
        }
    };
}

on_both!(
    canonical_flow_ends_in_a_redeemed_ticket,
    every_method,
    rejects_a_caller_without_the_right,
    rejects_a_credential_for_an_object_outside_the_callers_authority,
    rejects_register_under_a_foreign_authority,
    rejects_a_duplicate_record,
    rejects_malformed_record_dicts,
    stores_sql_metacharacters_verbatim,
    unknown_records_are_not_found,
    rejects_a_tls_key_that_is_not_the_callers,
    names_that_would_escape_the_tree_change_nothing,
    admin_only_fields_need_the_plc_admin,
    disabled_accounts_get_no_credential_ticket_or_record,
    creating_claiming_and_deleting_sites_need_the_plc_admin,
);

fn s(v: &str) -> Value {
    Value::from(v)
}

fn text(v: Value) -> String {
    v.as_str().unwrap().to_owned()
}

fn verifier(plc: &Plc) -> Verifier {
    let roots = TrustedRoots::load_dir(&plc.state().join("trusted_roots")).unwrap();
    Verifier::new(roots, Policy::default())
}

fn pem(key: &Keypair) -> Value {
    Value::String(String::from_utf8(key.public_key().to_pem().unwrap()).unwrap())
}

/// The PLC admin: a client with the root authority's key, and its authority credential.
fn admin(plc: &Plc) -> (GeniClient, String) {
    let h = Hierarchy::new(plc.state().join("authorities"));
    let root = h.authority(&"planetlab".parse().unwrap()).unwrap();
    let cred = h
        .authority_credential(&root.hrn)
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    (plc.client_with(&root.key, &root.gid), cred)
}

/// A record dict as genicli sends it.
fn record(name: &str, kind: &str, gid: &str, geni_info: Struct) -> Value {
    Value::Struct(
        Struct::new()
            .with("name", name)
            .with("type", kind)
            .with("gid", gid)
            .with("pointer", -1)
            .with("geni_info", geni_info),
    )
}

/// Alice's self-credential and her sa credential over `planetlab.us.pl` (she is its PI).
async fn alice_credentials(plc: &Plc, c: &GeniClient) -> (String, String) {
    let user_cred = plc.self_credential(&plc.alice).await;
    let sa_cred = text(
        c.call(
            "get_credential",
            vec![s(&user_cred), s("sa"), s("planetlab.us.pl")],
        )
        .await
        .unwrap(),
    );
    (user_cred, sa_cred)
}

/// Registers slice `hrn` with `key` under alice's sa credential; returns its GID text.
async fn register_slice(
    c: &GeniClient,
    sa_cred: &str,
    hrn: &str,
    key: &Keypair,
    researchers: &[&str],
) -> String {
    let gid = text(
        c.call("create_gid", vec![s(sa_cred), s(hrn), Value::Nil, pem(key)])
            .await
            .unwrap(),
    );
    let info = Struct::new().with(
        "researcher",
        Value::Array(researchers.iter().map(|r| s(r)).collect()),
    );
    let back = c
        .call(
            "register",
            vec![s(sa_cred), record(hrn, "slice", &gid, info)],
        )
        .await
        .unwrap();
    assert_eq!(text(back), gid);
    gid
}

/// A running `geni-agent node` whose identity the registry's hierarchy issued.
struct NodeProcess {
    child: Child,
    addr: String,
    gid: Gid,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(plc: &Plc, key: &Keypair, gid: Gid) -> NodeProcess {
    let h = Hierarchy::new(plc.state().join("authorities"));
    let rights: RightList = "control,info".parse().unwrap();
    let cred = h
        .issue_credential(&gid, &gid, &rights, true, 30 * 86_400)
        .unwrap();
    key.save(&plc.path("node.pkey")).unwrap();
    std::fs::write(
        plc.path("node.gid"),
        gid.to_chain_string(ChainForm::Separator).unwrap(),
    )
    .unwrap();
    std::fs::write(
        plc.path("node.cred"),
        cred.to_chain_string(ChainForm::Separator).unwrap(),
    )
    .unwrap();
    std::fs::write(
        plc.path("node.toml"),
        "[node.local]\nstop_grace_secs = 1\ndanger_shared_uid = true\n",
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["node", "--listen", "127.0.0.1:0", "--config"])
        .arg(plc.path("node.toml"))
        .arg("--trusted-roots")
        .arg(plc.state().join("trusted_roots"))
        .arg("--state-dir")
        .arg(plc.path("node-state"))
        .arg("--key")
        .arg(plc.path("node.pkey"))
        .arg("--gid")
        .arg(plc.path("node.gid"))
        .arg("--credential")
        .arg(plc.path("node.cred"))
        .env("GENI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    NodeProcess { child, addr, gid }
}

fn node_client(node: &NodeProcess, key: &Keypair, gid: &Gid) -> GeniClient {
    let identity = TlsIdentity::from_pem(
        &key.to_pem().unwrap(),
        &gid.to_chain_string(ChainForm::Separator).unwrap(),
    )
    .unwrap();
    GeniClient::new(
        &format!("https://{}/", node.addr),
        identity,
        server_auth_from_gid(&node.gid),
        Duration::from_secs(30),
    )
    .unwrap()
}

async fn canonical_flow_ends_in_a_redeemed_ticket(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let v = verifier(&plc);
    let alice = plc.client(&plc.alice).await;

    // 1. Self-credential: alice over herself, the user rights of 2008.
    let user_cred = plc.self_credential(&plc.alice).await;
    let uc = v.verify_credential_str(&user_cred).unwrap();
    assert_eq!(uc.caller().hrn().as_str(), "planetlab.us.pl.alice");
    assert_eq!(uc.object().hrn().as_str(), "planetlab.us.pl.alice");
    assert_eq!(uc.privileges().to_string(), "refresh,resolve,info");

    // 2. The site's sa credential: alice is its PI.
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let sc = v.verify_credential_str(&sa_cred).unwrap();
    assert_eq!(sc.object().hrn().as_str(), "planetlab.us.pl");
    assert_eq!(sc.caller().hrn().as_str(), "planetlab.us.pl.alice");
    assert_eq!(sc.privileges().to_string(), "authority");

    // 3–4. A GID for the slice's key, then the slice record with alice as researcher.
    let slice_key = Keypair::generate(2048).unwrap();
    let slice_gid = register_slice(
        &alice,
        &sa_cred,
        "planetlab.us.pl.s1",
        &slice_key,
        &["planetlab.us.pl.alice"],
    )
    .await;
    let g = v.verify_gid_str(&slice_gid).unwrap();
    assert_eq!(g.hrn().as_str(), "planetlab.us.pl.s1");
    assert_eq!(g.gid().public_key(), &slice_key.public_key());

    // The operator sets the slice's attributes and adds a node while the registry runs.
    plc.ok(&["slice", "attr", "set", "pl_s1", "cpu_share", "8"]);
    plc.ok(&["slice", "attr", "set", "pl_s1", "disk_max", "100000"]);
    plc.ok(&["slice", "attr", "set", "pl_s1", "initscript", "hello"]);
    let node_key = Keypair::generate(2048).unwrap();
    std::fs::write(
        plc.path("node.pub"),
        node_key.public_key().to_pem().unwrap(),
    )
    .unwrap();
    plc.ok(&[
        "node",
        "add",
        "node1.pl.example",
        "--site",
        "pl",
        "--pubkey",
        plc.path("node.pub").to_str().unwrap(),
    ]);
    plc.ok(&[
        "slice",
        "attr",
        "set",
        "pl_s1",
        "cpu_share",
        "16",
        "--node",
        "node1.pl.example",
    ]);
    let node_hrn: Hrn = "planetlab.us.pl.node1_pl_example".parse().unwrap();

    // 5. The slice credential, asked for with the user credential (alice is a researcher).
    let slice_cred = text(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("slice"), s("planetlab.us.pl.s1")],
            )
            .await
            .unwrap(),
    );
    let lc = v.verify_credential_str(&slice_cred).unwrap();
    assert_eq!(lc.object().hrn().as_str(), "planetlab.us.pl.s1");
    assert_eq!(lc.caller().hrn().as_str(), "planetlab.us.pl.alice");
    assert_eq!(lc.privileges().to_string(), "embed,bind,control,info");

    // 6. The ticket for node1, and what a node's verifier makes of it.
    let before = SystemClock.now();
    let ticket = text(
        alice
            .call(
                "get_ticket",
                vec![
                    s(&slice_cred),
                    s("planetlab.us.pl.s1"),
                    Value::Struct(Struct::new().with("ignored", 1)),
                    s(node_hrn.as_str()),
                ],
            )
            .await
            .unwrap(),
    );
    let t = v.verify_ticket_str(&ticket, Some(&node_hrn)).unwrap();
    assert_eq!(t.caller().hrn().as_str(), "planetlab.us.pl.alice");
    assert_eq!(t.object().hrn().as_str(), "planetlab.us.pl.s1");
    assert_eq!(t.ticket().target(), Some(&node_hrn));
    assert!(!t.ticket().delegate());
    assert_eq!(
        t.ticket().certificate().public_key(),
        &slice_key.public_key(),
        "a ticket's key is the slice's (2008 §1.5)"
    );
    assert_eq!(t.ticket().certificate().issuer(), "planetlab.us.pl");
    let expires = t.ticket().certificate().validity().not_after;
    assert!(
        (before + 86_400 - 5..=before + 86_400 + 60).contains(&expires),
        "{expires}"
    );
    let a = t.ticket().attributes();
    assert_eq!(a.get("name"), Some(&s("pl_s1")));
    assert_eq!(a.get("keys"), Some(&Value::Array(vec![s(&plc.alice.ssh)])));
    assert_eq!(a.get("instantiation"), Some(&s("delegated")));
    assert_eq!(a.get("vref"), Some(&s("default")));
    assert_eq!(a.get("initscript"), Some(&s(SCRIPT)));
    assert!(matches!(a.get("slice_id"), Some(Value::Int(id)) if *id > 0));
    match a.get("timestamp") {
        Some(Value::Double(ts)) => {
            assert!((*ts - before as f64).abs() < 60.0, "{ts}");
        }
        other => panic!("timestamp must be a double, got {other:?}"),
    }
    let r = t.ticket().rspec();
    assert_eq!(
        r.get("cpu_share"),
        Some(&s("16")),
        "the node's own row wins"
    );
    assert_eq!(r.get("disk_max"), Some(&s("100000")));
    assert!(r.get("initscript").is_none());
    // Anywhere else it is refused.
    let elsewhere: Hrn = "planetlab.us.pl.node2".parse().unwrap();
    assert!(matches!(
        v.verify_ticket_str(&ticket, Some(&elsewhere)),
        Err(TrustError::Verify(VerifyError::WrongNode { .. }))
    ));

    // 7. Redeemed on a real node: a sliver credential back, and the sliver listed.
    let node_gid = plc.gid_of(node_hrn.as_str()).await;
    assert_eq!(node_gid.public_key(), &node_key.public_key());
    let node = start_node(&plc, &node_key, node_gid);
    let alice_gid = plc.gid_of(&plc.alice.hrn).await;
    let at_node = node_client(&node, &plc.alice.key, &alice_gid);
    let sliver_cred = text(
        at_node
            .call("redeem_ticket", vec![s(&ticket)])
            .await
            .unwrap(),
    );
    let sc = v.verify_credential_str(&sliver_cred).unwrap();
    assert_eq!(
        sc.object().hrn().as_str(),
        "planetlab.us.pl.node1_pl_example.pl_s1"
    );
    let listed = at_node
        .call("list_slices", vec![s(&slice_cred)])
        .await
        .unwrap();
    assert_eq!(listed, Value::Array(vec![s("pl_s1")]));
    let rows = at_node
        .call("list_slivers", vec![s(&slice_cred)])
        .await
        .unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = rows[0].as_struct().unwrap();
    assert_eq!(row.get("name"), Some(&s("pl_s1")));
    assert_eq!(row.get("slice"), Some(&s("planetlab.us.pl.s1")));
    drop(node);
    plc.finish().await;
}

async fn every_method(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let v = verifier(&plc);
    let alice = plc.client(&plc.alice).await;
    let (user_cred, sa_cred) = alice_credentials(&plc, &alice).await;

    // noop echoes after checking the credential.
    let echoed = alice
        .call(
            "noop",
            vec![s(&user_cred), Value::Struct(Struct::new().with("x", 7))],
        )
        .await
        .unwrap();
    assert_eq!(echoed, Value::Struct(Struct::new().with("x", 7)));

    // get_gid: the sa and ma records of a site share the authority's own GID.
    let gids = alice
        .call("get_gid", vec![s("planetlab.us.pl")])
        .await
        .unwrap();
    let gids = gids.as_array().unwrap();
    assert_eq!(gids.len(), 2);
    assert_eq!(gids[0], gids[1]);
    let site_gid = v.verify_gid_str(gids[0].as_str().unwrap()).unwrap();
    assert_eq!(site_gid.hrn().as_str(), "planetlab.us.pl");

    // resolve: alice (a PI) sees the sa record, filled; not the ma (she is no tech or admin).
    let found = alice
        .call("resolve", vec![s(&user_cred), s("planetlab.us.pl")])
        .await
        .unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1);
    let sa = found[0].as_struct().unwrap();
    assert_eq!(sa.get("type"), Some(&s("sa")));
    let pl_info = sa.get("pl_info").unwrap().as_struct().unwrap();
    assert_eq!(pl_info.get("login_base"), Some(&s("pl")));
    assert_eq!(
        sa.get("geni_info").unwrap().as_struct().unwrap().get("pi"),
        Some(&Value::Array(vec![s("planetlab.us.pl.alice")]))
    );
    // With the sa credential both show.
    let both = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl")])
        .await
        .unwrap();
    assert_eq!(both.as_array().unwrap().len(), 2);

    // create_gid with a given uuid; register a user with it; the user gets their own
    // credential; update changes PLC fields and geni_info; remove takes it away.
    let carol = user("carol@pl.example", "planetlab.us.pl.carol");
    let carol_gid = text(
        alice
            .call(
                "create_gid",
                vec![
                    s(&sa_cred),
                    s(&carol.hrn),
                    s("123456789012345678901234567890"),
                    pem(&carol.key),
                ],
            )
            .await
            .unwrap(),
    );
    let parsed = Gid::parse(&carol_gid).unwrap();
    assert_eq!(parsed.uuid(), Some("123456789012345678901234567890"));
    let info = Struct::new().with("email", carol.email.as_str());
    alice
        .call(
            "register",
            vec![s(&sa_cred), record(&carol.hrn, "user", &carol_gid, info)],
        )
        .await
        .unwrap();
    let carol_cred = plc.self_credential(&carol).await;
    assert_eq!(
        v.verify_credential_str(&carol_cred)
            .unwrap()
            .object()
            .hrn()
            .as_str(),
        carol.hrn
    );
    let upd = Value::Struct(
        Struct::new()
            .with("name", carol.hrn.as_str())
            .with("type", "user")
            .with(
                "pl_info",
                Struct::new()
                    .with("phone", "555-0100")
                    .with("person_id", 999),
            )
            .with(
                "geni_info",
                Struct::new().with("email", "carol@new.example"),
            ),
    );
    assert_eq!(
        alice.call("update", vec![s(&sa_cred), upd]).await.unwrap(),
        Value::Nil
    );
    let r = alice
        .call("resolve", vec![s(&sa_cred), s(&carol.hrn)])
        .await
        .unwrap();
    let r = r.as_array().unwrap()[0].as_struct().unwrap().clone();
    assert_eq!(
        r.get("geni_info")
            .unwrap()
            .as_struct()
            .unwrap()
            .get("email"),
        Some(&s("carol@new.example"))
    );
    let pl = r.get("pl_info").unwrap().as_struct().unwrap();
    assert_eq!(pl.get("phone"), Some(&s("555-0100")));
    assert_ne!(pl.get("person_id"), Some(&Value::Int(999)));
    assert_eq!(r.get("gid"), Some(&s(&carol_gid)));

    // A slice; list shows what is under the site.
    let slice_key = Keypair::generate(2048).unwrap();
    register_slice(&alice, &sa_cred, "planetlab.us.pl.s2", &slice_key, &[]).await;
    // update adds a researcher.
    let upd = Value::Struct(
        Struct::new()
            .with("name", "planetlab.us.pl.s2")
            .with("type", "slice")
            .with(
                "geni_info",
                Struct::new().with("researcher", Value::Array(vec![s(&plc.bob.hrn)])),
            ),
    );
    alice.call("update", vec![s(&sa_cred), upd]).await.unwrap();
    let listed = alice.call("list", vec![s(&sa_cred)]).await.unwrap();
    let names: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_struct().unwrap();
            (
                text(r.get("name").unwrap().clone()),
                text(r.get("type").unwrap().clone()),
            )
        })
        .collect();
    let expect = |n: &str, t: &str| (n.to_owned(), t.to_owned());
    assert_eq!(
        names,
        [
            expect("planetlab.us.pl.alice", "user"),
            expect("planetlab.us.pl.bob", "user"),
            expect("planetlab.us.pl.carol", "user"),
            expect("planetlab.us.pl.s2", "slice"),
        ]
    );
    let s2 = listed.as_array().unwrap()[3].as_struct().unwrap();
    assert_eq!(
        s2.get("geni_info")
            .unwrap()
            .as_struct()
            .unwrap()
            .get("researcher"),
        Some(&Value::Array(vec![s(&plc.bob.hrn)]))
    );
    // list(cred, hrn) of the interface authority needs a credential over it.
    let (code, msg) = fault_code(
        alice
            .call("list", vec![s(&sa_cred), s("planetlab.us")])
            .await,
    );
    assert_eq!(code, 104, "{msg}");

    // A node record needs geni_info.dns.
    let node_key = Keypair::generate(2048).unwrap();
    let node_gid = text(
        alice
            .call(
                "create_gid",
                vec![
                    s(&sa_cred),
                    s("planetlab.us.pl.n2"),
                    Value::Nil,
                    pem(&node_key),
                ],
            )
            .await
            .unwrap(),
    );
    alice
        .call(
            "register",
            vec![
                s(&sa_cred),
                record(
                    "planetlab.us.pl.n2",
                    "node",
                    &node_gid,
                    Struct::new().with("dns", "n2.pl.example"),
                ),
            ],
        )
        .await
        .unwrap();
    let n2 = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl.n2")])
        .await
        .unwrap();
    assert_eq!(
        n2.as_array().unwrap()[0]
            .as_struct()
            .unwrap()
            .get("geni_info")
            .unwrap()
            .as_struct()
            .unwrap()
            .get("dns"),
        Some(&s("n2.pl.example"))
    );

    // A sub-authority: its sa record holds its own GID (2008 stored its parent's); the ma
    // shares its site. A new site is the PLC admin's to make; a PI may not (policy tests).
    let (root, root_cred) = admin(&plc);
    let lab = text(
        root.call(
            "register",
            vec![
                s(&root_cred),
                record("planetlab.us.pl.lab", "sa", "", Struct::new()),
            ],
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        v.verify_gid_str(&lab).unwrap().hrn().as_str(),
        "planetlab.us.pl.lab"
    );
    alice
        .call(
            "register",
            vec![
                s(&sa_cred),
                record("planetlab.us.pl.lab", "ma", "", Struct::new()),
            ],
        )
        .await
        .unwrap();
    let lab_records = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl.lab")])
        .await
        .unwrap();
    let pointers: Vec<&Value> = lab_records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_struct().unwrap().get("pointer").unwrap())
        .collect();
    assert_eq!(pointers.len(), 2);
    assert_eq!(pointers[0], pointers[1]);

    // remove, in both the 2008 and the 2009 form; then it is gone.
    assert_eq!(
        alice
            .call("remove", vec![s(&sa_cred), s("user"), s(&carol.hrn)])
            .await
            .unwrap(),
        Value::Bool(true)
    );
    alice
        .call(
            "remove",
            vec![
                s(&sa_cred),
                record("planetlab.us.pl.n2", "node", "", Struct::new()),
            ],
        )
        .await
        .unwrap();
    for gone in [carol.hrn.as_str(), "planetlab.us.pl.n2"] {
        let (code, msg) = fault_code(alice.call("get_gid", vec![s(gone)]).await);
        assert_eq!(code, 105, "{msg}");
    }

    // An expired slice gets no ticket.
    plc.ok(&["slice", "add", "pl_old", "--expires-days", "0"]);
    let old_cred = text(
        alice
            .call(
                "get_credential",
                vec![s(&sa_cred), s("slice"), s("planetlab.us.pl.old")],
            )
            .await
            .unwrap(),
    );
    let (code, msg) = fault_code(
        alice
            .call(
                "get_ticket",
                vec![
                    s(&old_cred),
                    s("planetlab.us.pl.old"),
                    Value::Struct(Struct::new()),
                ],
            )
            .await,
    );
    assert_eq!(code, 107, "{msg}");
    assert!(msg.contains("expired"), "{msg}");
    plc.finish().await;
}

async fn rejects_a_caller_without_the_right(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let bob = plc.client(&plc.bob).await;
    let bob_cred = plc.self_credential(&plc.bob).await;
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let key = Keypair::generate(2048).unwrap();
    register_slice(
        &alice,
        &sa_cred,
        "planetlab.us.pl.s1",
        &key,
        &[&plc.bob.hrn],
    )
    .await;

    // A user credential (refresh, resolve, info) may not register or get tickets.
    let (code, msg) = fault_code(
        bob.call(
            "register",
            vec![
                s(&bob_cred),
                record("planetlab.us.pl.bob.x", "slice", "", Struct::new()),
            ],
        )
        .await,
    );
    assert_eq!(code, 103, "{msg}");
    assert!(msg.contains("register"), "{msg}");
    let (code, msg) = fault_code(
        bob.call(
            "get_ticket",
            vec![
                s(&bob_cred),
                s("planetlab.us.pl.s1"),
                Value::Struct(Struct::new()),
            ],
        )
        .await,
    );
    assert_eq!(code, 103, "{msg}");
    // A slice credential (embed, bind, control, info) may not remove its slice.
    let slice_cred = text(
        bob.call(
            "get_credential",
            vec![s(&bob_cred), s("slice"), s("planetlab.us.pl.s1")],
        )
        .await
        .unwrap(),
    );
    let (code, msg) = fault_code(
        bob.call(
            "remove",
            vec![s(&slice_cred), s("slice"), s("planetlab.us.pl.s1")],
        )
        .await,
    );
    assert_eq!(code, 103, "{msg}");
    // Nothing changed: the slice is still there and still gets a ticket.
    bob.call(
        "get_ticket",
        vec![
            s(&slice_cred),
            s("planetlab.us.pl.s1"),
            Value::Struct(Struct::new()),
        ],
    )
    .await
    .unwrap();
    plc.finish().await;
}

async fn rejects_a_credential_for_an_object_outside_the_callers_authority(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (user_cred, sa_cred) = alice_credentials(&plc, &alice).await;
    let bob = plc.client(&plc.bob).await;
    let bob_cred = plc.self_credential(&plc.bob).await;
    plc.ok(&["slice", "add", "other_x"]);
    plc.ok(&["slice", "add", "pl_private"]);

    let denied = |r: Result<Value, geni_rpc::RpcError>| {
        let (code, msg) = fault_code(r);
        assert_eq!(code, 104, "{msg}");
    };
    // 2008 gave anyone with `resolve` any credential; bob is no PI of pl.
    denied(
        bob.call(
            "get_credential",
            vec![s(&bob_cred), s("sa"), s("planetlab.us.pl")],
        )
        .await,
    );
    // Alice's authority is pl, not other.
    denied(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("sa"), s("planetlab.us.other")],
            )
            .await,
    );
    denied(
        alice
            .call(
                "get_credential",
                vec![s(&sa_cred), s("slice"), s("planetlab.us.other.x")],
            )
            .await,
    );
    // A user credential reaches only slices the user is a researcher of, and other users not.
    denied(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("slice"), s("planetlab.us.pl.private")],
            )
            .await,
    );
    denied(
        bob.call(
            "get_credential",
            vec![s(&bob_cred), s("user"), s(&plc.alice.hrn)],
        )
        .await,
    );
    // resolve checks the same.
    denied(
        bob.call("resolve", vec![s(&bob_cred), s("planetlab.us.pl.private")])
            .await,
    );
    denied(
        alice
            .call("resolve", vec![s(&sa_cred), s("planetlab.us.other")])
            .await,
    );
    // With the site's authority it works.
    alice
        .call(
            "get_credential",
            vec![s(&sa_cred), s("slice"), s("planetlab.us.pl.private")],
        )
        .await
        .unwrap();
    plc.finish().await;
}

async fn rejects_register_under_a_foreign_authority(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let key = Keypair::generate(2048).unwrap();
    // A GID for a name under another site cannot even be made with pl's credential…
    let (code, msg) = fault_code(
        alice
            .call(
                "create_gid",
                vec![
                    s(&sa_cred),
                    s("planetlab.us.other.x"),
                    Value::Nil,
                    pem(&key),
                ],
            )
            .await,
    );
    assert_eq!(code, 104, "{msg}");
    // …nor registered, with any GID.
    let own = text(
        alice
            .call(
                "create_gid",
                vec![s(&sa_cred), s("planetlab.us.pl.x"), Value::Nil, pem(&key)],
            )
            .await
            .unwrap(),
    );
    for name in ["planetlab.us.other.x", "planetlab.eu.pl.x"] {
        let (code, msg) = fault_code(
            alice
                .call(
                    "register",
                    vec![s(&sa_cred), record(name, "slice", &own, Struct::new())],
                )
                .await,
        );
        assert_eq!(code, 104, "{name}: {msg}");
    }
    // An authority under another site neither.
    let (code, msg) = fault_code(
        alice
            .call(
                "register",
                vec![
                    s(&sa_cred),
                    record("planetlab.us.other.lab", "sa", "", Struct::new()),
                ],
            )
            .await,
    );
    assert_eq!(code, 104, "{msg}");
    assert!(
        !plc.state()
            .join("authorities/planetlab/us/other/lab")
            .exists()
    );
    // A GID for one name does not register another.
    let (code, msg) = fault_code(
        alice
            .call(
                "register",
                vec![
                    s(&sa_cred),
                    record("planetlab.us.pl.y", "slice", &own, Struct::new()),
                ],
            )
            .await,
    );
    assert_eq!(code, -32602, "{msg}");
    assert!(msg.contains("planetlab.us.pl.x"), "{msg}");
    for name in ["planetlab.us.other.x", "planetlab.us.pl.y"] {
        let (code, _) = fault_code(alice.call("get_gid", vec![s(name)]).await);
        assert_eq!(code, 105);
    }
    plc.finish().await;
}

async fn rejects_a_duplicate_record(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let key = Keypair::generate(2048).unwrap();
    let gid = register_slice(&alice, &sa_cred, "planetlab.us.pl.s1", &key, &[]).await;
    let before = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl.s1")])
        .await
        .unwrap();
    let (code, msg) = fault_code(
        alice
            .call(
                "register",
                vec![
                    s(&sa_cred),
                    record("planetlab.us.pl.s1", "slice", &gid, Struct::new()),
                ],
            )
            .await,
    );
    assert_eq!(code, 106, "{msg}");
    assert!(msg.contains("planetlab.us.pl.s1"), "{msg}");
    // A second user record for alice, even with another e-mail: no second PLC person either.
    let alice_gid = plc
        .gid_of(&plc.alice.hrn)
        .await
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let (code, msg) = fault_code(
        alice
            .call(
                "register",
                vec![
                    s(&sa_cred),
                    record(
                        &plc.alice.hrn,
                        "user",
                        &alice_gid,
                        Struct::new().with("email", "alice2@pl.example"),
                    ),
                ],
            )
            .await,
    );
    assert_eq!(code, 106, "{msg}");
    let site = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl")])
        .await
        .unwrap();
    let pl_info = site.as_array().unwrap()[0]
        .as_struct()
        .unwrap()
        .get("pl_info")
        .unwrap()
        .as_struct()
        .unwrap()
        .clone();
    assert_eq!(
        pl_info.get("person_ids").unwrap().as_array().unwrap().len(),
        2
    );
    // The record and its PLC slice are as they were.
    let after = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl.s1")])
        .await
        .unwrap();
    assert_eq!(before, after);
    plc.finish().await;
}

async fn rejects_malformed_record_dicts(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let key = Keypair::generate(2048).unwrap();
    let gid = text(
        alice
            .call(
                "create_gid",
                vec![s(&sa_cred), s("planetlab.us.pl.m"), Value::Nil, pem(&key)],
            )
            .await
            .unwrap(),
    );
    let base = Struct::new()
        .with("name", "planetlab.us.pl.m")
        .with("type", "slice")
        .with("gid", gid.as_str());
    let cases: Vec<(Value, i32, &str)> = vec![
        (s("planetlab.us.pl.m"), -32602, "must be a struct"),
        (
            Value::Struct(Struct::new().with("type", "slice")),
            -32602,
            "no name",
        ),
        (
            Value::Struct(base.clone().with("type", "component_manager")),
            -32602,
            "component_manager",
        ),
        (
            Value::Struct(base.clone().with("name", "a..b")),
            -32602,
            "record name",
        ),
        (
            Value::Struct(base.clone().with("gid", 42)),
            -32602,
            "gid must be a string",
        ),
        (
            Value::Struct(base.clone().with("geni_info", "researchers")),
            -32602,
            "geni_info",
        ),
        (
            Value::Struct(base.clone().with(
                "geni_info",
                Struct::new().with(
                    "researcher",
                    Value::Array(vec![s("planetlab.us.pl.nobody")]),
                ),
            )),
            -32602,
            "no user record",
        ),
        (
            Value::Struct(base.clone().with("gid", "not a certificate")),
            100,
            "",
        ),
        (
            Value::Struct(
                Struct::new()
                    .with("name", "planetlab.us.pl.m")
                    .with("type", "user"),
            ),
            -32602,
            "needs its gid",
        ),
        (
            Value::Struct(
                Struct::new()
                    .with("name", "planetlab.us.pl.m")
                    .with("type", "user")
                    .with("gid", gid.as_str()),
            ),
            -32602,
            "",
        ),
    ];
    for (dict, want, words) in cases {
        let (code, msg) = fault_code(
            alice
                .call("register", vec![s(&sa_cred), dict.clone()])
                .await,
        );
        assert_eq!(code, want, "{dict:?}: {msg}");
        assert!(msg.contains(words), "{dict:?}: {msg:?} lacks {words:?}");
    }
    // Nothing of it was stored, in the registry or in PLC.
    let (code, _) = fault_code(alice.call("get_gid", vec![s("planetlab.us.pl.m")]).await);
    assert_eq!(code, 105);
    let site = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl")])
        .await
        .unwrap();
    let pl_info = site.as_array().unwrap()[0]
        .as_struct()
        .unwrap()
        .get("pl_info")
        .unwrap()
        .as_struct()
        .unwrap()
        .clone();
    assert_eq!(pl_info.get("slice_ids"), Some(&Value::Array(vec![])));
    assert_eq!(
        pl_info.get("person_ids").unwrap().as_array().unwrap().len(),
        2,
        "only alice and bob"
    );
    plc.finish().await;
}

async fn stores_sql_metacharacters_verbatim(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    // Quotes and semicolons cannot be in an hrn: refused with a clear fault, nothing made.
    let quoted = "planetlab.us.pl.o'hara\");DROP_TABLE_registry_records;--";
    let (code, msg) = fault_code(
        alice
            .call(
                "create_gid",
                vec![s(&sa_cred), s(quoted), Value::Nil, pem(&plc.bob.key)],
            )
            .await,
    );
    assert_eq!(code, -32602, "{msg}");
    assert!(msg.contains("labels may hold only"), "{msg}");
    // A LIKE wildcard and a SQL comment can be, and the email may hold anything.
    let name = "planetlab.us.pl.o_hara--DROP_TABLE_registry_records--";
    let email = "o'hara\";DELETE_FROM_plc_persons;--@pl.example";
    let mallory = user(email, name);
    let gid = text(
        alice
            .call(
                "create_gid",
                vec![s(&sa_cred), s(name), Value::Nil, pem(&mallory.key)],
            )
            .await
            .unwrap(),
    );
    alice
        .call(
            "register",
            vec![
                s(&sa_cred),
                record(name, "user", &gid, Struct::new().with("email", email)),
            ],
        )
        .await
        .unwrap();
    let r = alice
        .call("resolve", vec![s(&sa_cred), s(name)])
        .await
        .unwrap();
    let r = r.as_array().unwrap()[0].as_struct().unwrap();
    assert_eq!(r.get("name"), Some(&s(name)));
    assert_eq!(r.get("gid"), Some(&s(&gid)));
    let info = r.get("geni_info").unwrap().as_struct().unwrap();
    assert_eq!(info.get("email"), Some(&s(email)));
    let pl_info = r.get("pl_info").unwrap().as_struct().unwrap();
    assert_eq!(pl_info.get("last_name"), Some(&s(name)));
    // Nothing was executed: every other record and PLC row is still there.
    let listed = alice.call("list", vec![s(&sa_cred)]).await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    plc.self_credential(&plc.bob).await;
    // Pattern characters are not patterns either: `_` is a name character, `%` and `*` none.
    let (code, msg) = fault_code(
        alice
            .call("get_gid", vec![s("planetlab.us.pl._lice")])
            .await,
    );
    assert_eq!(code, 105, "{msg}");
    for pattern in ["planetlab.us.pl.%", "planetlab.us.pl.*"] {
        let (code, msg) = fault_code(alice.call("get_gid", vec![s(pattern)]).await);
        assert_eq!(code, -32602, "{pattern}: {msg}");
    }
    // The user can log in with the odd name.
    let cred = plc.self_credential(&mallory).await;
    assert!(!cred.is_empty());
    plc.finish().await;
}

async fn unknown_records_are_not_found(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (user_cred, sa_cred) = alice_credentials(&plc, &alice).await;
    let missing = "planetlab.us.pl.nothing";
    let calls: Vec<(&str, Vec<Value>)> = vec![
        ("get_gid", vec![s(missing)]),
        ("resolve", vec![s(&sa_cred), s(missing)]),
        ("get_self_credential", vec![s("user"), s(missing)]),
        ("get_credential", vec![s(&sa_cred), s("slice"), s(missing)]),
        ("get_credential", vec![Value::Nil, s("user"), s(missing)]),
        ("remove", vec![s(&sa_cred), s("slice"), s(missing)]),
        (
            "update",
            vec![
                s(&sa_cred),
                Value::Struct(Struct::new().with("name", missing).with("type", "user")),
            ],
        ),
        (
            "get_ticket",
            vec![s(&sa_cred), s(missing), Value::Struct(Struct::new())],
        ),
    ];
    for (method, params) in calls {
        let (code, msg) = fault_code(alice.call(method, params).await);
        assert_eq!(code, 105, "{method}: {msg}");
        assert!(
            msg.contains(missing) && msg.contains("not found"),
            "{method}: {msg}"
        );
    }
    // The type matters: alice has a user record, not a slice record.
    let (code, msg) = fault_code(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("slice"), s(&plc.alice.hrn)],
            )
            .await,
    );
    assert_eq!(code, 105, "{msg}");
    assert!(msg.contains("slice record"), "{msg}");
    plc.finish().await;
}

async fn rejects_a_tls_key_that_is_not_the_callers(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let bob = plc.client(&plc.bob).await;
    // A self-credential only for the holder of the record's key.
    let (code, msg) = fault_code(
        bob.call("get_self_credential", vec![s("user"), s(&plc.alice.hrn)])
            .await,
    );
    assert_eq!(code, 102, "{msg}");
    // A credential presented by someone else.
    let alice_cred = plc.self_credential(&plc.alice).await;
    let (code, msg) = fault_code(
        bob.call("resolve", vec![s(&alice_cred), s(&plc.alice.hrn)])
            .await,
    );
    assert_eq!(code, 102, "{msg}");
    assert!(msg.contains("planetlab.us.pl.alice"), "{msg}");
    let (code, msg) = fault_code(bob.call("noop", vec![s(&alice_cred), s("x")]).await);
    assert_eq!(code, 102, "{msg}");
    plc.finish().await;
}

// === the command line (SQLite only: these test the tool, not the database) ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nuke_asks_first_and_init_is_idempotent() {
    let Some(mut plc) = Plc::new(Db::Sqlite).await else {
        return;
    };
    plc.stop();
    // Again: nothing changes, the root export stays.
    let out = plc.ok(&["init"]);
    assert!(out.contains("already exists"), "{out}");
    // A duplicate site is refused and changes nothing.
    let out = plc.admin(&["site", "add", "pl"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");

    let out = plc.admin_with_stdin(&["nuke"], "no\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was deleted"));
    let out = plc.admin_with_stdin(&["nuke"], "");
    assert!(!out.status.success(), "end of input is not a yes");
    plc.start();
    plc.gid_of(&plc.alice.hrn).await;
    plc.stop();

    let out = plc.admin_with_stdin(&["nuke"], "yes\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 8 registry records"));
    // PLC's data stays: the site can be registered again only as an authority record.
    let out = plc.admin(&["site", "add", "pl"]);
    assert!(!out.status.success(), "the PLC site pl is still there");
    let out = plc.admin(&["nuke", "--yes", "--plc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    plc.ok(&["site", "add", "pl"]);
    plc.finish().await;
}

/// Under systemd (`Type=notify`), the registry says what the node says: READY=1 once serving,
/// RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_reloading_and_stopping() {
    let Some(mut plc) = Plc::new(Db::Sqlite).await else {
        return;
    };
    plc.stop();
    let path = plc.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut server = Command::new(bin())
        .args(["plc", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(plc.path("agent.toml"))
        .arg("--state-dir")
        .arg(plc.state())
        .arg("--database")
        .arg(&plc.database)
        .env("NOTIFY_SOCKET", &path)
        .env("GENI_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let next = || {
        let mut buf = [0_u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let signal = |name: &str| {
        let pid = server.id().to_string();
        assert!(
            Command::new("kill")
                .args([name, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    assert_eq!(next(), "READY=1");
    signal("-HUP");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    signal("-TERM");
    assert_eq!(next(), "STOPPING=1");
    assert!(server.wait().unwrap().success());
}

#[test]
fn help_lists_the_subcommands_and_plcapi_needs_its_table() {
    let out = Command::new(bin())
        .args(["plc", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "serve",
        "init",
        "site",
        "person",
        "slice",
        "node",
        "initscript",
        "nuke",
        "import",
    ] {
        assert!(help.contains(word), "{word} missing from {help}");
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(bin())
        .args(["plc", "init", "--state-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&empty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("trusted_roots/planetlab.gid").is_file());
    assert!(dir.path().join("plc.db").is_file());
    let out = Command::new(bin())
        .args([
            "plc",
            "--backend",
            "plcapi",
            "site",
            "add",
            "pl",
            "--state-dir",
        ])
        .arg(dir.path())
        .arg("--config")
        .arg(&empty)
        .output()
        .unwrap();
    // Without PLCAPI settings the plcapi backend is refused, saying what is missing.
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a [plc.plcapi] table"), "{err}");
    // Unknown configuration keys are errors.
    std::fs::write(dir.path().join("bad.toml"), "[plc]\nlisten_on = \"x\"\n").unwrap();
    let out = Command::new(bin())
        .args(["plc", "init", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_on"));
}

// === registry hardening: names, PLC policy ===

/// Every file under `dir` with its bytes, sorted: what "nothing changed on disk" compares.
fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push((path.clone(), Vec::new()));
                todo.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// One column of the embedded PLC's table, sorted (through the registry's own database).
async fn plc_column(plc: &Plc, sql: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&plc.database).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut out: Vec<String> = rows.into_iter().map(|(v,)| v).collect();
    out.sort();
    out
}

/// A record with `pl_info`, as a resolved record sent back by `update`.
fn record_with(name: &str, kind: &str, pl_info: Struct) -> Value {
    Value::Struct(
        Struct::new()
            .with("name", name)
            .with("type", kind)
            .with("pointer", -1)
            .with("pl_info", pl_info),
    )
}

async fn names_that_would_escape_the_tree_change_nothing(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let (root, root_cred) = admin(&plc);
    let canary = plc.path("canary");
    std::fs::write(&canary, "canary").unwrap();
    let roots_dir = plc.state().join("trusted_roots");
    let authorities = plc.state().join("authorities");
    let (roots_before, tree_before) = (tree(&roots_dir), tree(&authorities));
    let records_before = plc_column(&plc, "SELECT hrn FROM registry_records").await;
    let absolute = format!("planetlab.us.pl.{}/planetlab", roots_dir.display());
    let over_canary = format!("planetlab.us.pl.{}", canary.display());
    let names = [
        absolute.as_str(),
        over_canary.as_str(),
        "planetlab.us.pl.x/y",
        "planetlab.us.pl.x/../../../../etc",
        "planetlab.us.pl...",
    ];
    // Neither the site's PI nor even the PLC admin can name a path.
    for (who, client, cred) in [("PI", &alice, &sa_cred), ("admin", &root, &root_cred)] {
        for name in names {
            for kind in ["sa", "ma", "slice", "user", "node"] {
                let (code, msg) = fault_code(
                    client
                        .call(
                            "register",
                            vec![s(cred), record(name, kind, "", Struct::new())],
                        )
                        .await,
                );
                assert_eq!(code, -32602, "{who} {kind} {name}: {msg}");
            }
            let (code, msg) = fault_code(
                client
                    .call(
                        "create_gid",
                        vec![s(cred), s(name), Value::Nil, pem(&plc.bob.key)],
                    )
                    .await,
            );
            assert_eq!(code, -32602, "{who} create_gid {name}: {msg}");
            assert!(msg.contains("invalid hrn"), "{msg}");
        }
    }
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary");
    assert_eq!(tree(&roots_dir), roots_before, "trusted_roots changed");
    assert_eq!(
        tree(&authorities),
        tree_before,
        "the authority tree changed"
    );
    assert_eq!(
        plc_column(&plc, "SELECT hrn FROM registry_records").await,
        records_before
    );
    plc.finish().await;
}

async fn admin_only_fields_need_the_plc_admin(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let bob = plc.client(&plc.bob).await;
    let bob_cred = plc.self_credential(&plc.bob).await;
    let sites = "SELECT login_base || ':' || CAST(enabled AS VARCHAR(8)) || ':' || \
                 CAST(max_slices AS VARCHAR(16)) FROM plc_sites";
    let persons = "SELECT email || ':' || CAST(enabled AS VARCHAR(8)) FROM plc_persons";
    let (sites_before, persons_before) = (
        plc_column(&plc, sites).await,
        plc_column(&plc, persons).await,
    );
    let site =
        |field: &str, v: Value| record_with("planetlab.us.pl", "sa", Struct::new().with(field, v));
    let person = |v: Value| {
        record_with(
            "planetlab.us.pl.bob",
            "user",
            Struct::new().with("enabled", v),
        )
    };
    // The site's PI on her own site and on her user; the user on himself.
    let attempts: Vec<(&str, &GeniClient, &str, Value)> = vec![
        (
            "PI max_slices",
            &alice,
            &sa_cred,
            site("max_slices", Value::Int(100_000)),
        ),
        (
            "PI max_slivers",
            &alice,
            &sa_cred,
            site("max_slivers", Value::Int(100_000)),
        ),
        (
            "PI site enabled",
            &alice,
            &sa_cred,
            site("enabled", Value::Bool(false)),
        ),
        (
            "PI person enabled",
            &alice,
            &sa_cred,
            person(Value::Bool(false)),
        ),
        ("user himself", &bob, &bob_cred, person(Value::Bool(false))),
    ];
    for (what, client, cred, rec) in attempts {
        let (code, msg) = fault_code(client.call("update", vec![s(cred), rec]).await);
        assert_eq!(code, 104, "{what}: {msg}");
        assert!(msg.contains("PLC admin only"), "{what}: {msg}");
    }
    assert_eq!(plc_column(&plc, sites).await, sites_before);
    assert_eq!(plc_column(&plc, persons).await, persons_before);
    // A resolved record sent back as is (its admin-only fields unchanged) is fine.
    let resolved = alice
        .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl")])
        .await
        .unwrap();
    let sa = resolved
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r.as_struct().unwrap().get("type") == Some(&s("sa")))
        .unwrap()
        .clone();
    alice.call("update", vec![s(&sa_cred), sa]).await.unwrap();
    assert_eq!(plc_column(&plc, sites).await, sites_before);
    // The PLC admin may.
    let (root, root_cred) = admin(&plc);
    root.call(
        "update",
        vec![s(&root_cred), site("max_slices", Value::Int(7))],
    )
    .await
    .unwrap();
    assert!(plc_column(&plc, sites).await.contains(&"pl:1:7".to_owned()));
    plc.finish().await;
}

async fn disabled_accounts_get_no_credential_ticket_or_record(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (user_cred, sa_cred) = alice_credentials(&plc, &alice).await;
    let slice_key = Keypair::generate(2048).unwrap();
    register_slice(
        &alice,
        &sa_cred,
        "planetlab.us.pl.s1",
        &slice_key,
        &[&plc.alice.hrn, &plc.bob.hrn],
    )
    .await;
    let slice_cred = text(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("slice"), s("planetlab.us.pl.s1")],
            )
            .await
            .unwrap(),
    );
    let bob = plc.client(&plc.bob).await;
    let bob_cred = plc.self_credential(&plc.bob).await;
    let bob_slice_cred = text(
        bob.call(
            "get_credential",
            vec![s(&bob_cred), s("slice"), s("planetlab.us.pl.s1")],
        )
        .await
        .unwrap(),
    );
    let records_before = plc_column(&plc, "SELECT hrn FROM registry_records").await;

    /// Every way to a credential, a ticket or a record, for one principal.
    async fn each_call(
        c: &GeniClient,
        hrn: &str,
        cred: &str,
        slice: Option<&str>,
    ) -> Vec<(String, i32, String)> {
        let mut calls: Vec<(&str, Vec<Value>)> = vec![
            ("get_self_credential", vec![s("user"), s(hrn)]),
            ("get_credential", vec![Value::Nil, s("user"), s(hrn)]),
            ("get_credential", vec![s(cred), s("user"), s(hrn)]),
            ("resolve", vec![s(cred), s(hrn)]),
            ("list", vec![s(cred), s("planetlab.us.pl")]),
        ];
        if let Some(slice) = slice {
            calls.push((
                "get_ticket",
                vec![s(slice), s("planetlab.us.pl.s1"), Value::Nil],
            ));
            calls.push((
                "get_credential",
                vec![s(cred), s("slice"), s("planetlab.us.pl.s1")],
            ));
        }
        let mut out = Vec::new();
        for (method, params) in calls {
            let (code, msg) = match c.call(method, params).await {
                Err(geni_rpc::RpcError::Fault(f)) => (f.code, f.string),
                other => (0, format!("{other:?}")),
            };
            out.push((method.to_owned(), code, msg));
        }
        out
    }
    fn all_refused(results: &[(String, i32, String)], why: &str) {
        for (method, code, msg) in results {
            assert_eq!(*code, 103, "{method}: {msg}");
            assert!(msg.contains(why), "{method}: {msg}");
        }
    }

    // A disabled person.
    plc.ok(&["person", "disable", "bob@pl.example"]);
    all_refused(
        &each_call(&bob, &plc.bob.hrn, &bob_cred, Some(&bob_slice_cred)).await,
        "person planetlab.us.pl.bob is disabled",
    );
    plc.ok(&["person", "enable", "bob@pl.example"]);
    assert!(
        bob.call("resolve", vec![s(&bob_cred), s(&plc.bob.hrn)])
            .await
            .is_ok()
    );

    // Every person of a disabled site, the PI included, with her slice.
    plc.ok(&["site", "disable", "pl"]);
    all_refused(
        &each_call(&alice, &plc.alice.hrn, &user_cred, Some(&slice_cred)).await,
        "site pl of planetlab.us.pl.alice is disabled",
    );
    all_refused(
        &each_call(&bob, &plc.bob.hrn, &bob_cred, None).await,
        "site pl",
    );
    // The site's authority credential itself is refused as well.
    let (code, msg) = fault_code(
        alice
            .call("resolve", vec![s(&sa_cred), s("planetlab.us.pl")])
            .await,
    );
    assert_eq!(code, 103, "{msg}");
    assert_eq!(
        plc_column(&plc, "SELECT hrn FROM registry_records").await,
        records_before
    );
    plc.ok(&["site", "enable", "pl"]);
    alice
        .call(
            "get_ticket",
            vec![s(&slice_cred), s("planetlab.us.pl.s1"), Value::Nil],
        )
        .await
        .unwrap();
    // An unknown person is an error that says so.
    let out = plc.admin(&["person", "disable", "nobody@pl.example"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no person nobody@pl.example"));
    plc.finish().await;
}

async fn creating_claiming_and_deleting_sites_need_the_plc_admin(db: Db) {
    let Some(plc) = Plc::new(db).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let (_, sa_cred) = alice_credentials(&plc, &alice).await;
    let sites = "SELECT login_base FROM plc_sites";
    let sites_before = plc_column(&plc, sites).await;
    let authorities = plc.state().join("authorities");
    let tree_before = tree(&authorities);
    // A new sub-authority (a new PLC site), as sa or ma: the admin's.
    for kind in ["sa", "ma"] {
        let (code, msg) = fault_code(
            alice
                .call(
                    "register",
                    vec![
                        s(&sa_cred),
                        record("planetlab.us.pl.lab", kind, "", Struct::new()),
                    ],
                )
                .await,
        );
        assert_eq!(code, 104, "{kind}: {msg}");
        assert!(msg.contains("PLC admin only"), "{msg}");
    }
    // Claiming an existing PLC site under a new authority name (login base "other").
    let (root, root_cred) = admin(&plc);
    let (code, msg) = fault_code(
        alice
            .call(
                "register",
                vec![
                    s(&sa_cred),
                    record("planetlab.us.pl.other", "sa", "", Struct::new()),
                ],
            )
            .await,
    );
    assert_eq!(code, 104, "{msg}");
    assert_eq!(plc_column(&plc, sites).await, sites_before);
    assert_eq!(tree(&authorities), tree_before);
    // The admin makes it; its PI may not delete the PLC site; the admin may.
    root.call(
        "register",
        vec![
            s(&root_cred),
            record("planetlab.us.pl.lab", "sa", "", Struct::new()),
        ],
    )
    .await
    .unwrap();
    let with_lab = plc_column(&plc, sites).await;
    assert!(with_lab.contains(&"lab".to_owned()), "{with_lab:?}");
    let (code, msg) = fault_code(
        alice
            .call(
                "remove",
                vec![s(&sa_cred), s("sa"), s("planetlab.us.pl.lab")],
            )
            .await,
    );
    assert_eq!(code, 104, "{msg}");
    assert!(msg.contains("deleting the site"), "{msg}");
    assert_eq!(plc_column(&plc, sites).await, with_lab);
    root.call(
        "remove",
        vec![s(&root_cred), s("sa"), s("planetlab.us.pl.lab")],
    )
    .await
    .unwrap();
    assert_eq!(plc_column(&plc, sites).await, sites_before);
    plc.finish().await;
}
