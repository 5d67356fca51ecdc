//! Peak resident memory of an ADD, per process.
//!
//! What is measured: each process's own high-water mark (`VmHWM` in
//! `/proc/<pid>/status`), read at the moment it exits. The ADD runs under
//! `ptrace` (`PTRACE_SEIZE` with `TRACEEXIT` and the fork/vfork/clone
//! options, so the plugin's children are traced too), and every
//! `PTRACE_EVENT_EXIT` stop, which comes before the kernel releases the
//! process's memory, is a reading. The tracer only stops and resumes the
//! processes; it never reads or writes their memory, so the figures are what
//! the processes touched themselves.
//!
//! This separates what an ADD is made of: the `bridge` process, its
//! `host-local` child, and the `iptables` helpers (Debian's
//! `xtables-nft-multi`), which neither implementation wrote. The issue's
//! figure, the peak RSS of an ADD (bridge + host-local), is the larger of the
//! two plugin processes. `ru_maxrss` from `wait4` (GNU time) cannot give it:
//! for a reaped process Linux reports the larger of its own peak and the
//! peaks of the children it reaped, so it would show the biggest helper.
//!
//! To trace a process from its first instruction without code running in the
//! forked child, the plugin is started as `sh -c 'read _ < FIFO; exec …'`:
//! the shell blocks reading a FIFO until the bench has seized it and written
//! a line, then execs the plugin in place (same pid, fresh memory).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, mkfifo};

use crate::ctx::Ctx;
use crate::error::BenchResult;
use crate::exec::Invocation;
use crate::impls::Impl;
use crate::pod::{self, Pod};

/// Peak RSS samples in KiB, per implementation (indexed like `Ctx::per_impl`).
#[derive(Debug)]
pub struct RssSamples {
    /// The `bridge` process of each ADD.
    pub bridge: Vec<Vec<u64>>,
    /// The `host-local` process each ADD started.
    pub host_local: Vec<Vec<u64>>,
    /// The largest other process (the `iptables` helpers) of each ADD.
    pub helpers: Vec<Vec<u64>>,
    /// `/bin/true` measured the same way.
    pub floor: u64,
}

/// One traced process: the name of the binary it ran last, its peak in KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPeak {
    /// File name of `/proc/<pid>/exe` at exit (`bridge`, `host-local`, …).
    pub name: String,
    /// `VmHWM` at exit, KiB.
    pub kib: u64,
}

/// The `VmHWM:` and `Tgid:` fields of a `/proc/<pid>/status` text.
fn parse_status(status: &str) -> Option<(i32, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
    };
    let tgid = field("Tgid:")?.parse().ok()?;
    let kib = field("VmHWM:")?.parse().ok()?;
    Some((tgid, kib))
}

/// Reads the process's peak and binary while it is stopped at exit.
fn read_peak(pid: Pid) -> Option<(i32, ProcessPeak)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (tgid, kib) = parse_status(&status)?;
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    Some((tgid, ProcessPeak { name, kib }))
}

/// Resumes a stopped tracee, delivering `signal` if it was a signal stop.
/// A tracee that vanished meanwhile (killed) is not an error.
fn resume(pid: Pid, signal: Option<Signal>) -> BenchResult<()> {
    match ptrace::cont(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(format!("ptrace cont {pid}: {e}").into()),
    }
}

/// Follows the traced tree rooted at `root` until every tracee is gone;
/// returns each process's peak (by thread-group id) and the root's status.
fn follow(root: Pid) -> BenchResult<(BTreeMap<i32, ProcessPeak>, Option<WaitStatus>)> {
    let mut peaks: BTreeMap<i32, ProcessPeak> = BTreeMap::new();
    let mut root_status = None;
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(status) => status,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => break,
            Err(e) => return Err(format!("waitpid: {e}").into()),
        };
        match status {
            WaitStatus::PtraceEvent(pid, _, event) if event == Event::PTRACE_EVENT_EXIT as i32 => {
                if let Some((tgid, peak)) = read_peak(pid) {
                    let entry = peaks.entry(tgid).or_insert_with(|| peak.clone());
                    entry.kib = entry.kib.max(peak.kib);
                    entry.name = peak.name;
                }
                resume(pid, None)?;
            }
            // Fork, vfork, clone, exec, and the initial stop of a new tracee.
            WaitStatus::PtraceEvent(pid, _, _) => resume(pid, None)?,
            WaitStatus::Stopped(pid, signal) => resume(pid, Some(signal))?,
            WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) if pid == root => {
                root_status = Some(status);
            }
            _ => {}
        }
    }
    Ok((peaks, root_status))
}

