//! CPU-heavy work (parsing and RSA verification of credentials) run off the async worker
//! threads, at most [`cpu_workers`] pieces at once.
//!
//! A verification that ran on a worker thread stalled that thread's timers and accepts: a peer
//! sending expensive chains held every worker and so every connection's timeouts. On a
//! multi-threaded runtime [`run_blocking`] moves the calling task's worker duties to another
//! thread (`block_in_place`) and then waits for one of a fixed number of permits, so the CPU work
//! in flight is bounded while the async workers keep serving. It stays a plain call elsewhere
//! (current-thread runtimes, no runtime), where there is no worker to free.

use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use tokio::runtime::{Handle, RuntimeFlavor};

static PERMITS: OnceLock<Permits> = OnceLock::new();

#[derive(Debug)]
struct Permits {
    total: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

/// A held permit, given back on drop (also when the work panics).
struct Permit(&'static Permits);

/// Runs `f`, CPU-heavy and synchronous, on the bounded pool (see the module documentation).
pub fn run_blocking<R>(f: impl FnOnce() -> R) -> R {
    let run = || {
        let _permit = permits().acquire();
        f()
    };
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(run)
    } else {
        run()
    }
}

/// Sets how many pieces of CPU work may run at once. Only the first call (or first use) counts:
/// the pool is process-wide. Returns the size in force.
pub fn set_cpu_workers(n: usize) -> usize {
    PERMITS.get_or_init(|| Permits::new(n.max(1))).total
}

/// How many pieces of CPU work may run at once: by default one per CPU.
pub fn cpu_workers() -> usize {
    permits().total
}

fn permits() -> &'static Permits {
    PERMITS.get_or_init(|| {
        Permits::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    })
}

impl Permits {
    fn new(total: usize) -> Self {
        Self {
            total,
            free: Mutex::new(total),
            freed: Condvar::new(),
        }
    }

    fn acquire(&'static self) -> Permit {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_the_pool_size_runs_at_once_and_timers_keep_running() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..4 * cpu_workers() + 2 {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            tasks.push(tokio::spawn(async move {
                run_blocking(|| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            }));
        }
        // The workers are free: a timer fires while the pool is busy.
        let ticked = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::time::sleep(Duration::from_millis(10)),
        )
        .await;
        assert!(ticked.is_ok());
        assert!(
            running.load(Ordering::SeqCst) > 0,
            "the pool was still busy"
        );
        for t in tasks {
            t.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= cpu_workers());
        assert!(most.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn a_plain_call_outside_a_runtime() {
        assert_eq!(run_blocking(|| 41 + 1), 42);
    }
}
