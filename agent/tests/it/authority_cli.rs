//! End-to-end tests of `geni-agent authority`: the real binary, run as a process on real files in
//! a temporary directory, checked by exit code, output and the files it leaves behind. They pin
//! the exit-code contract of `verify` (0 accept, 1 reject, 2 usage or I/O error), the 2008
//! compatibility form, and the 2008 vectors under `../shared/vectors/gw2008`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

const SLICE_RIGHTS: &str = "embed,bind,control,info";
const ATTRIBUTES: &str = r#"{"name":"pl_slice","keys":["ssh-rsa AAA x"],"timestamp":1227612345.5}"#;
const RSPEC: &str = r#"{"cpu_share":"32"}"#;

/// One finished run of the binary.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs `geni-agent authority ARGS` in `cwd`.
fn run(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_geni-agent"))
        .arg("authority")
        .args(args)
        .current_dir(cwd)
        .env_remove("GENI_LOG")
        .output()
        .unwrap();
    Run {
        code: out.status.code().expect("killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs and insists on `code`.
pub(super) fn expect(code: i32, cwd: &Path, args: &[&str]) -> Run {
    let r = run(cwd, args);
    assert_eq!(
        r.code,
        code,
        "`geni-agent authority {}` exited {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        r.code,
        r.stdout,
        r.stderr
    );
    r
}

fn ok(cwd: &Path, args: &[&str]) -> Run {
    expect(0, cwd, args)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn json_line(text: &str) -> Json {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn vectors_dir() -> PathBuf {
    std::env::var_os("GENI_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/gw2008")
        })
}

/// Builds, in `dir`, the tree planetlab → planetlab.us → planetlab.us.pl, the principals alice and
/// slice with their keys and GIDs, a slice credential and a ticket for node1, and `roots/` holding
/// the root GID. `extra` goes to every command that writes into the tree.
fn build(dir: &Path, extra: &[&str]) {
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let ok_with = |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(dir, &args)
    };
    let init = ok_with(&["init", "planetlab"]);
    assert!(
        init.stdout.contains("authorities/planetlab/planetlab.gid"),
        "{}",
        init.stdout
    );
    assert!(
        init.stdout
            .contains("cp authorities/planetlab/planetlab.gid /etc/geni-agent/trusted_roots/"),
        "{}",
        init.stdout
    );
    let us = ok_with(&["create", "planetlab.us"]);
    assert!(us.stdout.contains("authorities/planetlab/us/us.gid"));
    assert!(us.stdout.contains("created authority planetlab.us (uuid "));
    ok_with(&["create", "planetlab.us.pl"]);
    for who in ["alice", "slice"] {
        let key = format!("{who}.pkey");
        ok(dir, &["key", "--out", &key]);
        let hrn = format!("planetlab.us.pl.{who}");
        let pubkey = format!("{who}.pkey.pub");
        let gid = format!("{who}.gid");
        ok_with(&["gid", &hrn, "--pubkey", &pubkey, "--out", &gid]);
    }
    ok_with(&[
        "credential",
        "--caller",
        "alice.gid",
        "--object",
        "slice.gid",
        "--rights",
        SLICE_RIGHTS,
        "--out",
        "slice.cred",
    ]);
    let mut ticket = vec![
        "ticket",
        "--caller",
        "alice.gid",
        "--slice",
        "slice.gid",
        "--attributes",
        ATTRIBUTES,
        "--rspec",
        RSPEC,
        "--out",
        "t.ticket",
    ];
    // The 2008 ticket shape has no place for a target node.
    if !extra.contains(&"--compat-2008") {
        ticket.extend(["--node", "planetlab.us.pl.node1"]);
    }
    ok_with(&ticket);
    fs::create_dir(dir.join("roots")).unwrap();
    fs::copy(
        dir.join("authorities/planetlab/planetlab.gid"),
        dir.join("roots/planetlab.gid"),
    )
    .unwrap();
}

#[test]
fn a_new_tree_issues_objects_that_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir, &[]);

    let auth = dir.join("authorities/planetlab/us/pl");
    for file in ["pl.gid", "pl.pkey", "pl.dbinfo"] {
        assert!(auth.join(file).is_file(), "{file} missing");
    }
    assert_eq!(mode(&auth.join("pl.pkey")), 0o600);
    assert_eq!(mode(&dir.join("alice.pkey")), 0o600);
    assert!(
        fs::read_to_string(dir.join("alice.pkey.pub"))
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );

    let verify = |kind: &str, file: &str| {
        ok(
            dir,
            &["verify", "--trusted-roots", "roots", "--kind", kind, file],
        )
    };
    let gid = verify("gid", "alice.gid");
    assert!(
        gid.stdout
            .starts_with("ACCEPT gid planetlab.us.pl.alice uuid="),
        "{}",
        gid.stdout
    );
    let cred = verify("credential", "slice.cred");
    assert!(
        cred.stdout.starts_with(
            "ACCEPT credential planetlab.us.pl.slice caller=planetlab.us.pl.alice \
             rights=embed,bind,control,info delegate=false root=planetlab expires="
        ),
        "{}",
        cred.stdout
    );
    let ticket = ok(
        dir,
        &[
            "verify",
            "--trusted-roots",
            "roots",
            "--kind",
            "ticket",
            "t.ticket",
            "--node",
            "planetlab.us.pl.node1",
        ],
    );
    assert!(
        ticket
            .stdout
            .starts_with("ACCEPT ticket planetlab.us.pl.slice caller=planetlab.us.pl.alice"),
        "{}",
        ticket.stdout
    );

    let json = |kind: &str, file: &str| {
        let r = ok(
            dir,
            &[
                "verify",
                "--trusted-roots",
                "roots",
                "--kind",
                kind,
                file,
                "--json",
            ],
        );
        json_line(&r.stdout)
    };
    let v = json("credential", "slice.cred");
    assert_eq!(v["verdict"], "accept");
    assert_eq!(v["kind"], "credential");
    assert_eq!(v["subject"], "planetlab.us.pl.slice");
    assert_eq!(v["caller"], "planetlab.us.pl.alice");
    assert_eq!(v["object"], "planetlab.us.pl.slice");
    assert_eq!(v["rights"], SLICE_RIGHTS);
    assert_eq!(v["root"], "planetlab");
    assert!(v["expires"].as_i64().unwrap() > 1_700_000_000);
    let v = json("gid", "alice.gid");
    assert_eq!(v["verdict"], "accept");
    assert_eq!(v["subject"], "planetlab.us.pl.alice");
    assert!(
        v["uuid"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit())
    );
    let v = json("ticket", "t.ticket");
    assert_eq!(v["verdict"], "accept");
    assert_eq!(v["subject"], "planetlab.us.pl.slice");
    assert_eq!(v["node"], "planetlab.us.pl.node1");

    // show: the GID header, and the ticket's JSON attributes in the order given.
    let shown = ok(dir, &["show", "alice.gid"]);
    assert!(
        shown
            .stdout
            .starts_with("GID planetlab.us.pl.alice\n  hrn: planetlab.us.pl.alice\n uuid: "),
        "{}",
        shown.stdout
    );
    let shown = ok(dir, &["show", "t.ticket", "--json"]);
    let v = json_line(&shown.stdout);
    assert_eq!(v["kind"], "ticket");
    assert_eq!(v["target"], "planetlab.us.pl.node1");
    assert_eq!(v["rspec"]["cpu_share"], "32");
    assert_eq!(v["attributes"]["timestamp"], 1_227_612_345.5);
    let names: Vec<&str> = v["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["name", "keys", "timestamp"]);
}

#[test]
fn rejections_exit_1_and_setup_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir, &[]);
    let verify = |code: i32, roots: &str, kind: &str, file: &str, extra: &[&str]| {
        let mut args = vec!["verify", "--trusted-roots", roots, "--kind", kind, file];
        args.extend(extra);
        expect(code, dir, &args)
    };

    // A different root with the same name: the chain must not be believed.
    ok(dir, &["init", "planetlab", "--dir", "other"]);
    fs::create_dir(dir.join("other_roots")).unwrap();
    fs::copy(
        dir.join("other/planetlab/planetlab.gid"),
        dir.join("other_roots/planetlab.gid"),
    )
    .unwrap();
    let r = verify(1, "other_roots", "credential", "slice.cred", &[]);
    assert!(
        r.stderr.contains("REJECT credential slice.cred:")
            && r.stderr.contains("does not chain to a trusted root"),
        "{}",
        r.stderr
    );
    let r = verify(1, "other_roots", "credential", "slice.cred", &["--json"]);
    let v = json_line(&r.stdout);
    assert_eq!(v["verdict"], "reject");
    assert_eq!(v["error"], "untrusted_root");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("does not chain to a trusted root")
    );

    // A damaged object is a reject, not an error.
    let text = fs::read_to_string(dir.join("slice.cred")).unwrap();
    fs::write(dir.join("truncated.cred"), &text[..text.len() / 2]).unwrap();
    let r = verify(1, "roots", "credential", "truncated.cred", &["--json"]);
    assert_eq!(json_line(&r.stdout)["error"], "decode");
    fs::write(dir.join("binary.cred"), [0xff, 0xfe, 0x00]).unwrap();
    verify(1, "roots", "credential", "binary.cred", &[]);
    let r = verify(1, "roots", "gid", "slice.cred", &[]);
    assert!(
        r.stderr.contains("holds a credential, not a gid"),
        "{}",
        r.stderr
    );

    // The ticket was made for node1.
    let r = verify(
        1,
        "roots",
        "ticket",
        "t.ticket",
        &["--node", "planetlab.us.pl.node2"],
    );
    assert!(
        r.stderr.contains("planetlab.us.pl.node2") && r.stderr.contains("planetlab.us.pl.node1"),
        "{}",
        r.stderr
    );

    // Nothing could be judged: exit 2.
    let r = verify(2, "roots", "credential", "missing.cred", &[]);
    assert!(r.stderr.contains("missing.cred"), "{}", r.stderr);
    fs::create_dir(dir.join("empty_roots")).unwrap();
    let r = verify(2, "empty_roots", "credential", "slice.cred", &[]);
    assert!(r.stderr.contains("no usable trusted root"), "{}", r.stderr);
    verify(2, "no_such_roots", "credential", "slice.cred", &[]);
    let r = verify(2, "roots", "bogus", "slice.cred", &[]);
    assert!(r.stderr.contains("bogus"), "{}", r.stderr);
    let r = verify(2, "roots", "credential", "slice.cred", &["--node", "x.y"]);
    assert!(r.stderr.contains("--node applies only to --kind ticket"));
}

