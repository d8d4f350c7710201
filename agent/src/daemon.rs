//! What the node and the registry do alike as daemons: SIGTERM and SIGINT stop the server
//! gracefully (calls in flight finish), SIGHUP runs the daemon's reload between systemd's
//! RELOADING=1 and READY=1, and the trusted roots reload the same way in both.
//!
//! Written once so that the two daemons cannot drift: what a reload re-reads is the caller's
//! `on_hup`; how signals, notifications and shutdown fit together is here.

use std::path::Path;

use geni_rpc::ShutdownHandle;
use geni_trust::{TrustedRoots, Verifier};

/// Installs the daemon's signal handlers, then watches them on a task of its own until SIGTERM or
/// SIGINT, when it tells systemd and stops the server. Each SIGHUP runs `on_hup`, which logs its
/// own failures and keeps what is in use when one fails.
///
/// The handlers are in place when this returns, so call it before READY=1: systemd may send a
/// reload at once, and an unhandled SIGHUP would end the process.
pub(crate) fn signals(stop: ShutdownHandle, on_hup: impl Fn() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("Cannot install signal handlers; stop the daemon with SIGKILL");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    crate::notify::reloading();
                    on_hup();
                    crate::notify::reloaded();
                }
            }
        }
        crate::notify::stopping();
        tracing::info!("Stopping: finishing calls in flight");
        stop.shutdown();
    });
}

/// Replaces `verifier`'s roots with those in `dir`; an unreadable directory keeps the roots in
/// use (a daemon never drops to no roots at run time).
pub(crate) fn reload_roots(verifier: &Verifier, dir: &Path) {
    match TrustedRoots::load_dir(dir) {
        Ok(roots) => {
            tracing::info!(roots = roots.len(), "Trusted roots reloaded");
            verifier.replace_roots(roots);
        }
        Err(e) => tracing::error!(error = %e, "Reload failed; keeping the roots in use"),
    }
}
