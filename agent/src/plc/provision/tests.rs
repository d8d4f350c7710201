//! Every add, failed at each of its steps in turn, against a real SQLite file, a real authority
//! tree and the embedded PLC: the tree, the store and the PLC must read back exactly as before.
//! The PLC fails through a wrapper that refuses its n-th add; the store through a SQLite trigger;
//! the tree through a file where the new authority's directory would go.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use geni_trust::{Hierarchy, Keypair, Policy, PublicKey, TrustedRoots, Verifier};

use super::*;
use crate::plc::authorities::Authorities;
use crate::plc::backend::{
    InitScript, Key, Person, PlcNode, PlcResult, Site, Slice, SliceAttribute,
};
use crate::plc::db::{Db, sqlite_url};
use crate::plc::embedded::Embedded;
use crate::plc::store::Store;

/// The embedded PLC, refusing its `fail_at`-th add (counting from 1; 0 never refuses).
#[derive(Debug)]
struct Faulty {
    inner: Embedded,
    fail_at: AtomicUsize,
    adds: AtomicUsize,
}

impl Faulty {
    /// Counts one add, and refuses it if it is the one to fail.
    fn add(&self) -> PlcResult<()> {
        let n = self.adds.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(PlcError::Unavailable(format!(
                "add {n} refused by the test"
            )));
        }
        Ok(())
    }

    fn fail_at(&self, n: usize) {
        self.adds.store(0, Ordering::SeqCst);
        self.fail_at.store(n, Ordering::SeqCst);
    }
}

impl PlcBackend for Faulty {
    async fn get_sites(&self, lookup: Lookup) -> PlcResult<Vec<Site>> {
        self.inner.get_sites(lookup).await
    }
    async fn get_persons(&self, lookup: Lookup) -> PlcResult<Vec<Person>> {
        self.inner.get_persons(lookup).await
    }
    async fn get_keys(&self, lookup: Lookup) -> PlcResult<Vec<Key>> {
        self.inner.get_keys(lookup).await
    }
    async fn get_slices(&self, lookup: Lookup) -> PlcResult<Vec<Slice>> {
        self.inner.get_slices(lookup).await
    }
    async fn get_nodes(&self, lookup: Lookup) -> PlcResult<Vec<PlcNode>> {
        self.inner.get_nodes(lookup).await
    }
    async fn get_slice_attributes(&self, slice_id: i64) -> PlcResult<Vec<SliceAttribute>> {
        self.inner.get_slice_attributes(slice_id).await
    }
    async fn get_initscripts(&self, lookup: Lookup) -> PlcResult<Vec<InitScript>> {
        self.inner.get_initscripts(lookup).await
    }
    async fn add_site(&self, fields: Struct) -> PlcResult<i64> {
        self.add()?;
        self.inner.add_site(fields).await
    }
    async fn add_person(&self, fields: Struct) -> PlcResult<i64> {
        self.add()?;
        self.inner.add_person(fields).await
    }
    async fn add_slice(&self, fields: Struct) -> PlcResult<i64> {
        self.add()?;
        self.inner.add_slice(fields).await
    }
    async fn add_node(&self, login_base: &str, fields: Struct) -> PlcResult<i64> {
        self.add()?;
        self.inner.add_node(login_base, fields).await
    }
    async fn add_person_key(&self, person_id: i64, key_type: &str, key: &str) -> PlcResult<i64> {
        self.add()?;
        self.inner.add_person_key(person_id, key_type, key).await
    }
    async fn add_person_to_site(&self, person_id: i64, site_id: i64) -> PlcResult<()> {
        self.add()?;
        self.inner.add_person_to_site(person_id, site_id).await
    }
    async fn add_role_to_person(&self, role: &str, person_id: i64) -> PlcResult<()> {
        self.add()?;
        self.inner.add_role_to_person(role, person_id).await
    }
    async fn add_person_to_slice(&self, person_id: i64, slice_id: i64) -> PlcResult<()> {
        self.add()?;
        self.inner.add_person_to_slice(person_id, slice_id).await
    }
    async fn delete_person_from_slice(&self, person_id: i64, slice_id: i64) -> PlcResult<()> {
        self.inner
            .delete_person_from_slice(person_id, slice_id)
            .await
    }
    async fn set_slice_attribute(
        &self,
        slice_id: i64,
        name: &str,
        value: &str,
        node_id: Option<i64>,
    ) -> PlcResult<i64> {
        self.add()?;
        self.inner
            .set_slice_attribute(slice_id, name, value, node_id)
            .await
    }
    async fn add_initscript(&self, name: &str, script: &str) -> PlcResult<i64> {
        self.add()?;
        self.inner.add_initscript(name, script).await
    }
    async fn update_site(&self, id: i64, fields: Struct) -> PlcResult<()> {
        self.inner.update_site(id, fields).await
    }
    async fn update_person(&self, id: i64, fields: Struct) -> PlcResult<()> {
        self.inner.update_person(id, fields).await
    }
    async fn update_slice(&self, id: i64, fields: Struct) -> PlcResult<()> {
        self.inner.update_slice(id, fields).await
    }
    async fn update_node(&self, id: i64, fields: Struct) -> PlcResult<()> {
        self.inner.update_node(id, fields).await
    }
    async fn delete_site(&self, id: i64) -> PlcResult<()> {
        self.inner.delete_site(id).await
    }
    async fn delete_person(&self, id: i64) -> PlcResult<()> {
        self.inner.delete_person(id).await
    }
    async fn delete_slice(&self, id: i64) -> PlcResult<()> {
        self.inner.delete_slice(id).await
    }
    async fn delete_node(&self, id: i64) -> PlcResult<()> {
        self.inner.delete_node(id).await
    }
}

