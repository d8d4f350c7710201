//! End-to-end across processes on the PLC side: a real `geni-agent plc` (embedded PLC, SQLite)
//! and a real `geni-agent node` whose identity the registry issued, on loopback TLS. The `genicli`
//! binary runs the canonical flow against both, the slice's initscript really running on the
//! node; the plc restarted mid-flow keeps its credentials, records and identity; and Python 3's
//! own `xmlrpc.client` + `ssl` drives the whole flow against both servers.
//!
//! `geni-agent demo` (the same flow through genicli's library, in one command) has its own test
//! in `agent/tests/it/demo.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use std::time::Duration;

use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_rpc::{RpcError, TlsIdentity};
use geni_trust::{ChainForm, Gid, Hierarchy, Keypair, Policy, TrustedRoots, Verifier};
use geni_xmlrpc::{Struct, Value};
use support::plc::{Db, Plc};
use support::{OtherNode, Principal, alive, bin, genicli_bin, listed, node_files, spawn_node};

const USER: &str = "planetlab.us.pl.alice";
const NODE: &str = "planetlab.us.pl.node1";

/// A registry (see [`Plc`]: site `pl`, alice its PI, the initscript `hello`) with node1
/// registered, and node1 running with the key, GID and credential the registry's tree issued.
struct Federation {
    plc: Plc,
    node: OtherNode,
}

impl Federation {
    async fn new() -> Self {
        let plc = Plc::new(Db::Sqlite).await.unwrap();
        let key = Keypair::generate(2048).unwrap();
        let pubkey = plc.path("node1.pub");
        fs::write(&pubkey, key.public_key().to_pem().unwrap()).unwrap();
        plc.ok(&[
            "node",
            "add",
            "node1.pl.example",
            "--site",
            "pl",
            "--hrn",
            NODE,
            "--pubkey",
            pubkey.to_str().unwrap(),
        ]);
        let gid = plc.gid_of(NODE).await;
        assert_eq!(gid.public_key(), &key.public_key());
        let node = Principal { key, gid };
        let dir = plc.path("node");
        fs::create_dir(&dir).unwrap();
        node_files(
            &Hierarchy::new(plc.state().join("authorities")),
            &node,
            &dir,
            "local",
            "",
        );
        let (child, addr) = spawn_node(&bin(), &dir, &[]);
        Self {
            plc,
            node: OtherNode { node, child, addr },
        }
    }

    fn plc_url(&self) -> String {
        format!("https://{}/", self.plc.addr)
    }

    fn node_url(&self) -> String {
        format!("https://{}/", self.node.addr)
    }

    fn sliver_dir(&self, name: &str) -> PathBuf {
        self.plc.path("node/state/slivers").join(name)
    }

    /// A client of alice's at the node.
    async fn alice_at_node(&self) -> GeniClient {
        let gid = self.plc.gid_of(USER).await;
        let identity = TlsIdentity::from_pem(
            &self.plc.alice.key.to_pem().unwrap(),
            &gid.to_chain_string(ChainForm::Separator).unwrap(),
        )
        .unwrap();
        GeniClient::new(
            &self.node_url(),
            identity,
            server_auth_from_gid(&self.node.node.gid),
            Duration::from_secs(20),
        )
        .unwrap()
    }

    /// A verifier trusting what the registry's clients trust.
    fn verifier(&self) -> Verifier {
        let roots = TrustedRoots::load_dir(&self.plc.state().join("trusted_roots")).unwrap();
        Verifier::new(roots, Policy::default())
    }
}

