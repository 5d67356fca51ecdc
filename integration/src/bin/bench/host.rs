//! Untimed host-side helpers: namespaces and links through iproute2.

use std::path::PathBuf;

use integration::cmd;

use crate::error::BenchResult;

/// Runs `program args...`, requires success, returns stdout.
///
/// # Errors
///
/// When it cannot start or exits non-zero (stderr in the message).
pub fn run_ok(program: &str, args: &[&str]) -> BenchResult<String> {
    let out = cmd::try_run(program, args)
        .map_err(|e| format!("cannot run {}: {e}", cmd::command_line(program, args)))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            cmd::command_line(program, args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `/run/netns/<name>`, the `CNI_NETNS` of a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Creates a named network namespace (`ip netns add`).
///
/// # Errors
///
/// When `ip` fails.
pub fn netns_add(name: &str) -> BenchResult<()> {
    run_ok("ip", &["netns", "add", name]).map(drop)
}

/// Deletes a named network namespace (`ip netns del`); its links go with it.
///
/// # Errors
///
/// When `ip` fails.
pub fn netns_del(name: &str) -> BenchResult<()> {
    run_ok("ip", &["netns", "del", name]).map(drop)
}

/// The names of all named namespaces.
///
/// # Errors
///
/// When `ip netns list` fails.
pub fn netns_list() -> BenchResult<Vec<String>> {
    let out = run_ok("ip", &["netns", "list"])?;
    // Lines look like `name (id: 3)` or just `name`.
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Whether a link exists in the bench's namespace.
pub fn link_exists(name: &str) -> bool {
    cmd::try_run("ip", &["link", "show", "dev", name]).is_ok_and(|o| o.status.success())
}

/// Deletes a link if it exists.
///
/// # Errors
///
/// When it exists and `ip link del` fails.
pub fn link_del(name: &str) -> BenchResult<bool> {
    if !link_exists(name) {
        return Ok(false);
    }
    run_ok("ip", &["link", "del", "dev", name]).map(|_| true)
}

/// How many links are enslaved to `bridge`.
///
/// # Errors
///
/// When `ip` fails.
pub fn ports_of(bridge: &str) -> BenchResult<usize> {
    let out = run_ok("ip", &["-o", "link", "show", "master", bridge])?;
    Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
}
