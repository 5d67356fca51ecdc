//! Bounded waits and durations for test output.

use std::time::{Duration, Instant};

/// How often [`wait_until`] asks again.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `done` returns `true`, asking every 10 ms, for at most
/// `timeout`; `what` names the awaited state in the failure message.
///
/// # Panics
///
/// When `timeout` passes first.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// `d` in milliseconds, for printed timings.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_done() {
        let mut asked = 0;
        wait_until("the third question", Duration::from_secs(10), || {
            asked += 1;
            asked == 3
        });
        assert_eq!(asked, 3);
    }

    #[test]
    #[should_panic(expected = "timed out after 30ms waiting for never")]
    fn fails_after_the_timeout() {
        wait_until("never", Duration::from_millis(30), || false);
    }

    #[test]
    fn ms_is_milliseconds() {
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }
}
