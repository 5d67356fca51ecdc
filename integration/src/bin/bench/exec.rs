//! Starting a process exactly as a runtime starts a plugin, and timing it.
//!
//! The test kit's `PluginCall` polls for the child's exit every 5 ms, which is
//! fine for tests and far too coarse for latencies of a few milliseconds. This
//! runner blocks in `wait` instead, so a measurement is spawn → exit → output
//! collected, with nothing else in between.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;

use crate::error::BenchResult;

/// `PATH` given to every child: the one CRI-O and containerd get from
/// systemd, rather than the shell's (which may list extra directories that
/// every `iptables` lookup would then try first).
const PATH: &str = integration::plugin::DEFAULT_PATH;

/// One process to start: program, arguments, a cleared environment holding
/// only the variables given (plus `PATH`), and bytes for its stdin.
#[derive(Debug, Clone)]
pub struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    stdin: Vec<u8>,
}

impl Invocation {
    /// `program` with only `PATH` ([`PATH`]) in its environment and empty
    /// stdin.
    pub fn new(program: impl Into<PathBuf>) -> Invocation {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            env: vec![("PATH".to_string(), PATH.into())],
            stdin: Vec::new(),
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Invocation {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Invocation {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Sets the bytes written to stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Invocation {
        self.stdin = bytes.into();
        self
    }

    /// The same call run under `wrapper wrapper_args...` (for example
    /// `/usr/bin/time -f %M`), with the same environment and stdin.
    pub fn wrapped(self, wrapper: &Path, wrapper_args: &[OsString]) -> Invocation {
        let mut args = wrapper_args.to_vec();
        args.push(self.program.into_os_string());
        args.extend(self.args);
        Invocation {
            program: wrapper.to_path_buf(),
            args,
            env: self.env,
            stdin: self.stdin,
        }
    }

    /// The program started.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Starts the process and writes stdin (then closes it). The clock starts
    /// just before the spawn.
    ///
    /// # Errors
    ///
    /// When the program cannot be started or stdin cannot be written (a child
    /// that exits without reading stdin is fine).
    pub fn spawn(&self) -> io::Result<Running> {
        let started = Instant::now();
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            // The config is far below the pipe buffer, so this never blocks.
            match pipe.write_all(&self.stdin) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
                _ => {}
            }
        }
        Ok(Running { child, started })
    }

    /// Starts the process and waits for it.
    ///
    /// # Errors
    ///
    /// As [`Invocation::spawn`], or when waiting fails.
    pub fn run(&self) -> io::Result<Finished> {
        self.spawn()?.finish()
    }

    /// Runs the process and requires exit status 0.
    ///
    /// # Errors
    ///
    /// When it cannot run or fails; the message names `what` and shows both
    /// output streams.
    pub fn run_ok(&self, what: &str) -> BenchResult<Finished> {
        let done = self
            .run()
            .map_err(|e| format!("{what}: cannot run {}: {e}", self.program.display()))?;
        done.require_success(what)
    }
}

/// A started process.
#[derive(Debug)]
pub struct Running {
    child: Child,
    started: Instant,
}

impl Running {
    /// The child, for a caller that reaps it itself (the peak-memory tracer);
    /// its stdout and stderr pipes are still attached.
    pub fn into_child(self) -> Child {
        self.child
    }

    /// Waits for the exit and collects the output.
    ///
    /// # Errors
    ///
    /// When waiting or reading the pipes fails.
    pub fn finish(self) -> io::Result<Finished> {
        let output = self.child.wait_with_output()?;
        let ended = Instant::now();
        Ok(Finished {
            elapsed: ended.duration_since(self.started),
            ended,
            output,
        })
    }
}

/// A process that has exited.
#[derive(Debug)]
pub struct Finished {
    /// From just before the spawn to the exit being reaped and all output read.
    pub elapsed: Duration,
    /// When the exit was seen.
    pub ended: Instant,
    /// Status, stdout and stderr.
    pub output: Output,
}

impl Finished {
    /// `self` if the exit status is 0.
    ///
    /// # Errors
    ///
    /// Otherwise, with `what`, the status and both streams in the message.
    pub fn require_success(self, what: &str) -> BenchResult<Finished> {
        if self.output.status.success() {
            return Ok(self);
        }
        Err(format!(
            "{what} failed ({})\nstdout: {}\nstderr: {}",
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout).trim(),
            String::from_utf8_lossy(&self.output.stderr).trim()
        )
        .into())
    }
}

/// A `timeval` as a duration (negative parts count as zero).
fn timeval(tv: TimeVal) -> Duration {
    let secs = u64::try_from(tv.tv_sec()).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec()).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// CPU time (user + system) of every child this process has reaped so far,
/// and of the descendants those children reaped themselves
/// (`getrusage(RUSAGE_CHILDREN)`). The difference of two readings taken just
/// before a spawn and just after its reap is the CPU time of that process
/// tree, as long as no other child is reaped in between.
///
/// # Errors
///
/// When `getrusage` fails.
pub fn children_cpu() -> BenchResult<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    Ok(timeval(usage.user_time()) + timeval(usage.system_time()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timevals_become_durations() {
        assert_eq!(
            timeval(TimeVal::new(2, 500_000)),
            Duration::from_millis(2500)
        );
        assert_eq!(timeval(TimeVal::new(-1, 0)), Duration::ZERO);
    }

    #[test]
    fn children_cpu_never_decreases() {
        // No child is spawned here: the peak-RSS test's `waitpid(-1)` could
        // reap it from another thread.
        let first = children_cpu().unwrap();
        assert!(children_cpu().unwrap() >= first);
    }
}
