//! `genicli` against a real `geni-agent node` on loopback (real TLS, real sliver processes): the
//! component half of the canonical flow (redeemTicket, then startSlice, listSlices, stopSlice,
//! resetSlice, deleteSlice with the slice credential), both output forms, server authentication
//! by trusted roots and by pinned GID, and the faults a node gives, each with its exit status and
//! advice. The tickets come from `geni-agent authority ticket`, as the plc will issue them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use geni_trust::{ChainForm, Hierarchy};
use serde_json::Value as Json;
use support::{SCRIPT, World, hrn, wait_until, write};

const GENICLI: &str = env!("CARGO_BIN_EXE_genicli");

/// A researcher's working directory next to the world: `<user>.pkey`, the slice credential,
/// the ticket, and the root GID in `trusted_roots/`.
struct Desk {
    w: World,
    url: String,
}

impl Desk {
    fn new() -> Self {
        let w = World::new();
        for (p, name) in [(&w.alice, "alice"), (&w.bob, "bob")] {
            p.key.save(&w.path(&format!("{name}.pkey"))).unwrap();
        }
        write(&w.path("s1.cred"), &w.slice_cred(&w.alice, &w.s1));
        write(&w.path("alice.cred"), &w.user_cred(&w.alice));
        let ticket = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 1_227_612_345.5);
        write(&w.path("s1.ticket"), &ticket);
        fs::create_dir(w.path("trusted_roots")).unwrap();
        fs::copy(
            w.path("roots/planetlab.gid"),
            w.path("trusted_roots/planetlab.gid"),
        )
        .unwrap();
        write(
            &w.path("node1.gid"),
            &w.node.gid.to_chain_string(ChainForm::Separator).unwrap(),
        );
        let url = format!("https://{}/", w.addr);
        Self { w, url }
    }

    fn dir(&self) -> &Path {
        self.w.dir.path()
    }

    /// `genicli --server <node> --server_hrn planetlab.us.pl.node1 --username
    /// planetlab.us.pl.<user> ARGS` in the desk directory (which holds ./trusted_roots, the
    /// default server trust).
    fn run(&self, user: &str, args: &[&str]) -> Output {
        self.run_at(
            &self.url,
            user,
            &[&["--server_hrn", "planetlab.us.pl.node1"], args].concat(),
        )
    }

    /// `genicli --server <url> --username planetlab.us.pl.<user> ARGS` in the desk directory.
    fn run_at(&self, url: &str, user: &str, args: &[&str]) -> Output {
        Command::new(GENICLI)
            .current_dir(self.dir())
            .args(["--server", url, "--username"])
            .arg(format!("planetlab.us.pl.{user}"))
            .args(args)
            .env("GENI_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, user: &str, args: &[&str]) -> String {
        let out = self.run(user, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "genicli {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit status `code`; returns stderr.
    fn fails(&self, user: &str, args: &[&str], code: i32) -> String {
        let out = self.run(user, args);
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

#[test]
fn the_component_half_of_the_canonical_flow() {
    let d = Desk::new();
    // 9. redeemTicket: the node answers with a sliver credential, dumped and saved.
    let out = d.ok(
        "alice",
        &[
            "--ticketfile",
            "s1.ticket",
            "--outfile",
            "sliver.cred",
            "redeemTicket",
        ],
    );
    assert!(
        out.starts_with(
            "RESULT:\nCREDENTIAL planetlab.us.pl.node1.pl_s1\n      privs: control,info\n  gidCaller:\n          hrn: planetlab.us.pl.alice\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("   delegate: False\n"), "{out}");
    let saved = fs::read_to_string(d.w.path("sliver.cred")).unwrap();
    assert!(saved.starts_with("-----BEGIN CERTIFICATE-----"), "{saved}");
    // The client certificate was made from alice's key on first use.
    assert!(d.w.path("alice.cert").is_file());

    assert_eq!(
        d.ok("alice", &["--credfile", "s1.cred", "listSlices"]),
        "RESULT:\npl_s1 (created)\n"
    );
    // 10. start: the initscript really runs in the sliver.
    assert_eq!(
        d.ok("alice", &["--credfile", "s1.cred", "startSlice"]),
        "RESULT:\nstarted planetlab.us.pl.s1\n"
    );
    let started = d.w.sliver_dir("pl_s1").join("started.txt");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_until("the initscript's file", || started.is_file()));
    let listed = d.ok(
        "alice",
        &[
            "--credfile",
            "s1.cred",
            "--outfile",
            "slices.txt",
            "listSlices",
        ],
    );
    assert!(
        listed.starts_with("RESULT:\npl_s1 (running, pid "),
        "{listed}"
    );
    assert_eq!(fs::read_to_string(d.w.path("slices.txt")).unwrap(), "pl_s1");

    assert_eq!(
        d.ok("alice", &["--credfile", "s1.cred", "stopSlice"]),
        "RESULT:\nstopped planetlab.us.pl.s1\n"
    );
    assert_eq!(
        d.ok("alice", &["--credfile", "s1.cred", "listSlices"]),
        "RESULT:\npl_s1 (stopped)\n"
    );
    // The sliver credential from redeemTicket works as well as the slice credential.
    assert_eq!(
        d.ok("alice", &["--credfile", "sliver.cred", "resetSlice"]),
        "RESULT:\nreset planetlab.us.pl.node1.pl_s1\n"
    );
    // Reset re-creates the sliver and runs it again: the new run's file has one line.
    let listed = d.ok("alice", &["--credfile", "s1.cred", "listSlices"]);
    assert!(
        listed.starts_with("RESULT:\npl_s1 (running, pid "),
        "{listed}"
    );
    rt.block_on(wait_until("the new run's file", || started.is_file()));
    assert_eq!(fs::read_to_string(&started).unwrap(), "started\n");
    assert_eq!(
        d.ok("alice", &["--credfile", "s1.cred", "deleteSlice"]),
        "RESULT:\ndeleted planetlab.us.pl.s1\n"
    );
    assert_eq!(
        d.ok("alice", &["--credfile", "s1.cred", "listSlices"]),
        "RESULT:\n"
    );
    assert!(!d.w.sliver_dir("pl_s1").exists());
}

#[test]
fn json_output_of_node_commands() {
    let d = Desk::new();
    let out = d.ok(
        "alice",
        &["--json", "--ticketfile", "s1.ticket", "redeemTicket"],
    );
    let j: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["command"], "redeemTicket");
    assert_eq!(j["result"]["kind"], "credential");
    assert_eq!(j["result"]["object"]["hrn"], "planetlab.us.pl.node1.pl_s1");
    assert_eq!(j["result"]["privileges"], "control,info");

    let out = d.ok("alice", &["--json", "--credfile", "s1.cred", "startSlice"]);
    let j: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(j["result"]["slice"], "planetlab.us.pl.s1");
    assert_eq!(j["result"]["done"], "started");

    let out = d.ok("alice", &["--json", "--credfile", "s1.cred", "listSlices"]);
    let j: Json = serde_json::from_str(&out).unwrap();
    let rows = j["result"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "pl_s1");
    assert_eq!(rows[0]["state"], "running");
    assert!(rows[0]["pid"].as_i64().unwrap() > 1);

    // A fault, as JSON: code and string of the node's answer.
    let out = d.run(
        "alice",
        &["--json", "--credfile", "alice.cred", "stopSlice"],
    );
    assert_eq!(out.status.code(), Some(1));
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["error"]["kind"], "fault");
    assert_eq!(j["error"]["fault_code"], 103);
    assert_eq!(j["error"]["method"], "stop_slice");
    assert!(
        j["error"]["fault_string"]
            .as_str()
            .unwrap()
            .contains("stopslice")
    );
}

#[test]
fn the_node_is_authenticated_by_roots_or_by_its_pinned_gid() {
    let d = Desk::new();
    // Pinned to the node's own GID: accepted, without ./trusted_roots.
    fs::remove_dir_all(d.w.path("trusted_roots")).unwrap();
    let out = d.ok(
        "alice",
        &[
            "--server_gid",
            "node1.gid",
            "--credfile",
            "s1.cred",
            "listSlices",
        ],
    );
    assert_eq!(out, "RESULT:\n");

    // Pinned to someone else's GID: the handshake is refused before anything is sent.
    write(
        &d.w.path("alice.gid"),
        &d.w.alice.gid.to_chain_string(ChainForm::Separator).unwrap(),
    );
    let err = d.fails(
        "alice",
        &[
            "--server_gid",
            "alice.gid",
            "--credfile",
            "s1.cred",
            "listSlices",
        ],
        4,
    );
    assert!(err.contains("not the pinned one"), "{err}");
    assert!(
        err.contains("hint: the server did not prove who it is"),
        "{err}"
    );

    // Roots of another federation: the node's GID does not chain to them.
    let other = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(other.path().join("authorities"));
    h.create_authority(&hrn("elsewhere"), false).unwrap();
    let roots = other.path().join("roots");
    fs::create_dir(&roots).unwrap();
    fs::copy(
        other.path().join("authorities/elsewhere/elsewhere.gid"),
        roots.join("elsewhere.gid"),
    )
    .unwrap();
    let err = d.fails(
        "alice",
        &[
            "--trusted_roots",
            roots.to_str().unwrap(),
            "--credfile",
            "s1.cred",
            "listSlices",
        ],
        4,
    );
    assert!(
        err.contains(
            "the server's GID planetlab.us.pl.node1 does not verify against the trusted roots"
        ),
        "{err}"
    );
}

/// A user on the path holds a perfectly valid GID of the federation; presented as the server's, it
/// must be refused for the registry and for a node, and a node command that names no node asks
/// for one.
#[test]
fn a_server_presenting_a_valid_user_gid_is_refused() {
    let d = Desk::new();
    // "planetlab.us.pl.mallory": a fresh user GID from the same tree, serving on loopback.
    let mallory = d.w.start_second_node("mallory");
    let url = format!("https://{}/", mallory.addr);
    let fails = |args: &[&str], code: i32| {
        let out = d.run_at(&url, "alice", args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // As the registry: not an authority over alice.
    let err = fails(
        &[
            "--credfile",
            "alice.cred",
            "resolve",
            "planetlab.us.pl.alice",
        ],
        4,
    );
    assert!(
        err.contains("presented the GID of planetlab.us.pl.mallory, not of an authority over planetlab.us.pl.alice"),
        "{err}"
    );
    // As the node: not the node named.
    let err = fails(
        &[
            "--server_hrn",
            "planetlab.us.pl.node1",
            "--credfile",
            "s1.cred",
            "stopSlice",
        ],
        4,
    );
    assert!(err.contains("not of planetlab.us.pl.node1"), "{err}");
    // A ticket names its node: redeeming it elsewhere is refused before it is sent.
    let err = fails(&["--ticketfile", "s1.ticket", "redeemTicket"], 4);
    assert!(err.contains("not of planetlab.us.pl.node1"), "{err}");
    // A node command with nothing naming the node: genicli asks.
    let err = fails(&["--credfile", "s1.cred", "stopSlice"], 2);
    assert!(err.contains("--server_hrn"), "{err}");
    // The real node, named, still works; and the impostor saw no sliver.
    d.ok("alice", &["--credfile", "s1.cred", "listSlices"]);
    assert!(!d.w.path("mallory/state/slivers").join("pl_s1").exists());
}

#[test]
fn node_faults_say_what_failed_and_what_to_do() {
    let d = Desk::new();
    // A user credential has no control right.
    let err = d.fails("alice", &["--credfile", "alice.cred", "stopSlice"], 1);
    assert!(
        err.contains(&format!("{} refused stop_slice: fault 103", d.url)),
        "{err}"
    );
    assert!(
        err.contains("hint: the credential does not carry the right"),
        "{err}"
    );

    // Bob holds alice's credential and ticket, but not her key.
    let err = d.fails("bob", &["--ticketfile", "s1.ticket", "redeemTicket"], 1);
    assert!(err.contains("fault 102"), "{err}");
    assert!(
        err.contains("hint: the credential's caller is not the owner of the key"),
        "{err}"
    );

    // A sliver that does not exist.
    let err = d.fails("alice", &["--credfile", "s1.cred", "resetSlice"], 1);
    assert!(err.contains("fault 105"), "{err}");

    // Registry commands are not the node's.
    let err = d.fails(
        "alice",
        &["--credfile", "alice.cred", "resolve", "planetlab.us.pl"],
        1,
    );
    assert!(err.contains("fault -32601"), "{err}");
    assert!(err.contains("go to the plc"), "{err}");
}
