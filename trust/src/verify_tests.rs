//! One negative test per verification rule and per rejection variant, on objects forged with the
//! crate's own constructors, plus the positive paths, the digest policy and the cache.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use geni_xmlrpc::Struct;

use super::*;
use crate::cert::{CertSpec, Validity};
use crate::credential::CredentialFields;
use crate::{CertMode, ChainForm, Hierarchy, Keypair, RecordType, delegate_credential};

const DAY: i64 = 86_400;

#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A modern hierarchy `planetlab → planetlab.us → {planetlab.us.pl, planetlab.us.p}` with users
/// alice and bob and slice `planetlab.us.pl.s1`, made once for all tests.
struct World {
    _dir: tempfile::TempDir,
    h: Hierarchy,
    alice_key: Keypair,
    alice: Gid,
    bob: Gid,
    slice_key: Keypair,
    slice: Gid,
    attacker: Keypair,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(dir.path().join("authorities"));
        h.create_authority(&hrn("planetlab.us.pl"), true).unwrap();
        h.create_authority(&hrn("planetlab.us.p"), false).unwrap();
        let alice_key = Keypair::generate(2048).unwrap();
        let alice = h
            .create_gid(&hrn("planetlab.us.pl.alice"), None, &alice_key.public_key())
            .unwrap();
        let bob_key = Keypair::generate(2048).unwrap();
        let bob = h
            .create_gid(&hrn("planetlab.us.pl.bob"), None, &bob_key.public_key())
            .unwrap();
        let slice_key = Keypair::generate(2048).unwrap();
        let slice = h
            .create_gid(&hrn("planetlab.us.pl.s1"), None, &slice_key.public_key())
            .unwrap();
        World {
            _dir: dir,
            h,
            alice_key,
            alice,
            bob,
            slice_key,
            slice,
            attacker: Keypair::generate(2048).unwrap(),
        }
    })
}

fn hrn(s: &str) -> Hrn {
    Hrn::parse(s).unwrap()
}

fn roots() -> TrustedRoots {
    let root = world().h.authority(&hrn("planetlab")).unwrap().gid;
    TrustedRoots::from_gids(vec![root]).unwrap()
}

fn verifier() -> Verifier {
    Verifier::new(roots(), Policy::default())
}

fn now() -> i64 {
    SystemClock.now()
}

fn auth(name: &str) -> crate::AuthorityInfo {
    world().h.authority(&hrn(name)).unwrap()
}

/// A GID for `name` with issuer `issuer`, signed by `signer`, with `parent` as its chain.
fn forged_gid(name: &str, issuer: &str, signer: &Keypair, parent: Gid, validity: Validity) -> Gid {
    let key = Keypair::generate(1024).unwrap().public_key();
    Gid::create(
        &hrn(name),
        "42",
        &key,
        issuer,
        signer,
        Some(parent),
        validity,
        CertMode::Modern,
    )
    .unwrap()
}

fn year() -> Validity {
    Validity::from_now(now(), 365 * DAY)
}

fn slice_cred(delegate: bool) -> Credential {
    let w = world();
    let rights = RightList::for_record_type(RecordType::Slice);
    let mut c =
        w.h.issue_credential(&w.alice, &w.slice, &rights, delegate, 30 * DAY)
            .unwrap();
    if delegate {
        // issue_credential honours the flag; keep the object for clarity in failures.
        assert!(c.delegate());
    } else {
        c =
            w.h.issue_credential(&w.alice, &w.slice, &rights, false, 30 * DAY)
                .unwrap();
    }
    c
}

fn verify_err(r: Result<impl std::fmt::Debug, VerifyError>) -> VerifyError {
    r.expect_err("must be rejected")
}

// === positives ===

#[test]
fn modern_objects_verify_under_default_and_legacy_policy() {
    let w = world();
    let legacy = Verifier::new(
        roots(),
        Policy {
            legacy_digests: true,
            ..Policy::default()
        },
    );
    for v in [verifier(), legacy] {
        let g = v.verify_gid(&w.alice).unwrap();
        assert_eq!(g.root().as_str(), "planetlab");
        let c = v.verify_credential(&slice_cred(false)).unwrap();
        assert_eq!(c.caller().hrn().as_str(), "planetlab.us.pl.alice");
        assert_eq!(c.object().hrn().as_str(), "planetlab.us.pl.s1");
        assert!(
            c.can_perform(crate::Operation::StartSlice) && !c.can_perform(crate::Operation::Reboot)
        );
        let attrs = Struct::new().with("name", "pl_s1");
        let t =
            w.h.issue_ticket(
                &w.alice,
                &w.slice,
                &attrs,
                &Struct::new(),
                Some(&hrn("planetlab.us.pl.n1")),
                DAY,
            )
            .unwrap();
        let text = t.to_chain_string(ChainForm::Plain).unwrap();
        let vt = v
            .verify_ticket_str(&text, Some(&hrn("planetlab.us.pl.n1")))
            .unwrap();
        assert_eq!(
            vt.ticket()
                .attributes()
                .get("name")
                .and_then(|x| x.as_str()),
            Some("pl_s1")
        );
        let auth_cred = w.h.authority_credential(&hrn("planetlab.us.pl")).unwrap();
        v.verify_credential(&auth_cred).unwrap();
        v.verify_ticket(
            &w.h.authority_ticket(&hrn("planetlab.us.pl")).unwrap(),
            None,
        )
        .unwrap();
    }
}

#[test]
fn delegation_within_the_rules_verifies() {
    let w = world();
    let parent = slice_cred(true);
    let rights: RightList = "control,info".parse().unwrap();
    let child = delegate_credential(
        &parent,
        &w.slice_key,
        &w.bob,
        &rights,
        false,
        Validity::from_now(now(), DAY),
        CertMode::Modern,
    )
    .unwrap();
    let v = verifier().verify_credential(&child).unwrap();
    assert_eq!(v.caller().hrn().as_str(), "planetlab.us.pl.bob");
    assert_eq!(v.privileges().to_string(), "control,info");
}

