//! Issuing and delegating GENI credentials: the document gcf and SFA write (`signed-credential`,
//! `credential xml:id="refN"`, one `Signature xml:id="Sig_refN"` per link as xmlsec1 lays it
//! out), signed here with our own canonicalization, so that what we sign verifies in xmlsec1
//! (`--enabled-key-data x509`) and in both reference libraries.
//!
//! `KeyInfo` carries the signer's certificate chain in `X509Data` and no `KeyValue`: a bare key
//! only invites verifiers to trust it. A delegation embeds the parent credential and keeps every
//! existing signature byte for byte, under the parent document's own root start tag, so that
//! their canonical forms (which include the namespaces in scope) do not change.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::sign::Signer;

use super::c14n::canonicalize;
use super::dsig::{C14N_10, ENVELOPED, SignatureAlgorithm, digest};
use super::xml::{Doc, XmlLimits, escape_text};
use super::{GeniCredential, Privilege, Urn, gid_urn, privileges_text};
use crate::error::crypto;
use crate::{ChainForm, Gid, Keypair, TrustError, format_utc};

const ROOT_START: &str = "<signed-credential xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:noNamespaceSchemaLocation=\"http://www.geni.net/resources/credential/2/credential.xsd\" \
xsi:schemaLocation=\"http://www.protogeni.net/resources/credential/ext/policy/1 \
http://www.protogeni.net/resources/credential/ext/policy/1/policy.xsd\">";

/// A credential to issue.
#[derive(Debug)]
pub struct GeniIssue<'a> {
    /// The owner (caller) and its GID chain.
    pub owner: &'a Gid,
    /// The target (object) and its GID chain.
    pub target: &'a Gid,
    pub privileges: &'a [Privilege],
    /// Seconds since the epoch.
    pub expires: i64,
    /// The signing authority's key and GID chain (written to `X509Data`).
    pub signer: &'a Keypair,
    pub signer_gid: &'a Gid,
    pub algorithm: SignatureAlgorithm,
}

fn encode(reason: impl Into<String>) -> TrustError {
    TrustError::Encode {
        what: "GENI credential".into(),
        reason: reason.into(),
    }
}

fn urn_of(gid: &Gid, role: &str) -> Result<Urn, TrustError> {
    gid_urn(gid).ok_or_else(|| {
        encode(format!(
            "the {role} GID {} has no URN (make it with --urn)",
            gid.hrn()
        ))
    })
}

/// Issues a root credential signed by an authority.
pub fn issue(spec: &GeniIssue<'_>) -> Result<String, TrustError> {
    if spec.signer.public_key() != *spec.signer_gid.public_key() {
        return Err(encode("the signing key is not the key of the signer's GID"));
    }
    let body = credential_xml(
        "ref0",
        spec.owner,
        spec.target,
        spec.privileges,
        spec.expires,
        None,
    )?;
    sign_document(
        ROOT_START,
        &body,
        &[],
        "ref0",
        spec.signer,
        spec.signer_gid,
        spec.algorithm,
    )
}

/// Delegates the credential `parent` (a whole `signed-credential` document) to `to`, signed by
/// the parent's owner (`signer`, whose GID is `signer_gid`), with `privileges` (each one the
/// parent may delegate) until `expires` (no later than the parent).
pub fn delegate(
    parent: &str,
    to: &Gid,
    privileges: &[Privilege],
    expires: i64,
    signer: &Keypair,
    signer_gid: &Gid,
    algorithm: SignatureAlgorithm,
) -> Result<String, TrustError> {
    let cred = GeniCredential::parse(parent)?;
    let outer = cred.outer();
    if signer.public_key() != *outer.owner.public_key()
        || signer_gid.public_key() != outer.owner.public_key()
    {
        return Err(encode(format!(
            "only the credential's owner {} can delegate it",
            outer.owner_urn
        )));
    }
    if let Some(p) = privileges
        .iter()
        .find(|c| !outer.privileges.iter().any(|p| p.covers(c)))
    {
        return Err(encode(format!(
            "privilege {} is not one the parent may delegate ({})",
            p.name(),
            privileges_text(&outer.privileges)
        )));
    }
    if expires > outer.expires {
        return Err(encode(format!(
            "expiry {} is after the parent's {}",
            format_utc(expires),
            format_utc(outer.expires)
        )));
    }
    delegate_unchecked(
        &cred,
        parent,
        to,
        &outer.target,
        privileges,
        expires,
        signer,
        signer_gid,
        algorithm,
    )
}

