//! The XML-DSig subset GENI credentials use, read strictly: one `Reference` to a same-document
//! `#id`, the enveloped-signature transform and nothing else, inclusive C14N 1.0 of
//! `SignedInfo`, sha1/sha256 digests, rsa-sha1/rsa-sha256 signatures, and `KeyInfo` holding
//! `X509Data` certificates (and, as xmlsec1 writes, a `KeyValue` that is only ever compared with
//! the signer's certificate, never used). Any other algorithm, transform or element is an error
//! rather than something skipped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;

use super::xml::{Child, Doc, is_xml_space};
use crate::cert::Certificate;
use crate::{PublicKey, TrustError};

pub(crate) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
pub(crate) const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// A digest or signature hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// `rsa-sha1` with a `sha1` digest: what gcf, SFA and xmlsec1 templates write.
    RsaSha1,
    /// `rsa-sha256` with a `sha256` digest.
    RsaSha256,
}

impl SignatureAlgorithm {
    pub(crate) fn digest(self) -> MessageDigest {
        match self {
            Self::RsaSha1 => MessageDigest::sha1(),
            Self::RsaSha256 => MessageDigest::sha256(),
        }
    }

    pub(crate) fn signature_uri(self) -> &'static str {
        match self {
            Self::RsaSha1 => RSA_SHA1,
            Self::RsaSha256 => RSA_SHA256,
        }
    }

    pub(crate) fn digest_uri(self) -> &'static str {
        match self {
            Self::RsaSha1 => SHA1,
            Self::RsaSha256 => SHA256,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaSha1 => "rsa-sha1",
            Self::RsaSha256 => "rsa-sha256",
        }
    }
}

/// One `ds:Signature`, read and reduced to what verification needs.
#[derive(Debug, Clone)]
pub(crate) struct Signature {
    /// The element index of the `Signature`.
    pub(crate) elem: usize,
    /// The `#id` its one `Reference` names, without the `#`.
    pub(crate) reference: String,
    pub(crate) signature_alg: SignatureAlgorithm,
    pub(crate) digest_alg: SignatureAlgorithm,
    pub(crate) digest_value: Vec<u8>,
    pub(crate) signed_info: usize,
    pub(crate) value: Vec<u8>,
    /// `X509Data/X509Certificate`, in document order.
    pub(crate) certificates: Vec<Certificate>,
    /// `KeyValue/RSAKeyValue` (modulus, exponent), big-endian, leading zeros stripped.
    pub(crate) key_value: Option<(Vec<u8>, Vec<u8>)>,
}

fn bad(reason: impl Into<String>) -> TrustError {
    TrustError::decode("GENI credential signature", reason)
}

/// The element children of `i` with the local name and namespace expected, in order; any other
/// element, or non-whitespace text, is an error.
fn children(doc: &Doc, i: usize, allowed: &[&str]) -> Result<Vec<(String, usize)>, TrustError> {
    let e = doc.elem(i);
    let mut out = Vec::new();
    for c in &e.children {
        match c {
            Child::Text(t) if t.chars().all(is_xml_space) => {}
            Child::Text(_) => return Err(bad(format!("unexpected text in {}", e.local))),
            Child::Elem(c) => {
                let ce = doc.elem(*c);
                if ce.ns != DSIG_NS || !allowed.contains(&ce.local.as_str()) {
                    return Err(bad(format!(
                        "unexpected element {} in {}",
                        ce.qname.chars().take(64).collect::<String>(),
                        e.local
                    )));
                }
                out.push((ce.local.clone(), *c));
            }
        }
    }
    Ok(out)
}

fn one(list: &[(String, usize)], name: &str, parent: &str) -> Result<usize, TrustError> {
    let mut found = list.iter().filter(|(n, _)| n == name);
    match (found.next(), found.next()) {
        (Some((_, i)), None) => Ok(*i),
        (None, _) => Err(bad(format!("{parent} has no {name}"))),
        (Some(_), Some(_)) => Err(bad(format!("{parent} has more than one {name}"))),
    }
}