/// Sends `sig` to `pid` with kill(1).
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// `genicli <args>` run in `dir`; it must exit 0. Its stdout.
fn genicli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(genicli_bin())
        .current_dir(dir)
        .args(args)
        .env("GENI_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "genicli {args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The pid in a listSlices line `pl_x (running, pid N)`.
fn listed_pid(human: &str) -> i64 {
    human
        .split_once(", pid ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {human:?}"))
}

/// The command line of the process `pid`, NUL-separated.
fn cmdline(pid: i64) -> String {
    fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// Waits until the initscript (`SCRIPT` of the plc support: append a line to `started.txt`, then
/// `exec sleep 1000`) running as `pid` has reached its `sleep`, so its file is written.
async fn sleeping(pid: i64) {
    support::wait_until(&format!("pid {pid} to exec sleep"), || {
        cmdline(pid) == "sleep\x001000\x00"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genicli_runs_the_canonical_flow_against_a_real_plc_and_node() {
    let f = Federation::new().await;
    // Alice's working directory: her key (registered with the plc) and the roots she trusts;
    // genicli makes her certificate on first use and names every other file by 2008's rules.
    let home = f.plc.path("alice");
    fs::create_dir(&home).unwrap();
    f.plc.alice.key.save(&home.join("alice.pkey")).unwrap();
    fs::create_dir(home.join("trusted_roots")).unwrap();
    fs::copy(
        f.plc.state().join("trusted_roots/planetlab.gid"),
        home.join("trusted_roots/planetlab.gid"),
    )
    .unwrap();
    let (plc_url, node_url) = (f.plc_url(), f.node_url());
    let at = |server: &str, rest: &[&str]| -> String {
        let mut args = vec!["--server", server, "--username", USER];
        args.extend(rest);
        genicli(&home, &args)
    };
    let plc = |rest: &[&str]| at(&plc_url, rest);
    let node = |rest: &[&str]| at(&node_url, &[&["--server_hrn", NODE], rest].concat());

    // Self-credential, with nothing but the key.
    let out = plc(&[
        "--credfile",
        "None",
        "--outfile",
        "alice.cred",
        "getCredential",
        "user",
        USER,
    ]);
    assert!(
        out.starts_with(
            "RESULT:\nCREDENTIAL planetlab.us.pl.alice\n      privs: refresh,resolve,info\n"
        ),
        "{out}"
    );
    assert!(home.join("alice.cred").is_file() && home.join("alice.cert").is_file());

    // The site credential, a slice key and GID, and the slice registered with alice in it.
    let out = plc(&[
        "--outfile",
        "pl_sa.cred",
        "getCredential",
        "sa",
        "planetlab.us.pl",
    ]);
    assert!(out.contains("      privs: authority\n"), "{out}");
    genicli(&home, &["createKey", "testcw.pkey"]);
    let out = plc(&[
        "--credfile",
        "pl_sa.cred",
        "--outfile",
        "testcw.gid",
        "createGid",
        "planetlab.us.pl.testcw",
        "None",
        "testcw.pkey",
    ]);
    assert!(
        out.starts_with("RESULT:\n  hrn: planetlab.us.pl.testcw\n"),
        "{out}"
    );
    let out = plc(&[
        "--credfile",
        "pl_sa.cred",
        "--researcher",
        USER,
        "register",
        "slice",
        "planetlab.us.pl.testcw",
        "testcw.gid",
    ]);
    assert!(
        out.starts_with("RESULT:\n  hrn: planetlab.us.pl.testcw\n"),
        "{out}"
    );
    // The operator gives the slice its initscript, as 2008 operators did in PLC.
    f.plc
        .ok(&["slice", "attr", "set", "pl_testcw", "initscript", "hello"]);

    // The slice credential and the ticket for node1.
    let out = plc(&[
        "--outfile",
        "testcw.cred",
        "getCredential",
        "slice",
        "planetlab.us.pl.testcw",
    ]);
    assert!(
        out.contains("      privs: embed,bind,control,info\n"),
        "{out}"
    );
    let out = plc(&[
        "--credfile",
        "testcw.cred",
        "--outfile",
        "testcw.ticket",
        "getTicket",
        "planetlab.us.pl.testcw",
        NODE,
    ]);
    assert!(
        out.starts_with("RESULT:\nTICKET planetlab.us.pl.testcw\n"),
        "{out}"
    );
    assert!(out.contains("         initscript #!/bin/sh\n"), "{out}");

    // On the node: redeem, and the sliver credential the node signed comes back.
    let out = node(&[
        "--ticketfile",
        "testcw.ticket",
        "--outfile",
        "testcw.sliver.cred",
        "redeemTicket",
    ]);
    assert!(
        out.starts_with(
            "RESULT:\nCREDENTIAL planetlab.us.pl.node1.pl_testcw\n      privs: control,info\n"
        ),
        "{out}"
    );
    let sliver = f
        .verifier()
        .verify_credential_str(&fs::read_to_string(home.join("testcw.sliver.cred")).unwrap())
        .unwrap();
    assert_eq!(sliver.caller().hrn().as_str(), USER);
    assert!(f.sliver_dir("pl_testcw").is_dir());

    // Start: the initscript runs in the sliver, a real process.
    let out = node(&["--credfile", "testcw.cred", "startSlice"]);
    assert_eq!(out, "RESULT:\nstarted planetlab.us.pl.testcw\n");
    let out = node(&["--credfile", "testcw.cred", "listSlices"]);
    assert!(
        out.starts_with("RESULT:\npl_testcw (running, pid "),
        "{out}"
    );
    let pid = listed_pid(&out);
    sleeping(pid).await;
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        fs::canonicalize(f.sliver_dir("pl_testcw")).unwrap()
    );
    let started = f.sliver_dir("pl_testcw").join("started.txt");
    assert_eq!(fs::read_to_string(&started).unwrap(), "started\n");

    // Stop ends the process; reset makes the sliver pristine and runs it again.
    let out = node(&["--credfile", "testcw.cred", "stopSlice"]);
    assert_eq!(out, "RESULT:\nstopped planetlab.us.pl.testcw\n");
    support::wait_until("the initscript to end", || !alive(pid)).await;
    let out = node(&["--credfile", "testcw.cred", "listSlices"]);
    assert_eq!(out, "RESULT:\npl_testcw (stopped)\n");
    let out = node(&["--credfile", "testcw.cred", "resetSlice"]);
    assert_eq!(out, "RESULT:\nreset planetlab.us.pl.testcw\n");
    let out = node(&["--credfile", "testcw.cred", "listSlices"]);
    assert!(
        out.starts_with("RESULT:\npl_testcw (running, pid "),
        "{out}"
    );
    let again = listed_pid(&out);
    assert_ne!(again, pid);
    sleeping(again).await;
    // One line: the file from before the reset is gone.
    assert_eq!(fs::read_to_string(&started).unwrap(), "started\n");

    // Delete: process and sliver gone, nothing listed.
    let out = node(&["--credfile", "testcw.cred", "deleteSlice"]);
    assert_eq!(out, "RESULT:\ndeleted planetlab.us.pl.testcw\n");
    support::wait_until("the initscript to end", || !alive(again)).await;
    assert!(!f.sliver_dir("pl_testcw").exists());
    let out = node(&["--credfile", "testcw.cred", "listSlices"]);
    assert_eq!(out, "RESULT:\n");
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn text(v: Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plc_restarted_mid_flow_keeps_credentials_and_records() {
    let mut f = Federation::new().await;
    let alice = f.plc.client(&f.plc.alice).await;
    let user_cred = f.plc.self_credential(&f.plc.alice).await;
    let sa_cred = text(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("sa"), s("planetlab.us.pl")],
            )
            .await
            .unwrap(),
    );
    let slice_key = Keypair::generate(2048).unwrap();
    let pem = String::from_utf8(slice_key.public_key().to_pem().unwrap()).unwrap();
    let slice_gid = text(
        alice
            .call(
                "create_gid",
                vec![s(&sa_cred), s("planetlab.us.pl.s1"), Value::Nil, s(&pem)],
            )
            .await
            .unwrap(),
    );
    let record = Value::Struct(
        Struct::new()
            .with("name", "planetlab.us.pl.s1")
            .with("type", "slice")
            .with("gid", slice_gid.as_str())
            .with(
                "geni_info",
                Struct::new().with("researcher", Value::Array(vec![s(USER)])),
            ),
    );
    alice
        .call("register", vec![s(&sa_cred), record.clone()])
        .await
        .unwrap();
    f.plc
        .ok(&["slice", "attr", "set", "pl_s1", "initscript", "hello"]);
    let slice_cred = text(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("slice"), s("planetlab.us.pl.s1")],
            )
            .await
            .unwrap(),
    );

    // A clean restart: SIGTERM, then the same state directory and SQLite file.
    let old_addr = f.plc.addr.clone();
    signal(f.plc.server.as_ref().unwrap().id(), "-TERM");
    let status = f.plc.server.take().unwrap().wait().unwrap();
    assert!(
        status.success(),
        "the plc exits cleanly on SIGTERM: {status}"
    );
    let gone = alice.call("noop", vec![s(&user_cred), Value::Int(1)]).await;
    assert!(
        !matches!(gone, Ok(_) | Err(RpcError::Fault(_))),
        "nothing answers at {old_addr} any more: {gone:?}"
    );
    f.plc.start();
    // The client pins the registry's GID from before: the registry kept its identity.
    let alice = f.plc.client(&f.plc.alice).await;

    // The credentials from before still work, and the slice is still there.
    assert_eq!(
        alice
            .call("noop", vec![s(&user_cred), Value::Int(2)])
            .await
            .unwrap(),
        Value::Int(2)
    );
    let found = alice
        .call("resolve", vec![s(&user_cred), s("planetlab.us.pl.s1")])
        .await
        .unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1);
    let rec = found[0].as_struct().unwrap();
    assert_eq!(rec.get("type"), Some(&s("slice")));
    assert_eq!(rec.get("gid"), Some(&s(&slice_gid)));
    let gids = alice
        .call("get_gid", vec![s("planetlab.us.pl.s1")])
        .await
        .unwrap();
    assert_eq!(gids, Value::Array(vec![s(&slice_gid)]));
    let (code, msg) = support::fault_code(alice.call("register", vec![s(&sa_cred), record]).await);
    assert_eq!(code, 106, "registered once, still: {msg}");
    let fresh = text(
        alice
            .call(
                "get_credential",
                vec![s(&user_cred), s("slice"), s("planetlab.us.pl.s1")],
            )
            .await
            .unwrap(),
    );
    let v = f.verifier();
    assert_eq!(
        v.verify_credential_str(&fresh)
            .unwrap()
            .object()
            .hrn()
            .as_str(),
        "planetlab.us.pl.s1"
    );

    // getTicket with the slice credential from before the restart; the node takes the ticket.
    let ticket = text(
        alice
            .call(
                "get_ticket",
                vec![
                    s(&slice_cred),
                    s("planetlab.us.pl.s1"),
                    Value::Struct(Struct::new()),
                    s(NODE),
                ],
            )
            .await
            .unwrap(),
    );
    let t = v
        .verify_ticket_str(&ticket, Some(&NODE.parse().unwrap()))
        .unwrap();
    assert_eq!(t.object().hrn().as_str(), "planetlab.us.pl.s1");
    // The embedded PLC kept the slice's attribute set before the restart.
    assert_eq!(
        t.ticket().attributes().get("initscript"),
        Some(&s(support::plc::SCRIPT))
    );
    let at_node = f.alice_at_node().await;
    at_node
        .call("redeem_ticket", vec![s(&ticket)])
        .await
        .unwrap();
    at_node
        .call("start_slice", vec![s(&slice_cred)])
        .await
        .unwrap();
    let rows = listed(&at_node, &slice_cred).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("pl_s1", "running")
    );
    let pid = rows[0].2.unwrap();
    sleeping(pid).await;
    at_node
        .call("delete_slice", vec![s(&slice_cred)])
        .await
        .unwrap();
    support::wait_until("the sliver to end", || !alive(pid)).await;
}

