//! Lease storage: the [`Store`] trait and the on-disk [`DiskStore`], shared
//! byte-for-byte with the Go plugin.
//!
//! # On-disk layout
//!
//! `<dataDir>/<network>/` (mode 0755) holds:
//! * `lock` (mode 0750): empty; `flock(LOCK_EX)` is held for each read-modify-write.
//! * `<ip>` (mode 0600): one lease, content `<id trimmed>\r\n<ifname>`, no newline.
//!   Legacy leases contain only `<id>`.
//! * `last_reserved_ip.<N>` (mode 0600): last IP reserved for range set `N`, no newline.
//!
//! # Crash safety and stale leases
//!
//! A lease is written to `.tmp-<ip>-<pid>` and then hard-linked to `<ip>`, which fails
//! if the name exists, so a lease file is never overwritten and is either complete or
//! absent. `last_reserved_ip.<N>` is rewritten in place, as the reference writes it:
//! it is only a hint, and a value torn by a crash does not parse or names another
//! address of the range. Readers only consider
//! regular files whose name parses as an IP, so `lock` and `last_reserved_ip.*` are
//! ignored. A `.tmp-*` file can only be seen by a lock holder when its writer died
//! before linking it (writers hold the lock while it exists), so the
//! directory scan removes it: crashed writers leave no garbage that accumulates.
//! A lease file that is empty (or whitespace
//! only) can only come from a crashed writer — every writer, including the Go plugin,
//! writes under the lock — so it is **stale**: it matches no container, is left out
//! of [`LockedStore::leases`], and [`Store::reserve`] reclaims it.

use std::cell::{Cell, RefCell};
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::cache;
use crate::files::{overwrite_private, write_private};

/// Separator between container ID and interface name in a lease file.
pub const LINE_BREAK: &str = "\r\n";
const LOCK_FILE: &str = "lock";
const LAST_IP_PREFIX: &str = "last_reserved_ip.";
/// Names of files being written, before the hard link or rename makes them visible.
const TMP_PREFIX: &str = ".tmp-";
const DIR_MODE: u32 = 0o755;
const LOCK_MODE: u32 = 0o750;

