//! TLS for the Geni protocol: who may connect and how the handshake proves key possession.
//!
//! Geniwrapper trusts no certificate authority at the TLS layer: a client presents any
//! certificate (2008 clients present self-signed X.509 v1 certificates with 1024-bit keys signed
//! with md5), the handshake's CertificateVerify proves it holds that certificate's key, and the
//! application then compares the key with the caller GID inside the credential. webpki parses
//! neither v1 certificates nor, with ring, RSA keys under 2048 bits, so this module checks
//! handshake signatures with OpenSSL against the certificate's public key alone, and signs our own
//! side with OpenSSL too (2008-shaped authority keys are 1024-bit). Trust in a key is decided by
//! the application; what is decided here is cost: an RSA key outside `geni-trust`'s key policy
//! (1024–8192 bits, odd exponent up to 2^32) is refused before its signature is checked, since a
//! 16,384-bit key or a 3071-bit exponent makes each handshake cost a peer-chosen amount of CPU.
//!
//! Clients authenticate the server by pinning its key or certificate; accepting any server is a
//! `danger_` choice that must be named.

use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer as OsslSigner, Verifier as OsslVerifier};
use openssl::x509::X509;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    DigitallySignedStruct, DistinguishedName, Error as TlsError, SignatureAlgorithm,
    SignatureScheme,
};

use crate::RpcError;

/// Schemes we verify and offer, strongest first.
const SCHEMES: [SignatureScheme; 9] = [
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
];

/// Our own identity on a TLS connection: a private key and the certificate chain to present.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    certified: Arc<CertifiedKey>,
}

/// How a client decides to trust the server it reached.
#[derive(Debug, Clone)]
pub enum ServerAuth {
    /// The server must present exactly this key (SubjectPublicKeyInfo DER), for example the one
    /// in the node's or registry's GID.
    PinnedKey(Vec<u8>),
    /// The server must present exactly this certificate (DER).
    PinnedCertificate(Vec<u8>),
    /// The server's chain (leaf first, DER) must satisfy this check, such as "is a GID that
    /// verifies against our trusted roots": for a client that knows the roots of a federation but
    /// not every server's key.
    Check(Arc<dyn ServerCheck>),
    /// Any server certificate; the handshake still proves the server holds its key, but nothing
    /// says whose key that is. What 2008's clients did; use only where the network is trusted.
    DangerAcceptAny,
}

/// A client's own decision about the certificate chain a server presented
/// ([`ServerAuth::Check`]). The handshake signature is checked separately against the leaf's key,
/// so a chain that passes here also proves the server holds the leaf's key.
pub trait ServerCheck: Send + Sync + std::fmt::Debug {
    /// `Ok` to trust the server; `Err` says why not (it ends up in the client's error message).
    fn check(&self, chain: &[&[u8]]) -> Result<(), String>;
}

/// A [`ServerCheck`] refusal as a TLS error whose text is the reason.
#[derive(Debug)]
struct CheckFailed(String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

// === impl TlsIdentity ===

impl TlsIdentity {
    /// From a PEM private key (PKCS#1 or PKCS#8, any RSA size) and a PEM certificate chain, leaf
    /// first (a GID file works: `-----parent-----` separators are skipped).
    pub fn from_pem(key_pem: &[u8], chain_pem: &str) -> Result<Self, RpcError> {
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| RpcError::config(format!("TLS private key: {e}")))?;
        let chain = pem_chain(chain_pem)?;
        let leaf = X509::from_der(chain[0].as_ref())
            .map_err(|e| RpcError::config(format!("TLS certificate: {e}")))?;
        let leaf_key = leaf
            .public_key()
            .map_err(|e| RpcError::config(format!("TLS certificate: {e}")))?;
        if !key.public_eq(&leaf_key) {
            return Err(RpcError::config(
                "the TLS private key does not match the certificate",
            ));
        }
        let signing: Arc<dyn SigningKey> = Arc::new(OpensslKey::new(key)?);
        Ok(Self {
            certified: Arc::new(CertifiedKey::new(chain, signing)),
        })
    }

    pub(crate) fn certified(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }

    /// The leaf certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        self.certified.cert.first().map_or(&[], |c| c.as_ref())
    }
}

/// Splits PEM text into certificates, skipping anything between blocks (such as 2008's
/// `-----parent-----`).
fn pem_chain(text: &str) -> Result<Vec<CertificateDer<'static>>, RpcError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            return Err(RpcError::config("TLS certificate chain: truncated PEM"));
        };
        let block = &rest[start..start + len + END.len()];
        let x509 = X509::from_pem(block.as_bytes())
            .map_err(|e| RpcError::config(format!("TLS certificate chain: {e}")))?;
        let der = x509
            .to_der()
            .map_err(|e| RpcError::config(format!("TLS certificate chain: {e}")))?;
        out.push(CertificateDer::from(der));
        rest = &rest[start + len + END.len()..];
    }
    if out.is_empty() {
        return Err(RpcError::config(
            "TLS certificate chain: no PEM certificate",
        ));
    }
    Ok(out)
}

// === signing with OpenSSL ===