/// Python's own client drives the whole flow: the registry methods on the plc, then the node's.
/// Each server's certificate is pinned by the SHA-256 of its DER bytes. The script stops after
/// `register` until it reads a line, so the operator can give the slice its initscript.
const PY_FLOW: &str = r#"
import ssl, sys, xmlrpc.client, hashlib, os, socket
socket.setdefaulttimeout(60)
plc_url, plc_pin, node_url, node_pin, cert, key, slice_pub, out = sys.argv[1:]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE   # pinned below: GIDs are not web PKI certificates
ctx.load_cert_chain(cert, key)
def pinned(pin):
    class Pinned(xmlrpc.client.SafeTransport):
        def make_connection(self, host):
            conn = super().make_connection(host)
            conn.connect()
            der = conn.sock.getpeercert(binary_form=True)
            if hashlib.sha256(der).hexdigest() != pin:
                raise SystemExit("server certificate does not match the pin")
            return conn
    return Pinned(context=ctx)
plc = xmlrpc.client.ServerProxy(plc_url, transport=pinned(plc_pin), allow_none=True)
node = xmlrpc.client.ServerProxy(node_url, transport=pinned(node_pin), allow_none=True)
def keep(name, text):
    with open(os.path.join(out, name), "w") as f:
        f.write(text)
    return text
