//! The `nodemanager` backend: slivers made and run by a real PlanetLab NodeManager, driven over
//! its XML-RPC Unix socket (`/tmp/nodemanager.api`) under the caller-uid rules NM enforces
//! (`reference/nodemanager.md` §1.2–§1.4 and §7).
//!
//! NM knows a caller only by the uid that connected (SO_PEERCRED), so every call picks its
//! identity. A redeemed record goes in through `AdminTicket` as the configured admin account
//! (`<prefix>_sfacm` on NM7, `pl_genicw` on the late-2008 NM). Start, Stop, ReCreate, Destroy and
//! GetRecord go as the sliver's own account, or as the one account its `delegations` tag names.
//! The connection for another uid is made by a short-lived helper process ([`connect_helper_main`]),
//! never by forking this multi-threaded process. NM's periodic PLC sync removes locally delivered
//! records that PLC does not list (§3.5), and NM7 restarts with an empty database, answering fault
//! 102 for every sliver until its first PLC sync (§2.3, §3.4). So the backend keeps its own
//! crash-safe record of what it redeemed (`state`). A reconcile loop
//! ([`NodeManagerBackend::spawn_reconcile`]) compares it with both of NM's views, its accounts
//! (`GetXIDs`, from passwd) and its records (`GetSSHKeys`, from its database), re-delivers what NM
//! lacks until the ticket expires, and then destroys the sliver in NM. A sliver call that meets
//! NM's "no record" fault re-delivers and retries once.
//!
//! Every `AdminTicket` ends in NM's `sync()`, which destroys each sliver account its database has
//! no record for. While a restarted NM7 has an empty database, that would wipe every other sliver
//! on the node, so each delivery also carries the records NM lost: ours as we last delivered
//! them, and a harmless stand-in for each sliver we do not hold (`ticket::Batch::placeholder`).
//!
//! Where NM behaves differently from the trait's wording, NM wins, and each method says how: NM
//! starts a sliver as soon as it is delivered, and its `ReCreate` restarts without re-imaging.

mod connect;
mod faults;
mod state;
mod ticket;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use geni_rpc::client::UnixClient;
use geni_xmlrpc::Value;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub use connect::connect_helper_main;

use self::connect::{Account, lookup};
use self::state::{Store, Stored};
use crate::{
    BoxFuture, NmError, SliverManager, SliverName, SliverRecord, SliverState, SliverStatus,
};

/// Where NodeManager listens (NM7 `api.py`; `/tmp/sliver_mgr.api` before mid-2010).
pub const DEFAULT_SOCKET: &str = "/tmp/nodemanager.api";

/// The subcommand of this executable that the default connect helper runs:
/// `<current executable> nm-connect <socket>`, which must call [`connect_helper_main`].
pub const HELPER_SUBCOMMAND: &str = "nm-connect";

/// How the backend reaches NodeManager.
#[derive(Debug, Clone)]
pub struct NodeManagerOptions {
    /// NM's Unix socket. Made absolute against the current directory when the backend starts,
    /// because the helper runs in `/`.
    pub socket: PathBuf,
    /// The account `AdminTicket` is called as. NM7 (since 2010) gives its raw-arguments path to
    /// exactly `<PLC_SLICE_PREFIX>_sfacm` (`pl_sfacm` by default). The late-2008 NM gave
    /// `AdminTicket` to `pl_genicw` (§1.3).
    pub admin_account: String,
    /// The argv of the connect helper; the socket path is appended. Empty means
    /// `[<current executable>, "nm-connect"]` (see [`HELPER_SUBCOMMAND`]). Every account the backend
    /// calls as must be able to run it.
    pub connect_helper: Vec<String>,
    /// The backend's own record of redeemed slivers (created with mode 0700).
    pub state_dir: PathBuf,
    /// Bounds each call. Starting the helper counts separately, with the same bound.
    pub timeout: Duration,
    /// How often [`NodeManagerBackend::spawn_reconcile`] compares its records with NM.
    pub reconcile_every: Duration,
}

