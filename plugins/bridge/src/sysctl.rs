//! Reading and writing `/proc/sys` values. `net.*` values belong to the
//! network namespace of the calling thread, so container values are written
//! while the thread is inside the container's namespace.
//!
//! With many network namespaces, resolving `/proc/sys/net/ipv4` or
//! `/proc/sys/net/ipv6` is the expensive part of an access: every namespace
//! that has looked its entry up keeps it below the shared `/proc/sys/net`,
//! all in one dentry hash chain that every later lookup walks (about 0.5 ms
//! at 500 pods, host or container; the entries below are per namespace and
//! cheap). [`NetSysctls`] therefore resolves each of the two directories once
//! and opens keys relative to it, and [`NetSysctls::pod_here`] resolves them in
//! a procfs instance of its own, so a pod's entries go away with the process
//! instead of lengthening the host's chain.

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use std::cell::OnceCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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

/// The sysctl directories `net/ipv4` and `net/ipv6` of one network
/// namespace, used for every key below them. Which namespace is fixed when
/// it is made: [`NetSysctls::host`] resolves each directory on first use in
/// the calling thread's namespace (the host's: the plugin's main thread
/// never stays in another); [`NetSysctls::pod_here`] resolves both at once,
/// while the thread is inside a pod's namespace, after which keys below them
/// are reached from any namespace, without entering the pod's again.
#[derive(Debug)]
pub struct NetSysctls {
    ipv4: OnceCell<Option<File>>,
    ipv6: OnceCell<Option<File>>,
    /// A pod's: keys go only through the directories resolved in its
    /// namespace, never through a full path (which would reach the calling
    /// thread's namespace).
    pod: bool,
}

impl NetSysctls {
    /// The calling thread's namespace, through the host's `/proc`. Make it
    /// on the thread that uses it, outside any other namespace.
    pub fn host() -> NetSysctls {
        NetSysctls {
            ipv4: OnceCell::new(),
            ipv6: OnceCell::new(),
            pod: false,
        }
    }

    /// The calling thread's namespace, resolved now: call it while the
    /// thread is inside the pod's namespace. The directories are resolved in
    /// a procfs instance of this process's own: a detached mount (`fsopen`,
    /// `fsmount`) that no path reaches and that ends with its last open
    /// file. The dentries a lookup creates then live in that instance, not
    /// among the host's `/proc` entries, which every pod would otherwise
    /// lengthen. Where the kernel refuses one (before Linux 5.2, or a policy
    /// denies it), the host's `/proc` is used, still from inside the pod's
    /// namespace. A directory that cannot be opened (IPv6 disabled) makes
    /// its keys fail as not found.
    pub fn pod_here() -> NetSysctls {
        let root = private_proc().ok();
        let open = |name: &str| match &root {
            Some(proc) => openat(
                proc,
                format!("sys/{name}").as_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map(File::from)
            .ok(),
            None => open_dir(name),
        };
        NetSysctls {
            ipv4: OnceCell::from(open("net/ipv4")),
            ipv6: OnceCell::from(open("net/ipv6")),
            pod: true,
        }
    }

    /// The open directory of `family`; `None` when it cannot be opened (IPv6
    /// disabled). The host's keys below it then go through their full path,
    /// which fails the same way; a pod's fail as not found.
    fn dir(&self, family: Family) -> Option<&File> {
        let (cell, name) = match family {
            Family::V4 => (&self.ipv4, "net/ipv4"),
            Family::V6 => (&self.ipv6, "net/ipv6"),
        };
        cell.get_or_init(|| open_dir(name)).as_ref()
    }

    /// Writes `value` unless the key already holds it (a write costs more
    /// than a read and may trigger kernel work).
    ///
    /// The key is opened once for both, relative to its family's directory
    /// when it lies below `net/ipv4/` or `net/ipv6/`. A key that cannot be
    /// opened for writing (a read-only `/proc/sys`) is still fine when it
    /// already holds `value`.
    ///
    /// # Errors
    /// [`SysctlError`] when the key cannot be read or written (a pod's key
    /// outside its two directories is not found).
    pub fn ensure(&self, key: &str, value: &str) -> Result<(), SysctlError> {
        let below = split_family(key).and_then(|(family, rest)| Some((self.dir(family)?, rest)));
        match below {
            Some((dir, rest)) => ensure_with(key, value, |write| {
                let access = if write {
                    OFlag::O_RDWR
                } else {
                    OFlag::O_RDONLY
                };
                openat(dir, rest, access | OFlag::O_CLOEXEC, Mode::empty())
                    .map(File::from)
                    .map_err(io::Error::from)
            }),
            None if self.pod => Err(SysctlError {
                key: key.to_owned(),
                source: io::ErrorKind::NotFound.into(),
            }),
            None => ensure_with(key, value, |write| {
                OpenOptions::new().read(true).write(write).open(path(key))
            }),
        }
    }
}

/// `/proc/sys/<name>` as an open directory, in the calling thread's
/// namespace.
fn open_dir(name: &str) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_DIRECTORY.bits())
        .open(path(name))
        .ok()
}