// === rule 1: signatures and issuer names ===

#[test]
fn bad_parent_signature_is_refused() {
    let pl = auth("planetlab.us.pl");
    let g = forged_gid(
        "planetlab.us.pl.eve",
        "planetlab.us.pl",
        &world().attacker,
        pl.gid,
        year(),
    );
    let e = verify_err(verifier().verify_gid(&g));
    assert_eq!(
        e,
        VerifyError::NotSignedByParent {
            subject: "planetlab.us.pl.eve".into(),
            parent: "planetlab.us.pl".into()
        }
    );
}

#[test]
fn wrong_issuer_name_is_refused() {
    let pl = auth("planetlab.us.pl");
    let g = forged_gid(
        "planetlab.us.pl.eve",
        "planetlab.us.plx",
        &pl.key,
        pl.gid,
        year(),
    );
    assert!(
        matches!(verify_err(verifier().verify_gid(&g)), VerifyError::IssuerMismatch { issuer, .. } if issuer == "planetlab.us.plx")
    );
}

#[test]
fn tampered_payload_is_refused() {
    let w = world();
    let pem = w.alice.certificate().to_pem().unwrap();
    let der = w.alice.certificate().to_der().unwrap();
    // The hrn inside the subjectAltName payload, not the subject CN.
    let needle = b"alice</string>";
    let at = der.windows(needle.len()).position(|x| x == needle).unwrap();
    let mut bad = der.clone();
    bad[at..at + 5].copy_from_slice(b"admin");
    let forged = Certificate::from_der(&bad).unwrap();
    let chain = w.alice.to_chain_string(ChainForm::Separator).unwrap();
    let text = chain.replacen(&pem, &forged.to_pem().unwrap(), 1);
    let err = verifier().verify_gid_str(&text).unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::NotSignedByParent { ref subject, .. }) if subject == "planetlab.us.pl.alice"),
        "{err}"
    );
}

// === rule 2: dates ===

#[test]
fn expired_and_not_yet_valid_are_refused() {
    let pl = auth("planetlab.us.pl");
    let past = Validity {
        not_before: now() - 10 * DAY,
        not_after: now() - DAY,
    };
    let g = forged_gid(
        "planetlab.us.pl.old",
        "planetlab.us.pl",
        &pl.key,
        pl.gid.clone(),
        past,
    );
    assert!(
        matches!(verify_err(verifier().verify_gid(&g)), VerifyError::Expired { subject, .. } if subject == "planetlab.us.pl.old")
    );
    let future = Validity {
        not_before: now() + DAY,
        not_after: now() + 10 * DAY,
    };
    let g = forged_gid(
        "planetlab.us.pl.new",
        "planetlab.us.pl",
        &pl.key,
        pl.gid,
        future,
    );
    assert!(
        matches!(verify_err(verifier().verify_gid(&g)), VerifyError::NotYetValid { subject, .. } if subject == "planetlab.us.pl.new")
    );
}

#[test]
fn clock_skew_is_tolerated_within_policy() {
    let pl = auth("planetlab.us.pl");
    let soon = Validity {
        not_before: now() + 60,
        not_after: now() + DAY,
    };
    let g = forged_gid(
        "planetlab.us.pl.skew",
        "planetlab.us.pl",
        &pl.key,
        pl.gid,
        soon,
    );
    verifier().verify_gid(&g).unwrap();
    let strict = Verifier::new(
        roots(),
        Policy {
            clock_skew_secs: 0,
            ..Policy::default()
        },
    );
    assert!(matches!(
        verify_err(strict.verify_gid(&g)),
        VerifyError::NotYetValid { .. }
    ));
}

// === rule 3: trusted roots ===

#[test]
fn untrusted_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = Hierarchy::new(dir.path());
    let root = other.create_authority(&hrn("planetlab"), false).unwrap();
    let v = Verifier::new(
        TrustedRoots::from_gids(vec![root.gid]).unwrap(),
        Policy::default(),
    );
    assert!(
        matches!(verify_err(v.verify_gid(&world().alice)), VerifyError::UntrustedRoot { subject } if subject == "planetlab")
    );
}

#[test]
fn root_that_is_not_an_authority_of_the_leaf_is_refused() {
    let root = auth("planetlab");
    let key = Keypair::generate(1024).unwrap().public_key();
    let g = Gid::create(
        &hrn("elsewhere.mallory"),
        "1",
        &key,
        "planetlab",
        &root.key,
        None,
        year(),
        CertMode::Modern,
    )
    .unwrap();
    assert!(
        matches!(verify_err(verifier().verify_gid(&g)), VerifyError::RootNotAuthority { root, hrn } if root == "planetlab" && hrn == "elsewhere.mallory")
    );
}

// === rule 4: GID names ===

#[test]
fn sibling_prefix_and_foreign_hrns_are_refused() {
    let p = auth("planetlab.us.p");
    let g = forged_gid("planetlab.us.pl.x", "planetlab.us.p", &p.key, p.gid, year());
    assert_eq!(
        verify_err(verifier().verify_gid(&g)),
        VerifyError::HrnNotUnderParent {
            subject: "planetlab.us.pl.x".into(),
            parent: "planetlab.us.p".into()
        }
    );
    let pl = auth("planetlab.us.pl");
    let g = forged_gid(
        "planetlab.eu.mallory",
        "planetlab.us.pl",
        &pl.key,
        pl.gid,
        year(),
    );
    assert!(
        matches!(verify_err(verifier().verify_gid(&g)), VerifyError::HrnNotUnderParent { subject, .. } if subject == "planetlab.eu.mallory")
    );
}

// === rule 5: credentials ===

