//! Issuing, delegating and the verifier's GENI rules on credentials made here, and the classic
//! XML-DSig attacks on a real gcf credential. Every refusal is followed by a check that the
//! verifier still accepts the untouched credential (a refusal changes nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::sign::delegate_unchecked;
use super::*;
use crate::{
    Clock, Gid, Keypair, Policy, TrustError, TrustedRoots, Validity, Verifier, VerifyError,
    new_uuid,
};

const NOW: i64 = 1_900_000_000;
const DAY: i64 = 86_400;

#[derive(Debug)]
struct FixedClock(i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

struct Principal {
    key: Keypair,
    gid: Gid,
}

struct Fixture {
    root: Principal,
    site: Principal,
    other_site: Principal,
    alice: Principal,
    bob: Principal,
    slice: Principal,
}

fn principal(urn: &str, issuer: Option<&Principal>, bits: u32) -> Principal {
    let key = Keypair::generate(bits).unwrap();
    let urn = Urn::parse(urn).unwrap();
    let gid = UrnGidSpec {
        urn: &urn,
        uuid: &new_uuid().unwrap(),
        email: None,
        key: &key.public_key(),
        issuer: issuer.map(|p| &p.gid),
        signer: issuer.map_or(&key, |p| &p.key),
        validity: Validity::from_now(NOW - DAY, 365 * DAY),
    }
    .build()
    .unwrap();
    Principal { key, gid }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = principal("urn:publicid:IDN+plc+authority+sa", None, 2048);
        let site = principal(
            "urn:publicid:IDN+plc:princeton+authority+sa",
            Some(&root),
            2048,
        );
        let other_site = principal("urn:publicid:IDN+plc:other+authority+sa", Some(&root), 2048);
        let alice = principal(
            "urn:publicid:IDN+plc:princeton+user+alice",
            Some(&site),
            1024,
        );
        let bob = principal("urn:publicid:IDN+plc:princeton+user+bob", Some(&site), 1024);
        let slice = principal("urn:publicid:IDN+plc:princeton+slice+s1", Some(&site), 1024);
        Fixture {
            root,
            site,
            other_site,
            alice,
            bob,
            slice,
        }
    })
}

fn verifier_at(now: i64) -> Verifier {
    let roots = TrustedRoots::from_gids(vec![fixture().root.gid.clone()]).unwrap();
    Verifier::with_clock(roots, Policy::default(), Arc::new(FixedClock(now)))
}

fn verifier() -> Verifier {
    verifier_at(NOW)
}

fn privs(spec: &str) -> Vec<Privilege> {
    spec.split(',')
        .map(|p| match p.strip_suffix('+') {
            Some(name) => Privilege::new(name, true).unwrap(),
            None => Privilege::new(p, false).unwrap(),
        })
        .collect()
}

fn slice_credential(alg: SignatureAlgorithm) -> String {
    let f = fixture();
    issue(&GeniIssue {
        owner: &f.alice.gid,
        target: &f.slice.gid,
        privileges: &privs("refresh+,embed+,bind+,control+,info+"),
        expires: NOW + 30 * DAY,
        signer: &f.site.key,
        signer_gid: &f.site.gid,
        algorithm: alg,
    })
    .unwrap()
}

fn refused(text: &str) -> TrustError {
    verifier().verify_geni_credential_str(text).unwrap_err()
}

fn verify_error(text: &str) -> VerifyError {
    match refused(text) {
        TrustError::Verify(e) => e,
        other => panic!("expected a verification error, got {other}"),
    }
}

#[test]
fn issued_credentials_verify_in_both_algorithms() {
    let f = fixture();
    for alg in [SignatureAlgorithm::RsaSha1, SignatureAlgorithm::RsaSha256] {
        let text = slice_credential(alg);
        let v = verifier().verify_geni_credential_str(&text).unwrap();
        assert_eq!(v.caller().hrn().as_str(), "plc.princeton.alice");
        assert_eq!(v.object().hrn().as_str(), "plc.princeton.s1");
        assert_eq!(v.subject(), "plc.princeton.s1");
        assert_eq!(
            v.privileges().to_string(),
            "refresh,embed,bind,control,info"
        );
        assert!(v.delegate());
        assert_eq!(*v.issuer_key(), f.site.key.public_key());
        assert_eq!(v.root().as_str(), "plc");
        assert_eq!(v.expires(), NOW + 30 * DAY);
        let parsed = GeniCredential::parse(&text).unwrap();
        assert_eq!(parsed.outer().signature_algorithm(), alg);
    }
}

