//! Running a helper program (`iptables-restore`, `nft`) with a batch on its
//! stdin, as the masquerade and macspoofchk modules both do.

use std::io::{self, Write as _};
use std::process::{Command, Output, Stdio};

/// Why a helper could not be run to completion.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started (e.g. not installed).
    Spawn(io::Error),
    /// Feeding its stdin or collecting its output failed.
    Io(io::Error),
}

/// Runs `program args…` with `input` on stdin, stdout discarded and stderr
/// captured, and waits for it. A helper that exits before reading all of its
/// input is not an error here: its exit status and stderr say why.
///
/// # Errors
/// [`RunError`] when it cannot be started, fed or waited for.
pub fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) -> Result<Output, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunError::Spawn)?;
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
