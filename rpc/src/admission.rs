//! Which connections the server keeps: a pool of `max_connections`, at most
//! `max_connections_per_peer` from one address, and, when the pool is full, room made by evicting
//! the oldest connection that has not yet sent its first request headers.
//!
//! A connection is *pending* from accept until its first request reaches the router; after that
//! it is *active* and never evicted, so a flood of bare TCP connects or unfinished handshakes
//! (from one address or many) can cost other peers only their own unfinished connections, never
//! an authenticated one. 2008 and the first version here had one pool and dropped connections
//! over it at accept: 1,124 bare connects from one host locked every client out.
//!
//! The module also owns the I/O wrapper that enforces the write and idle timeouts ([`Guarded`]),
//! since both depend on the connection's state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

/// The connection table.
#[derive(Debug)]
pub(crate) struct Admission {
    max_connections: usize,
    max_per_peer: usize,
    state: Mutex<State>,
    /// Told whenever a connection ends, for shutdown's drain.
    closed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Live connection tasks (evicted ones included until they end).
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
    /// Pending connections by age (ids grow), each with the signal that evicts it.
    pending: BTreeMap<u64, Arc<Notify>>,
    /// Told to go but not yet gone: they no longer count against the pool.
    evicted: HashSet<u64>,
    next_id: u64,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address holds its share already.
    PeerFull,
    /// The pool is full of connections that have all sent a request.
    PoolFull,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    id: u64,
    peer: Option<IpAddr>,
    evict: Arc<Notify>,
    /// Requests being handled; the idle timeout runs only when there are none.
    in_flight: Arc<AtomicUsize>,
    /// Whether the pool was under pressure when this connection came in.
    pub(crate) under_pressure: bool,
}

/// A request in flight on a connection, for as long as it lives.
#[derive(Debug)]
pub(crate) struct Busy(Arc<AtomicUsize>);

// === impl Admission ===

impl Admission {
    pub(crate) fn new(max_connections: usize, max_per_peer: usize) -> Self {
        Self {
            max_connections: max_connections.max(1),
            max_per_peer: max_per_peer.max(1),
            state: Mutex::new(State::default()),
            closed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `peer` (`None`: a Unix socket, no per-peer share), evicting the
    /// oldest pending connection if the pool is full.
    pub(crate) fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Slot, Refusal> {
        let peer = peer.map(peer_key);
        let mut s = self.lock();
        if let Some(ip) = peer
            && s.per_peer.get(&ip).copied().unwrap_or(0) >= self.max_per_peer
        {
            return Err(Refusal::PeerFull);
        }
        if s.total - s.evicted.len() >= self.max_connections {
            let Some((oldest, evict)) = s.pending.pop_first() else {
                return Err(Refusal::PoolFull);
            };
            evict.notify_one();
            s.evicted.insert(oldest);
        }
        let under_pressure = (s.total - s.evicted.len()) * 4 >= self.max_connections * 3;
        let id = s.next_id;
        s.next_id += 1;
        s.total += 1;
        if let Some(ip) = peer {
            *s.per_peer.entry(ip).or_default() += 1;
        }
        let evict = Arc::new(Notify::new());
        s.pending.insert(id, Arc::clone(&evict));
        Ok(Slot {
            admission: Arc::clone(self),
            id,
            peer,
            evict,
            in_flight: Arc::new(AtomicUsize::new(0)),
            under_pressure,
        })
    }

    /// Live connections.
    pub(crate) fn total(&self) -> usize {
        self.lock().total
    }

    /// Resolves when no connection is left.
    pub(crate) async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            if self.total() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Whose share a connection from `ip` counts against: an IPv4 address, or the /64 an IPv6 address
/// is in (a host is routinely given a whole /64, so a share per IPv6 address would be no share at
/// all); an IPv4-mapped IPv6 address is its IPv4 address.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

// === impl Slot ===

impl Slot {
    /// The connection has sent its first request headers: it can no longer be evicted.
    pub(crate) fn activate(&self) {
        self.admission.lock().pending.remove(&self.id);
    }

    /// Resolves if the connection is evicted to make room.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Marks a request in flight until the returned value drops.
    pub(crate) fn busy(&self) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(&self.in_flight))
    }

    pub(crate) fn in_flight(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.in_flight)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.admission.lock();
        s.total = s.total.saturating_sub(1);
        s.pending.remove(&self.id);
        s.evicted.remove(&self.id);
        if let Some(ip) = self.peer
            && let Some(n) = s.per_peer.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                s.per_peer.remove(&ip);
            }
        }
        drop(s);
        self.admission.closed.notify_waiters();
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// === the write and idle timeouts ===

/// A connection's byte stream with two deadlines: a write that makes no progress for
/// `write_timeout`, and (with no request in flight) a read that gets nothing for
/// `idle_timeout`, fail with `TimedOut`, which ends the connection.
#[derive(Debug)]
pub(crate) struct Guarded<I> {
    io: I,
    write_timeout: Duration,
    idle_timeout: Duration,
    in_flight: Arc<AtomicUsize>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    read_deadline: Option<Pin<Box<Sleep>>>,
}

impl<I> Guarded<I> {
    pub(crate) fn new(
        io: I,
        write_timeout: Duration,
        idle_timeout: Duration,
        in_flight: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            io,
            write_timeout,
            idle_timeout,
            in_flight,
            write_deadline: None,
            read_deadline: None,
        }
    }
}

/// Polls `deadline` (armed `after` from now when absent): `Err(TimedOut)` once it has passed.
fn expired(
    deadline: &mut Option<Pin<Box<Sleep>>>,
    after: Duration,
    cx: &mut Context<'_>,
    what: &str,
) -> io::Result<()> {
    let sleep = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
    match sleep.as_mut().poll(cx) {
        Poll::Ready(()) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} timed out after {after:?}"),
        )),
        Poll::Pending => Ok(()),
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.read_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if this.in_flight.load(Ordering::SeqCst) > 0 {
                    // A handler is working: silence from the peer is expected.
                    this.read_deadline = None;
                    return Poll::Pending;
                }
                match expired(
                    &mut this.read_deadline,
                    this.idle_timeout,
                    cx,
                    "idle connection",
                ) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                match expired(&mut this.write_deadline, this.write_timeout, cx, "write") {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                match expired(&mut this.write_deadline, this.write_timeout, cx, "write") {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                match expired(&mut this.write_deadline, this.write_timeout, cx, "write") {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    // See: issue 13 ("one host cannot lock a node out"): an IPv6 host holds a /64, and a share
    // per address would let it take the whole pool.
    #[test]
    fn an_ipv6_slash_64_is_one_peer_and_a_mapped_ipv4_address_is_its_ipv4_address() {
        let a = Arc::new(Admission::new(100, 2));
        let one = a.admit(ip("2001:db8:1:2::1")).unwrap();
        let _two = a.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2:dead:beef:0:1")).err(),
            Some(Refusal::PeerFull)
        );
        let _other = a.admit(ip("2001:db8:1:3::1")).unwrap();
        drop(one);
        let _again = a.admit(ip("2001:db8:1:2::7")).unwrap();
        let _v4 = a.admit(ip("192.0.2.1")).unwrap();
        let _mapped = a.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.1")).err(), Some(Refusal::PeerFull));
        let _next = a.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(a.total(), 6);
    }
}
