//! The verifier's rules for GENI credentials (GeniApiCredentials, `reference/geni-am-api-spec.md`
//! §4.3), producing the same [`VerifiedCredential`] as a 2008 credential and sharing its verdict
//! cache, certificate policy and chain walk. A child module of `verify.rs` so that it uses the
//! verifier's private machinery rather than a second copy of it.
//!
//! Per link, innermost (the root credential) first: the link is unexpired; its owner and target
//! GIDs chain to a trusted root, with every issuing certificate a CA (`CA:TRUE`) named by an
//! authority URN; its digest matches its canonical form and its signature verifies with the
//! signer's key, where the signer is, for the root credential, the certificate in `X509Data`
//! verified like any GID (an authority over the target's namespace, or the target itself) and,
//! for a delegated link, the owner of the parent. A `KeyValue` is never used: one that differs
//! from the signer's key is an error. A delegated link keeps the target, claims only privileges
//! the parent may delegate, and expires no later than the parent (plus the clock skew).

use std::sync::Arc;

use super::{
    Checked, CredentialVerdict, Form, Kind, Verdict, VerifiedCredential, VerifiedGid, Verifier,
    over_budget, over_budget_verify, verdict_bytes,
};
use crate::cert::Certificate;
use crate::geni::dsig::{key_matches, rsa_verify};
use crate::geni::{
    GeniCredential, GeniLink, Privilege, SignatureAlgorithm, Urn, gid_urn, is_geni_credential,
    privileges_text, rights_of,
};
use crate::{Gid, PublicKey, TrustError, TrustedRoots, VerifyError, format_utc};

/// What a verified GENI credential says beyond the 2008 model.
#[derive(Debug, Clone)]
pub struct GeniVerdict {
    owner_urn: Urn,
    target_urn: Urn,
    privileges: Vec<Privilege>,
    chain_len: usize,
}

impl GeniVerdict {
    /// The owner (caller) of the outermost credential.
    pub fn owner_urn(&self) -> &Urn {
        &self.owner_urn
    }

    /// The target (object) of the credential.
    pub fn target_urn(&self) -> &Urn {
        &self.target_urn
    }

    /// The outermost credential's privileges, GENI names and delegation flags included.
    pub fn privileges(&self) -> &[Privilege] {
        &self.privileges
    }

    /// 1 for a credential issued by an authority, one more per delegation.
    pub fn chain_len(&self) -> usize {
        self.chain_len
    }
}

impl Verifier {
    /// Parses and verifies a GENI `signed-credential`; verdicts (and refusals) are cached as for
    /// 2008 credentials, by a digest of the document.
    pub fn verify_geni_credential_str(&self, text: &str) -> Result<VerifiedCredential, TrustError> {
        self.verify_geni_credential_checked(text, |_| Ok::<(), TrustError>(()))
    }

    /// [`Verifier::verify_geni_credential_str`] with `precheck` run on the owner's (unverified)
    /// GID before any signature is checked, as [`Verifier::verify_credential_checked`] does for
    /// 2008 credentials: the cheap check first, so a caller who fails it costs no RSA operation.
    pub fn verify_geni_credential_checked<E: From<TrustError>>(
        &self,
        text: &str,
        precheck: impl FnOnce(&Gid) -> Result<(), E>,
    ) -> Result<VerifiedCredential, E> {
        let (digest, verdict) = self.lookup(Kind::Credential, Form::Geni, text);
        let digest = digest.unwrap_or_else(|| geni_digest(text));
        match verdict {
            Some(Verdict::Credential(v)) => return Ok(v),
            Some(Verdict::Refused(e)) => return Err(E::from(e.into())),
            _ => {}
        }
        let cred = GeniCredential::parse(text).map_err(over_budget)?;
        precheck(cred.outer().owner())?;
        let verified = self
            .verify_geni_credential(&cred)
            .map_err(over_budget_verify)
            .inspect_err(|e| self.remember_refusal(Kind::Credential, Some(digest), e))
            .map_err(|e| E::from(TrustError::from(e)))?;
        let bytes = verdict_bytes(&[verified.caller().gid(), verified.object().gid()]);
        let verdict = Verdict::Credential(verified.clone());
        let text = Some((Form::Geni, text));
        self.remember(
            Kind::Credential,
            digest,
            verdict,
            verified.0.expires,
            bytes,
            text,
        );
        Ok(verified)
    }

    /// Verifies a credential in either form, recognised by its content: a GENI credential is an
    /// XML `signed-credential`, a 2008 one a PEM chain.
    pub fn verify_any_credential_str(&self, text: &str) -> Result<VerifiedCredential, TrustError> {
        self.verify_any_credential_checked(text, |_| Ok::<(), TrustError>(()))
    }

    /// Either form, with `precheck` on the caller's (owner's) unverified GID first.
    pub fn verify_any_credential_checked<E: From<TrustError>>(
        &self,
        text: &str,
        precheck: impl FnOnce(&Gid) -> Result<(), E>,
    ) -> Result<VerifiedCredential, E> {
        if is_geni_credential(text) {
            self.verify_geni_credential_checked(text, precheck)
        } else {
            self.verify_credential_checked(text, |c| match c.caller() {
                Some(caller) => precheck(caller),
                None => Ok(()),
            })
        }
    }