/// A registry under `planetlab.us` with site `pl` and person alice already added.
struct World {
    dir: tempfile::TempDir,
    db: Db,
    registry: Registry<Faulty>,
    site_id: i64,
    alice: i64,
    key: PublicKey,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let hierarchy = Hierarchy::new(dir.path().join("authorities"));
    let interface = Hrn::parse("planetlab.us").unwrap();
    hierarchy.create_authority(&interface, true).unwrap();
    let root = hierarchy
        .authority(&Hrn::parse("planetlab").unwrap())
        .unwrap();
    let roots = TrustedRoots::from_gids(vec![root.gid]).unwrap();
    let db = Db::open(&sqlite_url(&dir.path().join("plc.db")))
        .await
        .unwrap();
    let registry = Registry {
        verifier: Arc::new(Verifier::new(roots, Policy::default())),
        authorities: Authorities::new(hierarchy),
        store: Store::new(db.clone()),
        plc: Faulty {
            inner: Embedded::new(db.clone()),
            fail_at: AtomicUsize::new(0),
            adds: AtomicUsize::new(0),
        },
        credential_lifetime: 3_600,
        ticket_lifetime: 3_600,
    };
    let key = Keypair::generate(1024).unwrap().public_key();
    let site = add_site(
        &registry,
        &Hrn::parse("planetlab.us.pl").unwrap(),
        &[RecordType::Sa, RecordType::Ma],
        Struct::new()
            .with("name", "Princeton")
            .with("abbreviated_name", "pl"),
        SiteSource::New,
    )
    .await
    .unwrap();
    let mut w = World {
        dir,
        db,
        registry,
        site_id: site.site_id,
        alice: 0,
        key,
    };
    w.alice = Op::Person("alice").run(&w).await.unwrap();
    w
}

