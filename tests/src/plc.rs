//! A PLC world for end-to-end tests: a state directory made by `geni-agent plc init` and the
//! admin commands (two sites, a PI and a user, an initscript), on a fresh SQLite file or a fresh
//! PostgreSQL database, and a running `geni-agent plc serve` on loopback.
//!
//! PostgreSQL runs need `GENI_TEST_POSTGRES_URL` (a server where the user may create databases;
//! `.ci/run` starts one); without it [`Plc::new`] prints why and returns `None`, and the test
//! passes having checked nothing on PostgreSQL, which its output says.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use geni_rpc::TlsIdentity;
use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_trust::{ChainForm, Gid, Keypair};
use geni_xmlrpc::Value;

use super::bin;

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// A user: the key they present over TLS, their e-mail, hrn and SSH key line.
#[derive(Debug)]
pub struct User {
    pub key: Keypair,
    pub email: String,
    pub hrn: String,
    pub ssh: String,
}

/// A state directory with a registry, and the registry serving it.
#[derive(Debug)]
pub struct Plc {
    pub dir: tempfile::TempDir,
    pub database: String,
    /// The PostgreSQL database to drop at the end, with the server's base URL.
    pg: Option<(String, String)>,
    pub server: Option<Child>,
    pub addr: String,
    /// The interface authority's GID: the registry's TLS identity, pinned by clients.
    pub registry_gid: Gid,
    /// A PI of site `pl`.
    pub alice: User,
    /// A plain user of site `pl`.
    pub bob: User,
}

pub const SCRIPT: &str = "#!/bin/sh\necho started >> started.txt\nexec sleep 1000\n";

