//! `genicli` against a real `geni-agent plc` (embedded PLC, SQLite) and a real `geni-agent node`
//! on loopback, both set up with the operator commands (`plc init`, `plc site/person/node add`,
//! `authority gid/credential` from the plc's own authority tree): every registry command through
//! the binary, the permission checks 2008 lacked as faults with advice, and the whole canonical
//! flow of reference §4.5 (testComponent.sh) through the library, the way `geni-agent demo` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use geni_agent::cli::flow::Flow;
use serde_json::Value as Json;

const GENI_AGENT: &str = env!("CARGO_BIN_EXE_geni-agent");
const GENICLI: &str = env!("CARGO_BIN_EXE_genicli");
const SCRIPT: &str = "#!/bin/sh\necho hello from the slice > hello.txt\nexec sleep 1000\n";

/// A registry with site `pl`, users alice (PI) and bob (user), node1, and both servers running.
struct Federation {
    dir: tempfile::TempDir,
    plc: Option<Child>,
    node: Option<Child>,
    plc_url: String,
    node_url: String,
}

fn run(program: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("GENI_LOG", "warn")
        .output()
        .unwrap()
}

/// Starts a server and waits for its `listening on ADDR` line.
fn serve(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .env("GENI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("server said {line:?}"))
        .to_owned();
    (child, format!("https://{addr}/"))
}

impl Federation {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Self {
            dir,
            plc: None,
            node: None,
            plc_url: String::new(),
            node_url: String::new(),
        };
        fs::create_dir_all(f.user()).unwrap();
        fs::create_dir_all(f.path("node")).unwrap();
        f.plc_admin(&["init"]);
        f.plc_admin(&["site", "add", "pl"]);
        for (who, roles) in [("alice", &["pi", "user"][..]), ("bob", &["user"][..])] {
            f.genicli_ok(&["createKey", &format!("{who}.pkey")]);
            let pubkey = f.user().join(format!("{who}.pkey"));
            let mut args = vec![
                "person".to_owned(),
                "add".to_owned(),
                format!("{who}@pl.example"),
                "--site".to_owned(),
                "pl".to_owned(),
                "--hrn".to_owned(),
                format!("planetlab.us.pl.{who}"),
                "--pubkey".to_owned(),
                pubkey.display().to_string(),
            ];
            for r in roles {
                args.extend(["--role".to_owned(), (*r).to_owned()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            f.plc_admin(&args);
        }
        f.plc_admin(&["initscript", "add", "hello", "--script", SCRIPT]);

        // The node: key, GID and self-credential from the registry's own authority tree.
        let authorities = f.path("plc/authorities").display().to_string();
        let node_dir = f.path("node");
        let node = |name: &str| node_dir.join(name).display().to_string();
        f.geni_agent_ok(&["authority", "key", "--out", &node("node.pkey")]);
        f.geni_agent_ok(&[
            "authority",
            "gid",
            "planetlab.us.pl.node1",
            "--dir",
            &authorities,
            "--pubkey",
            &node("node.pkey.pub"),
            "--out",
            &node("node.gid"),
        ]);
        f.geni_agent_ok(&[
            "authority",
            "credential",
            "--dir",
            &authorities,
            "--caller",
            &node("node.gid"),
            "--object",
            &node("node.gid"),
            "--rights",
            "control,info",
            "--delegate",
            "--out",
            &node("node.cred"),
        ]);
        f.plc_admin(&[
            "node",
            "add",
            "node1.pl.example",
            "--site",
            "pl",
            "--hrn",
            "planetlab.us.pl.node1",
            "--pubkey",
            &node("node.pkey.pub"),
        ]);
        fs::write(
            f.path("node/agent.toml"),
            "[node.local]\nstop_grace_secs = 1\ndanger_shared_uid = true\n",
        )
        .unwrap();

        // The user trusts the federation's root.
        fs::create_dir(f.user().join("trusted_roots")).unwrap();
        fs::copy(
            f.path("plc/trusted_roots/planetlab.gid"),
            f.user().join("trusted_roots/planetlab.gid"),
        )
        .unwrap();

        let mut plc = Command::new(GENI_AGENT);
        plc.args(["plc", "--state-dir"]).arg(f.path("plc")).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
        ]);
        let (child, url) = serve(plc);
        f.plc = Some(child);
        f.plc_url = url;

        let mut n = Command::new(GENI_AGENT);
        n.args(["node", "--listen", "127.0.0.1:0", "--config"])
            .arg(f.path("node/agent.toml"))
            .arg("--trusted-roots")
            .arg(f.path("plc/trusted_roots"))
            .arg("--state-dir")
            .arg(f.path("node/state"))
            .args(["--key", &node("node.pkey")])
            .args(["--gid", &node("node.gid")])
            .args(["--credential", &node("node.cred")]);
        let (child, url) = serve(n);
        f.node = Some(child);
        f.node_url = url;
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The researchers' working directory.
    fn user(&self) -> PathBuf {
        self.path("user")
    }

    fn plc_admin(&self, args: &[&str]) -> String {
        let state = self.path("plc").display().to_string();
        let mut all = vec!["plc", "--state-dir", &state];
        all.extend(args);
        self.geni_agent_ok(&all)
    }

    fn geni_agent_ok(&self, args: &[&str]) -> String {
        let out = run(GENI_AGENT, self.dir.path(), args);
        assert!(
            out.status.success(),
            "geni-agent {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// genicli in the users' directory.
    fn genicli(&self, args: &[&str]) -> Output {
        run(GENICLI, &self.user(), args)
    }

    fn genicli_ok(&self, args: &[&str]) -> String {
        let out = self.genicli(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "genicli {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// genicli as `who` against the plc.
    fn as_user(&self, who: &str, args: &[&str]) -> Output {
        let user = format!("planetlab.us.pl.{who}");
        let mut all = vec!["--server", &self.plc_url, "--username", &user];
        all.extend(args);
        self.genicli(&all)
    }

    fn ok(&self, who: &str, args: &[&str]) -> String {
        let out = self.as_user(who, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "genicli {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, who: &str, args: &[&str], code: i32) -> String {
        let out = self.as_user(who, args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "genicli {args:?}\nstdout: {}\nstderr: {err}",
            String::from_utf8_lossy(&out.stdout)
        );
        err
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        for child in [self.plc.take(), self.node.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn registry_commands_against_a_real_plc() {
    let f = Federation::new();
    // A self-credential: no credential file yet, only the key.
    let out = f.ok(
        "alice",
        &[
            "--credfile",
            "None",
            "--outfile",
            "alice.cred",
            "getCredential",
            "user",
            "planetlab.us.pl.alice",
        ],
    );
    assert!(
        out.starts_with(
            "RESULT:\nCREDENTIAL planetlab.us.pl.alice\n      privs: refresh,resolve,info\n"
        ),
        "{out}"
    );
    assert!(f.user().join("alice.cred").is_file());
    // Without --credfile None and without alice.cred, getCredential asks for a self-credential too.
    let out = f.ok("bob", &["getCredential", "user", "planetlab.us.pl.bob"]);
    assert!(out.contains("CREDENTIAL planetlab.us.pl.bob\n"), "{out}");

    // resolve: the 2008 RECORD layout with the PLC person behind it.
    let out = f.ok("alice", &["resolve", "planetlab.us.pl.alice"]);
    assert!(
        out.starts_with(
            "RESULT:\nRECORD planetlab.us.pl.alice\n        hrn: planetlab.us.pl.alice\n       type: user\n        gid:\n          hrn: planetlab.us.pl.alice\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("  geni_info:\n        email : alice@pl.example\n"),
        "{out}"
    );
    assert!(out.contains("        roles : ['pi', 'user']\n"), "{out}");

    // The sa credential, then a GID for a new slice key, registered with a researcher.
    let out = f.ok(
        "alice",
        &[
            "--outfile",
            "pl_sa.cred",
            "getCredential",
            "sa",
            "planetlab.us.pl",
        ],
    );
    assert!(out.contains("      privs: authority\n"), "{out}");
    // Over its own authority, the sa credential sees both of its records.
    let out = f.ok(
        "alice",
        &["--credfile", "pl_sa.cred", "resolve", "planetlab.us.pl"],
    );
    assert_eq!(
        out.matches("RESULT:\nRECORD planetlab.us.pl\n").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("       type: sa\n") && out.contains("       type: ma\n"),
        "{out}"
    );
    f.genicli_ok(&["createKey", "s1.pkey"]);
    let out = f.ok(
        "alice",
        &[
            "--credfile",
            "pl_sa.cred",
            "--outfile",
            "s1.gid",
            "createGid",
            "planetlab.us.pl.s1",
            "None",
            "s1.pkey",
        ],
    );
    assert!(
        out.starts_with("RESULT:\n  hrn: planetlab.us.pl.s1\n uuid: "),
        "{out}"
    );
    let out = f.ok(
        "alice",
        &[
            "--credfile",
            "pl_sa.cred",
            "--researcher",
            "planetlab.us.pl.alice",
            "register",
            "slice",
            "planetlab.us.pl.s1",
            "s1.gid",
        ],
    );
    assert!(
        out.starts_with("RESULT:\n  hrn: planetlab.us.pl.s1\n"),
        "{out}"
    );
    let err = f.fails(
        "alice",
        &[
            "--credfile",
            "pl_sa.cred",
            "register",
            "slice",
            "planetlab.us.pl.s1",
            "s1.gid",
        ],
        1,
    );
    assert!(err.contains("fault 106"), "{err}");
    assert!(err.contains("hint: it already exists"), "{err}");

    // list: --short and --filter.
    let out = f.ok("alice", &["--credfile", "pl_sa.cred", "--short", "list"]);
    assert_eq!(
        out,
        "RESULT:\n   planetlab.us.pl.alice\n   planetlab.us.pl.bob\n   planetlab.us.pl.node1\n   planetlab.us.pl.s1\n"
    );
    let out = f.ok(
        "alice",
        &[
            "--credfile",
            "pl_sa.cred",
            "--filter",
            "slice",
            "list",
            "planetlab.us.pl",
        ],
    );
    assert_eq!(out.matches("RECORD ").count(), 1, "{out}");
    assert!(
        out.contains("        researcher : ['planetlab.us.pl.alice']\n"),
        "{out}"
    );
    assert!(out.contains("        name : pl_s1\n"), "{out}");

    // update patches geni_info and sends the record back.
    let out = f.ok(
        "alice",
        &[
            "--email",
            "alice@new.example",
            "update",
            "user",
            "planetlab.us.pl.alice",
        ],
    );
    assert_eq!(out, "RESULT:\nupdated user planetlab.us.pl.alice\n");
    let out = f.ok("alice", &["resolve", "planetlab.us.pl.alice"]);
    assert!(out.contains("        email : alice@new.example\n"), "{out}");

    // The slice credential (alice is its researcher) and a ticket for node1.
    let out = f.ok(
        "alice",
        &[
            "--outfile",
            "s1.cred",
            "getCredential",
            "slice",
            "planetlab.us.pl.s1",
        ],
    );
    assert!(
        out.contains("      privs: embed,bind,control,info\n"),
        "{out}"
    );
    let out = f.ok(
        "alice",
        &[
            "--credfile",
            "s1.cred",
            "--outfile",
            "s1.ticket",
            "getTicket",
            "planetlab.us.pl.s1",
            "planetlab.us.pl.node1",
        ],
    );
    assert!(out.starts_with("RESULT:\nTICKET planetlab.us.pl.s1\n  gidCaller:\n          hrn: planetlab.us.pl.alice\n"), "{out}");
    assert!(out.contains("         name pl_s1\n"), "{out}");
    let out = f.genicli_ok(&["--json", "dumpCredential", "s1.ticket"]);
    let j: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(j["result"]["attributes"]["name"], "pl_s1");

    // --json of a registry answer.
    let out = f.ok("alice", &["--json", "resolve", "planetlab.us.pl.s1"]);
    let j: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(j["result"][0]["type"], "slice");
    assert_eq!(
        j["result"][0]["geni_info"]["researcher"][0],
        "planetlab.us.pl.alice"
    );
    assert_eq!(j["result"][0]["pl_info"]["name"], "pl_s1");

    // remove: the record goes, and resolve then says so.
    let out = f.ok(
        "alice",
        &[
            "--credfile",
            "pl_sa.cred",
            "remove",
            "slice",
            "planetlab.us.pl.s1",
        ],
    );
    assert_eq!(out, "RESULT:\nremoved slice planetlab.us.pl.s1\n");
    let err = f.fails("alice", &["resolve", "planetlab.us.pl.s1"], 1);
    assert!(err.contains("fault 105"), "{err}");
    // remove of a type the name does not have.
    let err = f.fails(
        "alice",
        &[
            "--credfile",
            "pl_sa.cred",
            "remove",
            "node",
            "planetlab.us.pl.alice",
        ],
        1,
    );
    assert!(
        err.contains(
            "records match planetlab.us.pl.alice, but no records match type node (found: user)"
        ),
        "{err}"
    );
}

#[test]
fn the_fixed_permission_checks_answer_with_advice() {
    let f = Federation::new();
    f.ok(
        "bob",
        &[
            "--credfile",
            "None",
            "--outfile",
            "bob.cred",
            "getCredential",
            "user",
            "planetlab.us.pl.bob",
        ],
    );
    // bob is no PI: no sa credential (2008 gave one to anyone with `resolve`).
    let err = f.fails("bob", &["getCredential", "sa", "planetlab.us.pl"], 1);
    assert!(err.contains("fault 104"), "{err}");
    assert!(
        err.contains("hint: the credential's object does not cover that name"),
        "{err}"
    );
    // A user credential cannot make GIDs under the site, nor list it.
    f.genicli_ok(&["createKey", "s2.pkey"]);
    let err = f.fails(
        "bob",
        &["createGid", "planetlab.us.pl.s2", "None", "s2.pkey"],
        1,
    );
    assert!(err.contains("fault 104"), "{err}");
    let err = f.fails("bob", &["list", "planetlab.us.pl"], 1);
    assert!(err.contains("fault 104"), "{err}");
    // Alice's key cannot get a self-credential for bob.
    let err = f.fails(
        "alice",
        &[
            "--credfile",
            "None",
            "getCredential",
            "user",
            "planetlab.us.pl.bob",
        ],
        1,
    );
    assert!(err.contains("fault 102"), "{err}");
    // Slice commands are the node's: named as the server, the registry says it has no such method.
    let err = f.fails(
        "bob",
        &[
            "--server_hrn",
            "planetlab.us",
            "--credfile",
            "bob.cred",
            "listSlices",
        ],
        1,
    );
    assert!(
        err.contains("fault -32601") && err.contains("to a node; check --server"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canonical_flow_through_the_library() {
    let f = Federation::new();
    let flow = Flow {
        dir: f.user(),
        user: "planetlab.us.pl.alice".parse().unwrap(),
        site: "planetlab.us.pl".parse().unwrap(),
        slice: "planetlab.us.pl.testcw".parse().unwrap(),
        node: "planetlab.us.pl.node1".parse().unwrap(),
        plc_url: f.plc_url.clone(),
        node_url: f.node_url.clone(),
        trusted_roots: f.user().join("trusted_roots"),
    };
    let hello = f.path("node/state/slivers/pl_testcw/hello.txt");
    let mut seen = Vec::new();
    for step in flow.steps() {
        let mut notes = Vec::new();
        let outcome = step.run(&mut notes).await.unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n{}",
                step.display(&f.user()),
                e.hint().unwrap_or_default()
            )
        });
        let human = outcome.map(|o| o.human).unwrap_or_default();
        match step.name {
            // A fresh registry has no such slice: the fault is tolerated, nothing printed.
            "remove-slice" => assert_eq!(human, ""),
            "register-slice" => {
                // The operator gives the slice its initscript, as 2008 operators did in PLC.
                f.plc_admin(&["slice", "attr", "set", "pl_testcw", "initscript", "hello"]);
            }
            "ticket" => assert!(human.contains("         initscript #!/bin/sh\n"), "{human}"),
            "redeem" => assert!(
                human.starts_with("RESULT:\nCREDENTIAL planetlab.us.pl.node1.pl_testcw\n"),
                "{human}"
            ),
            "start" => {
                assert_eq!(human, "RESULT:\nstarted planetlab.us.pl.testcw\n");
                let deadline = Instant::now() + Duration::from_secs(10);
                while !hello.is_file() {
                    assert!(
                        Instant::now() < deadline,
                        "the initscript never wrote its file"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(
                    fs::read_to_string(&hello).unwrap(),
                    "hello from the slice\n"
                );
            }
            "list" => assert!(
                human.starts_with("RESULT:\npl_testcw (running, pid "),
                "{human}"
            ),
            "delete" => assert!(!f.path("node/state/slivers/pl_testcw").exists()),
            "list-after" => assert_eq!(human, "RESULT:\n"),
            _ => assert!(
                human.starts_with("RESULT:\n") || human.starts_with("writing private key"),
                "{}: {human}",
                step.name
            ),
        }
        seen.push(step.name);
    }
    assert_eq!(seen.len(), 15);
    for file in [
        "alice.cred",
        "pl_sa.cred",
        "testcw.pkey",
        "testcw.gid",
        "testcw.cred",
        "testcw.ticket",
        "testcw.sliver.cred",
    ] {
        assert!(f.user().join(file).is_file(), "{file}");
    }
}
