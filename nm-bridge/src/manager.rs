//! The [`SliverManager`] trait every backend implements, and the status it reports.
//!
//! The trait is object-safe (the node picks its backend from configuration at run time), so its
//! methods return boxed futures. Operations are idempotent where that is safe: starting a
//! running sliver or stopping a stopped one succeeds and changes nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::{NmError, SliverName, SliverRecord};

/// What the trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, NmError>> + Send + 'a>>;

/// Where a sliver is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliverState {
    /// Created (or reset) and not started.
    Created,
    /// Its initscript (or NM's idea of it) is running.
    Running,
    /// Stopped by request.
    Stopped,
    /// Started, but its process has ended by itself.
    Exited,
}

/// One sliver as `list` and `status` report it.
#[derive(Debug, Clone, PartialEq)]
pub struct SliverStatus {
    pub name: SliverName,
    pub state: SliverState,
    /// The process-group leader while running (local backend).
    pub pid: Option<u32>,
    /// The record's timestamp (the ticket's).
    pub timestamp: f64,
    /// Seconds since the epoch after which the sliver may be removed.
    pub expires: i64,
    /// The slice's full hrn ([`crate::SliverRecord::slice`]); empty when no ticket made it.
    pub slice: String,
}

/// Makes and manages slivers on this node.
pub trait SliverManager: Send + Sync + fmt::Debug {
    /// Delivers a record: creates the sliver when new, replaces its record when `record` is
    /// strictly newer (NodeManager's rule), and fails with [`NmError::Stale`] otherwise. Does
    /// not start it.
    fn create(&self, record: SliverRecord) -> BoxFuture<'_, ()>;

    /// Starts the sliver's initscript; succeeds without change when already running.
    fn start<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()>;

    /// Stops it (SIGTERM, then SIGKILL after a grace period); succeeds when already stopped.
    fn stop<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()>;

    /// Stop, wipe, re-create from the record, start.
    fn reset<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()>;

    /// Stop and remove everything of the sliver.
    fn destroy<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, ()>;

    /// Every sliver of this node, sorted by name.
    fn list(&self) -> BoxFuture<'_, Vec<SliverStatus>>;

    fn status<'a>(&'a self, name: &'a SliverName) -> BoxFuture<'a, SliverStatus>;
}

impl fmt::Display for SliverState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
        })
    }
}