    /// The cached verdict on a credential in either form, if there is a live one.
    pub fn cached_any_credential(&self, text: &str) -> Option<VerifiedCredential> {
        if !is_geni_credential(text) {
            return self.cached_credential(text);
        }
        match self.lookup(Kind::Credential, Form::Geni, text).1 {
            Some(Verdict::Credential(v)) => Some(v),
            _ => None,
        }
    }

    /// Verifies a parsed GENI credential (see the module documentation for the rules).
    pub fn verify_geni_credential(
        &self,
        cred: &GeniCredential,
    ) -> Result<VerifiedCredential, VerifyError> {
        let roots = self.roots();
        let now = self.clock.now();
        let skew = self.policy.clock_skew_secs;
        let mut checked = Checked::default();
        let links = cred.links();
        // Signatures first, every link: a changed byte is reported as what it is, before any
        // rule is judged on content nobody signed.
        for (i, link) in links.iter().enumerate() {
            let key = match links.get(i + 1) {
                Some(parent) => parent.owner.public_key(),
                None => signer_leaf(&link.signature.certificates)
                    .ok_or_else(|| VerifyError::SignatureInvalid {
                        subject: link_subject(link),
                        reason: "the signature carries no signer certificate (X509Data)".to_owned(),
                    })?
                    .public_key(),
            };
            self.check_signature(link, key)?;
        }
        let mut expires = i64::MAX;
        let mut root = None;
        let mut outer = None;
        for (i, link) in links.iter().enumerate().rev() {
            let subject = link_subject(link);
            if now.saturating_sub(skew) > link.expires {
                return Err(VerifyError::Expired {
                    subject,
                    not_after: format_utc(link.expires),
                });
            }
            expires = expires.min(link.expires);
            let owner = self.verify_geni_gid(&link.owner, &roots, now, &mut checked)?;
            let target = self.verify_geni_gid(&link.target, &roots, now, &mut checked)?;
            expires = expires.min(owner.expires).min(target.expires);
            let signer_key = match links.get(i + 1) {
                None => {
                    let signer = self.root_signer(link, &roots, now, &mut checked)?;
                    expires = expires.min(signer.expires);
                    root = Some(signer.root.clone());
                    signer.gid.public_key().clone()
                }
                Some(parent) => {
                    delegation_check(link, parent, skew)?;
                    let key = parent.owner.public_key().clone();
                    if let Some(leaf) = signer_leaf(&link.signature.certificates)
                        && *leaf.public_key() != key
                    {
                        return Err(VerifyError::SignerNotOwner {
                            subject,
                            signer: leaf.subject().to_owned(),
                            owner: parent.owner_urn.to_string(),
                        });
                    }
                    key
                }
            };
            if i == 0 {
                outer = Some((owner, target, signer_key));
            }
        }
        let (Some((caller, object, issuer_key)), Some(root)) = (outer, root) else {
            // Parsing guarantees at least one link; kept as an error rather than a panic.
            return Err(VerifyError::UntrustedRoot {
                subject: "empty GENI credential".to_owned(),
            });
        };
        let top = cred.outer();
        Ok(VerifiedCredential(Arc::new(CredentialVerdict {
            subject: object.hrn().to_string(),
            root,
            issuer_key,
            caller,
            object,
            privileges: rights_of(&top.privileges),
            delegate: top.privileges.iter().any(Privilege::can_delegate),
            expires,
            geni: Some(GeniVerdict {
                owner_urn: top.owner_urn.clone(),
                target_urn: top.target_urn.clone(),
                privileges: top.privileges.clone(),
                chain_len: links.len(),
            }),
        })))
    }

    /// A GID of a GENI credential: the 2008 chain rules, plus every issuing certificate in it a
    /// CA named by an authority URN.
    fn verify_geni_gid(
        &self,
        gid: &Gid,
        roots: &TrustedRoots,
        now: i64,
        checked: &mut Checked,
    ) -> Result<VerifiedGid, VerifyError> {
        let verified = self.verify_gid_in(gid, roots, now, checked)?;
        let mut cur = gid.parent();
        while let Some(p) = cur {
            authority_check(p)?;
            cur = p.parent();
        }
        Ok(verified)
    }

    /// The signer of a root credential: the certificate chain in `X509Data` (leaf first once
    /// ordered), verified to a trusted root like any GID, an authority CA over the target's
    /// namespace, or the target itself.
    fn root_signer(
        &self,
        link: &GeniLink,
        roots: &TrustedRoots,
        now: i64,
        checked: &mut Checked,
    ) -> Result<VerifiedGid, VerifyError> {
        let subject = link_subject(link);
        let certs = &link.signature.certificates;
        let chain = order_chain(certs).ok_or_else(|| VerifyError::SignatureInvalid {
            subject: subject.clone(),
            reason: "the signature carries no usable signer certificate (X509Data)".to_owned(),
        })?;
        let gid = gid_of_chain(&chain).map_err(|e| VerifyError::SignatureInvalid {
            subject: subject.clone(),
            reason: format!("signer certificate: {e}"),
        })?;
        let signer = self.verify_geni_gid(&gid, roots, now, checked)?;
        let is_target = gid.public_key() == link.target.public_key()
            && gid_urn(&gid).is_some_and(|u| u == link.target_urn);
        if is_target {
            return Ok(signer);
        }
        authority_check(&gid)?;
        match gid_urn(&gid) {
            Some(urn) if urn.is_authority_for(&link.target_urn) => Ok(signer),
            urn => Err(VerifyError::SignerNotAuthority {
                subject,
                signer: urn.map_or_else(|| gid.hrn().to_string(), |u| u.to_string()),
                target: link.target_urn.to_string(),
            }),
        }
    }