/// The delegation itself, without the checks [`delegate`] makes first (tests use it to forge
/// what the verifier must refuse).
#[allow(clippy::too_many_arguments)]
pub(crate) fn delegate_unchecked(
    cred: &GeniCredential,
    parent: &str,
    to: &Gid,
    target: &Gid,
    privileges: &[Privilege],
    expires: i64,
    signer: &Keypair,
    signer_gid: &Gid,
    algorithm: SignatureAlgorithm,
) -> Result<String, TrustError> {
    let mut n = cred.links().len();
    let id = loop {
        let id = format!("ref{n}");
        if !parent.contains(&format!("\"{id}\"")) && !parent.contains(&format!("\"Sig_{id}\"")) {
            break id;
        }
        n += 1;
    };
    let body = credential_xml(
        &id,
        to,
        target,
        privileges,
        expires,
        Some(&cred.outer().raw),
    )?;
    let old: Vec<&str> = cred
        .links()
        .iter()
        .rev()
        .map(|l| l.signature.raw.as_str())
        .collect();
    sign_document(
        cred.root_start(),
        &body,
        &old,
        &id,
        signer,
        signer_gid,
        algorithm,
    )
}

fn credential_xml(
    id: &str,
    owner: &Gid,
    target: &Gid,
    privileges: &[Privilege],
    expires: i64,
    parent: Option<&str>,
) -> Result<String, TrustError> {
    let owner_urn = urn_of(owner, "owner")?;
    let target_urn = urn_of(target, "target")?;
    let mut serial = [0u8; 8];
    openssl::rand::rand_bytes(&mut serial).map_err(crypto("drawing a serial"))?;
    let mut x = String::with_capacity(8192);
    x.push_str(&format!(
        "<credential xml:id=\"{id}\"><type>privilege</type><serial>{}</serial>",
        u64::from_be_bytes(serial) >> 1
    ));
    x.push_str(&format!(
        "<owner_gid>{}</owner_gid><owner_urn>{}</owner_urn>",
        escape_text(&owner.to_chain_string(ChainForm::Plain)?),
        escape_text(&owner_urn.to_string())
    ));
    x.push_str(&format!(
        "<target_gid>{}</target_gid><target_urn>{}</target_urn>",
        escape_text(&target.to_chain_string(ChainForm::Plain)?),
        escape_text(&target_urn.to_string())
    ));
    x.push_str(&format!(
        "<uuid/><expires>{}</expires><privileges>",
        format_utc(expires)
    ));
    for p in privileges {
        x.push_str(&format!(
            "<privilege><name>{}</name><can_delegate>{}</can_delegate></privilege>",
            escape_text(p.name().as_str()),
            p.can_delegate()
        ));
    }
    x.push_str("</privileges>");
    if let Some(parent) = parent {
        x.push_str("<parent>");
        x.push_str(parent);
        x.push_str("</parent>");
    }
    x.push_str("</credential>");
    Ok(x)
}

