//! Entering a container's network namespace safely (feature `netns`).
//!
//! `setns` changes only the calling thread. [`Netns::run`] does the work on
//! a fresh scoped thread that enters the namespace and then ends, so the
//! caller's thread never changes namespace, even when the work fails or
//! panics. [`NetnsGuard`] is for short sections on the current thread (for
//! example opening a netlink socket that stays bound to the container's
//! namespace); it restores the previous namespace when dropped, on every
//! path, and aborts the process if it cannot.

use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, PROC_SUPER_MAGIC, statfs};
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

/// Why a namespace could not be opened or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The path does not exist (the namespace is gone).
    #[error("failed to Statfs \"{}\": no such file or directory", .0.display())]
    NotFound(PathBuf),
    /// The path exists but is not a namespace file.
    #[error("unknown FS magic on \"{}\": {magic:x}", path.display())]
    NotNamespace {
        /// The path given.
        path: PathBuf,
        /// Its file system's magic number.
        magic: i64,
    },
    /// `statfs` or `open` failed otherwise.
    #[error("failed to open netns \"{}\": {source}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// `setns` failed.
    #[error("failed to enter netns \"{}\": {source}", path.display())]
    Enter {
        /// The path given.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// The worker thread panicked.
    #[error("work inside netns \"{}\" panicked", .0.display())]
    Panicked(PathBuf),
}

impl NetnsError {
    /// True when the namespace no longer exists, which DEL treats as done.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetnsError::NotFound(_))
    }
}

/// An open network namespace file.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens a namespace by path (e.g. `/run/netns/x`, `/proc/<pid>/ns/net`),
    /// checking that it is a namespace file.
    ///
    /// # Errors
    /// [`NetnsError::NotFound`] when it does not exist,
    /// [`NetnsError::NotNamespace`] for an ordinary file, else
    /// [`NetnsError::Open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Netns, NetnsError> {
        let path = path.as_ref().to_path_buf();
        let stats = statfs(&path).map_err(|errno| match errno {
            nix::errno::Errno::ENOENT => NetnsError::NotFound(path.clone()),
            other => NetnsError::Open {
                path: path.clone(),
                source: other.into(),
            },
        })?;
        let fs_type = stats.filesystem_type();
        if fs_type != NSFS_MAGIC && fs_type != PROC_SUPER_MAGIC {
            return Err(NetnsError::NotNamespace {
                path,
                magic: fs_type.0,
            });
        }
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Netns { file, path })
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a new thread inside this namespace and returns its
    /// value. The calling thread's namespace is never touched.
    ///
    /// # Errors
    /// [`NetnsError::Enter`] if `setns` fails, [`NetnsError::Panicked`] if
    /// `work` panics.
    pub fn run<T, F>(&self, work: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|errno| NetnsError::Enter {
                    path: self.path.clone(),
                    source: errno.into(),
                })?;
                Ok(work())
            });
            worker
                .join()
                .unwrap_or_else(|_| Err(NetnsError::Panicked(self.path.clone())))
        })
    }

    /// Enters this namespace on the current thread until the guard drops.
    ///
    /// # Errors
    /// [`NetnsError::Enter`] if the current namespace cannot be recorded or
    /// `setns` fails (the thread is then unchanged).
    pub fn enter(&self) -> Result<NetnsGuard, NetnsError> {
        let enter_error = |source: io::Error| NetnsError::Enter {
            path: self.path.clone(),
            source,
        };
        let previous = File::open("/proc/thread-self/ns/net").map_err(enter_error)?;
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|errno| enter_error(errno.into()))?;
        Ok(NetnsGuard {
            previous,
            _not_send: PhantomData,
        })
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// The current thread is inside another namespace while this lives; it goes
/// back when dropped. Not `Send`: the namespace belongs to this thread.
#[derive(Debug)]
pub struct NetnsGuard {
    previous: File,
    _not_send: PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(errno) = setns(&self.previous, CloneFlags::CLONE_NEWNET) {
            // Going on would configure the host as if it were the container.
            eprintln!("fatal: cannot restore network namespace: {errno}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_not_found_with_the_reference_message() {
        let err = Netns::open("/nonexistent/netns/x").unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "failed to Statfs \"/nonexistent/netns/x\": no such file or directory"
        );
    }

    #[test]
    fn ordinary_file_is_not_a_namespace() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Netns::open(file.path()).unwrap_err();
        assert!(matches!(err, NetnsError::NotNamespace { .. }), "{err}");
        assert!(err.to_string().starts_with("unknown FS magic on"));
    }

    #[test]
    fn own_namespace_runs_work_and_leaves_the_caller_alone() {
        let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let ns = Netns::open("/proc/self/ns/net").unwrap();
        // Entering our own namespace needs CAP_SYS_ADMIN; without it the
        // error must be reported, not panic.
        match ns.run(|| 42) {
            Ok(value) => assert_eq!(value, 42),
            Err(err) => assert!(matches!(err, NetnsError::Enter { .. })),
        }
        assert_eq!(
            std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
            before
        );
    }
}
