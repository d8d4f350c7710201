//! The packaging, exercised for real: `rpm.spec` built with `rpmbuild` through
//! `packaging/build-rpm.sh` and installed, upgraded and erased with `rpm --root` in a temporary
//! root; `packaging/bootimage/install-into-image.sh` on a temporary image tree; the systemd units
//! through `systemd-analyze verify`.
//!
//! The packages carry the debug binaries `cargo test --workspace` has already built (stripped
//! copies), not a release build: what is tested is the packaging, and a release build would
//! double the suite's cost. Tests whose tool is missing say so and skip (`.ci/run` installs
//! rpmbuild, so CI runs the RPM test).
//!
//! The root `rpm --root` installs into gets a shell (`/bin/sh` and the libraries it links), a
//! `/dev/null`, and a `systemctl` that records its arguments: the scriptlets run chrooted there,
//! and the recording `systemctl` is a test double for the service manager of the node the RPM
//! is installed on. `/run/systemd/system` exists in that root, so the scriptlets take the
//! "systemd is running" branches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary of the workspace, from the target directory this test runs from
/// (`<target>/<profile>/deps/packaging-…`). `cargo test --workspace` builds the binaries before
/// running any test; otherwise they are built here.
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join(name);
    if !bin.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repo())
            .args(["build", "-p", "geni-agent", "--bins"])
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "building the geni-agent binaries failed");
    }
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Stripped copies of the binaries, so that the packages stay small.
fn staged_bins(dir: &Path) -> PathBuf {
    let bins = dir.join("bin");
    fs::create_dir(&bins).unwrap();
    for name in ["geni-agent", "genicli"] {
        let to = bins.join(name);
        fs::copy(workspace_bin(name), &to).unwrap();
        if have("strip") {
            run(Command::new("strip").arg(&to));
        }
    }
    bins
}

fn build_rpm(bins: &Path, out: &Path, release: u32) -> PathBuf {
    let built = run(Command::new(repo().join("packaging/build-rpm.sh"))
        .arg("--bin-dir")
        .arg(bins)
        .arg("--roots")
        .arg(repo().join("trusted_roots.example"))
        .args(["--release", &release.to_string(), "--out"])
        .arg(out)
        // No payload compression: quicker, and the size is not under test.
        .args(["--", "--define", "_binary_payload w0.ufdio"]));
    let path = String::from_utf8(built.stdout).unwrap();
    let path = PathBuf::from(path.lines().last().unwrap());
    assert!(path.is_file(), "{}", path.display());
    path
}

/// A root the scriptlets can run in: a shell and what it links, /dev/null, and the recording
/// `systemctl`.
fn scriptlet_root(root: &Path) {
    let sh = fs::canonicalize("/bin/sh").unwrap();
    let ldd = run(Command::new("ldd").arg(&sh));
    for lib in String::from_utf8(ldd.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let to = root.join(lib.trim_start_matches('/'));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(lib, &to).unwrap();
    }
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(&sh, root.join("bin/sh")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    fs::write(root.join("dev/null"), "").unwrap();
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    let systemctl = root.join("usr/bin/systemctl");
    fs::write(&systemctl, "#!/bin/sh\necho \"$*\" >> /systemctl.log\n").unwrap();
    fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();
}

fn rpm(root: &Path, args: &[&str]) -> Output {
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm"])
        .args(args))
}

/// What systemctl was asked since the last call, and forget it.
fn systemctl_calls(root: &Path) -> String {
    let log = root.join("systemctl.log");
    let calls = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    calls
}

