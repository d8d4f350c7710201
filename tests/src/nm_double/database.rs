//! The double's NodeManager database and accounts: GetSlivers' record conversion (§2.2),
//! `deliver_record`, `set_min_timestamp` and `sync()` (§2.3, §3.5), the Worker's
//! `ensure_created`, start, stop and destroy (§3.1), and the passwd-like registry of accounts
//! that `GetXIDs` reads. This is NM's `database.py`, `slivermanager.py` and `account.py`; the
//! API in front of it is the parent module, as `api.py` and `api_calls.py` are in NM.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use geni_xmlrpc::{Struct, Value};
use nix::unistd::User;

use super::{Call, Handled};

/// NM7's DEFAULT_ALLOCATION under Python 3 (§2.2) as `name=<type><default>`: `i` int, `f` float
/// (bandwidths are bwmin/bwmax divided by 1000), `s` string. The type is the conversion.
const DEFAULTS: &str = "enabled=i1 cpu_pct=i0 cpu_share=i1 cpu_cores=s0b net_min_rate=f0.008 \
    net_max_rate=f1000000.0 net_share=i1 net_i2_min_rate=f0.008 net_i2_max_rate=f1000000.0 \
    net_i2_share=i1 net_max_kbyte=i10546875 net_thresh_kbyte=i9492187 net_i2_max_kbyte=i31640625 \
    net_i2_thresh_kbyte=i28476562 disk_max=i10000000 capabilities=s ip_addresses=s0.0.0.0";

/// Sliver_LXC's and Controller's shells: the registered account classes (§3.1, §3.2).
const SLIVER_SHELL: &str = "/usr/sbin/vsh";
const CONTROLLER_SHELL: &str = "/usr/bin/forward_api_calls";

/// A passwd entry with a registered shell, whether its sliver runs, and whether NM's Worker for
/// it holds an account object (`Worker._acct`).
pub(crate) struct Account {
    pub(crate) uid: u32,
    shell: &'static str,
    /// The container's own state: it outlives an NM restart.
    pub(crate) running: bool,
    /// `Worker._acct is not None`. Only `ensure_created` sets it, so a restarted NM has none:
    /// `Worker.is_running()` is then False, and `Start`/`Stop` raise AttributeError (§3.1, §3.4).
    pub(crate) attached: bool,
}

/// NM's state: the record database, the accounts, and what the tests inspect.
pub(crate) struct Nm {
    pub(super) prefix: String,
    /// The record database: name → record, as GetRecord returns it.
    pub(crate) db: BTreeMap<String, Struct>,
    pub(super) min_timestamp: f64,
    /// What exists: accounts with a registered shell (NM reads passwd for this).
    pub(crate) passwd: BTreeMap<String, Account>,
    pub(crate) calls: Vec<Call>,
    /// Lifecycle events: `create|configure|start|stop|destroy <name>`, and `restart`.
    pub(crate) journal: Vec<String>,
    /// The decoded data of every AdminTicket that got as far as naming its sliver.
    pub(crate) tickets: Vec<Value>,
    pub(super) next_uid: u32,
}

