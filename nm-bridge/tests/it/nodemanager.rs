//! The `nodemanager` backend against the NodeManager test double (`geni_tests::nm_double`):
//! identities per call (AdminTicket as the admin account, sliver calls as the sliver's uid through
//! the connect helper), NM's record rules, every fault code, the Python 3 NM's dropped
//! connection, the reconcile loop after a PLC sync and after NM7 restarts (empty database, accounts
//! kept), expired slivers, and a refused admin account. These tests need root (they create
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

/// A sliver as PLC's GetSlivers lists it.
fn plc_sliver(name: &str, instantiation: &str, expires: i64) -> Value {
    Value::Struct(
        geni_xmlrpc::Struct::new()
            .with("name", name)
            .with("slice_id", 77)
            .with("instantiation", instantiation)
            .with("expires", expires)
            .with(
                "keys",
                Value::Array(vec![Value::Struct(
                    geni_xmlrpc::Struct::new()
                        .with("key_type", "ssh")
                        .with("key", "ssh-rsa PLCKEY plc@example"),
                )]),
            )
            .with("attributes", Value::Array(vec![])),
    )
}

/// The parts of NM's record a re-delivery must bring back.
fn essentials(record: &geni_xmlrpc::Struct) -> Vec<Option<Value>> {
    ["keys", "initscript", "rspec", "instantiation", "expires"]
        .iter()
        .map(|k| record.get(k).cloned())
        .collect()
}

/// Journal entries about `name` from `from` on.
fn journal_of(double: &support::nm_double::NmDouble, from: usize, name: &str) -> Vec<String> {
    double.journal()[from..]
        .iter()
        .filter(|e| e.split_once(' ').is_some_and(|(_, n)| n == name))
        .cloned()
        .collect()
}

#[tokio::test]
async fn after_a_nodemanager_restart_start_works_within_one_reconcile_pass() {
    let Some(f) = fixture("after_a_nodemanager_restart") else {
        return;
    };
    let sliver = name(&f.slice);
    let (plc_made, ours_plc) = (format!("{}_plc", f.prefix), format!("{}_b", f.prefix));
    // A sliver PLC made, which this backend never held.
    f.double.plc_sync(
        now() - 100.0,
        vec![plc_sliver(&plc_made, "plc-instantiated", in_secs(7200))],
    );
    f.backend
        .create(record(&f.slice, now() - 60.0, in_secs(3600), "11"))
        .await
        .unwrap();
    let mut b = record(&ours_plc, now() - 60.0, in_secs(3600), "12");
    b.instantiation = "plc-instantiated".into();
    f.backend.create(b).await.unwrap();
    let before = essentials(&f.double.record(&f.slice).unwrap());
    let before_b = essentials(&f.double.record(&ours_plc).unwrap());

    // NM7 restarts and PLC is unreachable: no records, the accounts and containers remain, and
    // the sliver's own calls are refused with 102.
    f.double.restart();
    let mark = f.double.journal().len();
    assert!(f.double.record(&f.slice).is_none());
    assert!(f.backend.ssh_keys().await.unwrap().is_empty());
    let accounts = f.double.xids();
    for n in [&f.slice, &ours_plc, &plc_made] {
        assert!(accounts.contains_key(n), "{n}");
    }
    let err = f
        .backend
        .call_as(&f.slice, "Start", vec![Value::from(f.slice.as_str())])
        .await
        .unwrap_err();
    assert_eq!(nm_code(&err), 102, "{err}");

    // One pass re-delivers both of ours.
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 2);
    assert_eq!(
        essentials(&f.double.record(&f.slice).unwrap()),
        before,
        "keys, initscript, rspec"
    );
    assert_eq!(essentials(&f.double.record(&ours_plc).unwrap()), before_b);
    let tickets = count(&f.double, "AdminTicket");
    let starts = count(&f.double, "Start");
    f.backend.start(&sliver).await.unwrap();
    // Straight through: one Start, no further delivery.
    assert_eq!(count(&f.double, "Start"), starts + 1);
    assert_eq!(count(&f.double, "AdminTicket"), tickets);
    assert_eq!(f.double.running(&f.slice), Some(true));
    f.backend.stop(&sliver).await.unwrap();
    assert_eq!(f.double.running(&f.slice), Some(false));

    // Nothing was destroyed on the way: not ours, not PLC's sliver, which holds a stand-in
    // record that leaves it alone.
    let journal = f.double.journal()[mark..].to_vec();
    assert!(
        !journal
            .iter()
            .any(|e| e.starts_with("destroy") || e.starts_with("create")),
        "{journal:?}"
    );
    assert!(f.double.xids().contains_key(&plc_made));
    assert!(
        journal_of(&f.double, mark, &plc_made).is_empty(),
        "{journal:?}"
    );
    let stand_in = f.double.record(&plc_made).unwrap();
    assert_eq!(
        stand_in.get("instantiation"),
        Some(&Value::from("delegated"))
    );
    assert_eq!(stand_in.get("keys"), Some(&Value::from("")));

    // PLC is back: its record replaces the stand-in and the sliver lives on; ours, which PLC
    // does not list, are removed by NM and delivered again by the next pass.
    f.double.plc_sync(
        now(),
        vec![plc_sliver(&plc_made, "plc-instantiated", in_secs(7200))],
    );
    let plc_record = f.double.record(&plc_made).unwrap();
    assert_eq!(
        plc_record.get("instantiation"),
        Some(&Value::from("plc-instantiated"))
    );
    assert_eq!(
        plc_record.get("keys"),
        Some(&Value::from("ssh-rsa PLCKEY plc@example"))
    );
    assert!(!f.double.journal().contains(&format!("destroy {plc_made}")));
    assert!(!f.double.xids().contains_key(&f.slice));
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 2);
    assert!(f.double.xids().contains_key(&f.slice));
}

