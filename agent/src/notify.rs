//! systemd's notify protocol (`sd_notify`): READY=1 once serving, RELOADING=1 then READY=1
//! around a SIGHUP reload, STOPPING=1 on shutdown, and
//! WATCHDOG=1 at half the interval systemd asks for. A datagram to `$NOTIFY_SOCKET`; nothing
//! happens when the variable is unset (not under systemd, or `Type=simple`).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, state, "sd_notify failed");
    }
}

/// Tells systemd the service is up, and starts the watchdog pings it asked for.
pub(crate) fn ready() {
    send("READY=1");
    // systemd names the process it watches; a child that inherited the variables is not it.
    let watched = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .is_none_or(|pid| pid == std::process::id());
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|_| watched);
    if let Some(usec) = usec.filter(|u| *u > 0) {
        let every = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                send("WATCHDOG=1");
            }
        });
    }
}

/// A SIGHUP reload begins; systemd shows the unit as reloading until [`reloaded`].
pub(crate) fn reloading() {
    send("RELOADING=1");
}

pub(crate) fn reloaded() {
    send("READY=1");
}

pub(crate) fn stopping() {
    send("STOPPING=1");
}
