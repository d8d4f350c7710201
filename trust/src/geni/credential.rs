//! `geni_sfa` credentials (versions 2 and 3): the `signed-credential` document, its chain of
//! `credential` elements (outermost first, each `parent` holding the one it was delegated
//! from) and the `ds:Signature` that covers each, read strictly against the GENI schema and
//! tolerant only of what gcf and SFA really write (`reference/geni-am-api-spec.md` §4.3).
//!
//! Parsing does the structural half of XML-DSig so that nothing later can be confused about
//! which bytes were signed: every `xml:id` in the document is unique, every signature references
//! exactly one credential of the chain and every credential has exactly one signature, and each
//! credential's digest is computed here from its canonical form. Keys, chains and the GENI rules
//! are the verifier's (`verify.rs`).

use std::collections::HashMap;

use super::c14n::canonicalize;
use super::dsig::{Signature, SignatureAlgorithm, digest};
use super::xml::{Child, Doc, XML_NS, XmlLimits, is_xml_space};
use super::{Privilege, Urn};
use crate::cert::{Certificate, Memo};
use crate::{Gid, TrustError};

/// A parsed, unverified GENI credential: the chain of links, outermost first.
#[derive(Debug, Clone)]
pub struct GeniCredential {
    links: Vec<GeniLink>,
    /// The root element's start tag as written: a delegation keeps it, so the namespaces in
    /// scope of the embedded parent (and so its canonical form) do not change.
    root_start: String,
}

/// One `credential` element of the chain.
#[derive(Debug, Clone)]
pub struct GeniLink {
    pub(crate) id: String,
    pub(crate) serial: String,
    pub(crate) owner: Gid,
    pub(crate) owner_urn: Urn,
    pub(crate) target: Gid,
    pub(crate) target_urn: Urn,
    pub(crate) expires: i64,
    pub(crate) privileges: Vec<Privilege>,
    pub(crate) signature: SignedBy,
    /// The element as written (kept for delegation).
    pub(crate) raw: String,
}

/// What the signature over one link says, reduced to facts for the verifier.
#[derive(Debug, Clone)]
pub(crate) struct SignedBy {
    pub(crate) algorithm: SignatureAlgorithm,
    pub(crate) digest_algorithm: SignatureAlgorithm,
    /// Whether the digest in `SignedInfo` is the digest of the link's canonical form.
    pub(crate) digest_matches: bool,
    /// The canonical `SignedInfo`, the bytes the RSA signature is over.
    pub(crate) signed_info: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) certificates: Vec<Certificate>,
    pub(crate) key_value: Option<(Vec<u8>, Vec<u8>)>,
    /// The `Signature` element as written (kept for delegation).
    pub(crate) raw: String,
}

fn bad(reason: impl Into<String>) -> TrustError {
    TrustError::decode("GENI credential", reason)
}

/// Whether a text looks like a GENI credential rather than a PEM object (for tools and servers
/// that take either): its first markup is an XML declaration or `<signed-credential`.
pub fn is_geni_credential(text: &str) -> bool {
    let t = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    let t = match t.strip_prefix("<?xml") {
        Some(rest) => match rest.find("?>") {
            Some(end) => rest[end + 2..].trim_start(),
            None => return false,
        },
        None => t,
    };
    t.starts_with("<signed-credential")
}

