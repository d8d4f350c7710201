//! X.509 certificates as Geniwrapper uses them: a CN-only subject and issuer, a public key, and
//! one subjectAltName URI that carries the object's XML-RPC payload.
//!
//! This module owns reading certificates (also X.509 v1 ones that carry extensions, as every 2008
//! certificate does), splitting chain text in both forms (`-----parent-----` separators and plain
//! concatenated PEMs, child first), and building new certificates in the modern shape or in the
//! exact 2008 one. It decides nothing about trust: signature, date and digest facts are exposed
//! for the verifier to judge.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use openssl::asn1::{Asn1Integer, Asn1Time, Asn1TimeRef, Asn1Type};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509NameRef};

use crate::error::crypto;
use crate::keys::first_reason;
use crate::{Keypair, MAX_CHAIN_LEN, PublicKey, TrustError};

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";
const PARENT_SEPARATOR: &str = "-----parent-----";

/// How new objects are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertMode {
    /// X.509 v3, sha256 signatures, 2048-bit keys, random serials.
    #[default]
    Modern,
    /// Exactly what the 2008 Python classes wrote: no version field (v1) despite the extension,
    /// serial 1, md5 signatures, CNs as PrintableString or T61String, for peers that need it.
    Compat2008,
}

/// How a chain is written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainForm {
    /// `child PEM` + `-----parent-----` + `parent PEM` …, no newline after the separator: the
    /// 2008 form, which every reader (2008 and later) accepts.
    #[default]
    Separator,
    /// Plain concatenated PEMs, child first: the form SFA wrote from 2010 on.
    Plain,
}

/// A validity period in seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// One parsed certificate with the facts the rest of the crate needs, read once. Cloning is
/// cheap: chains share the certificates they repeat.
#[derive(Clone)]
pub struct Certificate(Arc<CertInner>);

struct CertInner {
    x509: X509,
    der: Vec<u8>,
    subject: String,
    issuer: String,
    validity: Validity,
    public_key: PublicKey,
    san_uris: Vec<String>,
}

/// Signature digests as the digest policy sorts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DigestClass {
    /// md5 or sha1 with RSA: accepted only under `legacy_digests`.
    Legacy,
    /// sha256, sha384 or sha512 with RSA.
    Strong,
    /// Anything else (md2, md4, DSA, …): never accepted.
    Unsupported,
}

// === impl Validity ===

impl Validity {
    /// `lifetime_secs` from `now`.
    pub fn from_now(now: i64, lifetime_secs: i64) -> Self {
        Self {
            not_before: now,
            not_after: now.saturating_add(lifetime_secs),
        }
    }

    /// The 2008 validity: notBefore now, notAfter 5×365 days later.
    pub fn compat_2008(now: i64) -> Self {
        Self::from_now(now, 5 * 365 * 86_400)
    }
}

// === impl Certificate ===

impl Certificate {
    pub fn from_der(der: &[u8]) -> Result<Self, TrustError> {
        let size = u64::try_from(der.len()).unwrap_or(u64::MAX);
        if !crate::work::charge(crate::work::PARSE.saturating_add(size / crate::work::PARSE_BYTES))
        {
            return Err(TrustError::decode("certificate", "work budget spent"));
        }
        // OpenSSL ignores bytes after the certificate; they would be kept (and digested) here.
        if der::tlv(der).ok().and_then(|(h, l)| h.checked_add(l)) != Some(der.len()) {
            return Err(TrustError::decode(
                "certificate",
                "not exactly one DER certificate",
            ));
        }
        let x509 =
            X509::from_der(der).map_err(|e| TrustError::decode("certificate", first_reason(&e)))?;
        Self::from_x509(x509, der.to_vec())
    }