/// A new procfs instance as a detached mount: its root, closed on exec.
fn private_proc() -> io::Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let context = rustix::mount::fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_create(&context)?;
    Ok(rustix::mount::fsmount(
        &context,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// `net/ipv4/<rest>` or `net/ipv6/<rest>` with a non-empty `rest`.
fn split_family(key: &str) -> Option<(Family, &str)> {
    let key = key.strip_prefix("net/")?;
    let (family, rest) = if let Some(rest) = key.strip_prefix("ipv4/") {
        (Family::V4, rest)
    } else {
        (Family::V6, key.strip_prefix("ipv6/")?)
    };
    (!rest.is_empty()).then_some((family, rest))
}

/// The body of [`NetSysctls::ensure`]; `open(write)` opens the key
/// read-write or read-only.
fn ensure_with(
    key: &str,
    value: &str,
    open: impl Fn(bool) -> io::Result<File>,
) -> Result<(), SysctlError> {
    let error = |source| SysctlError {
        key: key.to_owned(),
        source,
    };
    let read = |mut file: &File| {
        let mut current = String::new();
        file.read_to_string(&mut current).map_err(error)?;
        Ok::<_, SysctlError>(current)
    };
    let file = match open(true) {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            let current = read(&open(false).map_err(error)?)?;
            return if current.trim() == value {
                Ok(())
            } else {
                Err(error(e))
            };
        }
        Err(e) => return Err(error(e)),
    };
    if read(&file)?.trim() == value {
        return Ok(());
    }
    // A sysctl takes a write at offset 0 as the new value.
    file.write_all_at(value.as_bytes(), 0).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_below_a_family_directory_are_split() {
        assert_eq!(
            split_family("net/ipv4/ip_forward"),
            Some((Family::V4, "ip_forward"))
        );
        assert_eq!(
            split_family("net/ipv6/conf/eth0/accept_dad"),
            Some((Family::V6, "conf/eth0/accept_dad"))
        );
        assert_eq!(split_family("net/ipv4/"), None);
        assert_eq!(split_family("net/ipv4"), None);
        assert_eq!(split_family("net/ipv6x/y"), None);
        assert_eq!(split_family("net/core/somaxconn"), None);
        assert_eq!(split_family("kernel/hostname"), None);
    }

    /// Ensures two `net` keys hold what `/proc/sys` shows for them: readable
    /// as any user, and nothing is written because the values match.
    fn ensure_current_net_values(sysctls: &NetSysctls) {
        for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
            let Ok(current) = std::fs::read_to_string(path(key)) else {
                continue; // IPv6 disabled
            };
            sysctls.ensure(key, current.trim()).unwrap();
        }
    }

    #[test]
    fn relative_and_full_path_reads_agree() {
        let sysctls = NetSysctls::host();
        ensure_current_net_values(&sysctls);
        let current = std::fs::read_to_string(path("kernel/ostype")).unwrap();
        sysctls.ensure("kernel/ostype", current.trim()).unwrap();
    }

    #[test]
    fn a_private_instance_resolves_the_same_keys() {
        // As root a private procfs instance of our own namespace; otherwise
        // the host's /proc, opened now.
        let private = NetSysctls::pod_here();
        ensure_current_net_values(&private);
        let err = private
            .ensure("net/ipv6/conf/no-such-if0/accept_dad", "0")
            .unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
        // Nothing outside the two directories is reached.
        let current = std::fs::read_to_string(path("kernel/ostype")).unwrap();
        let err = private.ensure("kernel/ostype", current.trim()).unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_missing_key_fails_with_its_name() {
        let sysctls = NetSysctls::host();
        for key in ["net/ipv4/conf/no-such-if0/arp_notify", "net/nope/x"] {
            let err = sysctls.ensure(key, "1").unwrap_err();
            assert_eq!(err.key, key);
            assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
        }
    }
}
