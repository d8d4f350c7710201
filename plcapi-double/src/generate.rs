//! A deterministic PLC of any size: the same [`Scale`] always gives the same sites, persons,
//! keys, slices, nodes, slice attributes and initscripts, with the same ids, built through the
//! same `Add*` paths the API uses, so every join list is consistent.
//!
//! The data looks like a 2008 PlanetLab: login bases like `princeton12`, persons with accents,
//! apostrophes, spaces and brackets in their names (what the import's cleaning rules are for),
//! one name long enough to be cut to 64 characters, persons at two sites, persons with no key, a
//! DSA key only, or a DSA key before their RSA key; slices `<login_base>_<name>` with members,
//! nodes and global and node-specific attributes; `delegated` slices among `plc-instantiated`
//! ones.
//!
//! SSH keys are synthetic: a well-formed `ssh-rsa` blob (e = 65537, a 2048-bit odd modulus drawn
//! from a seeded generator) rather than a generated RSA key, because 10,000 real keys would take
//! minutes to make. A key's modulus is not a product of two primes, which nothing that only
//! holds public keys can tell; tests that need a key someone holds add a real one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use geni_xmlrpc::{Struct, Value};

use crate::Plc;

/// When the generated PLC was made, in Unix seconds (late 2008); every time stamp derives from
/// it, so the data never depends on the clock.
pub const GENERATED_AT: i64 = 1_228_000_000;

/// The admin account of a generated PLC.
pub const ADMIN_EMAIL: &str = "maint@localhost.localdomain";
pub const ADMIN_PASSWORD: &str = "double-maint-password";

/// How many rows of each kind, PLC's own site and admin account included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub sites: usize,
    pub persons: usize,
    pub slices: usize,
    pub nodes: usize,
}

impl Scale {
    /// The size issue 5 asks `plc import` to handle.
    pub const LARGE: Self = Self {
        sites: 1_000,
        persons: 10_000,
        slices: 10_000,
        nodes: 5_000,
    };

    /// Enough of everything for every naming and key rule to appear at least once.
    pub const SMALL: Self = Self {
        sites: 5,
        persons: 40,
        slices: 20,
        nodes: 10,
    };
}

const SITE_WORDS: [&str; 24] = [
    "princeton",
    "mit",
    "berkeley",
    "cmu",
    "washington",
    "uoregon",
    "utah",
    "rice",
    "duke",
    "cornell",
    "umich",
    "gatech",
    "ucsd",
    "inria",
    "upmc",
    "ethz",
    "tsinghua",
    "kaist",
    "unimelb",
    "usp",
    "uchicago",
    "nyu",
    "columbia",
    "stanford",
];

const FIRST: [&str; 25] = [
    "John",
    "Mary",
    "Jürgen",
    "Zoë",
    "Li",
    "Ana María",
    "Jean-Luc",
    "Siobhán",
    "David",
    "Larry",
    "Andy",
    "Vivek",
    "Timothy",
    "Mic",
    "Aaron",
    "Marc",
    "Steve",
    "Tony",
    "Soner",
    "Thierry",
    "Scott",
    "Jay",
    "Kyoungsoo",
    "Anne-Marie",
    "Mark",
];

const LAST: [&str; 20] = [
    "Smith",
    "Müller",
    "O'Brien",
    "van der Berg",
    "García",
    "Nguyen",
    "Peterson (Jr.)",
    "St. John",
    "Chun",
    "Bavier",
    "Huang",
    "Klingaman",
    "Roscoe",
    "Fiuczynski",
    "Wolfeschlegelsteinhausenbergerdorff",
    "Baker",
    "Sevinc",
    "Parmentelat",
    "Mack",
    "\"Doc\" Holliday",
];

const SLICE_WORDS: [&str; 12] = [
    "codeen",
    "coblitz",
    "sirius",
    "stork",
    "test",
    "geni",
    "planetflow",
    "chord",
    "bittorrent",
    "oasis",
    "pl",
    "myslice",
];

const MODELS: [&str; 4] = [
    "Dell Precision 340",
    "HP Proliant DL320 G5",
    "Custom",
    "IBM eServer x306",
];

const INITSCRIPTS: [(&str, &str); 3] = [
    ("base", "#!/bin/sh\necho base initscript\n"),
    ("codeen", "#!/bin/sh\n/usr/local/codeen/start.sh\n"),
    (
        "sirius",
        "#!/bin/sh\nexec /home/sirius/bin/sirius --daemon\n",
    ),
];

