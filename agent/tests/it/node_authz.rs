//! Node authorization against a real `geni-agent node` (TLS on loopback, real sliver processes
//! and files), tried as a hostile site or researcher would: two sites, `planetlab.us.pl` (which
//! runs the node) and `planetlab.us.p`, and their slices. Every refusal test asserts the fault code
//! *and* that nothing changed: the victim sliver's state, pid, record timestamp, keys file,
//! initscript and what its process wrote are the same afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use geni_tests as support;

use std::path::Path;
use std::time::Duration;

use geni_rpc::client::GeniClient;
use geni_trust::{
    CertMode, ChainForm, Credential, Keypair, RecordType, RightList, Ticket, Validity,
    credential_under, gid_under, ticket_under,
};
use geni_xmlrpc::{Struct, Value};
use support::{Principal, SCRIPT, World, alive, fault_code, hrn, principal, wait_until};

const VICTIM_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCvictim victim@pl";
const ATTACKER_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCmallory mallory@p";

fn s(v: &str) -> Value {
    Value::from(v)
}

fn text<T: ChainText>(o: &T) -> String {
    o.chain()
}

trait ChainText {
    fn chain(&self) -> String;
}

impl ChainText for Credential {
    fn chain(&self) -> String {
        self.to_chain_string(ChainForm::Separator).unwrap()
    }
}

impl ChainText for Ticket {
    fn chain(&self) -> String {
        self.to_chain_string(ChainForm::Separator).unwrap()
    }
}

/// The attributes of a ticket for sliver `name`.
fn attributes(name: &str, key: &str, initscript: &str, timestamp: f64) -> Struct {
    Struct::new()
        .with("name", name)
        .with("keys", Value::Array(vec![s(key)]))
        .with("instantiation", "delegated")
        .with("vref", "default")
        .with("timestamp", Value::Double(timestamp))
        .with("initscript", initscript)
}

/// Two sites around a running node of `planetlab.us.pl`.
struct Sites {
    w: World,
    /// `planetlab.us.p`'s PI and her `sa` credential over her site.
    mallory: Principal,
    mallory_pi: String,
}

impl Sites {
    fn new() -> Self {
        Self::with_env(&[])
    }

    fn with_env(envs: &[(&str, &str)]) -> Self {
        let mut w = World::new();
        if !envs.is_empty() {
            w.kill_agent();
            w.envs = envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            w.start_agent();
        }
        w.h.create_authority(&hrn("planetlab.us.p"), false).unwrap();
        let mallory = principal(&w.h, "planetlab.us.p.mallory");
        let site_p = w.h.authority(&hrn("planetlab.us.p")).unwrap().gid;
        let mallory_pi = text(
            &w.h.issue_credential(
                &mallory.gid,
                &site_p,
                &RightList::for_record_type(RecordType::Sa),
                false,
                86_400,
            )
            .unwrap(),
        );
        Self {
            w,
            mallory,
            mallory_pi,
        }
    }

    fn client(&self, who: &Principal) -> GeniClient {
        self.w.client(who)
    }

    /// A slice GID of `hrn` (made by its authority in the tree).
    fn slice(&self, slice: &str) -> Principal {
        principal(&self.w.h, slice)
    }

    /// A genuine ticket from the tree for `caller` on `slice`, sliver `name`, for this node.
    fn ticket(
        &self,
        caller: &Principal,
        slice: &Principal,
        name: &str,
        key: &str,
        timestamp: f64,
        lifetime: i64,
    ) -> String {
        text(
            &self
                .w
                .h
                .issue_ticket(
                    &caller.gid,
                    &slice.gid,
                    &attributes(name, key, SCRIPT, timestamp),
                    &Struct::new(),
                    Some(self.w.node.gid.hrn()),
                    lifetime,
                )
                .unwrap(),
        )
    }

    /// `caller` redeems a ticket for `slice` (sliver `name`) and starts it; returns the sliver
    /// credential.
    async fn running(&self, caller: &Principal, slice: &Principal, name: &str) -> String {
        let c = self.client(caller);
        let ticket = self.ticket(caller, slice, name, VICTIM_KEY, 100.0, 86_400);
        let Value::String(sliver_cred) = c.call("redeem_ticket", vec![s(&ticket)]).await.unwrap()
        else {
            panic!("redeem_ticket answers a sliver credential");
        };
        let cred = self.w.slice_cred(caller, slice);
        c.call("start_slice", vec![s(&cred)]).await.unwrap();
        let home = self.w.sliver_dir(name);
        wait_until("the initscript ran", || home.join("started.txt").exists()).await;
        sliver_cred
    }

