//! The `nodemanager` backend against the NodeManager test double (`geni_tests::nm_double`):
//! identities per call (AdminTicket as the admin account, sliver calls as the sliver's uid through
//! the connect helper), NM's record rules, every fault code, the Python 3 NM's dropped
//! connection, and the reconcile loop after a PLC sync. These tests need root (they create
//! accounts and switch uid); elsewhere they print "skipping" and pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use geni_rpc::client::UnixClient;
use geni_xmlrpc::Value;
use nm_bridge::nodemanager::{self, NodeManagerBackend, NodeManagerOptions};
use nm_bridge::{NmError, SliverManager, SliverName, SliverState};

use support::{HELPER_MARK, fixture, now, record};

/// Not a test. When the backend re-runs this binary as its connect helper (the arguments hold
/// [`HELPER_MARK`]), this becomes `nm-connect`; in a normal run it does nothing.
#[test]
fn connect_helper_entry() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == HELPER_MARK) {
        Some(at) => nodemanager::connect_helper_main(&args[at + 1..]),
        None => ExitCode::SUCCESS,
    }
}

fn uid_of(name: &str) -> u32 {
    nix::unistd::User::from_name(name)
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

fn in_secs(seconds: i64) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap() + seconds
}

fn name(s: &str) -> SliverName {
    SliverName::parse(s).unwrap()
}

fn count(double: &support::nm_double::NmDouble, method: &str) -> usize {
    double.calls().iter().filter(|c| c.method == method).count()
}

fn nm_code(e: &NmError) -> i32 {
    match e {
        NmError::NodeManager { code, .. } => *code,
        other => panic!("expected a NodeManager fault, got {other:?}"),
    }
}

#[tokio::test]
async fn redeem_goes_through_admin_ticket_and_only_a_newer_record_replaces() {
    let Some(f) = fixture("redeem_goes_through_admin_ticket") else {
        return;
    };
    // A ticket issued a minute ago: older than "now", as redeemed tickets are.
    let t0 = now() - 60.0;
    let expires = in_secs(3600);
    let first = record(&f.slice, t0, expires, "32");
    f.backend.create(first.clone()).await.unwrap();

    let tickets: Vec<_> = f
        .double
        .calls()
        .into_iter()
        .filter(|c| c.method == "AdminTicket")
        .collect();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].caller, f.admin);
    assert_eq!(tickets[0].uid, uid_of(&f.admin));

    let rec = f.double.record(&f.slice).expect("NM has the record");
    let attrs = rec.get("attributes").and_then(Value::as_struct).unwrap();
    assert_eq!(attrs.get("cpu_share"), Some(&Value::from("32")));
    assert_eq!(attrs.get("x_geni_tag"), Some(&Value::from("7")));
    let rspec = rec.get("rspec").and_then(Value::as_struct).unwrap();
    assert_eq!(rspec.get("cpu_share"), Some(&Value::Int(32)));
    assert_eq!(
        rec.get("initscript"),
        Some(&Value::from(first.initscript.as_str()))
    );
    assert_eq!(rec.get("keys"), Some(&Value::from(first.keys[0].as_str())));
    assert_eq!(rec.get("type"), Some(&Value::from("sliver.LXC")));
    // The initscript travelled as an entry of the `initscripts` LIST, named by the sliver's tag.
    let data = f.double.tickets()[0].as_struct().cloned().unwrap();
    let Some(Value::Array(scripts)) = data.get("initscripts") else {
        panic!("initscripts is not a list: {data:?}")
    };
    let script = scripts[0].as_struct().unwrap();
    assert_eq!(script.get("name"), Some(&Value::from(f.slice.as_str())));
    assert_eq!(
        attrs.get("initscript"),
        Some(&Value::from(f.slice.as_str()))
    );
    // Delegated: AdminTicket's Create made and started it.
    assert!(f.double.xids().contains_key(&f.slice));
    assert_eq!(f.double.running(&f.slice), Some(true));
    let status = f.backend.status(&first.name).await.unwrap();
    assert_eq!(status.timestamp.to_bits(), t0.to_bits());
    assert_eq!(status.expires, expires);
    assert_eq!(status.state, SliverState::Running);

    // Equal or older: refused from our own record, and NM is not asked.
    let before = f.double.record(&f.slice);
    for stale in [t0, t0 - 1.0] {
        let err = f
            .backend
            .create(record(&f.slice, stale, expires, "64"))
            .await
            .unwrap_err();
        assert!(matches!(err, NmError::Stale { .. }), "{err}");
    }
    assert_eq!(f.double.record(&f.slice), before);
    assert_eq!(count(&f.double, "AdminTicket"), 1);

    // Newer: replaced in NM.
    f.backend
        .create(record(&f.slice, t0 + 1.0, expires, "64"))
        .await
        .unwrap();
    let rec = f.double.record(&f.slice).unwrap();
    let attrs = rec.get("attributes").and_then(Value::as_struct).unwrap();
    assert_eq!(attrs.get("cpu_share"), Some(&Value::from("64")));

    // Our record survives a restart of the backend.
    let reopened = NodeManagerBackend::new(f.backend.options().clone()).unwrap();
    let err = reopened
        .create(record(&f.slice, t0 + 1.0, expires, "1"))
        .await
        .unwrap_err();
    assert!(matches!(err, NmError::Stale { .. }), "{err}");

    // An expired ticket never reaches NM.
    let err = f
        .backend
        .create(record(&f.slice, t0 + 2.0, in_secs(-10), "1"))
        .await
        .unwrap_err();
    assert!(matches!(err, NmError::InvalidRecord(_)), "{err}");
    assert_eq!(count(&f.double, "AdminTicket"), 2);
}