/// One add, made afresh for every attempt.
#[derive(Debug, Clone, Copy)]
enum Op {
    Node(&'static str),
    Person(&'static str),
    Site(&'static str),
    Slice(&'static str),
}

impl Op {
    /// How many PLC adds it makes when nothing fails.
    fn plc_adds(self) -> usize {
        match self {
            // AddPerson, AddPersonToSite, two roles, one key.
            Self::Person(_) => 5,
            // AddSlice, AddPersonToSlice.
            Self::Slice(_) => 2,
            Self::Node(_) | Self::Site(_) => 1,
        }
    }

    fn hrn(self) -> Hrn {
        let leaf = match self {
            Self::Node(l) | Self::Person(l) | Self::Slice(l) => format!("pl.{l}"),
            Self::Site(l) => l.to_owned(),
        };
        Hrn::parse(&format!("planetlab.us.{leaf}")).unwrap()
    }

    async fn run(self, w: &World) -> Result<i64, ProvisionError> {
        let r = &w.registry;
        let hrn = self.hrn();
        let gid = || {
            r.authorities
                .create_gid(&hrn, None, &w.key)
                .unwrap()
                .to_chain_string(ChainForm::Separator)
                .unwrap()
        };
        match self {
            Self::Site(_) => add_site(
                r,
                &hrn,
                &[RecordType::Sa, RecordType::Ma],
                Struct::new()
                    .with("name", "A site")
                    .with("abbreviated_name", "x"),
                SiteSource::New,
            )
            .await
            .map(|s| s.site_id),
            Self::Person(leaf) => {
                let person = NewPerson {
                    hrn: hrn.clone(),
                    gid: gid(),
                    fields: Struct::new()
                        .with("email", format!("{leaf}@example.org"))
                        .with("first_name", "geni")
                        .with("last_name", leaf),
                    enabled: true,
                    site_id: Some(w.site_id),
                    roles: vec!["user".into(), "pi".into()],
                    ssh_keys: vec![format!("ssh-rsa AAAAB3NzaC1yc2E {leaf}@example.org")],
                };
                add_person(r, person).await
            }
            Self::Slice(leaf) => {
                let slice = NewSlice {
                    hrn: hrn.clone(),
                    gid: gid(),
                    fields: Struct::new().with("name", format!("pl_{leaf}")),
                    person_ids: vec![w.alice],
                };
                add_slice(r, slice).await
            }
            Self::Node(leaf) => {
                let node = NewNode {
                    hrn: hrn.clone(),
                    gid: gid(),
                    login_base: "pl".into(),
                    fields: Struct::new().with("hostname", format!("{leaf}.example.org")),
                };
                add_node(r, node).await
            }
        }
    }
}

/// Everything an add may change, read back: the files of the tree, the records, the PLC's rows.
async fn snapshot(w: &World) -> String {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                out.push((path.clone(), Vec::new()));
                walk(&path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    let mut files = Vec::new();
    walk(&w.dir.path().join("authorities"), &mut files);
    let plc = &w.registry.plc.inner;
    format!(
        "{files:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        w.registry.store.keys().await.unwrap(),
        plc.get_sites(Lookup::All).await.unwrap(),
        plc.get_persons(Lookup::All).await.unwrap(),
        plc.get_keys(Lookup::All).await.unwrap(),
        plc.get_slices(Lookup::All).await.unwrap(),
        plc.get_nodes(Lookup::All).await.unwrap(),
    )
}

/// Fails `op` at each PLC add, then at the store, and checks that each failure changed nothing;
/// then lets it succeed.
async fn fails_cleanly_at_every_step(w: &World, op: Op) {
    let before = snapshot(w).await;
    for n in 1..=op.plc_adds() {
        w.registry.plc.fail_at(n);
        let e = op.run(w).await.unwrap_err();
        assert!(matches!(e, ProvisionError::Plc(_)), "{op:?} step {n}: {e}");
        assert_eq!(snapshot(w).await, before, "{op:?} failed at PLC add {n}");
    }
    w.registry.plc.fail_at(0);

    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON registry_records \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(w.db.pool())
    .await
    .unwrap();
    let e = op.run(w).await.unwrap_err();
    assert!(matches!(e, ProvisionError::Store(_)), "{op:?}: {e}");
    assert_eq!(snapshot(w).await, before, "{op:?} failed at the store");
    sqlx::query("DROP TRIGGER refuse")
        .execute(w.db.pool())
        .await
        .unwrap();

    w.registry.plc.fail_at(0);
    op.run(w).await.unwrap();
    assert_eq!(
        w.registry.plc.adds.load(Ordering::SeqCst),
        op.plc_adds(),
        "{op:?} made another number of PLC adds than the test failed"
    );
    let after = snapshot(w).await;
    assert_ne!(after, before, "{op:?} succeeded and changed nothing");
    let e = op.run(w).await.unwrap_err();
    assert!(matches!(e, ProvisionError::Exists { .. }), "{op:?}: {e}");
    assert_eq!(snapshot(w).await, after, "{op:?} again changed something");
}

#[tokio::test]
async fn a_site_failed_at_any_step_leaves_tree_store_and_plc_as_they_were() {
    let w = world().await;
    // The tree: a file where the new authority's directory goes.
    let blocker = w.dir.path().join("authorities/planetlab/us/ee");
    std::fs::write(&blocker, "not a directory").unwrap();
    let before = snapshot(&w).await;
    let e = Op::Site("ee").run(&w).await.unwrap_err();
    assert!(matches!(e, ProvisionError::Authority(_)), "{e}");
    assert_eq!(snapshot(&w).await, before);
    std::fs::remove_file(&blocker).unwrap();

    fails_cleanly_at_every_step(&w, Op::Site("ee")).await;
    assert!(w.registry.authorities.holds(&Op::Site("ee").hrn()));
}

#[tokio::test]
async fn a_person_failed_at_any_step_leaves_store_and_plc_as_they_were() {
    let w = world().await;
    fails_cleanly_at_every_step(&w, Op::Person("bob")).await;
}

#[tokio::test]
async fn a_slice_failed_at_any_step_leaves_store_and_plc_as_they_were() {
    let w = world().await;
    fails_cleanly_at_every_step(&w, Op::Slice("s1")).await;
}

#[tokio::test]
async fn a_node_failed_at_any_step_leaves_store_and_plc_as_they_were() {
    let w = world().await;
    fails_cleanly_at_every_step(&w, Op::Node("n1")).await;
}

#[tokio::test]
async fn register_adopts_an_unclaimed_site_and_refuses_a_claimed_one() {
    let w = world().await;
    let r = &w.registry;
    let plc_site = r
        .plc
        .inner
        .add_site(
            Struct::new()
                .with("login_base", "ee")
                .with("name", "Unclaimed")
                .with("abbreviated_name", "ee"),
        )
        .await
        .unwrap();
    let ee = Hrn::parse("planetlab.us.ee").unwrap();
    let sa = add_site(r, &ee, &[RecordType::Sa], Struct::new(), SiteSource::Adopt)
        .await
        .unwrap();
    assert_eq!(sa.site_id, plc_site);
    // The ma takes its sa's site.
    let ma = add_site(r, &ee, &[RecordType::Ma], Struct::new(), SiteSource::Adopt)
        .await
        .unwrap();
    assert_eq!(ma.site_id, plc_site);
    assert_eq!(ma.gid, sa.gid);

    // Another authority with the same login_base finds the site claimed, and makes nothing.
    let before = snapshot(&w).await;
    let other = Hrn::parse("planetlab.us.pl.ee").unwrap();
    let e = add_site(
        r,
        &other,
        &[RecordType::Sa],
        Struct::new(),
        SiteSource::Adopt,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ProvisionError::SiteClaimed { owner, .. } if *owner == ee),
        "{e}"
    );
    assert_eq!(snapshot(&w).await, before);
}
