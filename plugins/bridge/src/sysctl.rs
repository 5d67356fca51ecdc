//! Reading and writing `/proc/sys` values. `net.*` values belong to the
//! network namespace of the calling thread, so container values are written
//! while the thread is inside the container's namespace.

use std::io;
use std::path::PathBuf;

/// A failed sysctl access.
#[derive(Debug, thiserror::Error)]
#[error("sysctl {key}: {source}")]
pub struct SysctlError {
    /// The key, e.g. `net/ipv4/ip_forward`.
    pub key: String,
    /// The system error.
    pub source: io::Error,
}

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key)
}

/// Reads a value, trimmed.
///
/// # Errors
/// [`SysctlError`] when the key does not exist or cannot be read.
pub fn read(key: &str) -> Result<String, SysctlError> {
    std::fs::read_to_string(path(key))
        .map(|value| value.trim().to_owned())
        .map_err(|source| SysctlError {
            key: key.to_owned(),
            source,
        })
}

/// Writes `value` unless the key already holds it (a write costs more than
/// a read and may trigger kernel work).
///
/// # Errors
/// [`SysctlError`] when the key cannot be read or written.
pub fn ensure(key: &str, value: &str) -> Result<(), SysctlError> {
    if read(key)? == value {
        return Ok(());
    }
    std::fs::write(path(key), value).map_err(|source| SysctlError {
        key: key.to_owned(),
        source,
    })
}