#[tokio::test]
async fn lifecycle_calls_go_as_the_slivers_uid_and_nm_follows() {
    let Some(f) = fixture("lifecycle_calls_go_as_the_slivers_uid") else {
        return;
    };
    let sliver = name(&f.slice);
    f.backend
        .create(record(&f.slice, now(), in_secs(3600), "8"))
        .await
        .unwrap();
    let slice_uid = uid_of(&f.slice);
    let last = |method: &str| {
        f.double
            .calls()
            .into_iter()
            .rfind(|c| c.method == method)
            .unwrap()
    };

    f.backend.stop(&sliver).await.unwrap();
    assert_eq!(
        (last("Stop").caller, last("Stop").uid),
        (f.slice.clone(), slice_uid)
    );
    assert_eq!(f.double.running(&f.slice), Some(false));
    assert_eq!(
        f.backend.status(&sliver).await.unwrap().state,
        SliverState::Stopped
    );

    f.backend.start(&sliver).await.unwrap();
    assert_eq!(last("Start").uid, slice_uid);
    assert_eq!(f.double.running(&f.slice), Some(true));

    let journal_before = f.double.journal().len();
    f.backend.reset(&sliver).await.unwrap();
    assert_eq!(last("ReCreate").uid, slice_uid);
    let after: Vec<String> = f.double.journal()[journal_before..].to_vec();
    let expect = |what: &str| format!("{what} {}", f.slice);
    // NM7's ReCreate: stop, then configure+start; never destroy.
    assert_eq!(after.first(), Some(&expect("stop")));
    assert!(after.contains(&expect("start")), "{after:?}");
    assert!(!after.contains(&expect("destroy")), "{after:?}");
    assert_eq!(f.double.running(&f.slice), Some(true));

    // Another uid is refused by NM with 108, and our error says so with NM's code.
    let err = f
        .backend
        .call_as(&f.other, "Stop", vec![Value::from(f.slice.as_str())])
        .await
        .unwrap_err();
    assert_eq!(nm_code(&err), 108);
    let shown = err.to_string();
    assert!(shown.contains("NodeManager fault 108"), "{shown}");
    assert!(shown.contains("permission denied"), "{shown}");
    assert_eq!(f.double.running(&f.slice), Some(true));

    let listed = f.backend.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [f.slice.as_str()]
    );

    f.backend.destroy(&sliver).await.unwrap();
    assert_eq!(last("Destroy").uid, slice_uid);
    assert!(!f.double.xids().contains_key(&f.slice));
    assert!(f.backend.list().await.unwrap().is_empty());
    let err = f.backend.status(&sliver).await.unwrap_err();
    assert!(matches!(err, NmError::NotFound(_)), "{err}");
    // Forgotten: reconcile does not bring it back.
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 0);
    assert!(!f.double.xids().contains_key(&f.slice));
}

#[tokio::test]
async fn plc_instantiated_slivers_are_delivered_and_destroyed_by_an_expired_record() {
    let Some(f) = fixture("plc_instantiated_slivers") else {
        return;
    };
    let sliver = name(&f.slice);
    let mut r = record(&f.slice, now(), in_secs(3600), "2");
    r.instantiation = "plc-instantiated".into();
    // NM stores it, its sync creates it, and AdminTicket still faults ("Only PLC can create").
    f.backend.create(r).await.unwrap();
    assert!(f.double.xids().contains_key(&f.slice));
    assert_eq!(f.double.running(&f.slice), Some(true));

    // Destroy faults for plc-instantiated slivers; the backend then delivers an expired record.
    f.backend.destroy(&sliver).await.unwrap();
    assert!(!f.double.xids().contains_key(&f.slice));
    assert!(f.double.record(&f.slice).is_none());
    assert_eq!(count(&f.double, "Destroy"), 1);
    assert_eq!(count(&f.double, "AdminTicket"), 2);
    assert!(f.double.journal().contains(&format!("destroy {}", f.slice)));
}