#[test]
fn missing_delegate_bit_is_refused() {
    let w = world();
    let parent = slice_cred(false);
    let rights: RightList = "control".parse().unwrap();
    let child = delegate_credential(
        &parent,
        &w.slice_key,
        &w.bob,
        &rights,
        false,
        Validity::from_now(now(), DAY),
        CertMode::Modern,
    )
    .unwrap();
    let err = verify_err(verifier().verify_credential(&child));
    assert!(
        matches!(&err, VerifyError::MissingDelegateBit { parent, holder, parent_holder, .. }
            if parent == "planetlab.us.pl.s1" && holder == "planetlab.us.pl.bob" && parent_holder == "planetlab.us.pl.alice"),
        "{err:?}"
    );
    // The message names who held the parent and who was to receive it, not the same hrn twice.
    assert_eq!(
        err.to_string(),
        "planetlab.us.pl.s1: the parent credential planetlab.us.pl.s1 held by \
         planetlab.us.pl.alice does not allow delegation (delegate bit not set), so it cannot be \
         passed on to planetlab.us.pl.bob"
    );
}

#[test]
fn rights_escalation_is_refused() {
    let w = world();
    let parent = slice_cred(true);
    let rights: RightList = "authority".parse().unwrap();
    let child = delegate_credential(
        &parent,
        &w.slice_key,
        &w.bob,
        &rights,
        false,
        Validity::from_now(now(), DAY),
        CertMode::Modern,
    )
    .unwrap();
    assert!(
        matches!(verify_err(verifier().verify_credential(&child)), VerifyError::RightsEscalation { rights, .. } if rights == "authority")
    );
}

#[test]
fn child_outliving_parent_is_refused() {
    let w = world();
    let parent = slice_cred(true);
    let rights: RightList = "info".parse().unwrap();
    let long = Validity::from_now(now(), 400 * DAY);
    let child = delegate_credential(
        &parent,
        &w.slice_key,
        &w.bob,
        &rights,
        false,
        long,
        CertMode::Modern,
    )
    .unwrap();
    assert!(matches!(
        verify_err(verifier().verify_credential(&child)),
        VerifyError::OutlivesParent { .. }
    ));
}

#[test]
fn a_child_may_outlive_its_parent_by_the_clock_skew_only() {
    // 2008 stamps each certificate `now … now + 5 years`: a delegation made a second after its
    // parent outlives it by a second, and must verify; the verdict still expires with the parent.
    let w = world();
    let parent = slice_cred(true);
    let parent_end = parent.certificate().validity().not_after;
    let rights: RightList = "info".parse().unwrap();
    let delegated = |by: i64| {
        let validity = Validity {
            not_before: now() - 10,
            not_after: parent_end + by,
        };
        delegate_credential(
            &parent,
            &w.slice_key,
            &w.bob,
            &rights,
            false,
            validity,
            CertMode::Modern,
        )
        .unwrap()
    };
    let skew = Policy::default().clock_skew_secs;
    for by in [1, skew] {
        let v = verifier().verify_credential(&delegated(by)).unwrap();
        assert!(
            v.expires() <= parent_end,
            "verdict outlives the parent by {by}s"
        );
    }
    assert!(matches!(
        verify_err(verifier().verify_credential(&delegated(skew + 1))),
        VerifyError::OutlivesParent { .. }
    ));
}

#[test]
fn object_outside_parent_authority_is_refused() {
    // Signed by planetlab.us.pl with its authority credential as parent, but for an object
    // under planetlab.us.p.
    let w = world();
    let pl = auth("planetlab.us.pl");
    let p = auth("planetlab.us.p");
    let key = Keypair::generate(1024).unwrap();
    let foreign = Gid::create(
        &hrn("planetlab.us.p.x"),
        "7",
        &key.public_key(),
        "planetlab.us.p",
        &p.key,
        Some(p.gid),
        year(),
        CertMode::Modern,
    )
    .unwrap();
    let rights = RightList::for_record_type(RecordType::Slice);
    let fields = CredentialFields {
        caller: &w.alice,
        object: &foreign,
        privileges: &rights,
        delegate: false,
    };
    let parent = w.h.authority_credential(&hrn("planetlab.us.pl")).unwrap();
    let c = Credential::create(
        &fields,
        &key.public_key(),
        "planetlab.us.pl",
        &pl.key,
        Some(parent),
        Validity::from_now(now(), DAY),
        CertMode::Modern,
    )
    .unwrap();
    assert!(matches!(
        verify_err(verifier().verify_credential(&c)),
        VerifyError::ObjectOutsideAuthority { object, parent_object, .. } if object == "planetlab.us.p.x" && parent_object == "planetlab.us.pl"
    ));
}

#[test]
fn credential_without_caller_is_refused() {
    let pl = auth("planetlab.us.pl");
    let w = world();
    let payload = crate::gid::encode_payload(
        &Struct::new()
            .with(
                "gidObject",
                w.slice.to_chain_string(ChainForm::Separator).unwrap(),
            )
            .with("privileges", "info"),
        true,
        "test",
    )
    .unwrap();
    let cert = CertSpec {
        subject: "planetlab.us.pl.s1",
        issuer: "planetlab.us.pl",
        subject_key: &w.slice_key.public_key(),
        signer: &pl.key,
        payload: Some(&payload),
        validity: year(),
        mode: CertMode::Modern,
    }
    .build()
    .unwrap();
    let text = cert.to_pem().unwrap();
    let c = Credential::parse(&text).unwrap();
    assert_eq!(
        verify_err(verifier().verify_credential(&c)),
        VerifyError::MissingCallerGid {
            subject: "planetlab.us.pl.s1".into()
        }
    );
}

// === rule 6: tickets ===