#[tokio::test]
async fn after_a_nodemanager_restart_a_sliver_call_redelivers_and_retries_once() {
    let Some(f) = fixture("a_sliver_call_redelivers") else {
        return;
    };
    let sliver = name(&f.slice);
    let expires = in_secs(3600);
    f.backend
        .create(record(&f.slice, now() - 60.0, expires, "13"))
        .await
        .unwrap();
    let before = essentials(&f.double.record(&f.slice).unwrap());
    f.double.restart();
    let from = f.double.calls().len();

    // No reconcile pass yet: Start meets 102, the sliver is delivered again, Start is retried.
    f.backend.start(&sliver).await.unwrap();
    let calls: Vec<(String, String, bool)> = f.double.calls()[from..]
        .iter()
        .filter(|c| !["GetXIDs", "GetSSHKeys"].contains(&c.method.as_str()))
        .map(|c| (c.caller.clone(), c.method.clone(), c.answered))
        .collect();
    assert_eq!(
        calls,
        [
            (f.slice.clone(), "Start".to_owned(), true),
            (f.admin.clone(), "AdminTicket".to_owned(), true),
            (f.slice.clone(), "Start".to_owned(), true),
        ]
    );
    assert_eq!(essentials(&f.double.record(&f.slice).unwrap()), before);
    assert_eq!(f.double.running(&f.slice), Some(true));

    // Restarted again, and this time PLC lists the slice (PLC lists every delegated slice for
    // every node, §6): NM has the record back but created nothing for it, so Stop fails inside
    // NM (104). The backend asks NM to Create it, then stops it.
    f.double.restart();
    f.double
        .plc_sync(now(), vec![plc_sliver(&f.slice, "delegated", expires)]);
    let err = f
        .backend
        .call_as(&f.slice, "Stop", vec![Value::from(f.slice.as_str())])
        .await
        .unwrap_err();
    assert_eq!(nm_code(&err), 104, "{err}");
    assert!(err.to_string().contains("no account object"), "{err}");
    f.backend.stop(&sliver).await.unwrap();
    assert_eq!(f.double.running(&f.slice), Some(false));
    let last: Vec<String> = f.double.calls()[f.double.calls().len() - 2..]
        .iter()
        .map(|c| c.method.clone())
        .collect();
    assert_eq!(last, ["Create", "Stop"]);
    assert_eq!(
        f.backend.status(&sliver).await.unwrap().state,
        SliverState::Stopped
    );

    // A sliver this backend does not hold is not delivered on a 102: the fault comes back.
    f.double.restart();
    let tickets = count(&f.double, "AdminTicket");
    let err = f.backend.start(&name(&f.other)).await.unwrap_err();
    assert_eq!(nm_code(&err), 102);
    assert_eq!(count(&f.double, "AdminTicket"), tickets);
}