    /// Reads one `-----BEGIN CERTIFICATE-----` block.
    pub fn from_pem(pem: &str) -> Result<Self, TrustError> {
        use base64::Engine;
        let body = pem
            .trim()
            .strip_prefix(BEGIN)
            .and_then(|b| b.strip_suffix(END))
            .ok_or_else(|| TrustError::decode("certificate", "not a PEM certificate block"))?;
        let mut b64 = Vec::with_capacity(body.len());
        for line in body.lines() {
            b64.extend_from_slice(line.trim().as_bytes());
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .map_err(|_| TrustError::decode("certificate", "bad base64 in PEM"))?;
        Self::from_der(&der)
    }

    fn from_x509(x509: X509, der: Vec<u8>) -> Result<Self, TrustError> {
        let subject = common_name(x509.subject_name())
            .ok_or_else(|| TrustError::decode("certificate", "subject has no common name"))?;
        let issuer = common_name(x509.issuer_name())
            .ok_or_else(|| TrustError::decode(subject.clone(), "issuer has no common name"))?;
        let validity = Validity {
            not_before: unix_time(x509.not_before())
                .ok_or_else(|| TrustError::decode(subject.clone(), "unreadable notBefore"))?,
            not_after: unix_time(x509.not_after())
                .ok_or_else(|| TrustError::decode(subject.clone(), "unreadable notAfter"))?,
        };
        // The SPKI bytes come straight from the DER and the key from OpenSSL's parse: converting
        // the key to DER and back goes through OpenSSL 3's encoder lookup, which cost more than
        // everything else in parsing a credential.
        let key = x509
            .public_key()
            .map_err(|e| TrustError::decode(subject.clone(), first_reason(&e)))?;
        let spki =
            der::spki(&der).ok_or_else(|| TrustError::decode(subject.clone(), "no public key"))?;
        // Before any signature is checked with it: the key's size and exponent bound the cost.
        crate::keys::check_spki(spki)
            .map_err(|reason| TrustError::decode(subject.clone(), reason))?;
        let public_key = PublicKey::from_parts(key, spki.to_vec());
        let san_uris = x509
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.uri().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self(Arc::new(CertInner {
            x509,
            der,
            subject,
            issuer,
            validity,
            public_key,
            san_uris,
        })))
    }

    /// Subject common name (for every Geniwrapper object, its hrn).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// Issuer common name (the signing authority's hrn).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    pub fn validity(&self) -> Validity {
        self.0.validity
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.0.public_key
    }

    /// The subjectAltName URIs, in order.
    pub fn san_uris(&self) -> &[String] {
        &self.0.san_uris
    }

    /// The XML-RPC payload of a Geniwrapper object: the one SAN URI with `http://` stripped (2008
    /// GIDs and credentials), or a URI that is itself the `<params>` document (later tickets).
    pub fn xmlrpc_payload(&self) -> Option<&str> {
        self.0.san_uris.iter().find_map(|u| {
            if u.len() >= 7 && u.as_bytes()[..7].eq_ignore_ascii_case(b"http://") {
                u.get(7..)
            } else if u.starts_with("<params>") || u.starts_with("<?xml") {
                Some(u.as_str())
            } else {
                None
            }
        })
    }

    /// X.509 version as written in the certificate: 1 when the field is absent (as in 2008).
    pub fn version(&self) -> i32 {
        self.0.x509.version() + 1
    }

    pub fn serial(&self) -> String {
        self.0
            .x509
            .serial_number()
            .to_bn()
            .and_then(|bn| bn.to_dec_str().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    /// The signature algorithm's long name (`md5WithRSAEncryption`, `sha256WithRSAEncryption`).
    pub fn signature_algorithm(&self) -> &'static str {
        let nid = self.0.x509.signature_algorithm().object().nid();
        nid.long_name().unwrap_or("unknown")
    }

    pub(crate) fn digest_class(&self) -> DigestClass {
        match self.0.x509.signature_algorithm().object().nid() {
            Nid::MD5WITHRSAENCRYPTION | Nid::SHA1WITHRSAENCRYPTION | Nid::SHA1WITHRSA => {
                DigestClass::Legacy
            }
            Nid::SHA256WITHRSAENCRYPTION
            | Nid::SHA384WITHRSAENCRYPTION
            | Nid::SHA512WITHRSAENCRYPTION => DigestClass::Strong,
            _ => DigestClass::Unsupported,
        }
    }

    /// ASN.1 string type of the subject CN (`PrintableString`, `T61String`, `UTF8String`, …).
    pub fn subject_cn_type(&self) -> &'static str {
        cn_type(self.0.x509.subject_name())
    }

    /// ASN.1 string type of the issuer CN.
    pub fn issuer_cn_type(&self) -> &'static str {
        cn_type(self.0.x509.issuer_name())
    }

    /// Whether `key` made this certificate's signature. A malformed signature is `false`.
    pub fn is_signed_by(&self, key: &PublicKey) -> bool {
        crate::work::charge_rsa(key.bits()) && self.0.x509.verify(key.pkey()).unwrap_or(false)
    }

    pub fn to_der(&self) -> Result<Vec<u8>, TrustError> {
        Ok(self.0.der.clone())
    }

    /// The DER as read or built.
    pub fn der(&self) -> &[u8] {
        &self.0.der
    }

    /// PEM exactly as pyOpenSSL's `dump_certificate` wrote it (64-column base64, trailing newline),
    /// of the very DER this certificate was read from. OpenSSL's own encoder re-encodes the parts
    /// it parsed loosely (the fuzzer found an outer signature algorithm whose parameters came back
    /// with another tag), so a chain written out would not be the chain that was read.
    pub fn to_pem(&self) -> Result<String, TrustError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.0.der);
        let mut pem =
            String::with_capacity(b64.len() + b64.len() / 64 + BEGIN.len() + END.len() + 4);
        pem.push_str(BEGIN);
        pem.push('\n');
        for line in b64.as_bytes().chunks(64) {
            // base64 output is ASCII.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str(END);
        pem.push('\n');
        Ok(pem)
    }

    /// Identity of this parsed certificate (shared by its clones), for memoising checks within
    /// one verification.
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<()>() as usize
    }

    /// SHA-256 of the DER: the certificate's identity in caches.
    pub fn fingerprint(&self) -> [u8; 32] {
        openssl::sha::sha256(&self.0.der)
    }

    /// A certificate for `key` signed by itself, subject and issuer CN `subject`, no payload:
    /// what a 2008 client presented at the TLS layer (genicli's `<leaf>.cert`). Servers take
    /// only its key from it and bind that to the caller GID inside the credential.
    pub fn self_signed(
        subject: &str,
        key: &Keypair,
        validity: Validity,
        mode: CertMode,
    ) -> Result<Self, TrustError> {
        CertSpec {
            subject,
            issuer: subject,
            subject_key: &key.public_key(),
            signer: key,
            payload: None,
            validity,
            mode,
        }
        .build()
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.0.subject)
            .field("issuer", &self.0.issuer)
            .field("validity", &self.0.validity)
            .finish_non_exhaustive()
    }
}

