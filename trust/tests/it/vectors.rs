//! Conformance against the vectors made by the original 2008 Python classes
//! (`../shared/vectors/gw2008/`, read as they are): every vector gets the verdict its manifest
//! gives, with the decoded fields equal to the manifest's, and the 2008 payloads and chain text
//! are rebuilt byte for byte from the decoded fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use geni_trust::{
    Certificate, ChainForm, Credential, Gid, Policy, Ticket, TrustError, TrustedRoots, Verifier,
    VerifyError,
};
use geni_xmlrpc::{Limits, Value, parse_params};
use serde_json::{Value as Json, json};

fn vectors_dir() -> PathBuf {
    std::env::var_os("GENI_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/gw2008")
        })
}

fn manifest() -> Json {
    let path = vectors_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (set GENI_VECTORS_DIR)", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn verifier(legacy: bool) -> Verifier {
    let roots = TrustedRoots::load_dir(&vectors_dir().join("trusted_roots")).unwrap();
    Verifier::new(
        roots,
        Policy {
            legacy_digests: legacy,
            ..Policy::default()
        },
    )
}

/// Seconds since the epoch as the manifest writes times: `20311122091615Z`.
fn generalized_time(t: i64) -> String {
    geni_trust::format_utc(t).replace(['-', 'T', ':'], "")
}

fn sha1_hex(data: &[u8]) -> String {
    openssl::sha::sha1(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Base64(b) => json!(b),
        Value::Bool(b) => json!(b),
        Value::DateTime(d) => json!(d),
        Value::Double(d) => json!(d),
        Value::Int(i) => json!(i),
        Value::Nil => Json::Null,
        Value::String(s) => json!(s),
        Value::Struct(s) => {
            Json::Object(s.iter().map(|(k, v)| (k.to_owned(), to_json(v))).collect())
        }
    }
}

fn member_order(cert: &Certificate) -> Vec<String> {
    let params = parse_params(cert.xmlrpc_payload().unwrap(), &Limits::default()).unwrap();
    let Value::Struct(s) = &params[0] else {
        panic!("payload is not a struct")
    };
    s.names().map(str::to_owned).collect()
}

fn check_cert(cert: &Certificate, want: &Json, file: &str) {
    let v = cert.validity();
    let got = json!({
        "issuer": cert.issuer(),
        "issuer_cn_asn1": cert.issuer_cn_type(),
        "not_after": generalized_time(v.not_after),
        "not_before": generalized_time(v.not_before),
        "pubkey_bits": cert.public_key().bits(),
        "pubkey_spki_sha1": sha1_hex(cert.public_key().spki_der()),
        "san_member_order": member_order(cert),
        "san_payload_len": cert.xmlrpc_payload().unwrap().len(),
        "serial": cert.serial().parse::<u64>().unwrap(),
        "signature_algorithm": cert.signature_algorithm(),
        "subject": cert.subject(),
        "subject_cn_asn1": cert.subject_cn_type(),
        "x509_version": format!("v{}", cert.version()),
    });
    assert_eq!(&got, want, "{file}: certificate facts");
}

fn gid_json(g: &Gid, with_class: bool) -> Json {
    let parents: Vec<Json> = std::iter::successors(g.parent(), |p| p.parent())
        .map(|p| {
            let mut o = json!({"hrn": p.hrn().as_str(), "issuer": p.certificate().issuer(), "subject": p.certificate().subject()});
            if with_class {
                o["class"] = json!("GID");
            }
            o
        })
        .collect();
    json!({
        "hrn": g.hrn().as_str(),
        "issuer": g.certificate().issuer(),
        "parents": parents,
        "pubkey_spki_sha1": sha1_hex(g.public_key().spki_der()),
        "subject": g.certificate().subject(),
        "uuid": g.uuid(),
    })
}

fn check_gid(g: &Gid, d: &Json, file: &str) {
    check_cert(g.certificate(), &d["cert"], file);
    let mut got = gid_json(g, true);
    got["cert"] = d["cert"].clone();
    assert_eq!(&got, d, "{file}: decoded GID");
    // The 2008 payload, rebuilt from the fields, is the signed one.
    assert_eq!(
        g.payload_2008().unwrap().trim_end(),
        g.certificate().xmlrpc_payload().unwrap(),
        "{file}"
    );
}

