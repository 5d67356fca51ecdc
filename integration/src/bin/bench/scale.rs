//! ADD and DEL latency with many pods already on the bridge.
//!
//! Per implementation, one after the other (so each sees only its own pods):
//! timed ADD/DEL cycles with an empty bridge, then `opts.pods` background
//! pods attached with the implementation's own ADD (untimed, a few worker
//! threads), timed cycles again, then every background pod detached and its
//! namespace removed. Each timed series starts after a short settle, so the
//! kernel's deferred work from the bulk steps before it is not counted.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::error::BenchResult;
use crate::host;
use crate::impls::Impl;
use crate::pod::{self, Pod};
use crate::pool;

/// Samples of one implementation.
#[derive(Debug, Default)]
pub struct ScaleSamples {
    /// ADD with no other pod.
    pub add0: Vec<Duration>,
    /// DEL with no other pod.
    pub del0: Vec<Duration>,
    /// ADD with `pods` other pods.
    pub add_n: Vec<Duration>,
    /// DEL with `pods` other pods.
    pub del_n: Vec<Duration>,
    /// Wall time to attach the background pods.
    pub fill: Duration,
    /// Wall time to detach them.
    pub drain: Duration,
}

/// Runs the scale phase for every implementation.
///
/// # Errors
///
/// When a plugin fails or Ctrl-C (background pods are then left to the sweep).
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<Vec<ScaleSamples>> {
    ctx.impls.iter().map(|imp| one(ctx, imp)).collect()
}

fn one(ctx: &Ctx<'_>, imp: &Impl) -> BenchResult<ScaleSamples> {
    let label = imp.kind.label();
    let n = ctx.opts.pods;
    let mut samples = ScaleSamples::default();

    ctx.phase(&format!("{label}: ADD/DEL with 0 pods"));
    ctx.settle()?;
    timed(ctx, imp, &mut samples.add0, &mut samples.del0)?;

    ctx.phase(&format!("{label}: attaching {n} pods"));
    let pods = Mutex::new(Vec::with_capacity(n));
    let start = Instant::now();
    let errors = pool::run(n, ctx.opts.fill_workers, true, ctx.interrupt, |_| {
        let pod = Pod::create(imp)?;
        let added = pod::add(imp, &pod);
        if let Ok(mut pods) = pods.lock() {
            pods.push(pod);
        }
        added?;
        ctx.step();
        Ok(())
    });
    samples.fill = start.elapsed();
    let pods = pods.into_inner().unwrap_or_else(|p| p.into_inner());
    ctx.check()?;
    if let Some(first) = errors.first() {
        return Err(format!(
            "attaching {n} pods: {} failed; first: {first}",
            errors.len()
        )
        .into());
    }
    let ports = host::ports_of(imp.bridge())?;
    if ports != n {
        return Err(format!(
            "{label}: expected {n} ports on {}, found {ports}",
            imp.bridge()
        )
        .into());
    }

    ctx.phase(&format!("{label}: ADD/DEL with {n} pods"));
    ctx.settle()?;
    timed(ctx, imp, &mut samples.add_n, &mut samples.del_n)?;

    ctx.phase(&format!("{label}: detaching {n} pods"));
    let start = Instant::now();
    let errors = pool::run(
        pods.len(),
        ctx.opts.fill_workers,
        false,
        ctx.interrupt,
        |i| {
            let pod = &pods[i];
            pod::del(imp, pod)?;
            host::netns_del(pod.name())?;
            ctx.step();
            Ok(())
        },
    );
    samples.drain = start.elapsed();
    ctx.check()?;
    if let Some(first) = errors.first() {
        return Err(format!(
            "detaching {n} pods: {} failed; first: {first}",
            errors.len()
        )
        .into());
    }
    Ok(samples)
}

fn timed(
    ctx: &Ctx<'_>,
    imp: &Impl,
    add: &mut Vec<Duration>,
    del: &mut Vec<Duration>,
) -> BenchResult<()> {
    for _ in 0..ctx.opts.scale_runs {
        ctx.check()?;
        let (a, d) = pod::cycle(imp)?;
        add.push(a);
        del.push(d);
        ctx.step();
    }
    Ok(())
}