impl Nm {
    /// `slivermanager.GetSlivers` (§2.2): convert each sliver, `deliver_record`, with
    /// `fullupdate` also `set_min_timestamp`, then `sync()`.
    pub(super) fn get_slivers(&mut self, data: &Value, fullupdate: bool) -> Result<(), String> {
        // A batch without initscripts is silently ignored.
        let Some(initscripts) = data.as_struct().and_then(|d| d.get("initscripts")) else {
            return Ok(());
        };
        // The 2008 component's dict fails here: iterating a dict yields its keys, strings.
        let mut scripts = BTreeMap::new();
        for script in items(initscripts)? {
            scripts.insert(string(&script, "name")?, key(&script, "script")?.clone());
        }
        for sliver in items(key(data, "slivers")?)? {
            let mut rec = sliver.as_struct().cloned().ok_or("sliver is not a dict")?;
            if !rec.contains("timestamp") {
                rec.insert("timestamp", key(data, "timestamp")?.clone());
            }
            let mut tags = Struct::new();
            for a in items(&rec.remove("attributes").ok_or("'attributes'")?)? {
                tags.insert(string(&a, "tagname")?, key(&a, "value")?.clone());
            }
            let keys = items(&rec.remove("keys").ok_or("'keys'")?)?;
            let keys: Vec<String> = keys
                .iter()
                .map(|k| string(k, "key"))
                .collect::<Result<_, _>>()?;
            rec.insert("keys", keys.join("\n"));
            let tag = |k: &str| tags.get(k).cloned();
            let instantiation = string(&Value::Struct(rec.clone()), "instantiation")?;
            let controller = instantiation.eq_ignore_ascii_case("nm-controller");
            let kind = ["sliver.LXC", "controller.Controller"][usize::from(controller)];
            setdefault(&mut rec, "type", tag("type").unwrap_or_else(|| kind.into()));
            setdefault(
                &mut rec,
                "vref",
                tag("vref").unwrap_or_else(|| "default".into()),
            );
            let code = tag("initscript_code").filter(|c| !text(Some(c)).is_empty());
            let named = tag("initscript").and_then(|n| scripts.get(text(Some(&n))).cloned());
            rec.insert("initscript", code.or(named).unwrap_or_else(|| "".into()));
            let none = Value::Array(Vec::new());
            setdefault(&mut rec, "delegations", tag("delegations").unwrap_or(none));
            let mut rspec = Struct::new();
            for (name, default) in DEFAULTS
                .split_whitespace()
                .filter_map(|d| d.split_once('='))
            {
                // The default's type converts the tag; a tag that does not convert is ignored.
                let (kind, default) = default.split_at(1);
                let convert = |s: &str| match kind {
                    "i" => s.trim().parse().ok().map(Value::Int),
                    "f" => s.trim().parse().ok().map(Value::Double),
                    _ => Some(Value::from(s)),
                };
                let given = tag(name).and_then(|v| convert(text(Some(&v))));
                rspec.insert(
                    name,
                    given.or_else(|| convert(default)).unwrap_or(Value::Nil),
                );
            }
            for (name, value) in tags.iter().filter(|(k, _)| k.starts_with("sysctl.")) {
                rspec.insert(name, value.clone());
            }
            rspec.insert("tags", Value::Struct(tags.clone()));
            rec.insert("attributes", Value::Struct(tags));
            rec.insert("rspec", Value::Struct(rspec));
            self.deliver_record(rec);
        }
        if fullupdate {
            // `set_min_timestamp` (§2.3): every record older than the full update goes.
            self.min_timestamp = number(key(data, "timestamp").ok());
            let min = self.min_timestamp;
            self.db.retain(|_, r| number(r.get("timestamp")) >= min);
        }
        self.sync();
        Ok(())
    }

    /// `Database.deliver_record` (§2.3): ignored below the minimum timestamp, inserted when new,
    /// replaced (all but `_` keys) only by a strictly newer timestamp.
    pub(super) fn deliver_record(&mut self, mut rec: Struct) {
        let (ts, name) = (
            number(rec.get("timestamp")),
            text(rec.get("name")).to_owned(),
        );
        match self.db.get(&name) {
            _ if ts < self.min_timestamp => {}
            Some(old) if ts <= number(old.get("timestamp")) => {}
            old => {
                // `old.update(rec)` after deleting old's public keys: old's `_` keys stay.
                for (k, v) in old
                    .iter()
                    .flat_map(|o| o.iter())
                    .filter(|(k, _)| k.starts_with('_'))
                {
                    setdefault(&mut rec, k, v.clone());
                }
                self.db.insert(name, rec);
            }
        }
    }

