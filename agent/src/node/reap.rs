//! Removing slivers: `delete_slice` and the reaper share [`Node::remove`] (tombstone first, then
//! destroy, the tombstone undone if the backend fails), and the reaper stops and removes every
//! sliver past its expiry, for every backend, once at start and then every `node.reap_secs`.
//! Slivers that no ticket made (NodeManager's own, with no slice recorded) are left to their
//! owner.

use std::sync::Arc;
use std::time::Duration;

use geni_rpc::RpcError;
use nm_bridge::{NmError, SliverName, SliverStatus};

use super::{Node, nm_fault, now};

impl Node {
    /// Buries the sliver and destroys it; on failure, undoes the burial. Called under the
    /// sliver's lock.
    pub(super) async fn remove(
        &self,
        name: &SliverName,
        status: &SliverStatus,
    ) -> Result<(), RpcError> {
        self.tombstones.bury(status).map_err(nm_fault)?;
        match self.backend.destroy(name).await {
            // Gone already: the nodemanager backend's own reconcile pass removes expired slivers
            // too, and the second of the two finds nothing.
            Ok(()) | Err(NmError::NotFound(_)) => Ok(()),
            Err(e) => {
                self.tombstones.unbury(&status.slice);
                Err(nm_fault(e))
            }
        }
    }

    /// One pass: removes each expired sliver (re-checked under its lock, since a new ticket may
    /// have renewed it meanwhile) and forgets expired tombstones.
    pub(crate) async fn reap(&self) {
        let now = now();
        let slivers = match self.backend.list().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Reaper cannot list slivers; will retry");
                return;
            }
        };
        for s in slivers.into_iter().filter(|s| expired(s, now)) {
            let lock = self.lock(&s.name);
            let _held = lock.lock().await;
            let status = match self.backend.status(&s.name).await {
                Ok(status) if expired(&status, now) => status,
                Ok(_) | Err(NmError::NotFound(_)) => continue,
                Err(e) => {
                    tracing::warn!(sliver = %s.name, error = %e, "Reaper cannot read a sliver");
                    continue;
                }
            };
            match self.remove(&s.name, &status).await {
                Ok(()) => tracing::info!(
                    sliver = %s.name,
                    slice = %status.slice,
                    expired = %geni_trust::format_utc(status.expires),
                    "Expired sliver stopped and removed"
                ),
                Err(e) => {
                    tracing::warn!(sliver = %s.name, error = %e, "Reaper cannot remove an expired sliver; will retry")
                }
            }
        }
        self.tombstones.prune(now);
    }
}

/// Runs [`Node::reap`] now and then every `every`, until the runtime stops.
pub(crate) fn spawn_reaper(node: Arc<Node>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            node.reap().await;
        }
    });
}

fn expired(s: &SliverStatus, now: i64) -> bool {
    !s.slice.is_empty() && s.expires < now
}
