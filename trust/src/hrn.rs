//! Human-readable names (`planetlab.us.pl.alice`), the record types they name, and the mappings
//! to PlanetLab names and to the later SFA URNs.
//!
//! Authority checks are dot-aware everywhere: `planetlab.us.p` is not an authority of
//! `planetlab.us.pl.x`, which the 2008 code's raw `startswith` got wrong.
//!
//! One grammar for every name, checked when an [`Hrn`] is parsed: labels of 1 to 63 characters,
//! each a letter, a digit, `_`, `-`, or an escaped dot (`emulab\.net`, as the later SFA allowed;
//! nothing in 2008 used one). Every 2008 name fits. Names become directories (the authority tree)
//! and file names, so nothing that could be a path separator, `..`, or a shell or SQL
//! metacharacter ever gets that far.

use std::fmt;
use std::str::FromStr;

use crate::TrustError;

/// A validated hrn: dot-separated labels of 1 to 63 characters from `[A-Za-z0-9_-]` and `\.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hrn(String);

/// The record types of the 2008 registry. `Node` is what the code called a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    Ma,
    Node,
    Sa,
    Slice,
    User,
}

// === impl Hrn ===

impl Hrn {
    pub fn parse(s: &str) -> Result<Self, TrustError> {
        let bad = |reason| TrustError::InvalidHrn {
            hrn: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }
        if s.ends_with('\\') {
            return Err(bad("ends with an escape character"));
        }
        let hrn = Self(s.to_owned());
        for label in hrn.labels() {
            if label.is_empty() {
                return Err(bad("has an empty label (leading, trailing or doubled dot)"));
            }
            if label.len() > MAX_LABEL {
                return Err(bad("has a label longer than 63 characters"));
            }
            if !label_chars_ok(label) {
                return Err(bad(
                    "labels may hold only letters, digits, `_`, `-` and an escaped dot `\\.`",
                ));
            }
        }
        Ok(hrn)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, split on unescaped dots (escapes are kept in the label text).
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        split_unescaped(&self.0)
    }

    /// The enclosing authority: everything before the last unescaped dot; `None` for a top-level
    /// name (the 2008 `get_authority` returned `""`).
    pub fn authority(&self) -> Option<Self> {
        last_dot(&self.0).map(|at| Self(self.0[..at].to_owned()))
    }

    /// The last label.
    pub fn leaf(&self) -> &str {
        match last_dot(&self.0) {
            Some(at) => &self.0[at + 1..],
            None => &self.0,
        }
    }

    /// True when `self` is a proper ancestor of `other`, comparing whole labels.
    pub fn is_authority_of(&self, other: &Self) -> bool {
        other.0.len() > self.0.len()
            && other.0.starts_with(&self.0)
            && other.0.as_bytes().get(self.0.len()) == Some(&b'.')
            && !self.0.ends_with('\\')
    }

    /// True when `self` is `other` or one of its ancestors.
    pub fn is_authority_or_self(&self, other: &Self) -> bool {
        self == other || self.is_authority_of(other)
    }

    /// How many labels deep the name is (`planetlab` is 1).
    pub fn depth(&self) -> usize {
        self.labels().count()
    }
}

impl fmt::Display for Hrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Hrn {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Hrn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Longest label, in characters (a DNS label's limit; 2008 truncated whole names to 64).
const MAX_LABEL: usize = 63;

/// `[A-Za-z0-9_-]`, or `\` immediately followed by `.`.
fn label_chars_ok(label: &str) -> bool {
    let mut bytes = label.bytes();
    while let Some(b) = bytes.next() {
        let ok = match b {
            b'\\' => bytes.next() == Some(b'.'),
            b'.' => false,
            b => b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
        };
        if !ok {
            return false;
        }
    }
    true
}

fn split_unescaped(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let cur = rest?;
        match first_dot(cur) {
            Some(at) => {
                rest = Some(&cur[at + 1..]);
                Some(&cur[..at])
            }
            None => {
                rest = None;
                Some(cur)
            }
        }
    })
}

fn unescaped_dots(s: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().filter_map(move |(i, b)| {
        let escaped = i > 0 && bytes.get(i - 1) == Some(&b'\\');
        (*b == b'.' && !escaped).then_some(i)
    })
}

fn first_dot(s: &str) -> Option<usize> {
    unescaped_dots(s).next()
}

