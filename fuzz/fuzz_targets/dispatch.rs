//! Fuzzes the request path of a node: request bytes → UTF-8 → `parse_method_call` (the server's
//! limits) → a `Dispatcher` shaped as the node's (`noop`, `list_slices`, `redeem_ticket`,
//! `get_ticket`, `system.*`) whose handlers run the node's checks against a fixture verifier
//! (the 2008 vectors' root, and account_test as the TLS peer). Properties: no panic; every
//! answer encodes; and no input ever produces -32603, because an internal error is by definition
//! never the peer's input (issue 13). Seed with `seeds/dispatch/` (real requests).
#![no_main]

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use geni_rpc::{CallContext, Dispatcher, PeerIdentity, RpcError};
use geni_trust::{
    CertMode, Certificate, Keypair, Operation, Policy, TrustedRoots, Validity, Verifier,
};
use geni_xmlrpc::{Limits, MethodResponse, Value};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    dispatcher: Dispatcher,
    peer: Arc<PeerIdentity>,
}

/// The 2008 vectors: their root as the one trusted root (md5 allowed, as an operator of 2008
/// peers would), and account_test's key as the TLS peer, so that seeds made from the vectors'
/// credentials and tickets reach the code after verification.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let vectors =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/gw2008");
        let roots = TrustedRoots::load_dir(&vectors.join("trusted_roots")).unwrap();
        let verifier = Arc::new(Verifier::new(
            roots,
            Policy {
                legacy_digests: true,
                ..Policy::default()
            },
        ));
        let key = std::fs::read(vectors.join("keys/planetlab.us.pl.account_test.pkey")).unwrap();
        let key = Keypair::from_pem(&key).unwrap();
        let cert = Certificate::self_signed(
            "planetlab.us.pl.account_test",
            &key,
            Validity::from_now(0, 86_400),
            CertMode::Modern,
        )
        .unwrap();
        Fixture {
            dispatcher: dispatcher(verifier),
            peer: Arc::new(PeerIdentity::from_der(cert.der()).unwrap()),
        }
    })
}

fn one_string(method: &str, params: &[Value]) -> Result<String, RpcError> {
    match params {
        [Value::String(s), ..] => Ok(s.clone()),
        _ => Err(RpcError::invalid_params(
            method,
            "the first argument is a string",
        )),
    }
}

/// The node's handlers reduced to their checks (the real ones then act on slivers).
fn dispatcher(verifier: Arc<Verifier>) -> Dispatcher {
    let mut d = Dispatcher::new();
    let v = Arc::clone(&verifier);
    d.register(
        "noop",
        "noop(cred, x)",
        move |_ctx: CallContext, params: Vec<Value>| {
            let v = Arc::clone(&v);
            async move {
                let cred = one_string("noop", &params)?;
                v.verify_credential_str(&cred)?;
                Ok(params.get(1).cloned().unwrap_or(Value::Nil))
            }
        },
    );
    let v = Arc::clone(&verifier);
    d.register(
        "list_slices",
        "list_slices(cred)",
        move |ctx: CallContext, params: Vec<Value>| {
            let v = Arc::clone(&v);
            async move {
                let cred = one_string("list_slices", &params)?;
                let verified = v.verify_credential_checked(&cred, |c| match c.caller() {
                    Some(caller) => ctx.peer.require_caller(caller),
                    None => Ok(()),
                })?;
                ctx.peer.require_caller(verified.caller().gid())?;
                if !verified.can_perform(Operation::ListSlices) {
                    return Err(RpcError::InsufficientRights {
                        operation: "listslices".into(),
                        rights: verified.privileges().to_string(),
                    });
                }
                Ok(Value::Array(Vec::new()))
            }
        },
    );
    let v = Arc::clone(&verifier);
    d.register(
        "redeem_ticket",
        "redeem_ticket(ticket)",
        move |ctx: CallContext, params: Vec<Value>| {
            let v = Arc::clone(&v);
            async move {
                let ticket = one_string("redeem_ticket", &params)?;
                let node = "planetlab.us.pl.node1".parse().ok();
                let verified = v.verify_ticket_str(&ticket, node.as_ref())?;
                ctx.peer.require_caller(verified.caller().gid())?;
                Ok(Value::String(verified.ticket().subject().to_owned()))
            }
        },
    );
    d.register(
        "get_ticket",
        "get_ticket()",
        |_ctx: CallContext, _p: Vec<Value>| async {
            Err(RpcError::Failed(
                "tickets are issued by the PLC side".into(),
            ))
        },
    );
    d
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The node's own request limits.
    let limits = Limits {
        max_depth: 64,
        max_bytes: 4 * 1024 * 1024,
        max_values: 16_384,
    };
    let Ok(call) = geni_xmlrpc::parse_method_call(text, &limits) else {
        return;
    };
    let ctx = CallContext {
        peer: Arc::clone(&f.peer),
        remote: None,
        work: Arc::new(geni_trust::work::WorkBudget::new(50_000)),
    };
    let future = f.dispatcher.dispatch(ctx, call);
    let mut future = std::pin::pin!(future);
    // No handler waits on anything: the call completes on its first poll.
    let Poll::Ready(response) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("a call did not complete synchronously");
    };
    if let MethodResponse::Fault(fault) = &response {
        assert_ne!(
            fault.code, -32603,
            "peer input made an internal error: {fault:?}"
        );
    }
    geni_xmlrpc::write_method_response(&response).expect("every answer encodes");
});