user = "planetlab.us.pl.alice"
slice_hrn = "planetlab.us.pl.py1"
user_cred = keep("user.cred", plc.get_self_credential("user", user))
sa_cred = keep("sa.cred", plc.get_credential(user_cred, "sa", "planetlab.us.pl"))
gid = keep("slice.gid", plc.create_gid(sa_cred, slice_hrn, None, open(slice_pub).read()))
record = {"name": slice_hrn, "type": "slice", "gid": gid,
          "geni_info": {"researcher": [user]}}
print("register", plc.register(sa_cred, record) == gid, flush=True)
sys.stdin.readline()
print("resolve", [(r["name"], r["type"]) for r in plc.resolve(user_cred, slice_hrn)])
slice_cred = keep("slice.cred", plc.get_credential(user_cred, "slice", slice_hrn))
ticket = keep("ticket", plc.get_ticket(slice_cred, slice_hrn, {}, "planetlab.us.pl.node1"))
sliver_cred = keep("sliver.cred", node.redeem_ticket(ticket))
print("redeem", "ok")
print("start", node.start_slice(slice_cred))
assert node.list_slices(slice_cred) == ["pl_py1"], node.list_slices(slice_cred)
rows = node.list_slivers(slice_cred)
print("list", [(r["name"], r["state"]) for r in rows])
print("pid", rows[0]["pid"], flush=True)
sys.stdin.readline()
print("stop", node.stop_slice(sliver_cred))
print("reset", node.reset_slice(slice_cred))
print("list", [(r["name"], r["state"]) for r in node.list_slivers(slice_cred)])
print("delete", node.delete_slice(slice_cred))
print("list", node.list_slices(slice_cred))
try:
    plc.get_credential(user_cred, "slice", "planetlab.us.pl.nosuch")
