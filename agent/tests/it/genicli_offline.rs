//! `genicli` without a server, as a real process: `dumpCredential` of every 2008 vector compared
//! line for line with what the 2008 classes' `dump()` printed (fixtures made under Python 2.7 by
//! `tests/fixtures/gw2008_dumps/generate.py`), `--json`, `createKey`, and the failures that
//! happen before or instead of a call (missing key or credential, no server trust, a server that
//! is not there, usage mistakes), each with its exit status and advice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

const GENICLI: &str = env!("CARGO_BIN_EXE_genicli");

fn vectors_dir() -> PathBuf {
    std::env::var_os("GENI_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/gw2008")
        })
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gw2008_dumps")
}

fn genicli(dir: &Path, args: &[&str]) -> Output {
    Command::new(GENICLI)
        .current_dir(dir)
        .args(args)
        .env("GENI_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn status(out: &Output) -> i32 {
    out.status.code().expect("genicli ended by a signal")
}

/// Asserts exit status `code`, and returns stderr.
fn fails(out: &Output, code: i32) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        status(out),
        code,
        "stdout: {}\nstderr: {err}",
        text(&out.stdout)
    );
    err
}

#[test]
fn dump_credential_prints_every_2008_vector_as_2008_did() {
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for entry in fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".txt") else {
            continue;
        };
        // `cred_user_self_x.cred.txt` is the dump of `cred/user_self_x.cred`.
        let (kind_dir, file) = stem.split_once('_').unwrap();
        let vector = vectors_dir().join(kind_dir).join(file);
        let out = genicli(dir.path(), &["dumpCredential", vector.to_str().unwrap()]);
        assert_eq!(status(&out), 0, "{name}: {}", text(&out.stderr));
        let expected = fs::read_to_string(&path).unwrap();
        let got = text(&out.stdout);
        for (n, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
            assert_eq!(g, e, "{name}, line {}", n + 1);
        }
        assert_eq!(got, expected, "{name}");
        compared += 1;
    }
    // 7 GIDs, 8 credentials, 2 tickets.
    assert_eq!(compared, 17);
}

#[test]
fn dump_parents_walks_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let cred = vectors_dir().join("cred/slice_planetlab.us.pl.testslice.cred");
    let out = genicli(
        dir.path(),
        &["--dump_parents", "dumpCredential", cred.to_str().unwrap()],
    );
    assert_eq!(status(&out), 0);
    let got = text(&out.stdout);
    let headers: Vec<&str> = got.lines().filter(|l| l.contains("CREDENTIAL ")).collect();
    // The slice credential, then the authority credentials of planetlab.us.pl, planetlab.us and
    // planetlab (2008 get_auth_cred chain).
    assert_eq!(
        headers,
        [
            "CREDENTIAL planetlab.us.pl.testslice",
            "PARENT CREDENTIAL planetlab.us.pl",
            "PARENT CREDENTIAL planetlab.us",
            "PARENT CREDENTIAL planetlab",
        ]
    );
    assert!(got.contains("      privs: authority\n"), "{got}");
    // Each embedded GID shows its parents too.
    assert!(got.contains("         parent:\n"), "{got}");
}

#[test]
fn dump_credential_json_has_the_decoded_fields() {
    let dir = tempfile::tempdir().unwrap();
    let v = vectors_dir();
    let out = genicli(
        dir.path(),
        &[
            "--json",
            "dumpCredential",
            v.join("cred/user_self_planetlab.us.pl.account_test.cred")
                .to_str()
                .unwrap(),
        ],
    );
    assert_eq!(status(&out), 0);
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["command"], "dumpCredential");
    let r = &j["result"];
    assert_eq!(r["kind"], "credential");
    assert_eq!(r["subject"], "planetlab.us.pl.account_test");
    assert_eq!(r["privileges"], "refresh,resolve,info");
    assert_eq!(r["delegate"], false);
    assert_eq!(r["caller"]["hrn"], "planetlab.us.pl.account_test");
    assert_eq!(r["object"]["uuid"], r["caller"]["uuid"]);

    let out = genicli(
        dir.path(),
        &[
            "dumpCredential",
            "--json",
            v.join("ticket/ticket_planetlab.us.pl.testslice.ticket")
                .to_str()
                .unwrap(),
        ],
    );
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    let r = &j["result"];
    assert_eq!(r["kind"], "ticket");
    assert_eq!(r["attributes"]["name"], "pl_testslice");
    assert_eq!(r["attributes"]["timestamp"], 1_227_612_345.5);
    assert_eq!(r["rspec"]["cpu_share"], "32");

    let out = genicli(
        dir.path(),
        &[
            "dumpGid",
            "--json",
            v.join("gid/planetlab.us.pl.gid").to_str().unwrap(),
        ],
    );
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["result"]["kind"], "gid");
    assert_eq!(j["result"]["hrn"], "planetlab.us.pl");
}

