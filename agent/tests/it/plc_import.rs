//! `geni-agent plc import` end to end: the real binary against the PLCAPI double over HTTPS
//! (`backend = "plcapi"`), into a SQLite file and a PostgreSQL database (skipped, saying so, when
//! `GENI_TEST_POSTGRES_URL` is unset); run twice to show the second run changes nothing; then
//! `plc serve` over the same PLCAPI, where an imported user with a real key gets a
//! self-credential and resolves their record, `pl_info` read from PLCAPI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use geni_rpc::TlsIdentity;
use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_trust::{ChainForm, Gid, Keypair};
use geni_xmlrpc::{Struct, Value};
use plcapi_double::{ADMIN_EMAIL, ADMIN_PASSWORD, Plc, PlcDouble, Scale};
use support::bin;
use support::plc::{Db, admin_sql, database};

/// The PLCAPI password comes from the environment, as an operator keeps it out of agent.toml.
const PASSWORD_ENV: &str = "GENI_AGENT_PLC__PLCAPI__PASSWORD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_twice_then_serve_on_sqlite() {
    import_twice_then_serve(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_twice_then_serve_on_postgres() {
    import_twice_then_serve(Db::Postgres).await;
}

/// `geni-agent plc <args>` with `dir`'s configuration and state, on `db_url`.
async fn plc(dir: &Path, db_url: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.arg("plc")
        .args(args)
        .arg("--config")
        .arg(dir.join("agent.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--database")
        .arg(db_url)
        .env("GENI_LOG", "warn")
        .env(PASSWORD_ENV, ADMIN_PASSWORD)
        .stdin(Stdio::null());
    cmd.output().await.unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The value of the report line starting with `label`.
fn line<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in\n{report}"))
        .trim()
}

async fn import_twice_then_serve(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db_url, pg)) = database(db, dir.path()).await else {
        return;
    };

    // A PLC with one more person than the generated ones: Ada, at site `pl`, whose SSH key is a
    // real RSA key she holds, and a member of a slice.
    let ada_key = Keypair::generate(2048).unwrap();
    let mut generated = Plc::generate(Scale::SMALL);
    let ada = generated
        .add_person(
            &Struct::new()
                .with("first_name", "Ada")
                .with("last_name", "Lovelace")
                .with("email", "ada@pl.example.edu")
                .with("enabled", true),
        )
        .unwrap();
    generated.add_person_to_site(ada, 1).unwrap();
    generated.add_role_to_person("user", ada).unwrap();
    let line_text = ada_key.public_key().to_openssh("ada@pl").unwrap();
    generated
        .add_person_key(
            ada,
            &Struct::new().with("key_type", "ssh").with("key", line_text),
        )
        .unwrap();
    let double = PlcDouble::start(generated).await.unwrap();
    double.write_ca(&dir.path().join("plc-ca.pem")).unwrap();
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "[plc]\nauthority = \"planetlab.us\"\nbackend = \"plcapi\"\n\
             [plc.plcapi]\nurl = \"{}\"\nusername = \"{ADMIN_EMAIL}\"\n\
             ca_file = \"{}\"\nids_per_call = 10\nmulticall_batch = 4\n\
             [plc.plcapi.retry]\nmax_attempts = 2\ninitial_backoff_ms = 50\n",
            double.url(),
            dir.path().join("plc-ca.pem").display()
        ),
    )
    .unwrap();

    // First run: everything, on a fresh state directory (no `plc init` needed).
    let out = plc(dir.path(), &db_url, &["import"]).await;
    let first = ok(&out);
    assert_eq!(
        line(&first, "PLC:"),
        "5 sites, 41 persons, 20 slices, 10 nodes"
    );
    assert_eq!(line(&first, "authorities created:"), "7");
    let created = line(&first, "records created:");
    assert!(
        created.ends_with("(6 sa, 6 ma, 41 user, 20 slice, 10 node)"),
        "{first}"
    );
    assert_eq!(line(&first, "skipped:"), "0");
    let root = dir.path().join("state/trusted_roots/planetlab.gid");
    assert_eq!(
        line(&first, "root GID written to"),
        root.display().to_string()
    );
    // stderr is a pipe here, not a terminal: no progress line.
    assert!(
        !out.stderr.contains(&b'\r'),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Second run: nothing to do, and it says so.
    let second = ok(&plc(dir.path(), &db_url, &["import"]).await);
    assert_eq!(line(&second, "authorities created:"), "0");
    assert_eq!(
        line(&second, "records created:"),
        "0 (0 sa, 0 ma, 0 user, 0 slice, 0 node)"
    );
    assert_eq!(
        line(&second, "records already present:"),
        "6 sa, 6 ma, 41 user, 20 slice, 10 node"
    );
    assert_eq!(
        line(&second, "root GID already in"),
        root.display().to_string()
    );

    // The registry serves what was imported, over the same PLCAPI.
    let mut server = serve(dir.path(), &db_url);
    let addr = listening(&mut server);
    let registry_gid =
        Gid::load(&dir.path().join("state/authorities/planetlab/us/us.gid")).unwrap();
    // get_gid takes no credential; any TLS identity will do, here the registry's own.
    let registry_key =
        Keypair::load(&dir.path().join("state/authorities/planetlab/us/us.pkey")).unwrap();
    let anyone = client(&addr, &registry_gid, &registry_key, &registry_gid);
    let hrn = "planetlab.us.pl.Lovelace_Ada";
    let gids = anyone
        .call("get_gid", vec![Value::from(hrn)])
        .await
        .unwrap();
    let gid = Gid::parse(gids.as_array().unwrap()[0].as_str().unwrap()).unwrap();
    assert_eq!(gid.public_key(), &ada_key.public_key());
    let c = client(&addr, &registry_gid, &ada_key, &gid);
    let cred = c
        .call(
            "get_self_credential",
            vec![Value::from("user"), Value::from(hrn)],
        )
        .await
        .unwrap();
    let records = c
        .call("resolve", vec![cred, Value::from(hrn)])
        .await
        .unwrap();
    let record = records.as_array().unwrap()[0].as_struct().unwrap();
    assert_eq!(record.get("pointer"), Some(&Value::Int(ada)));
    let pl_info = record.get("pl_info").unwrap().as_struct().unwrap();
    assert_eq!(
        pl_info.get("email").and_then(Value::as_str),
        Some("ada@pl.example.edu")
    );
    let _ = server.kill();
    let _ = server.wait();
    if let Some((base, name)) = pg {
        admin_sql(&base, &format!("DROP DATABASE IF EXISTS {name}")).await;
    }
}

fn serve(dir: &Path, db_url: &str) -> Child {
    Command::new(bin())
        .args(["plc", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("agent.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--database")
        .arg(db_url)
        .env("GENI_LOG", "warn")
        .env(PASSWORD_ENV, ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn listening(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("plc serve said {line:?}"))
        .to_owned()
}

fn client(addr: &str, registry: &Gid, key: &Keypair, gid: &Gid) -> GeniClient {
    let identity = TlsIdentity::from_pem(
        &key.to_pem().unwrap(),
        &gid.to_chain_string(ChainForm::Separator).unwrap(),
    )
    .unwrap();
    GeniClient::new(
        &format!("https://{addr}/"),
        identity,
        server_auth_from_gid(registry),
        Duration::from_secs(30),
    )
    .unwrap()
}
