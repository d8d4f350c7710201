//! GENI URNs (`urn:publicid:IDN+<authority>+<type>+<name>`): parsing and printing with the RFC
//! 3151 public-identifier transcription, the GENI comparison rules (authority compared
//! case-insensitively and kept as written), "A is an authority for X", and the SFA hrn ↔ URN
//! mapping so that one identity serves both protocols (`reference/geni-am-api-spec.md` §4.1).

use std::fmt;
use std::str::FromStr;

use crate::{Hrn, RecordType, TrustError, hrn_to_urn, urn_to_hrn};

const PREFIX: &str = "urn:publicid:IDN+";
/// Longest URN accepted: a GENI URN is a certificate subjectAltName and a credential field, and
/// nothing real comes near this.
const MAX_URN_LEN: usize = 1024;

/// A parsed GENI URN. The parts are kept exactly as written (transcribed form), so printing
/// returns the input; comparison follows GENI (see [`PartialEq`]).
#[derive(Debug, Clone, Eq)]
pub struct Urn {
    authority: String,
    kind: String,
    name: String,
}

// === impl Urn ===

impl Urn {
    /// Parses `urn:publicid:IDN+<authority>+<type>+<name>` (the prefix in any case). Every part
    /// is mandatory; `<name>` may contain further `+`. Whitespace, control characters and
    /// characters RFC 3151 never produces are refused, as are malformed `%` escapes.
    pub fn parse(s: &str) -> Result<Self, TrustError> {
        let bad = |reason| TrustError::InvalidUrn {
            urn: s.chars().take(128).collect(),
            reason,
        };
        if s.len() > MAX_URN_LEN {
            return Err(bad("longer than 1024 bytes"));
        }
        let body = match s.get(..PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(PREFIX) => &s[PREFIX.len()..],
            _ => return Err(bad("does not start with urn:publicid:IDN+")),
        };
        let mut parts = body.splitn(3, '+');
        let (Some(authority), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <authority>+<type>+<name>"));
        };
        if authority.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(bad("empty authority, type or name"));
        }
        for part in [authority, kind, name] {
            if !part.bytes().all(is_urn_byte) {
                return Err(bad("contains a character a URN may not hold"));
            }
            if !escapes_well_formed(part) {
                return Err(bad("malformed %-escape"));
            }
        }
        if kind.contains(':') || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad("the type must be a plain word"));
        }
        if authority.split(':').any(str::is_empty) {
            return Err(bad("the authority has an empty label"));
        }
        Ok(Self {
            authority: authority.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        })
    }

    /// A URN from its three (already transcribed) parts.
    pub fn new(authority: &str, kind: &str, name: &str) -> Result<Self, TrustError> {
        Self::parse(&format!("{PREFIX}{authority}+{kind}+{name}"))
    }

    /// The URN of a public identifier (`IDN plc//princeton authority sa`), transcribed as RFC
    /// 3151 says.
    pub fn from_publicid(publicid: &str) -> Result<Self, TrustError> {
        Self::parse(&format!("urn:publicid:{}", publicid_to_urn(publicid)))
    }

    /// The public identifier this URN transcribes (`IDN plc//princeton authority sa`).
    pub fn to_publicid(&self) -> String {
        urn_to_publicid(&self.to_string()["urn:publicid:".len()..])
    }

    /// The SFA mapping of an hrn and record type (`plc.princeton.tmack` + user →
    /// `urn:publicid:IDN+plc:princeton+user+tmack`).
    pub fn from_hrn(hrn: &Hrn, kind: RecordType) -> Result<Self, TrustError> {
        Self::parse(&hrn_to_urn(hrn, kind))
    }

    /// The SFA hrn of this URN (authorities map to their own name: `…plc:princeton+authority+sa`
    /// → `plc.princeton`).
    pub fn to_hrn(&self) -> Result<Hrn, TrustError> {
        urn_to_hrn(&self.to_string()).map(|(hrn, _)| hrn)
    }

    /// The authority part as written (`plc:princeton`).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The type word (`user`, `slice`, `authority`, …).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The name part as written (may contain `+`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this URN names an authority (`+authority+…`), the only kind that may sign a
    /// credential other than by delegation.
    pub fn is_authority(&self) -> bool {
        self.kind.eq_ignore_ascii_case("authority")
    }

    /// The authority's own namespace: for `…+plc:princeton+authority+sa` it is `plc:princeton`.
    /// GENI: A is an authority for X when A is an authority URN and A's namespace is X's
    /// authority or a `:`-bounded prefix of it, compared case-insensitively.
    pub fn is_authority_for(&self, other: &Self) -> bool {
        self.is_authority() && namespace_covers(&self.authority, &other.authority)
    }
}

