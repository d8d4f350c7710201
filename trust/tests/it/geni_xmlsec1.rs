//! Interoperability with the real `xmlsec1` (the tool gcf and SFA verify and sign with): what we
//! sign — user, slice and delegated credentials, rsa-sha1 and rsa-sha256 — is accepted by
//! `xmlsec1 --verify --enabled-key-data x509 --trusted-pem ROOT`, signature by signature, and
//! refused by it under another root; and credentials `xmlsec1 --sign` makes from a template are
//! accepted by our verifier. `.ci/run` installs xmlsec1; where it is missing the tests say so and
//! skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use geni_trust::geni::{
    GeniIssue, Privilege, SignatureAlgorithm, Urn, UrnGidSpec, delegate, issue,
};
use geni_trust::{Gid, Keypair, Policy, TrustedRoots, Validity, Verifier, new_uuid};

fn have_xmlsec1(test: &str) -> bool {
    let ok = Command::new("xmlsec1")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED {test}: xmlsec1 is not installed (apt-get install xmlsec1)");
    }
    ok
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

struct P {
    key: Keypair,
    gid: Gid,
}

fn principal(urn: &str, issuer: Option<&P>) -> P {
    let key = Keypair::generate(2048).unwrap();
    let urn = Urn::parse(urn).unwrap();
    let gid = UrnGidSpec {
        urn: &urn,
        uuid: &new_uuid().unwrap(),
        email: Some("ops@example.org"),
        key: &key.public_key(),
        issuer: issuer.map(|p| &p.gid),
        signer: issuer.map_or(&key, |p| &p.key),
        validity: Validity::from_now(now() - 3600, 30 * 86_400),
    }
    .build()
    .unwrap();
    P { key, gid }
}

struct World {
    dir: tempfile::TempDir,
    root: P,
    site: P,
    alice: P,
    bob: P,
    slice: P,
    evil: P,
}

fn world() -> World {
    let root = principal("urn:publicid:IDN+plc+authority+sa", None);
    let site = principal("urn:publicid:IDN+plc:princeton+authority+sa", Some(&root));
    let alice = principal("urn:publicid:IDN+plc:princeton+user+alice", Some(&site));
    let bob = principal("urn:publicid:IDN+plc:princeton+user+bob", Some(&site));
    let slice = principal("urn:publicid:IDN+plc:princeton+slice+s1", Some(&site));
    let evil = principal("urn:publicid:IDN+plc+authority+sa", None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("root.pem"),
        root.gid.certificate().to_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("evil.pem"),
        evil.gid.certificate().to_pem().unwrap(),
    )
    .unwrap();
    World {
        dir,
        root,
        site,
        alice,
        bob,
        slice,
        evil,
    }
}

fn privs(names: &[&str], can_delegate: bool) -> Vec<Privilege> {
    names
        .iter()
        .map(|n| Privilege::new(n, can_delegate).unwrap())
        .collect()
}

/// Runs `xmlsec1 --verify` on one signature; true when it says OK.
fn xmlsec1_verifies(dir: &Path, text: &str, node: &str, root: &str) -> bool {
    let file = dir.join("cred.xml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new("xmlsec1")
        .args(["--verify", "--enabled-key-data", "x509", "--node-id", node])
        .arg("--trusted-pem")
        .arg(dir.join(root))
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("xmlsec1 on {node} under {root}: {said}");
    }
    out.status.success() && said.contains("OK")
}

fn our_verifier(w: &World) -> Verifier {
    Verifier::new(
        TrustedRoots::from_gids(vec![w.root.gid.clone()]).unwrap(),
        Policy::default(),
    )
}

#[test]
fn xmlsec1_accepts_what_we_sign() {
    if !have_xmlsec1("xmlsec1_accepts_what_we_sign") {
        return;
    }
    let w = world();
    for alg in [SignatureAlgorithm::RsaSha1, SignatureAlgorithm::RsaSha256] {
        let expires = now() + 7 * 86_400;
        let user = issue(&GeniIssue {
            owner: &w.alice.gid,
            target: &w.alice.gid,
            privileges: &privs(&["refresh", "resolve", "info"], false),
            expires,
            signer: &w.site.key,
            signer_gid: &w.site.gid,
            algorithm: alg,
        })
        .unwrap();
        let slice = issue(&GeniIssue {
            owner: &w.alice.gid,
            target: &w.slice.gid,
            privileges: &privs(&["refresh", "embed", "bind", "control", "info"], true),
            expires,
            signer: &w.site.key,
            signer_gid: &w.site.gid,
            algorithm: alg,
        })
        .unwrap();
        let delegated = delegate(
            &slice,
            &w.bob.gid,
            &privs(&["control", "info"], false),
            expires - 60,
            &w.alice.key,
            &w.alice.gid,
            alg,
        )
        .unwrap();
        let dir = w.dir.path();
        for (name, text, nodes) in [
            ("user", &user, &["Sig_ref0"][..]),
            ("slice", &slice, &["Sig_ref0"][..]),
            ("delegated", &delegated, &["Sig_ref0", "Sig_ref1"][..]),
        ] {
            our_verifier(&w).verify_geni_credential_str(text).unwrap();
            for node in nodes {
                assert!(
                    xmlsec1_verifies(dir, text, node, "root.pem"),
                    "xmlsec1 refused our {} {name} credential ({node})",
                    alg.as_str()
                );
                assert!(
                    !xmlsec1_verifies(dir, text, node, "evil.pem"),
                    "xmlsec1 accepted our {name} credential under another root"
                );
            }
        }
        // And xmlsec1 sees a changed privilege.
        let changed = slice.replacen("<name>info</name>", "<name>authority</name>", 1);
        assert!(!xmlsec1_verifies(dir, &changed, "Sig_ref0", "root.pem"));
    }
    let _ = &w.evil;
}

