//! How `plc import` names PlanetLab's sites, persons, slices and nodes in the GENI hierarchy:
//! the rules of 2008's `plc/import.py` (`reference/geniwrapper-2008.md` §4.2 "Tools", §5.3).
//! The level-1 authority is the registry's (`plc.authority`, 2008's `planetlab.us`).
//!
//! - a site is the authority `<level-1>.<login_base>` (`planetlab.us.princeton`);
//! - a person is `<site>.<last>_<first>`, cleaned (non-ASCII dropped; space, `.`, `(`, `'`, `)`
//!   and `"` become `_`) and cut to 64 characters, because 2008 found ASN.1 choking on longer
//!   certificate names;
//! - a slice is `<site>.<slice name after its first "_">` (`pl_test1` → `planetlab.us.pl.test1`);
//! - a node is `<site>.<hostname with "." → "_">`, cut to 64 characters.
//!
//! Beyond 2008, cleaning turns every other character outside the hrn grammar (letters, digits,
//! `_`, `-`) into `_` too: 2008 passed them through into names that could hold path separators
//! and that nothing could parse back, where we would otherwise have to skip the person. The reverse mapping for slices is `geni_trust::hrn_to_pl_slicename`, which these names
//! round-trip through.

use geni_trust::Hrn;

/// Longest hrn import creates for persons and nodes, in characters (2008 `hrn[:64]`).
pub(crate) const MAX_HRN_CHARS: usize = 64;

/// Why a PLC object gets no name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameError {
    /// The PLC text the name was to be made from.
    pub(crate) source: String,
    pub(crate) reason: String,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} gives no usable name: {}", self.source, self.reason)
    }
}

/// The authority of a site: `<level1>.<login_base>`.
pub(crate) fn site_hrn(level1: &Hrn, login_base: &str) -> Result<Hrn, NameError> {
    child(level1, login_base, login_base)
}

/// A person at `site`: `<site>.<last>_<first>`, cleaned, at most 64 characters.
pub(crate) fn person_hrn(site: &Hrn, first_name: &str, last_name: &str) -> Result<Hrn, NameError> {
    let source = format!("{last_name}_{first_name}");
    cut_child(site, &cleanup(&source), &source)
}

/// A slice of `site`: `<site>.<name after the first "_">`, cleaned (the whole name when it has
/// no `_`, as 2008's `split("_", 1)[-1]` gave).
pub(crate) fn slice_hrn(site: &Hrn, slice_name: &str) -> Result<Hrn, NameError> {
    let after = slice_name
        .split_once('_')
        .map_or(slice_name, |(_, rest)| rest);
    child(site, &cleanup(after), slice_name)
}

/// A node of `site`: `<site>.<hostname with "." → "_">`, at most 64 characters.
pub(crate) fn node_hrn(site: &Hrn, hostname: &str) -> Result<Hrn, NameError> {
    cut_child(site, &hostname.replace('.', "_"), hostname)
}

/// 2008's `cleanup_string` (non-ASCII dropped; space, `.`, `(`, `'`, `)`, `"` to `_`), with every
/// other character outside the hrn grammar to `_` as well (see the module text).
pub(crate) fn cleanup(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii)
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => c,
            _ => '_',
        })
        .collect()
}

fn child(parent: &Hrn, leaf: &str, source: &str) -> Result<Hrn, NameError> {
    let bad = |reason: String| NameError {
        source: source.to_owned(),
        reason,
    };
    if leaf.is_empty() {
        return Err(bad("nothing is left of it after cleaning".to_owned()));
    }
    Hrn::parse(&format!("{parent}.{leaf}")).map_err(|e| bad(e.to_string()))
}

/// `<parent>.<leaf>` with the leaf cut so that the whole name is at most [`MAX_HRN_CHARS`]
/// (2008's `hrn[:64]`), which also keeps the leaf within the grammar's 63-character label. A
/// parent too long to leave room for a leaf gives no name.
fn cut_child(parent: &Hrn, leaf: &str, source: &str) -> Result<Hrn, NameError> {
    let room = MAX_HRN_CHARS.saturating_sub(parent.as_str().chars().count() + 1);
    let leaf: String = leaf.chars().take(room).collect();
    child(parent, &leaf, source)
}

#[cfg(test)]
mod tests {
    use geni_trust::hrn_to_pl_slicename;

    use super::*;

    fn hrn(s: &str) -> Hrn {
        Hrn::parse(s).unwrap()
    }

    /// 2008's `level1_auth`.
    fn us() -> Hrn {
        hrn("planetlab.us")
    }

    #[test]
    fn sites_sit_under_planetlab_us() {
        assert_eq!(
            site_hrn(&us(), "princeton").unwrap(),
            hrn("planetlab.us.princeton")
        );
        assert!(site_hrn(&us(), "").is_err());
        assert!(site_hrn(&us(), "a b").is_err());
    }

