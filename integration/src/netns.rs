//! A named network namespace that lives as long as a test.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Output;

use crate::cmd;
use crate::names::unique_name;

/// A named network namespace created with `ip netns add`, deleted on `Drop`
/// (also when the test panics).
///
/// Its name comes from [`unique_name`], so parallel tests each get their own.
/// A fresh namespace has only `lo`, and `lo` is DOWN.
#[derive(Debug)]
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Creates a namespace named `<prefix>-<pid>-<counter>-<xyz>`.
    ///
    /// # Panics
    ///
    /// When `ip netns add` fails (for example without root).
    pub fn new(prefix: &str) -> TestNetns {
        let name = unique_name(prefix);
        cmd::run_ok("ip", &["netns", "add", name.as_str()]);
        TestNetns { name }
    }

    /// The namespace's name, as `ip netns` and `ip -n` know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, `/run/netns/<name>`: the value a runtime
    /// passes as `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// [`TestNetns::path`] as a string.
    pub fn path_str(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    /// Runs `args[0] args[1..]` inside the namespace (`ip netns exec <name> ...`)
    /// and returns its output whatever the exit status.
    ///
    /// # Panics
    ///
    /// When `ip` cannot be started.
    pub fn exec<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        cmd::run("ip", &self.exec_args(args))
    }

    /// Like [`TestNetns::exec`] but requires exit status 0 and returns stdout.
    ///
    /// # Panics
    ///
    /// When the command cannot be started or fails; the message shows its output.
    pub fn exec_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        cmd::run_ok("ip", &self.exec_args(args))
    }

    /// Runs `ip -n <name> args...` and requires success; returns stdout.
    ///
    /// # Panics
    ///
    /// When `ip` fails.
    pub fn ip(&self, args: &[&str]) -> String {
        cmd::ip_ok(Some(&self.name), args)
    }

    /// Pings `dst` from the namespace (`ping -c1 -W1 <dst>`) up to `attempts`
    /// times, as neighbour discovery and IPv6 DAD of a fresh address may take
    /// a moment; whether one try succeeded.
    ///
    /// # Panics
    ///
    /// When `ip` cannot be started.
    pub fn ping(&self, dst: &str, attempts: u32) -> bool {
        (0..attempts).any(|_| self.exec(&["ping", "-c1", "-W1", dst]).status.success())
    }

    fn exec_args<S: AsRef<OsStr>>(&self, args: &[S]) -> Vec<std::ffi::OsString> {
        let mut all: Vec<std::ffi::OsString> =
            vec!["netns".into(), "exec".into(), (&self.name).into()];
        all.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        all
    }
}

impl Drop for TestNetns {
    /// Deletes the namespace; a failure is reported on stderr, never as a panic
    /// (a panic while unwinding would abort the test binary).
    fn drop(&mut self) {
        let out = cmd::try_run("ip", &["netns", "del", self.name.as_str()]);
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: cannot run `ip netns del {}`: {e}", self.name),
        }
    }
}
