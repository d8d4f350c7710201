//! The import planner: from PLC's rows and what the registry already holds, decide which
//! authorities and records `plc import` creates, without touching anything.
//!
//! It walks PLC as 2008's `plc/import.py` did: the root and level-1 authorities, then per site
//! (by `site_id`) the site's authority with its sa and ma records (pointer = `site_id`), the site's
//! persons, slices and nodes, named by [`names`](super::super::names). What the registry holds
//! already (same hrn and type) is left alone, which makes a second run add nothing. What cannot be
//! imported is listed with the reason rather than stopping the import: a name nothing is left of
//! after cleaning, two PLC objects that clean to one name at one site (the later `person_id`,
//! `slice_id` or `node_id` loses), a row a site lists but PLC did not return (an expired slice, a
//! deleted person).
//!
//! A user's GID key is the first of their `ssh` keys that reads as an OpenSSH `ssh-rsa` key
//! (2008's keyconvert; DSA and unreadable keys are passed over); with none, a key whose private
//! half nobody keeps ([`KeySource::Unowned`]), as for every slice and node.

use std::collections::{BTreeSet, HashMap, HashSet};

use geni_trust::{Hrn, PublicKey, RecordType};

use crate::plc::backend::{Key, Person, PlcNode, Site, Slice};
use crate::plc::names;

/// PLC's rows as the import needs them.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) sites: Vec<Site>,
    pub(crate) persons: HashMap<i64, Person>,
    pub(crate) keys: HashMap<i64, Key>,
    pub(crate) slices: HashMap<i64, Slice>,
    pub(crate) nodes: HashMap<i64, PlcNode>,
}

/// What the registry and the authority tree hold before the import.
#[derive(Debug, Default)]
pub(crate) struct Existing {
    /// `(hrn, type)` of every record.
    pub(crate) records: HashSet<(String, RecordType)>,
    /// Authorities with their files on disk.
    pub(crate) authorities: HashSet<String>,
}

/// Where a new record's GID key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// The record is an authority's sa or ma: its GID is the authority's own.
    Authority,
    /// The user's PLC key `key_id`, converted from OpenSSH.
    Ssh { key_id: i64, key: PublicKey },
    /// No key of its own: a fresh key whose private half nobody keeps (2008 generated one and
    /// threw it away); see `materialize::UnownedKeys`.
    Unowned,
}

/// One record to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedRecord {
    pub(crate) hrn: Hrn,
    pub(crate) kind: RecordType,
    /// The PLC id (`site_id`, `person_id`, `slice_id`, `node_id`), −1 for `planetlab.us`.
    pub(crate) pointer: i64,
    pub(crate) key: KeySource,
}

/// A PLC object left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skipped {
    /// `site 12`, `person 7 at site 3`, …
    pub(crate) what: String,
    pub(crate) reason: String,
}

/// Everything the import will do.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Authorities to create, parents before children.
    pub(crate) authorities: Vec<Hrn>,
    /// Records to create: authorities' sa and ma first, then per site users, slices, nodes.
    pub(crate) records: Vec<PlannedRecord>,
    /// Records PLC has that the registry already holds, by type.
    pub(crate) present: HashMap<RecordType, usize>,
    pub(crate) skipped: Vec<Skipped>,
}

impl Plan {
    /// New records of `kind`.
    pub(crate) fn count(&self, kind: RecordType) -> usize {
        self.records.iter().filter(|r| r.kind == kind).count()
    }

    /// Whether the import would change nothing.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.authorities.is_empty() && self.records.is_empty()
    }
}

