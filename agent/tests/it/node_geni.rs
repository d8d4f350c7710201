//! A real `geni-agent node` (TLS on loopback, real sliver processes) taking GENI credentials
//! beside 2008 ones: one authority tree made with URN GIDs issues a 2008 ticket and GENI slice
//! credentials; the slice's owner and a delegate act with them, and every refusal (another
//! principal presenting the credential, rights too small, a changed byte) leaves the sliver as it
//! was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::time::Duration;

use geni_rpc::TlsIdentity;
use geni_rpc::client::{GeniClient, server_auth_from_gid};
use geni_trust::geni::{GeniIssue, Privilege, SignatureAlgorithm, delegate, issue};
use geni_trust::{ChainForm, Gid, Hierarchy, Keypair, RecordType, RightList};
use geni_xmlrpc::{Struct, Value};
use support::{Principal, SCRIPT, bin, fault_code, hrn, node_files, now, spawn_node, wait_until};

fn s(v: &str) -> Value {
    Value::from(v)
}

fn typed(h: &Hierarchy, name: &str, kind: RecordType) -> Principal {
    let key = Keypair::generate(2048).unwrap();
    let gid = h
        .create_typed_gid(&hrn(name), kind, None, &key.public_key())
        .unwrap();
    Principal { key, gid }
}

fn client(who: &Principal, addr: &str, node: &Gid) -> GeniClient {
    let identity = TlsIdentity::from_pem(
        &who.key.to_pem().unwrap(),
        &who.gid.to_chain_string(ChainForm::Separator).unwrap(),
    )
    .unwrap();
    GeniClient::new(
        &format!("https://{addr}/"),
        identity,
        server_auth_from_gid(node),
        Duration::from_secs(20),
    )
    .unwrap()
}

fn privileges(names: &[&str], can_delegate: bool) -> Vec<Privilege> {
    names
        .iter()
        .map(|n| Privilege::new(n, can_delegate).unwrap())
        .collect()
}

struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_takes_geni_credentials_from_their_owner_and_delegates() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(dir.path().join("authorities")).with_urn_gids(true);
    h.create_authority(&hrn("planetlab.us.pl"), true).unwrap();
    let node = typed(&h, "planetlab.us.pl.node1", RecordType::Node);
    let alice = typed(&h, "planetlab.us.pl.alice", RecordType::User);
    let bob = typed(&h, "planetlab.us.pl.bob", RecordType::User);
    let s1 = typed(&h, "planetlab.us.pl.s1", RecordType::Slice);
    node_files(&h, &node, dir.path(), "local", "");
    let (child, addr) = spawn_node(&bin(), dir.path(), &[]);
    let _node = Node(child);

    // The sliver comes from a 2008 ticket of the same tree.
    let attrs = Struct::new()
        .with("name", "pl_s1")
        .with(
            "keys",
            Value::Array(vec![s("ssh-rsa AAAAB3NzaC1yc2E a@pl")]),
        )
        .with("instantiation", "delegated")
        .with("vref", "default")
        .with("timestamp", Value::Double(100.0))
        .with("initscript", SCRIPT);
    let ticket = h
        .issue_ticket(
            &alice.gid,
            &s1.gid,
            &attrs,
            &Struct::new(),
            Some(node.gid.hrn()),
            86_400,
        )
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let as_alice = client(&alice, &addr, &node.gid);
    as_alice
        .call("redeem_ticket", vec![s(&ticket)])
        .await
        .unwrap();

    // A GENI slice credential, signed by the slice's authority, as gcf would issue it.
    let site = h.authority(&hrn("planetlab.us.pl")).unwrap();
    let expires = now() + 86_400;
    let slice_cred = issue(&GeniIssue {
        owner: &alice.gid,
        target: &s1.gid,
        privileges: &privileges(&["refresh", "embed", "bind", "control", "info"], true),
        expires,
        signer: &site.key,
        signer_gid: &site.gid,
        algorithm: SignatureAlgorithm::RsaSha1,
    })
    .unwrap();
    as_alice
        .call("start_slice", vec![s(&slice_cred)])
        .await
        .unwrap();
    let home = dir.path().join("state").join("slivers").join("pl_s1");
    wait_until("the initscript ran", || home.join("started.txt").exists()).await;
    let names = as_alice
        .call("list_slices", vec![s(&slice_cred)])
        .await
        .unwrap();
    assert_eq!(names, Value::Array(vec![s("pl_s1")]));
    let state = |rows: Value| -> Value {
        rows.as_array().unwrap()[0]
            .as_struct()
            .unwrap()
            .get("state")
            .cloned()
            .unwrap()
    };
    let rows = as_alice
        .call("list_slivers", vec![s(&slice_cred)])
        .await
        .unwrap();
    assert_eq!(state(rows.clone()), s("running"));

    // Bob presenting alice's credential: the TLS key is not the owner's.
    let as_bob = client(&bob, &addr, &node.gid);
    let (code, msg) = fault_code(as_bob.call("stop_slice", vec![s(&slice_cred)]).await);
    assert_ne!(code, 0, "{msg}");
    // A changed byte in the credential: refused.
    let forged = slice_cred.replacen("<name>info</name>", "<name>sa</name>", 1);
    let (code, msg) = fault_code(as_alice.call("stop_slice", vec![s(&forged)]).await);
    assert_ne!(code, 0, "{msg}");
    assert!(msg.contains("digest mismatch"), "{msg}");
    // Info only, delegated to bob: he may list but not stop.
    let info_only = delegate(
        &slice_cred,
        &bob.gid,
        &privileges(&["info"], false),
        expires - 60,
        &alice.key,
        &alice.gid,
        SignatureAlgorithm::RsaSha256,
    )
    .unwrap();
    as_bob
        .call("list_slices", vec![s(&info_only)])
        .await
        .unwrap();
    let (code, msg) = fault_code(as_bob.call("stop_slice", vec![s(&info_only)]).await);
    assert_ne!(code, 0, "{msg}");
    // Nothing above changed the sliver.
    let rows_after = as_alice
        .call("list_slivers", vec![s(&slice_cred)])
        .await
        .unwrap();
    assert_eq!(rows_after, rows);

    // With control delegated, bob stops it.
    let control = delegate(
        &slice_cred,
        &bob.gid,
        &privileges(&["control"], false),
        expires - 60,
        &alice.key,
        &alice.gid,
        SignatureAlgorithm::RsaSha256,
    )
    .unwrap();
    as_bob.call("stop_slice", vec![s(&control)]).await.unwrap();
    let rows = as_alice
        .call("list_slivers", vec![s(&slice_cred)])
        .await
        .unwrap();
    assert_eq!(state(rows), s("stopped"));
    // And the 2008 form still works on the same node.
    let rights: RightList = "control,info".parse().unwrap();
    let cred_2008 = h
        .issue_credential(&alice.gid, &s1.gid, &rights, false, 86_400)
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    as_alice
        .call("start_slice", vec![s(&cred_2008)])
        .await
        .unwrap();
    let rows = as_alice
        .call("list_slivers", vec![s(&slice_cred)])
        .await
        .unwrap();
    assert_eq!(state(rows), s("running"));
}