#[test]
fn compat_2008_objects_need_legacy_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir, &["--compat-2008"]);
    assert_eq!(
        mode(&dir.join("authorities/planetlab/planetlab.pkey")),
        0o600
    );

    let shown = ok(dir, &["show", "slice.cred", "--json"]);
    let cert = &json_line(&shown.stdout)["certificate"];
    assert_eq!(cert["version"], 1);
    assert_eq!(cert["signature_algorithm"], "md5WithRSAEncryption");

    for (kind, file) in [
        ("gid", "alice.gid"),
        ("credential", "slice.cred"),
        ("ticket", "t.ticket"),
    ] {
        let base = ["verify", "--trusted-roots", "roots", "--kind", kind, file];
        let r = expect(1, dir, &base);
        assert!(
            r.stderr.contains("refused by the digest policy"),
            "{}",
            r.stderr
        );
        let mut legacy = base.to_vec();
        legacy.push("--legacy-digests");
        ok(dir, &legacy);
    }

    let shown = ok(dir, &["show", "slice.cred"]);
    let lines: Vec<&str> = shown.stdout.lines().collect();
    for want in [
        "CREDENTIAL planetlab.us.pl.slice",
        "      privs: embed,bind,control,info",
        "   delegate: False",
    ] {
        assert!(
            lines.contains(&want),
            "no line {want:?} in\n{}",
            shown.stdout
        );
    }

    // The 2008 lifetime is fixed; --lifetime is accepted but said to be ignored.
    let r = ok(
        dir,
        &[
            "credential",
            "--caller",
            "alice.gid",
            "--object",
            "slice.gid",
            "--rights",
            "info",
            "--lifetime",
            "3",
            "--compat-2008",
        ],
    );
    assert!(r.stderr.contains("--lifetime is ignored"), "{}", r.stderr);
    assert!(r.stdout.starts_with("-----BEGIN CERTIFICATE-----"));
    // And it cannot name a node.
    let r = expect(
        2,
        dir,
        &[
            "ticket",
            "--caller",
            "alice.gid",
            "--slice",
            "slice.gid",
            "--attributes",
            "{}",
            "--rspec",
            "{}",
            "--node",
            "planetlab.us.pl.node1",
            "--compat-2008",
        ],
    );
    assert!(r.stderr.contains("target node"), "{}", r.stderr);
}

