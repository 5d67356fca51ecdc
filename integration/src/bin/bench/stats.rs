//! Median and percentiles of latency samples.

use std::time::Duration;

/// Summary of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median (mean of the two middle samples for an even count).
    pub median: Duration,
    /// 95th percentile, nearest rank.
    pub p95: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let max = *sorted.last()?;
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        };
        // Nearest rank: the smallest sample with at least 95 % of samples at or below it.
        let rank = (n * 95).div_ceil(100).max(1);
        Some(Summary {
            n,
            median,
            p95: sorted[rank - 1],
            max,
        })
    }
}

/// Milliseconds as a float, for tables and charts.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_vec(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn odd_and_even_medians() {
        let s = Summary::of(&ms_vec(&[5, 1, 3])).unwrap();
        assert_eq!(s.median, Duration::from_millis(3));
        let s = Summary::of(&ms_vec(&[4, 1, 3, 2])).unwrap();
        assert_eq!(s.median, Duration::from_micros(2500));
        assert_eq!(s.max, Duration::from_millis(4));
    }

    #[test]
    fn p95_is_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        let s = Summary::of(&ms_vec(&samples)).unwrap();
        assert_eq!(s.p95, Duration::from_millis(95));
        let s = Summary::of(&ms_vec(&(1..=20).collect::<Vec<_>>())).unwrap();
        assert_eq!(s.p95, Duration::from_millis(19));
        let s = Summary::of(&ms_vec(&[7])).unwrap();
        assert_eq!(s.p95, Duration::from_millis(7));
    }

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }
}