fn text_of(doc: &Doc, i: usize) -> Result<String, TrustError> {
    let mut out = String::new();
    for c in &doc.elem(i).children {
        match c {
            Child::Text(t) => out.push_str(t),
            Child::Elem(_) => {
                return Err(bad(format!("{} holds an element", doc.elem(i).local)));
            }
        }
    }
    Ok(out)
}

fn base64_of(doc: &Doc, i: usize) -> Result<Vec<u8>, TrustError> {
    let text: String = text_of(doc, i)?
        .chars()
        .filter(|c| !is_xml_space(*c))
        .collect();
    STANDARD
        .decode(text.as_bytes())
        .map_err(|_| bad(format!("{} is not base64", doc.elem(i).local)))
}

fn algorithm(doc: &Doc, i: usize) -> Result<String, TrustError> {
    let e = doc.elem(i);
    if !children(doc, i, &[])?.is_empty() {
        return Err(bad(format!("{} has content", e.local)));
    }
    e.attr("", "Algorithm")
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("{} has no Algorithm", e.local)))
}

impl Signature {
    /// Reads the `Signature` element at `i`.
    pub(crate) fn read(doc: &Doc, i: usize) -> Result<Self, TrustError> {
        let top = children(
            doc,
            i,
            &["SignedInfo", "SignatureValue", "KeyInfo", "Object"],
        )?;
        let order: Vec<&str> = top.iter().map(|(n, _)| n.as_str()).collect();
        if !matches!(
            order.as_slice(),
            ["SignedInfo", "SignatureValue"] | ["SignedInfo", "SignatureValue", "KeyInfo"]
        ) {
            return Err(bad(format!(
                "Signature must hold SignedInfo, SignatureValue and KeyInfo in that order, not {}",
                order.join(", ")
            )));
        }
        let signed_info = top[0].1;
        let value = base64_of(doc, top[1].1)?;
        let si = children(
            doc,
            signed_info,
            &["CanonicalizationMethod", "SignatureMethod", "Reference"],
        )?;
        let si_order: Vec<&str> = si.iter().map(|(n, _)| n.as_str()).collect();
        if si_order != ["CanonicalizationMethod", "SignatureMethod", "Reference"] {
            return Err(bad(
                "SignedInfo must hold one CanonicalizationMethod, SignatureMethod and Reference",
            ));
        }
        let c14n = algorithm(doc, si[0].1)?;
        if c14n != C14N_10 {
            return Err(bad(format!("unsupported canonicalization {c14n}")));
        }
        let signature_alg = match algorithm(doc, si[1].1)?.as_str() {
            RSA_SHA1 => SignatureAlgorithm::RsaSha1,
            RSA_SHA256 => SignatureAlgorithm::RsaSha256,
            other => return Err(bad(format!("unsupported signature method {other}"))),
        };
        let reference = si[2].1;
        let r = doc.elem(reference);
        if let Some(a) = r
            .attrs
            .iter()
            .find(|a| !(a.ns.is_empty() && a.local == "URI"))
        {
            return Err(bad(format!("unexpected Reference attribute {}", a.qname)));
        }
        let uri = r
            .attr("", "URI")
            .ok_or_else(|| bad("Reference has no URI"))?;
        let id = uri
            .strip_prefix('#')
            .filter(|id| is_ncname(id))
            .ok_or_else(|| {
                bad(format!(
                    "Reference URI {:?} is not a same-document #id",
                    uri.chars().take(64).collect::<String>()
                ))
            })?;
        let parts = children(
            doc,
            reference,
            &["Transforms", "DigestMethod", "DigestValue"],
        )?;
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        let (digest_method, digest_value) = match names.as_slice() {
            ["Transforms", "DigestMethod", "DigestValue"] => {
                for (_, t) in children(doc, parts[0].1, &["Transform"])? {
                    let alg = algorithm(doc, t)?;
                    if alg != ENVELOPED {
                        return Err(bad(format!("unsupported transform {alg}")));
                    }
                }
                (parts[1].1, parts[2].1)
            }
            ["DigestMethod", "DigestValue"] => (parts[0].1, parts[1].1),
            _ => {
                return Err(bad(
                    "Reference must hold Transforms, DigestMethod and DigestValue in order",
                ));
            }
        };
        let digest_alg = match algorithm(doc, digest_method)?.as_str() {
            SHA1 => SignatureAlgorithm::RsaSha1,
            SHA256 => SignatureAlgorithm::RsaSha256,
            other => return Err(bad(format!("unsupported digest method {other}"))),
        };
        let digest_value = base64_of(doc, digest_value)?;
        let (certificates, key_value) = match top.get(2) {
            Some((_, k)) => key_info(doc, *k)?,
            None => (Vec::new(), None),
        };
        Ok(Self {
            elem: i,
            reference: id.to_owned(),
            signature_alg,
            digest_alg,
            digest_value,
            signed_info,
            value,
            certificates,
            key_value,
        })
    }
}