#[tokio::test]
async fn a_sliver_plc_delivered_is_listed_and_its_status_read_as_the_sliver() {
    let Some(f) = fixture("a_sliver_plc_delivered") else {
        return;
    };
    let (synced, expires) = (now().floor(), in_secs(7200));
    let sliver = geni_xmlrpc::Struct::new()
        .with("name", f.slice.as_str())
        .with("slice_id", 99)
        .with("instantiation", "plc-instantiated")
        .with("expires", expires)
        .with("keys", Value::Array(vec![]))
        .with("attributes", Value::Array(vec![]));
    f.double.plc_sync(synced, vec![Value::Struct(sliver)]);
    let listed = f.backend.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].timestamp, listed[0].expires), (0.0, 0));
    // Not ours: NM's own record, read with GetRecord as the sliver's account.
    let status = f.backend.status(&name(&f.slice)).await.unwrap();
    assert_eq!((status.timestamp, status.expires), (synced, expires));
    let last = f.double.calls().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.caller),
        ("GetRecord", f.slice.clone())
    );
    // No API call destroys a plc-instantiated sliver we did not deliver: NM's fault, explained.
    let err = f.backend.destroy(&name(&f.slice)).await.unwrap_err();
    assert_eq!(nm_code(&err), 104);
    assert!(err.to_string().contains("only when PLC drops it"), "{err}");
    assert!(f.double.xids().contains_key(&f.slice));
}

