//! IPAM delegation: find the IPAM plugin in `CNI_PATH`, exec it with the
//! caller's environment (only `CNI_COMMAND` replaced) and the caller's exact
//! stdin, and read its result in any version. A delegate's error object is
//! passed on unchanged, code included.

use crate::env::CniEnv;
use crate::error::{CniError, ErrorCode};
use crate::result::{self, Result as CniResult};
use crate::skel::Command;
use crate::version::CniVersion;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

/// How often an exec failing with "text file busy" is tried in all.
const TEXT_BUSY_ATTEMPTS: u32 = 6;

/// Finds `plugin_type` in `dirs`, in order: the first regular file (symlinks
/// followed) named `plugin_type` wins.
///
/// # Errors
/// Code 999 with libcni's messages: an empty name, a name with `/`, or no
/// such file in any directory.
pub fn find_plugin(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin_type.is_empty() {
        return Err(CniError::internal("no plugin name provided"));
    }
    if plugin_type.contains('/') {
        return Err(CniError::internal(format!(
            "invalid plugin name: {plugin_type}"
        )));
    }
    dirs.iter()
        .map(|dir| dir.join(plugin_type))
        .find(|candidate| candidate.metadata().is_ok_and(|meta| meta.is_file()))
        .ok_or_else(|| {
            let listed: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            CniError::internal(format!(
                "failed to find plugin \"{plugin_type}\" in path [{}]",
                listed.join(" ")
            ))
        })
}

/// Runs the IPAM plugin's ADD and returns its result upgraded to the current
/// shape. A result without `cniVersion` is read as `version`.
///
/// # Errors
/// The delegate's own error, or code 999 if it cannot be found or run, or
/// its output cannot be read.
pub fn exec_add(
    env: &CniEnv,
    plugin_type: &str,
    stdin: &[u8],
    version: CniVersion,
) -> Result<CniResult, CniError> {
    let stdout = exec(env, Command::Add, plugin_type, stdin)?;
    let (result, _) = result::decode_bytes(&stdout, version).map_err(|err| {
        CniError::internal(format!(
            "failed to parse result of IPAM plugin \"{plugin_type}\": {err}"
        ))
    })?;
    Ok(result)
}

/// Runs the IPAM plugin's DEL.
///
/// # Errors
/// As [`exec_add`].
pub fn exec_del(env: &CniEnv, plugin_type: &str, stdin: &[u8]) -> Result<(), CniError> {
    exec(env, Command::Del, plugin_type, stdin).map(drop)
}

/// Runs the IPAM plugin's CHECK.
///
/// # Errors
/// As [`exec_add`].
pub fn exec_check(env: &CniEnv, plugin_type: &str, stdin: &[u8]) -> Result<(), CniError> {
    exec(env, Command::Check, plugin_type, stdin).map(drop)
}

/// Runs the IPAM plugin's STATUS.
///
/// # Errors
/// As [`exec_add`].
pub fn exec_status(env: &CniEnv, plugin_type: &str, stdin: &[u8]) -> Result<(), CniError> {
    exec(env, Command::Status, plugin_type, stdin).map(drop)
}

/// Runs the IPAM plugin's GC.
///
/// # Errors
/// As [`exec_add`].
pub fn exec_gc(env: &CniEnv, plugin_type: &str, stdin: &[u8]) -> Result<(), CniError> {
    exec(env, Command::Gc, plugin_type, stdin).map(drop)
}

/// Execs the plugin for `command` and returns its stdout on success. Its
/// stderr is copied to ours.
///
/// # Errors
/// As [`exec_add`].
pub fn exec(
    env: &CniEnv,
    command: Command,
    plugin_type: &str,
    stdin: &[u8],
) -> Result<Vec<u8>, CniError> {
    let binary = find_plugin(plugin_type, &env.path_dirs())?;
    let output = spawn_with_retry(env, command, &binary, stdin).map_err(|err| {
        CniError::internal(format!("failed to exec plugin {}: {err}", binary.display()))
    })?;
    if !output.stderr.is_empty() {
        let _ = io::stderr().write_all(&output.stderr);
    }
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(delegate_error(&output))
}

/// The error a failed delegate reported, with libcni's fallbacks.
fn delegate_error(output: &Output) -> CniError {
    if output.stdout.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return if stderr.is_empty() {
            CniError::internal(format!(
                "netplugin failed with no error message: {}",
                output.status
            ))
        } else {
            CniError::internal(format!("netplugin failed: \"{stderr}\""))
        };
    }
    CniError::from_json(&output.stdout).unwrap_or_else(|err| {
        CniError::internal(format!(
            "netplugin failed but error parsing its diagnostic message \"{}\": {err}",
            String::from_utf8_lossy(&output.stdout)
        ))
    })
}