/// The [`SliverManager`] that drives a PlanetLab NodeManager.
#[derive(Debug)]
pub struct NodeManagerBackend {
    options: NodeManagerOptions,
    store: Store,
    /// The redeemed slivers. create, destroy and reconcile hold the lock across their NM calls.
    /// That keeps "is this record newer" and the delivery together, and stops the reconcile loop
    /// from reviving a sliver that is being destroyed.
    slivers: Mutex<BTreeMap<SliverName, Stored>>,
}

impl Default for NodeManagerOptions {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            admin_account: "pl_sfacm".to_owned(),
            connect_helper: Vec::new(),
            state_dir: PathBuf::from("/var/lib/geni-agent/nodemanager"),
            // NM's own forwarder (`forward_api_calls`) gives a call 120 s.
            timeout: Duration::from_secs(120),
            // PLC syncs every 600–900 s; a minute bounds how long a dropped sliver stays gone.
            reconcile_every: Duration::from_secs(60),
        }
    }
}

impl NodeManagerBackend {
    /// Opens the state directory and resolves the socket and helper paths. Nothing is sent to NM.
    pub fn new(mut options: NodeManagerOptions) -> Result<Self, NmError> {
        options.socket =
            std::path::absolute(&options.socket).map_err(|e| NmError::io(&options.socket, e))?;
        if options.connect_helper.is_empty() {
            let exe = std::env::current_exe().map_err(|e| NmError::io("/proc/self/exe", e))?;
            let exe = exe.into_os_string().into_string().map_err(|path| {
                NmError::Permission(format!(
                    "this executable's path {path:?} is not UTF-8; configure the NodeManager \
                     connect helper explicitly"
                ))
            })?;
            options.connect_helper = vec![exe, HELPER_SUBCOMMAND.to_owned()];
        }
        let (store, slivers) = Store::open(&options.state_dir)?;
        Ok(Self {
            options,
            store,
            slivers: Mutex::new(slivers),
        })
    }

    /// The options in effect (socket absolute, helper resolved).
    pub fn options(&self) -> &NodeManagerOptions {
        &self.options
    }

