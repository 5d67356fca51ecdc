//! Untimed bulk work (attaching or detaching hundreds of background pods) on
//! a few threads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::BenchResult;
use crate::signals::Interrupt;

/// Runs `work(i)` for every `i` in `0..count` on `workers` threads. Stops
/// handing out work after the first error (when `stop_on_error`) or an
/// interrupt. Returns the error messages, at most one per failed item.
pub fn run<F>(
    count: usize,
    workers: usize,
    stop_on_error: bool,
    interrupt: &Interrupt,
    work: F,
) -> Vec<String>
where
    F: Fn(usize) -> BenchResult<()> + Sync,
{
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    if stop.load(Ordering::SeqCst) || interrupt.is_set() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        break;
                    }
                    if let Err(e) = work(i) {
                        if stop_on_error {
                            stop.store(true, Ordering::SeqCst);
                        }
                        if let Ok(mut errors) = errors.lock() {
                            errors.push(e.to_string());
                        }
                    }
                }
            });
        }
    });
    errors
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_item_once_and_collects_errors() {
        let seen = Mutex::new(Vec::new());
        let errors = run(20, 3, false, &Interrupt::default(), |i| {
            seen.lock().unwrap().push(i);
            if i % 5 == 0 {
                Err(format!("item {i}").into())
            } else {
                Ok(())
            }
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_eq!(errors.len(), 4);
    }

    #[test]
    fn stops_after_first_error_when_asked() {
        let errors = run(1000, 1, true, &Interrupt::default(), |i| {
            if i == 3 { Err("boom".into()) } else { Ok(()) }
        });
        assert_eq!(errors, vec!["boom".to_string()]);
    }
}
