use geni_trust::Keypair;
use geni_xmlrpc::Struct;

use super::*;

fn hrn(s: &str) -> Hrn {
    Hrn::parse(s).unwrap()
}

fn site(site_id: i64, login_base: &str, persons: &[i64], slices: &[i64], nodes: &[i64]) -> Site {
    Site {
        site_id,
        login_base: login_base.into(),
        name: login_base.into(),
        abbreviated_name: login_base.into(),
        enabled: true,
        is_public: true,
        max_slices: 10,
        person_ids: persons.to_vec(),
        slice_ids: slices.to_vec(),
        node_ids: nodes.to_vec(),
        raw: Struct::new(),
    }
}

fn person(person_id: i64, first: &str, last: &str, keys: &[i64]) -> Person {
    Person {
        person_id,
        email: format!("p{person_id}@example.org"),
        first_name: first.into(),
        last_name: last.into(),
        enabled: true,
        roles: vec!["user".into()],
        site_ids: Vec::new(),
        key_ids: keys.to_vec(),
        slice_ids: Vec::new(),
        raw: Struct::new(),
    }
}

fn key(key_id: i64, person_id: i64, key: &str) -> Key {
    Key {
        key_id,
        person_id,
        key_type: "ssh".into(),
        key: key.into(),
        raw: Struct::new(),
    }
}

fn slice(slice_id: i64, site_id: i64, name: &str) -> Slice {
    Slice {
        slice_id,
        site_id,
        name: name.into(),
        instantiation: "plc-instantiated".into(),
        max_nodes: 100,
        expires: 0,
        person_ids: Vec::new(),
        node_ids: Vec::new(),
        raw: Struct::new(),
    }
}

fn node(node_id: i64, site_id: i64, hostname: &str) -> PlcNode {
    PlcNode {
        node_id,
        site_id,
        hostname: hostname.into(),
        model: String::new(),
        raw: Struct::new(),
    }
}

/// Two sites: `pl` with two persons (one with a DSA key before an RSA key, one keyless), a slice
/// and a node; `mit` with a person who is also at `pl`.
fn snapshot() -> (Snapshot, PublicKey) {
    let rsa = Keypair::generate(1024).unwrap().public_key();
    let line = rsa.to_openssh("alice@pl").unwrap();
    let mut plc = Snapshot {
        sites: vec![
            site(2, "mit", &[3], &[], &[]),
            site(1, "pl", &[1, 2, 3], &[10], &[20]),
        ],
        ..Snapshot::default()
    };
    for p in [
        person(1, "Alice", "Smith", &[100, 101]),
        person(2, "Bob", "O'Neil", &[]),
        person(3, "Carol", "Jones", &[102]),
    ] {
        plc.persons.insert(p.person_id, p);
    }
    for k in [
        key(100, 1, "ssh-dss AAAAB3NzaC1kc3MAAACBAP== alice@pl"),
        key(101, 1, &line),
        key(102, 3, "ssh-rsa garbage carol"),
    ] {
        plc.keys.insert(k.key_id, k);
    }
    plc.slices.insert(10, slice(10, 1, "pl_test1"));
    plc.nodes
        .insert(20, node(20, 1, "planetlab1.cs.princeton.edu"));
    (plc, rsa)
}

fn us() -> Hrn {
    hrn("planetlab.us")
}

fn summary(plan: &Plan) -> Vec<(String, &'static str, i64)> {
    plan.records
        .iter()
        .map(|r| (r.hrn.to_string(), r.kind.as_str(), r.pointer))
        .collect()
}

