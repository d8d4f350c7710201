//! An in-process NodeManager stand-in for tests. It follows `reference/nodemanager.md` §7:
//! NM7's transport (XML-RPC over HTTP POST on a Unix socket of mode 0666, HTTP/1.0 answers, one
//! call per connection), the caller's identity from SO_PEERCRED uid → passwd name, `_dispatch`'s
//! order (§1.3), the method table with its quirks (§1.4), the fault codes and texts (faults
//! raised inside a handler come back wrapped in 104), GetSlivers' record conversion,
//! `deliver_record`, `set_min_timestamp` and `sync()` (§2.2, §2.3, §3.5), a passwd-like
//! registry of sliver accounts as the source of truth for `GetXIDs`, and NM7's restart (§2.3,
//! §3.4): the database comes back empty while accounts and containers stay, so every per-sliver
//! call answers 102 until the next PLC sync or ticket delivers a record, and no Worker holds an
//! account object until `ensure_created` runs for it. `AdminTicket` from any account but
//! `<prefix>_sfacm` takes NM's ordinary path and is refused with 102, as NM7 does (§1.3, §1.4).
//!
//! Left out, as in the §5.3 harness: TCP, loans other than the empty list (the API cannot set
//! others), reservable nodes, and re-imaging (needs_reimage is false without a slicefamily
//! file). When told to, it drops connections without answering, as the Python 3 NM does (§1.2).
//! Unlike NM7, it reads the request before hanging up, so that what the client sees does not
//! depend on a race.
//!
//! This file is the API side (NM's `api.py` and `api_calls.py`); the record database and the
//! accounts behind it (`database.py`, `slivermanager.py`, `account.py`) are in `database`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use geni_xmlrpc::{Fault, Limits, MethodResponse, Struct, Value};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Uid, User};

use self::database::Nm;
use self::database::{items, key, string, text};

mod database;

/// `export_to_api(nargs)` of every method, in Python's sorted order (for fault 100's text).
const METHODS: &str = "AdminTicket:1 Create:1 Destroy:1 GetEffectiveRSpec:1 GetLoans:1 \
    GetRSpec:1 GetRecord:0 GetSSHKeys:0 GetXIDs:0 Help:0 ReCreate:1 SetLoans:2 Start:1 Stop:1 \
    Ticket:1";

const NOT_A_SLIVER: &str = "Invalid argument: the first argument must be a sliver name.";

/// A handler's outcome: its value (`None` is Python's None, answered as 1) or `str(exception)`.
type Handled = Result<Option<Value>, String>;

/// One call as the double saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The passwd name of the connecting uid (`uid N` when it has none).
    pub caller: String,
    pub uid: u32,
    pub method: String,
    /// False for a connection dropped without an answer.
    pub answered: bool,
}

struct Shared {
    nm: Mutex<Nm>,
    drop_next: AtomicUsize,
    stop: AtomicBool,
}

/// The running stand-in; stops accepting when dropped.
pub struct NmDouble {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl NmDouble {
    /// Listens on `dir/nodemanager.api` (mode 0666). `prefix` is PLC_SLICE_PREFIX: the caller
    /// `<prefix>_sfacm` gets the raw-arguments path.
    pub fn start(dir: &Path, prefix: &str) -> std::io::Result<Self> {
        let path = dir.join("nodemanager.api");
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        let nm = Nm {
            prefix: prefix.to_owned(),
            db: BTreeMap::new(),
            min_timestamp: 0.0,
            passwd: BTreeMap::new(),
            calls: Vec::new(),
            journal: Vec::new(),
            tickets: Vec::new(),
            next_uid: 70_000,
        };
        let (drop_next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
        let shared = Arc::new(Shared {
            nm: Mutex::new(nm),
            drop_next,
            stop,
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                // ThreadingMixIn: a thread per connection; `_dispatch` serializes on db_lock.
                let handler = Arc::clone(&accepting);
                if let Ok(stream) = stream {
                    std::thread::spawn(move || serve(&handler, stream));
                }
            }
        });
        Ok(Self { path, shared })
    }

    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// NM's state, locked (as `db_lock` would be).
    fn nm(&self) -> MutexGuard<'_, Nm> {
        self.shared
            .nm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.nm().calls.clone()
    }

    /// NM's record for `name`, as GetRecord returns it.
    pub fn record(&self, name: &str) -> Option<Struct> {
        self.nm().db.get(name).cloned()
    }

