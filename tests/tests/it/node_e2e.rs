//! End-to-end across processes on the node side: real `geni-agent node` processes on loopback
//! TLS, tickets made by `geni-agent authority`. Two nodes under one root, a ticket naming one
//! refused by the other; a node restarted mid-flow keeps its running sliver; a trusted root
//! rotated with SIGHUP; and Python 3's own `xmlrpc.client` + `ssl` driving the whole flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::process::Command;

use geni_trust::{ChainForm, Hierarchy, RecordType, RightList};
use geni_xmlrpc::Value;
use support::{SCRIPT, World, alive, fault_code, hrn, listed, principal, wait_until, write};

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_naming_node_a_is_refused_by_node_b() {
    let w = World::new();
    let b = w.start_second_node("node2");
    let alice_a = w.client(&w.alice);
    let alice_b = w.client_at(&w.alice, &b.addr, &b.node.gid);
    let for_a = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 1.0);

    // Node B trusts the same root and knows alice, but the ticket is for node A.
    let (code, msg) = fault_code(
        alice_b
            .call("redeem_ticket", vec![Value::from(for_a.as_str())])
            .await,
    );
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains("node1"), "{msg}");
    let cred = w.slice_cred(&w.alice, &w.s1);
    assert!(listed(&alice_b, &cred).await.is_empty());

    // Node A takes it; and B takes one that names B.
    alice_a
        .call("redeem_ticket", vec![Value::from(for_a.as_str())])
        .await
        .unwrap();
    let for_b = w.ticket_for(
        &w.alice,
        &w.s1,
        "pl_s1",
        SCRIPT,
        2.0,
        b.node.gid.hrn().as_ref(),
    );
    alice_b
        .call("redeem_ticket", vec![Value::from(for_b.as_str())])
        .await
        .unwrap();
    assert_eq!(listed(&alice_b, &cred).await.len(), 1);
    for c in [&alice_a, &alice_b] {
        c.call("delete_slice", vec![Value::from(cred.as_str())])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_mid_flow_keeps_its_sliver() {
    let mut w = World::new();
    let alice = w.client(&w.alice);
    let cred = w.slice_cred(&w.alice, &w.s1);
    let ticket = w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 1.0);
    let sliver_cred = alice
        .call("redeem_ticket", vec![Value::from(ticket.as_str())])
        .await
        .unwrap();
    alice
        .call("start_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
    let pid = listed(&alice, &cred).await[0].2.unwrap();

    // A clean restart (SIGTERM, then start again on the same state).
    let node_pid = w.agent.as_ref().unwrap().id();
    signal(node_pid, "-TERM");
    let status = w.agent.take().unwrap().wait().unwrap();
    assert!(
        status.success(),
        "the node exits cleanly on SIGTERM: {status}"
    );
    assert!(alive(pid), "the sliver outlives the agent");
    w.start_agent();
    let alice = w.client(&w.alice);
    let rows = listed(&alice, &cred).await;
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2),
        ("running", Some(pid)),
        "adopted"
    );

    // The flow goes on: the sliver credential from before the restart still stops it.
    alice.call("stop_slice", vec![sliver_cred]).await.unwrap();
    wait_until("the sliver to end", || !alive(pid)).await;
    alice
        .call("delete_slice", vec![Value::from(cred.as_str())])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_root_rotated_with_sighup() {
    let w = World::new();
    let alice = w.client(&w.alice);
    let old_cred = w.user_cred(&w.alice);
    alice
        .call("noop", vec![Value::from(old_cred.as_str()), Value::Int(7)])
        .await
        .unwrap();

    // A new root with its own tree; the node's roots directory now holds only it.
    let new = Hierarchy::new(w.path("new-authorities"));
    new.create_authority(&hrn("planetlab2.us.pl"), true)
        .unwrap();
    let carol = principal(&new, "planetlab2.us.pl.carol");
    let new_cred = new
        .issue_credential(
            &carol.gid,
            &carol.gid,
            &RightList::for_record_type(RecordType::User),
            false,
            86_400,
        )
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let carol_client = w.client(&carol);
    let (code, _) = fault_code(
        carol_client
            .call("noop", vec![Value::from(new_cred.as_str()), Value::Int(1)])
            .await,
    );
    assert_eq!(code, 101, "not trusted before the rotation");
    std::fs::remove_file(w.path("roots/planetlab.gid")).unwrap();
    let root = new.authority(&hrn("planetlab2")).unwrap();
    write(
        &w.path("roots/planetlab2.gid"),
        &root.gid.to_chain_string(ChainForm::Separator).unwrap(),
    );
    signal(w.agent.as_ref().unwrap().id(), "-HUP");

    // The reload is asynchronous: wait for the new root to take, then the old must be gone.
    let mut answered = None;
    for _ in 0..100 {
        let r = carol_client
            .call("noop", vec![Value::from(new_cred.as_str()), Value::Int(2)])
            .await;
        if let Ok(v) = r {
            answered = Some(v);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(answered, Some(Value::Int(2)), "the new root is trusted");
    let (code, msg) = fault_code(
        alice
            .call("noop", vec![Value::from(old_cred.as_str()), Value::Int(3)])
            .await,
    );
    assert_eq!(code, 101, "the old root is no longer trusted: {msg}");
}

/// Python's own client: `xmlrpc.client.ServerProxy` over an `ssl` context with the caller's
/// certificate and key, pinning the node's certificate by its DER bytes.
const PY_FLOW: &str = r#"
import ssl, sys, xmlrpc.client, hashlib
url, cert, key, pin, ticket_file, cred_file = sys.argv[1:]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE   # pinned below: the node's GID is not a web PKI certificate
ctx.load_cert_chain(cert, key)
class Pinned(xmlrpc.client.SafeTransport):
    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True)
        if hashlib.sha256(der).hexdigest() != pin:
            raise SystemExit("server certificate does not match the pin")
        return conn
node = xmlrpc.client.ServerProxy(url, transport=Pinned(context=ctx), allow_none=True)
ticket = open(ticket_file).read()
cred = open(cred_file).read()
sliver_cred = node.redeem_ticket(ticket)
assert sliver_cred.startswith("-----BEGIN CERTIFICATE-----"), sliver_cred[:40]
print("redeem", "ok")
print("start", node.start_slice(cred))
print("names", node.list_slices(cred))
print("list", [(r["name"], r["slice"], r["state"]) for r in node.list_slivers(cred)])
print("stop", node.stop_slice(sliver_cred))
print("reset", node.reset_slice(cred))
print("list", [(r["name"], r["state"]) for r in node.list_slivers(cred)])
print("delete", node.delete_slice(cred))
print("list", node.list_slices(cred))
try:
    node.get_ticket(cred, "planetlab.us.pl.s1", {})
except xmlrpc.client.Fault as f:
    print("get_ticket fault", f.faultCode)
"#;

#[test]
fn python_xmlrpc_client_drives_the_node() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipping: python3 is not installed");
        return;
    }
    let w = World::new();
    let dir = w.dir.path();
    w.alice.key.save(&dir.join("alice.pkey")).unwrap();
    write(
        &dir.join("alice.cert"),
        &w.alice.gid.certificate().to_pem().unwrap(),
    );
    write(
        &dir.join("ticket"),
        &w.ticket(&w.alice, &w.s1, "pl_s1", SCRIPT, 1.0),
    );
    write(&dir.join("cred"), &w.slice_cred(&w.alice, &w.s1));
    let pin: String = w
        .node
        .gid
        .certificate()
        .fingerprint()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = Command::new("python3")
        .args(["-c", PY_FLOW])
        .arg(format!("https://{}/", w.addr))
        .arg(dir.join("alice.cert"))
        .arg(dir.join("alice.pkey"))
        .arg(pin)
        .arg(dir.join("ticket"))
        .arg(dir.join("cred"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = "redeem ok\n\
                start 1\n\
                names ['pl_s1']\n\
                list [('pl_s1', 'planetlab.us.pl.s1', 'running')]\n\
                stop 1\n\
                reset 1\n\
                list [('pl_s1', 'running')]\n\
                delete 1\n\
                list []\n\
                get_ticket fault 107\n";
    assert_eq!(stdout, want);
    assert!(!w.sliver_dir("pl_s1").exists());
}
