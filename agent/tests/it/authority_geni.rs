//! End-to-end tests of the GENI side of `geni-agent authority`: the real binary on real files.
//! One tree made with `--urn` issues GENI credentials (`credential --format geni`), delegates
//! them (`delegate`) and still issues 2008 ones; `verify` recognises a GENI credential by its
//! content and keeps the exit-code contract (0 accept, 1 reject with the reason on stderr, 2
//! usage or I/O); the gcf and SFA vectors get their verdicts through the tool; and, where xmlsec1
//! is installed, it accepts what the tool signs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use super::authority_cli::expect;

fn geni_vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/geni")
}

/// plc → plc.princeton (URN GIDs), alice and bob (users) and s1 (a slice), roots/ with plc.
fn build(dir: &Path) {
    expect(0, dir, &["init", "plc", "--urn"]);
    expect(0, dir, &["create", "plc.princeton", "--urn"]);
    for (name, kind) in [("alice", "user"), ("bob", "user"), ("s1", "slice")] {
        expect(
            0,
            dir,
            &["key", "--out", &format!("{name}.pkey"), "--bits", "1024"],
        );
        expect(
            0,
            dir,
            &[
                "gid",
                &format!("plc.princeton.{name}"),
                "--pubkey",
                &format!("{name}.pkey.pub"),
                "--urn",
                "--type",
                kind,
                "--out",
                &format!("{name}.gid"),
            ],
        );
    }
    fs::create_dir(dir.join("roots")).unwrap();
    fs::copy(
        dir.join("authorities/plc/plc.gid"),
        dir.join("roots/plc.gid"),
    )
    .unwrap();
}