/// SFA 3.1 reads `X509Certificate` text unstripped into a PEM, which OpenSSL 1.1+ refuses when
/// the text ends in whitespace: what we sign must have none at either end (xmlsec1's own output
/// ends in a newline there).
#[test]
fn signer_certificates_have_no_whitespace_at_the_ends_for_sfa() {
    for alg in [SignatureAlgorithm::RsaSha256, SignatureAlgorithm::RsaSha1] {
        let text = slice_credential(alg);
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(at) = rest.find("<X509Certificate>") {
            let body = &rest[at + "<X509Certificate>".len()..];
            let end = body.find("</X509Certificate>").unwrap();
            let cert = &body[..end];
            // Lines inside are fine; whitespace at either end is what SFA chokes on.
            assert!(!cert.is_empty() && cert.trim() == cert, "{alg:?}: {cert:?}");
            seen += 1;
            rest = &body[end..];
        }
        assert!(seen > 0);
    }
}

#[test]
fn delegation_chains_verify_and_keep_earlier_signatures() {
    let f = fixture();
    let parent = slice_credential(SignatureAlgorithm::RsaSha1);
    let to_bob = delegate(
        &parent,
        &f.bob.gid,
        &privs("control+,info"),
        NOW + 10 * DAY,
        &f.alice.key,
        &f.alice.gid,
        SignatureAlgorithm::RsaSha256,
    )
    .unwrap();
    let v = verifier().verify_geni_credential_str(&to_bob).unwrap();
    assert_eq!(v.caller().hrn().as_str(), "plc.princeton.bob");
    assert_eq!(v.privileges().to_string(), "control,info");
    assert_eq!(*v.issuer_key(), f.alice.key.public_key());
    assert_eq!(v.geni().unwrap().chain_len(), 2);
    assert!(to_bob.contains(GeniCredential::parse(&parent).unwrap().outer().raw.as_str()));
    // Bob passes control on again (a chain of three).
    let back = delegate(
        &to_bob,
        &f.alice.gid,
        &privs("control"),
        NOW + 5 * DAY,
        &f.bob.key,
        &f.bob.gid,
        SignatureAlgorithm::RsaSha1,
    )
    .unwrap();
    let v = verifier().verify_geni_credential_str(&back).unwrap();
    assert_eq!(v.geni().unwrap().chain_len(), 3);
    assert!(!v.delegate());
    // info was not delegatable to bob, so bob cannot pass it on.
    let err = delegate(
        &to_bob,
        &f.alice.gid,
        &privs("info"),
        NOW + DAY,
        &f.bob.key,
        &f.bob.gid,
        SignatureAlgorithm::RsaSha1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("may delegate"), "{err}");
}

#[test]
fn delegate_refuses_non_owners_later_expiry_and_escalation() {
    let f = fixture();
    let parent = slice_credential(SignatureAlgorithm::RsaSha1);
    let d = |p: &str, exp: i64, who: &Principal| {
        delegate(
            &parent,
            &f.bob.gid,
            &privs(p),
            exp,
            &who.key,
            &who.gid,
            SignatureAlgorithm::RsaSha1,
        )
    };
    assert!(
        d("info", NOW + DAY, &f.bob)
            .unwrap_err()
            .to_string()
            .contains("owner")
    );
    assert!(
        d("info", NOW + 31 * DAY, &f.alice)
            .unwrap_err()
            .to_string()
            .contains("after")
    );
    assert!(
        d("authority", NOW + DAY, &f.alice)
            .unwrap_err()
            .to_string()
            .contains("may delegate")
    );
}

