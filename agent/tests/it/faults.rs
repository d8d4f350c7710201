//! Fault hygiene with the real binaries: when the server's own side fails (its database, its PLC
//! backend, the node's files), the peer gets the generic internal-error fault, never the
//! driver's text or a path on the server; the cause is for the server's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::path::Path;

use geni_xmlrpc::Value;
use support::plc::{Db, Plc};
use support::{SCRIPT, World, fault_code};

/// The internal-error fault, with nothing of the server's internals in its text.
fn assert_internal_and_clean(code: i32, msg: &str, server_dir: &Path) {
    assert_eq!(code, -32603, "{msg}");
    assert!(!msg.contains("database:"), "driver text in {msg:?}");
    assert!(
        !msg.contains(server_dir.to_str().unwrap()),
        "server path in {msg:?}"
    );
    let absolute = msg
        .split(|c: char| c.is_whitespace() || "(\"'`:=".contains(c))
        .any(|word| word.starts_with('/'));
    assert!(!absolute, "absolute path in {msg:?}");
}

/// Runs `sql` on the registry's SQLite file behind the running server's back.
async fn sql(plc: &Plc, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&plc.database).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plc_database_failures_reach_the_peer_without_driver_text_or_paths() {
    let Some(plc) = Plc::new(Db::Sqlite).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let cred = plc.self_credential(&plc.alice).await;
    let resolve = || {
        alice.call(
            "resolve",
            vec![
                Value::from(cred.as_str()),
                Value::from(plc.alice.hrn.as_str()),
            ],
        )
    };
    resolve().await.unwrap();

    // The embedded PLC's table goes: resolve reads the record's pl_info from it.
    sql(&plc, "ALTER TABLE plc_persons RENAME TO plc_persons_gone").await;
    let (code, msg) = fault_code(resolve().await);
    assert_internal_and_clean(code, &msg, plc.dir.path());

    // The registry's own table goes: every record lookup fails.
    sql(&plc, "ALTER TABLE registry_records RENAME TO records_gone").await;
    let (code, msg) = fault_code(
        alice
            .call(
                "get_self_credential",
                vec![Value::from("user"), Value::from(plc.alice.hrn.as_str())],
            )
            .await,
    );
    assert_internal_and_clean(code, &msg, plc.dir.path());
    plc.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_backend_failures_reach_the_peer_without_paths() {
    let w = World::new();
    let alice = w.client(&w.alice);
    // Something that is not the sliver's directory sits where it goes.
    std::fs::create_dir_all(w.sliver_dir("pl_s1").parent().unwrap()).unwrap();
    std::fs::write(w.sliver_dir("pl_s1"), "in the way").unwrap();
    let ticket = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 100.0);
    let (code, msg) = fault_code(
        alice
            .call("redeem_ticket", vec![Value::from(ticket.as_str())])
            .await,
    );
    assert_internal_and_clean(code, &msg, w.dir.path());
}

/// A remove that fails half-way changes nothing: the record is deleted before its PLC object
/// and put back when PLC refuses; when the store refuses, PLC was not touched. The peer gets
/// the clean fault either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_plc_refuses_leaves_the_record_and_the_plc_object() {
    let Some(plc) = Plc::new(Db::Sqlite).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let user_cred = plc.self_credential(&plc.alice).await;
    let sa_cred = alice
        .call(
            "get_credential",
            vec![
                Value::from(user_cred.as_str()),
                Value::from("sa"),
                Value::from("planetlab.us.pl"),
            ],
        )
        .await
        .unwrap();
    let sa_cred = sa_cred.as_str().unwrap();
    let resolve_bob = || {
        alice.call(
            "resolve",
            vec![Value::from(sa_cred), Value::from(plc.bob.hrn.as_str())],
        )
    };
    let remove_bob = || {
        alice.call(
            "remove",
            vec![
                Value::from(sa_cred),
                Value::from("user"),
                Value::from(plc.bob.hrn.as_str()),
            ],
        )
    };
    let before = resolve_bob().await.unwrap();
    // PLC refusing (after the record went): the record is put back. The store refusing (before
    // anything else): the PLC person must not have gone first.
    for (table, trigger) in [
        ("plc_persons", "keep_persons"),
        ("registry_records", "keep_records"),
    ] {
        sql(
            &plc,
            &format!(
                "CREATE TRIGGER {trigger} BEFORE DELETE ON {table} \
                 BEGIN SELECT RAISE(FAIL, 'refused by a test trigger'); END"
            ),
        )
        .await;
        let (code, msg) = fault_code(remove_bob().await);
        assert_internal_and_clean(code, &msg, plc.dir.path());
        assert_eq!(resolve_bob().await.unwrap(), before, "{table} refusing");
        sql(&plc, &format!("DROP TRIGGER {trigger}")).await;
    }
    remove_bob().await.unwrap();
    plc.finish().await;
}