fn common_name(name: &X509NameRef) -> Option<String> {
    let entry = name.entries_by_nid(Nid::COMMONNAME).next()?;
    // ASN1_STRING_to_UTF8 reads PrintableString, T61String (as Latin-1), UTF8String, BMPString.
    entry.data().to_string().ok()
}

/// The ASN.1 tag of the CN's string, read from the name's DER (the crate exposes no accessor).
fn cn_type(name: &X509NameRef) -> &'static str {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let Ok(der) = name.to_der() else {
        return "none";
    };
    let tag = der
        .windows(CN_OID.len() + 1)
        .find(|w| w[..CN_OID.len()] == CN_OID)
        .map(|w| w[CN_OID.len()]);
    match tag {
        Some(0x13) => "PrintableString",
        Some(0x14) => "T61String",
        Some(0x0c) => "UTF8String",
        Some(0x16) => "IA5String",
        Some(0x1e) => "BMPString",
        Some(_) => "other",
        None => "none",
    }
}

fn unix_time(t: &Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    i64::from(diff.days)
        .checked_mul(86_400)?
        .checked_add(i64::from(diff.secs))
}

/// Seconds since the Unix epoch as ISO 8601 UTC, `2031-11-22T09:16:15Z`: the form every message
/// and tool of this project prints times in.
pub fn format_utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// === chains ===

/// What may come before a chain's first PEM block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leading {
    /// Whitespace only: text from a peer. Junk in front of a credential cost nothing to send
    /// and used to be kept, whole, in the verdict cache.
    Whitespace,
    /// Any text without a PEM marker in it: files, some of which later SFA tools prefixed with a
    /// description.
    Text,
}