/// A delegation forged past `delegate`'s own checks, signed by `signer`.
fn forged(parent: &str, target: &Gid, p: &str, expires: i64, signer: &Principal) -> String {
    let f = fixture();
    let cred = GeniCredential::parse(parent).unwrap();
    delegate_unchecked(
        &cred,
        parent,
        &f.bob.gid,
        target,
        &privs(p),
        expires,
        &signer.key,
        &signer.gid,
        SignatureAlgorithm::RsaSha1,
    )
    .unwrap()
}

#[test]
fn verifier_refuses_forged_delegations() {
    let f = fixture();
    let parent = slice_credential(SignatureAlgorithm::RsaSha1);
    let good = forged(&parent, &f.slice.gid, "info", NOW + DAY, &f.alice);
    verifier().verify_geni_credential_str(&good).unwrap();
    let cases = [
        (
            forged(&parent, &f.slice.gid, "authority", NOW + DAY, &f.alice),
            "rights_escalation",
        ),
        (
            forged(&parent, &f.slice.gid, "info", NOW + 60 * DAY, &f.alice),
            "outlives_parent",
        ),
        (
            forged(&parent, &f.bob.gid, "info", NOW + DAY, &f.alice),
            "target_changed",
        ),
        // Bob signs a delegation of alice's credential: not the parent's owner.
        (
            forged(&parent, &f.slice.gid, "info", NOW + DAY, &f.bob),
            "signature_invalid",
        ),
    ];
    for (text, name) in cases {
        assert_eq!(verify_error(&text).name(), name);
    }
    // A parent whose privilege is not delegatable cannot be passed on at all.
    let fixed = issue(&GeniIssue {
        owner: &f.alice.gid,
        target: &f.slice.gid,
        privileges: &privs("info"),
        expires: NOW + DAY,
        signer: &f.site.key,
        signer_gid: &f.site.gid,
        algorithm: SignatureAlgorithm::RsaSha1,
    })
    .unwrap();
    let escalated = forged(&fixed, &f.slice.gid, "info", NOW + DAY, &f.alice);
    assert_eq!(verify_error(&escalated).name(), "rights_escalation");
    verifier().verify_geni_credential_str(&good).unwrap();
}

#[test]
fn root_credentials_need_an_authority_over_the_target() {
    let f = fixture();
    let by = |signer: &Principal| {
        issue(&GeniIssue {
            owner: &f.alice.gid,
            target: &f.slice.gid,
            privileges: &privs("info"),
            expires: NOW + DAY,
            signer: &signer.key,
            signer_gid: &signer.gid,
            algorithm: SignatureAlgorithm::RsaSha1,
        })
        .unwrap()
    };
    // The root and the site are authorities over plc:princeton; the slice itself is the target.
    for ok in [&f.root, &f.site, &f.slice] {
        verifier().verify_geni_credential_str(&by(ok)).unwrap();
    }
    assert_eq!(
        verify_error(&by(&f.other_site)).name(),
        "signer_not_authority"
    );
    // A user is no CA and no authority.
    assert_eq!(verify_error(&by(&f.alice)).name(), "not_ca");
}

#[test]
fn expired_credentials_are_refused() {
    let text = slice_credential(SignatureAlgorithm::RsaSha1);
    let late = verifier_at(NOW + 31 * DAY);
    let err = late.verify_geni_credential_str(&text).unwrap_err();
    assert_eq!(err.name(), "expired", "{err}");
}

// === attacks on a real gcf credential ===

fn gcf(name: &str) -> String {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/geni/gcf");
    std::fs::read_to_string(base.join(name)).unwrap()
}

fn gcf_verifier() -> Verifier {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/geni/gcf");
    let root = Gid::load(&base.join("root-ch-cert.pem")).unwrap();
    Verifier::new(
        TrustedRoots::from_gids(vec![root]).unwrap(),
        Policy::default(),
    )
}

/// Refused, with `want` in the message; the untouched credential still verifies afterwards.
fn attack(text: &str, want: &str) {
    let v = gcf_verifier();
    let original = gcf("fixslice-alice.cred.xml");
    v.verify_geni_credential_str(&original).unwrap();
    assert_ne!(text, original);
    let err = v.verify_geni_credential_str(text).unwrap_err().to_string();
    assert!(err.contains(want), "wanted {want:?}, got {err}");
    v.verify_geni_credential_str(&original).unwrap();
}

