//! GIDs in the GENI form: X.509 v3 whose subjectAltName holds `URI:urn:publicid:IDN+…`,
//! `URI:urn:uuid:…` and optionally `email:`, with `basicConstraints` critical and `CA:TRUE` only
//! on authorities (`reference/geni-am-api-spec.md` §4.2). Reading them is [`crate::Gid`]'s (it
//! reads both forms); this module adds the URN and CA facts and makes new ones.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder};

use super::Urn;
use crate::cert::Certificate;
use crate::error::crypto;
use crate::{ChainForm, Gid, Keypair, PublicKey, TrustError, Validity};

/// The URN a GID's certificate names in its subjectAltName, if any.
pub fn gid_urn(gid: &Gid) -> Option<Urn> {
    gid.certificate()
        .san_uris()
        .iter()
        .find(|u| u.len() > 17 && u[..17].eq_ignore_ascii_case("urn:publicid:IDN+"))
        .and_then(|u| Urn::parse(u).ok())
}

/// Everything needed to make one URN GID.
#[derive(Debug)]
pub struct UrnGidSpec<'a> {
    pub urn: &'a Urn,
    /// Decimal, as [`crate::new_uuid`] makes it; written as an RFC 4122 `urn:uuid:`.
    pub uuid: &'a str,
    pub email: Option<&'a str>,
    pub key: &'a PublicKey,
    /// The issuing authority's GID chain; `None` for a self-signed root.
    pub issuer: Option<&'a Gid>,
    pub signer: &'a Keypair,
    pub validity: Validity,
}

impl UrnGidSpec<'_> {
    /// Makes and signs the GID: v3, sha256, random serial, subject CN the URN's hrn (so that
    /// the 2008 issuer-name rule holds across both forms), `CA:TRUE` exactly when the URN is an
    /// authority's. The result carries the issuer's chain as its parents.
    pub fn build(&self) -> Result<Gid, TrustError> {
        let hrn = self.urn.to_hrn()?;
        let uuid: u128 = self.uuid.parse().map_err(|_| TrustError::Encode {
            what: format!("GID {}", self.urn),
            reason: format!("uuid {:?} is not a decimal number", self.uuid),
        })?;
        let issuer_cn = match self.issuer {
            Some(g) => g.certificate().subject().to_owned(),
            None => hrn.to_string(),
        };
        let c = crypto("building a URN GID");
        let mut b = X509Builder::new().map_err(c)?;
        b.set_version(2).map_err(crypto("building a URN GID"))?;
        let mut serial = BigNum::new().map_err(crypto("building a URN GID"))?;
        serial
            .rand(63, MsbOption::MAYBE_ZERO, false)
            .map_err(crypto("building a URN GID"))?;
        let serial = Asn1Integer::from_bn(&serial).map_err(crypto("building a URN GID"))?;
        b.set_serial_number(&serial)
            .map_err(crypto("building a URN GID"))?;
        let subject = cn(hrn.as_str())?;
        let issuer = cn(&issuer_cn)?;
        b.set_subject_name(&subject)
            .map_err(crypto("building a URN GID"))?;
        b.set_issuer_name(&issuer)
            .map_err(crypto("building a URN GID"))?;
        let nb =
            Asn1Time::from_unix(self.validity.not_before).map_err(crypto("building a URN GID"))?;
        let na =
            Asn1Time::from_unix(self.validity.not_after).map_err(crypto("building a URN GID"))?;
        b.set_not_before(&nb)
            .map_err(crypto("building a URN GID"))?;
        b.set_not_after(&na).map_err(crypto("building a URN GID"))?;
        b.set_pubkey(self.key.pkey())
            .map_err(crypto("building a URN GID"))?;
        let mut bc = BasicConstraints::new();
        bc.critical();
        if self.urn.is_authority() {
            bc.ca();
        }
        let bc = bc.build().map_err(crypto("building a URN GID"))?;
        b.append_extension(bc)
            .map_err(crypto("building a URN GID"))?;
        let mut san = SubjectAlternativeName::new();
        san.uri(&self.urn.to_string());
        san.uri(&format!("urn:uuid:{}", rfc4122(uuid)));
        if let Some(email) = self.email {
            if email.is_empty() || !email.is_ascii() || email.contains(char::is_whitespace) {
                return Err(TrustError::Encode {
                    what: format!("GID {}", self.urn),
                    reason: format!("email {email:?} is not an address"),
                });
            }
            san.email(email);
        }
        let san = san
            .build(&b.x509v3_context(None, None))
            .map_err(crypto("building a URN GID"))?;
        b.append_extension(san)
            .map_err(crypto("building a URN GID"))?;
        b.sign(self.signer.pkey(), MessageDigest::sha256())
            .map_err(crypto("signing a URN GID"))?;
        let x509 = b.build();
        let der = x509.to_der().map_err(crypto("encoding a URN GID"))?;
        let leaf = Certificate::from_der(&der)?.to_pem()?;
        let text = match self.issuer {
            Some(parent) => leaf + &parent.to_chain_string(ChainForm::Plain)?,
            None => leaf,
        };
        Gid::parse(&text)
    }
}

