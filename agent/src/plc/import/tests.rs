//! The whole import against the PLCAPI double over HTTPS (through the `plcapi` backend), into the
//! registry's store in a real SQLite file and a real authority tree on disk, run twice.

use std::collections::BTreeMap;
use std::path::Path;

use geni_trust::{Gid, Policy, PublicKey, TrustedRoots, Verifier};
use plcapi_double::{ADMIN_EMAIL, ADMIN_PASSWORD, Plc, PlcDouble, Scale};

use super::*;
use crate::plc::db::{Db, sqlite_url};
use crate::plc::plcapi::{AuthMethod, PlcApiBackend, PlcApiSettings, RetrySettings, Secret};

/// A registry store in a real SQLite file under `dir`.
async fn store(dir: &Path) -> Store {
    let db = Db::open(&sqlite_url(&dir.join("plc.db"))).await.unwrap();
    Store::new(db)
}

/// Every record the store holds, by hrn and type, with its GID parsed.
async fn stored_records(store: &Store) -> Vec<(StoredRecord, Gid)> {
    let mut keys = store.keys().await.unwrap();
    keys.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
    let mut out = Vec::new();
    for (hrn, kind) in keys {
        let r = store
            .find(&Hrn::parse(&hrn).unwrap(), kind)
            .await
            .unwrap()
            .unwrap();
        let gid = Gid::parse(&r.gid).unwrap();
        out.push((r, gid));
    }
    out
}