#[derive(Debug)]
struct OpensslKey {
    key: PKey<Private>,
}

#[derive(Debug)]
struct OpensslSigner {
    key: PKey<Private>,
    scheme: SignatureScheme,
}

impl OpensslKey {
    fn new(key: PKey<Private>) -> Result<Self, RpcError> {
        if key.id() != Id::RSA {
            return Err(RpcError::config("only RSA keys are supported for TLS"));
        }
        Ok(Self { key })
    }
}

impl SigningKey for OpensslKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        // RSA schemes in our order of preference; TLS 1.3 peers offer only the PSS ones.
        SCHEMES
            .iter()
            .take(6)
            .find(|s| offered.contains(s))
            .map(|&scheme| {
                Box::new(OpensslSigner {
                    key: self.key.clone(),
                    scheme,
                }) as Box<dyn Signer>
            })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

impl Signer for OpensslSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TlsError> {
        let fail = |e: openssl::error::ErrorStack| TlsError::General(format!("signing: {e}"));
        let (md, pss) =
            rsa_params(self.scheme).ok_or(TlsError::General("unsupported scheme".into()))?;
        let mut s = OsslSigner::new(md, &self.key).map_err(fail)?;
        if pss {
            s.set_rsa_padding(Padding::PKCS1_PSS).map_err(fail)?;
            s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                .map_err(fail)?;
            s.set_rsa_mgf1_md(md).map_err(fail)?;
        }
        s.sign_oneshot_to_vec(message).map_err(fail)
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Digest and whether PSS, for the RSA schemes.
fn rsa_params(scheme: SignatureScheme) -> Option<(MessageDigest, bool)> {
    Some(match scheme {
        SignatureScheme::RSA_PKCS1_SHA256 => (MessageDigest::sha256(), false),
        SignatureScheme::RSA_PKCS1_SHA384 => (MessageDigest::sha384(), false),
        SignatureScheme::RSA_PKCS1_SHA512 => (MessageDigest::sha512(), false),
        SignatureScheme::RSA_PSS_SHA256 => (MessageDigest::sha256(), true),
        SignatureScheme::RSA_PSS_SHA384 => (MessageDigest::sha384(), true),
        SignatureScheme::RSA_PSS_SHA512 => (MessageDigest::sha512(), true),
        _ => return None,
    })
}

// === verifying handshake signatures with OpenSSL ===

/// Checks a CertificateVerify (or ServerKeyExchange) signature against the certificate's public
/// key alone: no chain, no name, no key-size floor.
fn verify_signature(
    cert: &CertificateDer<'_>,
    message: &[u8],
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, TlsError> {
    let scheme = dss.scheme;
    let pkcs1 = matches!(
        scheme,
        SignatureScheme::RSA_PKCS1_SHA256
            | SignatureScheme::RSA_PKCS1_SHA384
            | SignatureScheme::RSA_PKCS1_SHA512
    );
    if !SCHEMES.contains(&scheme) || (tls13 && pkcs1) {
        return Err(TlsError::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ));
    }
    let key = public_key(cert)?;
    let bad = || TlsError::InvalidCertificate(rustls::CertificateError::BadSignature);
    let ok = match (scheme, key.id()) {
        (s, Id::RSA) if rsa_params(s).is_some() => {
            let (md, pss) = rsa_params(s).ok_or_else(bad)?;
            let mut v = OsslVerifier::new(md, &key).map_err(|_| bad())?;
            if pss {
                v.set_rsa_padding(Padding::PKCS1_PSS).map_err(|_| bad())?;
                v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                    .map_err(|_| bad())?;
                v.set_rsa_mgf1_md(md).map_err(|_| bad())?;
            }
            v.verify_oneshot(dss.signature(), message).unwrap_or(false)
        }
        (SignatureScheme::ECDSA_NISTP256_SHA256, Id::EC) => {
            ec_verify(&key, MessageDigest::sha256(), message, dss)
        }
        (SignatureScheme::ECDSA_NISTP384_SHA384, Id::EC) => {
            ec_verify(&key, MessageDigest::sha384(), message, dss)
        }
        (SignatureScheme::ED25519, Id::ED25519) => OsslVerifier::new_without_digest(&key)
            .and_then(|mut v| v.verify_oneshot(dss.signature(), message))
            .unwrap_or(false),
        _ => false,
    };
    if ok {
        Ok(HandshakeSignatureValid::assertion())
    } else {
        Err(bad())
    }
}

fn ec_verify(
    key: &PKey<Public>,
    md: MessageDigest,
    message: &[u8],
    dss: &DigitallySignedStruct,
) -> bool {
    OsslVerifier::new(md, key)
        .and_then(|mut v| v.verify_oneshot(dss.signature(), message))
        .unwrap_or(false)
}

/// The certificate's public key, if it passes the key policy: RSA keys by `geni-trust`'s rule,
/// EC keys on P-256 or P-384 and Ed25519 (fixed cost); nothing else.
fn public_key(cert: &CertificateDer<'_>) -> Result<PKey<Public>, TlsError> {
    let key = X509::from_der(cert.as_ref())
        .and_then(|x| x.public_key())
        .map_err(|_| TlsError::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let refused = |reason: String| {
        TlsError::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(CheckFailed(reason)),
        )))
    };
    match key.id() {
        Id::RSA => {
            let e = key
                .rsa()
                .map_err(|_| TlsError::InvalidCertificate(rustls::CertificateError::BadEncoding))?
                .e()
                .to_vec();
            geni_trust::check_rsa_key(key.bits(), &e).map_err(refused)?;
        }
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
            if !matches!(
                curve,
                Some(openssl::nid::Nid::X9_62_PRIME256V1 | openssl::nid::Nid::SECP384R1)
            ) {
                return Err(refused("EC key not on P-256 or P-384".into()));
            }
        }
        Id::ED25519 => {}
        _ => return Err(refused("unsupported public key type".into())),
    }
    Ok(key)
}