/// Splits chain text into certificates, child first. Accepts `-----parent-----` separators and
/// plain concatenation, whitespace, and what `leading` allows before the first PEM; anything else
/// between certificates, a PEM marker that is not a certificate's (`-----BEGIN CERTIFICBTE-----`),
/// a PEM without its END line, or more than [`MAX_CHAIN_LEN`] certificates is an error naming
/// the block. A damaged label is never skipped: skipping it would make the next certificate the
/// leaf.
pub(crate) fn split_chain(
    text: &str,
    what: &str,
    leading: Leading,
    memo: &mut Memo,
) -> Result<Vec<Certificate>, TrustError> {
    let err = |reason: &str| TrustError::decode(what, reason);
    if text.trim().is_empty() {
        return Err(err("empty input"));
    }
    let first = match text.find("-----") {
        Some(at) if text[at..].starts_with(BEGIN) => at,
        Some(at) => return Err(err(&damaged_label(&text[at..], 0))),
        None => return Err(err("no PEM certificate found")),
    };
    if leading == Leading::Whitespace && !text[..first].trim().is_empty() {
        return Err(err("text before the first PEM certificate"));
    }
    let mut rest = &text[first..];
    let mut out = Vec::new();
    loop {
        if out.len() == MAX_CHAIN_LEN {
            return Err(err("chain has too many certificates"));
        }
        let body = &rest[BEGIN.len()..];
        let Some(marker) = body.find("-----") else {
            return Err(err(&format!(
                "certificate {}: truncated PEM (no END CERTIFICATE line)",
                out.len()
            )));
        };
        if !body[marker..].starts_with(END) {
            return Err(err(&damaged_label(&body[marker..], out.len())));
        }
        let block_len = BEGIN.len() + marker + END.len();
        let cert = memo.certificate(&rest[..block_len]).map_err(|e| match e {
            TrustError::Decode { reason, .. } => {
                err(&format!("certificate {}: {reason}", out.len()))
            }
            other => other,
        })?;
        out.push(cert);
        let after = rest[block_len..].trim_start();
        if after.is_empty() {
            return Ok(out);
        }
        let after = after
            .strip_prefix(PARENT_SEPARATOR)
            .unwrap_or(after)
            .trim_start();
        if after.starts_with("-----") && !after.starts_with(BEGIN) {
            return Err(err(&damaged_label(after, out.len())));
        }
        if !after.starts_with(BEGIN) {
            return Err(err(&format!(
                "unexpected text after certificate {}",
                out.len() - 1
            )));
        }
        rest = after;
    }
}

/// SHA-256 over a chain's certificates exactly as [`split_chain`] reads them from peer text (each
/// block's base64 with its lines trimmed, prefixed by its length), without parsing any: the
/// verdict cache's key. The same certificates give the same digest whatever the separators or
/// the whitespace around blocks; a different certificate anywhere gives another. `None` when the
/// text is not a well-formed chain (a parse then says why).
pub(crate) fn chain_digest(text: &str) -> Option<[u8; 32]> {
    let mut canonical = Vec::with_capacity(text.len());
    let mut rest = text.trim_start();
    for _ in 0..MAX_CHAIN_LEN {
        let body = rest.strip_prefix(BEGIN)?;
        let marker = body.find("-----")?;
        if !body[marker..].starts_with(END) {
            return None;
        }
        let start = canonical.len();
        canonical.extend_from_slice(&[0; 8]);
        for line in body[..marker].lines() {
            canonical.extend_from_slice(line.trim().as_bytes());
        }
        let len = u64::try_from(canonical.len() - start - 8).ok()?;
        canonical[start..start + 8].copy_from_slice(&len.to_be_bytes());
        let after = body[marker + END.len()..].trim_start();
        if after.is_empty() {
            return Some(openssl::sha::sha256(&canonical));
        }
        rest = after
            .strip_prefix(PARENT_SEPARATOR)
            .unwrap_or(after)
            .trim_start();
    }
    None
}

/// The message for a PEM marker at the start of `at` that is not the one expected in block
/// `index`, quoting the marker (at most one line of it; the fault layer escapes and clips).
fn damaged_label(at: &str, index: usize) -> String {
    let line = at.lines().next().unwrap_or_default();
    let line: String = line.chars().take(64).collect();
    format!("certificate {index}: damaged or unexpected PEM label {line:?}")
}