fn split_credential(text: &str) -> (&str, &str, &str) {
    let start = text.find("<credential ").unwrap();
    let end = text.find("</credential>").unwrap() + "</credential>".len();
    (&text[..start], &text[start..end], &text[end..])
}

#[test]
fn signature_wrapping_is_refused() {
    let text = gcf("fixslice-alice.cred.xml");
    let (head, signed, tail) = split_credential(&text);
    let evil = signed.replacen("<name>info</name>", "<name>authority</name>", 1);
    // A second credential with the same xml:id (the signed one moved after the signatures).
    attack(
        &format!("{head}{evil}{tail}").replacen(
            "</signed-credential>",
            &format!("{signed}</signed-credential>"),
            1,
        ),
        "occurs more than once",
    );
    // The signed element moved into the evil one's extensions, the evil one renamed.
    let moved = evil
        .replacen("xml:id=\"ref0\"", "xml:id=\"evil\"", 1)
        .replacen(
            "</privileges>",
            &format!("</privileges><extensions>{signed}</extensions>"),
            1,
        );
    attack(
        &format!("{head}{moved}{tail}"),
        "not a credential of the chain",
    );
    // The signed element moved into a forged parent: the outer link then has no signature.
    let wrapped = evil
        .replacen("xml:id=\"ref0\"", "xml:id=\"evil\"", 1)
        .replacen(
            "</credential>",
            &format!("<parent>{signed}</parent></credential>"),
            1,
        );
    attack(&format!("{head}{wrapped}{tail}"), "has no signature");
}

#[test]
fn references_to_other_elements_are_refused() {
    let text = gcf("fixslice-alice.cred.xml");
    attack(
        &text.replacen("URI=\"#ref0\"", "URI=\"#Sig_ref0\"", 1),
        "not a credential",
    );
    attack(
        &text.replacen("URI=\"#ref0\"", "URI=\"\"", 1),
        "same-document",
    );
    attack(
        &text.replacen("URI=\"#ref0\"", "URI=\"#xpointer(id('ref0'))\"", 1),
        "same-document",
    );
    attack(
        &text.replacen("URI=\"#ref0\"", "URI=\"#nothere\"", 1),
        "not in this document",
    );
    attack(
        &text.replacen("<serial>", "<serial Id=\"ref0\">", 1),
        "only xml:id",
    );
}

#[test]
fn comments_and_whitespace_inside_the_signed_element_are_refused() {
    let text = gcf("fixslice-alice.cred.xml");
    attack(
        &text.replacen("<name>info</name>", "<name>in<!---->fo</name>", 1),
        "comments",
    );
    attack(
        &text.replacen("<type>privilege</type>", "<type>privilege</type>\n", 1),
        "digest mismatch",
    );
    attack(
        &text.replacen("<name>info</name>", "<name> info</name>", 1),
        "digest mismatch",
    );
}

#[test]
fn namespaced_credential_elements_are_refused() {
    let text = gcf("fixslice-alice.cred.xml");
    attack(
        &text.replacen(
            "<credential xml:id",
            "<credential xmlns=\"urn:x\" xml:id",
            1,
        ),
        "namespace",
    );
    attack(
        &text.replacen(
            "<signed-credential ",
            "<signed-credential xmlns=\"urn:x\" ",
            1,
        ),
        "the credential schema has none",
    );
}

#[test]
fn doctype_and_entities_are_refused_anywhere() {
    let text = gcf("fixslice-alice.cred.xml");
    let body = text.split_once("?>").unwrap().1;
    attack(
        &format!(
            "<?xml version=\"1.0\"?><!DOCTYPE signed-credential [<!ENTITY x \"info\">]>{body}"
        ),
        "DOCTYPE",
    );
    attack(
        &text.replacen("<name>info</name>", "<name>&x;</name>", 1),
        "entity",
    );
    attack(
        &text.replacen("</signatures>", "</signatures><!DOCTYPE x>", 1),
        "DOCTYPE",
    );
}