#[tokio::test]
async fn a_stopped_sliver_is_not_started_by_recovery() {
    let Some(f) = fixture("a_stopped_sliver_is_not_started") else {
        return;
    };
    let sliver = name(&f.slice);
    let running = format!("{}_run", f.prefix);
    f.backend
        .create(record(&f.slice, now() - 60.0, in_secs(3600), "14"))
        .await
        .unwrap();
    f.backend
        .create(record(&running, now() - 60.0, in_secs(3600), "15"))
        .await
        .unwrap();
    f.backend.stop(&sliver).await.unwrap();
    assert_eq!(f.double.running(&f.slice), Some(false));

    // After an NM restart: NM's Create starts what it creates; the backend stops it again.
    f.double.restart();
    let mark = f.double.journal().len();
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 2);
    assert_eq!(f.double.running(&f.slice), Some(false));
    assert_eq!(
        journal_of(&f.double, mark, &f.slice).last(),
        Some(&format!("stop {}", f.slice))
    );
    assert_eq!(
        f.backend.status(&sliver).await.unwrap().state,
        SliverState::Stopped
    );
    // The one that was running runs.
    assert_eq!(f.double.running(&running), Some(true));

    // After a PLC sync removed it (account and all), the same.
    f.double.plc_sync(now(), Vec::new());
    assert!(!f.double.xids().contains_key(&f.slice));
    let mark = f.double.journal().len();
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 2);
    let journal = journal_of(&f.double, mark, &f.slice);
    assert_eq!(journal.first(), Some(&format!("create {}", f.slice)));
    assert_eq!(journal.last(), Some(&format!("stop {}", f.slice)));
    assert_eq!(f.double.running(&f.slice), Some(false));
    assert_eq!(f.double.running(&running), Some(true));

    // And a later start starts it.
    f.backend.start(&sliver).await.unwrap();
    assert_eq!(f.double.running(&f.slice), Some(true));
}

#[tokio::test]
async fn a_wrong_admin_account_is_named_and_changes_nothing() {
    let Some(f) = fixture("a_wrong_admin_account") else {
        return;
    };
    let state_dir = f.dir.path().join("state-wrong-admin");
    let options = NodeManagerOptions {
        admin_account: f.other.clone(),
        state_dir: state_dir.clone(),
        ..f.backend.options().clone()
    };
    let backend = NodeManagerBackend::new(options).unwrap();
    let err = backend
        .create(record(&f.slice, now(), in_secs(3600), "16"))
        .await
        .unwrap_err();
    assert_eq!(nm_code(&err), 102, "{err}");
    let shown = err.to_string();
    let expected = format!(
        "NodeManager did not accept {} as its admin account (NodeManager grants AdminTicket to \
         <prefix>_sfacm): check [node.nodemanager] admin_account",
        f.other
    );
    assert!(shown.contains(&expected), "{shown}");
    assert!(!shown.contains("no sliver record"), "{shown}");
    // NM saw the call from that account and changed nothing.
    let last = f.double.calls().pop().unwrap();
    assert_eq!(
        (last.caller, last.method),
        (f.other.clone(), "AdminTicket".to_owned())
    );
    assert!(f.double.record(&f.slice).is_none());
    assert!(f.double.xids().is_empty());
    assert!(f.double.tickets().is_empty());
    // Nor did the backend: no record kept, nothing listed, nothing to re-deliver.
    assert_eq!(std::fs::read_dir(&state_dir).unwrap().count(), 0);
    assert!(backend.list().await.unwrap().is_empty());
    assert_eq!(backend.reconcile_once().await.unwrap(), 0);
    assert_eq!(count(&f.double, "AdminTicket"), 1);

    // The right account, from the same node, works.
    f.backend
        .create(record(&f.slice, now(), in_secs(3600), "16"))
        .await
        .unwrap();
    assert!(f.double.record(&f.slice).is_some());
}