#[test]
fn gw2008_vectors() {
    let vectors = vectors_dir();
    assert!(
        vectors.join("manifest.json").is_file(),
        "no 2008 vectors at {} (set GENI_VECTORS_DIR)",
        vectors.display()
    );
    let roots = vectors.join("trusted_roots");
    let roots = roots.to_str().unwrap();
    let verify = |code: i32, kind: &str, file: &str, legacy: bool| {
        let file = vectors.join(file);
        let mut args = vec![
            "verify",
            "--trusted-roots",
            roots,
            "--kind",
            kind,
            file.to_str().unwrap(),
        ];
        if legacy {
            args.push("--legacy-digests");
        }
        expect(code, &vectors, &args)
    };
    let slice_cred = "cred/slice_planetlab.us.pl.testslice.cred";
    let r = verify(0, "credential", slice_cred, true);
    assert!(
        r.stdout
            .starts_with("ACCEPT credential planetlab.us.pl.testslice caller="),
        "{}",
        r.stdout
    );
    verify(1, "credential", slice_cred, false);
    let r = verify(1, "credential", "neg/cred_parent_did_not_sign.cred", true);
    assert!(
        r.stderr.contains("is not signed by its parent"),
        "{}",
        r.stderr
    );
    verify(
        0,
        "ticket",
        "ticket/ticket_planetlab.us.pl.testslice.ticket",
        true,
    );
    verify(0, "gid", "gid/planetlab.us.pl.account_test.gid", true);
    verify(1, "gid", "neg/gid_truncated_pem.gid", true);

    // The design document's sample, as the 2008 dump printed it.
    let shown = ok(
        &vectors,
        &[
            "show",
            vectors
                .join("cred/user_self_planetlab.us.pl.account_test.cred")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(
        shown.stdout.starts_with(
            "CREDENTIAL planetlab.us.pl.account_test\n      privs: refresh,resolve,info\n"
        ),
        "{}",
        shown.stdout
    );
}

#[test]
fn creating_refuses_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let r = expect(2, dir, &["create", "planetlab.us"]);
    assert!(
        r.stderr.contains(
            "no authority planetlab in authorities; run `geni-agent authority init planetlab` first"
        ),
        "{}",
        r.stderr
    );
    let r = expect(2, dir, &["init", "planetlab.us"]);
    assert!(
        r.stderr.contains("init takes a top-level name"),
        "{}",
        r.stderr
    );

    ok(dir, &["init", "planetlab"]);
    let r = expect(2, dir, &["init", "planetlab"]);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    let r = expect(2, dir, &["create", "planetlab"]);
    assert!(r.stderr.contains("authority init"), "{}", r.stderr);

    // A missing parent is refused with the way out, and made with --parents.
    let r = expect(2, dir, &["create", "planetlab.us.pl"]);
    assert!(
        r.stderr
            .contains("no authority planetlab.us in authorities")
            && r.stderr.contains("--parents"),
        "{}",
        r.stderr
    );
    assert!(!dir.join("authorities/planetlab/us").exists());
    let r = ok(dir, &["create", "planetlab.us.pl", "--parents"]);
    assert!(
        r.stdout.contains("created authority planetlab.us ")
            && r.stdout.contains("created authority planetlab.us.pl "),
        "{}",
        r.stdout
    );
    let r = expect(2, dir, &["create", "planetlab.us"]);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);

    // A GID for a name whose authority is not in the tree.
    ok(dir, &["key", "--out", "bob.pkey", "--bits", "1024"]);
    let r = expect(
        2,
        dir,
        &["gid", "planetlab.eu.bob", "--pubkey", "bob.pkey.pub"],
    );
    assert!(
        r.stderr
            .contains("no authority planetlab.eu in authorities"),
        "{}",
        r.stderr
    );

    // Output files are not replaced without --force; keys never.
    let gid = [
        "gid",
        "planetlab.us.pl.bob",
        "--pubkey",
        "bob.pkey",
        "--out",
        "bob.gid",
    ];
    ok(dir, &gid);
    let before = fs::read(dir.join("bob.gid")).unwrap();
    let r = expect(2, dir, &gid);
    assert!(r.stderr.contains("pass --force"), "{}", r.stderr);
    assert_eq!(fs::read(dir.join("bob.gid")).unwrap(), before);
    let mut forced = gid.to_vec();
    forced.extend(["--force", "--uuid", "42"]);
    ok(dir, &forced);
    let shown = ok(dir, &["show", "bob.gid"]);
    assert!(shown.stdout.contains(" uuid: 42\n"), "{}", shown.stdout);
    let r = expect(2, dir, &["key", "--out", "bob.pkey"]);
    assert!(r.stderr.contains("never overwritten"), "{}", r.stderr);

    // Without --out the object goes to stdout.
    let r = ok(
        dir,
        &["gid", "planetlab.us.pl.carol", "--pubkey", "bob.pkey.pub"],
    );
    assert!(r.stdout.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(r.stdout.contains("-----parent-----"));
}

#[test]
fn authority_credentials_and_tickets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init", "planetlab"]);
    ok(dir, &["create", "planetlab.us"]);
    fs::create_dir(dir.join("roots")).unwrap();
    fs::copy(
        dir.join("authorities/planetlab/planetlab.gid"),
        dir.join("roots/planetlab.gid"),
    )
    .unwrap();

    ok(
        dir,
        &[
            "credential",
            "--authority",
            "planetlab.us",
            "--out",
            "a.cred",
        ],
    );
    let r = ok(
        dir,
        &[
            "verify",
            "--trusted-roots",
            "roots",
            "--kind",
            "credential",
            "a.cred",
            "--json",
        ],
    );
    let v = json_line(&r.stdout);
    assert_eq!(v["rights"], "authority");
    assert_eq!(v["delegate"], true);
    ok(
        dir,
        &["ticket", "--authority", "planetlab.us", "--out", "a.ticket"],
    );
    ok(
        dir,
        &[
            "verify",
            "--trusted-roots",
            "roots",
            "--kind",
            "ticket",
            "a.ticket",
        ],
    );

    // --authority excludes the per-principal flags, which are otherwise required.
    let r = expect(
        2,
        dir,
        &[
            "credential",
            "--authority",
            "planetlab.us",
            "--caller",
            "x.gid",
        ],
    );
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
    let r = expect(
        2,
        dir,
        &["credential", "--caller", "x.gid", "--object", "x.gid"],
    );
    assert!(r.stderr.contains("--rights"), "{}", r.stderr);
    let r = expect(2, dir, &["credential", "--authority", "planetlab.eu"]);
    assert!(
        r.stderr
            .contains("no authority planetlab.eu in authorities"),
        "{}",
        r.stderr
    );
}