#[test]
fn unknown_transforms_and_algorithms_are_refused() {
    let text = gcf("fixslice-alice.cred.xml");
    let enveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
    attack(
        &text.replacen(enveloped, "http://www.w3.org/TR/1999/REC-xpath-19991116", 1),
        "unsupported transform",
    );
    attack(
        &text.replacen(
            "</Transforms>",
            "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></Transforms>",
            1,
        ),
        "unsupported transform",
    );
    attack(
        &text.replacen("xmldsig#rsa-sha1", "xmldsig#hmac-sha1", 1),
        "unsupported signature method",
    );
    attack(
        &text.replacen("xmldsig#sha1", "xmldsig-more#md5", 1),
        "unsupported digest method",
    );
    attack(
        &text.replacen(
            "REC-xml-c14n-20010315\"",
            "REC-xml-c14n-20010315#WithComments\"",
            1,
        ),
        "unsupported canonicalization",
    );
}

#[test]
fn a_key_value_that_differs_from_the_chain_is_refused() {
    let text = gcf("fixslice-alice.cred.xml");
    let other = Keypair::generate(2048).unwrap();
    let rsa = other.pkey().rsa().unwrap();
    use base64::Engine;
    let modulus = base64::engine::general_purpose::STANDARD.encode(rsa.n().to_vec());
    let start = text.find("<Modulus>").unwrap() + "<Modulus>".len();
    let end = text.find("</Modulus>").unwrap();
    let swapped = format!("{}{modulus}{}", &text[..start], &text[end..]);
    attack(&swapped, "KeyValue is not the signer's key");
    // The signer certificate replaced by one that does not chain to the trusted root.
    let evil_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/geni/sfa-sha256/untrusted-root-evil.gid");
    let evil = Gid::load(&evil_dir).unwrap();
    let evil_b64: String = evil
        .certificate()
        .to_pem()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let cstart = text.find("<X509Certificate>").unwrap() + "<X509Certificate>".len();
    let cend = text.find("</X509Certificate>").unwrap();
    let replaced = format!("{}{evil_b64}{}", &text[..cstart], &text[cend..]);
    attack(&replaced, "bad signature");
}

// === mutation smoke test (the fuzz target, cheaply, in every test run) ===

/// Random byte flips, deletions and duplications of the vector credentials: each must parse and
/// verify to a verdict or an error, never a panic; a mutation that is still accepted (only
/// possible outside the signed bytes) must say exactly what the original says.
#[test]
fn mutated_vectors_never_panic_nor_change_meaning() {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/geni");
    let files = [
        "gcf/alice-user.cred.xml",
        "gcf/fixslice-alice.cred.xml",
        "gcf/fixslice-delegated-to-bob.cred.xml",
        "sfa-sha256/slice1-alice.cred.xml",
        "sfa-sha256/slice1-delegated-to-bob.cred.xml",
    ];
    let v = gcf_verifier();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| -> usize {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(seed >> 33).unwrap() % n.max(1)
    };
    for file in files {
        let original = std::fs::read(base.join(file)).unwrap();
        let meaning = |c: &crate::VerifiedCredential| {
            (
                c.subject().to_owned(),
                c.caller().hrn().clone(),
                c.privileges().clone(),
                c.expires(),
                c.issuer_key().clone(),
            )
        };
        let said = v
            .verify_geni_credential_str(std::str::from_utf8(&original).unwrap())
            .ok()
            .map(|c| meaning(&c));
        for _ in 0..150 {
            let mut m = original.clone();
            let at = next(m.len());
            match next(3) {
                0 => m[at] ^= 1 << next(8),
                1 => {
                    let end = (at + next(64)).min(m.len());
                    m.drain(at..end);
                }
                _ => {
                    let end = (at + next(64)).min(m.len());
                    let piece = m[at..end].to_vec();
                    m.splice(at..at, piece);
                }
            }
            if m == original {
                continue;
            }
            let Ok(text) = String::from_utf8(m) else {
                continue;
            };
            let _ = GeniCredential::parse(&text);
            if let Ok(ok) = v.verify_geni_credential_str(&text) {
                assert_eq!(
                    Some(meaning(&ok)),
                    said,
                    "{file}: a mutation changed the meaning"
                );
            }
        }
    }
}