/// An update that fails at its last write (the GID, in the store) puts back what it had changed
/// at PLC: the slice's max_nodes and its researchers are as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_fails_half_way_puts_plc_back() {
    let Some(plc) = Plc::new(Db::Sqlite).await else {
        return;
    };
    let alice = plc.client(&plc.alice).await;
    let user_cred = plc.self_credential(&plc.alice).await;
    let call = |method: &'static str, params: Vec<Value>| alice.call(method, params);
    let sa_cred = call(
        "get_credential",
        vec![
            Value::from(user_cred.as_str()),
            Value::from("sa"),
            Value::from("planetlab.us.pl"),
        ],
    )
    .await
    .unwrap();
    let sa_cred = sa_cred.as_str().unwrap().to_owned();
    let slice = "planetlab.us.pl.undo";
    let gid_for = |key: geni_trust::Keypair| {
        let pem = String::from_utf8(key.public_key().to_pem().unwrap()).unwrap();
        call(
            "create_gid",
            vec![
                Value::from(sa_cred.as_str()),
                Value::from(slice),
                Value::Nil,
                Value::from(pem),
            ],
        )
    };
    let gid = gid_for(geni_trust::Keypair::generate(2048).unwrap())
        .await
        .unwrap();
    let researchers = |hrns: &[&str]| {
        geni_xmlrpc::Struct::new().with(
            "researcher",
            Value::Array(hrns.iter().map(|h| Value::from(*h)).collect()),
        )
    };
    let record = |gid: &Value, pl_info: geni_xmlrpc::Struct, geni_info| {
        Value::Struct(
            geni_xmlrpc::Struct::new()
                .with("name", slice)
                .with("type", "slice")
                .with("gid", gid.clone())
                .with("pointer", -1)
                .with("pl_info", pl_info)
                .with("geni_info", geni_info),
        )
    };
    call(
        "register",
        vec![
            Value::from(sa_cred.as_str()),
            record(
                &gid,
                geni_xmlrpc::Struct::new(),
                researchers(&[&plc.alice.hrn]),
            ),
        ],
    )
    .await
    .unwrap();
    let resolve = || {
        call(
            "resolve",
            vec![Value::from(sa_cred.as_str()), Value::from(slice)],
        )
    };
    let before = resolve().await.unwrap();

    sql(
        &plc,
        "CREATE TRIGGER keep_gids BEFORE UPDATE ON registry_records \
         BEGIN SELECT RAISE(FAIL, 'refused by a test trigger'); END",
    )
    .await;
    let new_gid = gid_for(geni_trust::Keypair::generate(2048).unwrap())
        .await
        .unwrap();
    let (code, msg) = fault_code(
        call(
            "update",
            vec![
                Value::from(sa_cred.as_str()),
                record(
                    &new_gid,
                    geni_xmlrpc::Struct::new().with("max_nodes", 20),
                    researchers(&[&plc.alice.hrn, &plc.bob.hrn]),
                ),
            ],
        )
        .await,
    );
    assert_internal_and_clean(code, &msg, plc.dir.path());
    assert_eq!(resolve().await.unwrap(), before, "PLC or the store changed");
    // With the store writable again, the same update goes through.
    sql(&plc, "DROP TRIGGER keep_gids").await;
    call(
        "update",
        vec![
            Value::from(sa_cred.as_str()),
            record(
                &new_gid,
                geni_xmlrpc::Struct::new().with("max_nodes", 20),
                researchers(&[&plc.alice.hrn, &plc.bob.hrn]),
            ),
        ],
    )
    .await
    .unwrap();
    assert_ne!(resolve().await.unwrap(), before);
    plc.finish().await;
}
