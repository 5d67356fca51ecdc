//! Running helper commands (`ip`, `iptables`, ...) from tests.
//!
//! These are for setting up and observing test state; the plugins themselves
//! never shell out.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

/// Runs `program args...` and returns its output, whatever its exit status.
///
/// # Errors
///
/// When the program cannot be started. For use in `Drop`, where panicking is
/// not an option.
pub fn try_run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> io::Result<Output> {
    Command::new(program).args(args).output()
}

/// Runs `program args...` and returns its output, whatever its exit status.
///
/// # Panics
///
/// When the program cannot be started (for example it is not installed).
pub fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Output {
    try_run(program, args).unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs `program args...`, requires exit status 0 and returns stdout as text.
///
/// # Panics
///
/// When the program cannot be started or exits non-zero; the message shows
/// the command line, the status and both output streams.
pub fn run_ok<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let out = run(program, args);
    if !out.status.success() {
        panic!(
            "`{}` failed with {}\nstdout: {}\nstderr: {}",
            command_line(program, args),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `program args...` with `input` on stdin, requires exit status 0 and
/// returns stdout as text.
///
/// # Panics
///
/// When the program cannot be run or exits non-zero.
pub fn run_with_stdin<S: AsRef<OsStr>>(program: &str, args: &[S], input: &[u8]) -> String {
    let line = command_line(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .unwrap_or_else(|e| panic!("cannot feed {line}: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {line}: {e}"));
    assert!(out.status.success(), "`{line}` failed with {}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip [-n <netns>] args...` and returns its output.
///
/// `netns` is a netns *name* (as under `/run/netns`); `None` is the test's own
/// namespace.
///
/// # Panics
///
/// When `ip` cannot be started.
pub fn ip(netns: Option<&str>, args: &[&str]) -> Output {
    run("ip", &ip_args(netns, args))
}

/// Like [`ip`] but requires success and returns stdout.
///
/// # Panics
///
/// When `ip` cannot be started or exits non-zero.
pub fn ip_ok(netns: Option<&str>, args: &[&str]) -> String {
    run_ok("ip", &ip_args(netns, args))
}

fn ip_args<'a>(netns: Option<&'a str>, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = Vec::with_capacity(args.len() + 2);
    if let Some(ns) = netns {
        all.extend(["-n", ns]);
    }
    all.extend_from_slice(args);
    all
}

/// Formats a command line for messages.
pub fn command_line<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut line = program.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}
