//! What tells an input that received a batch (the collector's AMQP input) when every
//! publisher is done with it, and whether every one delivered it: the input
//! acknowledges its messages only then (at least once), or hands them back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a receipt calls when it settles.
type Settle = Box<dyn FnOnce(bool) + Send>;

/// Settled once the last holder lets go of it: when every publisher of the batch's
/// sinks has finished with the batch. A publisher that fails, drops samples or
/// refuses the batch marks it failed.
pub struct Receipt {
    failed: AtomicBool,
    settle: Mutex<Option<Settle>>,
}

impl Receipt {
    /// A receipt that calls `settle` with whether every publisher delivered the batch.
    pub fn new(settle: impl FnOnce(bool) + Send + 'static) -> Arc<Self> {
        Arc::new(Self { failed: AtomicBool::new(false), settle: Mutex::new(Some(Box::new(settle))) })
    }

    /// A publisher could not deliver the batch (or all of it).
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        let settle = self.settle.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(settle) = settle {
            settle(!self.failed.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_once_when_the_last_holder_lets_go_with_whether_any_failed() {
        for fail in [false, true] {
            let (sender, outcome) = std::sync::mpsc::channel();
            let receipt = Receipt::new(move |delivered| sender.send(delivered).unwrap());
            let other = receipt.clone();
            if fail {
                other.fail();
            }
            drop(receipt);
            assert!(outcome.try_recv().is_err(), "not settled while a publisher holds it");
            drop(other);
            assert_eq!(outcome.try_recv().unwrap(), !fail);
            assert!(outcome.try_recv().is_err(), "settled once");
        }
    }
}