/// Errors from lease storage; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The network name would not name a single directory below the data dir.
    #[error("invalid network name {name:?}: {reason}")]
    InvalidNetworkName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Creating the store directory failed.
    #[error("create directory {}: {source}", path.display())]
    CreateDir {
        /// Directory being created.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Opening or creating the lock file failed.
    #[error("open lock file {}: {source}", path.display())]
    OpenLock {
        /// Lock file path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// `flock` on the lock file failed.
    #[error("lock {}: {source}", path.display())]
    Lock {
        /// Lock file path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Listing the store directory failed.
    #[error("read directory {}: {source}", path.display())]
    ReadDir {
        /// Directory path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Reading a file failed.
    #[error("read {}: {source}", path.display())]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Writing a file failed.
    #[error("write {}: {source}", path.display())]
    Write {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Removing a file failed.
    #[error("remove {}: {source}", path.display())]
    Remove {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
}

/// Lease storage as seen by the allocator; callers hold any lock for the whole sequence.
pub trait Store {
    /// Records a lease for `ip` unless one exists, then records `ip` as the last
    /// reserved IP of range set `set_index`. Returns `false` if `ip` is taken.
    ///
    /// # Errors
    ///
    /// I/O failures; on error no lease for `ip` is left behind.
    fn reserve(
        &mut self,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        set_index: usize,
    ) -> Result<bool, StoreError>;

    /// The last IP reserved for range set `set_index`, if recorded and parsable.
    ///
    /// # Errors
    ///
    /// I/O failures other than "not found".
    fn last_reserved_ip(&self, set_index: usize) -> Result<Option<IpAddr>, StoreError>;

    /// IPs leased to `id`+`ifname` or, in the legacy format, to `id` alone.
    ///
    /// # Errors
    ///
    /// I/O failures while scanning.
    fn find_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError>;

    /// Deletes the leases of `id`+`ifname`; if there are none, the legacy leases of
    /// `id`. Returns the released IPs; releasing nothing is not an error.
    ///
    /// # Errors
    ///
    /// I/O failures; the remaining matches are still removed.
    fn release_by_id(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError>;

    /// Deletes the lease of `ip` whoever owns it; returns whether it existed.
    ///
    /// # Errors
    ///
    /// I/O failures other than "not found".
    fn release_ip(&mut self, ip: IpAddr) -> Result<bool, StoreError>;
}

/// One lease as found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub ip: IpAddr,
    /// Container ID.
    pub id: String,
    /// Interface name; `None` for a legacy lease.
    pub ifname: Option<String>,
}

impl Lease {
    /// Parses lease file content; `None` for a stale (blank) lease.
    fn parse(ip: IpAddr, content: &str) -> Option<Lease> {
        let trimmed = content.trim();
        if trimmed.is_empty() {
            return None;
        }
        let (id, ifname) = match trimmed.split_once(LINE_BREAK) {
            Some((id, ifname)) => (id, Some(ifname.to_string())),
            None => (trimmed, None),
        };
        Some(Lease {
            ip,
            id: id.to_string(),
            ifname,
        })
    }
}

/// How a lease's content matched a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Current,
    Legacy,
}

/// The exact lease file content for a container attachment.
pub(crate) fn lease_content(id: &str, ifname: &str) -> String {
    format!("{}{LINE_BREAK}{ifname}", id.trim())
}

/// The lease contents that belong to one container attachment, built once
/// for a pass over every lease.
struct OwnerMatch<'a> {
    current: String,
    legacy: &'a str,
}

impl<'a> OwnerMatch<'a> {
    fn new(id: &'a str, ifname: &str) -> OwnerMatch<'a> {
        OwnerMatch {
            current: lease_content(id, ifname),
            legacy: id.trim(),
        }
    }

    /// Compares trimmed content with both formats, as the reference does; a
    /// stale (blank) lease matches nobody.
    fn owner(&self, content: &str) -> Option<Owner> {
        let trimmed = content.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed == self.current {
            Some(Owner::Current)
        } else if trimmed == self.legacy {
            Some(Owner::Legacy)
        } else {
            None
        }
    }
}

/// Whether lease content is blank, i.e. left by a crashed writer.
pub(crate) fn is_stale(content: &[u8]) -> bool {
    content.trim_ascii().is_empty()
}

/// The leases (keys with their content) owned by the container in either
/// format (duplicate check, CHECK).
pub(crate) fn select_any<'a, K>(
    leases: impl Iterator<Item = (K, &'a str)>,
    id: &str,
    ifname: &str,
) -> Vec<K> {
    let owner = OwnerMatch::new(id, ifname);
    leases
        .filter(|(_, c)| owner.owner(c).is_some())
        .map(|(key, _)| key)
        .collect()
}

/// The leases to release: current-format matches, else legacy matches (DEL
/// semantics).
pub(crate) fn select_for_release<'a, K>(
    leases: impl Iterator<Item = (K, &'a str)> + Clone,
    id: &str,
    ifname: &str,
) -> Vec<K> {
    let matcher = OwnerMatch::new(id, ifname);
    let with = |owner| {
        leases
            .clone()
            .filter(|(_, c)| matcher.owner(c) == Some(owner))
            .map(|(key, _)| key)
            .collect::<Vec<_>>()
    };
    let current = with(Owner::Current);
    if current.is_empty() {
        with(Owner::Legacy)
    } else {
        current
    }
}

/// An opened (not yet locked) on-disk store for one network.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    lock_path: PathBuf,
    lock_file: File,
    cache_dir: Option<PathBuf>,
}

impl DiskStore {
    /// Opens `<data_dir>/<network>`, creating it (0755) and its `lock` file (0750),
    /// with the scan cache in `<data_dir>/.cni-rs-cache` (see [`cache`]).
    ///
    /// Network names that are empty, `.`, `..` or contain `/` or NUL are rejected
    /// before anything is created. Calling it again reuses the existing directory.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidNetworkName`], [`StoreError::CreateDir`] or
    /// [`StoreError::OpenLock`].
    pub fn open(data_dir: &Path, network: &str) -> Result<DiskStore, StoreError> {
        DiskStore::open_with_cache(data_dir, network, Some(&data_dir.join(cache::SUBDIR)))
    }

    /// [`DiskStore::open`] for a store that already exists: `None`, and
    /// nothing created, when `<data_dir>/<network>` does not. For DEL, which
    /// has nothing to release there.
    ///
    /// # Errors
    ///
    /// As [`DiskStore::open`].
    pub fn open_existing(data_dir: &Path, network: &str) -> Result<Option<DiskStore>, StoreError> {
        validate_network_name(network)?;
        let dir = data_dir.join(network);
        match fs::symlink_metadata(&dir) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            _ => DiskStore::open(data_dir, network).map(Some),
        }
    }

    /// [`DiskStore::open`] with the scan cache in `cache_dir`, or without a cache.
    ///
    /// # Errors
    ///
    /// As [`DiskStore::open`].
    pub fn open_with_cache(
        data_dir: &Path,
        network: &str,
        cache_dir: Option<&Path>,
    ) -> Result<DiskStore, StoreError> {
        validate_network_name(network)?;
        let dir = data_dir.join(network);
        create_dirs(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = open_lock_file(&lock_path).map_err(|source| StoreError::OpenLock {
            path: lock_path.clone(),
            source,
        })?;
        Ok(DiskStore {
            dir,
            lock_path,
            lock_file,
            cache_dir: cache_dir.map(Path::to_path_buf),
        })
    }

    /// The store directory `<data_dir>/<network>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive `flock`, blocking without timeout; released on drop.
    ///
    /// # Errors
    ///
    /// [`StoreError::Lock`] if `flock` fails.
    pub fn lock(&mut self) -> Result<LockedStore<'_>, StoreError> {
        self.lock_file.lock().map_err(|source| StoreError::Lock {
            path: self.lock_path.clone(),
            source,
        })?;
        Ok(LockedStore {
            store: self,
            scanned: RefCell::new(None),
            publish: Cell::new(false),
        })
    }
}

/// Rejects network names that could address anything but one child directory.
fn validate_network_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name == "." || name == ".." {
        Some("must not be . or ..")
    } else if name.contains('/') {
        Some("must not contain '/'")
    } else if name.contains('\0') {
        Some("must not contain NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidNetworkName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `mkdir -p` with mode 0755, forcing 0755 (despite the umask) on new directories.
fn create_dirs(dir: &Path) -> Result<(), StoreError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
        .collect();
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::CreateDir { path, source }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(err(dir))?;
    for path in missing {
        fs::set_permissions(path, Permissions::from_mode(DIR_MODE)).map_err(err(path))?;
    }
    Ok(())
}

/// Opens the lock file read-only, creating it with mode 0750 first if needed.
fn open_lock_file(path: &Path) -> io::Result<File> {
    match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(LOCK_MODE)
        .open(path)
    {
        Ok(f) => f.set_permissions(Permissions::from_mode(LOCK_MODE))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    File::open(path)
}

/// A [`DiskStore`] with its lock held; all reads and writes happen through this.
#[derive(Debug)]
pub struct LockedStore<'a> {
    store: &'a DiskStore,
    /// The leases as last scanned (or taken from the cache), kept exactly current
    /// by our own writes so one call reads the directory at most once; `None` when
    /// not read yet or when a failed removal left the directory uncertain.
    scanned: RefCell<Option<Vec<RawLease>>>,
    /// Whether `scanned` should be published to the cache on unlock: we scanned
    /// the directory or changed it.
    publish: Cell<bool>,
}

impl Drop for LockedStore<'_> {
    fn drop(&mut self) {
        // Still under the lock: the cache and the sign must describe what we leave.
        self.publish_scan();
        // Closing the file would release the flock too; unlocking early is a courtesy.
        let _ = self.store.lock_file.unlock();
    }
}

/// A lease file found by a directory scan or in the cache: file name, address
/// and raw content. Kept by name, not path: a store holds a thousand of these,
/// sorted by name.
type RawLease = cache::Entry;

impl LockedStore<'_> {
    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// All non-stale leases on disk, ordered by file name (always a fresh scan).
    ///
    /// # Errors
    ///
    /// I/O failures while scanning.
    pub fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.rescan()?;
        self.with_scanned(|leases| {
            leases
                .iter()
                .filter_map(|l| Lease::parse(l.ip()?, l.text()))
                .collect()
        })
    }

    /// Runs `f` on the leases, taken from the cache or by scanning on first use.
    fn with_scanned<T>(&self, f: impl FnOnce(&[RawLease]) -> T) -> Result<T, StoreError> {
        let mut scanned = self.scanned.borrow_mut();
        let leases = match scanned.take() {
            Some(leases) => leases,
            None => match self.cached() {
                Some(leases) => leases,
                None => {
                    let leases = self.scan()?;
                    self.publish.set(true);
                    leases
                }
            },
        };
        Ok(f(scanned.insert(leases)))
    }

    /// Reads the directory afresh, ignoring the cache.
    fn rescan(&self) -> Result<(), StoreError> {
        self.scanned.borrow_mut().take();
        let leases = self.scan()?;
        *self.scanned.borrow_mut() = Some(leases);
        self.publish.set(true);
        Ok(())
    }

    /// The leases recorded in the cache, if the directory is still as recorded.
    fn cached(&self) -> Option<Vec<RawLease>> {
        let cache_dir = self.store.cache_dir.as_deref()?;
        let meta = fs::metadata(&self.store.dir).ok()?;
        let mut leases = cache::load(cache_dir, &meta)?;
        // Written in order: sorting sorted input is one linear pass.
        leases.sort_by(|a, b| a.name().cmp(b.name()));
        Some(leases)
    }

    /// Publishes the leases to the cache and signs the directory, if we scanned
    /// or changed it and still know exactly what it holds. Failures only cost
    /// the next call a scan.
    fn publish_scan(&self) {
        let Some(cache_dir) = self.store.cache_dir.as_deref() else {
            return;
        };
        let scanned = self.scanned.borrow();
        let (true, Some(leases)) = (self.publish.get(), scanned.as_ref()) else {
            return;
        };
        let Ok(meta) = fs::metadata(&self.store.dir) else {
            return;
        };
        let entries = leases.iter().map(|l| (l.name(), l.text()));
        let _ = cache::publish(cache_dir, &self.store.dir, &meta, entries);
    }

    /// Keeps the leases current after we created one (callers read them first).
    fn remember(&self, lease: RawLease) {
        if let Some(leases) = self.scanned.borrow_mut().as_mut() {
            let at = leases.partition_point(|l| l.name() < lease.name());
            match leases.get_mut(at) {
                // A reclaimed stale lease had this name (or a scan after our write saw it).
                Some(same) if same.name() == lease.name() => *same = lease,
                _ => leases.insert(at, lease),
            }
        }
        self.publish.set(true);
    }

    /// Keeps the leases current after we removed the lease file `name`.
    fn removed(&self, name: &str) {
        if let Some(leases) = self.scanned.borrow_mut().as_mut() {
            leases.retain(|l| l.name() != name);
        }
        self.publish.set(true);
    }

    /// Drops the leases after a failed removal left the directory uncertain.
    fn forget(&self) {
        self.scanned.borrow_mut().take();
    }

    fn path_for(&self, name: &str) -> PathBuf {
        self.store.dir.join(name)
    }

    /// Reads every regular file whose name parses as an IP, sorted by name like Go's walk,
    /// and removes temp files of dead writers.
    fn scan(&self) -> Result<Vec<RawLease>, StoreError> {
        let dir = &self.store.dir;
        let read_dir_err = |source| StoreError::ReadDir {
            path: dir.clone(),
            source,
        };
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_dir_err)? {
            let entry = entry.map_err(read_dir_err)?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().filter(|n| n.parse::<IpAddr>().is_ok()) else {
                if file_name
                    .as_encoded_bytes()
                    .starts_with(TMP_PREFIX.as_bytes())
                    && entry.file_type().is_ok_and(|t| t.is_file())
                {
                    // Left by a writer that died holding the lock we hold now.
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            };
            if !entry.file_type().map_err(read_dir_err)?.is_file() {
                continue;
            }
            let path = entry.path();
            match read_lease(&path) {
                Ok(content) => {
                    found.push(RawLease::new(name, &String::from_utf8_lossy(&content)));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Read { path, source }),
            }
        }
        // By name, byte-wise, like Go's directory walk.
        found.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(found)
    }

    /// Removes a stale lease at `path`; returns whether the name is now free.
    fn free_or_reclaim(&self, path: &Path) -> Result<bool, StoreError> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(source) => return Err(read_err(path, source)),
        };
        if !meta.is_file() {
            return Ok(false);
        }
        let content = fs::read(path).map_err(|source| read_err(path, source))?;
        if !is_stale(&content) {
            return Ok(false);
        }
        remove_if_exists(path)?;
        Ok(true)
    }

    /// Creates `path` with `content` via temp file + hard link; `false` if it exists.
    fn create_exclusive(
        &self,
        path: &Path,
        name: &str,
        content: &[u8],
    ) -> Result<bool, StoreError> {
        let tmp = self.path_for(&format!("{TMP_PREFIX}{name}-{}", std::process::id()));
        write_private(&tmp, content).map_err(|source| write_err(&tmp, source))?;
        let linked = fs::hard_link(&tmp, path);
        // A temp file left by a crash here is removed by the next scan.
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(write_err(path, source)),
        }
    }

    /// Reclaims a stale lease at `path`, creates ours and records `ip` as the last
    /// reserved of its set. Returns the content written, `None` if `ip` is taken.
    fn create_lease(
        &self,
        path: &Path,
        name: &str,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        set_index: usize,
    ) -> Result<Option<String>, StoreError> {
        if !self.free_or_reclaim(path)? {
            return Ok(None);
        }
        let content = lease_content(id, ifname);
        if !self.create_exclusive(path, name, content.as_bytes())? {
            // Only a writer ignoring the lock gets here; a stale lease may be gone.
            self.forget();
            return Ok(None);
        }
        if let Err(e) = self.write_last_reserved(ip.to_canonical(), set_index) {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(Some(content))
    }

    /// Writes `ip` as the content of `last_reserved_ip.<set_index>`.
    fn write_last_reserved(&self, ip: IpAddr, set_index: usize) -> Result<(), StoreError> {
        let path = self.path_for(&format!("{LAST_IP_PREFIX}{set_index}"));
        // In place, as the reference writes it: a torn value after a crash is
        // only a hint that does not parse or points elsewhere in the range.
        overwrite_private(&path, ip.to_string().as_bytes())
            .map_err(|source| write_err(&path, source))
    }

    /// Removes the lease files of `ips`, continuing past failures; returns the
    /// removed IPs. Keeps the leases current, or drops them if a removal failed.
    fn remove_all(&self, ips: &[IpAddr]) -> Result<Vec<IpAddr>, StoreError> {
        let names: Vec<(IpAddr, String)> = self.with_scanned(|leases| {
            leases
                .iter()
                .filter_map(|l| Some((l.ip().filter(|ip| ips.contains(ip))?, l.name().to_owned())))
                .collect()
        })?;
        let mut removed = Vec::new();
        let mut first_err = None;
        for (ip, name) in names {
            match remove_if_exists(&self.path_for(&name)) {
                Ok(_) => {
                    self.removed(&name);
                    removed.push(ip);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => {
                self.forget();
                Err(e)
            }
            None => Ok(removed),
        }
    }
}

impl Store for LockedStore<'_> {
    fn reserve(
        &mut self,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        set_index: usize,
    ) -> Result<bool, StoreError> {
        // Read the leases before changing anything, so they can be kept current.
        self.with_scanned(|_| ())?;
        let name = ip.to_canonical().to_string();
        let path = self.path_for(&name);
        match self.create_lease(&path, &name, id, ifname, ip, set_index) {
            Ok(Some(text)) => {
                self.remember(RawLease::new(&name, &text));
                Ok(true)
            }
            // Nothing changed.
            Ok(None) => Ok(false),
            // A stale lease may be gone, or ours left behind: read afresh next time.
            Err(e) => {
                self.forget();
                Err(e)
            }
        }
    }

    fn last_reserved_ip(&self, set_index: usize) -> Result<Option<IpAddr>, StoreError> {
        let path = self.path_for(&format!("{LAST_IP_PREFIX}{set_index}"));
        match fs::read(&path) {
            Ok(data) => Ok(std::str::from_utf8(&data)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .map(|ip| ip.to_canonical())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(read_err(&path, source)),
        }
    }

    fn find_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        self.with_scanned(|leases| {
            let owned = select_any(leases.iter().map(|l| (l, l.text())), id, ifname);
            owned.into_iter().filter_map(RawLease::ip).collect()
        })
    }

    fn release_by_id(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        // Releases always read the directory afresh: they must free everything on
        // disk, whatever the cache says.
        self.rescan()?;
        let ips = self.with_scanned(|leases| {
            let owned = select_for_release(leases.iter().map(|l| (l, l.text())), id, ifname);
            owned
                .into_iter()
                .filter_map(RawLease::ip)
                .collect::<Vec<_>>()
        })?;
        self.remove_all(&ips)
    }

    fn release_ip(&mut self, ip: IpAddr) -> Result<bool, StoreError> {
        let name = ip.to_canonical().to_string();
        match remove_if_exists(&self.path_for(&name)) {
            Ok(existed) => {
                self.removed(&name);
                Ok(existed)
            }
            Err(e) => {
                self.forget();
                Err(e)
            }
        }
    }
}

/// Reads a lease file: open, one read, close. A lease is a few dozen bytes and
/// every writer holds the lock we hold, so a read shorter than the buffer is the
/// whole file; only a longer file takes more reads.
fn read_lease(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut buf = [0u8; 512];
    let mut content = Vec::new();
    loop {
        let n = file.read(&mut buf)?;
        content.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return Ok(content);
        }
    }
}