/// A template from one of our credentials: the digest, value and certificates of the signature
/// `node` emptied, for `xmlsec1 --sign` to fill in.
fn template(text: &str, node: &str) -> String {
    let at = text.find(&format!("xml:id=\"{node}\"")).unwrap();
    let (head, tail) = text.split_at(at);
    let blank = |s: &str, open: &str, close: &str, with: &str| -> String {
        let a = s.find(open).unwrap();
        let b = s.find(close).unwrap() + close.len();
        format!("{}{with}{}", &s[..a], &s[b..])
    };
    let tail = blank(
        tail,
        "<DigestValue>",
        "</DigestValue>",
        "<DigestValue></DigestValue>",
    );
    let tail = blank(
        &tail,
        "<SignatureValue>",
        "</SignatureValue>",
        "<SignatureValue></SignatureValue>",
    );
    let tail = blank(&tail, "<X509Data>", "</X509Data>", "<X509Data></X509Data>");
    format!("{head}{tail}")
}

fn xmlsec1_sign(dir: &Path, template: &str, node: &str, signer: &P, chain: &[&Gid]) -> String {
    let key = dir.join("signer.key");
    let _ = std::fs::remove_file(&key);
    std::fs::write(&key, signer.key.to_pem().unwrap()).unwrap();
    let mut keyspec = key.display().to_string();
    for (i, g) in chain.iter().enumerate() {
        let p = dir.join(format!("chain{i}.pem"));
        std::fs::write(&p, g.certificate().to_pem().unwrap()).unwrap();
        keyspec.push(',');
        keyspec.push_str(&p.display().to_string());
    }
    let input = dir.join("template.xml");
    let output = dir.join("signed.xml");
    std::fs::write(&input, template).unwrap();
    let out = Command::new("xmlsec1")
        .args([
            "--sign",
            "--node-id",
            node,
            "--privkey-pem",
            &keyspec,
            "--output",
        ])
        .arg(&output)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xmlsec1 --sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&output).unwrap()
}

#[test]
fn we_accept_what_xmlsec1_signs() {
    if !have_xmlsec1("we_accept_what_xmlsec1_signs") {
        return;
    }
    let w = world();
    let dir = w.dir.path();
    for alg in [SignatureAlgorithm::RsaSha1, SignatureAlgorithm::RsaSha256] {
        let expires = now() + 7 * 86_400;
        let ours = issue(&GeniIssue {
            owner: &w.alice.gid,
            target: &w.slice.gid,
            privileges: &privs(&["refresh", "embed", "bind", "control", "info"], true),
            expires,
            signer: &w.site.key,
            signer_gid: &w.site.gid,
            algorithm: alg,
        })
        .unwrap();
        let signed = xmlsec1_sign(
            dir,
            &template(&ours, "Sig_ref0"),
            "Sig_ref0",
            &w.site,
            &[&w.site.gid, &w.root.gid],
        );
        assert_ne!(signed, ours);
        let v = our_verifier(&w)
            .verify_geni_credential_str(&signed)
            .unwrap();
        assert_eq!(v.object().hrn().as_str(), "plc.princeton.s1");
        // A delegation whose outer signature xmlsec1 makes, alice signing.
        let delegated = delegate(
            &ours,
            &w.bob.gid,
            &privs(&["info"], false),
            expires - 60,
            &w.alice.key,
            &w.alice.gid,
            alg,
        )
        .unwrap();
        let signed = xmlsec1_sign(
            dir,
            &template(&delegated, "Sig_ref1"),
            "Sig_ref1",
            &w.alice,
            &[&w.alice.gid, &w.site.gid],
        );
        let v = our_verifier(&w)
            .verify_geni_credential_str(&signed)
            .unwrap();
        assert_eq!(v.caller().hrn().as_str(), "plc.princeton.bob");
        assert_eq!(v.geni().unwrap().chain_len(), 2);
        // xmlsec1 writes a KeyValue: ours ignores it for trust, and it must match the signer.
        assert!(signed.contains("X509Certificate"));
        // Signed by a key outside the hierarchy, xmlsec1's output is refused by us.
        let rogue = xmlsec1_sign(
            dir,
            &template(&ours, "Sig_ref0"),
            "Sig_ref0",
            &w.evil,
            &[&w.evil.gid],
        );
        assert!(our_verifier(&w).verify_geni_credential_str(&rogue).is_err());
    }
}
