//! Conformance against the GENI credentials made by gcf-ch 2.11 and SFA 3.1
//! (`../shared/vectors/geni/`, read as they are, mutated only in memory): every credential is
//! accepted against its own root and refused against every other root and the evil one, and
//! refused when a privilege name, one byte of a `SignatureValue` or one byte of a `DigestValue`
//! changes. One test per credential file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use geni_trust::geni::GeniCredential;
use geni_trust::{Gid, Policy, TrustError, TrustedRoots, Verifier, VerifyError};

fn dir() -> PathBuf {
    std::env::var_os("GENI_GENI_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/geni")
        })
}

const ROOTS: [&str; 4] = [
    "gcf/root-ch-cert.pem",
    "sfa-md5/root-plc.gid",
    "sfa-sha256/root-plc.gid",
    "sfa-md5/untrusted-root-evil.gid",
];

fn read(rel: &str) -> String {
    let path = dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn verifier(root: &str) -> Verifier {
    verifier_with(root, root.starts_with("sfa-md5"))
}

fn verifier_with(root: &str, legacy_digests: bool) -> Verifier {
    let gid = Gid::load(&dir().join(root)).unwrap();
    Verifier::new(
        TrustedRoots::from_gids(vec![gid]).unwrap(),
        Policy {
            // SFA 3.1 signs its certificates with md5; the gcf ones are sha256 and pass either way.
            legacy_digests,
            ..Policy::default()
        },
    )
}

/// Replaces one base64 character inside the first (or `nth`) element `tag`.
fn flip_in(text: &str, tag: &str, nth: usize) -> String {
    let open = format!("<{tag}>");
    let start = text.match_indices(&open).nth(nth).expect(tag).0 + open.len() + 10;
    let mut bytes = text.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn assert_signature_invalid(r: Result<geni_trust::VerifiedCredential, TrustError>, what: &str) {
    match r {
        Err(TrustError::Verify(VerifyError::SignatureInvalid { .. })) => {}
        other => panic!("{what}: expected a bad signature, got {other:?}"),
    }
}

struct Expect {
    file: &'static str,
    root: &'static str,
    owner: &'static str,
    target: &'static str,
    privileges: &'static str,
    links: usize,
}

fn check(e: &Expect) {
    let text = read(e.file);
    let parsed = GeniCredential::parse(&text).unwrap();
    assert_eq!(parsed.links().len(), e.links);
    // Accepted against its own root, with the facts it states.
    let v = verifier(e.root).verify_geni_credential_str(&text).unwrap();
    let geni = v.geni().unwrap();
    assert_eq!(geni.owner_urn().to_string(), e.owner, "{}", e.file);
    assert_eq!(geni.target_urn().to_string(), e.target, "{}", e.file);
    assert_eq!(geni.chain_len(), e.links);
    assert_eq!(v.privileges().to_string(), e.privileges, "{}", e.file);
    assert_eq!(
        v.caller().gid().public_key(),
        parsed.outer().owner().public_key()
    );
    assert_eq!(
        v.object().gid().public_key(),
        parsed.outer().target().public_key()
    );
    if e.links > 1 {
        // A delegated credential was issued by the owner of its parent.
        assert_eq!(v.issuer_key(), parsed.links()[1].owner().public_key());
    }
    // The same through the either-form entry point, and again from the cache.
    let v2 = verifier(e.root).verify_any_credential_str(&text).unwrap();
    assert_eq!(v2.subject(), v.subject());
    // Refused against every other root (md5 allowed, so that the root is the reason).
    for other in ROOTS.iter().filter(|r| **r != e.root) {
        let err = verifier_with(other, true)
            .verify_geni_credential_str(&text)
            .unwrap_err();
        assert!(
            matches!(err, TrustError::Verify(VerifyError::UntrustedRoot { .. })),
            "{} under {other}: {err}",
            e.file
        );
    }
    let own = verifier(e.root);
    // A privilege renamed to another valid one (here an escalation) breaks the digest.
    let renamed = text.replacen("<name>info</name>", "<name>authority</name>", 1);
    assert_ne!(renamed, text);
    assert_signature_invalid(
        own.verify_geni_credential_str(&renamed),
        "renamed privilege",
    );
    // Renamed to something that is no privilege: refused while reading.
    let unknown = text.replacen("<name>info</name>", "<name>infos</name>", 1);
    assert!(matches!(
        own.verify_geni_credential_str(&unknown),
        Err(TrustError::UnknownRight { .. })
    ));
    // One byte of each SignatureValue and each DigestValue.
    for n in 0..e.links {
        for tag in ["SignatureValue", "DigestValue"] {
            let changed = flip_in(&text, tag, n);
            assert_signature_invalid(own.verify_geni_credential_str(&changed), tag);
        }
    }
    // The untouched text is still accepted (nothing above changed the verifier's mind).
    own.verify_geni_credential_str(&text).unwrap();
}

#[test]
fn gcf_alice_user_cred_xml() {
    check(&Expect {
        file: "gcf/alice-user.cred.xml",
        root: "gcf/root-ch-cert.pem",
        owner: "urn:publicid:IDN+geni:gpo:gcf+user+alice",
        target: "urn:publicid:IDN+geni:gpo:gcf+user+alice",
        privileges: "refresh,resolve,info",
        links: 1,
    });
}

#[test]
fn gcf_fixslice_alice_cred_xml() {
    check(&Expect {
        file: "gcf/fixslice-alice.cred.xml",
        root: "gcf/root-ch-cert.pem",
        owner: "urn:publicid:IDN+geni:gpo:gcf+user+alice",
        target: "urn:publicid:IDN+geni:gpo:gcf+slice+fixslice",
        privileges: "refresh,embed,bind,control,info",
        links: 1,
    });
}

#[test]
fn gcf_fixslice_delegated_to_bob_cred_xml() {
    check(&Expect {
        file: "gcf/fixslice-delegated-to-bob.cred.xml",
        root: "gcf/root-ch-cert.pem",
        owner: "urn:publicid:IDN+geni:gpo:gcf+user+bob",
        target: "urn:publicid:IDN+geni:gpo:gcf+slice+fixslice",
        privileges: "refresh,embed,bind,control,info",
        links: 2,
    });
}

#[test]
fn sfa_md5_slice1_alice_cred_xml() {
    check(&Expect {
        file: "sfa-md5/slice1-alice.cred.xml",
        root: "sfa-md5/root-plc.gid",
        owner: "urn:publicid:IDN+plc:princeton+user+alice",
        target: "urn:publicid:IDN+plc:princeton+slice+slice1",
        privileges: "refresh,embed,bind,control,info",
        links: 1,
    });
}

#[test]
fn sfa_md5_slice1_delegated_to_bob_cred_xml() {
    check(&Expect {
        file: "sfa-md5/slice1-delegated-to-bob.cred.xml",
        root: "sfa-md5/root-plc.gid",
        owner: "urn:publicid:IDN+plc:princeton+user+bob",
        target: "urn:publicid:IDN+plc:princeton+slice+slice1",
        privileges: "refresh,embed,bind,control,info",
        links: 2,
    });
}

#[test]
fn sfa_sha256_slice1_alice_cred_xml() {
    check(&Expect {
        file: "sfa-sha256/slice1-alice.cred.xml",
        root: "sfa-sha256/root-plc.gid",
        owner: "urn:publicid:IDN+plc:princeton+user+alice",
        target: "urn:publicid:IDN+plc:princeton+slice+slice1",
        privileges: "refresh,embed,bind,control,info",
        links: 1,
    });
}

#[test]
fn sfa_sha256_slice1_delegated_to_bob_cred_xml() {
    check(&Expect {
        file: "sfa-sha256/slice1-delegated-to-bob.cred.xml",
        root: "sfa-sha256/root-plc.gid",
        owner: "urn:publicid:IDN+plc:princeton+user+bob",
        target: "urn:publicid:IDN+plc:princeton+slice+slice1",
        privileges: "refresh,embed,bind,control,info",
        links: 2,
    });
}

#[test]
fn md5_certificates_need_legacy_digests() {
    let roots = TrustedRoots::from_gids(vec![
        Gid::load(&dir().join("sfa-md5/root-plc.gid")).unwrap(),
    ])
    .unwrap();
    let strict = Verifier::new(roots, Policy::default());
    let err = strict
        .verify_geni_credential_str(&read("sfa-md5/slice1-alice.cred.xml"))
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::WeakDigest { .. })),
        "{err}"
    );
}

#[test]
fn rsa_sha1_signatures_can_be_refused() {
    let gid = Gid::load(&dir().join("gcf/root-ch-cert.pem")).unwrap();
    let v = Verifier::new(
        TrustedRoots::from_gids(vec![gid]).unwrap(),
        Policy {
            xml_dsig_sha1: false,
            ..Policy::default()
        },
    );
    let err = v
        .verify_geni_credential_str(&read("gcf/fixslice-alice.cred.xml"))
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::WeakDigest { .. })),
        "{err}"
    );
}