#[test]
fn ticket_for_another_node_is_refused() {
    let w = world();
    let t =
        w.h.issue_ticket(
            &w.alice,
            &w.slice,
            &Struct::new(),
            &Struct::new(),
            Some(&hrn("planetlab.us.pl.a")),
            DAY,
        )
        .unwrap();
    let text = t.to_chain_string(ChainForm::Separator).unwrap();
    let v = verifier();
    v.verify_ticket_str(&text, Some(&hrn("planetlab.us.pl.a")))
        .unwrap();
    // The cached verdict must not skip the node check.
    let err = v
        .verify_ticket_str(&text, Some(&hrn("planetlab.us.pl.b")))
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::WrongNode { ref target, ref node, .. }) if target == "planetlab.us.pl.a" && node == "planetlab.us.pl.b"),
        "{err}"
    );
}

#[test]
fn ticket_signed_by_another_authority_is_refused() {
    let w = world();
    let p = auth("planetlab.us.p");
    let fields = crate::ticket::TicketFields {
        caller: &w.alice,
        object: &w.slice,
        attributes: &Struct::new(),
        rspec: &Struct::new(),
        delegate: false,
        target: None,
    };
    let parent = w.h.authority_ticket(&hrn("planetlab.us.p")).unwrap();
    let t = Ticket::create(
        &fields,
        w.slice.public_key(),
        "planetlab.us.p",
        &p.key,
        Some(parent),
        Validity::from_now(now(), DAY),
        CertMode::Modern,
    )
    .unwrap();
    assert!(
        matches!(verify_err(verifier().verify_ticket(&t, None)), VerifyError::ObjectOutsideAuthority { parent_object, .. } if parent_object == "planetlab.us.p")
    );
}

// === policy ===

#[test]
fn md5_and_small_keys_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::new(dir.path()).with_mode(CertMode::Compat2008);
    let root = h.create_authority(&hrn("planetlab.us"), true).unwrap();
    let top = h.authority(&hrn("planetlab")).unwrap().gid;
    assert_eq!(
        root.gid.certificate().signature_algorithm(),
        "md5WithRSAEncryption"
    );
    assert_eq!(root.gid.certificate().version(), 1);
    let roots = TrustedRoots::from_gids(vec![top]).unwrap();
    let strict = Verifier::new(roots.clone(), Policy::default());
    assert!(
        matches!(verify_err(strict.verify_gid(&root.gid)), VerifyError::WeakDigest { algorithm, .. } if algorithm == "md5WithRSAEncryption")
    );
    let legacy = Verifier::new(
        roots.clone(),
        Policy {
            legacy_digests: true,
            ..Policy::default()
        },
    );
    legacy.verify_gid(&root.gid).unwrap();
    let big_keys = Verifier::new(
        roots,
        Policy {
            legacy_digests: true,
            min_rsa_bits: 2048,
            ..Policy::default()
        },
    );
    assert!(matches!(
        verify_err(big_keys.verify_gid(&root.gid)),
        VerifyError::WeakKey {
            bits: 1024,
            min: 2048,
            ..
        }
    ));
}

// === parsing ===

#[test]
fn truncated_garbage_empty_and_overlong_inputs_are_decode_errors() {
    let v = verifier();
    let text = world().alice.to_chain_string(ChainForm::Separator).unwrap();
    for bad in [&text[..text.len() / 2], "garbage", "", "-----parent-----"] {
        let err = v.verify_gid_str(bad).unwrap_err();
        assert!(matches!(err, TrustError::Decode { .. }), "{bad:.20}: {err}");
    }
    let pem = world().alice.certificate().to_pem().unwrap();
    let long = vec![pem; MAX_CHAIN_LEN + 1].join("");
    let err = v.verify_gid_str(&long).unwrap_err();
    assert!(err.to_string().contains("too many"), "{err}");
}

// === cache ===

#[test]
fn cached_verdicts_expire_and_roots_reload_clears_them() {
    let w = world();
    let clock = Arc::new(TestClock(AtomicI64::new(now())));
    let v = Verifier::with_clock(roots(), Policy::default(), clock.clone());
    let cred = slice_cred(false);
    let text = cred.to_chain_string(ChainForm::Separator).unwrap();
    let first = v.verify_credential_str(&text).unwrap();
    let again = v.verify_credential_str(&text).unwrap();
    assert!(
        Arc::ptr_eq(&first.0, &again.0),
        "second call must come from the cache"
    );
    // Past the credential's expiry the cached verdict is not served.
    clock.0.store(
        first.expires() + 2 * v.policy().clock_skew_secs,
        Ordering::SeqCst,
    );
    let err = v.verify_credential_str(&text).unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::Expired { .. })),
        "{err}"
    );
    // A reload to other roots forgets verdicts.
    clock.0.store(now(), Ordering::SeqCst);
    v.verify_credential_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = Hierarchy::new(dir.path())
        .create_authority(&hrn("planetlab"), false)
        .unwrap();
    v.replace_roots(TrustedRoots::from_gids(vec![other.gid]).unwrap());
    assert!(v.verify_credential_str(&text).is_err());
    let _ = &w.alice_key;
}

// === sliver credentials ===

