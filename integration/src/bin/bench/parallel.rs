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
    for round in 0..ctx.opts.parallel_rounds {
        for (idx, imp) in ctx.rotation(round) {
            ctx.check()?;
            let mut pods = Vec::with_capacity(ctx.opts.parallel);
            for _ in 0..ctx.opts.parallel {
                pods.push(Pod::create(imp)?);
            }
            let (wall, failed) = batch(imp, &pods, "ADD")?;
            add[idx].push(wall);
            count(&mut failures[idx], failed);
            let (wall, failed) = batch(imp, &pods, "DEL")?;
            del[idx].push(wall);
            count(&mut failures[idx], failed);
            for pod in pods {
                pod.remove()?;
            }
            ctx.step();
        }
    }
    Ok(ParallelSamples { add, del, failures })
}

fn count(total: &mut (usize, Option<String>), failed: Vec<String>) {
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