// === server side: any client certificate ===

/// Requires a client certificate, accepts any issuer, checks only that it parses. Who the client
/// is gets decided by the application from the certificate's key.
#[derive(Debug)]
pub(crate) struct AnyClientCert;

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        public_key(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_signature(cert, message, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_signature(cert, message, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

// === client side: the pinned server ===

#[derive(Debug)]
pub(crate) struct ServerVerifier {
    auth: ServerAuth,
}

impl ServerVerifier {
    pub(crate) fn new(auth: ServerAuth) -> Self {
        Self { auth }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let mismatch = || {
            TlsError::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
        };
        match &self.auth {
            ServerAuth::DangerAcceptAny => {
                public_key(end_entity)?;
            }
            ServerAuth::PinnedCertificate(der) => {
                if end_entity.as_ref() != der.as_slice() {
                    return Err(mismatch());
                }
            }
            ServerAuth::PinnedKey(spki) => {
                let key = public_key(end_entity)?;
                let presented = key.public_key_to_der().map_err(|_| mismatch())?;
                if presented != *spki {
                    return Err(mismatch());
                }
            }
            ServerAuth::Check(check) => {
                public_key(end_entity)?;
                let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
                    .chain(intermediates.iter().map(AsRef::as_ref))
                    .collect();
                check.check(&chain).map_err(|reason| {
                    TlsError::InvalidCertificate(rustls::CertificateError::Other(
                        rustls::OtherError(Arc::new(CheckFailed(reason))),
                    ))
                })?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_signature(cert, message, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_signature(cert, message, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

// === configs ===

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS configuration: TLS 1.2 and 1.3, client certificate mandatory.
pub(crate) fn server_config(identity: &TlsIdentity) -> Result<Arc<rustls::ServerConfig>, RpcError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| RpcError::config(format!("TLS: {e}")))?
        .with_client_cert_verifier(Arc::new(AnyClientCert))
        .with_cert_resolver(Arc::new(Fixed(identity.certified())));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client's TLS configuration presenting `identity` and trusting the server per `auth`.
pub(crate) fn client_config(
    identity: Option<&TlsIdentity>,
    auth: ServerAuth,
) -> Result<Arc<rustls::ClientConfig>, RpcError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| RpcError::config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::new(auth)));
    let config = match identity {
        Some(id) => builder.with_client_cert_resolver(Arc::new(Fixed(id.certified()))),
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Always the same certificate and key, on both sides.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use openssl::bn::{BigNum, MsbOption};
    use openssl::rsa::Rsa;

    use super::*;

    /// A certificate for (n, e) with `n` random and odd: refused or not before any signature.
    fn cert_for(bits: i32, e: BigNum) -> CertificateDer<'static> {
        let mut n = BigNum::new().unwrap();
        n.rand(bits, MsbOption::ONE, true).unwrap();
        let key = PKey::from_rsa(Rsa::from_public_components(n, e).unwrap()).unwrap();
        let signer = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, "m")
            .unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        let now = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
        b.set_not_before(&now).unwrap();
        b.set_not_after(&now).unwrap();
        b.sign(&signer, MessageDigest::sha256()).unwrap();
        CertificateDer::from(b.build().to_der().unwrap())
    }

    // See: issue 13 ("the TLS client-certificate verifier has the same gap").
    #[test]
    fn r13_the_client_verifier_applies_the_key_policy() {
        let f4 = || BigNum::from_u32(65537).unwrap();
        let mut huge = BigNum::new().unwrap();
        huge.rand(3071, MsbOption::ONE, true).unwrap();
        let now = UnixTime::now();
        let verdict = |cert: &CertificateDer<'_>| {
            AnyClientCert
                .verify_client_cert(cert, &[], now)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(verdict(&cert_for(2048, f4())), Ok(()));
        assert_eq!(verdict(&cert_for(8192, f4())), Ok(()));
        for (cert, expected) in [
            (cert_for(16384, f4()), "16384 bits"),
            (cert_for(3072, huge), "exponent of 3071 bits"),
            (cert_for(2048, BigNum::from_u32(4).unwrap()), "even"),
        ] {
            let e = verdict(&cert).unwrap_err();
            assert!(e.contains(expected), "{e}");
        }
    }
}