/// `outer` equals `inner` or is a whole-label prefix of it (`plc` covers `plc:princeton`, not
/// `plcx`), ignoring ASCII case.
fn namespace_covers(outer: &str, inner: &str) -> bool {
    let (o, i) = (outer.as_bytes(), inner.as_bytes());
    if o.len() > i.len() || !o.eq_ignore_ascii_case(&i[..o.len()]) {
        return false;
    }
    o.len() == i.len() || i[o.len()] == b':'
}

/// GENI comparison: authority and type ignore ASCII case; names are exact, except slice names,
/// which GENI compares case-insensitively.
impl PartialEq for Urn {
    fn eq(&self, other: &Self) -> bool {
        self.authority.eq_ignore_ascii_case(&other.authority)
            && self.kind.eq_ignore_ascii_case(&other.kind)
            && if self.kind.eq_ignore_ascii_case("slice") {
                self.name.eq_ignore_ascii_case(&other.name)
            } else {
                self.name == other.name
            }
    }
}

impl fmt::Display for Urn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}+{}+{}", self.authority, self.kind, self.name)
    }
}

impl FromStr for Urn {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Printable ASCII other than whitespace and the characters RFC 3151 always escapes or never
/// produces (`"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, `'`, `?`, `#`, `/`).
fn is_urn_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"<>\\^`{|}'?#/".contains(&b)
}