/// Certificates already parsed during one top-level parse, by PEM text. A 2008 credential
/// embeds the same authority GIDs in every link (24 certificates, 6 distinct, for a 3-level slice
/// credential), and OpenSSL 3 spends most of a certificate parse decoding its public key.
#[derive(Default)]
pub(crate) struct Memo {
    certs: HashMap<Box<str>, Certificate, BuildHasherDefault<WordHasher>>,
    pub(crate) gids: HashMap<Box<str>, crate::Gid, BuildHasherDefault<WordHasher>>,
}

impl Memo {
    fn certificate(&mut self, pem: &str) -> Result<Certificate, TrustError> {
        if let Some(c) = self.certs.get(pem) {
            return Ok(c.clone());
        }
        let cert = Certificate::from_pem(pem)?;
        self.certs.insert(Box::from(pem), cert.clone());
        Ok(cert)
    }
}

/// A fast word-at-a-time hash for maps keyed by certificate text. Keys are compared in full on
/// lookup, so collision resistance is not needed; SipHash over kilobytes of PEM showed up in
/// profiles.
#[derive(Debug, Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Joins PEMs (child first) in the given form.
pub(crate) fn join_chain(pems: &[String], form: ChainForm) -> String {
    match form {
        ChainForm::Separator => pems.join(PARENT_SEPARATOR),
        ChainForm::Plain => pems.concat(),
    }
}

// === building ===

/// Everything needed to make and sign one certificate.
pub(crate) struct CertSpec<'a> {
    pub(crate) subject: &'a str,
    pub(crate) issuer: &'a str,
    pub(crate) subject_key: &'a PublicKey,
    pub(crate) signer: &'a Keypair,
    /// The XML-RPC payload; written as the URI `http://` + payload with trailing whitespace
    /// removed, exactly as OpenSSL's `X509V3_parse_list` left it in 2008.
    pub(crate) payload: Option<&'a str>,
    pub(crate) validity: Validity,
    pub(crate) mode: CertMode,
}

impl CertSpec<'_> {
    pub(crate) fn build(&self) -> Result<Certificate, TrustError> {
        let mut b = X509Builder::new().map_err(crypto("building a certificate"))?;
        let compat = self.mode == CertMode::Compat2008;
        if !compat {
            b.set_version(2).map_err(crypto("building a certificate"))?;
        }
        let serial = if compat {
            BigNum::from_u32(1)
        } else {
            random_serial()
        }
        .map_err(crypto("building a certificate"))?;
        let serial = Asn1Integer::from_bn(&serial).map_err(crypto("building a certificate"))?;
        b.set_serial_number(&serial)
            .map_err(crypto("building a certificate"))?;
        let subject = cn_name(self.subject, self.mode)?;
        b.set_subject_name(&subject)
            .map_err(crypto("building a certificate"))?;
        let issuer = cn_name(self.issuer, self.mode)?;
        b.set_issuer_name(&issuer)
            .map_err(crypto("building a certificate"))?;
        let not_before = Asn1Time::from_unix(self.validity.not_before)
            .map_err(crypto("building a certificate"))?;
        b.set_not_before(&not_before)
            .map_err(crypto("building a certificate"))?;
        let not_after = Asn1Time::from_unix(self.validity.not_after)
            .map_err(crypto("building a certificate"))?;
        b.set_not_after(&not_after)
            .map_err(crypto("building a certificate"))?;
        b.set_pubkey(self.subject_key.pkey())
            .map_err(crypto("building a certificate"))?;
        if let Some(payload) = self.payload {
            if !payload.is_ascii() {
                return Err(TrustError::Encode {
                    what: self.subject.to_owned(),
                    reason: "subjectAltName payload must be ASCII (IA5String)".into(),
                });
            }
            let uri = format!("http://{}", payload.trim_end());
            let ext = SubjectAlternativeName::new()
                .uri(&uri)
                .build(&b.x509v3_context(None, None))
                .map_err(crypto("building the subjectAltName"))?;
            b.append_extension(ext)
                .map_err(crypto("building a certificate"))?;
        }
        let digest = if compat {
            MessageDigest::md5()
        } else {
            MessageDigest::sha256()
        };
        b.sign(self.signer.pkey(), digest)
            .map_err(crypto("signing a certificate"))?;
        let x509 = b.build();
        let der = x509.to_der().map_err(crypto("encoding a certificate"))?;
        if !compat {
            return Certificate::from_x509(x509, der);
        }
        // OpenSSL 3's X509_sign sets v3 whenever extensions are present; 2008 certificates have
        // no version field at all. Re-sign the TBS without it.
        let v1 = der::resign_without_version(&der, self.signer)?;
        Certificate::from_der(&v1)
    }
}