    /// Calls `method` as the local account `account`. A fault becomes
    /// [`NmError::NodeManager`] with NM's code.
    pub async fn call_as(
        &self,
        account: &str,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, NmError> {
        let who = self.account(account)?;
        self.call(&who, None, method, params).await
    }

    /// A stream to NM that NM attributes to `account`, good for one call (NM answers one call
    /// per connection): made through the helper unless `account` is this process's own uid.
    pub async fn connect_as(&self, account: &str) -> Result<StdUnixStream, NmError> {
        let who = self.account(account)?;
        if is_this_process(&who) {
            let socket = &self.options.socket;
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .and_then(tokio::net::UnixStream::into_std)
                .map_err(|e| {
                    NmError::Transport(format!(
                        "cannot connect to NodeManager at {}: {e}",
                        socket.display()
                    ))
                })?;
            return Ok(stream);
        }
        connect::via_helper(
            &self.options.connect_helper,
            &self.options.socket,
            &who,
            self.options.timeout,
        )
        .await
    }

    /// NM's `GetXIDs`: every sliver account on the node and its uid. Anyone may call it, so it
    /// goes as this process.
    pub async fn xids(&self) -> Result<BTreeMap<String, i64>, NmError> {
        let me = connect::this_process();
        match self.call(&me, None, "GetXIDs", Vec::new()).await? {
            Value::Struct(s) => Ok(s
                .iter()
                .map(|(name, uid)| (name.to_owned(), uid.as_i64().unwrap_or(-1)))
                .collect()),
            other => Err(NmError::Transport(format!(
                "NodeManager answered GetXIDs with a {}, not a struct",
                other.type_name()
            ))),
        }
    }

    /// NM's `GetSSHKeys`: the newline-joined keys of every record in NM's database. Anyone may
    /// call it, so it goes as this process.
    pub async fn ssh_keys(&self) -> Result<BTreeMap<String, String>, NmError> {
        let me = connect::this_process();
        match self.call(&me, None, "GetSSHKeys", Vec::new()).await? {
            Value::Struct(s) => Ok(s
                .iter()
                .map(|(name, keys)| {
                    (
                        name.to_owned(),
                        keys.as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()),
            other => Err(NmError::Transport(format!(
                "NodeManager answered GetSSHKeys with a {}, not a struct",
                other.type_name()
            ))),
        }
    }

    /// One reconcile pass, under the lock `create` and `destroy` take.
    ///
    /// First, every redeemed sliver whose ticket has not expired and that NM lacks, either its
    /// account (a PLC sync removed it) or its record (NM7 restarted, §3.4), is delivered again
    /// with a fresh timestamp. One the researcher had stopped is stopped again, since NM starts
    /// what it (re-)creates. Then every sliver whose ticket has expired is destroyed in NM and
    /// forgotten: NM would drop it only at its own next sync, which a restarted NM7 cut off from
    /// PLC never has. Returns how many were re-delivered. A failure for one sliver does not stop
    /// the others; each is logged, and the first is returned.
    pub async fn reconcile_once(&self) -> Result<usize, NmError> {
        let mut slivers = self.slivers.lock().await;
        if slivers.is_empty() {
            return Ok(0);
        }
        let now = now();
        let mut delivered = 0;
        let mut first_error = None;
        for (_, outcome) in self.recover(&mut slivers, now).await? {
            match outcome {
                Ok(()) => delivered += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let expired: Vec<SliverName> = slivers
            .values()
            .filter(|s| is_past(s.record.expires, now))
            .map(|s| s.record.name.clone())
            .collect();
        for name in expired {
            tracing::info!(sliver = %name, "ticket expired: destroying the sliver in NodeManager");
            if let Err(e) = self.destroy_locked(&mut slivers, &name).await {
                tracing::warn!(sliver = %name, error = %e, "destroying an expired sliver failed");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(delivered),
        }
    }

    /// Delivers again every held, unexpired sliver NM lacks (its account or its record), each in
    /// an `AdminTicket` of its own so that NM `Create`s it (NM creates only a batch's first
    /// sliver), and stops again those the researcher had stopped. Returns each re-delivered
    /// sliver's outcome; fails as a whole only when NM's views cannot be read.
    async fn recover(
        &self,
        slivers: &mut BTreeMap<SliverName, Stored>,
        now: f64,
    ) -> Result<Vec<(SliverName, Result<(), NmError>)>, NmError> {
        if slivers.values().all(|s| is_past(s.record.expires, now)) {
            return Ok(Vec::new());
        }
        let view = self.view().await?;
        let missing: Vec<SliverName> = slivers
            .values()
            .filter(|s| !is_past(s.record.expires, now) && !view.holds(s.record.name.as_str()))
            .map(|s| s.record.name.clone())
            .collect();
        let mut outcomes = Vec::new();
        for name in missing {
            let Some(stored) = slivers.get(&name) else {
                continue;
            };
            let at = delivery_stamp(stored.record.timestamp, Some(stored.delivered));
            let batch = [(&stored.record, at, stored.record.expires)];
            let mut outcome = self.deliver(slivers, &batch).await;
            if outcome.is_ok() {
                outcome = self.after_redelivery(slivers, &name, at).await;
            }
            match &outcome {
                Ok(()) => tracing::info!(
                    sliver = %name,
                    "re-delivered to NodeManager, which had lost it (PLC sync or restart)"
                ),
                Err(e) => {
                    tracing::warn!(sliver = %name, error = %e, "re-delivering to NodeManager failed");
                }
            }
            outcomes.push((name, outcome));
        }
        Ok(outcomes)
    }

    /// Records a re-delivery stamped `at`. NM starts what it (re-)creates, so a sliver the
    /// researcher had stopped is stopped again at once.
    async fn after_redelivery(
        &self,
        slivers: &mut BTreeMap<SliverName, Stored>,
        name: &SliverName,
        at: f64,
    ) -> Result<(), NmError> {
        let Some(stored) = slivers.get_mut(name) else {
            return Ok(());
        };
        stored.delivered = at;
        let stop = stored.state == SliverState::Stopped;
        if !stop {
            stored.state = SliverState::Running;
        }
        let copy = stored.clone();
        self.persist(copy.clone()).await?;
        if stop {
            let delegate = delegate_of(&copy.record);
            self.sliver_call(name, "Stop", delegate.as_deref()).await?;
            tracing::info!(sliver = %name, "stopped again after re-delivery, as it was");
        }
        Ok(())
    }

    /// Re-delivers `name` if NM lacks it; the error is that sliver's own.
    async fn recover_one(&self, name: &SliverName) -> Result<(), NmError> {
        let mut slivers = self.slivers.lock().await;
        let outcomes = self.recover(&mut slivers, now()).await?;
        match outcomes.into_iter().find(|(n, _)| n == name) {
            Some((_, outcome)) => outcome,
            None => Ok(()),
        }
    }

    /// NM's two views of its slivers, each readable by anyone.
    async fn view(&self) -> Result<View, NmError> {
        let accounts = self.xids().await?;
        let records = self.ssh_keys().await?.into_keys().collect();
        Ok(View { accounts, records })
    }

    /// Runs [`Self::reconcile_once`] now and then every `reconcile_every`, logging the outcome,
    /// until the backend is dropped (the task holds only a weak reference) or the handle is
    /// aborted.
    pub fn spawn_reconcile(self: &Arc<Self>) -> JoinHandle<()> {
        let backend = Arc::downgrade(self);
        // `interval` refuses a zero period.
        let every = self.options.reconcile_every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(backend) = backend.upgrade() else {
                    return;
                };
                if let Err(e) = backend.reconcile_once().await {
                    tracing::warn!(error = %e, "NodeManager reconcile failed; retrying in {every:?}");
                }
            }
        })
    }

    // --- the operations behind the trait ---

    async fn create_record(&self, record: SliverRecord) -> Result<(), NmError> {
        if is_past(record.expires, now()) {
            return Err(NmError::InvalidRecord(format!(
                "sliver {}: the ticket expired at {} (seconds since the epoch); NodeManager would \
                 drop the record at once",
                record.name, record.expires
            )));
        }
        let mut slivers = self.slivers.lock().await;
        let previous = slivers.get(&record.name);
        if let Some(current) = previous
            && record.timestamp <= current.record.timestamp
        {
            return Err(NmError::Stale {
                name: record.name.to_string(),
                current: current.record.timestamp,
                offered: record.timestamp,
            });
        }
        let at = delivery_stamp(record.timestamp, previous.map(|p| p.delivered));
        self.deliver(&slivers, &[(&record, at, record.expires)])
            .await?;
        tracing::info!(sliver = %record.name, "delivered to NodeManager");
        let stored = Stored {
            record,
            delivered: at,
            state: SliverState::Running,
        };
        self.persist(stored.clone()).await?;
        slivers.insert(stored.record.name.clone(), stored);
        Ok(())
    }

    /// Start, Stop or ReCreate as the sliver (or its delegate), then records `after`.
    ///
    /// For a sliver we hold and whose ticket has not expired, two faults of a restarted NM7 are
    /// repaired and the call retried once: "no record" (102) re-delivers the sliver; "no account
    /// object" (104, NM's record came back through a sync, but nothing `Create`d it since, §3.4)
    /// calls `Create` as the sliver, which only delegated slivers may.
    async fn run(
        &self,
        name: &SliverName,
        method: &str,
        after: SliverState,
    ) -> Result<(), NmError> {
        let (delegate, live, delegated) = {
            let slivers = self.slivers.lock().await;
            match slivers.get(name) {
                Some(s) => (
                    delegate_of(&s.record),
                    !is_past(s.record.expires, now()),
                    s.record.instantiation == "delegated",
                ),
                None => (None, false, false),
            }
        };
        let delegate = delegate.as_deref();
        match self.sliver_call(name, method, delegate).await {
            Err(e) if live && faults::is_no_record(&e) => {
                tracing::info!(sliver = %name, method, "NodeManager lost the record: re-delivering");
                self.recover_one(name).await?;
                self.sliver_call(name, method, delegate).await?;
            }
            Err(e) if live && delegated && faults::is_no_account_object(&e) => {
                tracing::info!(sliver = %name, method, "NodeManager restarted: Create, then retry");
                self.sliver_call(name, "Create", delegate).await?;
                self.sliver_call(name, method, delegate).await?;
            }
            other => {
                other?;
            }
        }
        let mut slivers = self.slivers.lock().await;
        if let Some(stored) = slivers.get_mut(name)
            && stored.state != after
        {
            stored.state = after;
            let copy = stored.clone();
            self.persist(copy).await?;
        }
        Ok(())
    }

    async fn destroy_sliver(&self, name: &SliverName) -> Result<(), NmError> {
        let mut slivers = self.slivers.lock().await;
        self.destroy_locked(&mut slivers, name).await
    }

    /// Destroys `name` in NM and forgets it. A sliver NM no longer has is only forgotten; one we
    /// never held is [`NmError::NotFound`]. NM's `Destroy` works for delegated slivers whose
    /// record NM has; for a plc-instantiated one, or one whose record a restarted NM lost, an
    /// already expired record is delivered instead.
    async fn destroy_locked(
        &self,
        slivers: &mut BTreeMap<SliverName, Stored>,
        name: &SliverName,
    ) -> Result<(), NmError> {
        let known = slivers.get(name).cloned();
        if !self.xids().await?.contains_key(name.as_str()) {
            // NM has no such sliver (its PLC sync removed it, or it was never made): forgetting
            // our record is all that is left, and keeps the reconcile loop from reviving it.
            return match known {
                Some(_) => self.forget(slivers, name).await,
                None => Err(NmError::NotFound(name.to_string())),
            };
        }
        let delegate = known.as_ref().and_then(|s| delegate_of(&s.record));
        match self.sliver_call(name, "Destroy", delegate.as_deref()).await {
            Ok(_) => {}
            Err(e) if faults::says(&e, faults::ONLY_PLC_DESTROYS) || faults::is_no_record(&e) => {
                let Some(stored) = known.as_ref() else {
                    return Err(e);
                };
                self.expire_in_nm(slivers, stored).await?;
            }
            Err(e) => return Err(e),
        }
        self.forget(slivers, name).await
    }

    /// Destroys a sliver we delivered where NM's `Destroy` cannot: a plc-instantiated one, or
    /// one whose record a restarted NM lost. A newer record that has already expired does it: NM
    /// drops the record in the `sync()` that follows delivery and destroys the account. The call
    /// then faults because the record is gone, which is expected (§7).
    async fn expire_in_nm(
        &self,
        held: &BTreeMap<SliverName, Stored>,
        stored: &Stored,
    ) -> Result<(), NmError> {
        let record = &stored.record;
        let name = &record.name;
        let at = delivery_stamp(record.timestamp, Some(stored.delivered));
        match self.deliver(held, &[(record, at, 0)]).await {
            Ok(()) => {}
            Err(e) if faults::says(&e, faults::NO_RECORD_AFTER_TICKET) => {}
            Err(e) => return Err(e),
        }
        if self.xids().await?.contains_key(name.as_str()) {
            return Err(NmError::NodeManager {
                code: 104,
                message: format!(
                    "Destroy of {name}: NodeManager's API destroys only delegated slivers whose \
                     record it holds, and it kept the sliver after an expired record was delivered"
                ),
            });
        }
        Ok(())
    }

    async fn list_slivers(&self) -> Result<Vec<SliverStatus>, NmError> {
        let xids = self.xids().await?;
        let slivers = self.slivers.lock().await;
        Ok(xids
            .keys()
            .filter_map(|name| SliverName::parse(name).ok())
            .map(|name| {
                let stored = slivers.get(&name);
                status_of(name, stored)
            })
            .collect())
    }

    async fn sliver_status(&self, name: &SliverName) -> Result<SliverStatus, NmError> {
        if !self.xids().await?.contains_key(name.as_str()) {
            return Err(NmError::NotFound(name.to_string()));
        }
        if let Some(stored) = self.slivers.lock().await.get(name) {
            return Ok(status_of(name.clone(), Some(stored)));
        }
        // Not redeemed here: NM's record has its timestamp and expiry. GetRecord takes no
        // argument and answers about the caller, so only the sliver's own account can ask (§1.4).
        let who = sliver_account(name, None)?;
        let record = self
            .call(&who, Some(name.as_str()), "GetRecord", Vec::new())
            .await?;
        let record = record.as_struct().ok_or_else(|| {
            NmError::Transport(format!(
                "NodeManager answered GetRecord for {name} with a {}, not a struct",
                record.type_name()
            ))
        })?;
        let timestamp = match record.get("timestamp") {
            Some(Value::Double(d)) => *d,
            #[allow(clippy::cast_precision_loss)]
            Some(Value::Int(i)) => *i as f64,
            _ => 0.0,
        };
        Ok(SliverStatus {
            name: name.clone(),
            state: SliverState::Running,
            pid: None,
            timestamp,
            expires: record.get("expires").and_then(Value::as_i64).unwrap_or(0),
            slice: String::new(),
        })
    }

    // --- calls ---

    /// Delivers `batch` (record, stamp, expiry) in one `AdminTicket` as the admin account; NM
    /// then `Create`s the first.
    ///
    /// The `sync()` NM runs after the delivery destroys every sliver account its database has no
    /// record of. So the batch also carries, for each account NM lists without a record (a
    /// restarted NM7, §3.4) that the batch does not cover: our own record when we hold the
    /// sliver and its ticket is valid, with the stamp NM last had, so that it is neither newer
    /// nor lost; nothing when its ticket has expired, so that NM removes it; and a stand-in
    /// ([`ticket::Batch::placeholder`]) for a sliver we never held.
    async fn deliver(
        &self,
        held: &BTreeMap<SliverName, Stored>,
        batch: &[(&SliverRecord, f64, i64)],
    ) -> Result<(), NmError> {
        let Some(&(first, at, _)) = batch.first() else {
            return Ok(());
        };
        let name = first.name.as_str();
        let view = self.view().await?;
        let mut data = ticket::Batch::new(at);
        for &(record, at, expires) in batch {
            data.sliver(record, at, expires);
        }
        let now = now();
        let in_batch = |account: &str| batch.iter().any(|(r, ..)| r.name.as_str() == account);
        for account in view.unrecorded().filter(|a| !in_batch(a)) {
            match SliverName::parse(account).ok().and_then(|n| held.get(&n)) {
                Some(s) if !is_past(s.record.expires, now) => {
                    data.sliver(&s.record, s.delivered, s.record.expires);
                }
                Some(_) => {}
                None => {
                    tracing::info!(
                        sliver = account,
                        "delivering a stand-in record so that NodeManager's sync keeps the sliver"
                    );
                    data.placeholder(account);
                }
            }
        }
        let text = ticket::encode(data.into_data())?;
        let admin = self.account(&self.options.admin_account)?;
        match self
            .call(&admin, Some(name), "AdminTicket", vec![Value::String(text)])
            .await
        {
            Ok(_) => Ok(()),
            // plc-instantiated: NM stored the record and its sync created the sliver; only the
            // API's own Create refused (§7). The account's presence confirms it.
            Err(NmError::NodeManager { code, message })
                if message.contains(faults::ONLY_PLC_CREATES) =>
            {
                if self.xids().await?.contains_key(name) {
                    Ok(())
                } else {
                    Err(NmError::NodeManager {
                        code,
                        message: format!(
                            "{message}; and no account {name} appeared in GetXIDs afterwards"
                        ),
                    })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `method(name)` as the sliver's own account, or as its delegate.
    async fn sliver_call(
        &self,
        name: &SliverName,
        method: &str,
        delegate: Option<&str>,
    ) -> Result<Value, NmError> {
        let who = sliver_account(name, delegate)?;
        self.call(
            &who,
            Some(name.as_str()),
            method,
            vec![Value::from(name.as_str())],
        )
        .await
    }

    async fn call(
        &self,
        who: &Account,
        sliver: Option<&str>,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, NmError> {
        let timeout = self.options.timeout;
        let client = if is_this_process(who) {
            UnixClient::new(&self.options.socket, timeout)
        } else {
            let stream = connect::via_helper(
                &self.options.connect_helper,
                &self.options.socket,
                who,
                timeout,
            )
            .await
            .map_err(|e| match e {
                NmError::Transport(m) => NmError::Transport(format!("{method}: {m}")),
                other => other,
            })?;
            UnixClient::from_stream(stream, timeout)
        };
        let call = faults::Call {
            method,
            sliver,
            caller: &who.name,
        };
        client
            .call(method, params)
            .await
            .map_err(|e| faults::nm_error(&call, e))
    }

    fn account(&self, name: &str) -> Result<Account, NmError> {
        lookup(name)?.ok_or_else(|| {
            NmError::Permission(format!(
                "cannot call NodeManager as {name}: there is no such account on this node"
            ))
        })
    }

    // --- state ---

    async fn persist(&self, stored: Stored) -> Result<(), NmError> {
        let store = self.store.clone();
        self.blocking(move || store.save(&stored)).await
    }

    async fn forget(
        &self,
        slivers: &mut BTreeMap<SliverName, Stored>,
        name: &SliverName,
    ) -> Result<(), NmError> {
        let store = self.store.clone();
        let owned = name.clone();
        self.blocking(move || store.remove(&owned)).await?;
        slivers.remove(name);
        Ok(())
    }

    /// Runs file work (fsync can take a while) off the async threads.
    async fn blocking(
        &self,
        work: impl FnOnce() -> Result<(), NmError> + Send + 'static,
    ) -> Result<(), NmError> {
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            Err(e) => Err(NmError::io(
                self.store.dir(),
                std::io::Error::other(format!("the state write did not finish: {e}")),
            )),
        }
    }
}

impl SliverManager for NodeManagerBackend {
    /// Delivers the record through `AdminTicket` as the admin account. [`NmError::Stale`] if our
    /// own record of the sliver is not older (NM's rule, applied to the tickets' timestamps). NM
    /// creates **and starts** a new sliver at once (`ensure_created`, §3.1); there is no way to
    /// deliver without starting. A plc-instantiated record succeeds when NM's sync created the
    /// account, despite NM's "Only PLC can create" fault (§7).
    fn create(&self, record: SliverRecord) -> BoxFuture<'_, ()> {
        Box::pin(self.create_record(record))
    }

    /// NM's `Start` (configure, then start) as the sliver's account. Like stop and reset, it
    /// re-delivers a sliver a restarted NM has lost and retries once (see `run`).
    fn start<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(self.run(name, "Start", SliverState::Running))
    }

    /// NM's `Stop` as the sliver's account.
    fn stop<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(self.run(name, "Stop", SliverState::Stopped))
    }

    /// NM's `ReCreate` as the sliver's account. On NM7 that is stop, then configure and start
    /// again; it does **not** wipe or re-image the sliver (§1.4, §3.3).
    fn reset<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(self.run(name, "ReCreate", SliverState::Running))
    }

    /// NM's `Destroy` as the sliver's account (delegated slivers). A plc-instantiated sliver we
    /// delivered, or one whose record a restarted NM lost, is destroyed by delivering an already
    /// expired record. Our record is forgotten either way, so the reconcile loop does not bring
    /// the sliver back. The reconcile loop destroys expired slivers the same way, under the same
    /// lock, so the node may call this for an expired sliver at any time: whichever comes second
    /// finds nothing in NM or in our records, answers [`NmError::NotFound`] and changes nothing.
    fn destroy<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()> {
        Box::pin(self.destroy_sliver(name))
    }

    /// The slivers `GetXIDs` lists. Ours carry the ticket's timestamp and expiry and the state
    /// our last call left them in. Others show timestamp 0, expiry 0 and "running", since NM keeps
    /// its slivers running and has no call that says otherwise.
    fn list(&self) -> BoxFuture<'_, Vec<SliverStatus>> {
        Box::pin(self.list_slivers())
    }

    /// One sliver: [`NmError::NotFound`] unless `GetXIDs` lists it. For a sliver we did not
    /// deliver, the timestamp and expiry come from NM's own record (`GetRecord` as the sliver).
    fn status<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, SliverStatus> {
        Box::pin(self.sliver_status(name))
    }
}

/// What NodeManager holds: its sliver accounts (`GetXIDs`, read from passwd) and the names its
/// database has records for (`GetSSHKeys`). They differ after an NM7 restart (§2.3, §3.4).
#[derive(Debug)]
struct View {
    accounts: BTreeMap<String, i64>,
    records: BTreeSet<String>,
}

impl View {
    /// NM has both the sliver's account and its record.
    fn holds(&self, name: &str) -> bool {
        self.accounts.contains_key(name) && self.records.contains(name)
    }

    /// Sliver accounts NM has no record of: the next `sync()` destroys them.
    fn unrecorded(&self) -> impl Iterator<Item = &str> {
        self.accounts
            .keys()
            .filter(|name| !self.records.contains(*name))
            .map(String::as_str)
    }
}

/// The account to call NM as for `name`. That is the sliver's own account, which NM creates
/// with the sliver; failing that, the one account its `delegations` tag names (§1.3).
fn sliver_account(name: &SliverName, delegate: Option<&str>) -> Result<Account, NmError> {
    if let Some(own) = lookup(name.as_str())? {
        return Ok(own);
    }
    if let Some(delegate) = delegate
        && let Some(account) = lookup(delegate)?
    {
        return Ok(account);
    }
    Err(NmError::NotFound(name.to_string()))
}

/// The record's delegate, when its `delegations` tag names exactly one account. NM compares the
/// caller with the whole tag value, so a list of several never matches anyone (§1.3).
fn delegate_of(record: &SliverRecord) -> Option<String> {
    record
        .rspec
        .tags()
        .find(|(key, _)| *key == "delegations")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty() && !value.contains(','))
}

fn status_of(name: SliverName, stored: Option<&Stored>) -> SliverStatus {
    match stored {
        Some(s) => SliverStatus {
            name,
            state: s.state,
            pid: None,
            timestamp: s.record.timestamp,
            expires: s.record.expires,
            slice: s.record.slice.clone(),
        },
        None => SliverStatus {
            name,
            state: SliverState::Running,
            pid: None,
            timestamp: 0.0,
            expires: 0,
            slice: String::new(),
        },
    }
}

fn is_this_process(who: &Account) -> bool {
    who.uid == nix::unistd::geteuid().as_raw()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// NM's expiry test (`sync()` drops `expires < now`).
#[allow(clippy::cast_precision_loss)]
fn is_past(expires: i64, now: f64) -> bool {
    (expires as f64) < now
}

/// The timestamp a delivery carries. NM ignores a record older than its last full PLC sync
/// (§2.3), so this is the delivery time, or the ticket's timestamp if that is later. The
/// ticket's own timestamp is usually minutes old by the time it is redeemed. It is also always
/// later than the previous delivery, because NM replaces a record only with a strictly newer one.
/// NM's newer-wins rule between tickets is applied to the tickets' own timestamps, before
/// delivering.
fn delivery_stamp(ticket: f64, previous: Option<f64>) -> f64 {
    let mut at = now().max(ticket);
    if let Some(previous) = previous
        && at <= previous
    {
        at = previous + 0.001;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_stamped_now_and_strictly_increasing() {
        let t = now();
        assert!(delivery_stamp(1.0, None) >= t);
        let far = t + 1e6;
        assert_eq!(delivery_stamp(far, None).to_bits(), far.to_bits());
        assert!(delivery_stamp(1.0, Some(far)) > far);
    }

    #[test]
    fn only_a_single_delegate_is_used() {
        let mut record = SliverRecord::from_ticket(
            &geni_xmlrpc::Struct::new()
                .with("name", "pl_x")
                .with("timestamp", Value::Double(1.0)),
            &geni_xmlrpc::Struct::new().with("delegations", "pl_ctrl"),
            0,
            "x",
        )
        .unwrap();
        assert_eq!(delegate_of(&record).as_deref(), Some("pl_ctrl"));
        record.rspec =
            crate::Rspec::from_ticket(&geni_xmlrpc::Struct::new().with("delegations", "pl_a,pl_b"))
                .unwrap();
        assert_eq!(delegate_of(&record), None);
    }
}
