//! Fuzzes the binary parsers of `geni-trust`: a DER certificate (and, when it parses, the payload
//! of its subjectAltName as a GID would read it), SubjectPublicKeyInfo DER and PEM, and OpenSSH
//! public key lines. Any bytes must parse or fail cleanly; whatever parses must pass the key
//! policy (1024–8192-bit RSA, odd exponent up to 2^32), since nothing else may reach a signature
//! check. Seed with certificates from `../../shared/vectors/gw2008/` converted to DER.
#![no_main]

use geni_trust::{Certificate, MAX_RSA_BITS, MIN_RSA_BITS, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Certificate::from_der(data) {
        assert_eq!(cert.der(), data);
        let bits = cert.public_key().bits();
        assert!((MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits), "{bits}");
        let _ = cert.xmlrpc_payload();
        let _ = (cert.subject(), cert.issuer(), cert.serial(), cert.version());
        // The certificate as PEM reads back to the same certificate.
        let pem = cert.to_pem().unwrap();
        assert_eq!(Certificate::from_pem(&pem).unwrap().der(), data);
        let _ = geni_trust::Gid::parse(&pem);
    }
    if let Ok(key) = PublicKey::from_der(data) {
        assert!((MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key.bits()));
    }
    if let Ok(key) = PublicKey::from_pem(data) {
        assert!((MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key.bits()));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::from_openssh(text);
    }
});