/// Runs `call` traced and returns the peak of every process it started
/// (itself included), in start order of their thread-group ids.
///
/// # Errors
///
/// When it cannot be started or traced, or exits non-zero.
#[expect(
    clippy::zombie_processes,
    reason = "`follow` reaps the child (and every tracee) with waitpid"
)]
pub fn traced_peaks(
    call: Invocation,
    work_dir: &Path,
    what: &str,
) -> BenchResult<Vec<ProcessPeak>> {
    let gate: PathBuf = work_dir.join("rss-gate");
    let _ = fs::remove_file(&gate);
    mkfifo(&gate, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|e| format!("mkfifo {}: {e}", gate.display()))?;
    // Read-write, so opening never waits for the shell: it may still be
    // inside its own execve when the bench seizes it (the spawn returns once
    // the vfork()ed child has left the parent's memory), and its exec stop
    // must then be resumed by `follow`, not wait for an open.
    let mut release = fs::OpenOptions::new().read(true).write(true).open(&gate)?;
    let program = call.program().to_path_buf();
    let gated = call.wrapped(
        Path::new("/bin/sh"),
        &[
            "-c".into(),
            r#"read _ < "$1"; shift; exec "$@""#.into(),
            "sh".into(),
            gate.clone().into_os_string(),
        ],
    );
    let mut child: Child = gated.spawn()?.into_child();
    let root = Pid::from_raw(i32::try_from(child.id()).map_err(|e| format!("pid: {e}"))?);
    let options = Options::PTRACE_O_TRACEEXIT
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_EXITKILL;
    if let Err(e) = ptrace::seize(root, options) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{what}: ptrace seize: {e}").into());
    }
    // The line releases the shell; `release` stays open until it has read it.
    release.write_all(b"go\n")?;
    let (peaks, root_status) = follow(root)?;
    drop(release);
    let _ = fs::remove_file(&gate);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_end(&mut stdout)?;
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_end(&mut stderr)?;
    }
    match root_status {
        Some(WaitStatus::Exited(_, 0)) => {}
        other => {
            return Err(format!(
                "{what} ({}) failed: {other:?}\nstdout: {}\nstderr: {}",
                program.display(),
                String::from_utf8_lossy(&stdout).trim(),
                String::from_utf8_lossy(&stderr).trim()
            )
            .into());
        }
    }
    // `follow` reaped the child: `Child` is dropped without waiting again.
    Ok(peaks.into_values().collect())
}

/// The ADD's figures from its processes: the `bridge` process, the
/// `host-local` one, and the largest of the rest (0 when there is none).
fn classify(peaks: &[ProcessPeak]) -> (Option<u64>, Option<u64>, u64) {
    let of = |name: &str| peaks.iter().filter(|p| p.name == name).map(|p| p.kib).max();
    let helpers = peaks
        .iter()
        .filter(|p| p.name != "bridge" && p.name != "host-local")
        .map(|p| p.kib)
        .max()
        .unwrap_or(0);
    (of("bridge"), of("host-local"), helpers)
}

/// The peaks of one traced ADD, KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPeaks {
    /// The `bridge` process.
    pub bridge: u64,
    /// The `host-local` process it started.
    pub host_local: u64,
    /// The largest other process (the `iptables` helpers), 0 without one.
    pub helpers: u64,
}

impl AddPeaks {
    /// The largest process of the ADD's tree.
    pub fn largest(&self) -> u64 {
        self.bridge.max(self.host_local).max(self.helpers)
    }
}