fn check_credential(c: &Credential, d: &Json, file: &str) {
    check_cert(c.certificate(), &d["cert"], file);
    let parents: Vec<Json> = std::iter::successors(c.parent(), |p| p.parent())
        .map(|p| {
            json!({
                "class": "Credential",
                "delegate": p.delegate(),
                "issuer": p.certificate().issuer(),
                "object": p.object().map(|o| o.hrn().as_str()),
                "privileges": p.privileges().to_string(),
                "subject": p.subject(),
            })
        })
        .collect();
    let got = json!({
        "cert": d["cert"],
        "delegate": c.delegate(),
        "gidCaller": gid_json(c.caller().unwrap(), false),
        "gidObject": gid_json(c.object().unwrap(), false),
        "lifeTime": c.lifetime(),
        "parents": parents,
        "privileges": c.privileges().to_string(),
    });
    assert_eq!(&got, d, "{file}: decoded credential");
    for link in std::iter::successors(Some(c), |p| p.parent()) {
        assert_eq!(
            link.payload_2008().unwrap().trim_end(),
            link.certificate().xmlrpc_payload().unwrap(),
            "{file}"
        );
    }
}

fn check_ticket(t: &Ticket, d: &Json, file: &str) {
    check_cert(t.certificate(), &d["cert"], file);
    let parents: Vec<Json> = std::iter::successors(t.parent(), |p| p.parent())
        .map(|p| {
            json!({
                "class": "Ticket",
                "delegate": p.delegate(),
                "issuer": p.certificate().issuer(),
                "object": p.object().map(|o| o.hrn().as_str()),
                "subject": p.subject(),
            })
        })
        .collect();
    let got = json!({
        "attributes": to_json(&Value::Struct(t.attributes().clone())),
        "cert": d["cert"],
        "delegate": t.delegate(),
        "gidCaller": gid_json(t.caller().unwrap(), false),
        "gidObject": gid_json(t.object().unwrap(), false),
        "parents": parents,
        "rspec": to_json(&Value::Struct(t.rspec().clone())),
    });
    assert_eq!(&got, d, "{file}: decoded ticket");
    assert_eq!(
        t.payload().unwrap().trim_end(),
        t.certificate().xmlrpc_payload().unwrap(),
        "{file}"
    );
}

/// The manifest's name for the check that must fail, as our variant.
fn variant_matches(check: &str, err: &VerifyError) -> bool {
    matches!(
        (check, err),
        (
            "CertNotSignedByParent",
            VerifyError::NotSignedByParent { .. }
        ) | ("GidParentHrn", VerifyError::HrnNotUnderParent { .. })
            | ("MissingDelegateBit", VerifyError::MissingDelegateBit { .. })
            | (
                "ChildRightsNotSubsetOfParent",
                VerifyError::RightsEscalation { .. }
            )
            | ("CertMissingParent", VerifyError::UntrustedRoot { .. })
            | ("IssuerScope", VerifyError::ObjectOutsideAuthority { .. })
    )
}

fn verdict(kind: &str, text: &str, v: &Verifier) -> Result<(), TrustError> {
    match kind {
        "gid" => v.verify_gid_str(text).map(drop),
        "credential" => v.verify_credential_str(text).map(drop),
        "ticket" => v.verify_ticket_str(text, None).map(drop),
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn every_vector_gets_its_manifest_verdict_and_fields() {
    let m = manifest();
    let legacy = verifier(true);
    let strict = verifier(false);
    let vectors = m["vectors"].as_array().unwrap();
    assert!(
        vectors.len() >= 30,
        "manifest lists {} vectors",
        vectors.len()
    );
    let (mut accepted, mut rejected) = (0, 0);
    for vec in vectors {
        let file = vec["file"].as_str().unwrap();
        let kind = vec["kind"].as_str().unwrap();
        let text = std::fs::read_to_string(vectors_dir().join(file)).unwrap();
        let d = &vec["decoded"];
        let failure = vec["corrected_failures"].get(0);
        if failure.is_some_and(|f| f["check"] == "LoadError") {
            let parsed = match kind {
                "gid" => Gid::parse(&text).map(drop),
                "credential" => Credential::parse(&text).map(drop),
                _ => Ticket::parse(&text).map(drop),
            };
            let err = parsed.expect_err(file);
            assert!(matches!(err, TrustError::Decode { .. }), "{file}: {err}");
            assert!(err.to_string().contains("truncated"), "{file}: {err}");
            assert!(verdict(kind, &text, &legacy).is_err());
            rejected += 1;
            continue;
        }
        match kind {
            "gid" => check_gid(&Gid::parse(&text).unwrap(), d, file),
            "credential" => check_credential(&Credential::parse(&text).unwrap(), d, file),
            "ticket" => check_ticket(&Ticket::parse(&text).unwrap(), d, file),
            _ => unreachable!(),
        }
        // Re-serialising the parsed chain gives the file's bytes back.
        let again = match kind {
            "gid" => Gid::parse(&text)
                .unwrap()
                .to_chain_string(ChainForm::Separator),
            "credential" => Credential::parse(&text)
                .unwrap()
                .to_chain_string(ChainForm::Separator),
            _ => Ticket::parse(&text)
                .unwrap()
                .to_chain_string(ChainForm::Separator),
        }
        .unwrap();
        assert_eq!(again, text, "{file}: chain text round trip");

        let got = verdict(kind, &text, &legacy);
        match vec["expected"].as_str().unwrap() {
            "accept" => {
                got.unwrap_or_else(|e| panic!("{file}: expected accept, got {e}"));
                // md5 is refused under the default policy.
                match verdict(kind, &text, &strict) {
                    Err(TrustError::Verify(VerifyError::WeakDigest { algorithm, .. })) => {
                        assert_eq!(algorithm, "md5WithRSAEncryption");
                    }
                    other => panic!("{file}: default policy must refuse md5, got {other:?}"),
                }
                accepted += 1;
            }
            "reject" => {
                let err = match got {
                    Err(TrustError::Verify(e)) => e,
                    other => panic!("{file}: expected a verification failure, got {other:?}"),
                };
                let f = failure.expect("negative vectors name the failing check");
                let check = f["check"].as_str().unwrap();
                assert!(
                    variant_matches(check, &err),
                    "{file}: expected {check}, got {err:?}"
                );
                let element = f["element"].as_str().unwrap();
                assert!(
                    err.to_string().contains(element),
                    "{file}: {err} should name {element}"
                );
                rejected += 1;
            }
            other => panic!("{file}: unknown verdict {other}"),
        }
    }
    println!("vectors: {accepted} accepted, {rejected} rejected");
    assert_eq!(accepted + rejected, vectors.len());
}

#[test]
fn untrusted_root_directory_trusts_nothing_of_ours() {
    let roots = TrustedRoots::load_dir(&vectors_dir().join("untrusted_roots")).unwrap();
    let v = Verifier::new(
        roots,
        Policy {
            legacy_digests: true,
            ..Policy::default()
        },
    );
    let text = std::fs::read_to_string(vectors_dir().join("gid/planetlab.us.pl.account_test.gid"))
        .unwrap();
    let err = v.verify_gid_str(&text).unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::UntrustedRoot { .. })),
        "{err}"
    );
}

