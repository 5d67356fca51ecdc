//! Throughput: many ADD processes started at once, then as many DELs.

use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::error::BenchResult;
use crate::impls::Impl;
use crate::pod::{self, Pod};

/// Wall times per implementation, one per round.
#[derive(Debug)]
pub struct ParallelSamples {
    /// From the first ADD spawned to the last one reaped.
    pub add: Vec<Vec<Duration>>,
    /// From the first DEL spawned to the last one reaped.
    pub del: Vec<Vec<Duration>>,
    /// Failed calls (ADD and DEL) per implementation, with the first message.
    pub failures: Vec<(usize, Option<String>)>,
}

/// One round of one implementation: the wall times of its batch of ADDs and
/// of its batch of DELs, and the messages of its failed calls.
#[derive(Debug)]
pub struct Round {
    /// From the first ADD spawned to the last one reaped.
    pub add: Duration,
    /// From the first DEL spawned to the last one reaped.
    pub del: Duration,
    /// Failed calls, ADD and DEL.
    pub failed: Vec<String>,
}

/// `opts.parallel_rounds` rounds; in each, every implementation (rotating
/// order) attaches `opts.parallel` fresh namespaces with all ADDs started at
/// once, then detaches them the same way.
///
/// # Errors
///
/// When a namespace cannot be created or removed, or Ctrl-C. Failed plugin
/// calls are counted, not fatal.
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<ParallelSamples> {
    ctx.phase(&format!("{} parallel ADDs, then DELs", ctx.opts.parallel));
    let mut add = ctx.per_impl();
    let mut del = ctx.per_impl();
    let mut failures: Vec<(usize, Option<String>)> = ctx.impls.iter().map(|_| (0, None)).collect();
    for r in 0..ctx.opts.parallel_rounds {
        for (idx, imp) in ctx.rotation(r) {
            ctx.check()?;
            let done = round(imp, ctx.opts.parallel)?;
            add[idx].push(done.add);
            del[idx].push(done.del);
            tally(&mut failures[idx], done.failed);
            ctx.step();
        }
    }
    Ok(ParallelSamples { add, del, failures })
}

/// Attaches `n` fresh namespaces of `imp` with all ADDs started at once,
/// then detaches them the same way, then removes the namespaces (untimed).
///
/// # Errors
///
/// When a namespace cannot be created or removed. Failed plugin calls are
/// returned in [`Round::failed`], not fatal.
pub fn round(imp: &Impl, n: usize) -> BenchResult<Round> {
    let mut pods = Vec::with_capacity(n);
    for _ in 0..n {
        pods.push(Pod::create(imp)?);
    }
    let (add, mut failed) = batch(imp, &pods, "ADD")?;
    let (del, del_failed) = batch(imp, &pods, "DEL")?;
    failed.extend(del_failed);
    for pod in pods {
        pod.remove()?;
    }
    Ok(Round { add, del, failed })
}

/// Adds `failed` to a running count of failures, keeping the first message.
pub fn tally(total: &mut (usize, Option<String>), failed: Vec<String>) {
    total.0 += failed.len();
    if total.1.is_none() {
        total.1 = failed.into_iter().next();
    }
}

/// Starts `command` for every pod before waiting for any, then reaps them
/// all. Returns the wall time and the messages of failed calls.
fn batch(imp: &Impl, pods: &[Pod], command: &str) -> BenchResult<(Duration, Vec<String>)> {
    let start = Instant::now();
    let mut running = Vec::with_capacity(pods.len());
    let mut failed = Vec::new();
    for pod in pods {
        match pod::call(imp, command, pod).spawn() {
            Ok(child) => running.push(child),
            Err(e) => failed.push(format!("cannot start {command}: {e}")),
        }
    }
    for child in running {
        let what = format!("parallel {} {command}", imp.kind.label());
        match child.finish() {
            Ok(done) => {
                if let Err(e) = done.require_success(&what) {
                    failed.push(e.to_string());
                }
            }
            Err(e) => failed.push(format!("{what}: {e}")),
        }
    }
    Ok((start.elapsed(), failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_and_keeps_the_first_message() {
        let mut total = (0, None);
        tally(&mut total, Vec::new());
        assert_eq!(total, (0, None));
        tally(&mut total, vec!["a".into(), "b".into()]);
        tally(&mut total, vec!["c".into()]);
        assert_eq!(total, (3, Some("a".to_string())));
    }
}