#[test]
fn rpm_installs_upgrades_and_erases_in_a_root() {
    for tool in ["rpmbuild", "rpm"] {
        if !have(tool) {
            eprintln!(
                "SKIPPED rpm_installs_upgrades_and_erases_in_a_root: {tool} is not installed \
                 (apt-get install rpm, or dnf install rpm-build)"
            );
            return;
        }
    }
    if !is_root() {
        eprintln!(
            "SKIPPED rpm_installs_upgrades_and_erases_in_a_root: rpm --root runs the scriptlets \
             chrooted and installs files owned by root, which needs root"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bins = staged_bins(dir.path());
    let out = dir.path().join("rpms");
    let first = build_rpm(&bins, &out, 1);
    let version = run(Command::new(bins.join("geni-agent")).arg("--version")).stdout;
    let version = String::from_utf8(version).unwrap();
    let version = version.split_whitespace().nth(1).unwrap();
    assert_eq!(
        first.file_name().unwrap().to_str().unwrap(),
        format!("geni-agent-{version}-1.x86_64.rpm")
    );

    // The package's own file list: modes, owners, config and doc flags.
    let listed = run(Command::new("rpm").arg("-qp").arg(&first).args([
        "--qf",
        "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]",
    ]));
    let listed = String::from_utf8(listed.stdout).unwrap();
    let listed: Vec<&str> = listed.lines().collect();
    assert_eq!(
        listed,
        [
            "drwxr-xr-x root:root  /etc/geni-agent",
            "-rw-r----- root:root cn /etc/geni-agent/agent.toml",
            "drwxr-xr-x root:root  /etc/geni-agent/trusted_roots",
            "-rw-r--r-- root:root cn /etc/geni-agent/trusted_roots/example.gid",
            "-rwxr-xr-x root:root  /usr/bin/geni-agent",
            "-rwxr-xr-x root:root  /usr/bin/genicli",
            "-rw-r--r-- root:root  /usr/lib/systemd/system/geni-agent-node.service",
            "-rw-r--r-- root:root  /usr/lib/systemd/system/geni-agent-plc.service",
            "drwxr-xr-x root:root  /usr/share/doc/geni-agent",
            "-rw-r--r-- root:root d /usr/share/doc/geni-agent/README.md",
            "-rw-r--r-- root:root d /usr/share/doc/geni-agent/trusted_roots.md",
            "drwx--x--x root:root  /var/lib/geni-agent",
        ]
    );

    // Install: files with their modes, the packaged config, the node unit enabled.
    let root = dir.path().join("root");
    scriptlet_root(&root);
    rpm(&root, &["-i", "--nodeps", first.to_str().unwrap()]);
    let at = |p: &str| root.join(p);
    for (path, want) in [
        ("usr/bin/geni-agent", 0o755),
        ("usr/bin/genicli", 0o755),
        ("usr/lib/systemd/system/geni-agent-node.service", 0o644),
        ("usr/lib/systemd/system/geni-agent-plc.service", 0o644),
        ("etc/geni-agent", 0o755),
        ("etc/geni-agent/agent.toml", 0o640),
        ("etc/geni-agent/trusted_roots", 0o755),
        ("etc/geni-agent/trusted_roots/example.gid", 0o644),
        ("var/lib/geni-agent", 0o711),
    ] {
        assert_eq!(mode(&at(path)), want, "mode of {path}");
        assert_eq!(fs::metadata(at(path)).unwrap().uid(), 0, "owner of {path}");
    }
    assert_eq!(
        fs::read(at("etc/geni-agent/agent.toml")).unwrap(),
        fs::read(repo().join("packaging/agent.toml")).unwrap()
    );
    assert_eq!(
        fs::read(at("usr/lib/systemd/system/geni-agent-node.service")).unwrap(),
        fs::read(repo().join("packaging/systemd/geni-agent-node.service")).unwrap()
    );
    assert_eq!(
        systemctl_calls(&root),
        "daemon-reload\nenable geni-agent-node.service\n"
    );
    // The installed binary accepts the installed configuration.
    run(Command::new(at("usr/bin/geni-agent"))
        .args(["node", "--check-config", "--config"])
        .arg(at("etc/geni-agent/agent.toml")));

    // Upgrade: the operator's config and the node's state stay; the service is restarted, never
    // stopped or disabled.
    let site_config = fs::read_to_string(at("etc/geni-agent/agent.toml"))
        .unwrap()
        .replace("0.0.0.0:12345", "0.0.0.0:12346");
    fs::write(at("etc/geni-agent/agent.toml"), &site_config).unwrap();
    fs::write(at("var/lib/geni-agent/local-state.json"), "{}").unwrap();
    let second = build_rpm(&bins, &out, 2);
    rpm(&root, &["-U", "--nodeps", second.to_str().unwrap()]);
    let q = rpm(&root, &["-q", "geni-agent"]);
    assert_eq!(
        String::from_utf8(q.stdout).unwrap().trim(),
        format!("geni-agent-{version}-2.x86_64")
    );
    assert_eq!(
        fs::read_to_string(at("etc/geni-agent/agent.toml")).unwrap(),
        site_config
    );
    assert!(!at("etc/geni-agent/agent.toml.rpmnew").exists());
    assert_eq!(
        fs::read_to_string(at("var/lib/geni-agent/local-state.json")).unwrap(),
        "{}"
    );
    assert_eq!(mode(&at("var/lib/geni-agent")), 0o711);
    assert_eq!(
        systemctl_calls(&root),
        "daemon-reload\ndaemon-reload\ntry-restart geni-agent-node.service geni-agent-plc.service\n"
    );

    // Erase: stopped and disabled first; the changed config is saved, the state kept.
    rpm(&root, &["-e", "--nodeps", "geni-agent"]);
    assert_eq!(
        systemctl_calls(&root),
        "--no-reload disable --now geni-agent-node.service geni-agent-plc.service\n\
         daemon-reload\n"
    );
    for gone in [
        "usr/bin/geni-agent",
        "usr/bin/genicli",
        "usr/lib/systemd/system/geni-agent-node.service",
        "etc/geni-agent/agent.toml",
        "etc/geni-agent/trusted_roots/example.gid",
    ] {
        assert!(!at(gone).exists(), "{gone} is still there after erase");
    }
    assert_eq!(
        fs::read_to_string(at("etc/geni-agent/agent.toml.rpmsave")).unwrap(),
        site_config
    );
    assert!(at("var/lib/geni-agent/local-state.json").is_file());
}

#[test]
fn boot_image_gets_binary_config_roots_and_the_enabled_unit() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    fs::create_dir(&image).unwrap();
    let script = repo().join("packaging/bootimage/install-into-image.sh");
    let bin = workspace_bin("geni-agent");
    let install = |extra: &[&Path]| {
        let mut c = Command::new(&script);
        c.arg(&image).arg("--bin").arg(&bin);
        for (flag, value) in ["--roots", "--config"].iter().zip(extra) {
            c.arg(flag).arg(value);
        }
        run(&mut c)
    };
    let site_config = dir.path().join("site.toml");
    fs::write(&site_config, "[node]\nlisten = \"0.0.0.0:12346\"\n").unwrap();
    let said = install(&[&repo().join("trusted_roots.example"), &site_config]);
    assert!(
        String::from_utf8_lossy(&said.stdout).contains("1 trusted root(s)"),
        "{said:?}"
    );

    let at = |p: &str| image.join(p);
    for (path, want) in [
        ("usr/bin/geni-agent", 0o755),
        ("usr/lib/systemd/system/geni-agent-node.service", 0o644),
        ("etc/geni-agent/agent.toml", 0o640),
        ("etc/geni-agent/trusted_roots", 0o755),
        ("etc/geni-agent/trusted_roots/example.gid", 0o644),
        ("var/lib/geni-agent", 0o711),
    ] {
        assert_eq!(mode(&at(path)), want, "mode of {path}");
    }
    assert_eq!(
        fs::read(at("usr/bin/geni-agent")).unwrap(),
        fs::read(&bin).unwrap()
    );
    assert_eq!(
        fs::read_to_string(at("etc/geni-agent/agent.toml")).unwrap(),
        fs::read_to_string(&site_config).unwrap()
    );
    assert_eq!(
        fs::read(at("etc/geni-agent/trusted_roots/example.gid")).unwrap(),
        fs::read(repo().join("trusted_roots.example/example.gid")).unwrap()
    );
    let wants = at("etc/systemd/system/multi-user.target.wants/geni-agent-node.service");
    assert_eq!(
        fs::read_link(&wants).unwrap(),
        Path::new("/usr/lib/systemd/system/geni-agent-node.service")
    );
    // systemd itself agrees, where it is installed.
    if have("systemctl") {
        let out = run(Command::new("systemctl")
            .arg(format!("--root={}", image.display()))
            .args(["is-enabled", "geni-agent-node.service"]));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "enabled");
    } else {
        eprintln!("note: systemctl is not installed; the enablement was checked by its symlink");
    }
    // The installed binary accepts the installed configuration.
    run(Command::new(at("usr/bin/geni-agent"))
        .args(["node", "--check-config", "--config"])
        .arg(at("etc/geni-agent/agent.toml")));

    // Again, without --config: the image's config stays, the rest is refreshed.
    install(&[&repo().join("trusted_roots.example")]);
    assert_eq!(
        fs::read_to_string(at("etc/geni-agent/agent.toml")).unwrap(),
        fs::read_to_string(&site_config).unwrap()
    );
    assert!(fs::read_link(&wants).is_ok());

    // A fresh image without --config gets the packaged default; without roots, a warning.
    let bare = dir.path().join("bare");
    fs::create_dir(&bare).unwrap();
    let out = run(Command::new(&script).arg(&bare).arg("--bin").arg(&bin));
    assert_eq!(
        fs::read(bare.join("etc/geni-agent/agent.toml")).unwrap(),
        fs::read(repo().join("packaging/agent.toml")).unwrap()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trusted roots"));

    // Mistakes are refused before anything is written.
    for args in [
        vec![dir.path().join("missing")],
        vec!["/".into()],
        vec![
            image.clone(),
            "--roots".into(),
            dir.path().join("no-such-roots"),
        ],
    ] {
        let out = Command::new(&script)
            .args(&args)
            .arg("--bin")
            .arg(&bin)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("install-into-image:"));
    }
}

#[test]
fn systemd_units_verify() {
    if !have("systemd-analyze") {
        eprintln!(
            "SKIPPED systemd_units_verify: systemd-analyze is not installed (apt-get install systemd)"
        );
        return;
    }
    // systemd-analyze checks that ExecStart exists; point it at the binary built here.
    let dir = tempfile::tempdir().unwrap();
    let bin = workspace_bin("geni-agent");
    let mut units = Vec::new();
    for name in ["geni-agent-node.service", "geni-agent-plc.service"] {
        let text = fs::read_to_string(repo().join("packaging/systemd").join(name)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/geni-agent "), "{name}");
        let unit = dir.path().join(name);
        fs::write(
            &unit,
            text.replace("/usr/bin/geni-agent", bin.to_str().unwrap()),
        )
        .unwrap();
        units.push(unit);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    // Clean means silent: any warning about our units is a finding.
    assert!(!said.contains("geni-agent"), "{said}");
}
