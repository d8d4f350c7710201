//! NodeManager's answers turned into [`NmError`]s a person can act on: every fault code NM raises
//! (`reference/nodemanager.md` §1.3: 1, 100, 101, 102, 104, 108), the known causes NM hides inside
//! 104, and the Python 3 NM's dropped connection (§1.2).
//!
//! A fault keeps NM's code and NM's own words (quoted at the end), so callers that must tell one
//! NM outcome from another (a plc-instantiated delivery, a sliver NM will not destroy) can still
//! recognise NM's text.

use geni_rpc::RpcError;
use geni_xmlrpc::Fault;

use crate::NmError;

/// NM's text when `Create` (run by `AdminTicket`) meets a record that is not delegated: the record
/// was stored and NM's own sync created the sliver (§1.4, §3.5).
pub(super) const ONLY_PLC_CREATES: &str = "Only PLC can create non delegated slivers";
/// NM's text when `Destroy` meets a record that is not delegated.
pub(super) const ONLY_PLC_DESTROYS: &str = "Only PLC can destroy non delegated slivers";
/// NM's text when `AdminTicket` finds no record after delivering: the delivery was ignored, or
/// the record was dropped as expired (§3.5).
pub(super) const NO_RECORD_AFTER_TICKET: &str = "'NoneType' object is not subscriptable";

/// NM's text when a per-sliver call names no record in its database (§1.3 step 5). `AdminTicket`
/// from any account but `<prefix>_sfacm` meets it too: the ticket text is taken for a sliver name.
pub(super) const NOT_A_SLIVER: &str = "the first argument must be a sliver name";
/// The start of NM's text when a Worker has no account object: NM restarted and nothing has run
/// `ensure_created` for the sliver since (§3.1, §3.4).
pub(super) const NO_ACCOUNT_OBJECT: &str = "'NoneType' object has no attribute";

/// One call, for messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call<'a> {
    pub(super) method: &'a str,
    /// The sliver the call is about, if any.
    pub(super) sliver: Option<&'a str>,
    /// The account the call connected as.
    pub(super) caller: &'a str,
}

impl Call<'_> {
    fn what(&self) -> String {
        match self.sliver {
            Some(sliver) => format!("{} of {sliver} as {}", self.method, self.caller),
            None => format!("{} as {}", self.method, self.caller),
        }
    }
}

/// The error for a failed call.
pub(super) fn nm_error(call: &Call<'_>, error: RpcError) -> NmError {
    let what = call.what();
    match error {
        RpcError::Fault(fault) => fault_error(call, &fault),
        RpcError::Transport(text)
            if text.contains("closed the connection without answering")
                || text.contains("closed the connection before") =>
        {
            NmError::Transport(format!(
                "NodeManager closed the connection without answering {what}. That is the \
                 Python 3 NodeManager's Unix-socket bug: its request handler sets TCP_NODELAY on \
                 the AF_UNIX connection, fails, and hangs up (fix on the node: \
                 APIRequestHandler.disable_nagle_algorithm = False; reference/nodemanager.md \
                 §1.2), unless NodeManager crashed while handling the call. The call may or may \
                 not have taken effect: check the sliver's status before repeating it. ({text})"
            ))
        }
        RpcError::Transport(text) => NmError::Transport(format!("{what}: {text}")),
        RpcError::Timeout(text) => NmError::Transport(format!(
            "{what}: timed out ({text}); NodeManager runs every call and its PLC sync under one \
             lock, so a long sync delays every call"
        )),
        other => NmError::Transport(format!("{what}: {other}")),
    }
}

fn fault_error(call: &Call<'_>, fault: &Fault) -> NmError {
    let what = call.what();
    let text = fault.string.as_str();
    let has = |needle: &str| text.contains(needle);
    let explained = match fault.code {
        100 => format!("{what}: NodeManager has no such method"),
        101 => format!("{what}: wrong number of arguments"),
        // NM7 gives its raw-arguments path, the only one AdminTicket works on, to exactly
        // `<prefix>_sfacm`; from anyone else the ticket is taken for a sliver name (§1.3).
        102 if call.method == "AdminTicket" && has(NOT_A_SLIVER) => format!(
            "NodeManager did not accept {} as its admin account (NodeManager grants AdminTicket \
             to <prefix>_sfacm): check [node.nodemanager] admin_account. <prefix> is \
             PLC_SLICE_PREFIX in the node's /etc/planetlab/plc_config, \"pl\" when unset; \
             NodeManagers from before 2010 grant it to <prefix>_genicw",
            call.caller
        ),
        102 if has(NOT_A_SLIVER) => format!(
            "invalid argument: {what}: NodeManager has no sliver record by that name (not \
             delivered yet, removed by NM's PLC sync, or NM restarted: NM7 starts with an empty \
             database and answers this until its first PLC sync)"
        ),
        102 => format!("invalid argument or ticket: {what}"),
        104 if has(ONLY_PLC_CREATES) => format!(
            "error in call: {what}: NodeManager creates only delegated slivers through its API; \
             a plc-instantiated one is created by NM's own sync"
        ),
        104 if has(ONLY_PLC_DESTROYS) => format!(
            "error in call: {what}: NodeManager destroys a plc-instantiated sliver only when PLC \
             drops it or its record expires"
        ),
        104 if has(NO_RECORD_AFTER_TICKET) => format!(
            "error in call: {what}: NodeManager ignored the record: its timestamp is older than \
             NM's last full PLC sync, its expiry has passed, or the batch had no initscripts"
        ),
        104 if has("string indices must be integers")
            || has("object has no attribute 'get'")
            || has("missing 1 required positional argument") =>
        {
            format!(
                "error in call: {what}: NodeManager ran the method on the sliver's name instead \
                 of its record, which is what it does for its admin account (<prefix>_sfacm): \
                 that account may call only Help, GetXIDs, GetSSHKeys, Ticket and AdminTicket; \
                 call as the sliver's own account"
            )
        }
        104 if has(NO_ACCOUNT_OBJECT) => format!(
            "error in call: {what}: NodeManager has the record but no account object for it \
             (the sliver was never created or was destroyed, or NM restarted)"
        ),
        104 if has("name 'load' is not defined") => format!(
            "error in call: {what}: NodeManager's SetLoans has failed on every non-empty loan \
             list since 2010"
        ),
        104 if has("a bytes-like object is required") => format!(
            "error in call: {what}: NodeManager's GPG Ticket is broken on Python 3; use AdminTicket"
        ),
        104 => format!("error in call: {what}: NodeManager's handler failed"),
        108 => format!(
            "permission denied: {what}: NodeManager accepts a sliver's calls only from the \
             sliver's own account or the single account named in its delegations tag"
        ),
        1 => format!(
            "{what}: NodeManager failed outside its API handlers: usually the calling uid has no \
             passwd entry on the node (or the call came over TCP), or the answer held a value \
             XML-RPC cannot carry"
        ),
        _ => format!("{what}: unexpected NodeManager fault"),
    };
    NmError::NodeManager {
        code: fault.code,
        message: format!("{explained} (NodeManager said: {text})"),
    }
}

