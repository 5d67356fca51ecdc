//! Work a step starts and a later step completes: what lets ADD and DEL
//! overlap the IPAM plugin and the firewall helpers with netlink work while
//! the steps themselves run one after another, in a fixed order.

use std::fmt;
use std::sync::{Arc, Mutex};

/// Work under way; [`Pending::finish`] waits for its outcome.
pub struct Pending<'a, T>(Box<dyn FnOnce() -> T + 'a>);

impl<'a, T: 'a> Pending<'a, T> {
    /// Work that is already done.
    pub fn ready(value: T) -> Pending<'a, T> {
        Pending(Box::new(move || value))
    }

    /// Work that completes when `finish` runs.
    pub fn later(finish: impl FnOnce() -> T + 'a) -> Pending<'a, T> {
        Pending(Box::new(finish))
    }

    /// Waits for the outcome.
    pub fn finish(self) -> T {
        (self.0)()
    }
}

impl<T: Send + 'static> Pending<'static, T> {
    /// Runs `work` on a thread of its own. Where no thread can be created,
    /// `work` runs here and now. A panic in `work` resumes in
    /// [`Pending::finish`].
    pub fn on_thread(work: impl FnOnce() -> T + Send + 'static) -> Pending<'static, T> {
        // The thread takes `work` from the slot; when it cannot be created,
        // the slot still holds it.
        let slot = Arc::new(Mutex::new(Some(work)));
        let theirs = Arc::clone(&slot);
        let spawned = std::thread::Builder::new().spawn(move || {
            let work = theirs.lock().ok().and_then(|mut slot| slot.take());
            work.map(|work| work())
        });
        match spawned {
            Ok(handle) => Pending::later(move || match handle.join() {
                Ok(Some(value)) => value,
                Ok(None) => unreachable_outcome(),
                Err(panic) => std::panic::resume_unwind(panic),
            }),
            Err(_) => match slot.lock().ok().and_then(|mut slot| slot.take()) {
                Some(work) => Pending::ready(work()),
                None => unreachable_outcome(),
            },
        }
    }
}

/// Aborts: the work of a thread was lost, which cannot happen (the slot is
/// taken exactly once, by the thread or, when it failed to start, here).
fn unreachable_outcome() -> ! {
    eprintln!("fatal: work handed to a thread was lost");
    std::process::abort()
}

impl<T> fmt::Debug for Pending<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pending")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_later_give_their_values() {
        assert_eq!(Pending::ready(3).finish(), 3);
        let ran = std::cell::Cell::new(false);
        let pending = Pending::later(|| {
            ran.set(true);
            4
        });
        assert!(!ran.get());
        assert_eq!(pending.finish(), 4);
        assert!(ran.get());
    }

    #[test]
    fn thread_work_is_joined_by_finish() {
        assert_eq!(Pending::on_thread(|| 6 * 7).finish(), 42);
    }

    #[test]
    fn a_panic_resumes_in_finish() {
        let pending = Pending::on_thread(|| -> u8 { panic!("boom") });
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pending.finish()));
        assert!(caught.is_err());
    }
}
