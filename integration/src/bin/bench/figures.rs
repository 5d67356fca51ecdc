//! All samples of a run, and the rows of the result table derived from them.

use std::time::Duration;

use crate::cli::Options;
use crate::cold::ColdSamples;
use crate::impls::Kind;
use crate::ipv6::ReadinessSamples;
use crate::parallel::ParallelSamples;
use crate::rss::RssSamples;
use crate::scale::ScaleSamples;
use crate::stats::{self, Summary};
use crate::version::VersionSamples;

/// Binaries whose sizes are compared.
pub const BINARIES: [&str; 3] = ["bridge", "host-local", "loopback"];

/// Everything measured, indexed like the implementations (ours first).
#[derive(Debug)]
pub struct Figures {
    /// Which implementation each index is.
    pub kinds: Vec<Kind>,
    /// Sample counts used.
    pub options: Options,
    /// File sizes of [`BINARIES`] in bytes.
    pub sizes: Vec<Vec<Option<u64>>>,
    /// VERSION and `/bin/true`.
    pub version: VersionSamples,
    /// Cold ADD/DEL.
    pub cold: ColdSamples,
    /// Peak RSS per process of an ADD.
    pub rss: Option<RssSamples>,
    /// IPv6 readiness, the ADD creating the bridge.
    pub ready_new: ReadinessSamples,
    /// IPv6 readiness, measured pod alone on its bridge.
    pub ready_alone: ReadinessSamples,
    /// IPv6 readiness, another pod on the bridge.
    pub ready_busy: ReadinessSamples,
    /// Parallel batches.
    pub parallel: ParallelSamples,
    /// ADD/DEL at 0 and N pods.
    pub scale: Vec<ScaleSamples>,
}

/// How a row's numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Mebibytes.
    MiB,
    /// A plain ratio.
    Times,
}

/// A goal from the issue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// ours / reference at most this.
    RatioAtMost(f64),
    /// Our own value (a ratio row) at most this.
    OursAtMost(f64),
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What it is.
    pub figure: String,
    /// Unit of `ours` and `reference`.
    pub unit: Unit,
    /// Our value.
    pub ours: Option<f64>,
    /// The reference's value.
    pub reference: Option<f64>,
    /// The goal, if any.
    pub target: Option<Target>,
    /// Whether the row goes into the SVG chart (latency rows).
    pub chart: bool,
}

impl Row {
    fn new(figure: impl Into<String>, unit: Unit, values: [Option<f64>; 2]) -> Row {
        Row {
            figure: figure.into(),
            unit,
            ours: values[0],
            reference: values[1],
            target: None,
            chart: false,
        }
    }

    fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    fn chart(mut self) -> Row {
        self.chart = true;
        self
    }

    /// ours / reference, for rows in a unit (not for ratio rows).
    pub fn ratio(&self) -> Option<f64> {
        match (self.unit, self.ours, self.reference) {
            (Unit::Times, _, _) => None,
            (_, Some(o), Some(r)) if r > 0.0 => Some(o / r),
            _ => None,
        }
    }

    /// Whether the target is met; `None` without a target or data.
    pub fn met(&self) -> Option<bool> {
        match self.target? {
            Target::RatioAtMost(max) => self.ratio().map(|r| r <= max),
            Target::OursAtMost(max) => self.ours.map(|o| o <= max),
        }
    }

    /// The target as text.
    pub fn target_text(&self) -> String {
        match self.target {
            Some(Target::RatioAtMost(max)) => format!("ours/ref ≤ {max}"),
            Some(Target::OursAtMost(max)) => format!("ours ≤ {max}"),
            None => String::new(),
        }
    }
}

/// Formats a value of `unit` with about three significant digits.
pub fn format_value(value: Option<f64>, unit: Unit) -> String {
    let Some(v) = value else {
        return "n/a".to_string();
    };
    match unit {
        Unit::Times => format!("{v:.2}"),
        Unit::MiB => format!("{v:.2}"),
        Unit::Ms if v < 10.0 => format!("{v:.2}"),
        Unit::Ms if v < 100.0 => format!("{v:.1}"),
        Unit::Ms => format!("{v:.0}"),
    }
}

fn at<T: Clone>(per_impl: &[T], idx: usize) -> Option<T> {
    per_impl.get(idx).cloned()
}

fn pair<F: Fn(usize) -> Option<f64>>(f: F) -> [Option<f64>; 2] {
    [f(0), f(1)]
}

