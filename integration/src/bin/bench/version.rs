//! VERSION latency against the process start-up floor (`/bin/true`), and
//! what `CNI_TRACE=1` adds to a call of ours (off, its cost is one
//! environment lookup, inside the untraced VERSION figure).

use std::time::Duration;

use crate::ctx::Ctx;
use crate::error::BenchResult;
use crate::exec::Invocation;
use crate::impls::{Impl, Kind};

/// The start-up floor, started the same way as the plugins.
const TRUE: &str = "/bin/true";

/// Samples of one VERSION run.
#[derive(Debug)]
pub struct VersionSamples {
    /// `/bin/true`, same environment and stdin.
    pub floor: Vec<Duration>,
    /// `bridge` VERSION per implementation.
    pub version: Vec<Vec<Duration>>,
    /// Our `bridge` VERSION with `CNI_TRACE=1` (a record appended per call).
    pub traced: Vec<Duration>,
}

/// The VERSION call libcni makes (`GetVersionInfo`): `CNI_COMMAND=VERSION`,
/// dummy netns/ifname/path, `{"cniVersion":"1.0.0"}` on stdin.
fn version_call(program: impl Into<std::path::PathBuf>) -> Invocation {
    Invocation::new(program)
        .env("CNI_COMMAND", "VERSION")
        .env("CNI_CONTAINERID", "")
        .env("CNI_NETNS", "dummy")
        .env("CNI_IFNAME", "dummy")
        .env("CNI_ARGS", "")
        .env("CNI_PATH", "dummy")
        .stdin(r#"{"cniVersion":"1.0.0"}"#)
}

/// Times `opts.version_runs` VERSION calls of each implementation's bridge
/// and as many `/bin/true`, interleaved (the order rotates every round).
///
/// # Errors
///
/// When a call fails or Ctrl-C.
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<VersionSamples> {
    ctx.phase("VERSION and /bin/true");
    let floor_call = version_call(TRUE);
    let calls: Vec<Invocation> = ctx
        .impls
        .iter()
        .map(|imp: &Impl| version_call(imp.binary("bridge")))
        .collect();
    let traced_call = ctx
        .impls
        .iter()
        .find(|imp| imp.kind == Kind::Ours)
        .map(|imp| {
            version_call(imp.binary("bridge"))
                .env("CNI_TRACE", "1")
                .env("CNI_TRACE_DIR", ctx.work_dir.join("trace"))
        });
    let mut all: Vec<&Invocation> = vec![&floor_call];
    all.extend(calls.iter());
    all.extend(traced_call.iter());
    let mut samples: Vec<Vec<Duration>> = all.iter().map(|_| Vec::new()).collect();
    for i in 0..ctx.opts.version_runs {
        ctx.check()?;
        for k in 0..all.len() {
            let idx = (i + k) % all.len();
            let call = all[idx];
            let done = call.run_ok(&format!("VERSION of {}", call.program().display()))?;
            samples[idx].push(done.elapsed);
        }
        ctx.step();
    }
    let traced = match traced_call {
        Some(_) => samples.pop().unwrap_or_default(),
        None => Vec::new(),
    };
    let mut samples = samples.into_iter();
    let floor = samples.next().unwrap_or_default();
    Ok(VersionSamples {
        floor,
        version: samples.collect(),
        traced,
    })
}
