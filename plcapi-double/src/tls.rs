//! The double's HTTPS identity: a throw-away CA and a server certificate for `localhost` and
//! `127.0.0.1` signed by it, so that clients can verify the double by CA file exactly as they
//! verify a real PLCAPI (`PlcServerAuth::CaFile`). EC P-256 keys: cheap to make per double.

use std::io;
use std::sync::Arc;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA (PEM, for clients) and the server's rustls configuration.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) config: Arc<rustls::ServerConfig>,
}

impl Pki {
    pub(crate) fn new() -> io::Result<Self> {
        let made = (|| -> Result<_, ErrorStack> {
            let ca_key = ec_key()?;
            let ca = certificate("PLCAPI double CA", &ca_key, None)?;
            let server_key = ec_key()?;
            let server = certificate("localhost", &server_key, Some((&ca, &ca_key)))?;
            Ok((
                String::from_utf8_lossy(&ca.to_pem()?).into_owned(),
                vec![
                    CertificateDer::from(server.to_der()?),
                    CertificateDer::from(ca.to_der()?),
                ],
                server_key.private_key_to_pkcs8()?,
            ))
        })();
        let (ca_pem, chain, key) = made.map_err(io::Error::other)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        .map_err(io::Error::other)?;
        Ok(Self {
            ca_pem,
            config: Arc::new(config),
        })
    }
}

fn ec_key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// A v3 certificate for `cn`: a CA when `issuer` is `None`, else a server certificate for
/// localhost signed by `issuer`.
fn certificate(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> Result<X509, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = if issuer.is_some() { 2 } else { 1 };
    let serial = BigNum::from_u32(serial)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))?;
    b.set_pubkey(key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    match issuer {
        None => {
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            b.append_extension(KeyUsage::new().critical().key_cert_sign().build()?)?;
        }
        Some((ca, _)) => {
            b.append_extension(BasicConstraints::new().build()?)?;
            b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(Some(ca), None))?;
            b.append_extension(san)?;
        }
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())?;
    Ok(b.build())
}