#[tokio::test]
async fn every_nodemanager_fault_code_is_a_clear_error() {
    let Some(f) = fixture("every_nodemanager_fault_code") else {
        return;
    };
    let mut r = record(&f.slice, now(), in_secs(3600), "3");
    r.rspec = nm_bridge::Rspec::from_ticket(
        &geni_xmlrpc::Struct::new().with("delegations", f.other.as_str()),
    )
    .unwrap();
    f.backend.create(r).await.unwrap();
    let arg = || vec![Value::from(f.slice.as_str())];

    let cases = [
        (f.slice.as_str(), "Strat", arg(), 100, "no such method"),
        (
            f.slice.as_str(),
            "Start",
            vec![],
            101,
            "wrong number of arguments",
        ),
        (
            f.slice.as_str(),
            "Start",
            vec![Value::from("nosuchsliver")],
            102,
            "no sliver record",
        ),
        // The admin account's raw-argument path hands Start a name, not a record.
        (
            f.admin.as_str(),
            "Start",
            arg(),
            104,
            "instead of its record",
        ),
        (
            f.admin.as_str(),
            "GetRecord",
            vec![],
            104,
            "instead of its record",
        ),
        (
            f.slice.as_str(),
            "SetLoans",
            vec![arg()[0].clone(), Value::Array(vec![Value::from("x")])],
            104,
            "since 2010",
        ),
        (f.prefix.as_str(), "Stop", arg(), 0, ""),
    ];
    for (caller, method, params, code, words) in cases {
        if code == 0 {
            // No such account: refused before NM is asked.
            let err = f.backend.call_as(caller, method, params).await.unwrap_err();
            assert!(matches!(err, NmError::Permission(_)), "{err}");
            continue;
        }
        let err = f.backend.call_as(caller, method, params).await.unwrap_err();
        let shown = err.to_string();
        assert_eq!(nm_code(&err), code, "{shown}");
        assert!(
            shown.contains(&format!("NodeManager fault {code}")),
            "{shown}"
        );
        assert!(shown.contains(words), "{shown}");
        assert!(shown.contains(method), "{shown}");
    }

    // The sliver's single delegate may act for it; a stranger may not (108).
    f.backend.call_as(&f.other, "Stop", arg()).await.unwrap();
    assert_eq!(f.double.running(&f.slice), Some(false));
    let err = f
        .backend
        .call_as(&f.admin, "GetRSpec", arg())
        .await
        .unwrap_err();
    assert_eq!(nm_code(&err), 104);
    let stranger = format!("{}_x", f.prefix);
    let mut users = support::Users::default();
    users.add(&stranger);
    let err = f
        .backend
        .call_as(&stranger, "Start", arg())
        .await
        .unwrap_err();
    assert_eq!(nm_code(&err), 108);
    assert!(
        err.to_string()
            .contains(&format!("{stranger}: Permission denied."))
    );

    // Through the trait: an account NM has no sliver for answers 102.
    let err = f.backend.start(&name(&f.other)).await.unwrap_err();
    assert_eq!(nm_code(&err), 102);
    assert!(err.to_string().contains("no sliver record"), "{err}");
    // And a sliver with no account at all is not found before NM is asked.
    let err = f
        .backend
        .start(&name(&format!("{}_none", f.prefix)))
        .await
        .unwrap_err();
    assert!(matches!(err, NmError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error_naming_the_method() {
    let Some(f) = fixture("a_dropped_connection") else {
        return;
    };
    let sliver = name(&f.slice);
    f.backend
        .create(record(&f.slice, now(), in_secs(3600), "4"))
        .await
        .unwrap();
    f.double.drop_next(1);
    let err = f.backend.stop(&sliver).await.unwrap_err();
    let NmError::Transport(text) = &err else {
        panic!("expected a transport error, got {err:?}")
    };
    assert!(text.contains("without answering Stop"), "{text}");
    assert!(text.contains("Python 3"), "{text}");
    assert!(text.contains("may or may not have taken effect"), "{text}");
    let last = f.double.calls().pop().unwrap();
    assert_eq!((last.method.as_str(), last.answered), ("Stop", false));
    assert_eq!(f.double.running(&f.slice), Some(true));
    // The next call is answered again.
    f.backend.stop(&sliver).await.unwrap();
    assert_eq!(f.double.running(&f.slice), Some(false));
}

#[tokio::test]
async fn reconcile_redelivers_what_a_plc_sync_removed_until_it_expires() {
    let Some(f) = fixture("reconcile_redelivers") else {
        return;
    };
    let short = format!("{}_short", f.prefix);
    let short_expires = in_secs(2);
    f.backend
        .create(record(&f.slice, now() - 30.0, in_secs(3600), "5"))
        .await
        .unwrap();
    f.backend
        .create(record(&short, now() - 30.0, short_expires, "5"))
        .await
        .unwrap();
    assert!(f.double.xids().contains_key(&f.slice) && f.double.xids().contains_key(&short));
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 0);

    // PLC's full sync does not list them: both records go, and their accounts with them.
    f.double.plc_sync(now(), Vec::new());
    assert!(f.double.xids().is_empty());
    assert!(f.double.record(&f.slice).is_none());

    #[allow(clippy::cast_precision_loss)]
    let short_gone_at = short_expires as f64 + 0.2;
    while now() < short_gone_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 1);
    assert!(f.double.xids().contains_key(&f.slice));
    assert_eq!(f.double.running(&f.slice), Some(true));
    assert!(!f.double.xids().contains_key(&short));
    assert!(f.double.record(&short).is_none());
    let listed = f.backend.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [f.slice.as_str()]
    );
    assert!(matches!(
        f.backend.status(&name(&short)).await.unwrap_err(),
        NmError::NotFound(_)
    ));

    // The loop does the same by itself.
    let task = f.backend.spawn_reconcile();
    f.double.plc_sync(now(), Vec::new());
    let deadline = now() + 5.0;
    while !f.double.xids().contains_key(&f.slice) {
        assert!(now() < deadline, "the reconcile loop did not re-deliver");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
}

#[tokio::test]
async fn the_helper_passed_stream_carries_the_target_identity() {
    let Some(f) = fixture("the_helper_passed_stream") else {
        return;
    };
    let timeout = Duration::from_secs(5);
    let last = || f.double.calls().pop().unwrap();

    UnixClient::new(f.double.socket(), timeout)
        .call("Help", vec![])
        .await
        .unwrap();
    assert_eq!((last().caller, last().uid), ("root".to_owned(), 0));

    for account in [&f.slice, &f.admin] {
        let stream = f.backend.connect_as(account).await.unwrap();
        UnixClient::from_stream(stream, timeout)
            .call("Help", vec![])
            .await
            .unwrap();
        assert_eq!(
            (last().caller, last().uid),
            (account.clone(), uid_of(account))
        );
    }

    // GetXIDs, which anyone may call, goes as the agent itself: no helper.
    f.backend.xids().await.unwrap();
    assert_eq!(
        (last().method, last().caller),
        ("GetXIDs".to_owned(), "root".to_owned())
    );

    // The helper's own failure reaches the caller, with its reason.
    let options = NodeManagerOptions {
        socket: f.dir.path().join("missing.api"),
        state_dir: f.dir.path().join("state2"),
        ..f.backend.options().clone()
    };
    let lost = NodeManagerBackend::new(options).unwrap();
    let err = lost.connect_as(&f.slice).await.unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("missing.api"), "{shown}");
    assert!(shown.contains("No such file or directory"), "{shown}");
    assert_eq!(nodemanager::connect_helper_main(&[]), ExitCode::from(2));
}