#[test]
fn dump_credential_of_a_file_that_is_none_says_so() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("junk.cred"), "hello").unwrap();
    let err = fails(&genicli(dir.path(), &["dumpCredential", "junk.cred"]), 3);
    assert!(
        err.contains("junk.cred holds no credential, GID or ticket"),
        "{err}"
    );
    let err = fails(&genicli(dir.path(), &["dumpCredential", "absent.cred"]), 3);
    assert!(err.contains("absent.cred"), "{err}");
}

#[test]
fn create_key_writes_a_0600_key_named_after_the_username_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = genicli(
        dir.path(),
        &["--username", "planetlab.us.pl.alice", "createKey"],
    );
    assert_eq!(status(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "writing private key to alice.pkey\n");
    let key = dir.path().join("alice.pkey");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pem = fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pem}");

    let err = fails(
        &genicli(
            dir.path(),
            &["--username", "planetlab.us.pl.alice", "createKey"],
        ),
        3,
    );
    assert!(err.contains("alice.pkey already exists"), "{err}");
    assert_eq!(fs::read_to_string(&key).unwrap(), pem);

    // An explicit file name, and --json.
    let out = genicli(dir.path(), &["--json", "createKey", "other.pkey"]);
    assert_eq!(status(&out), 0);
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["result"]["keyfile"], "other.pkey");
    assert!(dir.path().join("other.pkey").is_file());
}

#[test]
fn a_missing_key_file_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(
        &genicli(
            dir.path(),
            &["--username", "planetlab.us.pl.bob", "listSlices"],
        ),
        3,
    );
    assert!(err.contains("key file bob.pkey does not exist"), "{err}");
    assert!(
        err.contains("genicli --username planetlab.us.pl.bob createKey"),
        "{err}"
    );
}

#[test]
fn a_key_others_can_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    genicli(dir.path(), &["--username", "bob", "createKey"]);
    let key = dir.path().join("bob.pkey");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails(
        &genicli(dir.path(), &["--username", "bob", "listSlices"]),
        3,
    );
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_missing_credential_file_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    genicli(
        dir.path(),
        &["--username", "planetlab.us.pl.bob", "createKey"],
    );
    let err = fails(
        &genicli(
            dir.path(),
            &[
                "--username",
                "planetlab.us.pl.bob",
                "--danger_accept_any_server",
                "resolve",
                "planetlab.us.pl",
            ],
        ),
        3,
    );
    assert!(
        err.contains("credential file bob.cred does not exist"),
        "{err}"
    );
    assert!(
        err.contains("--credfile None --outfile bob.cred getCredential user"),
        "{err}"
    );

    let err = fails(
        &genicli(
            dir.path(),
            &[
                "--username",
                "planetlab.us.pl.bob",
                "--credfile",
                "None",
                "--danger_accept_any_server",
                "stopSlice",
            ],
        ),
        2,
    );
    assert!(err.contains("stopSlice needs a credential"), "{err}");

    let err = fails(
        &genicli(
            dir.path(),
            &[
                "--username",
                "bob",
                "--danger_accept_any_server",
                "--ticketfile",
                "none.ticket",
                "redeemTicket",
            ],
        ),
        3,
    );
    assert!(
        err.contains("ticket file none.ticket does not exist"),
        "{err}"
    );
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_server_is_named_with_the_os_error() {
    let dir = tempfile::tempdir().unwrap();
    genicli(dir.path(), &["--username", "bob", "createKey"]);
    fs::write(dir.path().join("bob.cred"), "unused").unwrap();
    let port = closed_port();
    let url = format!("https://127.0.0.1:{port}/");
    let out = genicli(
        dir.path(),
        &[
            "--username",
            "bob",
            "--server",
            &url,
            "--danger_accept_any_server",
            "--ticketfile",
            vectors_dir()
                .join("ticket/ticket_planetlab.us.pl.testslice.ticket")
                .to_str()
                .unwrap(),
            "redeemTicket",
        ],
    );
    let err = fails(&out, 4);
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains("is the server running"), "{err}");
    // The client certificate was made on the way, from the key.
    assert!(dir.path().join("bob.cert").is_file());
    assert!(
        err.contains("writing self-signed cert to bob.cert"),
        "{err}"
    );

    let out = genicli(
        dir.path(),
        &[
            "--json",
            "--username",
            "bob",
            "--server",
            &url,
            "--danger_accept_any_server",
            "--ticketfile",
            vectors_dir()
                .join("ticket/ticket_planetlab.us.pl.testslice.ticket")
                .to_str()
                .unwrap(),
            "redeemTicket",
        ],
    );
    assert_eq!(status(&out), 4);
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["command"], "redeemTicket");
    assert_eq!(j["error"]["kind"], "connection");
    assert_eq!(j["error"]["server"], url.as_str());
    assert_eq!(j["error"]["exit_status"], 4);
    assert!(j["error"]["hint"].as_str().unwrap().contains("--server"));
}

