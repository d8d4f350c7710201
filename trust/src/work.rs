//! A budget for the verification work one request may cause.
//!
//! Verifying what a peer sends costs certificate parses (OpenSSL decodes each key) and RSA
//! operations, and what a peer sends decides how many: a 4 MiB request can carry thousands of
//! distinct certificates, and chains of 8192-bit keys the peer made itself verify link by link
//! before their untrusted top is found. A server gives each request a [`WorkBudget`] and runs its
//! verifications [`within`] it; each parse and RSA operation on that thread is charged, and once
//! the budget is spent they fail, and the verification reports [`VerifyError::WorkLimit`]
//! instead of whatever failed first. The charge is per thread because verification runs
//! synchronously on the thread that asked (a blocking-pool thread), and because threading a
//! budget through every parser would make every caller outside a server pay for it. Outside
//! [`within`] nothing is charged.
//!
//! Units are estimated microseconds on a current x86-64 core; what matters is that they bound the
//! work in proportion, not their exact value.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::VerifyError;

/// One certificate parse, before its size: OpenSSL 3 spends most of it decoding the public key.
/// With [`PARSE_BYTES`], calibrated so that a cold 3-level slice credential (`cargo bench -p
/// geni-trust --bench verify`: 0.58 ms) costs about as many units as microseconds.
pub(crate) const PARSE: u64 = 20;

/// Bytes of DER (mostly the subjectAltName's embedded GIDs, decoded as XML-RPC) per unit.
pub(crate) const PARSE_BYTES: u64 = 128;

/// An RSA verification with a 2048-bit key; cost grows with the square of the modulus size (the
/// key policy keeps the exponent small).
const RSA_2048: u64 = 20;

/// What one request's verifications may cost, shared by the calls of a `system.multicall`.
#[derive(Debug)]
pub struct WorkBudget {
    limit: u64,
    spent: AtomicU64,
}

impl WorkBudget {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            spent: AtomicU64::new(0),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Units charged so far (past the limit once a charge was refused).
    pub fn spent(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }

    pub fn is_spent(&self) -> bool {
        self.spent() > self.limit
    }

    fn charge(&self, units: u64) -> bool {
        // Saturating, so that no charge can wrap the total back under the limit.
        let add = |spent: u64| Some(spent.saturating_add(units));
        let before = self
            .spent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, add)
            .unwrap_or_else(|spent| spent);
        before.saturating_add(units) <= self.limit
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<WorkBudget>>> = const { RefCell::new(None) };
}

/// Runs `f` with `budget` charged for the verification work it does on this thread. Nested calls
/// charge the innermost budget; the previous one is restored on return, also when `f` panics.
pub fn within<R>(budget: &Arc<WorkBudget>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<WorkBudget>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(budget)));
    let _restore = Restore(previous);
    f()
}

/// Charges `units`; false when the current budget is spent (always true outside [`within`]).
pub(crate) fn charge(units: u64) -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_none_or(|b| b.charge(units)))
}

/// Charges one RSA verification with a key of `bits`.
pub(crate) fn charge_rsa(bits: u32) -> bool {
    let ratio = u64::from(bits.max(1024)).div_ceil(1024);
    // (bits / 2048)^2 in quarters: 1024 → 1/4, 2048 → 1, 8192 → 16.
    charge((RSA_2048 * ratio * ratio).div_ceil(4))
}

/// The error to report when the current budget is spent: whatever failed then failed for want
/// of budget, not because the peer's object is bad.
pub(crate) fn limit_error() -> Option<VerifyError> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|b| b.is_spent())
            .map(|b| VerifyError::WorkLimit { limit: b.limit() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_only_within_and_restores_the_outer_budget() {
        assert!(charge(u64::MAX), "nothing is charged outside `within`");
        let outer = Arc::new(WorkBudget::new(100));
        let inner = Arc::new(WorkBudget::new(10));
        within(&outer, || {
            assert!(charge(60));
            within(&inner, || {
                assert!(charge(10));
                assert!(!charge(1), "the inner budget is spent");
                assert!(matches!(
                    limit_error(),
                    Some(VerifyError::WorkLimit { limit: 10 })
                ));
            });
            assert!(limit_error().is_none(), "the outer one is not");
            assert!(charge(40));
            assert!(!charge(1));
        });
        assert_eq!((outer.spent(), inner.spent()), (101, 11));
        assert!(limit_error().is_none());
        let huge = Arc::new(WorkBudget::new(100));
        within(&huge, || {
            assert!(!charge(u64::MAX));
            assert!(!charge(u64::MAX), "the total saturates, never wraps");
            assert!(!charge(1));
        });
        let r = std::panic::catch_unwind(|| within(&inner, || panic!("boom")));
        assert!(r.is_err());
        assert!(limit_error().is_none(), "restored after a panic");
    }

    #[test]
    fn rsa_costs_grow_with_the_square_of_the_key() {
        let b = Arc::new(WorkBudget::new(u64::MAX));
        let cost = |bits| {
            let before = b.spent();
            within(&b, || charge_rsa(bits));
            b.spent() - before
        };
        assert_eq!(cost(1024), 5);
        assert_eq!(cost(2048), 20);
        assert_eq!(cost(4096), 80);
        assert_eq!(cost(8192), 320);
    }
}