    /// The site authority of the node (an authority over it), for looking without touching.
    async fn everything(&self) -> Vec<Struct> {
        let (site, cred) = self.w.site();
        let rows = self
            .client(&site)
            .call("list_slivers", vec![s(&cred)])
            .await
            .unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_struct().unwrap().clone())
            .collect()
    }

    async fn snapshot(&self, name: &str) -> Snapshot {
        let row = self
            .everything()
            .await
            .into_iter()
            .find(|r| r.get("name") == Some(&s(name)));
        let home = self.w.sliver_dir(name);
        Snapshot {
            row,
            keys: read(&home.join(".ssh/authorized_keys")),
            initscript: read(&home.join("initscript")),
            started: read(&home.join("started.txt")),
        }
    }

    fn rebooted(&self) -> bool {
        self.w.path("rebooted").exists()
    }
}

/// What must not change when an attack is refused.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// `list_slivers`' row: name, slice, state, pid, timestamp, expires.
    row: Option<Struct>,
    keys: Option<String>,
    initscript: Option<String>,
    started: Option<String>,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

async fn assert_untouched(sites: &Sites, name: &str, before: &Snapshot) {
    // Give a wrongly accepted stop or delete the time it would take to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = sites.snapshot(name).await;
    assert_eq!(&after, before, "sliver {name} changed");
    let row = after.row.as_ref().expect("the sliver is still there");
    assert_eq!(row.get("state"), Some(&s("running")));
    assert!(alive(row.get("pid").and_then(Value::as_i64).unwrap()));
}