type KeyInfo = (Vec<Certificate>, Option<(Vec<u8>, Vec<u8>)>);

fn key_info(doc: &Doc, i: usize) -> Result<KeyInfo, TrustError> {
    let mut certs = Vec::new();
    let mut key_value = None;
    for (name, c) in children(doc, i, &["X509Data", "KeyValue", "KeyName"])? {
        match name.as_str() {
            "X509Data" => {
                let allowed = ["X509Certificate", "X509SubjectName", "X509IssuerSerial"];
                for (n, x) in children(doc, c, &allowed)? {
                    if n == "X509Certificate" {
                        if certs.len() >= crate::MAX_CHAIN_LEN {
                            return Err(bad("too many X509Certificate elements"));
                        }
                        certs.push(Certificate::from_der(&base64_of(doc, x)?)?);
                    }
                }
            }
            "KeyValue" => {
                if key_value.is_some() {
                    return Err(bad("more than one KeyValue"));
                }
                let rsa = one(
                    &children(doc, c, &["RSAKeyValue"])?,
                    "RSAKeyValue",
                    "KeyValue",
                )?;
                let parts = children(doc, rsa, &["Modulus", "Exponent"])?;
                let m = base64_of(doc, one(&parts, "Modulus", "RSAKeyValue")?)?;
                let e = base64_of(doc, one(&parts, "Exponent", "RSAKeyValue")?)?;
                key_value = Some((strip_zeros(m), strip_zeros(e)));
            }
            _ => {}
        }
    }
    Ok((certs, key_value))
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let n = v.iter().take_while(|b| **b == 0).count();
    v.drain(..n);
    v
}

/// Whether `key` is the RSA key (modulus, exponent) given.
pub(crate) fn key_matches(key: &PublicKey, value: &(Vec<u8>, Vec<u8>)) -> bool {
    let Ok(rsa) = key.pkey().rsa() else {
        return false;
    };
    rsa.n().to_vec() == value.0 && rsa.e().to_vec() == value.1
}

/// XML NCName, restricted to ASCII (every id GENI tools write is `ref…` or `Sig_ref…`).
pub(crate) fn is_ncname(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// Verifies an RSA PKCS#1 v1.5 signature.
pub(crate) fn rsa_verify(
    key: &PublicKey,
    alg: SignatureAlgorithm,
    data: &[u8],
    signature: &[u8],
) -> bool {
    if !crate::work::charge_rsa(key.bits()) {
        return false;
    }
    let Ok(mut v) = openssl::sign::Verifier::new(alg.digest(), key.pkey()) else {
        return false;
    };
    v.verify_oneshot(signature, data).unwrap_or(false)
}

/// A digest of `data`.
pub(crate) fn digest(alg: SignatureAlgorithm, data: &[u8]) -> Vec<u8> {
    openssl::hash::hash(alg.digest(), data)
        .map(|d| d.to_vec())
        .unwrap_or_default()
}
