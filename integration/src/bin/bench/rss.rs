//! Peak resident memory of an ADD.
//!
//! What is measured: `ru_maxrss` from `wait4` on the `bridge` process, taken
//! by GNU time (`/usr/bin/time -f %M`, which forks, execs and `wait4`s).
//! Linux reports for a reaped process the larger of its own peak and the
//! peaks of the children it reaped, so this is the peak of the biggest
//! process of the ADD: `bridge`, its `host-local` child, and the `iptables`
//! helpers it starts. `host-local` is also measured alone (an IPAM ADD with
//! the same config), and `/bin/true` gives the floor of the method.
//!
//! Why not `getrusage(RUSAGE_CHILDREN)` in the bench itself: a child started
//! with `vfork` (what `std::process::Command` and Go's `os/exec` use) is
//! charged the parent's high-water mark when it execs, so every child of the
//! bench would report at least the bench's own peak. GNU time is small and
//! uses a real `fork`, so its children start from about 1 MB.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::ctx::Ctx;
use crate::error::BenchResult;
use crate::exec::Invocation;
use crate::pod::{self, Pod};

/// GNU time.
pub const GNU_TIME: &str = "/usr/bin/time";

/// Peak RSS samples in KiB.
#[derive(Debug)]
pub struct RssSamples {
    /// Bridge ADD (whole process tree's biggest process), per implementation.
    pub add: Vec<Vec<u64>>,
    /// host-local ADD alone, per implementation.
    pub host_local: Vec<Vec<u64>>,
    /// `/bin/true` through the same wrapper.
    pub floor: u64,
}

/// Runs `call` under GNU time and returns its `ru_maxrss` in KiB.
fn peak_kib(call: Invocation, out: &Path, what: &str) -> BenchResult<u64> {
    let args: Vec<OsString> = vec!["-f".into(), "%M".into(), "-o".into(), out.into()];
    call.wrapped(Path::new(GNU_TIME), &args).run_ok(what)?;
    let text = std::fs::read_to_string(out)?;
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    last.trim()
        .parse()
        .map_err(|e| format!("{what}: GNU time wrote {text:?}: {e}").into())
}

/// `opts.rss_runs` ADDs per implementation under GNU time, interleaved;
/// `None` when GNU time is not installed.
///
/// # Errors
///
/// When a plugin fails or Ctrl-C.
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<Option<RssSamples>> {
    ctx.phase("peak RSS");
    if !Path::new(GNU_TIME).is_file() {
        ctx.note("peak RSS skipped: /usr/bin/time missing (apt-get install time)");
        return Ok(None);
    }
    let out: PathBuf = ctx.work_dir.join("maxrss");
    let floor = peak_kib(Invocation::new("/bin/true"), &out, "/bin/true under time")?;
    let mut add = ctx.per_impl();
    let mut host_local = ctx.per_impl();
    for i in 0..ctx.opts.rss_runs {
        for (idx, imp) in ctx.rotation(i) {
            ctx.check()?;
            let pod = Pod::create(imp)?;
            let what = format!("{} ADD under time", imp.kind.label());
            add[idx].push(peak_kib(pod::call(imp, "ADD", &pod), &out, &what)?);
            pod::del(imp, &pod)?;
            let what = format!("{} host-local ADD under time", imp.kind.label());
            let ipam_add = pod::plugin_call(imp, "host-local", "ADD", &pod);
            host_local[idx].push(peak_kib(ipam_add, &out, &what)?);
            pod::plugin_call(imp, "host-local", "DEL", &pod)
                .run_ok(&format!("{} host-local DEL", imp.kind.label()))?;
            pod.remove()?;
        }
        ctx.step();
    }
    Ok(Some(RssSamples {
        add,
        host_local,
        floor,
    }))
}