async fn backend(double: &PlcDouble, dir: &Path) -> PlcApiBackend {
    let ca = dir.join("plc-ca.pem");
    double.write_ca(&ca).unwrap();
    let settings = PlcApiSettings {
        url: double.url(),
        auth: AuthMethod::Password,
        username: Some(ADMIN_EMAIL.into()),
        password: Some(Secret(ADMIN_PASSWORD.into())),
        session: None,
        ca_file: Some(ca),
        danger_accept_any_certificate: false,
        retry: RetrySettings {
            max_attempts: 2,
            initial_backoff_ms: 20,
            max_backoff_ms: 20,
            timeout_secs: 30,
        },
        multicall_batch: 4,
        ids_per_call: 10,
    };
    PlcApiBackend::new(&settings)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn us() -> Hrn {
    Hrn::parse("planetlab.us").unwrap()
}

fn options(dir: &Path) -> ImportOptions {
    ImportOptions {
        level1: us(),
        trusted_roots: dir.join("trusted_roots"),
        unowned_keys: UnownedKeys::SharedPerRun,
    }
}

/// Every file under `dir` with its contents, to show that a run changed nothing on disk.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[tokio::test]
async fn a_small_plc_imports_once_and_a_second_run_changes_nothing() {
    let double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plc = backend(&double, dir.path()).await;
    let h = Hierarchy::new(dir.path().join("authorities"));
    let options = options(dir.path());
    let roots_dir = options.trusted_roots.clone();
    let sink = store(dir.path()).await;

    double.reset_stats();
    let first = import(&plc, &sink, &h, &options, &Progress::hidden())
        .await
        .unwrap();
    // Bulk reads went through multicall (10 ids per call, 4 calls per request).
    assert!(double.stats().multicalls >= 2, "{:?}", double.stats());

    // What PLC holds, counted from the double itself.
    let (sites, memberships, slices, nodes) = double.with_plc(|p| {
        let sites: Vec<_> = (1..=5).filter_map(|i| p.site(i).cloned()).collect();
        let memberships: usize = sites.iter().map(|s| s.person_ids.len()).sum();
        (sites.len(), memberships, 20, 10)
    });
    assert_eq!(
        (first.sites, first.slices, first.nodes),
        (sites, slices, nodes)
    );
    assert_eq!(first.authorities_created, 2 + sites);
    assert_eq!(
        first.created,
        [sites + 1, sites + 1, memberships, slices, nodes],
        "{first}"
    );
    assert_eq!(first.present, [0; 5]);
    assert!(first.skipped.is_empty(), "{first}");
    let RootExport::Written(root_path) = &first.root else {
        panic!("{:?}", first.root);
    };
    assert_eq!(root_path, &roots_dir.join("planetlab.gid"));

    // Every GID verifies against the exported root alone.
    let verifier = Verifier::new(
        TrustedRoots::load_dir(&roots_dir).unwrap(),
        Policy::default(),
    );
    let stored = stored_records(&sink).await;
    assert_eq!(stored.len(), first.created_total());
    for (r, gid) in &stored {
        let v = verifier.verify_gid(gid).unwrap();
        assert_eq!(v.hrn(), &r.hrn);
    }
    let records: Vec<NewRecord> = stored
        .iter()
        .map(|(r, gid)| NewRecord {
            hrn: r.hrn.clone(),
            kind: r.kind,
            pointer: r.pointer,
            gid: gid.clone(),
        })
        .collect();
    // sa and ma records carry the authority's own GID (the 2008 register bug, not repeated).
    let pl = records
        .iter()
        .find(|r| r.hrn.as_str() == "planetlab.us.pl" && r.kind == RecordType::Ma)
        .unwrap();
    assert_eq!(pl.pointer, 1);
    assert_eq!(
        pl.gid.public_key(),
        h.authority(&pl.hrn).unwrap().gid.public_key()
    );
    let top: Vec<(RecordType, i64)> = records
        .iter()
        .filter(|r| r.hrn.as_str() == "planetlab.us")
        .map(|r| (r.kind, r.pointer))
        .collect();
    assert_eq!(top, [(RecordType::Ma, -1), (RecordType::Sa, -1)]);
    // A user's GID holds their first PLC RSA key (person 3 has a DSA key before it); a slice is
    // named as 2008 named it.
    let (key_ids, slice_name) = double.with_plc(|p| {
        let key_ids = p.person(3).unwrap().key_ids.clone();
        (key_ids, p.slice(1).unwrap().name.clone())
    });
    let person3 = records
        .iter()
        .find(|r| r.kind == RecordType::User && r.pointer == 3)
        .unwrap();
    let keys = plc.get_keys(Lookup::Ids(key_ids)).await.unwrap();
    assert!(keys[0].key.starts_with("ssh-dss"));
    assert!(keys[1].key.starts_with("ssh-rsa"));
    assert_eq!(
        person3.gid.public_key(),
        &PublicKey::from_openssh(&keys[1].key).unwrap()
    );
    // Slices and nodes share the run's unowned key, which is no one's PLC key.
    let unowned: Vec<&PublicKey> = records
        .iter()
        .filter(|r| matches!(r.kind, RecordType::Slice | RecordType::Node))
        .map(|r| r.gid.public_key())
        .collect();
    assert_eq!(unowned.len(), slices + nodes);
    assert!(unowned.iter().all(|k| *k == unowned[0]));
    assert_ne!(unowned[0], person3.gid.public_key());
    let slice1 = records
        .iter()
        .find(|r| r.kind == RecordType::Slice && r.pointer == 1)
        .unwrap();
    assert_eq!(
        geni_trust::hrn_to_pl_slicename(&slice1.hrn).unwrap(),
        slice_name
    );

    // The second run: nothing new, nothing changed, on disk or in the registry.
    let disk = tree(&dir.path().join("authorities"));
    let roots = tree(&roots_dir);
    let stored_before: Vec<StoredRecord> = stored.iter().map(|(r, _)| r.clone()).collect();
    let second = import(&plc, &sink, &h, &options, &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(second.created_total(), 0, "{second}");
    assert_eq!(second.authorities_created, 0);
    assert_eq!(second.present, first.created);
    assert_eq!(second.root, RootExport::Unchanged(root_path.clone()));
    assert_eq!(tree(&dir.path().join("authorities")), disk);
    assert_eq!(tree(&roots_dir), roots);
    let stored_after: Vec<StoredRecord> = stored_records(&sink)
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(stored_after, stored_before);

    // A person added to PLC since: the third run adds exactly that user.
    double.with_plc(|p| {
        let id = p
            .add_person(
                &geni_xmlrpc::Struct::new()
                    .with("first_name", "New")
                    .with("last_name", "Comer")
                    .with("email", "newcomer@pl.example.edu"),
            )
            .unwrap();
        p.add_person_to_site(id, 1).unwrap();
    });
    let third = import(&plc, &sink, &h, &options, &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(third.created, [0, 0, 1, 0, 0]);
    let newcomer = Hrn::parse("planetlab.us.pl.Comer_New").unwrap();
    assert!(
        sink.find(&newcomer, RecordType::User)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        usize::try_from(sink.count().await.unwrap()).unwrap(),
        stored_before.len() + 1
    );
}

#[tokio::test]
async fn an_unreachable_plc_fails_before_anything_is_written() {
    let mut double = PlcDouble::start(Plc::generate(Scale::SMALL)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plc = backend(&double, dir.path()).await;
    double.stop().await;
    let h = Hierarchy::new(dir.path().join("authorities"));
    let sink = store(dir.path()).await;
    let err = import(&plc, &sink, &h, &options(dir.path()), &Progress::hidden())
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.starts_with("reading PLC: "), "{message}");
    assert!(message.contains("gave up after 2 attempts"), "{message}");
    assert!(!dir.path().join("authorities").exists());
    assert!(!dir.path().join("trusted_roots").exists());
    assert_eq!(sink.count().await.unwrap(), 0);
}

#[test]
fn a_different_root_in_trusted_roots_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(dir.path().join("authorities"));
    let root = Hrn::parse("planetlab").unwrap();
    h.create_authority(&root, false).unwrap();
    let roots = dir.path().join("trusted_roots");
    std::fs::create_dir(&roots).unwrap();
    std::fs::write(roots.join("planetlab.gid"), "someone else's root").unwrap();
    let got = export_root(&h, &root, &roots).unwrap();
    assert_eq!(got, RootExport::Differs(roots.join("planetlab.gid")));
    assert_eq!(
        std::fs::read_to_string(roots.join("planetlab.gid")).unwrap(),
        "someone else's root"
    );
    std::fs::remove_file(roots.join("planetlab.gid")).unwrap();
    let RootExport::Written(path) = export_root(&h, &root, &roots).unwrap() else {
        panic!("not written");
    };
    let written = Gid::load(&path).unwrap();
    assert_eq!(written.hrn(), &root);
    assert!(written.parent().is_none());
}

#[test]
fn unowned_keys_are_shared_per_run_or_made_per_record() {
    use super::plan::{KeySource, PlannedRecord};
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(dir.path().join("authorities"));
    let site = Hrn::parse("planetlab.us.pl").unwrap();
    h.create_authority(&site, true).unwrap();
    let planned: Vec<PlannedRecord> = ["a", "b", "c"]
        .iter()
        .map(|leaf| PlannedRecord {
            hrn: Hrn::parse(&format!("planetlab.us.pl.{leaf}")).unwrap(),
            kind: RecordType::Slice,
            pointer: 1,
            key: KeySource::Unowned,
        })
        .collect();
    let keys = |mode| -> Vec<PublicKey> {
        materialize::make_gids(&h, &planned, mode, &Progress::hidden())
            .unwrap()
            .iter()
            .map(|r| r.gid.public_key().clone())
            .collect()
    };
    let shared = keys(UnownedKeys::SharedPerRun);
    assert!(shared[0] == shared[1] && shared[1] == shared[2]);
    // A new run, a new key.
    assert_ne!(keys(UnownedKeys::SharedPerRun)[0], shared[0]);
    let distinct = keys(UnownedKeys::PerRecord);
    assert!(distinct[0] != distinct[1] && distinct[1] != distinct[2] && distinct[0] != distinct[2]);
}