    /// `Database.sync` (§2.3): drop expired records, recompute `_rspec`, destroy accounts that
    /// have no record, and refresh each record according to its instantiation.
    /// Returns Python's None, as the handlers that end with it do.
    pub(super) fn sync(&mut self) -> Option<Value> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.db
            .retain(|_, r| r.get("expires").is_none_or(|e| number(Some(e)) >= now));
        for rec in self.db.values_mut() {
            // Loans can only ever be [] through the API, so the effective rspec is the rspec.
            if let Some(rspec) = rec.get("rspec").cloned() {
                rec.insert("_rspec", rspec);
            }
        }
        let gone: Vec<String> = self
            .passwd
            .keys()
            .filter(|n| !self.db.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.destroy(&name);
        }
        let names: Vec<String> = self.db.keys().cloned().collect();
        for name in names {
            let refresh = match text(self.db[&name].get("instantiation")) {
                "plc-instantiated" | "nm-controller" => true,
                "delegated" => self.passwd.get(&name).is_some_and(Account::is_running),
                _ => false,
            };
            if refresh {
                // NM logs a per-sliver failure and goes on with the others.
                let _ = self.ensure_created(&name);
            }
        }
        None
    }

    /// `Worker.ensure_created` (§3.1): (re)create when the account class differs, then start
    /// unless already running, else only configure.
    pub(super) fn ensure_created(&mut self, name: &str) -> Handled {
        let shell = match text(self.db.get(name).and_then(|r| r.get("type"))) {
            "sliver.LXC" => SLIVER_SHELL,
            "controller.Controller" => CONTROLLER_SHELL,
            other => return Err(format!("'{other}'")),
        };
        let current = self.passwd.get(name).map(|a| a.shell);
        if current != Some(shell) {
            self.destroy(name);
            self.next_uid += 1;
            let real = User::from_name(name).ok().flatten().map(|u| u.uid.as_raw());
            let uid = real.unwrap_or(self.next_uid);
            self.passwd.insert(
                name.to_owned(),
                Account {
                    uid,
                    shell,
                    running: false,
                    attached: false,
                },
            );
            self.journal.push(format!("create {name}"));
        }
        let account = self.passwd.get_mut(name).ok_or("account vanished")?;
        account.attached = true;
        if account.running {
            self.journal.push(format!("configure {name}"));
            return Ok(None);
        }
        self.start(name)
    }

    /// `Worker.start`: configure, then start. Without an account object: AttributeError.
    pub(super) fn start(&mut self, name: &str) -> Handled {
        let no_account = "'NoneType' object has no attribute 'configure'";
        self.attached(name).ok_or(no_account)?.running = true;
        self.journal
            .extend([format!("configure {name}"), format!("start {name}")]);
        Ok(None)
    }

    pub(super) fn stop(&mut self, name: &str) -> Handled {
        let no_account = "'NoneType' object has no attribute 'stop'";
        self.attached(name).ok_or(no_account)?.running = false;
        self.journal.push(format!("stop {name}"));
        Ok(None)
    }

    /// `ensure_destroyed`; returns Python's None, as `Destroy` does.
    pub(super) fn destroy(&mut self, name: &str) -> Option<Value> {
        if self.passwd.remove(name).is_some() {
            self.journal.push(format!("destroy {name}"));
        }
        None
    }

    /// NM7 restarting (§2.3, §3.4): its pickle is never reloaded, so the database starts empty
    /// and `_min_timestamp` at 0; passwd and the containers are untouched; every Worker is new,
    /// without an account object.
    pub(crate) fn restart(&mut self) {
        self.db.clear();
        self.min_timestamp = 0.0;
        for account in self.passwd.values_mut() {
            account.attached = false;
        }
        self.journal.push("restart".to_owned());
    }

    /// The account of `name` when its Worker holds an account object.
    fn attached(&mut self, name: &str) -> Option<&mut Account> {
        self.passwd.get_mut(name).filter(|a| a.attached)
    }

    /// What GetXIDs answers: every account whose shell is the sliver shell.
    pub(crate) fn xids(&self) -> BTreeMap<String, u32> {
        let slivers = self.passwd.iter().filter(|(_, a)| a.shell == SLIVER_SHELL);
        slivers.map(|(n, a)| (n.clone(), a.uid)).collect()
    }
}

impl Account {
    /// `Worker.is_running()`: False without an account object, whatever the container does.
    fn is_running(&self) -> bool {
        self.attached && self.running
    }
}

/// `value[name]`, with Python's KeyError and TypeError texts.
pub(super) fn key<'v>(value: &'v Value, name: &str) -> Result<&'v Value, String> {
    match value {
        Value::Struct(s) => s.get(name).ok_or_else(|| format!("'{name}'")),
        Value::String(_) => Err("string indices must be integers, not 'str'".into()),
        _ => Err("object is not subscriptable".into()),
    }
}

/// `value[name]` as a string.
pub(super) fn string(value: &Value, name: &str) -> Result<String, String> {
    key(value, name).map(|v| text(Some(v)).to_owned())
}

/// Iteration: a list yields its items, a dict its keys.
pub(super) fn items(value: &Value) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => Ok(items.clone()),
        Value::Struct(s) => Ok(s.names().map(Value::from).collect()),
        _ => Err("object is not iterable".into()),
    }
}

pub(super) fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or_default()
}

pub(super) fn setdefault(rec: &mut Struct, name: &str, value: Value) {
    if !rec.contains(name) {
        rec.insert(name, value);
    }
}

pub(super) fn number(value: Option<&Value>) -> f64 {
    match value {
        Some(Value::Double(d)) => *d,
        #[allow(clippy::cast_precision_loss)]
        Some(Value::Int(i)) => *i as f64,
        _ => 0.0,
    }
}