except xmlrpc.client.Fault as f:
    print("unknown slice fault", f.faultCode)
"#;

/// The Python script running: what it printed so far, and its stdin to let it go on.
struct Script {
    child: Child,
    stdout: BufReader<ChildStdout>,
    seen: String,
}

impl Script {
    fn new(mut child: Child) -> Self {
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdout,
            seen: String::new(),
        }
    }

    /// The next line it prints; it must print one.
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        if l.is_empty() {
            let _ = self.child.wait();
            let err = self.stderr();
            panic!("python ended early:\n{}{err}", self.seen);
        }
        self.seen.push_str(&l);
        l
    }

    /// Lets it past its next `sys.stdin.readline()`.
    fn go(&mut self) {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
    }

    /// Waits for it to exit 0; everything it printed.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        self.stdout.read_to_string(&mut self.seen).unwrap();
        let status = self.child.wait().unwrap();
        let err = self.stderr();
        assert!(status.success(), "{}\n{err}", self.seen);
        std::mem::take(&mut self.seen)
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pin(gid: &Gid) -> String {
    gid.certificate()
        .fingerprint()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_xmlrpc_client_drives_plc_and_node() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipping: python3 is not installed");
        return;
    }
    let f = Federation::new().await;
    let dir = f.plc.path("py");
    fs::create_dir(&dir).unwrap();
    let alice_gid = f.plc.gid_of(USER).await;
    f.plc.alice.key.save(&dir.join("alice.pkey")).unwrap();
    fs::write(
        dir.join("alice.cert"),
        alice_gid.certificate().to_pem().unwrap(),
    )
    .unwrap();
    let slice_key = Keypair::generate(2048).unwrap();
    fs::write(
        dir.join("py1.pub"),
        slice_key.public_key().to_pem().unwrap(),
    )
    .unwrap();
    let child = Command::new("python3")
        .args(["-c", PY_FLOW])
        .arg(f.plc_url())
        .arg(pin(&f.plc.registry_gid))
        .arg(f.node_url())
        .arg(pin(&f.node.node.gid))
        .arg(dir.join("alice.cert"))
        .arg(dir.join("alice.pkey"))
        .arg(dir.join("py1.pub"))
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut py = Script::new(child);

    // Registered: the operator gives the slice its initscript, then Python goes on.
    let first = py.line();
    assert_eq!(first, "register True\n");
    f.plc
        .ok(&["slice", "attr", "set", "pl_py1", "initscript", "hello"]);
    py.go();
    let mut pid_line = String::new();
    while !pid_line.starts_with("pid ") {
        pid_line = py.line();
    }
    // Started from Python, the initscript really runs on the node.
    let pid: i64 = pid_line.trim()["pid ".len()..].parse().unwrap();
    sleeping(pid).await;
    assert_eq!(
        fs::read_to_string(f.sliver_dir("pl_py1").join("started.txt")).unwrap(),
        "started\n"
    );
    py.go();
    let seen = py.finish();
    let want = "register True\n\
                resolve [('planetlab.us.pl.py1', 'slice')]\n\
                redeem ok\n\
                start 1\n\
                list [('pl_py1', 'running')]\n\
                pid PID\n\
                stop 1\n\
                reset 1\n\
                list [('pl_py1', 'running')]\n\
                delete 1\n\
                list []\n\
                unknown slice fault 105\n"
        .replace("PID", &pid.to_string());
    assert_eq!(seen, want);
    support::wait_until("the first initscript to end", || !alive(pid)).await;
    assert!(!f.sliver_dir("pl_py1").exists());

    // What Python was given verifies as the flow says.
    let v = f.verifier();
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    let uc = v.verify_credential_str(&read("user.cred")).unwrap();
    assert_eq!(uc.object().hrn().as_str(), USER);
    let sc = v.verify_credential_str(&read("sa.cred")).unwrap();
    assert_eq!(sc.privileges().to_string(), "authority");
    let lc = v.verify_credential_str(&read("slice.cred")).unwrap();
    assert_eq!(lc.object().hrn().as_str(), "planetlab.us.pl.py1");
    assert_eq!(lc.caller().hrn().as_str(), USER);
    let t = v
        .verify_ticket_str(&read("ticket"), Some(&NODE.parse().unwrap()))
        .unwrap();
    assert_eq!(
        t.ticket().certificate().public_key(),
        &slice_key.public_key()
    );
    assert_eq!(t.ticket().attributes().get("name"), Some(&s("pl_py1")));
    let sliver = v.verify_credential_str(&read("sliver.cred")).unwrap();
    assert_eq!(
        sliver.object().hrn().as_str(),
        "planetlab.us.pl.node1.pl_py1"
    );
}
