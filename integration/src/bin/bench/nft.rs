//! The masquerade backend `ipMasqBackend: "nftables"`: ours writing
//! upstream's `table inet cni_plugins_masquerade` over nf_tables netlink,
//! in-process, against the reference (with its default iptables backend).
//!
//! It runs after every other phase, so those see the host as before it
//! existed. After one untimed warm-up cycle that creates the `cnirsb-nft`
//! bridge and the table:
//!
//! 1. `opts.runs` rounds, each running one cold ADD/DEL cycle of ours
//!    (iptables), ours with nftables and the reference, the order rotating
//!    every round, so the ratios compare samples taken under the same
//!    conditions; every ADD is also charged its CPU time, children included
//!    ([`pod::cpu_cycle`]);
//! 2. `opts.parallel_rounds` rounds of `opts.parallel` parallel ADDs, then
//!    DELs, of ours with nftables ([`parallel::round`]);
//! 3. `opts.rss_runs` traced ADDs of ours with nftables ([`rss::traced_add`]).

use std::time::Duration;

use crate::ctx::{self, Ctx};
use crate::error::BenchResult;
use crate::impls::{Impl, Kind};
use crate::parallel;
use crate::pod;
use crate::rss::{self, AddPeaks};

/// Everything the phase measured.
#[derive(Debug, Default)]
pub struct NftSamples {
    /// Which implementation each lane of `add`, `del` and `cpu` is: ours,
    /// ours with nftables, then the reference when it is installed.
    pub lanes: Vec<Kind>,
    /// Cold ADD latencies per lane.
    pub add: Vec<Vec<Duration>>,
    /// Cold DEL latencies per lane.
    pub del: Vec<Vec<Duration>>,
    /// CPU time (user + system, children included) of each cold ADD, per lane.
    pub cpu: Vec<Vec<Duration>>,
    /// Wall time of each round's batch of parallel ADDs (ours with nftables).
    pub parallel_add: Vec<Duration>,
    /// Wall time of each round's batch of parallel DELs (ours with nftables).
    pub parallel_del: Vec<Duration>,
    /// Failed parallel calls, with the first message.
    pub parallel_failures: (usize, Option<String>),
    /// Peaks of each traced ADD (ours with nftables).
    pub rss: Vec<AddPeaks>,
}

impl NftSamples {
    /// The lane of `kind`, if it was measured.
    pub fn lane(&self, kind: Kind) -> Option<usize> {
        self.lanes.iter().position(|k| *k == kind)
    }

    /// Samples of `kind` from `per_lane` (empty when not measured).
    pub fn of<'s>(&self, per_lane: &'s [Vec<Duration>], kind: Kind) -> &'s [Duration] {
        self.lane(kind)
            .and_then(|i| per_lane.get(i))
            .map_or(&[], Vec::as_slice)
    }
}

/// The implementations of the interleaved rounds: ours, ours with nftables,
/// then the reference when present.
fn lanes<'a>(ctx: &Ctx<'a>) -> Vec<&'a Impl> {
    let mut lanes: Vec<&Impl> = ctx
        .impls
        .iter()
        .filter(|imp| imp.kind == Kind::Ours)
        .collect();
    lanes.push(ctx.nftables);
    lanes.extend(ctx.impls.iter().filter(|imp| imp.kind != Kind::Ours));
    lanes
}

/// Units of work of the phase on the progress bar.
pub fn steps(o: &crate::cli::Options) -> usize {
    1 + o.runs + o.parallel_rounds + o.rss_runs
}

/// Runs the phase; see the module docs.
///
/// # Errors
///
/// When a plugin fails, tracing fails, a namespace cannot be created or
/// removed, or Ctrl-C.
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<NftSamples> {
    ctx.phase("nftables backend: warm-up (creates its bridge and table)");
    ctx.check()?;
    pod::cycle(ctx.nftables)?;
    ctx.step();
    let mut samples = cold(ctx)?;
    parallel_rounds(ctx, &mut samples)?;
    ctx.phase("nftables backend: peak RSS");
    for _ in 0..ctx.opts.rss_runs {
        ctx.check()?;
        samples.rss.push(rss::traced_add(ctx, ctx.nftables)?);
        ctx.step();
    }
    Ok(samples)
}

/// The interleaved cold rounds, with the CPU time of every ADD.
fn cold(ctx: &Ctx<'_>) -> BenchResult<NftSamples> {
    ctx.phase("nftables backend: cold ADD/DEL and CPU, interleaved");
    let lanes = lanes(ctx);
    let empty = || lanes.iter().map(|_| Vec::new()).collect::<Vec<_>>();
    let mut samples = NftSamples {
        lanes: lanes.iter().map(|imp| imp.kind).collect(),
        add: empty(),
        del: empty(),
        cpu: empty(),
        ..NftSamples::default()
    };
    for i in 0..ctx.opts.runs {
        for idx in ctx::rotated(lanes.len(), i) {
            ctx.check()?;
            let cycle = pod::cpu_cycle(lanes[idx])?;
            samples.add[idx].push(cycle.add);
            samples.del[idx].push(cycle.del);
            samples.cpu[idx].push(cycle.add_cpu);
        }
        ctx.step();
    }
    Ok(samples)
}

/// The parallel rounds of ours with nftables.
fn parallel_rounds(ctx: &Ctx<'_>, samples: &mut NftSamples) -> BenchResult<()> {
    ctx.phase(&format!(
        "nftables backend: {} parallel ADDs, then DELs",
        ctx.opts.parallel
    ));
    for _ in 0..ctx.opts.parallel_rounds {
        ctx.check()?;
        let round = parallel::round(ctx.nftables, ctx.opts.parallel)?;
        samples.parallel_add.push(round.add);
        samples.parallel_del.push(round.del);
        parallel::tally(&mut samples.parallel_failures, round.failed);
        ctx.step();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_kind() {
        let ms = Duration::from_millis;
        let samples = NftSamples {
            lanes: vec![Kind::Ours, Kind::OursNftables],
            add: vec![vec![ms(3)], vec![ms(2), ms(4)]],
            ..NftSamples::default()
        };
        assert_eq!(samples.lane(Kind::OursNftables), Some(1));
        assert_eq!(samples.lane(Kind::Reference), None);
        assert_eq!(samples.of(&samples.add, Kind::OursNftables), [ms(2), ms(4)]);
        assert!(samples.of(&samples.add, Kind::Reference).is_empty());
        assert!(samples.of(&samples.cpu, Kind::Ours).is_empty());
    }

    #[test]
    fn steps_count_warm_up_rounds_parallel_and_rss() {
        let o = crate::cli::Options::quick();
        assert_eq!(steps(&o), 1 + 10 + 1 + 2);
    }
}