#[test]
fn registry_trees_load_as_2008_wrote_them() {
    let h = geni_trust::Hierarchy::new(vectors_dir().join("registry/authorities"));
    // The vector tree is read-only and its keys are 0444: loading a key must refuse that.
    let hrn = "planetlab.us.pl".parse().unwrap();
    assert!(h.exists(&hrn));
    match h.authority(&hrn) {
        Err(TrustError::KeyPermissions { .. }) => {}
        other => panic!("a world-readable key must be refused, got {other:?}"),
    }
}

/// 2008 stamps every certificate `now … now + 5 years`, so a credential delegated one second
/// after its parent was made outlives the parent by one second. Made here from the vectors' own
/// keys in the exact 2008 shape, it must verify (within the clock skew), and the verdict must
/// still expire with the parent; beyond the skew it is refused.
#[test]
fn a_2008_delegation_outliving_its_parent_by_a_second_is_accepted() {
    use geni_trust::{CertMode, Keypair, RightList, Validity, delegate_credential};
    let dir = vectors_dir();
    let parent =
        Credential::load(&dir.join("cred/slice_planetlab.us.pl.testslice.delegable.cred")).unwrap();
    assert!(
        parent.delegate(),
        "the vector is the delegable slice credential"
    );
    let pem = std::fs::read(dir.join("keys/planetlab.us.pl.testslice.pkey")).unwrap();
    let holder = Keypair::from_pem(&pem).unwrap();
    let bob = Gid::load(&dir.join("gid/planetlab.us.pl.bob.gid")).unwrap();
    let rights: RightList = "control,info".parse().unwrap();
    let parent_end = parent.certificate().validity().not_after;
    let delegated = |by: i64| {
        let validity = Validity {
            not_before: parent.certificate().validity().not_before + 1,
            not_after: parent_end + by,
        };
        delegate_credential(
            &parent,
            &holder,
            &bob,
            &rights,
            false,
            validity,
            CertMode::Compat2008,
        )
        .unwrap()
    };
    let v = verifier(true);
    let child = delegated(1);
    assert_eq!(child.certificate().version(), 1, "2008 shape: X.509 v1");
    let text = child.to_chain_string(ChainForm::Separator).unwrap();
    let ok = v.verify_credential_str(&text).unwrap();
    assert_eq!(ok.caller().hrn().as_str(), "planetlab.us.pl.bob");
    assert!(ok.expires() <= parent_end);
    let skew = Policy::default().clock_skew_secs;
    let late = delegated(skew + 1);
    let err = v
        .verify_credential_str(&late.to_chain_string(ChainForm::Separator).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Verify(VerifyError::OutlivesParent { .. })),
        "{err}"
    );
}