impl GeniCredential {
    /// Parses a `signed-credential` document with the default XML limits.
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        Self::parse_with(text, &XmlLimits::default())
    }

    pub fn parse_with(text: &str, limits: &XmlLimits) -> Result<Self, TrustError> {
        // The XML tree, canonical forms and digests: roughly 30 ns a byte.
        let size = u64::try_from(text.len()).unwrap_or(u64::MAX);
        if !crate::work::charge(size / 32) {
            return Err(bad("work budget spent".to_owned()));
        }
        let doc = Doc::parse(text, limits)?;
        let root = doc.elem(0);
        if root.qname != "signed-credential" {
            return Err(bad(format!(
                "the root element is <{}>, not <signed-credential>",
                root.qname.chars().take(64).collect::<String>()
            )));
        }
        let root_start = start_tag(text, &doc, 0)?;
        no_namespaces(&doc)?;
        let ids = id_table(&doc)?;
        let top = element_children(&doc, 0)?;
        let (cred, sigs) = match top.as_slice() {
            [c, s] if doc.elem(*c).qname == "credential" && doc.elem(*s).qname == "signatures" => {
                (*c, *s)
            }
            [c] if doc.elem(*c).qname == "credential" => {
                return Err(bad("the credential is not signed (no <signatures>)"));
            }
            _ => {
                return Err(bad(
                    "signed-credential must hold one credential, then signatures",
                ));
            }
        };
        // The chain: the credential, then each parent/credential.
        let mut chain = vec![cred];
        let mut cur = cred;
        while let Some(parent) = link_parent(&doc, cur)? {
            if chain.len() >= crate::MAX_CHAIN_LEN {
                return Err(bad(format!(
                    "delegation chain longer than {}",
                    crate::MAX_CHAIN_LEN
                )));
            }
            chain.push(parent);
            cur = parent;
        }
        // One signature per link, each referencing a link of the chain by its xml:id.
        let mut signatures: HashMap<usize, Signature> = HashMap::new();
        for s in element_children(&doc, sigs)? {
            let e = doc.elem(s);
            if e.ns != super::dsig::DSIG_NS || e.local != "Signature" {
                return Err(bad(format!(
                    "<signatures> holds <{}>, not a ds:Signature",
                    e.qname.chars().take(64).collect::<String>()
                )));
            }
            let sig = Signature::read(&doc, s)?;
            let target = *ids.get(sig.reference.as_str()).ok_or_else(|| {
                bad(format!(
                    "a signature references #{}, which is not in this document",
                    sig.reference
                ))
            })?;
            if !chain.contains(&target) {
                return Err(bad(format!(
                    "a signature references #{}, which is not a credential of the chain",
                    sig.reference
                )));
            }
            if signatures.insert(target, sig).is_some() {
                return Err(bad("a credential is covered by more than one signature"));
            }
        }
        let mut memo = Memo::default();
        let mut links = Vec::with_capacity(chain.len());
        for &c in &chain {
            let sig = signatures.remove(&c).ok_or_else(|| {
                bad(format!(
                    "credential #{} has no signature",
                    doc.elem(c).xml_id().unwrap_or("?")
                ))
            })?;
            links.push(read_link(text, &doc, c, &sig, &mut memo)?);
        }
        Ok(Self { links, root_start })
    }

    /// The links, outermost (the one presented) first.
    pub fn links(&self) -> &[GeniLink] {
        &self.links
    }

    /// The outermost link.
    pub fn outer(&self) -> &GeniLink {
        &self.links[0]
    }

    pub(crate) fn root_start(&self) -> &str {
        &self.root_start
    }
}

impl GeniLink {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn serial(&self) -> &str {
        &self.serial
    }
    pub fn owner(&self) -> &Gid {
        &self.owner
    }
    pub fn owner_urn(&self) -> &Urn {
        &self.owner_urn
    }
    pub fn target(&self) -> &Gid {
        &self.target
    }
    pub fn target_urn(&self) -> &Urn {
        &self.target_urn
    }
    /// Expiry, seconds since the epoch (UTC).
    pub fn expires(&self) -> i64 {
        self.expires
    }
    pub fn privileges(&self) -> &[Privilege] {
        &self.privileges
    }
    /// The signature algorithm of the signature over this link.
    pub fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.signature.algorithm
    }
}

fn start_tag(text: &str, doc: &Doc, i: usize) -> Result<String, TrustError> {
    let (from, _) = doc.elem(i).span;
    let rest = text.get(from..).ok_or_else(|| bad("bad element span"))?;
    // Attribute values cannot hold a raw `>`-free `<`, but may hold `>`: find the tag's end
    // outside quotes.
    let mut quote = None;
    for (n, ch) in rest.char_indices() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Ok(rest[..=n].to_owned()),
            _ => {}
        }
    }
    Err(bad("unterminated start tag"))
}

/// Element children of `i`; text other than whitespace is an error.
fn element_children(doc: &Doc, i: usize) -> Result<Vec<usize>, TrustError> {
    let e = doc.elem(i);
    let mut out = Vec::new();
    for c in &e.children {
        match c {
            Child::Elem(c) => out.push(*c),
            Child::Text(t) if t.chars().all(is_xml_space) => {}
            Child::Text(_) => return Err(bad(format!("unexpected text in <{}>", e.qname))),
        }
    }
    Ok(out)
}