/// One traced ADD of `imp` into a fresh namespace, then an untimed DEL and
/// the namespace removed.
///
/// # Errors
///
/// When a plugin fails, tracing fails, or the ADD had no `bridge` or no
/// `host-local` process.
pub fn traced_add(ctx: &Ctx<'_>, imp: &Impl) -> BenchResult<AddPeaks> {
    let pod = Pod::create(imp)?;
    let what = format!("{} ADD traced", imp.kind.label());
    let peaks = traced_peaks(pod::call(imp, "ADD", &pod), ctx.work_dir, &what)?;
    let (bridge, host_local, helpers) = classify(&peaks);
    let missing = |name: &str| format!("{what}: no {name} process among {peaks:?}");
    let sample = AddPeaks {
        bridge: bridge.ok_or_else(|| missing("bridge"))?,
        host_local: host_local.ok_or_else(|| missing("host-local"))?,
        helpers,
    };
    pod::del(imp, &pod)?;
    pod.remove()?;
    Ok(sample)
}

/// `opts.rss_runs` traced ADDs per implementation, interleaved.
///
/// # Errors
///
/// When a plugin fails, tracing fails, or Ctrl-C.
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<RssSamples> {
    ctx.phase("peak RSS");
    let floor_peaks = traced_peaks(
        Invocation::new("/bin/true"),
        ctx.work_dir,
        "/bin/true traced",
    )?;
    let floor = floor_peaks.iter().map(|p| p.kib).max().unwrap_or(0);
    let mut bridge = ctx.per_impl();
    let mut host_local = ctx.per_impl();
    let mut helpers = ctx.per_impl();
    for i in 0..ctx.opts.rss_runs {
        for (idx, imp) in ctx.rotation(i) {
            ctx.check()?;
            let sample = traced_add(ctx, imp)?;
            bridge[idx].push(sample.bridge);
            host_local[idx].push(sample.host_local);
            helpers[idx].push(sample.helpers);
        }
        ctx.step();
    }
    Ok(RssSamples {
        bridge,
        host_local,
        helpers,
        floor,
    })
}

impl RssSamples {
    /// The largest process of any of the ADDs of implementation `idx`
    /// (bridge, host-local or a helper), KiB.
    pub fn largest(&self, idx: usize) -> Option<u64> {
        [&self.bridge, &self.host_local, &self.helpers]
            .iter()
            .filter_map(|per| per.get(idx)?.iter().max().copied())
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read() {
        let status = "Name:\tbridge\nTgid:\t4242\nPid:\t4243\nVmPeak:\t  204008 kB\nVmHWM:\t    2444 kB\nVmRSS:\t 2444 kB\n";
        assert_eq!(parse_status(status), Some((4242, 2444)));
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn processes_are_classified_by_binary() {
        let p = |name: &str, kib| ProcessPeak {
            name: name.into(),
            kib,
        };
        let peaks = [
            p("bridge", 2000),
            p("host-local", 1400),
            p("xtables-nft-multi", 2400),
            p("xtables-nft-multi", 2300),
        ];
        assert_eq!(classify(&peaks), (Some(2000), Some(1400), 2400));
        assert_eq!(classify(&[p("bridge", 5)]), (Some(5), None, 0));
    }

    #[test]
    fn largest_process_of_an_add() {
        let add = AddPeaks {
            bridge: 2000,
            host_local: 1400,
            helpers: 0,
        };
        assert_eq!(add.largest(), 2000);
        let samples = RssSamples {
            bridge: vec![vec![2000, 2100], vec![30000]],
            host_local: vec![vec![1400, 1300], vec![25000]],
            helpers: vec![vec![2400, 2300], vec![0]],
            floor: 100,
        };
        assert_eq!(samples.largest(0), Some(2400));
        assert_eq!(samples.largest(1), Some(30000));
        assert_eq!(samples.largest(2), None);
    }

    #[test]
    fn traced_true_reports_its_own_peak() {
        // Tracing one's own child needs no privilege.
        let dir = tempfile::tempdir().unwrap();
        let peaks = traced_peaks(Invocation::new("/bin/true"), dir.path(), "true").unwrap();
        assert_eq!(peaks.len(), 1, "{peaks:?}");
        assert_eq!(peaks[0].name, "true");
        assert!(peaks[0].kib > 100, "{peaks:?}");
    }
}