/// Just enough DER to drop a certificate's version field and re-sign it with md5.
mod der {
    use openssl::hash::MessageDigest;
    use openssl::sign::Signer;

    use crate::error::crypto;
    use crate::{Keypair, TrustError};

    /// The explicit `[0] INTEGER 2` (v3) at the start of a TBSCertificate.
    const VERSION_V3: [u8; 5] = [0xa0, 0x03, 0x02, 0x01, 0x02];

    fn malformed() -> TrustError {
        TrustError::Encode {
            what: "certificate".into(),
            reason: "unexpected DER from OpenSSL".into(),
        }
    }

    /// Splits one TLV at the start of `data` into (header length, content length).
    pub(super) fn tlv(data: &[u8]) -> Result<(usize, usize), TrustError> {
        let first = *data.get(1).ok_or_else(malformed)?;
        if first < 0x80 {
            return Ok((2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(malformed());
        }
        let bytes = data.get(2..2 + n).ok_or_else(malformed)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        Ok((2 + n, len))
    }

    fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.extend(u8::try_from(len));
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.extend(u8::try_from(0x80 + bytes.len() - skip));
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
    }

    /// The raw SubjectPublicKeyInfo TLV of a certificate.
    pub(super) fn spki(cert: &[u8]) -> Option<&[u8]> {
        let (hdr, len) = tlv(cert).ok()?;
        let tbs = cert.get(hdr..hdr + len)?;
        let (hdr, len) = tlv(tbs).ok()?;
        let mut rest = tbs.get(hdr..hdr + len)?;
        // [0] version (optional), serial, signature, issuer, validity, subject, then the SPKI.
        let mut index = 0;
        if rest.first() == Some(&0xa0) {
            index = -1;
        }
        loop {
            let (hdr, len) = tlv(rest).ok()?;
            let whole = rest.get(..hdr + len)?;
            if index == 5 {
                return Some(whole);
            }
            rest = rest.get(hdr + len..)?;
            index += 1;
        }
    }

    pub(super) fn resign_without_version(
        der: &[u8],
        signer: &Keypair,
    ) -> Result<Vec<u8>, TrustError> {
        let (outer_hdr, outer_len) = tlv(der)?;
        let body = der
            .get(outer_hdr..outer_hdr + outer_len)
            .ok_or_else(malformed)?;
        let (tbs_hdr, tbs_len) = tlv(body)?;
        let tbs_content = body.get(tbs_hdr..tbs_hdr + tbs_len).ok_or_else(malformed)?;
        let rest = body.get(tbs_hdr + tbs_len..).ok_or_else(malformed)?;
        let (alg_hdr, alg_len) = tlv(rest)?;
        let sig_alg = rest.get(..alg_hdr + alg_len).ok_or_else(malformed)?;
        let tbs_content = tbs_content
            .strip_prefix(&VERSION_V3[..])
            .unwrap_or(tbs_content);
        let mut tbs = Vec::with_capacity(tbs_content.len() + 4);
        push_tlv(&mut tbs, 0x30, tbs_content);
        let mut s = Signer::new(MessageDigest::md5(), signer.pkey())
            .map_err(crypto("signing a certificate"))?;
        let signature = s
            .sign_oneshot_to_vec(&tbs)
            .map_err(crypto("signing a certificate"))?;
        let mut bits = Vec::with_capacity(signature.len() + 1);
        bits.push(0);
        bits.extend_from_slice(&signature);
        let mut cert_body = tbs;
        cert_body.extend_from_slice(sig_alg);
        push_tlv(&mut cert_body, 0x03, &bits);
        let mut out = Vec::with_capacity(cert_body.len() + 4);
        push_tlv(&mut out, 0x30, &cert_body);
        Ok(out)
    }
}

fn random_serial() -> Result<BigNum, openssl::error::ErrorStack> {
    let mut bn = BigNum::new()?;
    // 63 random bits, top bit clear: positive and unique enough that serials mean something.
    bn.rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    Ok(bn)
}

/// A CN-only name. In 2008 mode the CN's string type follows OpenSSL 0.9.8's default mask:
/// PrintableString when every character is printable, T61String otherwise (so
/// `planetlab.us.pl.account_test` is T61 because of `_`).
fn cn_name(cn: &str, mode: CertMode) -> Result<openssl::x509::X509Name, TrustError> {
    if cn.is_empty() || cn.chars().count() > 64 {
        return Err(TrustError::Encode {
            what: cn.to_owned(),
            reason: "a common name must be 1 to 64 characters (an hrn longer than 64 cannot be a \
                     certificate subject)"
                .into(),
        });
    }
    let mut n = X509NameBuilder::new().map_err(crypto("building a certificate name"))?;
    let printable = cn
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || " '()+,-./:=?".contains(ch));
    match mode {
        CertMode::Compat2008 if printable => {
            n.append_entry_by_nid_with_type(Nid::COMMONNAME, cn, Asn1Type::PRINTABLESTRING)
        }
        CertMode::Compat2008 if cn.is_ascii() => {
            n.append_entry_by_nid_with_type(Nid::COMMONNAME, cn, Asn1Type::T61STRING)
        }
        _ => n.append_entry_by_nid(Nid::COMMONNAME, cn),
    }
    .map_err(crypto("building a certificate name"))?;
    Ok(n.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_953_105_375), "2031-11-22T09:16:15Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn chain_text_errors_are_clear() {
        let e = split_chain("", "x", Leading::Whitespace, &mut Memo::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = split_chain("hello", "x", Leading::Text, &mut Memo::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no PEM"), "{e}");
        let e = split_chain(
            "-----BEGIN CERTIFICATE-----\nMIIB",
            "x",
            Leading::Whitespace,
            &mut Memo::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = split_chain(
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            "x",
            Leading::Whitespace,
            &mut Memo::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("certificate 0"), "{e}");
    }

    fn two_pems() -> (String, String) {
        let key = Keypair::generate(1024).unwrap();
        let pem = |cn: &str| {
            Certificate::self_signed(cn, &key, Validity::from_now(0, 60), CertMode::Modern)
                .unwrap()
                .to_pem()
                .unwrap()
        };
        (pem("child"), pem("parent"))
    }

    // See: issue 12 (a damaged label must not be skipped) and issue 13 (junk before the PEM).
    #[test]
    fn r13_damaged_labels_and_leading_junk_are_refused() {
        let (child, parent) = two_pems();
        let ok = format!("\n  {child}{PARENT_SEPARATOR}{parent}");
        let chain = split_chain(&ok, "x", Leading::Whitespace, &mut Memo::default()).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].subject(), "child");

        let damaged = |pem: &str, from: &str, to: &str| pem.replacen(from, to, 1);
        let cases = [
            // The leaf's BEGIN label: skipping it would make the parent the leaf.
            (
                format!(
                    "{}{PARENT_SEPARATOR}{parent}",
                    damaged(&child, "BEGIN CERTIFICATE", "BEGIN CERTIFICBTE")
                ),
                "certificate 0: damaged or unexpected PEM label \"-----BEGIN CERTIFICBTE-----\"",
            ),
            (
                format!(
                    "{}{PARENT_SEPARATOR}{parent}",
                    damaged(&child, "END CERTIFICATE", "END CERTIFICBTE")
                ),
                "certificate 0: damaged or unexpected PEM label \"-----END CERTIFICBTE-----\"",
            ),
            (
                format!(
                    "{child}{PARENT_SEPARATOR}{}",
                    damaged(&parent, "BEGIN CERTIFICATE", "BEGIN CERTIFICBTE")
                ),
                "certificate 1: damaged or unexpected PEM label \"-----BEGIN CERTIFICBTE-----\"",
            ),
            (
                format!("{child}-----parnet-----{parent}"),
                "certificate 1: damaged or unexpected PEM label \"-----parnet-----",
            ),
            (
                format!("{child}junk{parent}"),
                "unexpected text after certificate 0",
            ),
        ];
        for (text, expected) in &cases {
            for leading in [Leading::Whitespace, Leading::Text] {
                let e = split_chain(text, "x", leading, &mut Memo::default())
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(expected), "{e}");
            }
        }