#[test]
fn a_node_issues_sliver_credentials_under_its_node_credential() {
    let w = world();
    let node_key = Keypair::generate(2048).unwrap();
    let node =
        w.h.create_gid(&hrn("planetlab.us.pl.node1"), None, &node_key.public_key())
            .unwrap();
    let rights: RightList = "control,info".parse().unwrap();
    let node_cred =
        w.h.issue_credential(&node, &node, &rights, true, 30 * DAY)
            .unwrap();
    let validity = Validity::from_now(now(), DAY);
    let sliver = crate::gid_under(
        &node,
        &node_key,
        &hrn("planetlab.us.pl.node1.pl_s1"),
        "7",
        &node_key.public_key(),
        validity,
        CertMode::Modern,
    )
    .unwrap();
    let cred = crate::credential_under(
        &node_cred,
        &node_key,
        &w.alice,
        &sliver,
        &rights,
        false,
        validity,
        CertMode::Modern,
    )
    .unwrap();
    let v = verifier().verify_credential(&cred).unwrap();
    assert_eq!(v.object().hrn().as_str(), "planetlab.us.pl.node1.pl_s1");
    assert_eq!(v.object().gid().uuid(), Some("7"));
    // The node recognises what it issued by the signing key.
    assert!(v.issuer_key() == &node_key.public_key());
    let slice = verifier().verify_credential(&slice_cred(false)).unwrap();
    assert!(slice.issuer_key() == auth("planetlab.us.pl").gid.public_key());
    assert_eq!(v.caller().hrn().as_str(), "planetlab.us.pl.alice");
    assert!(
        v.can_perform(crate::Operation::StopSlice) && !v.can_perform(crate::Operation::GetTicket)
    );
    // A sliver named under another node is outside the node credential's object.
    let other = crate::gid_under(
        &node,
        &node_key,
        &hrn("planetlab.us.pl.node2.pl_s1"),
        "7",
        &node_key.public_key(),
        validity,
        CertMode::Modern,
    )
    .unwrap();
    assert!(matches!(
        verify_err(verifier().verify_gid(&other)),
        VerifyError::HrnNotUnderParent { .. }
    ));
    let _ = &w.slice_key;
}

#[test]
fn an_issuer_issues_what_the_hierarchy_issues_with_one_signature_each() {
    let w = world();
    let v = verifier();
    let issuer = w.h.issuer(&hrn("planetlab.us.pl")).unwrap();
    assert_eq!(issuer.hrn(), &hrn("planetlab.us.pl"));
    let rights = RightList::for_record_type(RecordType::Slice);
    let cached = issuer
        .issue_credential(&w.alice, &w.slice, &rights, false, 30 * DAY)
        .unwrap();
    let fresh =
        w.h.issue_credential(&w.alice, &w.slice, &rights, false, 30 * DAY)
            .unwrap();
    for c in [&cached, &fresh] {
        let text = c.to_chain_string(ChainForm::Separator).unwrap();
        let ok = v.verify_credential_str(&text).unwrap();
        assert_eq!(ok.object().hrn(), &hrn("planetlab.us.pl.s1"));
        assert_eq!(ok.privileges(), &rights);
        assert_eq!(c.certificate().issuer(), "planetlab.us.pl");
        assert_eq!(c.certificate().public_key(), &w.slice_key.public_key());
        assert_eq!(c.parent().unwrap().subject(), "planetlab.us.pl");
    }
    // The parents are made once: two credentials share the same parent certificate.
    let again = issuer
        .issue_credential(&w.bob, &w.slice, &rights, false, DAY)
        .unwrap();
    assert_eq!(
        again.parent().unwrap().certificate().der(),
        cached.parent().unwrap().certificate().der()
    );

    let node = hrn("planetlab.us.pl.node1");
    let attrs = Struct::new().with("name", "pl_s1");
    let ticket = issuer
        .issue_ticket(&w.alice, &w.slice, &attrs, &Struct::new(), Some(&node), DAY)
        .unwrap();
    let text = ticket.to_chain_string(ChainForm::Separator).unwrap();
    let ok = v.verify_ticket_str(&text, Some(&node)).unwrap();
    assert_eq!(ok.caller().hrn(), &hrn("planetlab.us.pl.alice"));
    assert_eq!(ok.ticket().attributes(), &attrs);
    assert_eq!(ticket.certificate().public_key(), &w.slice_key.public_key());

    // Nothing outlives the cached parents, and only objects directly under it are issued.
    let long = issuer
        .issue_credential(&w.alice, &w.slice, &rights, false, 50 * 365 * DAY)
        .unwrap();
    assert!(long.certificate().validity().not_after <= issuer.expires());
    let other = w.h.issuer(&hrn("planetlab.us")).unwrap();
    assert!(
        other
            .issue_credential(&w.alice, &w.slice, &rights, false, DAY)
            .is_err()
    );
}

/// Entries and their bytes follow inserts, replacements, expiry, eviction and clearing.
#[test]
fn cache_map_counts_entries_and_bytes() {
    let mut map = CacheMap::default();
    let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
    map.insert(a, 1, 10, 100);
    map.insert(a, 2, 20, 150);
    assert_eq!(
        (map.len(), map.bytes),
        (1, 150),
        "the same digest replaces its entry"
    );
    assert_eq!(map.get(&a).map(|e| (e.verdict, e.expires)), Some((2, 20)));
    map.insert(b, 3, 30, 10);
    map.insert(c, 4, 5, 1);
    assert_eq!((map.len(), map.bytes), (3, 161));
    map.retain_live(15);
    assert_eq!((map.len(), map.bytes), (2, 160), "c expired at 5");
    assert!(map.get(&c).is_none());
    map.evict_one();
    map.evict_one();
    assert_eq!((map.len(), map.bytes), (0, 0));
    map.evict_one();
    map.insert(c, 5, 50, 7);
    map.clear();
    assert_eq!((map.len(), map.bytes), (0, 0));
    assert!(map.get(&c).is_none());
}