/// A fresh database for one test: a SQLite file under `dir`, or a new PostgreSQL database.
pub async fn database(db: Db, dir: &Path) -> Option<(String, Option<(String, String)>)> {
    match db {
        Db::Sqlite => Some((
            format!("sqlite://{}?mode=rwc", dir.join("plc.db").display()),
            None,
        )),
        Db::Postgres => {
            let Ok(base) = std::env::var("GENI_TEST_POSTGRES_URL") else {
                eprintln!(
                    "SKIPPED on PostgreSQL: GENI_TEST_POSTGRES_URL is not set (.ci/run starts a \
                     server and sets it)"
                );
                return None;
            };
            let mut id = [0u8; 8];
            openssl::rand::rand_bytes(&mut id).unwrap();
            let name = format!(
                "geni_test_{}",
                id.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            admin_sql(&base, &format!("CREATE DATABASE {name}")).await;
            let url = match base.rsplit_once('/') {
                Some((server, _)) => format!("{server}/{name}"),
                None => panic!("GENI_TEST_POSTGRES_URL {base} has no database path"),
            };
            Some((url, Some((base, name))))
        }
    }
}

/// Runs one statement on the PostgreSQL server's base database (create or drop a test
/// database; the name is made here from random hex, never from input).
pub async fn admin_sql(base: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(base)
        .await
        .unwrap_or_else(|e| panic!("connecting to GENI_TEST_POSTGRES_URL: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

impl Plc {
    /// Sets up the world on `db` and starts the registry; `None` when `db` is unavailable.
    pub async fn new(db: Db) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let (database, pg) = database(db, dir.path()).await?;
        std::fs::write(
            dir.path().join("agent.toml"),
            "[plc]\nauthority = \"planetlab.us\"\n",
        )
        .unwrap();
        let dir_path = dir.path().to_owned();
        let out = admin_in(&dir_path, &database, &["init"], "");
        assert!(
            out.status.success(),
            "plc init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let registry_gid =
            Gid::load(&dir_path.join("state/authorities/planetlab/us/us.gid")).unwrap();
        let mut plc = Self {
            dir,
            database,
            pg,
            server: None,
            addr: String::new(),
            registry_gid,
            alice: user("alice@pl.example", "planetlab.us.pl.alice"),
            bob: user("bob@pl.example", "planetlab.us.pl.bob"),
        };
        plc.ok(&["site", "add", "pl", "--name", "Princeton"]);
        plc.ok(&["site", "add", "other"]);
        for (u, role) in [(&plc.alice, "pi"), (&plc.bob, "user")] {
            let pubkey = plc.path(&format!("{}.pub", u.email));
            std::fs::write(&pubkey, u.key.public_key().to_pem().unwrap()).unwrap();
            let ssh = plc.path(&format!("{}.ssh", u.email));
            std::fs::write(&ssh, format!("{}\n", u.ssh)).unwrap();
            plc.ok(&[
                "person",
                "add",
                &u.email,
                "--site",
                "pl",
                "--hrn",
                &u.hrn,
                "--pubkey",
                pubkey.to_str().unwrap(),
                "--key",
                ssh.to_str().unwrap(),
                "--role",
                role,
            ]);
        }
        plc.ok(&["initscript", "add", "hello", "--script", SCRIPT]);
        plc.start();
        Some(plc)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// `geni-agent plc <args>` on this world's state and database.
    pub fn admin(&self, args: &[&str]) -> Output {
        self.admin_with_stdin(args, "")
    }

    pub fn admin_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        admin_in(self.dir.path(), &self.database, args, stdin)
    }

    /// An admin command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "plc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn start(&mut self) {
        let mut child = Command::new(bin())
            .args(["plc", "serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(self.path("agent.toml"))
            .arg("--state-dir")
            .arg(self.state())
            .arg("--database")
            .arg(&self.database)
            // GENI_TEST_PLC_LOG=info shows each call with its server-side time.
            .env(
                "GENI_LOG",
                std::env::var("GENI_TEST_PLC_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("plc serve said {line:?}"))
            .to_owned();
        self.server = Some(child);
    }

    /// A client presenting `key` with a self-signed certificate (the TLS layer accepts any; the
    /// registry compares keys).
    pub fn client_with(&self, key: &Keypair, gid: &Gid) -> GeniClient {
        let identity = TlsIdentity::from_pem(
            &key.to_pem().unwrap(),
            &gid.to_chain_string(ChainForm::Separator).unwrap(),
        )
        .unwrap();
        GeniClient::new(
            &format!("https://{}/", self.addr),
            identity,
            server_auth_from_gid(&self.registry_gid),
            Duration::from_secs(30),
        )
        .unwrap()
    }

    /// A client for `user`, with the GID the registry holds for them.
    pub async fn client(&self, user: &User) -> GeniClient {
        let gid = self.gid_of(&user.hrn).await;
        self.client_with(&user.key, &gid)
    }

    /// The GID the registry holds for `hrn` (its first record), through `get_gid`.
    pub async fn gid_of(&self, hrn: &str) -> Gid {
        // get_gid needs no credential, but the TLS layer needs some key and certificate.
        let key = Keypair::load(&self.state().join("authorities/planetlab/us/us.pkey")).unwrap();
        let anyone = self.client_with(&key, &self.registry_gid);
        let v = anyone
            .call("get_gid", vec![Value::from(hrn)])
            .await
            .unwrap();
        Gid::parse(v.as_array().unwrap()[0].as_str().unwrap()).unwrap()
    }

    /// `user`'s self-credential.
    pub async fn self_credential(&self, user: &User) -> String {
        let c = self.client(user).await;
        c.call(
            "get_self_credential",
            vec![Value::from("user"), Value::from(user.hrn.as_str())],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// Kills the registry and drops a PostgreSQL test database.
    pub async fn finish(mut self) {
        self.stop();
        if let Some((base, name)) = self.pg.take() {
            admin_sql(&base, &format!("DROP DATABASE IF EXISTS {name}")).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Plc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `geni-agent plc <args>` with the state directory `<dir>/state` and `database`.
fn admin_in(dir: &Path, database: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .arg("plc")
        .args(args)
        .arg("--config")
        .arg(dir.join("agent.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--database")
        .arg(database)
        .env("GENI_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn user(email: &str, hrn: &str) -> User {
    let key = Keypair::generate(2048).unwrap();
    let leaf = hrn.rsplit('.').next().unwrap();
    User {
        key,
        email: email.to_owned(),
        hrn: hrn.to_owned(),
        ssh: format!("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ{leaf} {email}"),
    }
}