/// Removes `path`; `Ok(false)` if it did not exist.
fn remove_if_exists(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn opening_an_existing_store_creates_nothing_when_there_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        assert!(DiskStore::open_existing(&data, "crio").unwrap().is_none());
        assert!(!data.exists());
        assert!(matches!(
            DiskStore::open_existing(&data, "../x"),
            Err(StoreError::InvalidNetworkName { .. })
        ));
        DiskStore::open(&data, "crio").unwrap();
        let store = DiskStore::open_existing(&data, "crio").unwrap().unwrap();
        assert_eq!(store.dir(), data.join("crio"));
    }

    fn open(tmp: &tempfile::TempDir) -> DiskStore {
        let cache = tmp.path().join("cache");
        DiskStore::open_with_cache(&tmp.path().join("data"), "crio", Some(&cache)).unwrap()
    }

    /// Rewrites a lease in place, which no writer does: the directory stays
    /// signed, so reading the old content proves the cache was used.
    fn rewrite_in_place(path: &Path, content: &str) {
        let mut file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .unwrap();
        file.write_all(content.as_bytes()).unwrap();
    }

    fn find(store: &mut DiskStore, id: &str) -> Vec<IpAddr> {
        store.lock().unwrap().find_by_id(id, "eth0").unwrap()
    }

    fn cache_files(tmp: &tempfile::TempDir) -> Vec<PathBuf> {
        fs::read_dir(tmp.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn open_creates_dirs_and_lock_with_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(&tmp);
        let dir = tmp.path().join("data/crio");
        assert_eq!(store.dir(), dir);
        assert_eq!(mode(&tmp.path().join("data")), 0o755);
        assert_eq!(mode(&dir), 0o755);
        let lock = dir.join("lock");
        assert_eq!(mode(&lock), 0o750);
        assert_eq!(fs::metadata(&lock).unwrap().len(), 0);
        assert_eq!(names(&dir), ["lock"]);
    }

    #[test]
    fn open_twice_reuses_directory_and_keeps_existing_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, Permissions::from_mode(0o700)).unwrap();
        drop(DiskStore::open(&data, "net").unwrap());
        drop(DiskStore::open(&data, "net").unwrap());
        assert_eq!(mode(&data), 0o700, "existing directories are left alone");
        assert_eq!(mode(&data.join("net")), 0o755);
    }

    #[test]
    fn path_traversal_names_rejected_without_creating_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        for name in ["", ".", "..", "../evil", "a/b", "/abs", "nul\0byte"] {
            let err = DiskStore::open(&data, name).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidNetworkName { .. }),
                "{name:?}: {err}"
            );
        }
        assert!(!data.exists());
        assert_eq!(names(tmp.path()), Vec::<String>::new());
        let err = DiskStore::open(&data, "..").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid network name \"..\": must not be . or .."
        );
    }

    #[test]
    fn names_with_dots_are_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DiskStore::open(tmp.path(), "..net.work").unwrap();
        assert_eq!(store.dir(), tmp.path().join("..net.work"));
    }

    #[test]
    fn error_display_names_path_and_cause() {
        let err = StoreError::OpenLock {
            path: PathBuf::from("/x/lock"),
            source: io::Error::from_raw_os_error(13),
        };
        assert_eq!(
            err.to_string(),
            "open lock file /x/lock: Permission denied (os error 13)"
        );
    }

    #[test]
    fn reserve_writes_exact_bytes_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        let mut locked = store.lock().unwrap();
        assert!(
            locked
                .reserve("  abc123 \n", "eth0", ip("10.85.0.2"), 0)
                .unwrap()
        );
        let lease = dir.join("10.85.0.2");
        assert_eq!(fs::read(&lease).unwrap(), b"abc123\r\neth0");
        assert_eq!(fs::metadata(&lease).unwrap().len(), 12);
        assert_eq!(mode(&lease), 0o600);
        assert_eq!(
            fs::metadata(&lease).unwrap().nlink(),
            1,
            "temp link removed"
        );
        let last = dir.join("last_reserved_ip.0");
        assert_eq!(fs::read(&last).unwrap(), b"10.85.0.2");
        assert_eq!(mode(&last), 0o600);
        assert_eq!(names(&dir), ["10.85.0.2", "last_reserved_ip.0", "lock"]);
        assert_eq!(locked.last_reserved_ip(0).unwrap(), Some(ip("10.85.0.2")));
        assert_eq!(locked.last_reserved_ip(1).unwrap(), None);
    }

    #[test]
    fn one_scan_per_lock_stays_current_with_our_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        fs::write(dir.join("10.85.0.9"), "other\r\neth0").unwrap();
        fs::write(dir.join("10.85.0.3"), "").unwrap(); // stale, reclaimed below
        let mut locked = store.lock().unwrap();
        assert!(locked.find_by_id("abc", "eth0").unwrap().is_empty());
        // Written behind the scan's back: a second scan would see it, the cache does not,
        // which proves the directory is read once.
        fs::write(dir.join("10.85.0.7"), "abc\r\neth0").unwrap();
        assert!(locked.find_by_id("abc", "eth0").unwrap().is_empty());
        assert!(locked.reserve("abc", "eth0", ip("10.85.0.3"), 0).unwrap());
        assert!(locked.reserve("abc", "eth0", ip("1100::3"), 1).unwrap());
        assert_eq!(
            locked.find_by_id("abc", "eth0").unwrap(),
            [ip("10.85.0.3"), ip("1100::3")]
        );
        // Listing all leases (GC) and releases rescan, so they see every lease on
        // disk, including 10.85.0.7.
        let owners: Vec<_> = locked.leases().unwrap().into_iter().map(|l| l.ip).collect();
        assert_eq!(
            owners,
            [
                ip("10.85.0.3"),
                ip("10.85.0.7"),
                ip("10.85.0.9"),
                ip("1100::3")
            ]
        );
        let mut released = locked.release_by_id("abc", "eth0").unwrap();
        released.sort();
        assert_eq!(released, [ip("10.85.0.3"), ip("10.85.0.7"), ip("1100::3")]);
        assert!(locked.find_by_id("abc", "eth0").unwrap().is_empty());
        assert_eq!(
            names(&dir),
            [
                "10.85.0.9",
                "last_reserved_ip.0",
                "last_reserved_ip.1",
                "lock"
            ]
        );
    }

    #[test]
    fn later_calls_take_the_leases_from_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        fs::write(dir.join("10.85.0.9"), "other\r\neth0").unwrap();
        assert!(find(&mut store, "abc").is_empty(), "scans and publishes");
        assert_eq!(cache_files(&tmp).len(), 1);
        let lease = dir.join("10.85.0.9");
        rewrite_in_place(&lease, "abc\r\neth0");
        assert!(find(&mut store, "abc").is_empty(), "the cache was used");
        assert_eq!(find(&mut store, "other"), [ip("10.85.0.9")]);
        // Our own writes keep the cache current.
        {
            let mut locked = store.lock().unwrap();
            assert!(locked.reserve("new", "eth0", ip("10.85.0.3"), 0).unwrap());
        }
        assert_eq!(find(&mut store, "new"), [ip("10.85.0.3")]);
        assert_eq!(find(&mut store, "other"), [ip("10.85.0.9")]);
        // Releases scan: the lease on disk belongs to abc, whatever the cache says.
        let released = store.lock().unwrap().release_by_id("abc", "eth0").unwrap();
        assert_eq!(released, [ip("10.85.0.9")]);
        assert!(!lease.exists());
        assert!(find(&mut store, "other").is_empty());
        assert_eq!(find(&mut store, "new"), [ip("10.85.0.3")]);
    }

    #[test]
    fn leases_written_or_removed_by_another_plugin_are_seen_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        {
            let mut locked = store.lock().unwrap();
            assert!(locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap());
        }
        // The reference plugin, right after us (same clock tick): a new lease, ...
        fs::write(dir.join("10.85.0.5"), "ref\r\neth0").unwrap();
        assert_eq!(find(&mut store, "ref"), [ip("10.85.0.5")]);
        // ... a released one, ...
        fs::remove_file(dir.join("10.85.0.2")).unwrap();
        assert!(find(&mut store, "abc").is_empty());
        // ... and a name removed and created again for another container. Its
        // inode number is likely the freed one; the content is read afresh.
        for owner in ["x1", "x2", "x3"] {
            fs::remove_file(dir.join("10.85.0.5")).unwrap();
            fs::write(dir.join("10.85.0.5"), format!("{owner}\r\neth0")).unwrap();
            assert_eq!(find(&mut store, owner), [ip("10.85.0.5")]);
            assert!(find(&mut store, "ref").is_empty());
        }
        // A legacy lease written by an old plugin matches too.
        fs::write(dir.join("10.85.0.6"), "abc\n").unwrap();
        assert_eq!(find(&mut store, "abc"), [ip("10.85.0.6")]);
    }

    #[test]
    fn duplicate_check_fires_for_a_lease_known_only_from_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let spec = crate::range::RangeSpec {
            subnet: "10.85.0.0/24".parse().unwrap(),
            range_start: None,
            range_end: None,
            gateway: None,
        };
        let set = crate::range::RangeSet::from_specs(&[spec]).unwrap();
        let add = |store: &mut DiskStore| {
            let mut locked = store.lock().unwrap();
            crate::allocator::allocate(&mut locked, 0, &set, "abc", "eth0", None)
        };
        let first = add(&mut store).unwrap();
        let ip = first.address.ip();
        let err = add(&mut store).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{ip} has been allocated to abc, duplicate allocation is not allowed")
        );
        // The same when the lease was written by the reference plugin.
        store.lock().unwrap().release_by_id("abc", "eth0").unwrap();
        fs::write(store.dir().join("10.85.0.77"), "abc\r\neth0").unwrap();
        let err = add(&mut store).unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.85.0.77 has been allocated to abc, duplicate allocation is not allowed"
        );
    }

    #[test]
    fn corrupt_truncated_old_or_missing_cache_means_a_scan() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let lease = store.dir().join("10.85.0.9");
        fs::write(&lease, "other\r\neth0").unwrap();
        let mut owner = "other";
        for damage in [
            "",
            "garbage",
            "cni-rs host-local lease cache v0\n",
            "truncate",
            "remove",
        ] {
            assert_eq!(find(&mut store, owner), [ip("10.85.0.9")], "{damage:?}");
            let [file] = cache_files(&tmp).try_into().unwrap();
            match damage {
                "truncate" => {
                    let text = fs::read_to_string(&file).unwrap();
                    fs::write(&file, &text[..text.len() - 4]).unwrap();
                }
                "remove" => fs::remove_file(&file).unwrap(),
                _ => fs::write(&file, damage).unwrap(),
            }
            // Still signed, but the cache cannot be used: the change is seen.
            owner = if owner == "other" { "abc" } else { "other" };
            rewrite_in_place(&lease, &format!("{owner}\r\neth0"));
        }
        assert_eq!(find(&mut store, owner), [ip("10.85.0.9")]);
    }

    #[test]
    fn a_writer_killed_before_publishing_leaves_the_directory_unsigned() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        assert!(find(&mut store, "abc").is_empty());
        let [file] = cache_files(&tmp).try_into().unwrap();
        let published = fs::read(&file).unwrap();
        {
            let mut locked = store.lock().unwrap();
            assert!(locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap());
            // Killed here: the lease exists, the cache is the old one, no sign.
            std::mem::forget(locked);
        }
        store.lock_file.unlock().unwrap();
        fs::write(&file, &published).unwrap();
        // A half-written cache file of the killed writer is left too.
        fs::write(tmp.path().join("cache/.tmp-1-2-3"), "cni-rs").unwrap();
        assert_eq!(find(&mut store, "abc"), [ip("10.85.0.2")]);
        assert!(dir.join("10.85.0.2").exists());
    }

    #[test]
    fn without_a_cache_every_call_scans() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = DiskStore::open_with_cache(tmp.path(), "crio", None).unwrap();
        let lease = store.dir().join("10.85.0.9");
        fs::write(&lease, "other\r\neth0").unwrap();
        assert_eq!(find(&mut store, "other"), [ip("10.85.0.9")]);
        rewrite_in_place(&lease, "abc\r\neth0");
        assert_eq!(find(&mut store, "abc"), [ip("10.85.0.9")]);
    }

    #[test]
    fn ipv6_file_names() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        let mut locked = store.lock().unwrap();
        assert!(
            locked
                .reserve("abc", "eth0", ip("1100:200:0::2"), 1)
                .unwrap()
        );
        assert_eq!(fs::read(dir.join("1100:200::2")).unwrap(), b"abc\r\neth0");
        assert_eq!(
            fs::read(dir.join("last_reserved_ip.1")).unwrap(),
            b"1100:200::2"
        );
        assert_eq!(
            locked.find_by_id("abc", "eth0").unwrap(),
            [ip("1100:200::2")]
        );
    }

    #[test]
    fn reserve_never_overwrites_existing_lease() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        fs::write(dir.join("10.85.0.2"), "other\r\neth0").unwrap();
        let mut locked = store.lock().unwrap();
        assert!(!locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap());
        assert_eq!(fs::read(dir.join("10.85.0.2")).unwrap(), b"other\r\neth0");
        assert!(!dir.join("last_reserved_ip.0").exists());
        assert!(!locked.reserve("x", "eth1", ip("10.85.0.2"), 0).unwrap());
        assert_eq!(names(&dir), ["10.85.0.2", "lock"], "no temp files left");
    }

    #[test]
    fn stale_empty_lease_is_reclaimed_and_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        fs::write(dir.join("10.85.0.2"), "").unwrap();
        fs::write(dir.join("10.85.0.3"), " \n").unwrap();
        let mut locked = store.lock().unwrap();
        assert!(locked.leases().unwrap().is_empty());
        assert!(locked.find_by_id("", "").unwrap().is_empty());
        assert!(locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap());
        assert_eq!(fs::read(dir.join("10.85.0.2")).unwrap(), b"abc\r\neth0");
        assert!(locked.reserve("def", "eth0", ip("10.85.0.3"), 0).unwrap());
    }

    #[test]
    fn stray_files_are_ignored_and_dead_temp_files_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        fs::write(dir.join(".tmp-10.85.0.9-1234"), "abc\r\neth0").unwrap();
        fs::write(dir.join("last_reserved_ip.0"), "abc").unwrap();
        fs::write(dir.join("notes.txt"), "abc\r\neth0").unwrap();
        fs::create_dir(dir.join("10.85.0.7")).unwrap();
        std::os::unix::fs::symlink(dir.join("notes.txt"), dir.join("10.85.0.8")).unwrap();
        let mut locked = store.lock().unwrap();
        assert!(locked.find_by_id("abc", "eth0").unwrap().is_empty());
        assert!(locked.release_by_id("abc", "eth0").unwrap().is_empty());
        assert!(locked.leases().unwrap().is_empty());
        assert_eq!(locked.last_reserved_ip(0).unwrap(), None, "unparsable");
        assert!(dir.join("last_reserved_ip.0").exists());
        assert!(dir.join("notes.txt").exists());
        // A temp file seen under the lock belongs to a dead writer.
        assert!(!dir.join(".tmp-10.85.0.9-1234").exists());
        assert!(!locked.reserve("abc", "eth0", ip("10.85.0.7"), 0).unwrap());
        assert!(!locked.reserve("abc", "eth0", ip("10.85.0.8"), 0).unwrap());
    }

    #[test]
    fn leftover_temp_file_of_same_name_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        let stale = dir.join(format!(".tmp-10.85.0.2-{}", std::process::id()));
        fs::write(&stale, "garbage").unwrap();
        let mut locked = store.lock().unwrap();
        assert!(locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap());
        assert_eq!(fs::read(dir.join("10.85.0.2")).unwrap(), b"abc\r\neth0");
        assert!(!stale.exists());
    }

    #[test]
    fn last_reserved_ip_tolerates_whitespace() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        fs::write(store.dir().join("last_reserved_ip.3"), "10.1.2.3\n").unwrap();
        let locked = store.lock().unwrap();
        assert_eq!(locked.last_reserved_ip(3).unwrap(), Some(ip("10.1.2.3")));
    }

    #[test]
    fn find_and_release_by_id() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        let mut locked = store.lock().unwrap();
        locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap();
        locked.reserve("abc", "eth0", ip("fd00::2"), 1).unwrap();
        locked.reserve("abc", "eth1", ip("10.85.0.3"), 0).unwrap();
        locked.reserve("def", "eth0", ip("10.85.0.4"), 0).unwrap();
        assert_eq!(
            locked.find_by_id("abc", "eth0").unwrap(),
            [ip("10.85.0.2"), ip("fd00::2")]
        );
        assert_eq!(
            locked.release_by_id("abc", "eth0").unwrap(),
            [ip("10.85.0.2"), ip("fd00::2")]
        );
        assert_eq!(
            names(&dir),
            [
                "10.85.0.3",
                "10.85.0.4",
                "last_reserved_ip.0",
                "last_reserved_ip.1",
                "lock"
            ]
        );
        assert!(
            locked.release_by_id("abc", "eth0").unwrap().is_empty(),
            "idempotent"
        );
        assert_eq!(
            fs::read(dir.join("last_reserved_ip.0")).unwrap(),
            b"10.85.0.4",
            "never rewound"
        );
    }

    #[test]
    fn legacy_lease_released_only_when_no_current_match() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        fs::write(dir.join("10.85.0.5"), "abc\n").unwrap();
        let mut locked = store.lock().unwrap();
        locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap();
        assert_eq!(
            locked.find_by_id("abc", "eth0").unwrap(),
            [ip("10.85.0.2"), ip("10.85.0.5")]
        );
        assert_eq!(
            locked.release_by_id("abc", "eth0").unwrap(),
            [ip("10.85.0.2")]
        );
        assert!(dir.join("10.85.0.5").exists());
        assert_eq!(
            locked.release_by_id("abc", "eth0").unwrap(),
            [ip("10.85.0.5")]
        );
        assert!(!dir.join("10.85.0.5").exists());
    }

    #[test]
    fn release_ip_and_leases() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp);
        let dir = store.dir().to_path_buf();
        fs::write(dir.join("10.85.0.9"), "old").unwrap();
        let mut locked = store.lock().unwrap();
        locked.reserve("abc", "eth0", ip("10.85.0.2"), 0).unwrap();
        locked.reserve("def", "net1", ip("10.85.0.10"), 0).unwrap();
        assert_eq!(
            locked.leases().unwrap(),
            [
                Lease {
                    ip: ip("10.85.0.10"),
                    id: "def".into(),
                    ifname: Some("net1".into())
                },
                Lease {
                    ip: ip("10.85.0.2"),
                    id: "abc".into(),
                    ifname: Some("eth0".into())
                },
                Lease {
                    ip: ip("10.85.0.9"),
                    id: "old".into(),
                    ifname: None
                },
            ]
        );
        assert!(locked.release_ip(ip("10.85.0.2")).unwrap());
        assert!(!locked.release_ip(ip("10.85.0.2")).unwrap());
        assert!(!dir.join("10.85.0.2").exists());
    }

    #[test]
    fn lock_is_exclusive_across_handles() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = open(&tmp);
        let b = open(&tmp);
        let guard = a.lock().unwrap();
        assert!(matches!(
            b.lock_file.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(guard);
        b.lock_file.try_lock().unwrap();
    }
}