#[tokio::test]
async fn expired_slivers_are_destroyed_in_nodemanager_and_never_redelivered() {
    let Some(mut f) = fixture("expired_slivers_are_destroyed") else {
        return;
    };
    let (lasting, plc) = (format!("{}_long", f.prefix), format!("{}_b", f.prefix));
    // NM calls are made as the sliver's own account, which NM would have made with useradd.
    f.users.add(&plc);
    let soon = in_secs(2);
    f.backend
        .create(record(&lasting, now() - 10.0, in_secs(3600), "1"))
        .await
        .unwrap();
    // Delegated (NM's Destroy works), plc-instantiated (it does not), and one the node itself
    // destroys through the trait.
    for n in [&f.slice, &plc, &f.other] {
        let mut r = record(n, now() - 10.0, soon, "1");
        if *n == plc {
            r.instantiation = "plc-instantiated".into();
        }
        f.backend.create(r).await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let past = soon as f64 + 0.2;
    while now() < past {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // NM has not synced since, so it still has all of them.
    for n in [&f.slice, &plc, &f.other] {
        assert!(f.double.xids().contains_key(n.as_str()), "{n}");
    }

    // The node destroys one; then the reconcile pass destroys the other two, re-delivers nothing.
    f.backend.destroy(&name(&f.other)).await.unwrap();
    assert!(!f.double.xids().contains_key(&f.other));
    let tickets = count(&f.double, "AdminTicket");
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 0);
    for n in [&f.slice, &plc, &f.other] {
        assert!(!f.double.xids().contains_key(n.as_str()), "{n}");
        assert!(f.double.journal().contains(&format!("destroy {n}")), "{n}");
    }
    assert!(f.double.record(&plc).is_none());
    // Only the plc-instantiated one needed a delivery (of an expired record).
    assert_eq!(count(&f.double, "AdminTicket"), tickets + 1);
    assert_eq!(f.double.running(&lasting), Some(true));
    let listed = f.backend.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [lasting.as_str()]
    );

    // Both ways round are safe to repeat: destroying again is NotFound and asks NM for nothing
    // but its list; further passes find nothing to do.
    let calls = f.double.calls().len();
    for n in [&f.slice, &plc, &f.other] {
        let err = f.backend.destroy(&name(n)).await.unwrap_err();
        assert!(matches!(err, NmError::NotFound(_)), "{err}");
    }
    assert!(
        f.double.calls()[calls..]
            .iter()
            .all(|c| c.method == "GetXIDs")
    );
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 0);
    // A PLC sync that drops everything brings back only the unexpired one.
    f.double.plc_sync(now(), Vec::new());
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 1);
    assert_eq!(f.double.xids().into_keys().collect::<Vec<_>>(), [lasting]);
}

#[tokio::test]
async fn an_expired_sliver_is_destroyed_while_a_restarted_nodemanager_lacks_its_record() {
    let Some(f) = fixture("an_expired_sliver_is_destroyed_while") else {
        return;
    };
    let (lasting, plc_made) = (format!("{}_long", f.prefix), format!("{}_plc", f.prefix));
    f.double.plc_sync(
        now() - 100.0,
        vec![plc_sliver(&plc_made, "plc-instantiated", in_secs(7200))],
    );
    f.backend
        .create(record(&lasting, now() - 10.0, in_secs(3600), "1"))
        .await
        .unwrap();
    let soon = in_secs(2);
    f.backend
        .create(record(&f.slice, now() - 10.0, soon, "1"))
        .await
        .unwrap();
    f.double.restart();
    #[allow(clippy::cast_precision_loss)]
    let past = soon as f64 + 0.2;
    while now() < past {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mark = f.double.journal().len();
    assert_eq!(f.backend.reconcile_once().await.unwrap(), 1);
    assert!(!f.double.xids().contains_key(&f.slice));
    assert_eq!(
        journal_of(&f.double, mark, &f.slice),
        [format!("destroy {}", f.slice)]
    );
    assert!(f.double.record(&lasting).is_some());
    assert!(f.double.xids().contains_key(&plc_made));
    assert!(journal_of(&f.double, mark, &plc_made).is_empty());
    assert!(matches!(
        f.backend.destroy(&name(&f.slice)).await.unwrap_err(),
        NmError::NotFound(_)
    ));
}