/// Spawns the delegate, retrying while the binary is busy being written.
fn spawn_with_retry(
    env: &CniEnv,
    command: Command,
    binary: &Path,
    stdin: &[u8],
) -> io::Result<Output> {
    let mut attempt = 1;
    loop {
        match spawn(env, command, binary, stdin) {
            Err(err)
                if err.raw_os_error() == Some(libc_etxtbsy()) && attempt < TEXT_BUSY_ATTEMPTS =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// `ETXTBSY` on Linux.
const fn libc_etxtbsy() -> i32 {
    26
}

/// One exec: the caller's whole environment with `CNI_COMMAND` replaced,
/// stdin written from a helper thread so a large config cannot deadlock.
fn spawn(env: &CniEnv, command: Command, binary: &Path, stdin: &[u8]) -> io::Result<Output> {
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .envs(
            env.vars
                .iter()
                .filter(|(key, _)| key != "CNI_COMMAND")
                .map(|(k, v)| (k, v)),
        )
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let input = child.stdin.take();
    std::thread::scope(|scope| {
        if let Some(mut pipe) = input {
            // A delegate that exits without reading stdin closes the pipe;
            // its exit status tells what happened.
            scope.spawn(move || {
                let _ = pipe.write_all(stdin);
            });
        }
        child.wait_with_output()
    })
}

/// Whether `err` says the IPAM plugin was not found in `CNI_PATH`.
pub fn is_not_found(err: &CniError) -> bool {
    err.code == ErrorCode::Internal && err.msg.starts_with("failed to find plugin")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn env_for(dirs: &[&Path]) -> CniEnv {
        let path = std::env::join_paths(dirs).unwrap();
        let os = std::ffi::OsString::from;
        CniEnv::from_vars([
            (os("CNI_COMMAND"), os("ADD")),
            (os("CNI_CONTAINERID"), os("c1")),
            (os("CNI_PATH"), path),
            (os("OTHER"), os("kept")),
        ])
    }

    #[test]
    fn lookup_follows_path_order_and_reports_libcni_messages() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        script(second.path(), "ipam", "true");
        std::fs::create_dir(first.path().join("ipam")).unwrap(); // a directory is skipped
        let dirs = vec![first.path().to_path_buf(), second.path().to_path_buf()];
        assert_eq!(
            find_plugin("ipam", &dirs).unwrap(),
            second.path().join("ipam")
        );
        script(first.path(), "other", "true");
        assert_eq!(
            find_plugin("other", &dirs).unwrap(),
            first.path().join("other")
        );
        assert_eq!(
            find_plugin("", &dirs).unwrap_err().msg,
            "no plugin name provided"
        );
        assert_eq!(
            find_plugin("../x", &dirs).unwrap_err().msg,
            "invalid plugin name: ../x"
        );
        let err = find_plugin("missing", &dirs).unwrap_err();
        assert_eq!(err.code, ErrorCode::Internal);
        assert_eq!(
            err.msg,
            format!(
                "failed to find plugin \"missing\" in path [{} {}]",
                first.path().display(),
                second.path().display()
            )
        );
        assert!(is_not_found(&err));
    }

    #[test]
    fn delegate_sees_same_env_and_stdin_with_command_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("record");
        script(
            dir.path(),
            "ipam",
            &format!(
                "cat > {r}.stdin; echo \"$CNI_COMMAND $CNI_CONTAINERID $OTHER\" > {r}.env\n\
                 echo '{{\"ips\":[{{\"version\":\"4\",\"address\":\"10.0.0.2/24\",\"gateway\":\"10.0.0.1\"}}]}}'",
                r = record.display()
            ),
        );
        let env = env_for(&[dir.path()]);
        let result = exec_add(&env, "ipam", b"{\"name\":\"n\"}", CniVersion::V0_3_1).unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.0.0.2/24");
        assert_eq!(
            std::fs::read(record.with_extension("stdin")).unwrap(),
            b"{\"name\":\"n\"}"
        );
        assert_eq!(
            std::fs::read_to_string(record.with_extension("env")).unwrap(),
            "ADD c1 kept\n"
        );
        exec_del(&env, "ipam", b"{}").unwrap();
        assert_eq!(
            std::fs::read_to_string(record.with_extension("env")).unwrap(),
            "DEL c1 kept\n"
        );
    }

    #[test]
    fn delegate_errors_keep_their_code() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "fails",
            "echo '{\"code\":7,\"msg\":\"invalid range set 0\",\"details\":\"d\"}'; exit 1",
        );
        script(dir.path(), "silent", "exit 3");
        script(dir.path(), "noisy", "echo oops >&2; exit 1");
        script(dir.path(), "garbled", "echo not-json; exit 1");
        script(
            dir.path(),
            "badresult",
            "echo '{\"cniVersion\":\"1.0.0\",\"ips\":7}'",
        );
        let env = env_for(&[dir.path()]);
        let err = exec_add(&env, "fails", b"{}", CniVersion::V1_0_0).unwrap_err();
        assert_eq!(
            err,
            CniError::new(ErrorCode::InvalidNetworkConfig, "invalid range set 0").with_details("d")
        );
        let err = exec_del(&env, "silent", b"{}").unwrap_err();
        assert_eq!(
            err.msg,
            "netplugin failed with no error message: exit status: 3"
        );
        let err = exec_del(&env, "noisy", b"{}").unwrap_err();
        assert_eq!(err.msg, "netplugin failed: \"oops\n\"");
        let err = exec_del(&env, "garbled", b"{}").unwrap_err();
        assert!(err.msg.starts_with(
            "netplugin failed but error parsing its diagnostic message \"not-json\n\""
        ));
        let err = exec_add(&env, "badresult", b"{}", CniVersion::V1_0_0).unwrap_err();
        assert_eq!(err.code, ErrorCode::Internal);
        assert!(
            err.msg
                .starts_with("failed to parse result of IPAM plugin \"badresult\""),
            "{}",
            err.msg
        );
    }

    #[test]
    fn large_stdin_to_a_delegate_that_does_not_read_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "ipam", "exit 0");
        let env = env_for(&[dir.path()]);
        exec_del(&env, "ipam", &vec![b'x'; 4 << 20]).unwrap();
    }
}
