//! Running a helper program (`iptables-restore`, `iptables`, `nft`): with a
//! batch on its stdin or none, stdout captured, stderr captured for the
//! error message, and its failures as [`FirewallError`]s that name the
//! command and the family it served.

use super::{Family, FirewallError, InFamily};
use std::io::{self, Write as _};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// One command line of a helper, as its errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Helper {
    /// The binary, looked up in `PATH`.
    pub program: &'static str,
    /// Its arguments.
    pub args: &'static [&'static str],
    /// The family it serves, if any.
    pub family: Option<Family>,
    /// How errors name the command (e.g. `iptables -t nat -S`).
    pub label: &'static str,
}

impl Helper {
    /// Runs the command with `input` on stdin and waits for it.
    ///
    /// # Errors
    /// [`FirewallError`] when it is missing, cannot be run, or fails.
    pub fn run(self, input: &[u8]) -> Result<String, FirewallError> {
        self.start()?.finish(input)
    }

    /// Runs the command with nothing on stdin and returns its stdout.
    ///
    /// # Errors
    /// As [`Helper::run`].
    pub fn read(self) -> Result<String, FirewallError> {
        let output = Command::new(self.program)
            .args(self.args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        self.outcome(output)
    }

    /// Starts the command, blocked reading its stdin until
    /// [`Started::finish`] feeds it.
    ///
    /// # Errors
    /// [`FirewallError::NotFound`] or [`FirewallError::Io`].
    pub fn start(self) -> Result<Started, FirewallError> {
        let child = Command::new(self.program)
            .args(self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        Ok(Started {
            helper: self,
            child: Some(child),
        })
    }

    fn spawn_error(self, source: io::Error) -> FirewallError {
        if source.kind() == io::ErrorKind::NotFound {
            FirewallError::NotFound {
                program: self.program,
                family: InFamily(self.family),
            }
        } else {
            self.io_error(source)
        }
    }

    fn io_error(self, source: io::Error) -> FirewallError {
        FirewallError::Io {
            command: self.label.to_owned(),
            family: InFamily(self.family),
            source,
        }
    }

    /// `Ok(stdout)` for a successful exit, else [`FirewallError::Failed`].
    fn outcome(self, output: Output) -> Result<String, FirewallError> {
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(FirewallError::Failed {
            command: self.label.to_owned(),
            family: InFamily(self.family),
            status: describe_status(output.status),
            stderr: one_line(&String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// A helper started before its input is known, blocked reading its stdin.
/// Dropped without [`Started::finish`], it is killed and reaped: it has read
/// nothing, so it has changed nothing.
#[derive(Debug)]
pub struct Started {
    helper: Helper,
    child: Option<Child>,
}

impl Started {
    /// Writes `input` to its stdin, closes it and waits for the helper. A
    /// helper that exits before reading all of its input is not an error
    /// here: its exit status and stderr say why.
    ///
    /// # Errors
    /// [`FirewallError::Io`] when it cannot be fed or waited for,
    /// [`FirewallError::Failed`] when it fails.
    pub fn finish(mut self, input: &[u8]) -> Result<String, FirewallError> {
        let helper = self.helper;
        let Some(mut child) = self.child.take() else {
            return Err(helper.io_error(io::Error::other("helper already finished")));
        };
        if let Some(mut stdin) = child.stdin.take()
            && let Err(e) = stdin.write_all(input)
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(helper.io_error(e));
        }
        let output = child.wait_with_output().map_err(|e| helper.io_error(e))?;
        helper.outcome(output)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Describes how a process ended: `exit status 1`, or the signal.
fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

/// Joins the non-empty lines of a tool's stderr with spaces, for a one-line
/// message.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an executable named `program` is in `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: Helper = Helper {
        program: "sh",
        args: &["-c", "cat; echo 'bad  \n  line' >&2; exit 3"],
        family: Some(Family::V6),
        label: "sh -c",
    };

    #[test]
    fn a_failure_names_command_family_status_and_stderr() {
        let err = SH.run(b"x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sh -c (IPv6) failed: exit status 3: bad line"
        );
    }

    #[test]
    fn stdout_comes_back_on_success() {
        let cat = Helper {
            program: "cat",
            args: &[],
            family: None,
            label: "cat",
        };
        assert_eq!(cat.run(b"batch\n").unwrap(), "batch\n");
        assert_eq!(cat.read().unwrap(), "");
    }

    #[test]
    fn a_missing_binary_is_not_found() {
        // A path, so that no unreadable directory on PATH turns the lookup's
        // ENOENT into EACCES.
        let missing = Helper {
            program: "/nonexistent/no-such-helper-cni-rs",
            args: &[],
            family: None,
            label: "no-such-helper-cni-rs",
        };
        let err = missing.run(b"").unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(
            err.to_string(),
            "/nonexistent/no-such-helper-cni-rs not found in PATH"
        );
        assert!(!on_path("no-such-helper-cni-rs"));
        assert!(on_path("sh"));
    }

    #[test]
    fn stderr_becomes_one_line() {
        let nft = "iptables-restore v1.8.9 (nf_tables): \nline 3: CHAIN_DEL failed\n";
        assert_eq!(
            one_line(nft),
            "iptables-restore v1.8.9 (nf_tables): line 3: CHAIN_DEL failed"
        );
    }
}