#[test]
fn without_any_server_trust_genicli_refuses_and_lists_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    genicli(dir.path(), &["--username", "bob", "createKey"]);
    fs::write(dir.path().join("bob.cred"), "unused").unwrap();
    let err = fails(
        &genicli(dir.path(), &["--username", "bob", "listSlices"]),
        3,
    );
    assert!(err.contains("does not know whom to trust"), "{err}");
    assert!(err.contains("--trusted_roots"), "{err}");
    assert!(err.contains("--server_gid"), "{err}");
    assert!(err.contains("--danger_accept_any_server"), "{err}");

    // An empty roots directory is no trust either.
    fs::create_dir(dir.path().join("trusted_roots")).unwrap();
    let err = fails(
        &genicli(dir.path(), &["--username", "bob", "listSlices"]),
        3,
    );
    assert!(err.contains("no usable trusted root"), "{err}");

    let err = fails(
        &genicli(
            dir.path(),
            &[
                "--username",
                "bob",
                "--danger_accept_any_server",
                "--server_gid",
                "x.gid",
                "listSlices",
            ],
        ),
        2,
    );
    assert!(err.contains("cannot be combined"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&genicli(dir.path(), &[]), 2);
    assert!(err.contains("no operation specified"), "{err}");
    assert!(err.contains("genicli help"), "{err}");
    let err = fails(&genicli(dir.path(), &["getCredential", "user"]), 2);
    assert!(err.contains("syntax: getCredential <type> <hrn>"), "{err}");
    let err = fails(
        &genicli(dir.path(), &["register", "user", "a.b.c", "c.gid"]),
        2,
    );
    assert!(err.contains("--email"), "{err}");

    for args in [&["help"][..], &["--help"][..]] {
        let out = genicli(dir.path(), args);
        assert_eq!(status(&out), 0);
        let help = text(&out.stdout);
        for word in [
            "--username",
            "--outfile",
            "--credfile",
            "--keyfile",
            "--ticketfile",
            "--email",
            "--ip",
            "--dns",
            "--dump_parents",
            "--server",
            "--filter",
            "--json",
            "--danger_accept_any_server",
            "resolve <hrn>",
            "getCredential <type> <hrn>",
            "createKey",
            "createGid <hrn> <uuid|None> <pubkey_fn>",
            "register <type> <hrn> <gid_filename>",
            "remove <type> <hrn>",
            "update <type> <hrn>",
            "list",
            "getTicket <hrn>",
            "redeemTicket",
            "startSlice, stopSlice, resetSlice, deleteSlice, listSlices",
            "dumpCredential <filename>",
            "Exit status: 0 success",
        ] {
            assert!(help.contains(word), "help lacks {word}");
        }
    }
}