// See: issue 13 ("40 copies of one valid credential behind 1-3 MiB of distinct leading junk
// grew the node from 17.6 MB to 128 MB").
#[test]
fn r13_the_cache_is_keyed_by_the_chain_not_the_text() {
    let v = verifier();
    let cred = slice_cred(false);
    let separator = cred.to_chain_string(ChainForm::Separator).unwrap();
    let plain = cred.to_chain_string(ChainForm::Plain).unwrap();
    let first = v.verify_credential_str(&separator).unwrap();
    let (entries, bytes) = v.cache_usage();
    assert_eq!(entries, 1);
    assert!(bytes > 0 && bytes < 64 * 1024, "{bytes}");
    // Another form of the same certificates is the same entry.
    let reformatted = format!("\n\n{}\r\n", plain.replace('\n', "\r\n"));
    for text in [&plain, &reformatted] {
        let again = v.verify_credential_str(text).unwrap();
        assert!(Arc::ptr_eq(&first.0, &again.0), "served from the cache");
    }
    assert_eq!(v.cache_usage(), (entries, bytes));
    // Junk in front is refused and changes nothing.
    for junk in ["x", "junk\n", &"j".repeat(1 << 20)] {
        let err = v
            .verify_credential_str(&format!("{junk}{separator}"))
            .unwrap_err();
        assert!(matches!(err, TrustError::Decode { .. }), "{err}");
        assert!(v.cached_credential(&format!("{junk}{separator}")).is_none());
    }
    assert_eq!(v.cache_usage(), (entries, bytes));
    // One different byte in any certificate is another chain.
    assert!(v.cached_credential(&separator).is_some());
    let mut other = separator.clone().into_bytes();
    let at = other.len() - 40;
    other[at] = if other[at] == b'A' { b'B' } else { b'A' };
    assert!(
        v.cached_credential(&String::from_utf8(other).unwrap())
            .is_none()
    );
}

/// A text is found only by its own form and its own bytes, whatever its hash: entries that
/// share a hash (forced here) never answer for each other.
#[test]
fn texts_match_form_and_every_byte() {
    let mut texts = Texts::default();
    let entry = |text: &str, form, d| TextEntry {
        text: Box::from(text),
        form,
        digest: [d; 32],
    };
    let all_live = |_: &[u8; 32]| true;
    texts.insert(7, entry("chain-a", Form::Chain, 1), 4096, all_live);
    texts.insert(7, entry("chain-b", Form::Chain, 2), 4096, all_live);
    texts.insert(7, entry("chain-a", Form::Geni, 3), 4096, all_live);
    assert_eq!(texts.get(7, Form::Chain, "chain-a"), Some([1; 32]));
    assert_eq!(texts.get(7, Form::Chain, "chain-b"), Some([2; 32]));
    assert_eq!(texts.get(7, Form::Geni, "chain-a"), Some([3; 32]));
    assert_eq!(texts.get(7, Form::Chain, "chain-c"), None);
    assert_eq!(texts.get(7, Form::Chain, "chain-a "), None);
    assert_eq!(texts.get(8, Form::Chain, "chain-a"), None);
    assert_eq!(texts.len(), 3);
    // Full: the texts whose verdict is gone go first, then any; the budget always holds.
    let budget = 3 * (TEXT_OVERHEAD + 7);
    texts.insert(9, entry("chain-d", Form::Chain, 4), budget, |d| {
        *d != [2; 32]
    });
    assert_eq!(
        texts.get(7, Form::Chain, "chain-b"),
        None,
        "its verdict was gone"
    );
    assert_eq!(texts.get(9, Form::Chain, "chain-d"), Some([4; 32]));
    assert!(texts.bytes <= budget, "{}", texts.bytes);
    for i in 0..20u8 {
        texts.insert(
            u64::from(i),
            entry(&format!("x{i:06}"), Form::Chain, i),
            budget,
            all_live,
        );
        assert!(texts.bytes <= budget, "{}", texts.bytes);
    }
    assert_eq!(texts.bytes, texts.len() * (TEXT_OVERHEAD + 7));
    texts.clear();
    assert_eq!((texts.len(), texts.bytes), (0, 0));
}

// See: issue 13's cache-hit regression (a hit canonicalised and SHA-256-hashed the whole chain).
#[test]
fn r13_a_repeat_caller_is_served_by_its_exact_bytes() {
    let v = verifier();
    let text = slice_cred(false)
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let first = v.verify_credential_str(&text).unwrap();
    assert_eq!(v.cache_text_usage().0, 1, "the verified text is remembered");
    let again = v.verify_credential_str(&text).unwrap();
    assert!(Arc::ptr_eq(&first.0, &again.0));
    assert_eq!(v.cache_text_usage().0, 1, "and found again, not added");
    // A reformatted copy reaches the same verdict through its digest, and is remembered too.
    let crlf = text.replace('\n', "\r\n");
    let via_digest = v.cached_credential(&crlf).unwrap();
    assert!(Arc::ptr_eq(&first.0, &via_digest.0));
    assert_eq!(v.cache_text_usage().0, 2);
    // Refused and unparsable texts are never remembered.
    let mut forged = text.clone().into_bytes();
    let at = (300..)
        .find(|&i| forged[i].is_ascii_alphanumeric())
        .unwrap();
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(
        v.verify_credential_str(&forged).is_err(),
        "the leaf's body changed"
    );
    assert!(v.verify_credential_str("not a chain").is_err());
    assert_eq!(v.cache_text_usage().0, 2);
    // A remembered text does not outlive its verdict's expiry or a reload of the roots.
    v.replace_roots(roots());
    assert_eq!(v.cache_text_usage(), (0, 0));
    assert!(v.cached_credential(&text).is_none());
}

// See: issue 13 (memory stays bounded whatever a peer sends). Whitespace variants of one valid
// credential each earn a remembered text, within a quarter of the byte budget.
#[test]
fn r13_remembered_texts_stay_within_their_budget() {
    let cache_bytes = 256 * 1024;
    let v = Verifier::new(
        roots(),
        Policy {
            cache_bytes,
            ..Policy::default()
        },
    );
    let text = slice_cred(false)
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let first = v.verify_credential_str(&text).unwrap();
    for i in 0..64 {
        let variant = format!("{}{text}{}", "\n".repeat(i), " ".repeat(i));
        let again = v.verify_credential_str(&variant).unwrap();
        assert!(Arc::ptr_eq(&first.0, &again.0));
        let (entries, bytes) = v.cache_text_usage();
        assert!(bytes <= cache_bytes / 4, "{entries} texts, {bytes} bytes");
    }
    assert_eq!(v.cache_usage().0, 1, "one verdict whatever the variants");
    assert!(v.cache_text_usage().0 >= 1);
}