    pub fn xids(&self) -> BTreeMap<String, u32> {
        self.nm().xids()
    }

    pub fn running(&self, name: &str) -> Option<bool> {
        self.nm().passwd.get(name).map(|a| a.running)
    }

    pub fn journal(&self) -> Vec<String> {
        self.nm().journal.clone()
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.nm().tickets.clone()
    }

    /// A PLC poll listing `slivers`: GetSlivers with fullupdate, so `set_min_timestamp` removes
    /// every older record, locally delivered ones included, and `sync()` destroys their accounts.
    pub fn plc_sync(&self, timestamp: f64, slivers: Vec<Value>) {
        let data = Struct::new()
            .with("timestamp", Value::Double(timestamp))
            .with("initscripts", Value::Array(Vec::new()))
            .with("slivers", Value::Array(slivers));
        let result = self.nm().get_slivers(&Value::Struct(data), true);
        assert!(result.is_ok(), "PLC sync failed: {result:?}");
    }

    /// NodeManager 7 restarts: empty database, accounts and containers kept (see `Nm::restart`).
    pub fn restart(&self) {
        self.nm().restart();
    }

    /// Drops the next `n` connections without answering (the Python 3 NM's Unix-socket bug).
    pub fn drop_next(&self, n: usize) {
        self.shared.drop_next.store(n, Ordering::SeqCst);
    }
}

impl Drop for NmDouble {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = UnixStream::connect(&self.path);
    }
}

fn serve(shared: &Shared, mut stream: UnixStream) {
    let uid = getsockopt(&stream, PeerCredentials).map_or(u32::MAX, |c| c.uid());
    let name = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    let Some((path, body)) = read_request(&mut stream) else {
        return;
    };
    let call = geni_xmlrpc::parse_method_call(&body, &Limits::default());
    let dropped = (shared.drop_next)
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let mut nm = shared.nm.lock().unwrap_or_else(PoisonError::into_inner);
    nm.calls.push(Call {
        caller: name.clone().unwrap_or_else(|| format!("uid {uid}")),
        uid,
        method: call.as_ref().map(|c| c.method.clone()).unwrap_or_default(),
        answered: !dropped,
    });
    // SimpleXMLRPCRequestHandler answers 404 outside its rpc_paths.
    let answer = match call {
        _ if dropped => return,
        _ if path != "/" && path != "/RPC2" => None,
        Ok(call) => Some(nm.dispatch(name.ok_or(uid), &call.method, &call.params)),
        Err(e) => Some(Err(fault1("xml.parsers.expat.ExpatError", &e.to_string()))),
    };
    drop(nm);
    let response = match answer {
        None => "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
        Some(answer) => {
            let answer = answer.map_or_else(MethodResponse::Fault, MethodResponse::Success);
            let xml = geni_xmlrpc::write_method_response(&answer).unwrap_or_default();
            let length = xml.len();
            format!(
                "HTTP/1.0 200 OK\r\nContent-type: text/xml\r\nContent-length: {length}\r\n\r\n{xml}"
            )
        }
    };
    let _ = stream.write_all(response.as_bytes());
}

