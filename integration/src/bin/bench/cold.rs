//! Cold ADD and DEL: a fresh namespace per run, nothing else on the bridge.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::error::BenchResult;
use crate::pod;

/// ADD and DEL latencies per implementation.
#[derive(Debug)]
pub struct ColdSamples {
    /// ADD latencies, one vector per implementation.
    pub add: Vec<Vec<Duration>>,
    /// DEL latencies, one vector per implementation.
    pub del: Vec<Vec<Duration>>,
}

/// One untimed cycle per implementation: creates the bridges and masquerade
/// base state, and pulls the binaries into the page cache.
///
/// # Errors
///
/// When a plugin fails.
pub fn warm_up(ctx: &Ctx<'_>) -> BenchResult<()> {
    ctx.phase("warm-up (creates the bridges)");
    for imp in ctx.impls {
        ctx.check()?;
        pod::cycle(imp)?;
        ctx.step();
    }
    Ok(())
}

/// `opts.runs` cold cycles per implementation, interleaved: each round runs
/// every implementation once, the order rotating every round.
///
/// # Errors
///
/// When a plugin fails or Ctrl-C.
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<ColdSamples> {
    ctx.phase("cold ADD/DEL");
    let mut add = ctx.per_impl();
    let mut del = ctx.per_impl();
    for i in 0..ctx.opts.runs {
        for (idx, imp) in ctx.rotation(i) {
            ctx.check()?;
            let (a, d) = pod::cycle(imp)?;
            add[idx].push(a);
            del[idx].push(d);
        }
        ctx.step();
    }
    Ok(ColdSamples { add, del })
}