fn cn(name: &str) -> Result<openssl::x509::X509Name, TrustError> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(TrustError::Encode {
            what: name.to_owned(),
            reason: "a common name must be 1 to 64 characters".into(),
        });
    }
    let mut n = X509NameBuilder::new().map_err(crypto("building a certificate name"))?;
    n.append_entry_by_nid(Nid::COMMONNAME, name)
        .map_err(crypto("building a certificate name"))?;
    Ok(n.build())
}

/// `8-4-4-4-12` lower-case hex.
fn rfc4122(uuid: u128) -> String {
    let h = format!("{uuid:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

// === basicConstraints, read from the DER ===

/// Splits one DER TLV at the start of `data`: (tag, content, rest).
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (hdr, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = data
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, data.get(hdr..end)?, data.get(end..)?))
}

/// Whether the certificate has `basicConstraints` with `cA` TRUE. Walks the structure (never
/// searches bytes), so a subjectAltName cannot fake it.
pub(crate) fn is_ca(der: &[u8]) -> bool {
    ca_flag(der).unwrap_or(false)
}

fn ca_flag(der: &[u8]) -> Option<bool> {
    const BASIC_CONSTRAINTS: [u8; 3] = [0x55, 0x1d, 0x13];
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    while !rest.is_empty() {
        let (tag, content, next) = tlv(rest)?;
        rest = next;
        if tag != 0xa3 {
            continue;
        }
        let (_, mut exts, _) = tlv(content)?;
        while !exts.is_empty() {
            let (_, ext, next) = tlv(exts)?;
            exts = next;
            let (oid_tag, oid, mut fields) = tlv(ext)?;
            if oid_tag != 0x06 || oid != BASIC_CONSTRAINTS {
                continue;
            }
            let (mut tag, mut value, after) = tlv(fields)?;
            if tag == 0x01 {
                fields = after;
                (tag, value, _) = tlv(fields)?;
            }
            if tag != 0x04 {
                return None;
            }
            let (_, seq, _) = tlv(value)?;
            return Some(matches!(tlv(seq), Some((0x01, [v], _)) if *v != 0));
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordType, new_uuid};

    #[test]
    fn urn_gids_carry_urn_uuid_email_and_ca_only_on_authorities() {
        let root_key = Keypair::generate(2048).unwrap();
        let root_urn = Urn::parse("urn:publicid:IDN+plc+authority+sa").unwrap();
        let validity = Validity::from_now(0, 4_000_000_000);
        let root = UrnGidSpec {
            urn: &root_urn,
            uuid: &new_uuid().unwrap(),
            email: None,
            key: &root_key.public_key(),
            issuer: None,
            signer: &root_key,
            validity,
        }
        .build()
        .unwrap();
        assert!(is_ca(root.certificate().der()));
        assert_eq!(gid_urn(&root), Some(root_urn.clone()));
        assert_eq!(root.hrn().as_str(), "plc");
        let user_key = Keypair::generate(1024).unwrap();
        let user_urn = Urn::from_hrn(&"plc.alice".parse().unwrap(), RecordType::User).unwrap();
        let uuid = new_uuid().unwrap();
        let user = UrnGidSpec {
            urn: &user_urn,
            uuid: &uuid,
            email: Some("alice@example.org"),
            key: &user_key.public_key(),
            issuer: Some(&root),
            signer: &root_key,
            validity,
        }
        .build()
        .unwrap();
        assert!(!is_ca(user.certificate().der()));
        assert_eq!(user.uuid(), Some(uuid.as_str()));
        assert_eq!(user.hrn().as_str(), "plc.alice");
        assert_eq!(user.parent().unwrap().hrn().as_str(), "plc");
        assert!(user.certificate().is_signed_by(&root_key.public_key()));
        assert_eq!(user.certificate().version(), 3);
    }

    #[test]
    fn ca_flag_of_the_vectors() {
        let read = |p: &str| Gid::load(std::path::Path::new(p)).unwrap();
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/geni/");
        assert!(is_ca(
            read(&format!("{base}gcf/root-ch-cert.pem"))
                .certificate()
                .der()
        ));
        assert!(!is_ca(
            read(&format!("{base}gcf/alice-gid.pem"))
                .certificate()
                .der()
        ));
        assert!(is_ca(
            read(&format!("{base}sfa-md5/site-plc.princeton.gid"))
                .certificate()
                .der()
        ));
        assert!(!is_ca(b"\x30\x03\x02\x01\x01"));
    }
}