fn signature_xml(
    id: &str,
    algorithm: SignatureAlgorithm,
    digest_b64: &str,
    value_b64: &str,
    certs: &[String],
) -> String {
    let mut x509 = String::new();
    for c in certs {
        // No whitespace at the ends of the text, unlike xmlsec1's own output: SFA 3.1 wraps it
        // in PEM lines without stripping it, and OpenSSL 1.1+ then refuses the blank line before
        // END (checked with SFA 3.1 and gcf 2.11 against what we sign).
        x509.push_str(&format!("      <X509Certificate>{c}</X509Certificate>\n"));
    }
    format!(
        "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\" xml:id=\"Sig_{id}\">\n  \
<SignedInfo>\n    <CanonicalizationMethod Algorithm=\"{C14N_10}\"/>\n    \
<SignatureMethod Algorithm=\"{}\"/>\n    <Reference URI=\"#{id}\">\n      <Transforms>\n        \
<Transform Algorithm=\"{ENVELOPED}\"/>\n      </Transforms>\n      \
<DigestMethod Algorithm=\"{}\"/>\n      <DigestValue>{digest_b64}</DigestValue>\n    \
</Reference>\n  </SignedInfo>\n  <SignatureValue>{value_b64}</SignatureValue>\n  <KeyInfo>\n    \
<X509Data>\n{x509}    </X509Data>\n  </KeyInfo>\n</Signature>",
        algorithm.signature_uri(),
        algorithm.digest_uri(),
    )
}

/// Wraps base64 at 64 columns, as xmlsec1 does.
fn wrap64(b64: &str) -> String {
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    lines.join("\n")
}

fn sign_document(
    root_start: &str,
    credential: &str,
    old_signatures: &[&str],
    id: &str,
    signer: &Keypair,
    signer_gid: &Gid,
    algorithm: SignatureAlgorithm,
) -> Result<String, TrustError> {
    let certs: Vec<String> = signer_gid
        .links_chain()
        .iter()
        .map(|c| wrap64(&STANDARD.encode(c)))
        .collect();
    let assemble = |digest_b64: &str, value_b64: &str| {
        let mut doc = String::with_capacity(credential.len() + 16_384);
        doc.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        doc.push_str(root_start);
        doc.push_str(credential);
        doc.push_str("<signatures>");
        for s in old_signatures {
            doc.push_str(s);
        }
        doc.push_str(&signature_xml(id, algorithm, digest_b64, value_b64, &certs));
        doc.push_str("</signatures></signed-credential>");
        doc
    };
    let limits = XmlLimits::default();
    // Digest of the new credential element (the enveloped signature is outside it).
    let draft = assemble("", "");
    let doc = Doc::parse(&draft, &limits)?;
    let (cred_elem, sig_elem) = locate(&doc, id)?;
    let digest_b64 = STANDARD.encode(digest(
        algorithm,
        &canonicalize(&doc, cred_elem, Some(sig_elem)),
    ));
    // Then the signature over the canonical SignedInfo holding that digest.
    let draft = assemble(&digest_b64, "");
    let doc = Doc::parse(&draft, &limits)?;
    let (_, sig_elem) = locate(&doc, id)?;
    let signed_info = doc
        .child_elems(sig_elem)
        .next()
        .ok_or_else(|| encode("no SignedInfo in the template"))?;
    let data = canonicalize(&doc, signed_info, None);
    let mut s = Signer::new(algorithm.digest(), signer.pkey())
        .map_err(crypto("signing a GENI credential"))?;
    let value = s
        .sign_oneshot_to_vec(&data)
        .map_err(crypto("signing a GENI credential"))?;
    Ok(assemble(&digest_b64, &wrap64(&STANDARD.encode(value))))
}

/// The new credential element (the root's first child) and the signature for it (the last in
/// `signatures`).
fn locate(doc: &Doc, id: &str) -> Result<(usize, usize), TrustError> {
    let mut top = doc.child_elems(0);
    let (Some(cred), Some(sigs)) = (top.next(), top.next()) else {
        return Err(encode("template lacks credential or signatures"));
    };
    if doc.elem(cred).xml_id() != Some(id) {
        return Err(encode("template credential has the wrong id"));
    }
    let sig = doc
        .child_elems(sigs)
        .last()
        .ok_or_else(|| encode("template has no signature"))?;
    Ok((cred, sig))
}

impl Gid {
    /// The DER of each certificate of the chain, leaf first.
    pub(crate) fn links_chain(&self) -> Vec<Vec<u8>> {
        let mut out = vec![self.certificate().der().to_vec()];
        let mut cur = self.parent();
        while let Some(p) = cur {
            out.push(p.certificate().der().to_vec());
            cur = p.parent();
        }
        out
    }
}