/// NM has no record of the sliver a per-sliver call named (fault 102, §1.3).
pub(super) fn is_no_record(error: &NmError) -> bool {
    matches!(error, NmError::NodeManager { code: 102, message } if message.contains(NOT_A_SLIVER))
}

/// NM has the record but its Worker no account object (fault 104, §3.4).
pub(super) fn is_no_account_object(error: &NmError) -> bool {
    matches!(
        error,
        NmError::NodeManager { code: 104, message } if message.contains(NO_ACCOUNT_OBJECT)
    )
}

/// The fault carries NM's `text` (NM's own words are kept at the end of every message).
pub(super) fn says(error: &NmError, text: &str) -> bool {
    matches!(error, NmError::NodeManager { message, .. } if message.contains(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: Call<'static> = Call {
        method: "Start",
        sliver: Some("pl_x"),
        caller: "pl_y",
    };

    fn fault(code: i32, string: &str) -> NmError {
        nm_error(
            &CALL,
            RpcError::Fault(Fault {
                code,
                string: string.to_owned(),
            }),
        )
    }

    #[test]
    fn every_code_keeps_nm_code_and_words() {
        for (code, text, expect) in [
            (
                100,
                "Invalid API method Strat.  Valid choices are …",
                "no such method",
            ),
            (
                101,
                "Invalid argument count: got 0, expecting 1.",
                "wrong number",
            ),
            (
                102,
                "Invalid argument: the first argument must be a sliver name.",
                "no sliver record",
            ),
            (104, "Error in call: boom", "error in call"),
            (108, "pl_y: Permission denied.", "permission denied"),
            (
                1,
                "<class 'KeyError'>:'getpwuid(): uid not found: 5'",
                "passwd",
            ),
            (7, "odd", "unexpected"),
        ] {
            let e = fault(code, text);
            let shown = e.to_string();
            assert!(matches!(e, NmError::NodeManager { code: c, .. } if c == code));
            assert!(shown.contains(&format!("fault {code}")), "{shown}");
            assert!(shown.contains(expect), "{shown}");
            assert!(shown.contains(text), "{shown}");
            assert!(shown.contains("Start of pl_x as pl_y"), "{shown}");
        }
    }

    #[test]
    fn admin_ticket_refused_as_not_a_sliver_names_the_admin_account() {
        let call = Call {
            method: "AdminTicket",
            sliver: Some("pl_x"),
            caller: "pl_genicw",
        };
        let e = nm_error(
            &call,
            RpcError::Fault(Fault {
                code: 102,
                string: "Invalid argument: the first argument must be a sliver name.".to_owned(),
            }),
        );
        let shown = e.to_string();
        assert!(
            shown.contains(
                "NodeManager did not accept pl_genicw as its admin account (NodeManager grants \
                 AdminTicket to <prefix>_sfacm): check [node.nodemanager] admin_account"
            ),
            "{shown}"
        );
        assert!(!shown.contains("no sliver record"), "{shown}");
        assert!(is_no_record(&fault(
            102,
            "Invalid argument: the first argument must be a sliver name."
        )));
        assert!(!is_no_record(&fault(
            104,
            "Error in call: the first argument must be a sliver name"
        )));
        assert!(is_no_account_object(&fault(
            104,
            "Error in call: 'NoneType' object has no attribute 'configure'"
        )));
    }

    #[test]
    fn a_dropped_connection_names_the_method_and_the_bug() {
        let e = nm_error(
            &CALL,
            RpcError::Transport("NodeManager closed the connection without answering Start".into()),
        );
        let shown = e.to_string();
        assert!(matches!(e, NmError::Transport(_)));
        assert!(shown.contains("Start of pl_x"), "{shown}");
        assert!(shown.contains("Python 3"), "{shown}");
        assert!(
            shown.contains("may or may not have taken effect"),
            "{shown}"
        );
    }
}