// === a credential controls exactly its own slice's sliver ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_credential_cannot_reach_a_sliver_whose_slice_hrn_extends_its_own() {
    // 2008's lossy name map took `planetlab.us.pl.s1.pl.s2` to `pl_s2`, bob's sliver.
    let sites = Sites::new();
    let w = &sites.w;
    sites.running(&w.bob, &w.s2, "pl_s2").await;
    let before = sites.snapshot("pl_s2").await;
    let alice_s1 = w.slice_cred(&w.alice, &w.s1);
    let alice = sites.client(&w.alice);
    for method in ["stop_slice", "reset_slice", "delete_slice", "start_slice"] {
        let (code, msg) = fault_code(
            alice
                .call(method, vec![s(&alice_s1), s("planetlab.us.pl.s1.pl.s2")])
                .await,
        );
        assert_eq!(code, 104, "{method}: {msg}");
        assert!(
            msg.contains("cannot act on slice planetlab.us.pl.s1.pl.s2"),
            "{msg}"
        );
    }
    // Naming bob's slice itself is no better.
    let (code, msg) = fault_code(
        alice
            .call("stop_slice", vec![s(&alice_s1), s("planetlab.us.pl.s2")])
            .await,
    );
    assert_eq!(code, 104, "{msg}");
    assert_untouched(&sites, "pl_s2", &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_pi_cannot_reach_a_sliver_through_a_name_that_maps_to_it() {
    // `planetlab.us.p.pl.victim` maps to `pl_victim`, the sliver of `planetlab.us.pl.victim`.
    let sites = Sites::new();
    let w = &sites.w;
    let victim = sites.slice("planetlab.us.pl.victim");
    sites.running(&w.alice, &victim, "pl_victim").await;
    let before = sites.snapshot("pl_victim").await;
    let mallory = sites.client(&sites.mallory);
    for method in ["stop_slice", "reset_slice", "delete_slice"] {
        let (code, msg) = fault_code(
            mallory
                .call(
                    method,
                    vec![s(&sites.mallory_pi), s("planetlab.us.p.pl.victim")],
                )
                .await,
        );
        assert_eq!(code, 105, "{method}: {msg}");
        assert!(msg.contains("planetlab.us.p.pl.victim"), "{msg}");
        // Aimed at the victim's real hrn, outside her site: refused outright.
        let (code, msg) = fault_code(
            mallory
                .call(
                    method,
                    vec![s(&sites.mallory_pi), s("planetlab.us.pl.victim")],
                )
                .await,
        );
        assert_eq!(code, 104, "{method}: {msg}");
    }
    // Her site's listing does not show another site's sliver.
    for method in ["list_slices", "list_slivers"] {
        let listed = mallory
            .call(method, vec![s(&sites.mallory_pi)])
            .await
            .unwrap();
        assert_eq!(listed, Value::Array(Vec::new()), "{method}");
        let listed = mallory
            .call(
                method,
                vec![s(&sites.mallory_pi), s("planetlab.us.p.pl.victim")],
            )
            .await
            .unwrap();
        assert_eq!(listed, Value::Array(Vec::new()), "{method} with a target");
    }
    assert_untouched(&sites, "pl_victim", &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_authority_ticket_cannot_take_over_a_sliver_of_the_same_name() {
    // `planetlab.us.p.pl` is a genuine sub-authority of the foreign site; its genuine ticket for
    // `planetlab.us.p.pl.victim` names sliver `pl_victim` too, with mallory's key and script.
    let sites = Sites::new();
    let w = &sites.w;
    let victim = sites.slice("planetlab.us.pl.victim");
    sites.running(&w.alice, &victim, "pl_victim").await;
    let before = sites.snapshot("pl_victim").await;
    w.h.create_authority(&hrn("planetlab.us.p.pl"), false)
        .unwrap();
    let twin = sites.slice("planetlab.us.p.pl.victim");
    let ticket = sites.ticket(
        &sites.mallory,
        &twin,
        "pl_victim",
        ATTACKER_KEY,
        1e9,
        86_400,
    );
    let (code, msg) = fault_code(
        sites
            .client(&sites.mallory)
            .call("redeem_ticket", vec![s(&ticket)])
            .await,
    );
    assert_eq!(code, 106, "{msg}");
    assert!(
        msg.contains("slice planetlab.us.pl.victim"),
        "names the holder: {msg}"
    );
    assert_untouched(&sites, "pl_victim", &before).await;
    assert!(!before.keys.unwrap().contains("mallory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_named_like_the_node_does_not_reach_its_slivers() {
    // Someone registers a slice whose hrn is the node's, then names an object under it exactly
    // as the node names its slivers (`<node hrn>.pl_s1`), even with the right uuid.
    let sites = Sites::new();
    let w = &sites.w;
    let genuine = sites.running(&w.alice, &w.s1, "pl_s1").await;
    let before = sites.snapshot("pl_s1").await;
    let uuid = Credential::parse(&genuine)
        .unwrap()
        .object()
        .unwrap()
        .uuid()
        .unwrap()
        .to_owned();
    let fake_key = Keypair::generate(2048).unwrap();
    let fake_node =
        w.h.create_gid(w.node.gid.hrn(), None, &fake_key.public_key())
            .unwrap();
    let slice_cred =
        w.h.issue_credential(
            &sites.mallory.gid,
            &fake_node,
            &RightList::for_record_type(RecordType::Slice),
            true,
            86_400,
        )
        .unwrap();
    let validity = Validity::from_now(support::now(), 3600);
    let sliver = gid_under(
        &fake_node,
        &fake_key,
        &hrn(&format!("{}.pl_s1", w.node.gid.hrn())),
        &uuid,
        &fake_key.public_key(),
        validity,
        CertMode::Modern,
    )
    .unwrap();
    let forged = credential_under(
        &slice_cred,
        &fake_key,
        &sites.mallory.gid,
        &sliver,
        &"control,info".parse().unwrap(),
        false,
        validity,
        CertMode::Modern,
    )
    .unwrap();
    let mallory = sites.client(&sites.mallory);
    for method in ["stop_slice", "delete_slice"] {
        let (code, msg) = fault_code(mallory.call(method, vec![s(&text(&forged))]).await);
        assert_eq!(code, 105, "{method}: {msg}");
    }
    let listed = mallory
        .call("list_slices", vec![s(&text(&forged))])
        .await
        .unwrap();
    assert_eq!(listed, Value::Array(Vec::new()));
    assert_untouched(&sites, "pl_s1", &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sliver_credential_does_not_reach_a_later_sliver_of_the_same_name() {
    // alice's sliver credential for `planetlab.us.pl.x` (pl_x); the sliver is deleted, and a
    // foreign slice whose name also maps to pl_x redeems it. Her old credential reaches nothing.
    let sites = Sites::new();
    let w = &sites.w;
    let x = sites.slice("planetlab.us.pl.x");
    let old = sites.running(&w.alice, &x, "pl_x").await;
    let alice = sites.client(&w.alice);
    alice
        .call("delete_slice", vec![s(&w.slice_cred(&w.alice, &x))])
        .await
        .unwrap();
    w.h.create_authority(&hrn("planetlab.us.p.pl"), false)
        .unwrap();
    let twin = sites.slice("planetlab.us.p.pl.x");
    sites.running(&sites.mallory, &twin, "pl_x").await;
    let before = sites.snapshot("pl_x").await;
    assert_eq!(
        before.row.as_ref().unwrap().get("slice"),
        Some(&s("planetlab.us.p.pl.x"))
    );
    let (code, msg) = fault_code(alice.call("stop_slice", vec![s(&old)]).await);
    assert_eq!(code, 105, "{msg}");
    let listed = alice.call("list_slices", vec![s(&old)]).await.unwrap();
    assert_eq!(listed, Value::Array(Vec::new()));
    assert_untouched(&sites, "pl_x", &before).await;
}

// === who may act: the owner, an authority over the slice, this node's sliver credential ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slice_an_authority_over_it_and_the_sliver_credential_may_act() {
    let sites = Sites::new();
    let w = &sites.w;
    let sliver_cred = sites.running(&w.alice, &w.s1, "pl_s1").await;
    let alice = sites.client(&w.alice);
    // list_slices is 2008's list of names; list_slivers has the rows.
    let cred = w.slice_cred(&w.alice, &w.s1);
    assert_eq!(
        alice.call("list_slices", vec![s(&cred)]).await.unwrap(),
        Value::Array(vec![s("pl_s1")])
    );
    let rows = alice.call("list_slivers", vec![s(&cred)]).await.unwrap();
    let row = rows.as_array().unwrap()[0].as_struct().unwrap().clone();
    assert_eq!(row.get("slice"), Some(&s("planetlab.us.pl.s1")));
    assert_eq!(row.get("state"), Some(&s("running")));
    // The sliver credential this node issued stops it; the slice credential starts it.
    alice
        .call("stop_slice", vec![s(&sliver_cred)])
        .await
        .unwrap();
    assert_eq!(
        sites.snapshot("pl_s1").await.row.unwrap().get("state"),
        Some(&s("stopped"))
    );
    // The site's authority names the slice by exact hrn.
    let (site, site_cred) = w.site();
    let site_client = sites.client(&site);
    site_client
        .call("start_slice", vec![s(&site_cred), s("planetlab.us.pl.s1")])
        .await
        .unwrap();
    assert_eq!(
        sites.snapshot("pl_s1").await.row.unwrap().get("state"),
        Some(&s("running"))
    );
    // A sliver credential aimed at another slice is refused; at its own it works.
    let (code, msg) = fault_code(
        alice
            .call("stop_slice", vec![s(&sliver_cred), s("planetlab.us.pl.s2")])
            .await,
    );
    assert_eq!(code, 105, "{msg}");
    alice
        .call("stop_slice", vec![s(&sliver_cred), s("planetlab.us.pl.s1")])
        .await
        .unwrap();
    // An authority credential with no slice named acts on no sliver.
    let (code, msg) = fault_code(site_client.call("delete_slice", vec![s(&site_cred)]).await);
    assert_eq!(code, 105, "{msg}");
    assert!(sites.snapshot("pl_s1").await.row.is_some());
    // The node's own authority sees everything and the node's resources.
    let report = site_client
        .call("list_component_resources", vec![s(&site_cred)])
        .await
        .unwrap();
    assert!(report.as_struct().unwrap().get("cpus").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_pi_can_neither_reboot_the_node_nor_read_its_resources() {
    let sites = Sites::new();
    let w = &sites.w;
    sites.running(&w.alice, &w.s1, "pl_s1").await;
    let before = sites.snapshot("pl_s1").await;
    let mallory = sites.client(&sites.mallory);
    for method in ["reboot", "list_component_resources"] {
        let (code, msg) = fault_code(mallory.call(method, vec![s(&sites.mallory_pi)]).await);
        assert_eq!(code, 104, "{method}: {msg}");
        assert!(msg.contains("authority credential over this node"), "{msg}");
    }
    // A researcher with a slice on the node may not either.
    let alice = sites.client(&w.alice);
    let cred = w.slice_cred(&w.alice, &w.s1);
    let (code, msg) = fault_code(alice.call("list_component_resources", vec![s(&cred)]).await);
    assert_eq!(code, 104, "{msg}");
    assert!(!sites.rebooted());
    // Listing every sliver is the node's authority's: the foreign PI sees none of them.
    let listed = mallory
        .call("list_slices", vec![s(&sites.mallory_pi)])
        .await
        .unwrap();
    assert_eq!(listed, Value::Array(Vec::new()));
    assert_untouched(&sites, "pl_s1", &before).await;
    // The node's own site authority reboots it.
    let (site, site_cred) = w.site();
    sites
        .client(&site)
        .call("reboot", vec![s(&site_cred)])
        .await
        .unwrap();
    assert!(sites.rebooted());
}

// === tickets come only from the authority hierarchy ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_minted_by_a_node_is_refused_on_another_node() {
    // node1's operator signs a ticket under node1's delegatable credential over itself and
    // redeems it on node2.
    let sites = Sites::new();
    let w = &sites.w;
    let node2 = w.start_second_node("node2");
    let node_cred = std::fs::read_to_string(w.path("node.cred")).unwrap();
    let parent = Ticket::parse_parent(&node_cred).unwrap();
    let minted = ticket_under(
        &parent,
        &w.node.key,
        &sites.mallory.gid,
        &w.s1.gid,
        &attributes("pl_s1", ATTACKER_KEY, SCRIPT, 1e9),
        &Struct::new(),
        Some(node2.node.gid.hrn()),
        Validity::from_now(support::now(), 3600),
        CertMode::Modern,
    )
    .unwrap();
    let mallory = w.client_at(&sites.mallory, &node2.addr, &node2.node.gid);
    let (code, msg) = fault_code(mallory.call("redeem_ticket", vec![s(&text(&minted))]).await);
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains("not an authority ticket"), "{msg}");
    assert!(!w.path("node2/state/slivers/pl_s1").exists());
    let (site, site_cred) = w.site();
    let listed = w
        .client_at(&site, &node2.addr, &node2.node.gid)
        .call("list_slices", vec![s(&site_cred)])
        .await
        .unwrap();
    assert_eq!(listed, Value::Array(Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_under_a_delegatable_slice_credential_is_refused() {
    let sites = Sites::new();
    let w = &sites.w;
    let delegatable =
        w.h.issue_credential(
            &w.alice.gid,
            &w.s1.gid,
            &RightList::for_record_type(RecordType::Slice),
            true,
            86_400,
        )
        .unwrap();
    let parent = Ticket::parse_parent(&text(&delegatable)).unwrap();
    let minted = ticket_under(
        &parent,
        &w.s1.key,
        &w.alice.gid,
        &w.s1.gid,
        &attributes("pl_s1", ATTACKER_KEY, SCRIPT, 1e9),
        &Struct::new(),
        Some(w.node.gid.hrn()),
        Validity::from_now(support::now(), 3600),
        CertMode::Modern,
    )
    .unwrap();
    let (code, msg) = fault_code(
        sites
            .client(&w.alice)
            .call("redeem_ticket", vec![s(&text(&minted))])
            .await,
    );
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains("not an authority ticket"), "{msg}");
    assert!(sites.everything().await.is_empty());
    assert!(!w.sliver_dir("pl_s1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_or_gid_in_the_wrong_place_is_fault_100() {
    let sites = Sites::new();
    let w = &sites.w;
    let alice = sites.client(&w.alice);
    let cred = w.slice_cred(&w.alice, &w.s1);
    let (code, msg) = fault_code(alice.call("redeem_ticket", vec![s(&cred)]).await);
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("this is a credential, not a ticket"), "{msg}");
    let gid = w.alice.gid.to_chain_string(ChainForm::Separator).unwrap();
    let (code, msg) = fault_code(alice.call("stop_slice", vec![s(&gid)]).await);
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("this is a GID, not a credential"), "{msg}");
    let ticket = sites.ticket(&w.alice, &w.s1, "pl_s1", VICTIM_KEY, 5.0, 3600);
    let (code, msg) = fault_code(alice.call("start_slice", vec![s(&ticket)]).await);
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("this is a ticket, not a credential"), "{msg}");
    assert!(sites.everything().await.is_empty());
    assert!(!w.sliver_dir("pl_s1").exists());
}

// === replay and expiry ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_replayed_after_delete_is_refused_and_a_newer_one_renews() {
    let sites = Sites::new();
    let w = &sites.w;
    let alice = sites.client(&w.alice);
    let ticket = sites.ticket(&w.alice, &w.s1, "pl_s1", VICTIM_KEY, 100.0, 86_400);
    alice.call("redeem_ticket", vec![s(&ticket)]).await.unwrap();
    let cred = w.slice_cred(&w.alice, &w.s1);
    alice.call("delete_slice", vec![s(&cred)]).await.unwrap();
    for replay in [
        ticket.clone(),
        sites.ticket(&w.alice, &w.s1, "pl_s1", ATTACKER_KEY, 100.0, 86_400),
        sites.ticket(&w.alice, &w.s1, "pl_s1", ATTACKER_KEY, 99.0, 86_400),
    ] {
        let (code, msg) = fault_code(alice.call("redeem_ticket", vec![s(&replay)]).await);
        assert_eq!(code, 107, "{msg}");
        assert!(msg.contains("not newer"), "{msg}");
        assert!(sites.everything().await.is_empty());
        assert!(!w.sliver_dir("pl_s1").exists());
    }
    // The tombstone survives a restart of the node.
    let mut sites = sites;
    sites.w.kill_agent();
    sites.w.start_agent();
    let w = &sites.w;
    let alice = sites.client(&w.alice);
    let (code, msg) = fault_code(alice.call("redeem_ticket", vec![s(&ticket)]).await);
    assert_eq!(code, 107, "{msg}");
    assert!(!w.sliver_dir("pl_s1").exists());
    // A newly issued ticket brings the slice back.
    let newer = sites.ticket(&w.alice, &w.s1, "pl_s1", VICTIM_KEY, 101.0, 86_400);
    alice.call("redeem_ticket", vec![s(&newer)]).await.unwrap();
    assert_eq!(sites.everything().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sliver_cannot_be_started_or_reset() {
    // No reaper pass for an hour, so the expired sliver is still there to be refused.
    let sites = Sites::with_env(&[("GENI_AGENT_NODE__REAP_SECS", "3600")]);
    let w = &sites.w;
    let alice = sites.client(&w.alice);
    let ticket = sites.ticket(&w.alice, &w.s1, "pl_s1", VICTIM_KEY, 100.0, 3);
    alice.call("redeem_ticket", vec![s(&ticket)]).await.unwrap();
    let expires = sites.everything().await[0]
        .get("expires")
        .and_then(Value::as_i64)
        .unwrap();
    while support::now() <= expires {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (site, site_cred) = w.site();
    let site_client = sites.client(&site);
    for method in ["start_slice", "reset_slice"] {
        let (code, msg) = fault_code(
            site_client
                .call(method, vec![s(&site_cred), s("planetlab.us.pl.s1")])
                .await,
        );
        assert_eq!(code, 107, "{method}: {msg}");
        assert!(
            msg.contains("expired") && msg.contains("redeem a new ticket"),
            "{msg}"
        );
    }
    let rows = sites.everything().await;
    assert_eq!(rows[0].get("state"), Some(&s("created")));
    assert!(!w.sliver_dir("pl_s1").join("started.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_stops_and_removes_an_expired_sliver() {
    let sites = Sites::with_env(&[("GENI_AGENT_NODE__REAP_SECS", "1")]);
    let w = &sites.w;
    let alice = sites.client(&w.alice);
    let ticket = sites.ticket(&w.alice, &w.s1, "pl_s1", VICTIM_KEY, 100.0, 4);
    alice.call("redeem_ticket", vec![s(&ticket)]).await.unwrap();
    alice
        .call("start_slice", vec![s(&w.slice_cred(&w.alice, &w.s1))])
        .await
        .unwrap();
    let row = sites.everything().await.remove(0);
    assert_eq!(row.get("state"), Some(&s("running")));
    let pid = row.get("pid").and_then(Value::as_i64).unwrap();
    assert!(alive(pid));
    let home = w.sliver_dir("pl_s1");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while home.exists() || alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the reaper did not remove pl_s1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sites.everything().await.is_empty());
    // Its ticket cannot bring it back.
    let (code, msg) = fault_code(alice.call("redeem_ticket", vec![s(&ticket)]).await);
    assert!(code == 107 || code == 101, "{code}: {msg}");
    assert!(msg.contains("expired"), "{msg}");
    assert!(!home.exists());
}