fn escapes_well_formed(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(x), Some(y)) if x.is_ascii_hexdigit() && y.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// RFC 3151 transcription of a public identifier into the URN's namespace-specific string:
/// trim; whitespace runs → `+`; `//` → `:`; `::` → `;`; then `+ : / ; ' ? # %` are %-escaped.
pub fn publicid_to_urn(publicid: &str) -> String {
    let mut out = String::with_capacity(publicid.len() + 8);
    let chars: Vec<char> = publicid.trim().chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            out.push('+');
            continue;
        }
        match (c, next) {
            ('/', Some('/')) => {
                out.push(':');
                i += 2;
                continue;
            }
            (':', Some(':')) => {
                out.push(';');
                i += 2;
                continue;
            }
            _ => {}
        }
        match c {
            '+' => out.push_str("%2B"),
            ':' => out.push_str("%3A"),
            '/' => out.push_str("%2F"),
            ';' => out.push_str("%3B"),
            '\'' => out.push_str("%27"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The inverse of [`publicid_to_urn`]: `+` → space, `:` → `//`, `;` → `::`, `%XX` → the
/// character (a malformed escape is kept as written).
pub fn urn_to_publicid(urn: &str) -> String {
    let mut out = Vec::with_capacity(urn.len());
    let b = urn.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b':' => out.extend_from_slice(b"//"),
            b';' => out.extend_from_slice(b"::"),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Urn {
        Urn::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_unchanged() {
        let s = "urn:publicid:IDN+plc:princeton+user+tmack";
        let urn = u(s);
        assert_eq!(
            (urn.authority(), urn.kind(), urn.name()),
            ("plc:princeton", "user", "tmack")
        );
        assert_eq!(urn.to_string(), s);
        let plus = u("urn:publicid:IDN+geni:gpo:gcf+sliver+a+b");
        assert_eq!(plus.name(), "a+b");
        assert_eq!(
            u("URN:PUBLICID:IDN+a+user+b").to_string(),
            "urn:publicid:IDN+a+user+b"
        );
    }

    #[test]
    fn refuses_malformed_urns() {
        for bad in [
            "",
            "urn:x",
            "urn:publicid:IDN+a+b",
            "urn:publicid:IDN++user+x",
            "urn:publicid:IDN+a++x",
            "urn:publicid:IDN+a+user+",
            "urn:publicid:IDN+a+user+b c",
            "urn:publicid:IDN+a+user+b\n",
            "urn:publicid:IDN+a+us:er+b",
            "urn:publicid:IDN+a::b+user+c",
            "urn:publicid:IDN+a+user+%zz",
            "urn:publicid:IDN+a+user+b<c",
        ] {
            assert!(Urn::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Urn::parse(&format!("urn:publicid:IDN+a+user+{}", "x".repeat(2000))).is_err());
    }

    #[test]
    fn rfc3151_transcription_both_ways() {
        let urn = Urn::from_publicid("IDN plc//princeton authority sa").unwrap();
        assert_eq!(
            urn.to_string(),
            "urn:publicid:IDN+plc:princeton+authority+sa"
        );
        assert_eq!(urn.to_publicid(), "IDN plc//princeton authority sa");
        assert_eq!(
            publicid_to_urn("  a  b//c::d+e:f/g;h'i?j#k%l  "),
            "a+b:c;d%2Be%3Af%2Fg%3Bh%27i%3Fj%23k%25l"
        );
        assert_eq!(
            urn_to_publicid("a+b:c;d%2Be%3Af%2Fg%3Bh%27i%3Fj%23k%25l"),
            "a b//c::d+e:f/g;h'i?j#k%l"
        );
    }

    #[test]
    fn authority_compares_case_insensitively_and_keeps_case() {
        let a = u("urn:publicid:IDN+Geni:GPO:gcf+user+alice");
        let b = u("urn:publicid:IDN+geni:gpo:GCF+USER+alice");
        assert_eq!(a, b);
        assert_eq!(a.authority(), "Geni:GPO:gcf");
        assert_ne!(a, u("urn:publicid:IDN+geni:gpo:gcf+user+Alice"));
        assert_eq!(
            u("urn:publicid:IDN+geni:gpo:gcf+slice+FixSlice"),
            u("urn:publicid:IDN+geni:gpo:gcf+slice+fixslice")
        );
    }

    #[test]
    fn authority_for_is_label_aware() {
        let sa = u("urn:publicid:IDN+plc+authority+sa");
        assert!(sa.is_authority_for(&u("urn:publicid:IDN+plc:princeton+slice+s1")));
        assert!(sa.is_authority_for(&u("urn:publicid:IDN+PLC+user+x")));
        assert!(sa.is_authority_for(&u("urn:publicid:IDN+plc:princeton+authority+sa")));
        assert!(!sa.is_authority_for(&u("urn:publicid:IDN+plcx+user+x")));
        assert!(!sa.is_authority_for(&u("urn:publicid:IDN+other:plc+user+x")));
        let user = u("urn:publicid:IDN+plc+user+x");
        assert!(!user.is_authority_for(&u("urn:publicid:IDN+plc+user+y")));
    }

    /// SFA `tests/testXrn.py`'s hrn → URN → hrn cases (hrn005, with an `@` in the hrn, is left
    /// to the hrn grammar; hrn007 has no type, which a `RecordType` cannot be).
    #[test]
    fn hrn_mapping_follows_sfa_xrn() {
        let cases = [
            (
                "ple.inria.baris",
                RecordType::User,
                "urn:publicid:IDN+ple:inria+user+baris",
            ),
            (
                "emulab\\.net.myslice.jktest",
                RecordType::Slice,
                "urn:publicid:IDN+emulab.net:myslice+slice+jktest",
            ),
            (
                "emulab\\.net.jktest",
                RecordType::Slice,
                "urn:publicid:IDN+emulab.net+slice+jktest",
            ),
            (
                "plc.princeton.tmack",
                RecordType::User,
                "urn:publicid:IDN+plc:princeton+user+tmack",
            ),
            (
                "plc.princeton.planetlab1",
                RecordType::Node,
                "urn:publicid:IDN+plc:princeton+node+planetlab1",
            ),
            (
                "plc.princeton",
                RecordType::Sa,
                "urn:publicid:IDN+plc:princeton+authority+sa",
            ),
            (
                "plc.vini.site",
                RecordType::Sa,
                "urn:publicid:IDN+plc:vini:site+authority+sa",
            ),
        ];
        for (hrn, kind, urn) in cases {
            let hrn = Hrn::parse(hrn).unwrap();
            let made = Urn::from_hrn(&hrn, kind).unwrap();
            assert_eq!(made.to_string(), urn);
            assert_eq!(made.to_hrn().unwrap(), hrn);
        }
    }
}