/// Plans the import of `plc` under `level1` (`planetlab.us`; the root is its authority).
pub(crate) fn plan(plc: &Snapshot, existing: &Existing, level1: &Hrn) -> Plan {
    let mut planner = Planner {
        existing,
        plan: Plan::default(),
        taken: HashMap::new(),
        authorities: BTreeSet::new(),
    };
    let mut chain: Vec<Hrn> = std::iter::successors(Some(level1.clone()), Hrn::authority).collect();
    chain.reverse();
    for authority in &chain {
        planner.authority(authority);
    }
    planner.authority_records(level1, -1);

    let mut sites: Vec<&Site> = plc.sites.iter().collect();
    sites.sort_by_key(|s| s.site_id);
    for site in sites {
        let what = format!("site {} ({})", site.site_id, site.login_base);
        let site_hrn = match names::site_hrn(level1, &site.login_base) {
            Ok(h) => h,
            Err(e) => {
                planner.skip(what, e.to_string());
                continue;
            }
        };
        if !planner.claim(&site_hrn, RecordType::Sa, &what) {
            continue;
        }
        planner.authority(&site_hrn);
        planner.authority_records(&site_hrn, site.site_id);

        for id in &site.person_ids {
            let what = format!("person {id} at site {}", site.site_id);
            let Some(person) = plc.persons.get(id) else {
                planner.skip(
                    what,
                    "the site lists it but PLC did not return it".to_owned(),
                );
                continue;
            };
            let hrn = names::person_hrn(&site_hrn, &person.first_name, &person.last_name);
            let key = || user_key(person, &plc.keys);
            planner.leaf(hrn, RecordType::User, *id, what, key);
        }
        for id in &site.slice_ids {
            let what = format!("slice {id} at site {}", site.site_id);
            let Some(slice) = plc.slices.get(id) else {
                planner.skip(
                    what,
                    "the site lists it but PLC did not return it (expired or deleted)".to_owned(),
                );
                continue;
            };
            let hrn = names::slice_hrn(&site_hrn, &slice.name);
            planner.leaf(hrn, RecordType::Slice, *id, what, || KeySource::Unowned);
        }
        for id in &site.node_ids {
            let what = format!("node {id} at site {}", site.site_id);
            let Some(node) = plc.nodes.get(id) else {
                planner.skip(
                    what,
                    "the site lists it but PLC did not return it".to_owned(),
                );
                continue;
            };
            let hrn = names::node_hrn(&site_hrn, &node.hostname);
            planner.leaf(hrn, RecordType::Node, *id, what, || KeySource::Unowned);
        }
    }
    planner.plan
}

/// Every authority the import may create: the root and level-1 chain and each site's authority
/// (to ask the disk which exist before planning).
pub(crate) fn candidate_authorities(plc: &Snapshot, level1: &Hrn) -> Vec<Hrn> {
    let mut all: Vec<Hrn> = std::iter::successors(Some(level1.clone()), Hrn::authority).collect();
    all.extend(
        plc.sites
            .iter()
            .filter_map(|s| names::site_hrn(level1, &s.login_base).ok()),
    );
    all
}

/// The first PLC key of `person` that converts, as 2008 took the first (skipping DSA).
fn user_key(person: &Person, keys: &HashMap<i64, Key>) -> KeySource {
    person
        .key_ids
        .iter()
        .filter_map(|id| keys.get(id))
        .filter(|k| k.key_type == "ssh")
        .find_map(|k| {
            PublicKey::from_openssh(&k.key)
                .ok()
                .map(|key| KeySource::Ssh {
                    key_id: k.key_id,
                    key,
                })
        })
        .unwrap_or(KeySource::Unowned)
}

struct Planner<'a> {
    existing: &'a Existing,
    plan: Plan,
    /// Names given out in this run, and to what, to catch two PLC objects with one name.
    taken: HashMap<(Hrn, RecordType), String>,
    authorities: BTreeSet<Hrn>,
}

impl Planner<'_> {
    fn skip(&mut self, what: String, reason: String) {
        self.plan.skipped.push(Skipped { what, reason });
    }

    /// Claims `(hrn, kind)` for `what`; false (and a skip) when another object has it.
    fn claim(&mut self, hrn: &Hrn, kind: RecordType, what: &str) -> bool {
        match self.taken.get(&(hrn.clone(), kind)) {
            Some(owner) => {
                let reason = format!("its name {hrn} is already {owner}'s");
                self.skip(what.to_owned(), reason);
                false
            }
            None => {
                self.taken.insert((hrn.clone(), kind), what.to_owned());
                true
            }
        }
    }

    fn authority(&mut self, hrn: &Hrn) {
        if !self.existing.authorities.contains(hrn.as_str()) && self.authorities.insert(hrn.clone())
        {
            self.plan.authorities.push(hrn.clone());
        }
    }

    fn authority_records(&mut self, hrn: &Hrn, pointer: i64) {
        for kind in [RecordType::Sa, RecordType::Ma] {
            self.record(hrn.clone(), kind, pointer, || KeySource::Authority);
        }
    }

    /// A user, slice or node named `hrn` (or the naming error).
    fn leaf(
        &mut self,
        hrn: Result<Hrn, names::NameError>,
        kind: RecordType,
        pointer: i64,
        what: String,
        key: impl FnOnce() -> KeySource,
    ) {
        match hrn {
            Ok(hrn) => {
                if self.claim(&hrn, kind, &what) {
                    self.record(hrn, kind, pointer, key);
                }
            }
            Err(e) => self.skip(what, e.to_string()),
        }
    }

    fn record(
        &mut self,
        hrn: Hrn,
        kind: RecordType,
        pointer: i64,
        key: impl FnOnce() -> KeySource,
    ) {
        if self
            .existing
            .records
            .contains(&(hrn.as_str().to_owned(), kind))
        {
            *self.plan.present.entry(kind).or_default() += 1;
            return;
        }
        self.plan.records.push(PlannedRecord {
            hrn,
            kind,
            pointer,
            key: key(),
        });
    }
}

#[cfg(test)]
mod tests;