fn median_ms(samples: &[Duration]) -> Option<f64> {
    Summary::of(samples).map(|s| stats::ms(s.median))
}

fn p95_ms(samples: &[Duration]) -> Option<f64> {
    Summary::of(samples).map(|s| stats::ms(s.p95))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Figures {
    fn samples(per_impl: &[Vec<Duration>], idx: usize) -> Vec<Duration> {
        at(per_impl, idx).unwrap_or_default()
    }

    /// Median time from ADD returning to usable, over pods that became usable.
    fn ready_ms(samples: &ReadinessSamples, idx: usize) -> Option<f64> {
        let usable: Vec<Duration> = at(samples, idx)?
            .iter()
            .flatten()
            .map(|r| r.usable)
            .collect();
        median_ms(&usable)
    }

    /// Median time from starting ADD to usable, over pods that became usable.
    fn add_and_ready_ms(samples: &ReadinessSamples, idx: usize) -> Option<f64> {
        let total: Vec<Duration> = at(samples, idx)?
            .iter()
            .flatten()
            .map(|r| r.add + r.usable)
            .collect();
        median_ms(&total)
    }

    /// The table rows, in display order.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = self.start_up_rows();
        if let Some(rss) = &self.rss {
            rows.extend(Self::rss_rows(rss));
        }
        rows.extend(self.size_rows());
        rows.extend(self.scale_rows());
        rows.extend(self.parallel_rows());
        rows.extend(self.readiness_rows());
        rows
    }

    /// Rows for cold ADD/DEL, VERSION and the `/bin/true` start-up floor.
    fn start_up_rows(&self) -> Vec<Row> {
        let cold_add = |i| median_ms(&Self::samples(&self.cold.add, i));
        let cold_del = |i| median_ms(&Self::samples(&self.cold.del, i));
        let version = |i| median_ms(&Self::samples(&self.version.version, i));
        let floor = median_ms(&self.version.floor);
        vec![
            Row::new("ADD, cold (median, ms)", Unit::Ms, pair(cold_add))
                .target(Target::RatioAtMost(0.25))
                .chart(),
            Row::new(
                "ADD, cold (p95, ms)",
                Unit::Ms,
                pair(|i| p95_ms(&Self::samples(&self.cold.add, i))),
            ),
            Row::new("DEL (median, ms)", Unit::Ms, pair(cold_del))
                .target(Target::RatioAtMost(0.3))
                .chart(),
            Row::new(
                "DEL (p95, ms)",
                Unit::Ms,
                pair(|i| p95_ms(&Self::samples(&self.cold.del, i))),
            ),
            Row::new("VERSION (median, ms)", Unit::Ms, pair(version)).chart(),
            Row::new(
                "/bin/true, start-up floor (median, ms)",
                Unit::Ms,
                [floor, floor.filter(|_| self.kinds.len() > 1)],
            ),
            Row::new(
                "VERSION ÷ /bin/true",
                Unit::Times,
                pair(|i| Some(version(i)? / floor?)),
            )
            .target(Target::OursAtMost(1.3)),
            Row::new(
                "VERSION with CNI_TRACE=1 (median, ms)",
                Unit::Ms,
                [median_ms(&self.version.traced), None],
            ),
        ]
    }

    /// Rows for the peak RSS of the processes of an ADD.
    fn rss_rows(rss: &RssSamples) -> [Row; 4] {
        let peak = |per: &[Vec<u64>], i: usize| at(per, i)?.iter().max().map(|k| mib(*k));
        let plugins = |i: usize| {
            let bridge = peak(&rss.bridge, i)?;
            Some(peak(&rss.host_local, i).map_or(bridge, |h| bridge.max(h)))
        };
        [
            Row::new(
                "peak RSS of an ADD, bridge + host-local: larger process (MiB)",
                Unit::MiB,
                pair(plugins),
            )
            .target(Target::RatioAtMost(0.3)),
            Row::new(
                "peak RSS of the bridge process (MiB)",
                Unit::MiB,
                pair(|i| peak(&rss.bridge, i)),
            ),
            Row::new(
                "peak RSS of its host-local process (MiB)",
                Unit::MiB,
                pair(|i| peak(&rss.host_local, i)),
            ),
            Row::new(
                "peak RSS of the largest iptables helper (MiB)",
                Unit::MiB,
                pair(|i| peak(&rss.helpers, i)),
            ),
        ]
    }

    /// One row per entry of [`BINARIES`] with its file size.
    fn size_rows(&self) -> Vec<Row> {
        BINARIES
            .iter()
            .enumerate()
            .map(|(b, name)| {
                Row::new(
                    format!("size of {name} (MiB)"),
                    Unit::MiB,
                    pair(|i| {
                        at(&self.sizes, i)
                            .and_then(|s| s.get(b).copied().flatten())
                            .map(|bytes| bytes as f64 / 1024.0 / 1024.0)
                    }),
                )
            })
            .collect()
    }

    /// Rows for ADD/DEL with 0 and N pods already on the bridge.
    fn scale_rows(&self) -> [Row; 4] {
        let n = self.options.pods;
        let scale = |i: usize| self.scale.get(i);
        let add0 = |i| scale(i).and_then(|s| median_ms(&s.add0));
        let add_n = |i| scale(i).and_then(|s| median_ms(&s.add_n));
        [
            Row::new(
                "ADD with 0 pods on the bridge (median, ms)",
                Unit::Ms,
                pair(add0),
            ),
            Row::new(
                format!("ADD with {n} pods on the bridge (median, ms)"),
                Unit::Ms,
                pair(add_n),
            )
            .chart(),
            Row::new(
                format!("ADD at {n} pods ÷ ADD at 0"),
                Unit::Times,
                pair(|i| Some(add_n(i)? / add0(i)?)),
            )
            .target(Target::OursAtMost(1.2)),
            Row::new(
                format!("DEL with {n} pods on the bridge (median, ms)"),
                Unit::Ms,
                pair(|i| scale(i).and_then(|s| median_ms(&s.del_n))),
            ),
        ]
    }

    /// Rows for the wall time of batches of parallel ADDs and DELs.
    fn parallel_rows(&self) -> [Row; 2] {
        [
            Row::new(
                format!(
                    "{} parallel ADDs, wall (median of rounds, ms)",
                    self.options.parallel
                ),
                Unit::Ms,
                pair(|i| median_ms(&Self::samples(&self.parallel.add, i))),
            )
            .chart(),
            Row::new(
                format!(
                    "{} parallel DELs, wall (median of rounds, ms)",
                    self.options.parallel
                ),
                Unit::Ms,
                pair(|i| median_ms(&Self::samples(&self.parallel.del, i))),
            )
            .chart(),
        ]
    }

    /// Rows for how long IPv6 takes to become usable after ADD.
    fn readiness_rows(&self) -> [Row; 4] {
        [
            Row::new(
                "IPv6 usable after ADD returns, new bridge (median, ms)",
                Unit::Ms,
                pair(|i| Self::ready_ms(&self.ready_new, i)),
            )
            .chart(),
            Row::new(
                "IPv6 usable after ADD returns, empty bridge (median, ms)",
                Unit::Ms,
                pair(|i| Self::ready_ms(&self.ready_alone, i)),
            )
            .chart(),
            Row::new(
                "IPv6 usable after ADD returns, bridge has a pod (median, ms)",
                Unit::Ms,
                pair(|i| Self::ready_ms(&self.ready_busy, i)),
            )
            .chart(),
            Row::new(
                "first pod on a new bridge: ADD + IPv6 usable (median, ms)",
                Unit::Ms,
                pair(|i| Self::add_and_ready_ms(&self.ready_new, i)),
            )
            .chart(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_targets() {
        let row =
            Row::new("x", Unit::Ms, [Some(10.0), Some(50.0)]).target(Target::RatioAtMost(0.25));
        assert_eq!(row.ratio(), Some(0.2));
        assert_eq!(row.met(), Some(true));
        let row =
            Row::new("y", Unit::Times, [Some(1.5), Some(1.0)]).target(Target::OursAtMost(1.3));
        assert_eq!(row.ratio(), None);
        assert_eq!(row.met(), Some(false));
        let row = Row::new("z", Unit::Ms, [Some(1.0), None]).target(Target::RatioAtMost(0.3));
        assert_eq!(row.met(), None);
    }

    #[test]
    fn value_formatting() {
        assert_eq!(format_value(Some(1.2345), Unit::Ms), "1.23");
        assert_eq!(format_value(Some(45.67), Unit::Ms), "45.7");
        assert_eq!(format_value(Some(1234.4), Unit::Ms), "1234");
        assert_eq!(format_value(None, Unit::MiB), "n/a");
    }
}
