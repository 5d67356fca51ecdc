//! All samples of a run, and the rows of the result table derived from them.

use std::time::Duration;

use crate::cli::Options;
use crate::cold::ColdSamples;
use crate::cri::CriSamples;
use crate::impls::Kind;
use crate::ipv6::ReadinessSamples;
use crate::nft::NftSamples;
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
    /// The nftables masquerade backend, and CPU per ADD.
    pub nft: NftSamples,
    /// RunPodSandbox and StopPodSandbox through containerd.
    pub cri: CriSamples,
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
        rows.extend(self.nft_cold_rows());
        if let Some(rss) = &self.rss {
            rows.extend(Self::rss_rows(rss));
        }
        rows.extend(self.largest_process_rows());
        rows.extend(self.size_rows());
        rows.extend(self.scale_rows());
        rows.extend(self.parallel_rows());
        rows.push(self.nft_parallel_row());
        rows.extend(self.readiness_rows());
        rows.extend(self.cri_rows());
        rows
    }

    /// RunPodSandbox and StopPodSandbox through containerd's CRI, as the
    /// client times them.
    fn cri_rows(&self) -> [Row; 2] {
        let run = |i| median_ms(&Self::samples(&self.cri.run, i));
        let stop = |i| median_ms(&Self::samples(&self.cri.stop, i));
        [
            Row::new(
                "RunPodSandbox via containerd (median, ms)",
                Unit::Ms,
                pair(run),
            )
            .chart(),
            Row::new(
                "StopPodSandbox via containerd (median, ms)",
                Unit::Ms,
                pair(stop),
            )
            .chart(),
        ]
    }

    /// The reference's index in the per-implementation samples.
    fn reference_idx(&self) -> Option<usize> {
        self.kinds.iter().position(|k| *k == Kind::Reference)
    }

    /// Rows of the nftables phase's interleaved cold rounds: ADD with the
    /// nftables backend, and CPU per ADD for both of our backends, each
    /// against the reference.
    fn nft_cold_rows(&self) -> [Row; 3] {
        let nft = &self.nft;
        let median = |per: &[Vec<Duration>], kind| median_ms(nft.of(per, kind));
        let reference = |per: &[Vec<Duration>]| median(per, Kind::Reference);
        [
            Row::new(
                "ADD, cold, nftables backend (median, ms)",
                Unit::Ms,
                [median(&nft.add, Kind::OursNftables), reference(&nft.add)],
            )
            .target(Target::RatioAtMost(0.10))
            .chart(),
            Row::new(
                "CPU per ADD with children (median, ms)",
                Unit::Ms,
                [median(&nft.cpu, Kind::Ours), reference(&nft.cpu)],
            ),
            Row::new(
                "CPU per ADD with children, nftables backend (median, ms)",
                Unit::Ms,
                [median(&nft.cpu, Kind::OursNftables), reference(&nft.cpu)],
            ),
        ]
    }

    /// Rows for the largest process of an ADD's tree (plugins and helpers),
    /// with our default iptables backend and with nftables, each against the
    /// reference (its default iptables backend).
    fn largest_process_rows(&self) -> [Row; 2] {
        let largest = |idx: Option<usize>| {
            let rss = self.rss.as_ref()?;
            rss.largest(idx?).map(mib)
        };
        let ours = largest(self.kinds.iter().position(|k| *k == Kind::Ours));
        let reference = largest(self.reference_idx());
        let nft = self.nft.rss.iter().map(|p| p.largest()).max().map(mib);
        [
            Row::new(
                "largest process of an ADD, iptables backend (MiB)",
                Unit::MiB,
                [ours, reference],
            ),
            Row::new(
                "largest process of an ADD, nftables backend (MiB)",
                Unit::MiB,
                [nft, reference],
            )
            .target(Target::RatioAtMost(0.30)),
        ]
    }

    /// The row for batches of parallel ADDs with the nftables backend,
    /// against the reference's batches of the parallel phase.
    fn nft_parallel_row(&self) -> Row {
        let reference = self
            .reference_idx()
            .and_then(|i| median_ms(&Self::samples(&self.parallel.add, i)));
        Row::new(
            format!(
                "{} parallel ADDs, nftables backend, wall (median of rounds, ms)",
                self.options.parallel
            ),
            Unit::Ms,
            [median_ms(&self.nft.parallel_add), reference],
        )
        .target(Target::RatioAtMost(0.12))
        .chart()
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
                pair(|i| {
                    let largest = at(&rss.helpers, i)?.iter().copied().max()?;
                    (largest > 0).then(|| mib(largest))
                }),
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
    use crate::rss::AddPeaks;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    /// Figures of `kinds` with no samples but the nftables phase's, the
    /// peak RSS and the reference's parallel ADDs.
    fn figures(kinds: &[Kind]) -> Figures {
        let empty = || {
            kinds
                .iter()
                .map(|_| Vec::new())
                .collect::<Vec<Vec<Duration>>>()
        };
        let reference = kinds.contains(&Kind::Reference);
        let mut lanes = vec![Kind::Ours, Kind::OursNftables];
        let mut add = vec![ms(&[9, 10, 11]), ms(&[3, 2, 4])];
        let mut cpu = vec![ms(&[5, 6, 7]), ms(&[1, 1, 2])];
        let mut parallel_add = empty();
        if reference {
            lanes.push(Kind::Reference);
            add.push(ms(&[40, 50, 60]));
            cpu.push(ms(&[20, 25, 30]));
            parallel_add[1] = ms(&[1000, 2000, 3000]);
        }
        let kib = |v: &[u64]| kinds.iter().map(|_| v.to_vec()).collect::<Vec<_>>();
        let peaks = |bridge, host_local| AddPeaks {
            bridge,
            host_local,
            helpers: 0,
        };
        Figures {
            kinds: kinds.to_vec(),
            options: Options::quick(),
            sizes: kinds.iter().map(|_| vec![None; 3]).collect(),
            version: crate::version::VersionSamples {
                floor: Vec::new(),
                version: empty(),
                traced: Vec::new(),
            },
            cold: ColdSamples {
                add: empty(),
                del: empty(),
            },
            rss: Some(RssSamples {
                bridge: kib(&[2048, 1024]),
                host_local: kib(&[1024]),
                helpers: kib(&[3072, 4096]),
                floor: 512,
            }),
            ready_new: Vec::new(),
            ready_alone: Vec::new(),
            ready_busy: Vec::new(),
            parallel: ParallelSamples {
                add: parallel_add,
                del: empty(),
                failures: Vec::new(),
            },
            scale: Vec::new(),
            nft: NftSamples {
                lanes,
                del: add.clone(),
                add,
                cpu,
                parallel_add: ms(&[100, 200]),
                rss: vec![peaks(1024, 512), peaks(512, 1536)],
                ..NftSamples::default()
            },
            cri: CriSamples {
                run: vec![ms(&[60, 70]), ms(&[100, 140])],
                stop: vec![ms(&[50]), ms(&[150])],
                skipped: None,
            },
        }
    }

    fn row<'r>(rows: &'r [Row], figure: &str) -> &'r Row {
        rows.iter()
            .find(|r| r.figure == figure)
            .unwrap_or_else(|| panic!("no row {figure:?}"))
    }

    #[test]
    fn nftables_rows_compare_with_the_reference() {
        let rows = figures(&[Kind::Ours, Kind::Reference]).rows();
        let cold = row(&rows, "ADD, cold, nftables backend (median, ms)");
        assert_eq!((cold.ours, cold.reference), (Some(3.0), Some(50.0)));
        assert_eq!(cold.target, Some(Target::RatioAtMost(0.10)));
        assert_eq!(cold.met(), Some(true));
        assert!(cold.chart);
        let cpu = row(&rows, "CPU per ADD with children (median, ms)");
        assert_eq!((cpu.ours, cpu.reference), (Some(6.0), Some(25.0)));
        assert_eq!((cpu.target, cpu.chart), (None, false));
        let cpu = row(
            &rows,
            "CPU per ADD with children, nftables backend (median, ms)",
        );
        assert_eq!((cpu.ours, cpu.reference), (Some(1.0), Some(25.0)));
        let big = row(&rows, "largest process of an ADD, iptables backend (MiB)");
        assert_eq!((big.ours, big.reference), (Some(4.0), Some(4.0)));
        assert_eq!(big.target, None);
        let big = row(&rows, "largest process of an ADD, nftables backend (MiB)");
        assert_eq!((big.ours, big.reference), (Some(1.5), Some(4.0)));
        assert_eq!(big.target, Some(Target::RatioAtMost(0.30)));
        assert_eq!(big.met(), Some(false));
        let parallel = row(
            &rows,
            "50 parallel ADDs, nftables backend, wall (median of rounds, ms)",
        );
        assert_eq!(
            (parallel.ours, parallel.reference),
            (Some(150.0), Some(2000.0))
        );
        assert_eq!(parallel.target, Some(Target::RatioAtMost(0.12)));
        assert_eq!(parallel.met(), Some(true));
        assert!(parallel.chart);
    }

    #[test]
    fn nftables_rows_without_the_reference_have_ours_only() {
        let rows = figures(&[Kind::Ours]).rows();
        for figure in [
            "ADD, cold, nftables backend (median, ms)",
            "CPU per ADD with children, nftables backend (median, ms)",
            "largest process of an ADD, nftables backend (MiB)",
            "50 parallel ADDs, nftables backend, wall (median of rounds, ms)",
        ] {
            let r = row(&rows, figure);
            assert!(r.ours.is_some() && r.reference.is_none(), "{figure}");
            assert_eq!(r.met(), None, "{figure}");
        }
    }

    #[test]
    fn existing_rows_keep_their_order_around_the_new_ones() {
        let rows = figures(&[Kind::Ours, Kind::Reference]).rows();
        let names: Vec<&str> = rows.iter().map(|r| r.figure.as_str()).collect();
        let old: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !n.contains("nftables backend") && !n.contains("with children"))
            .filter(|n| !n.starts_with("largest process"))
            .filter(|n| !n.contains("via containerd"))
            .collect();
        assert_eq!(old.len(), 25, "{old:?}");
        assert_eq!(old[0], "ADD, cold (median, ms)");
        assert_eq!(
            old[24],
            "first pod on a new bridge: ADD + IPv6 usable (median, ms)"
        );
        assert_eq!(names.len(), 33);
        assert_eq!(names[31], "RunPodSandbox via containerd (median, ms)");
    }

    #[test]
    fn cri_rows_compare_run_and_stop_with_the_reference() {
        let rows = figures(&[Kind::Ours, Kind::Reference]).rows();
        let run = row(&rows, "RunPodSandbox via containerd (median, ms)");
        assert_eq!((run.ours, run.reference), (Some(65.0), Some(120.0)));
        assert!(run.chart);
        let stop = row(&rows, "StopPodSandbox via containerd (median, ms)");
        assert_eq!((stop.ours, stop.reference), (Some(50.0), Some(150.0)));
    }

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