/// `(path, body)` of one `POST`; `None` for anything else.
fn read_request(stream: &mut UnixStream) -> Option<(String, String)> {
    let mut reader = BufReader::new(stream);
    let (mut line, mut length) = (String::new(), 0);
    reader.read_line(&mut line).ok()?;
    let request: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? <= 2 {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let [verb, path, ..] = request.as_slice() else {
        return None;
    };
    (verb == "POST").then(|| (path.clone(), String::from_utf8_lossy(&body).into_owned()))
}

impl Nm {
    /// `APIRequestHandler._dispatch` (§1.3), then SimpleXMLRPCServer's marshalling.
    fn dispatch(
        &mut self,
        who: Result<String, u32>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Fault> {
        let Some((_, nargs)) = methods().find(|(m, _)| *m == method) else {
            let choices = methods().map(|(m, _)| m).collect::<Vec<_>>().join(", ");
            return Err(fault(
                100,
                &format!("Invalid API method {method}.  Valid choices are {choices}"),
            ));
        };
        let got = args.len();
        if got != nargs {
            return Err(fault(
                101,
                &format!("Invalid argument count: got {got}, expecting {nargs}."),
            ));
        }
        // Outside the try blocks: a KeyError here is SimpleXMLRPCServer's fault 1.
        let who =
            who.map_err(|uid| fault1("KeyError", &format!("'getpwuid(): uid not found: {uid}'")))?;
        let result = if who == format!("{}_sfacm", self.prefix)
            || ["Help", "Ticket", "GetXIDs", "GetSSHKeys"].contains(&method)
        {
            self.raw(method, args)
        } else {
            let target = match (method, args) {
                ("GetRecord", _) => who.clone(),
                (_, [Value::String(name), ..]) => name.clone(),
                (_, [Value::Struct(_) | Value::Array(_), ..]) => {
                    return Err(fault1("TypeError", "unhashable type"));
                }
                _ => return Err(fault(102, NOT_A_SLIVER)),
            };
            let sliver = |r: &&Struct| text(r.get("type")).starts_with("sliver.");
            let Some(record) = self.db.get(&target).filter(sliver) else {
                return Err(fault(102, NOT_A_SLIVER));
            };
            // Tuple membership: equal to the name, or equal to the *whole* delegations value.
            if who != target && record.get("delegations") != Some(&Value::from(who.as_str())) {
                return Err(fault(108, &format!("{who}: Permission denied.")));
            }
            self.with_record(method, &target, args.get(1..).unwrap_or_default())
        };
        // Every path wraps whatever the handler raises, a Fault included, in 104.
        let result = result.map_err(|e| fault(104, &format!("Error in call: {e}")))?;
        let result = result.unwrap_or(Value::Int(1));
        marshallable(&result)?;
        Ok(result)
    }

    /// A method called with the raw wire arguments (the `_sfacm` and anonymous paths): the
    /// name-taking methods get a string where they index a record.
    fn raw(&mut self, method: &str, args: &[Value]) -> Handled {
        let keys = |(n, r): (&String, &Struct)| Some((n.clone(), r.get("keys")?.clone()));
        let xids = self
            .xids()
            .into_iter()
            .map(|(n, u)| (n, Value::Int(u.into())));
        match method {
            "Help" => Ok(Some(
                methods()
                    .map(|(m, _)| format!("**** {m}\n"))
                    .collect::<String>()
                    .into(),
            )),
            "GetXIDs" => Ok(Some(Value::Struct(xids.collect()))),
            "GetSSHKeys" => Ok(Some(Value::Struct(
                self.db.iter().filter_map(keys).collect(),
            ))),
            // `ticket.verify()` writes a str to a binary pipe on Python 3 (§1.4).
            "Ticket" => Err(raised(
                102,
                "Ticket error: a bytes-like object is required, not 'str'",
            )),
            "AdminTicket" => self.admin_ticket(&args[0]),
            "Create" | "Destroy" | "Start" | "Stop" | "ReCreate" => {
                Err("string indices must be integers, not 'str'".into())
            }
            "GetRSpec" | "GetEffectiveRSpec" | "GetLoans" => {
                Err("'str' object has no attribute 'get'".into())
            }
            "SetLoans" => validate_loans(&args[1])
                .and(Err("'str' object does not support item assignment".into())),
            _ => Err("GetRecord() missing 1 required positional argument: 'sliver_name'".into()),
        }
    }

    /// A method called as `method(target_rec, *args[1:])`.
    fn with_record(&mut self, method: &str, name: &str, args: &[Value]) -> Handled {
        let record = self.db.get(name).cloned().unwrap_or_default();
        let delegated = text(record.get("instantiation")) == "delegated";
        let copy = |key: &str, empty: Value| Ok(Some(record.get(key).cloned().unwrap_or(empty)));
        match method {
            "Create" if delegated => self.ensure_created(name),
            "Create" => Err("Only PLC can create non delegated slivers.".into()),
            "Destroy" if delegated => Ok(self.destroy(name)),
            "Destroy" => Err("Only PLC can destroy non delegated slivers.".into()),
            "Start" => self.start(name),
            "Stop" => self.stop(name),
            // NM7: stop, ensure_created, start; no destroy, no re-image (§1.4).
            "ReCreate" => self
                .stop(name)
                .and_then(|_| self.ensure_created(name))
                .and_then(|_| self.start(name)),
            "GetRSpec" => copy("rspec", Value::Struct(Struct::new())),
            "GetEffectiveRSpec" => copy("_rspec", Value::Struct(Struct::new())),
            "GetLoans" => copy("_loans", Value::Array(Vec::new())),
            "SetLoans" => {
                validate_loans(&args[0])?;
                if let Some(r) = self.db.get_mut(name) {
                    r.insert("_loans", Value::Array(Vec::new()));
                }
                Ok(self.sync())
            }
            // `xmlrpc.client.loads` of a dict, inside the handler's own try block.
            "AdminTicket" | "Ticket" => Err(raised(102, "Ticket error: expected a string")),
            _ => Ok(Some(Value::Struct(record))),
        }
    }

    /// `api_calls.AdminTicket`: unsigned data, delivered like one GetSlivers batch, then `Create`
    /// of whatever record the name now has. Anything raised becomes Fault 102 "Ticket error".
    fn admin_ticket(&mut self, ticket: &Value) -> Handled {
        let mut run = || -> Handled {
            let xml = ticket
                .as_str()
                .ok_or("expected string or bytes-like object")?;
            let params = match geni_xmlrpc::parse_params(xml, &Limits::default()) {
                Ok(params) => params,
                Err(_) => match geni_xmlrpc::parse_method_response(xml, &Limits::default()) {
                    Ok(MethodResponse::Success(value)) => vec![value],
                    Ok(MethodResponse::Fault(f)) => return Err(raised(f.code, &f.string)),
                    Err(e) => return Err(e.to_string()),
                },
            };
            let [data] = params.as_slice() else {
                return Err(format!("expected 1 value to unpack, got {}", params.len()));
            };
            let slivers = items(key(data, "slivers")?)?;
            let name = string(slivers.first().ok_or("list index out of range")?, "name")?;
            self.tickets.push(data.clone());
            self.get_slivers(data, false)?;
            let record = self
                .db
                .get(&name)
                .ok_or("'NoneType' object is not subscriptable")?;
            if text(record.get("instantiation")) != "delegated" {
                return Err("Only PLC can create non delegated slivers.".into());
            }
            self.ensure_created(&name)
        };
        run().map_err(|e| raised(102, &format!("Ticket error: {e}")))
    }
}

/// The method table as `(name, nargs)`.
fn methods() -> impl Iterator<Item = (&'static str, usize)> {
    let parse = |m: &'static str| m.split_once(':').map(|(m, n)| (m, n.parse().unwrap_or(0)));
    METHODS.split_whitespace().filter_map(parse)
}

fn fault(code: i32, string: &str) -> Fault {
    let string = string.to_owned();
    Fault { code, string }
}

/// SimpleXMLRPCServer's answer to anything raised outside the handlers' try blocks.
fn fault1(class: &str, text: &str) -> Fault {
    fault(1, &format!("<class '{class}'>:{text}"))
}

/// `str()` of a Fault raised inside a handler: `<Fault 102: 'text'>` (Python's repr of the text).
fn raised(code: i32, string: &str) -> String {
    let quote = if string.contains('\'') && !string.contains('"') {
        '"'
    } else {
        '\''
    };
    let escaped = string.replace('\\', "\\\\").replace('\n', "\\n");
    let escaped = escaped.replace(quote, &format!("\\{quote}"));
    format!("<Fault {code}: {quote}{escaped}{quote}>")
}

/// `validate_loans` with its 2010 typo: any non-empty list hits the undefined name `load`.
fn validate_loans(loans: &Value) -> Result<(), String> {
    match loans {
        Value::Array(items) if items.is_empty() => Ok(()),
        Value::Array(_) => Err("name 'load' is not defined".into()),
        _ => Err(raised(
            102,
            "Invalid argument: the second argument must be a well-formed loan specification",
        )),
    }
}

/// What `allow_none=False` and Python's i32 limit refuse when marshalling the answer.
fn marshallable(value: &Value) -> Result<(), Fault> {
    match value {
        Value::Nil => Err(fault1(
            "TypeError",
            "cannot marshal None unless allow_none is enabled",
        )),
        Value::Int(i) if i32::try_from(*i).is_err() => {
            Err(fault1("OverflowError", "int exceeds XML-RPC limits"))
        }
        Value::Array(items) => items.iter().try_for_each(marshallable),
        Value::Struct(s) => s.iter().try_for_each(|(_, v)| marshallable(v)),
        _ => Ok(()),
    }
}
