//! Reading and writing `/proc/sys` values. `net.*` values belong to the
//! network namespace of the calling thread, so container values are written
//! while the thread is inside the container's namespace.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
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
/// The key is opened once for both: with many network namespaces every
/// `/proc/sys/net` lookup walks one cached entry per namespace (about 0.5 ms at
/// 500 pods), so a second open is the expensive part. A key that cannot be
/// opened for writing (a read-only `/proc/sys`) is still fine when it already
/// holds `value`.
///
/// # Errors
/// [`SysctlError`] when the key cannot be read or written.
pub fn ensure(key: &str, value: &str) -> Result<(), SysctlError> {
    let error = |source| SysctlError {
        key: key.to_owned(),
        source,
    };
    let mut file = match OpenOptions::new().read(true).write(true).open(path(key)) {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            return if read(key)? == value {
                Ok(())
            } else {
                Err(error(e))
            };
        }
        Err(e) => return Err(error(e)),
    };
    let mut current = String::new();
    file.read_to_string(&mut current).map_err(error)?;
    if current.trim() == value {
        return Ok(());
    }
    // A sysctl takes a write at offset 0 as the new value.
    file.write_all_at(value.as_bytes(), 0).map_err(error)
}