        let junk = format!("{}{child}", "j".repeat(1000));
        let e = split_chain(&junk, "x", Leading::Whitespace, &mut Memo::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("text before the first PEM"), "{e}");
        // A file may carry a description first.
        let chain = split_chain(&junk, "x", Leading::Text, &mut Memo::default()).unwrap();
        assert_eq!(chain.len(), 1);
    }

    /// A certificate for the RSA public key (n, e) with `n` random and odd of `bits` bits, signed
    /// by a real key: no private key for (n, e) is needed to be refused.
    fn cert_for_modulus(bits: i32, e: &BigNum) -> Vec<u8> {
        let mut n = BigNum::new().unwrap();
        n.rand(bits, openssl::bn::MsbOption::ONE, true).unwrap();
        let rsa =
            openssl::rsa::Rsa::from_public_components(n, BigNum::from_slice(&e.to_vec()).unwrap())
                .unwrap();
        let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        let signer = Keypair::generate(1024).unwrap();
        let name = cn_name("mallory", CertMode::Modern).unwrap();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(signer.pkey(), MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    // See: issue 13 (a 3071-bit exponent and a 16,384-bit key were accepted).
    #[test]
    fn r13_keys_outside_the_policy_are_refused_at_parse() {
        let f4 = BigNum::from_u32(65537).unwrap();
        let mut huge_e = BigNum::new().unwrap();
        huge_e
            .rand(3071, openssl::bn::MsbOption::ONE, true)
            .unwrap();
        let cases = [
            (cert_for_modulus(16384, &f4), "16384 bits"),
            (cert_for_modulus(512, &f4), "512 bits"),
            (cert_for_modulus(3072, &huge_e), "exponent of 3071 bits"),
            (
                cert_for_modulus(2048, &BigNum::from_u32(65536).unwrap()),
                "even",
            ),
        ];
        for (der, expected) in &cases {
            let e = Certificate::from_der(der).unwrap_err();
            assert!(matches!(e, TrustError::Decode { .. }), "{e:?}");
            assert!(e.to_string().contains(expected), "{e}");
        }
        let good = cert_for_modulus(8192, &f4);
        assert!(Certificate::from_der(&good).is_ok());
        // Bytes after the certificate are not part of it.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Certificate::from_der(&trailing).is_err());
        assert!(Certificate::from_der(&good[..good.len() - 1]).is_err());
    }

    // See: issue 13, found by the trust_der fuzz target: an outer signature algorithm whose NULL
    // parameters carry another tag came back from OpenSSL's encoder as a different certificate.
    #[test]
    fn r13_pem_is_the_der_that_was_read() {
        let der = include_bytes!(
            "../../fuzz/regressions/trust_der/crash-5ca93da041f133b67f02767b1d92912b85c1fcdc"
        );
        let cert = Certificate::from_der(der).unwrap();
        let pem = cert.to_pem().unwrap();
        assert_eq!(Certificate::from_pem(&pem).unwrap().der(), der);
        // And for an ordinary certificate, the same text OpenSSL writes.
        let key = Keypair::generate(1024).unwrap();
        let cert = Certificate::self_signed("a", &key, Validity::from_now(0, 60), CertMode::Modern)
            .unwrap();
        let openssl = String::from_utf8(cert.0.x509.to_pem().unwrap()).unwrap();
        assert_eq!(cert.to_pem().unwrap(), openssl);
    }

    #[test]
    fn self_signed_certificates_carry_the_key_and_no_payload() {
        let key = Keypair::generate(1024).unwrap();
        for mode in [CertMode::Modern, CertMode::Compat2008] {
            let cert =
                Certificate::self_signed("alice", &key, Validity::from_now(0, 60), mode).unwrap();
            assert_eq!(cert.subject(), "alice");
            assert_eq!(cert.issuer(), "alice");
            assert_eq!(*cert.public_key(), key.public_key());
            assert!(cert.is_signed_by(&key.public_key()));
            assert!(cert.xmlrpc_payload().is_none());
            let again = Certificate::from_pem(&cert.to_pem().unwrap()).unwrap();
            assert_eq!(again.der(), cert.der());
        }
    }
}
