//! Fixtures for the NodeManager backend tests: throw-away Unix accounts and the NodeManager
//! double (both from the `geni-tests` harness), the double in a directory every account can
//! reach, and a backend whose connect helper is this very test binary re-run as the target
//! account.
//!
//! The helper is this binary because a test may not add a binary or example to the crate. Re-run
//! with `nodemanager::connect_helper_entry --exact … <HELPER_MARK> <socket>`, libtest runs only
//! that one test function, which sees the mark and becomes `nm-connect` (see
//! `connect_helper_entry` in `nodemanager.rs`). The binary is hard-linked (or copied) into the fixture directory,
//! because the target directory may sit under a home directory the test accounts cannot enter.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nm_bridge::nodemanager::{NodeManagerBackend, NodeManagerOptions};
use nm_bridge::{Rspec, SliverName, SliverRecord};

pub(crate) use geni_tests::accounts::{Users, skip_reason};
pub(crate) use geni_tests::nm_double;

use self::nm_double::NmDouble;

/// Where the helper's own arguments begin; never a test name, so libtest filters nothing with it.
pub(crate) const HELPER_MARK: &str = "NM_CONNECT_HELPER";

/// One test's world. Fields drop in order: backend, double, accounts, then the directory.
pub(crate) struct Fixture {
    pub(crate) backend: Arc<NodeManagerBackend>,
    pub(crate) double: NmDouble,
    /// `<prefix>_sfacm`: NM7's admin account.
    pub(crate) admin: String,
    /// A sliver whose account exists in passwd, so the double sees its uid.
    pub(crate) slice: String,
    /// An account that is neither.
    pub(crate) other: String,
    pub(crate) prefix: String,
    pub(crate) users: Users,
    pub(crate) dir: tempfile::TempDir,
}

/// A fixture, or `None` (after printing why) when the tests cannot run here.
pub(crate) fn fixture(test: &str) -> Option<Fixture> {
    if let Some(why) = skip_reason() {
        eprintln!("skipping {test}: {why}");
        return None;
    }
    let prefix = unique_prefix();
    let mut users = Users::default();
    let (admin, slice, other) = (
        format!("{prefix}_sfacm"),
        format!("{prefix}_slice"),
        format!("{prefix}_other"),
    );
    for name in [&admin, &slice, &other] {
        users.add(name);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // The accounts must reach the socket and the helper.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let helper = link_helper(dir.path());
    let double = NmDouble::start(dir.path(), &prefix).expect("double starts");
    let options = NodeManagerOptions {
        socket: double.socket().to_path_buf(),
        admin_account: admin.clone(),
        connect_helper: vec![
            helper.display().to_string(),
            "nodemanager::connect_helper_entry".into(),
            "--exact".into(),
            "--nocapture".into(),
            "--test-threads=1".into(),
            "-q".into(),
            HELPER_MARK.into(),
        ],
        state_dir: dir.path().join("state"),
        timeout: Duration::from_secs(10),
        reconcile_every: Duration::from_millis(100),
    };
    let backend = Arc::new(NodeManagerBackend::new(options).expect("backend opens"));
    Some(Fixture {
        backend,
        double,
        admin,
        slice,
        other,
        prefix,
        users,
        dir,
    })
}

/// A record for `name` as a verified ticket would give it.
pub(crate) fn record(name: &str, timestamp: f64, expires: i64, cpu_share: &str) -> SliverRecord {
    SliverRecord {
        name: SliverName::parse(name).expect("sliver name"),
        slice_id: Some(4242),
        instantiation: "delegated".into(),
        keys: vec!["ssh-ed25519 AAAAC3Nza test@example".into()],
        initscript: "#!/bin/sh\necho hello\n".into(),
        vref: "default".into(),
        timestamp,
        expires,
        rspec: Rspec::from_ticket(
            &geni_xmlrpc::Struct::new()
                .with("cpu_share", cpu_share)
                .with("x_geni_tag", "7"),
        )
        .expect("rspec"),
        caller: "plc.test.alice".into(),
        slice: format!("plc.test.{name}"),
    }
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `gtn` and six hex digits: short enough for account names, distinct across tests and runs.
fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = nanos
        ^ std::process::id().rotate_left(12)
        ^ COUNTER
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_mul(0x9E37_79B9);
    format!("gtn{:06x}", n & 0x00ff_ffff)
}

/// This test binary, reachable by every account: a hard link in `dir` when on the same file
/// system, else a copy.
fn link_helper(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let helper = dir.join("nm-connect-helper");
    if std::fs::hard_link(&exe, &helper).is_err() {
        std::fs::copy(&exe, &helper).expect("copy test binary");
        // Another thread forking while the copy's write descriptor was open would make exec
        // fail with ETXTBSY until that child has exec'd; give it that moment.
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    helper
}