/// splitmix64: a small, fixed generator, so that the data never changes with a crate version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A well-formed `ssh-rsa` line whose modulus is drawn from `seed` (see the module text).
pub fn synthetic_rsa_key(seed: u64, comment: &str) -> String {
    let mut rng = Rng(seed);
    let mut modulus = Vec::with_capacity(257);
    // A leading zero keeps the mpint positive; the top bit makes it 2048 bits; odd as RSA is.
    modulus.push(0);
    for _ in 0..32 {
        modulus.extend_from_slice(&rng.next().to_be_bytes());
    }
    modulus[1] |= 0x80;
    modulus[256] |= 1;
    let mut blob = Vec::new();
    for part in [&b"ssh-rsa"[..], &[1, 0, 1], &modulus] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        blob.extend_from_slice(&len.to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!("ssh-rsa {} {comment}", STANDARD.encode(blob))
}

/// An `ssh-dss` line of the right outer shape; the import must skip it (2008 `8b97b10f`).
fn synthetic_dss_key(seed: u64, comment: &str) -> String {
    let mut rng = Rng(seed);
    let mut blob = vec![0, 0, 0, 7];
    blob.extend_from_slice(b"ssh-dss");
    for _ in 0..50 {
        blob.extend_from_slice(&rng.next().to_be_bytes());
    }
    format!("ssh-dss {} {comment}", STANDARD.encode(blob))
}

/// Index `i` of `list`, for any `i`.
fn pick<T: Copy>(list: &[T], i: usize) -> T {
    list[i % list.len()]
}

fn int(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

impl Plc {
    /// The deterministic PLC of `scale`, with [`ADMIN_EMAIL`] / [`ADMIN_PASSWORD`] as its admin.
    pub fn generate(scale: Scale) -> Self {
        let mut plc = Self::new(ADMIN_EMAIL, ADMIN_PASSWORD, GENERATED_AT);
        let mut rng = Rng(0x5eed);

        // Sites: PLC's own `pl` is site 1.
        let mut login_bases = vec!["pl".to_owned()];
        for i in 1..scale.sites.max(1) {
            let word = pick(&SITE_WORDS, i);
            let login_base = format!("{word}{i}");
            let fields = Struct::new()
                .with("login_base", login_base.as_str())
                .with(
                    "name",
                    format!("{} University campus {i}", capitalise(word)),
                )
                .with("abbreviated_name", format!("{} {i}", capitalise(word)))
                .with("max_slices", 1_000_i64)
                .with("is_public", i % 17 != 0)
                .with("url", format!("http://www.{word}.example.edu/{i}"));
            if plc.add_site(&fields).is_ok() {
                login_bases.push(login_base);
            }
        }
        let sites = login_bases.len();
        let site_of = |i: usize| int(1 + i % sites);
        let script_names: Vec<&str> = INITSCRIPTS.iter().map(|(n, _)| *n).collect();
        for (name, script) in INITSCRIPTS {
            let _ = plc.add_initscript(
                &Struct::new()
                    .with("name", name)
                    .with("enabled", true)
                    .with("script", script),
            );
        }

        // Persons: the admin is person 1.
        for i in 1..scale.persons.max(1) {
            let first = pick(&FIRST, i);
            let last = pick(&LAST, i / FIRST.len());
            // Unique names whatever the scale: the combination number joins the last name
            // once the lists run out.
            let round = i / (FIRST.len() * LAST.len());
            let last = if round == 0 {
                last.to_owned()
            } else {
                format!("{last} {round}")
            };
            let site = site_of(i);
            let login_base = &login_bases[usize::try_from(site - 1).unwrap_or(0)];
            let fields = Struct::new()
                .with("first_name", first)
                .with("last_name", last)
                .with("email", format!("user{i}@{login_base}.example.edu"))
                .with("password", format!("password-{i}"))
                .with("enabled", i % 31 != 0)
                .with("title", if i % 3 == 0 { Value::Nil } else { "Dr.".into() });
            let Ok(id) = plc.add_person(&fields) else {
                continue;
            };
            let _ = plc.add_person_to_site(id, site);
            if i % 50 == 0 {
                let second = site_of(i * 31 + 7);
                let _ = plc.add_person_to_site(id, second);
            }
            let _ = plc.add_role_to_person("user", id);
            if i < sites || i % 23 == 0 {
                let _ = plc.add_role_to_person("pi", id);
            }
            if i % 9 == 0 {
                let _ = plc.add_role_to_person("tech", id);
            }
            let comment = format!("user{i}@{login_base}");
            let keys: Vec<String> = match i % 20 {
                0 => Vec::new(),
                1 => vec![synthetic_dss_key(rng.next(), &comment)],
                2 => vec![
                    synthetic_dss_key(rng.next(), &comment),
                    synthetic_rsa_key(rng.next(), &comment),
                ],
                3 | 13 => vec![
                    synthetic_rsa_key(rng.next(), &comment),
                    synthetic_rsa_key(rng.next(), &comment),
                ],
                _ => vec![synthetic_rsa_key(rng.next(), &comment)],
            };
            for key in keys {
                let _ =
                    plc.add_person_key(id, &Struct::new().with("key_type", "ssh").with("key", key));
            }
        }

        // Nodes.
        for i in 1..=scale.nodes {
            let site = site_of(i);
            let login_base = &login_bases[usize::try_from(site - 1).unwrap_or(0)];
            let fields = Struct::new()
                .with("hostname", format!("planetlab{i}.{login_base}.example.edu"))
                .with("model", pick(&MODELS, i))
                .with("boot_state", if i % 11 == 0 { "dbg" } else { "boot" })
                .with("version", "4.2-13");
            let _ = plc.add_node(&Value::Int(site), &fields);
        }

        // Slices, with members, nodes and attributes from their own site.
        for i in 1..=scale.slices {
            let site = site_of(i);
            let login_base = &login_bases[usize::try_from(site - 1).unwrap_or(0)];
            let fields = Struct::new()
                .with("name", format!("{login_base}_{}{i}", pick(&SLICE_WORDS, i)))
                .with(
                    "instantiation",
                    if i % 5 == 0 {
                        "delegated"
                    } else {
                        "plc-instantiated"
                    },
                )
                .with("description", format!("Generated slice {i}"))
                .with("url", format!("http://{login_base}.example.edu/slices/{i}"))
                .with("max_nodes", 100_i64)
                .with("expires", GENERATED_AT + 8 * 7 * 86_400);
            let Ok(id) = plc.add_slice(1, &fields) else {
                continue;
            };
            let (members, nodes) = plc
                .site(site)
                .map(|s| (s.person_ids.clone(), s.node_ids.clone()))
                .unwrap_or_default();
            for k in 0..(1 + i % 3).min(members.len()) {
                let _ = plc.add_person_to_slice(members[(i + k) % members.len()], id);
            }
            let bound: Vec<i64> = nodes.iter().take(2).copied().collect();
            let _ = plc.add_slice_to_nodes(id, &bound);
            if i % 4 == 0 {
                let _ = plc.add_slice_attribute(id, "vref", "planetlab-f8-i386", None);
            }
            if i % 10 == 0 {
                let _ = plc.add_slice_attribute(id, "initscript", pick(&script_names, i), None);
            }
            if i % 7 == 0 {
                let _ = plc.add_slice_attribute(id, "cpu_share", "32", None);
            }
            if i % 13 == 0
                && let Some(node) = bound.first()
            {
                let _ = plc.add_slice_attribute(id, "net_max_rate", "5000", Some(*node));
            }
        }
        plc
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_scale_same_plc() {
        let a = Plc::generate(Scale::SMALL);
        let b = Plc::generate(Scale::SMALL);
        assert_eq!(a.sites, b.sites);
        assert_eq!(a.persons, b.persons);
        assert_eq!(a.keys, b.keys);
        assert_eq!(a.slices, b.slices);
        assert_eq!(a.attributes, b.attributes);
        assert_eq!(a.counts()[..5], [5, 40, a.keys.len(), 20, 10]);
    }

    #[test]
    fn large_scale_holds_every_row() {
        let plc = Plc::generate(Scale::LARGE);
        let [sites, persons, keys, slices, nodes, attributes, initscripts] = plc.counts();
        assert_eq!(
            (sites, persons, slices, nodes, initscripts),
            (1_000, 10_000, 10_000, 5_000, 3)
        );
        assert!(keys > 9_000 && attributes > 3_000, "{keys} {attributes}");
        // Every join is mirrored.
        for slice in plc.slices.values() {
            assert!(
                plc.sites[&slice.site_id]
                    .slice_ids
                    .contains(&slice.slice_id)
            );
            for p in &slice.person_ids {
                assert!(plc.persons[p].slice_ids.contains(&slice.slice_id));
            }
        }
    }

    #[test]
    fn synthetic_keys_are_well_formed_and_distinct() {
        let a = synthetic_rsa_key(1, "a@x");
        let b = synthetic_rsa_key(2, "a@x");
        assert_ne!(a, b);
        assert!(a.starts_with("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB"));
        assert!(a.ends_with(" a@x"));
    }
}
