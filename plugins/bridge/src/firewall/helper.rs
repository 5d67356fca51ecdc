//! Running a helper program (`iptables-restore`, `nft`) with a batch on its
//! stdin, as the masquerade and macspoofchk modules both do.

use std::io::{self, Write as _};
use std::process::{Child, Command, Output, Stdio};

/// Why a helper could not be run to completion.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started (e.g. not installed).
    Spawn(io::Error),
    /// Feeding its stdin or collecting its output failed.
    Io(io::Error),
}

/// A helper started before its input is known, blocked reading its stdin.
/// Dropped without [`Started::finish`], it is killed and reaped: it has read
/// nothing, so it has changed nothing.
#[derive(Debug)]
pub struct Started {
    child: Option<Child>,
}

impl Started {
    /// Starts `program args…` with stdin piped, stdout discarded and stderr
    /// captured.
    ///
    /// # Errors
    /// When it cannot be started (e.g. not installed).
    pub fn spawn(program: &str, args: &[&str]) -> io::Result<Started> {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(Started { child: Some(child) })
    }

    /// Writes `input` to its stdin, closes it and waits for the helper. A
    /// helper that exits before reading all of its input is not an error
    /// here: its exit status and stderr say why.
    ///
    /// # Errors
    /// [`RunError::Io`] when it cannot be fed or waited for.
    pub fn finish(mut self, input: &[u8]) -> Result<Output, RunError> {
        let Some(mut child) = self.child.take() else {
            return Err(RunError::Io(io::Error::other("helper already finished")));
        };
        if let Some(mut stdin) = child.stdin.take()
            && let Err(e) = stdin.write_all(input)
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Io(e));
        }
        child.wait_with_output().map_err(RunError::Io)
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

/// Runs `program args…` with `input` on stdin, stdout discarded and stderr
/// captured, and waits for it (see [`Started::finish`]).
///
/// # Errors
/// [`RunError`] when it cannot be started, fed or waited for.
pub fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) -> Result<Output, RunError> {
    Started::spawn(program, args)
        .map_err(RunError::Spawn)?
        .finish(input)
}