    #[test]
    fn slices_drop_the_login_base_and_round_trip() {
        // §5.3: PL slice `pl_test1` under site `pl` → `planetlab.us.pl.test1`.
        let pl = hrn("planetlab.us.pl");
        let s = slice_hrn(&pl, "pl_test1").unwrap();
        assert_eq!(s, hrn("planetlab.us.pl.test1"));
        assert_eq!(hrn_to_pl_slicename(&s).unwrap(), "pl_test1");
        // §5.3: `planetlab.us.princeton.testcw` ↔ `princeton_testcw`.
        let p = slice_hrn(&hrn("planetlab.us.princeton"), "princeton_testcw").unwrap();
        assert_eq!(p, hrn("planetlab.us.princeton.testcw"));
        assert_eq!(hrn_to_pl_slicename(&p).unwrap(), "princeton_testcw");
        // Only the first "_" separates: the rest is the leaf.
        assert_eq!(
            slice_hrn(&pl, "pl_my_big_test").unwrap(),
            hrn("planetlab.us.pl.my_big_test")
        );
        // No "_": the whole name (2008's split("_", 1)[-1]).
        assert_eq!(slice_hrn(&pl, "odd").unwrap(), hrn("planetlab.us.pl.odd"));
        assert!(slice_hrn(&pl, "pl_").is_err());
    }

    #[test]
    fn persons_are_last_first_cleaned() {
        let pl = hrn("planetlab.us.pl");
        assert_eq!(
            person_hrn(&pl, "John", "Smith").unwrap(),
            hrn("planetlab.us.pl.Smith_John")
        );
        // Each of space . ( ' ) " becomes "_"; non-ASCII is dropped (1915007f).
        assert_eq!(
            person_hrn(&pl, "Jean Paul", "O'Brien (Jr.)").unwrap(),
            hrn("planetlab.us.pl.O_Brien__Jr___Jean_Paul")
        );
        assert_eq!(
            person_hrn(&pl, "Jürgen", "Müller \"JM\"").unwrap(),
            hrn("planetlab.us.pl.Mller__JM__Jrgen")
        );
        // Ours: tabs, newlines and backslashes cannot survive into an hrn.
        assert_eq!(
            person_hrn(&pl, "a\tb", "c\\").unwrap(),
            hrn("planetlab.us.pl.c__a_b")
        );
        // Characters 2008 kept but the hrn grammar does not, and `/`: to "_".
        assert_eq!(
            person_hrn(&pl, "x@y", "a-b,c").unwrap(),
            hrn("planetlab.us.pl.a-b_c_x_y")
        );
        assert_eq!(
            person_hrn(&pl, "../../etc", "/root").unwrap(),
            hrn("planetlab.us.pl._root_______etc")
        );
        // Nothing but non-ASCII on both sides still leaves the "_".
        assert_eq!(person_hrn(&pl, "é", "ü").unwrap(), hrn("planetlab.us.pl._"));
    }

    #[test]
    fn long_persons_and_nodes_are_cut_to_64() {
        let pl = hrn("planetlab.us.pl");
        let long = "x".repeat(100);
        let p = person_hrn(&pl, "First", &long).unwrap();
        assert_eq!(p.as_str().len(), MAX_HRN_CHARS);
        assert_eq!(p.as_str(), format!("planetlab.us.pl.{}", "x".repeat(48)));
        let exact = "y".repeat(MAX_HRN_CHARS - "planetlab.us.pl.".len() - 2);
        assert_eq!(
            person_hrn(&pl, "", &format!("{exact}z"))
                .unwrap()
                .as_str()
                .len(),
            MAX_HRN_CHARS
        );

        let host = format!("{}.example.org", "n".repeat(60));
        let n = node_hrn(&pl, &host).unwrap();
        assert_eq!(n.as_str().len(), MAX_HRN_CHARS);
        assert!(n.as_str().starts_with("planetlab.us.pl.nnnn"));
        // Slices are never cut (PLC allows 32 characters).
        let s = slice_hrn(&pl, &format!("pl_{}", "s".repeat(60))).unwrap();
        assert_eq!(s.as_str().len(), "planetlab.us.pl.".len() + 60);
    }

    #[test]
    fn nodes_replace_dots() {
        // [NOV] 2c7f47e7: `<site>.<hostname with . → _>`.
        assert_eq!(
            node_hrn(
                &hrn("planetlab.us.princeton"),
                "planetlab-1.cs.princeton.edu"
            )
            .unwrap(),
            hrn("planetlab.us.princeton.planetlab-1_cs_princeton_edu")
        );
        assert!(node_hrn(&hrn("planetlab.us.pl"), "").is_err());
        assert!(node_hrn(&hrn("planetlab.us.pl"), "bad host").is_err());
    }
}