// See: issue 13 ("Report the worst CPU one 4 MiB request can cost"): a request's parses and RSA
// operations are charged to its work budget; past it the verification is refused as over budget
// (never as a bad chain, and never cached), and a cached verdict costs nothing.
#[test]
fn r13_a_work_budget_bounds_parsing_and_rsa_and_is_never_cached() {
    use crate::work::{WorkBudget, within};
    let text = slice_cred(false)
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let all = Arc::new(WorkBudget::new(u64::MAX));
    let v = verifier();
    within(&all, || v.verify_credential_str(&text)).unwrap();
    let cost = all.spent();
    println!("a cold 3-level slice credential: {cost} work units");
    // The servers' default budget (50,000) lets a multicall at its cap verify 64 of these cold.
    assert!(
        cost > 0 && 64 * cost < 50_000,
        "a cold 3-level credential costs {cost}"
    );
    let v = verifier();
    let short = Arc::new(WorkBudget::new(cost - 1));
    let err = within(&short, || v.verify_credential_str(&text)).unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::WorkLimit { limit }) if limit == cost - 1),
        "{err}"
    );
    assert_eq!(
        v.cache_usage(),
        (0, 0),
        "an over-budget refusal is not cached"
    );
    let first = within(&all, || v.verify_credential_str(&text)).unwrap();
    let none = Arc::new(WorkBudget::new(0));
    let again = within(&none, || v.verify_credential_str(&text)).unwrap();
    assert!(
        Arc::ptr_eq(&first.0, &again.0),
        "a cached verdict costs nothing"
    );
    // Tickets and GIDs are charged the same way.
    let gid = w_gid_text();
    let v = verifier();
    let err = within(&none, || v.verify_gid_str(&gid)).unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::WorkLimit { .. })),
        "{err}"
    );
    // Outside any budget nothing is charged.
    v.verify_gid_str(&gid).unwrap();
}

fn w_gid_text() -> String {
    world().alice.to_chain_string(ChainForm::Separator).unwrap()
}

// See: issue 13 ("the cache is filled before the caller's TLS key is checked").
#[test]
fn r13_a_failed_precheck_costs_no_verification_and_caches_nothing() {
    let v = verifier();
    let w = world();
    let text = slice_cred(false)
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let mut seen = None;
    let err = v
        .verify_credential_checked(&text, |cred| {
            seen = cred.caller().map(|g| g.hrn().to_string());
            Err(TrustError::decode("caller", "TLS key mismatch"))
        })
        .unwrap_err();
    assert!(err.to_string().contains("TLS key mismatch"), "{err}");
    assert_eq!(seen.as_deref(), Some(w.alice.hrn().as_str()));
    assert_eq!(v.cache_usage(), (0, 0));
    // A chain that would not verify fails the precheck first: no signature was looked at.
    let dir = tempfile::tempdir().unwrap();
    let stranger = Hierarchy::new(dir.path())
        .create_authority(&hrn("planetlab"), false)
        .unwrap();
    let untrusted = Verifier::new(
        TrustedRoots::from_gids(vec![stranger.gid]).unwrap(),
        Policy::default(),
    );
    let err = untrusted
        .verify_credential_checked(&text, |_| Err(TrustError::decode("caller", "mismatch")))
        .unwrap_err();
    assert!(err.to_string().contains("mismatch"), "{err}");
    // And with the precheck passing, it verifies and is cached once.
    v.verify_credential_checked(&text, |_| Ok::<(), TrustError>(()))
        .unwrap();
    assert_eq!(v.cache_usage().0, 1);
}

#[test]
fn r13_the_cache_stays_within_its_byte_budget() {
    let w = world();
    let v = Verifier::new(
        roots(),
        Policy {
            cache_bytes: 40 * 1024,
            ..Policy::default()
        },
    );
    let rights = RightList::for_record_type(RecordType::Slice);
    for _ in 0..8 {
        let text =
            w.h.issue_credential(&w.alice, &w.slice, &rights, false, 30 * DAY)
                .unwrap()
                .to_chain_string(ChainForm::Separator)
                .unwrap();
        v.verify_credential_str(&text).unwrap();
        let (entries, bytes) = v.cache_usage();
        assert!(bytes <= 40 * 1024, "{entries} entries, {bytes} bytes");
        assert!(entries >= 1);
    }
}

// === tickets come only from the authority hierarchy; kinds are never confused ===