#[test]
fn ticket_json_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init", "planetlab"]);
    ok(dir, &["create", "planetlab.us"]);
    ok(dir, &["key", "--out", "k.pkey", "--bits", "1024"]);
    ok(
        dir,
        &[
            "gid",
            "planetlab.us.s",
            "--pubkey",
            "k.pkey",
            "--out",
            "s.gid",
        ],
    );
    fs::write(dir.join("attrs.json"), r#"{"z":1,"a":[true,null]}"#).unwrap();
    let ticket = |attributes: &str| {
        vec![
            "ticket".to_owned(),
            "--caller".into(),
            "s.gid".into(),
            "--slice".into(),
            "s.gid".into(),
            "--attributes".into(),
            attributes.into(),
            "--rspec".into(),
            "{}".into(),
        ]
    };
    let args = ticket("@attrs.json");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = ok(dir, &args);
    fs::write(dir.join("t.ticket"), &r.stdout).unwrap();
    let shown = ok(dir, &["show", "t.ticket", "--json"]);
    let v = json_line(&shown.stdout);
    assert_eq!(
        serde_json::to_string(&v["attributes"]).unwrap(),
        r#"{"z":1,"a":[true,null]}"#
    );

    for (bad, says) in [
        ("[1,2]", "must be a JSON object"),
        ("{", "is not valid JSON"),
        ("@nope.json", "reading --attributes file nope.json"),
    ] {
        let args = ticket(bad);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = expect(2, dir, &args);
        assert!(r.stderr.contains(says), "{bad}: {}", r.stderr);
    }
}

#[test]
fn usage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let help = ok(dir, &["--help"]);
    for sub in [
        "init",
        "create",
        "key",
        "gid",
        "credential",
        "ticket",
        "verify",
        "show",
    ] {
        assert!(
            help.stdout.contains(&format!("\n  {sub} ")),
            "{sub} missing from\n{}",
            help.stdout
        );
    }
    expect(2, dir, &[]);
    expect(2, dir, &["frobnicate"]);
    expect(2, dir, &["key", "--out", "k.pkey", "--bits", "512"]);
    assert!(!dir.join("k.pkey").exists());
    expect(2, dir, &["init", "bad..name"]);
    let r = expect(2, dir, &["show", "nothing.gid"]);
    assert!(r.stderr.contains("nothing.gid"), "{}", r.stderr);
}