fn last_dot(s: &str) -> Option<usize> {
    unescaped_dots(s).last()
}

// === impl RecordType ===

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ma => "ma",
            Self::Node => "node",
            Self::Sa => "sa",
            Self::Slice => "slice",
            Self::User => "user",
        }
    }

    /// The SFA URN type word (`authority` for sa and ma).
    fn urn_type(self) -> &'static str {
        match self {
            Self::Ma | Self::Sa => "authority",
            Self::Node => "node",
            Self::Slice => "slice",
            Self::User => "user",
        }
    }
}

impl FromStr for RecordType {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ma" => Ok(Self::Ma),
            "node" | "component" => Ok(Self::Node),
            "sa" => Ok(Self::Sa),
            "slice" => Ok(Self::Slice),
            "user" => Ok(Self::User),
            _ => Err(TrustError::decode(
                format!("record type {s:?}"),
                "expected one of user, slice, sa, ma, node",
            )),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === name mappings ===

/// The PlanetLab slice name of a slice hrn, as the 2008 code made it:
/// `planetlab.us.princeton.testcw` → `princeton_testcw` (last authority label, `_`, leaf).
pub fn hrn_to_pl_slicename(hrn: &Hrn) -> Result<String, TrustError> {
    let auth = hrn.authority().ok_or_else(|| TrustError::InvalidHrn {
        hrn: hrn.to_string(),
        reason: "a slice name needs an authority label and a leaf",
    })?;
    Ok(format!("{}_{}", auth.leaf(), hrn.leaf()))
}

/// The PlanetLab site login base of an authority hrn: its last label (`planetlab.us.pl` → `pl`).
pub fn hrn_to_pl_login_base(hrn: &Hrn) -> String {
    hrn.leaf().to_owned()
}

/// The later SFA URN: `urn:publicid:IDN+<authority labels joined by ':'>+<type>+<leaf>`;
/// authorities (sa, ma) become `urn:publicid:IDN+<their own labels>+authority+sa`. Escaped dots
/// become plain dots inside a URN label.
pub fn hrn_to_urn(hrn: &Hrn, kind: RecordType) -> String {
    let unescape = |l: &str| l.replace("\\.", ".");
    match kind {
        RecordType::Ma | RecordType::Sa => {
            let labels: Vec<String> = hrn.labels().map(unescape).collect();
            format!(
                "urn:publicid:IDN+{}+authority+{}",
                labels.join(":"),
                kind.as_str()
            )
        }
        _ => {
            let auth: Vec<String> = match hrn.authority() {
                Some(a) => a.labels().map(unescape).collect(),
                None => Vec::new(),
            };
            format!(
                "urn:publicid:IDN+{}+{}+{}",
                auth.join(":"),
                kind.urn_type(),
                unescape(hrn.leaf())
            )
        }
    }
}

/// The hrn and type word of an SFA URN. `…+authority+sa` names the authority itself; other
/// authority sub-types keep their name as the leaf, as SFA's `Xrn` does.
pub fn urn_to_hrn(urn: &str) -> Result<(Hrn, String), TrustError> {
    let bad = |reason| TrustError::InvalidUrn {
        urn: urn.to_owned(),
        reason,
    };
    let body = urn
        .strip_prefix("urn:publicid:IDN+")
        .or_else(|| urn.strip_prefix("URN:PUBLICID:IDN+"))
        .ok_or_else(|| bad("does not start with urn:publicid:IDN+"))?;
    let mut parts = body.splitn(3, '+');
    let (Some(auth), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected <authority>+<type>+<name>"));
    };
    if auth.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(bad("empty authority, type or name"));
    }
    let escape = |l: &str| l.replace('.', "\\.");
    let auth_hrn: Vec<String> = auth.split(':').map(escape).collect();
    let auth_hrn = auth_hrn.join(".");
    let (text, kind) = match (kind, name) {
        ("authority", "sa" | "ma" | "am" | "cm" | "sm") => (auth_hrn, format!("authority+{name}")),
        _ => (format!("{auth_hrn}.{}", escape(name)), kind.to_owned()),
    };
    let hrn = Hrn::parse(&text).map_err(|_| bad("does not map to a valid hrn"))?;
    Ok((hrn, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hrn {
        Hrn::parse(s).unwrap()
    }

    #[test]
    fn authority_and_leaf_match_2008_misc() {
        assert_eq!(h("foo.bar").leaf(), "bar");
        assert_eq!(h("foo").authority(), None);
        assert_eq!(h("foo.bar.x").authority(), Some(h("foo.bar")));
    }

    #[test]
    fn authority_check_is_dot_aware() {
        assert!(h("planetlab.us").is_authority_of(&h("planetlab.us.pl.x")));
        assert!(!h("planetlab.us.p").is_authority_of(&h("planetlab.us.pl.x")));
        assert!(!h("planetlab.us.pl").is_authority_of(&h("planetlab.us.pl")));
        assert!(h("planetlab.us.pl").is_authority_or_self(&h("planetlab.us.pl")));
        assert!(!h("planetlab.us.pl.x").is_authority_of(&h("planetlab.us.pl")));
    }

    #[test]
    fn bad_names_are_refused() {
        for s in ["", ".a", "a.", "a..b", "a b", "a\n", "a\\"] {
            assert!(Hrn::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn one_grammar_keeps_paths_and_metacharacters_out() {
        let long = "x".repeat(64);
        for s in [
            "planetlab.us.pl./etc/geni-agent/trusted_roots/planetlab",
            "planetlab.us.pl.x/y",
            "planetlab.us.pl.x\\/y",
            "planetlab.us.pl..",
            "planetlab.us.pl.o'brien",
            "planetlab.us.pl.x;drop",
            "planetlab.us.pl.x\\y",
            "planetlab.us.pl.x\\\\.y",
            "planetlab.us.pl.caf\u{e9}",
            "planetlab.us.pl.a%2fb",
            "planetlab.us.pl.a:b",
            "planetlab.us.pl.a+b",
            long.as_str(),
        ] {
            let err = Hrn::parse(s).expect_err(s);
            assert!(matches!(err, TrustError::InvalidHrn { .. }), "{s:?}: {err}");
        }
        // 2008's names and SFA's escaped dot keep working; 63 characters is the longest label.
        for s in [
            "planetlab.us.pl.account_test",
            "planetlab.us.princeton.testcw",
            "plc.princeton.node1_cs_princeton_edu",
            "planetlab.us.pl.a-b_9",
            "emulab\\.net.user1",
            &"y".repeat(63),
        ] {
            Hrn::parse(s).expect(s);
        }
    }

    #[test]
    fn slice_and_login_names() {
        assert_eq!(
            hrn_to_pl_slicename(&h("planetlab.us.princeton.testcw")).unwrap(),
            "princeton_testcw"
        );
        assert!(hrn_to_pl_slicename(&h("planetlab")).is_err());
        assert_eq!(hrn_to_pl_login_base(&h("planetlab.us.pl")), "pl");
    }

    #[test]
    fn urns_follow_sfa_xrn() {
        assert_eq!(
            hrn_to_urn(&h("plc.princeton.tmack"), RecordType::User),
            "urn:publicid:IDN+plc:princeton+user+tmack"
        );
        assert_eq!(
            hrn_to_urn(&h("plc.princeton"), RecordType::Sa),
            "urn:publicid:IDN+plc:princeton+authority+sa"
        );
        assert_eq!(
            hrn_to_urn(&h("emulab\\.net.myslice.jktest"), RecordType::Slice),
            "urn:publicid:IDN+emulab.net:myslice+slice+jktest"
        );
        let (hrn, kind) = urn_to_hrn("urn:publicid:IDN+emulab.net:myslice+slice+jktest").unwrap();
        assert_eq!(
            (hrn.as_str(), kind.as_str()),
            ("emulab\\.net.myslice.jktest", "slice")
        );
        assert_eq!(hrn.authority().unwrap().as_str(), "emulab\\.net.myslice");
        let (hrn, kind) = urn_to_hrn("urn:publicid:IDN+plc:princeton+authority+sa").unwrap();
        assert_eq!(
            (hrn.as_str(), kind.as_str()),
            ("plc.princeton", "authority+sa")
        );
        for bad in [
            "urn:x",
            "urn:publicid:IDN+a+b",
            "urn:publicid:IDN++user+x",
            "urn:publicid:IDN+a+user+b c",
        ] {
            assert!(urn_to_hrn(bad).is_err(), "{bad}");
        }
    }
}