#[test]
fn a_fresh_registry_gets_everything_2008_imported() {
    let (plc, rsa) = snapshot();
    let plan = plan(&plc, &Existing::default(), &us());
    assert_eq!(
        plan.authorities,
        [
            hrn("planetlab"),
            hrn("planetlab.us"),
            hrn("planetlab.us.pl"),
            hrn("planetlab.us.mit")
        ]
    );
    let s = |h: &str, t, p| (h.to_owned(), t, p);
    assert_eq!(
        summary(&plan),
        [
            s("planetlab.us", "sa", -1),
            s("planetlab.us", "ma", -1),
            s("planetlab.us.pl", "sa", 1),
            s("planetlab.us.pl", "ma", 1),
            s("planetlab.us.pl.Smith_Alice", "user", 1),
            s("planetlab.us.pl.O_Neil_Bob", "user", 2),
            s("planetlab.us.pl.Jones_Carol", "user", 3),
            s("planetlab.us.pl.test1", "slice", 10),
            s("planetlab.us.pl.planetlab1_cs_princeton_edu", "node", 20),
            s("planetlab.us.mit", "sa", 2),
            s("planetlab.us.mit", "ma", 2),
            // A person at two sites is a user at each, with one pointer.
            s("planetlab.us.mit.Jones_Carol", "user", 3),
        ]
    );
    let keys: Vec<&KeySource> = plan.records.iter().map(|r| &r.key).collect();
    assert_eq!(keys[0], &KeySource::Authority);
    // Alice's DSA key is passed over for her RSA key; Carol's key does not read: unowned.
    assert_eq!(
        keys[4],
        &KeySource::Ssh {
            key_id: 101,
            key: rsa
        }
    );
    assert_eq!(keys[5], &KeySource::Unowned);
    assert_eq!(keys[6], &KeySource::Unowned);
    assert_eq!(keys[7], &KeySource::Unowned);
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    assert_eq!(plan.count(RecordType::User), 4);
}

#[test]
fn a_second_run_plans_nothing() {
    let (plc, _) = snapshot();
    let first = plan(&plc, &Existing::default(), &us());
    let existing = Existing {
        records: first
            .records
            .iter()
            .map(|r| (r.hrn.to_string(), r.kind))
            .collect(),
        authorities: first.authorities.iter().map(ToString::to_string).collect(),
    };
    let second = plan(&plc, &existing, &us());
    assert!(second.is_empty(), "{second:?}");
    assert_eq!(second.present.get(&RecordType::User), Some(&4));
    assert_eq!(second.present.get(&RecordType::Sa), Some(&3));
    assert_eq!(second.present.values().sum::<usize>(), first.records.len());
}

#[test]
fn authorities_on_disk_without_records_get_their_records() {
    let (plc, _) = snapshot();
    let existing = Existing {
        authorities: ["planetlab", "planetlab.us", "planetlab.us.pl"]
            .map(String::from)
            .into(),
        ..Existing::default()
    };
    let plan = plan(&plc, &existing, &us());
    assert_eq!(plan.authorities, [hrn("planetlab.us.mit")]);
    assert_eq!(plan.count(RecordType::Sa), 3);
}

#[test]
fn collisions_missing_rows_and_bad_names_are_skipped_with_reasons() {
    let (mut plc, _) = snapshot();
    // Same cleaned name as person 2 at the same site: "O Neil" → "O_Neil".
    plc.persons.insert(4, person(4, "Bob", "O Neil", &[]));
    plc.sites[1].person_ids.push(4);
    // A slice the site lists that GetSlices did not return (expired), and a slice whose name
    // cleans to nothing.
    plc.sites[1].slice_ids.extend([11, 12]);
    plc.slices.insert(12, slice(12, 1, "pl_"));
    // A site whose login base is no hrn label: nothing of it is imported.
    plc.sites.push(site(3, "bad base", &[1], &[], &[]));

    let plan = plan(&plc, &Existing::default(), &us());
    let skipped: Vec<(&str, &str)> = plan
        .skipped
        .iter()
        .map(|s| (s.what.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert_eq!(
        skipped[0],
        (
            "person 4 at site 1",
            "its name planetlab.us.pl.O_Neil_Bob is already person 2 at site 1's"
        )
    );
    assert_eq!(skipped[1].0, "slice 11 at site 1");
    assert!(skipped[1].1.contains("expired or deleted"));
    assert_eq!(skipped[2].0, "slice 12 at site 1");
    assert!(skipped[2].1.contains("nothing is left"), "{}", skipped[2].1);
    assert_eq!(skipped[3].0, "site 3 (bad base)");
    assert!(!plan.authorities.iter().any(|a| a.as_str().contains("bad")));
    assert_eq!(plan.count(RecordType::User), 4);
}