fn decode_reason(r: Result<impl std::fmt::Debug, TrustError>) -> String {
    match r {
        Err(TrustError::Decode { reason, .. }) => reason,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn a_credential_gid_or_ticket_in_the_wrong_place_is_a_decode_error() {
    let w = world();
    let cred = slice_cred(false)
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let gid = w.alice.to_chain_string(ChainForm::Separator).unwrap();
    let ticket =
        w.h.issue_ticket(
            &w.alice,
            &w.slice,
            &Struct::new(),
            &Struct::new(),
            None,
            DAY,
        )
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    assert_eq!(
        decode_reason(Ticket::parse(&cred)),
        "this is a credential, not a ticket"
    );
    assert_eq!(
        decode_reason(Ticket::parse(&gid)),
        "this is a GID, not a ticket"
    );
    assert_eq!(
        decode_reason(Credential::parse(&gid)),
        "this is a GID, not a credential"
    );
    assert_eq!(
        decode_reason(Credential::parse(&ticket)),
        "this is a ticket, not a credential"
    );
    assert_eq!(
        decode_reason(Gid::parse(&cred)),
        "this is a credential, not a GID"
    );
    assert_eq!(
        decode_reason(Gid::parse(&ticket)),
        "this is a ticket, not a GID"
    );
    // Through the verifier too, before any signature is checked.
    let v = verifier();
    assert!(matches!(
        v.verify_ticket_str(&cred, None),
        Err(TrustError::Decode { .. })
    ));
    assert!(matches!(
        v.verify_credential_str(&gid),
        Err(TrustError::Decode { .. })
    ));
    assert!(matches!(
        v.verify_credential_str(&ticket),
        Err(TrustError::Decode { .. })
    ));
}

/// A ticket for `w.slice`, signed by `signer` under `parent` (a chain read as a ticket's parent).
fn ticket_under(parent_text: &str, signer: &Keypair) -> Ticket {
    let w = world();
    let parent = Ticket::parse_parent(parent_text).unwrap();
    let attributes = Struct::new().with("name", "pl_s1");
    crate::ticket_under(
        &parent,
        signer,
        &w.alice,
        &w.slice,
        &attributes,
        &Struct::new(),
        None,
        Validity::from_now(now(), DAY),
        CertMode::Modern,
    )
    .unwrap()
}

fn not_authority_reason(t: &Ticket) -> &'static str {
    match verify_err(verifier().verify_ticket(t, None)) {
        VerifyError::NotAuthorityTicket { reason, .. } => reason,
        other => panic!("expected NotAuthorityTicket, got {other:?}"),
    }
}

#[test]
fn only_the_authority_hierarchy_can_mint_a_ticket() {
    let w = world();
    // A node's delegatable credential over itself (caller = object, but no authority right).
    let node_key = Keypair::generate(2048).unwrap();
    let node =
        w.h.create_gid(&hrn("planetlab.us.pl.node1"), None, &node_key.public_key())
            .unwrap();
    let node_cred =
        w.h.issue_credential(&node, &node, &"control,info".parse().unwrap(), true, DAY)
            .unwrap()
            .to_chain_string(ChainForm::Separator)
            .unwrap();
    assert_eq!(
        not_authority_reason(&ticket_under(&node_cred, &node_key)),
        "a credential without the authority right"
    );
    // A researcher's delegatable slice credential (signed with the slice's key, its cert key).
    let slice = slice_cred(true)
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    assert_eq!(
        not_authority_reason(&ticket_under(&slice, &w.slice_key)),
        "its caller is not its object"
    );
    // Even an authority-right credential is no authority's own when its caller is a person.
    let site = auth("planetlab.us.pl");
    let pi =
        w.h.issue_credential(
            &w.alice,
            &site.gid,
            &"authority".parse().unwrap(),
            true,
            DAY,
        )
        .unwrap()
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    assert_eq!(
        not_authority_reason(&ticket_under(&pi, &site.key)),
        "its caller is not its object"
    );
    // The hierarchy's own chain (authority ticket under authority credentials) verifies, and the
    // same signer under its authority credential alone does too: both are authorities' own.
    let auth_cred =
        w.h.authority_credential(&hrn("planetlab.us.pl"))
            .unwrap()
            .to_chain_string(ChainForm::Separator)
            .unwrap();
    verifier()
        .verify_ticket(&ticket_under(&auth_cred, &site.key), None)
        .unwrap();
    let genuine =
        w.h.issue_ticket(
            &w.alice,
            &w.slice,
            &Struct::new(),
            &Struct::new(),
            None,
            DAY,
        )
        .unwrap();
    let links: Vec<bool> = genuine
        .links()
        .iter()
        .map(|l| l.credential_privileges().is_some())
        .collect();
    assert_eq!(
        links,
        [false, false, true, true],
        "ticket, auth ticket, auth creds"
    );
    verifier().verify_ticket(&genuine, None).unwrap();
}

#[test]
fn a_ticket_cannot_sit_above_a_credential_in_a_ticket_chain() {
    // An authority ticket as the parent of a credential link is not 2008's shape.
    let w = world();
    let auth_ticket =
        w.h.authority_ticket(&hrn("planetlab.us.pl"))
            .unwrap()
            .to_chain_string(ChainForm::Separator)
            .unwrap();
    let cred =
        w.h.issue_credential(
            &w.alice,
            &w.slice,
            &RightList::for_record_type(RecordType::Slice),
            true,
            DAY,
        )
        .unwrap();
    let cred_pem = cred.certificate().to_pem().unwrap();
    let forged = format!("{}-----parent-----\n{auth_ticket}", cred_pem);
    assert_eq!(
        decode_reason(Ticket::parse_parent(&forged)),
        "a credential cannot derive from a ticket"
    );
}

// See: issue 13 ("failures are not cached": one forged chain 64 times in a multicall).
#[test]
fn r13_a_refusal_is_remembered_briefly_and_forgotten_on_reload() {
    let clock = Arc::new(TestClock(AtomicI64::new(now())));
    let dir = tempfile::tempdir().unwrap();
    let stranger = Hierarchy::new(dir.path())
        .create_authority(&hrn("planetlab"), false)
        .unwrap();
    let v = Verifier::with_clock(
        TrustedRoots::from_gids(vec![stranger.gid]).unwrap(),
        Policy::default(),
        clock.clone(),
    );
    let text = slice_cred(false)
        .to_chain_string(ChainForm::Separator)
        .unwrap();
    let first = v.verify_credential_str(&text).unwrap_err().to_string();
    assert_eq!(v.cache_usage().0, 1, "the refusal is kept");
    assert!(
        v.cached_credential(&text).is_none(),
        "a refusal is no verdict"
    );
    assert_eq!(
        v.verify_credential_str(&text).unwrap_err().to_string(),
        first
    );
    // After its short life it is verified (and refused) again.
    clock.0.store(now() + 61, Ordering::SeqCst);
    assert_eq!(
        v.verify_credential_str(&text).unwrap_err().to_string(),
        first
    );
    // Roots replaced: the refusal goes with the old roots.
    clock.0.store(now(), Ordering::SeqCst);
    v.replace_roots(roots());
    v.verify_credential_str(&text).unwrap();
}