#[test]
fn a_urn_tree_issues_delegates_and_verifies_geni_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let gid = fs::read_to_string(dir.join("s1.gid")).unwrap();
    assert!(!gid.contains("-----parent-----") || gid.contains("BEGIN CERTIFICATE"));
    let r = expect(
        0,
        dir,
        &[
            "credential",
            "--caller",
            "alice.gid",
            "--object",
            "s1.gid",
            "--rights",
            "embed,bind,control,info",
            "--delegate",
            "--format",
            "geni",
            "--out",
            "s1.cred.xml",
        ],
    );
    assert!(
        r.stdout.contains("urn:publicid:IDN+plc:princeton+slice+s1"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("rsa-sha256"), "{}", r.stdout);
    let text = fs::read_to_string(dir.join("s1.cred.xml")).unwrap();
    assert!(text.contains("<signed-credential"));
    // Recognised by content, or as a credential, or forced as geni: accepted each way.
    for kind in [
        &[][..],
        &["--kind", "credential"][..],
        &["--kind", "geni"][..],
    ] {
        let mut args = vec!["verify", "--trusted-roots", "roots"];
        args.extend_from_slice(kind);
        args.push("s1.cred.xml");
        let r = expect(0, dir, &args);
        assert!(
            r.stdout
                .starts_with("ACCEPT geni plc.princeton.s1 caller=plc.princeton.alice"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("chain=1"), "{}", r.stdout);
    }
    // As JSON, with the GENI facts.
    let r = expect(
        0,
        dir,
        &[
            "verify",
            "--trusted-roots",
            "roots",
            "--json",
            "s1.cred.xml",
        ],
    );
    let j: Json = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(j["kind"], "geni");
    assert_eq!(j["owner_urn"], "urn:publicid:IDN+plc:princeton+user+alice");
    assert_eq!(j["rights"], "embed,bind,control,info");
    // Claimed as something it is not: a reject naming both.
    let r = expect(
        1,
        dir,
        &[
            "verify",
            "--trusted-roots",
            "roots",
            "--kind",
            "gid",
            "s1.cred.xml",
        ],
    );
    assert!(r.stderr.contains("holds a geni, not a gid"), "{}", r.stderr);

    // Alice delegates control and info to bob, rsa-sha1 as gcf and SFA write.
    let r = expect(
        0,
        dir,
        &[
            "delegate",
            "--credential",
            "s1.cred.xml",
            "--to",
            "bob.gid",
            "--key",
            "alice.pkey",
            "--rights",
            "control,info",
            "--signature-algorithm",
            "rsa-sha1",
            "--out",
            "bob.cred.xml",
        ],
    );
    assert!(
        r.stdout
            .contains("delegated by urn:publicid:IDN+plc:princeton+user+alice"),
        "{}",
        r.stdout
    );
    let r = expect(
        0,
        dir,
        &["verify", "--trusted-roots", "roots", "bob.cred.xml"],
    );
    assert!(
        r.stdout
            .contains("caller=plc.princeton.bob rights=control,info"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("chain=2"), "{}", r.stdout);
    // Bob cannot delegate alice's credential, nor escalate, and nothing is written.
    let r = expect(
        2,
        dir,
        &[
            "delegate",
            "--credential",
            "s1.cred.xml",
            "--to",
            "bob.gid",
            "--key",
            "bob.pkey",
            "--rights",
            "info",
            "--out",
            "x.xml",
        ],
    );
    assert!(r.stderr.contains("owner"), "{}", r.stderr);
    let r = expect(
        2,
        dir,
        &[
            "delegate",
            "--credential",
            "bob.cred.xml",
            "--to",
            "alice.gid",
            "--key",
            "bob.pkey",
            "--rights",
            "control",
            "--out",
            "x.xml",
        ],
    );
    assert!(r.stderr.contains("may delegate"), "{}", r.stderr);
    assert!(!dir.join("x.xml").exists());

    // A changed byte: rejected with the reason on stderr.
    let tampered = text.replacen("<name>info</name>", "<name>sa</name>", 1);
    fs::write(dir.join("tampered.xml"), tampered).unwrap();
    let r = expect(
        1,
        dir,
        &["verify", "--trusted-roots", "roots", "tampered.xml"],
    );
    assert!(r.stderr.starts_with("REJECT"), "{}", r.stderr);
    assert!(r.stderr.contains("digest mismatch"), "{}", r.stderr);
    // Usage and I/O: exit 2.
    expect(
        2,
        dir,
        &["verify", "--trusted-roots", "roots", "missing.xml"],
    );
    fs::create_dir(dir.join("empty")).unwrap();
    expect(
        2,
        dir,
        &["verify", "--trusted-roots", "empty", "s1.cred.xml"],
    );
    expect(
        2,
        dir,
        &[
            "verify",
            "--trusted-roots",
            "roots",
            "--kind",
            "nonsense",
            "s1.cred.xml",
        ],
    );

    // The same tree still issues 2008 credentials over the URN GIDs, which verify as 2008 ones.
    expect(
        0,
        dir,
        &[
            "credential",
            "--caller",
            "alice.gid",
            "--object",
            "s1.gid",
            "--rights",
            "info",
            "--out",
            "s1.cred",
        ],
    );
    let r = expect(0, dir, &["verify", "--trusted-roots", "roots", "s1.cred"]);
    assert!(
        r.stdout.starts_with("ACCEPT credential plc.princeton.s1"),
        "{}",
        r.stdout
    );
    // An authority's own GENI credential.
    expect(
        0,
        dir,
        &[
            "credential",
            "--authority",
            "plc.princeton",
            "--format",
            "geni",
            "--out",
            "auth.xml",
        ],
    );
    let r = expect(0, dir, &["verify", "--trusted-roots", "roots", "auth.xml"]);
    assert!(
        r.stdout.contains("rights=authority delegate=true"),
        "{}",
        r.stdout
    );

    // xmlsec1 (what gcf and SFA verify with) accepts what the tool signed, both algorithms.
    if Command::new("xmlsec1").arg("--version").output().is_err() {
        eprintln!("SKIPPED the xmlsec1 half: xmlsec1 is not installed (apt-get install xmlsec1)");
        return;
    }
    let root_pem = dir.join("root.pem");
    let root_gid = fs::read_to_string(dir.join("roots/plc.gid")).unwrap();
    fs::write(&root_pem, root_gid).unwrap();
    for (file, nodes) in [
        ("s1.cred.xml", &["Sig_ref0"][..]),
        ("bob.cred.xml", &["Sig_ref0", "Sig_ref1"][..]),
    ] {
        for node in nodes {
            let out = Command::new("xmlsec1")
                .args([
                    "--verify",
                    "--enabled-key-data",
                    "x509",
                    "--node-id",
                    node,
                    "--trusted-pem",
                ])
                .arg(&root_pem)
                .arg(dir.join(file))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "xmlsec1 refused {file} {node}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn the_gcf_and_sfa_vectors_get_their_verdicts_through_the_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let v = geni_vectors();
    for (name, root) in [
        ("gcf", "gcf/root-ch-cert.pem"),
        ("sfa", "sfa-sha256/root-plc.gid"),
        ("evil", "sfa-sha256/untrusted-root-evil.gid"),
    ] {
        fs::create_dir(dir.join(name)).unwrap();
        let file = Path::new(root).file_name().unwrap();
        fs::copy(v.join(root), dir.join(name).join(file)).unwrap();
    }
    for (cred, own) in [
        ("gcf/fixslice-delegated-to-bob.cred.xml", "gcf"),
        ("gcf/alice-user.cred.xml", "gcf"),
        ("sfa-sha256/slice1-delegated-to-bob.cred.xml", "sfa"),
    ] {
        let path = v.join(cred);
        let path = path.to_str().unwrap();
        for roots in ["gcf", "sfa", "evil"] {
            let want = if roots == own { 0 } else { 1 };
            let r = expect(want, dir, &["verify", "--trusted-roots", roots, path]);
            if want == 1 {
                assert!(
                    r.stderr.contains("does not chain to a trusted root"),
                    "{}",
                    r.stderr
                );
            }
        }
    }
}

#[test]
fn geni_flags_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // --type needs --urn; --urn and --compat-2008 exclude each other.
    expect(0, dir, &["init", "plc"]);
    expect(0, dir, &["key", "--out", "a.pkey", "--bits", "1024"]);
    expect(
        2,
        dir,
        &["gid", "plc.a", "--pubkey", "a.pkey.pub", "--type", "slice"],
    );
    expect(2, dir, &["create", "plc.x", "--urn", "--compat-2008"]);
    // A 2008 GID has no URN: a GENI credential cannot name it.
    expect(
        0,
        dir,
        &["gid", "plc.a", "--pubkey", "a.pkey.pub", "--out", "a.gid"],
    );
    let r = expect(
        2,
        dir,
        &[
            "credential",
            "--caller",
            "a.gid",
            "--object",
            "a.gid",
            "--rights",
            "info",
            "--format",
            "geni",
        ],
    );
    assert!(r.stderr.contains("has no URN"), "{}", r.stderr);
    // delegate takes only GENI credentials.
    expect(
        0,
        dir,
        &[
            "credential",
            "--caller",
            "a.gid",
            "--object",
            "a.gid",
            "--rights",
            "info",
            "--out",
            "a.cred",
        ],
    );
    let r = expect(
        2,
        dir,
        &[
            "delegate",
            "--credential",
            "a.cred",
            "--to",
            "a.gid",
            "--key",
            "a.pkey",
            "--rights",
            "info",
        ],
    );
    assert!(r.stderr.contains("not a GENI credential"), "{}", r.stderr);
}