    /// Digest, `KeyValue` and RSA signature of one link, under the digest policy.
    fn check_signature(&self, link: &GeniLink, key: &PublicKey) -> Result<(), VerifyError> {
        let sig = &link.signature;
        let invalid = |reason: &str| VerifyError::SignatureInvalid {
            subject: link_subject(link),
            reason: reason.to_owned(),
        };
        for alg in [sig.algorithm, sig.digest_algorithm] {
            if alg == SignatureAlgorithm::RsaSha1 && !self.policy.xml_dsig_sha1 {
                return Err(VerifyError::WeakDigest {
                    subject: link_subject(link),
                    algorithm: alg.as_str().to_owned(),
                });
            }
        }
        if let Some(kv) = &sig.key_value
            && !key_matches(key, kv)
        {
            return Err(invalid("its KeyValue is not the signer's key"));
        }
        if !sig.digest_matches {
            return Err(invalid(
                "digest mismatch: the credential was changed after signing",
            ));
        }
        if !rsa_verify(key, sig.algorithm, &sig.signed_info, &sig.value) {
            return Err(invalid(
                "the signature value does not verify with the signer's key",
            ));
        }
        Ok(())
    }
}

fn link_subject(link: &GeniLink) -> String {
    format!("GENI credential #{} for {}", link.id, link.target_urn)
}

/// Delegation rules between a link and its parent.
fn delegation_check(child: &GeniLink, parent: &GeniLink, skew: i64) -> Result<(), VerifyError> {
    let subject = link_subject(child);
    if child.target_urn != parent.target_urn
        || child.target.public_key() != parent.target.public_key()
    {
        return Err(VerifyError::TargetChanged {
            subject,
            target: child.target_urn.to_string(),
            parent_target: parent.target_urn.to_string(),
        });
    }
    let covered = child
        .privileges
        .iter()
        .all(|c| parent.privileges.iter().any(|p| p.covers(c)));
    if !covered {
        return Err(VerifyError::RightsEscalation {
            subject,
            rights: privileges_text(&child.privileges),
            parent: link_subject(parent),
            parent_rights: privileges_text(&parent.privileges),
        });
    }
    if child.expires > parent.expires.saturating_add(skew) {
        return Err(VerifyError::OutlivesParent {
            subject,
            not_after: format_utc(child.expires),
            parent: link_subject(parent),
            parent_not_after: format_utc(parent.expires),
        });
    }
    Ok(())
}

/// An issuing certificate must be a CA named by an authority URN.
fn authority_check(gid: &Gid) -> Result<(), VerifyError> {
    let cert = gid.certificate();
    let named = gid_urn(gid).is_some_and(|u| u.is_authority());
    if !named || !crate::geni::gid::is_ca(cert.der()) {
        return Err(VerifyError::NotCa {
            subject: cert.subject().to_owned(),
        });
    }
    Ok(())
}

/// The leaf of a set of certificates: the one that issued none of the others.
fn signer_leaf(certs: &[Certificate]) -> Option<&Certificate> {
    certs.iter().find(|c| {
        !certs.iter().any(|o| {
            !std::ptr::eq(*c, o) && o.issuer() == c.subject() && o.subject() != c.subject()
        })
    })
}

/// The certificates as a chain, leaf first, each followed by its issuer when present.
fn order_chain(certs: &[Certificate]) -> Option<Vec<Certificate>> {
    let mut chain = vec![signer_leaf(certs)?.clone()];
    while chain.len() < certs.len() {
        let last = chain.last()?;
        if last.issuer() == last.subject() {
            break;
        }
        match certs
            .iter()
            .find(|c| c.subject() == last.issuer() && !chain.iter().any(|x| x.der() == c.der()))
        {
            Some(next) => chain.push(next.clone()),
            None => break,
        }
    }
    Some(chain)
}

fn gid_of_chain(chain: &[Certificate]) -> Result<Gid, TrustError> {
    let pems = chain
        .iter()
        .map(Certificate::to_pem)
        .collect::<Result<Vec<_>, _>>()?;
    Gid::parse(&pems.concat())
}

/// The verdict cache's key for a GENI document: its bytes, hashed apart from the 2008 chain
/// digests (an XML document and a PEM chain never share a key).
pub(super) fn geni_digest(text: &str) -> [u8; 32] {
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(b"geni_sfa\0");
    hasher.update(text.as_bytes());
    hasher.finish()
}