/// The credential schema has no namespace: an element in one is refused, except inside a
/// `ds:Signature` and inside `extensions` (whose content is any XML).
fn no_namespaces(doc: &Doc) -> Result<(), TrustError> {
    for e in &doc.elems {
        if e.ns.is_empty() {
            continue;
        }
        let mut cur = Some(e);
        let mut allowed = false;
        while let Some(a) = cur {
            if (a.ns == super::dsig::DSIG_NS && a.local == "Signature")
                || (a.ns.is_empty() && a.qname == "extensions")
            {
                allowed = true;
                break;
            }
            cur = a.parent.map(|p| doc.elem(p));
        }
        if !allowed {
            return Err(bad(format!(
                "element <{}> is in namespace {:?}; the credential schema has none",
                e.qname.chars().take(64).collect::<String>(),
                e.ns.chars().take(128).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Every `xml:id` in the document, each unique. Unprefixed `Id`/`ID`/`id` attributes are refused
/// too: other verifiers resolve references through them, and a credential never has one, so
/// their only use is to make two verifiers disagree about what was signed.
fn id_table(doc: &Doc) -> Result<HashMap<&str, usize>, TrustError> {
    let mut ids = HashMap::new();
    for (i, e) in doc.elems.iter().enumerate() {
        for a in &e.attrs {
            if a.ns.is_empty() && matches!(a.local.as_str(), "Id" | "ID" | "id") {
                return Err(bad(format!(
                    "attribute {} is not allowed (only xml:id)",
                    a.qname
                )));
            }
            if a.ns == XML_NS && a.local == "id" && ids.insert(a.value.as_str(), i).is_some() {
                return Err(bad(format!(
                    "xml:id {:?} occurs more than once",
                    a.value.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(ids)
}

/// The `parent/credential` of a link, if any.
fn link_parent(doc: &Doc, cred: usize) -> Result<Option<usize>, TrustError> {
    let Some(&last) = element_children(doc, cred)?.last() else {
        return Ok(None);
    };
    if doc.elem(last).qname != "parent" {
        return Ok(None);
    }
    match element_children(doc, last)?.as_slice() {
        [c] if doc.elem(*c).qname == "credential" => Ok(Some(*c)),
        _ => Err(bad("parent must hold exactly one credential")),
    }
}

fn text_of(doc: &Doc, i: usize, what: &str) -> Result<String, TrustError> {
    let mut out = String::new();
    for c in &doc.elem(i).children {
        match c {
            Child::Text(t) => out.push_str(t),
            Child::Elem(_) => return Err(bad(format!("<{what}> holds an element"))),
        }
    }
    Ok(out)
}

fn read_link(
    text: &str,
    doc: &Doc,
    c: usize,
    sig: &Signature,
    memo: &mut Memo,
) -> Result<GeniLink, TrustError> {
    let e = doc.elem(c);
    let id = e
        .xml_id()
        .ok_or_else(|| bad("a credential has no xml:id"))?
        .to_owned();
    if let Some(a) = e
        .attrs
        .iter()
        .find(|a| !(a.ns == XML_NS && a.local == "id"))
    {
        return Err(bad(format!("credential #{id} has attribute {}", a.qname)));
    }
    let what = |field: &str| format!("{field} of credential #{id}");
    let kids = element_children(doc, c)?;
    let mut fields = kids
        .iter()
        .map(|k| (doc.elem(*k).qname.as_str(), *k))
        .peekable();
    let mut take = |name: &str, optional: bool| -> Result<Option<usize>, TrustError> {
        match fields.peek() {
            Some((n, k)) if *n == name => {
                let k = *k;
                fields.next();
                Ok(Some(k))
            }
            _ if optional => Ok(None),
            Some((n, _)) => Err(bad(format!(
                "credential #{id}: expected <{name}>, found <{}>",
                n.chars().take(64).collect::<String>()
            ))),
            None => Err(bad(format!("credential #{id}: missing <{name}>"))),
        }
    };
    let field = |k: Option<usize>, name: &str| -> Result<String, TrustError> {
        match k {
            Some(k) => text_of(doc, k, name),
            None => Ok(String::new()),
        }
    };
    let kind = take("type", false)?;
    let serial = take("serial", false)?;
    let owner_gid = take("owner_gid", false)?;
    let owner_urn = take("owner_urn", true)?;
    let target_gid = take("target_gid", false)?;
    let target_urn = take("target_urn", true)?;
    let _uuid = take("uuid", false)?;
    let expires = take("expires", false)?;
    let privileges = take("privileges", false)?;
    while take("extensions", true)?.is_some() {}
    let parent = take("parent", true)?;
    if let Some((n, _)) = fields.next() {
        return Err(bad(format!(
            "credential #{id}: unexpected <{}>",
            n.chars().take(64).collect::<String>()
        )));
    }
    let _ = parent;
    let kind_text = field(kind, "type")?;
    if kind_text.trim_matches(is_xml_space) != "privilege" {
        return Err(bad(format!(
            "credential #{id} is of type {:?}; only privilege credentials are supported",
            kind_text.chars().take(32).collect::<String>()
        )));
    }
    let owner = Gid::parse_in(&field(owner_gid, "owner_gid")?, &what("owner_gid"), memo)?;
    let target = Gid::parse_in(&field(target_gid, "target_gid")?, &what("target_gid"), memo)?;
    let owner_urn = urn_field(&field(owner_urn, "owner_urn")?, &owner, &what("owner_urn"))?;
    let target_urn = urn_field(
        &field(target_urn, "target_urn")?,
        &target,
        &what("target_urn"),
    )?;
    let expires_text = field(expires, "expires")?;
    let expires = parse_datetime(expires_text.trim_matches(is_xml_space)).ok_or_else(|| {
        bad(format!(
            "credential #{id}: expires {:?} is not an xsd:dateTime",
            expires_text.chars().take(40).collect::<String>()
        ))
    })?;
    let privileges = read_privileges(doc, privileges.unwrap_or(c), &id)?;
    let canonical = canonicalize(doc, c, Some(sig.elem));
    let digest_matches = digest(sig.digest_alg, &canonical) == sig.digest_value;
    let signed_info = canonicalize(doc, sig.signed_info, None);
    let (from, to) = e.span;
    let (sfrom, sto) = doc.elem(sig.elem).span;
    Ok(GeniLink {
        serial: field(serial, "serial")?
            .trim_matches(is_xml_space)
            .to_owned(),
        owner,
        owner_urn,
        target,
        target_urn,
        expires,
        privileges,
        signature: SignedBy {
            algorithm: sig.signature_alg,
            digest_algorithm: sig.digest_alg,
            digest_matches,
            signed_info,
            value: sig.value.clone(),
            certificates: sig.certificates.clone(),
            key_value: sig.key_value.clone(),
            raw: text.get(sfrom..sto).unwrap_or_default().to_owned(),
        },
        raw: text.get(from..to).unwrap_or_default().to_owned(),
        id,
    })
}

/// The URN field if present (it must then be the GID's own URN), else the GID's URN.
fn urn_field(text: &str, gid: &Gid, what: &str) -> Result<Urn, TrustError> {
    let from_gid = super::gid_urn(gid);
    let text = text.trim_matches(is_xml_space);
    if text.is_empty() {
        return from_gid.ok_or_else(|| TrustError::decode(what, "no URN and the GID has none"));
    }
    let urn = Urn::parse(text)?;
    match from_gid {
        Some(g) if g != urn => Err(TrustError::decode(
            what,
            format!("URN {urn} is not the GID's own ({g})"),
        )),
        _ => Ok(urn),
    }
}

fn read_privileges(doc: &Doc, p: usize, id: &str) -> Result<Vec<Privilege>, TrustError> {
    let mut out = Vec::new();
    for k in element_children(doc, p)? {
        if doc.elem(k).qname != "privilege" {
            return Err(bad(format!(
                "credential #{id}: <privileges> holds something else"
            )));
        }
        let parts = element_children(doc, k)?;
        let [name, flag] = parts.as_slice() else {
            return Err(bad(format!(
                "credential #{id}: a privilege must hold name and can_delegate"
            )));
        };
        if doc.elem(*name).qname != "name" || doc.elem(*flag).qname != "can_delegate" {
            return Err(bad(format!(
                "credential #{id}: a privilege must hold name and can_delegate"
            )));
        }
        let name = text_of(doc, *name, "name")?;
        let can_delegate = match text_of(doc, *flag, "can_delegate")?.trim_matches(is_xml_space) {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(bad(format!(
                    "credential #{id}: can_delegate {:?} is not an xsd:boolean",
                    other.chars().take(16).collect::<String>()
                )));
            }
        };
        out.push(Privilege::new(
            name.trim_matches(is_xml_space),
            can_delegate,
        )?);
    }
    Ok(out)
}

/// An xsd:dateTime (`2030-11-22T08:53:20Z`, fractional seconds and `±hh:mm` offsets allowed, no
/// zone meaning UTC) as seconds since the epoch.
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' || !matches!(rb[0], b'+' | b'-') {
                return None;
            }
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            if h > 14 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if rb[0] == b'-' { -o } else { o }
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days_from_civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format_utc;

    #[test]
    fn datetimes_parse_as_xsd_says() {
        let t = parse_datetime("2030-11-22T08:53:20Z").unwrap();
        assert_eq!(format_utc(t), "2030-11-22T08:53:20Z");
        assert_eq!(parse_datetime("2030-11-22T08:53:20"), Some(t));
        assert_eq!(parse_datetime("2030-11-22T09:53:20.123+01:00"), Some(t));
        assert_eq!(
            format_utc(parse_datetime("2000-02-29T00:00:00Z").unwrap()),
            "2000-02-29T00:00:00Z"
        );
        for bad in [
            "",
            "2030-11-22",
            "2030-13-01T00:00:00Z",
            "2030-02-30T00:00:00Z",
            "2030-11-22T08:53:20X",
            "2030-11-22T08:53:20+1:00",
            "2030-11-22 08:53:20Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn geni_credentials_are_recognised_by_content() {
        assert!(is_geni_credential(
            "<?xml version=\"1.0\"?>\n<signed-credential>"
        ));
        assert!(is_geni_credential("  <signed-credential xmlns:xsi=\"x\">"));
        assert!(!is_geni_credential("-----BEGIN CERTIFICATE-----"));
        assert!(!is_geni_credential("<?xml version=\"1.0\"?><methodCall>"));
    }
}
