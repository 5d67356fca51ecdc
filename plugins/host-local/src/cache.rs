//! A cache of the store directory's lease files, so an ADD does not open and
//! read every lease to do the duplicate check (REFERENCE §5.4).
//!
//! # What is cached, and where
//!
//! One file per store directory, `<cache dir>/<dev>-<ino>` (hex device and
//! inode number of the store directory). The cache directory is
//! [`SUBDIR`] of the `dataDir`, beside the network directories: no network
//! can have that name (network names start with a letter or a digit), so the
//! reference plugin never reads it, and a `dataDir` removed as a whole (a test's,
//! a decommissioned node's) takes its cache along. It lists, sorted by name,
//! every regular file of the store whose name parses as an IP, with its
//! content, as a full scan would find them. Nothing is added to the store
//! directory itself. A cache that survives a reboot stays valid exactly as
//! long as its signature does.
//!
//! # Why a cached list can be trusted
//!
//! The cache is only trusted while the store directory is *signed*: its mtime
//! equals the [`Signature`] recorded in the cache file **and** differs from its
//! ctime. That proves no entry was added, removed or renamed since:
//!
//! * Every change of a directory's entries (create, link, unlink, rename, by any
//!   process, the reference included) sets the directory's mtime and ctime to the
//!   same current time, which unsigns it. Setting the mtime explicitly (which is
//!   how we sign) also moves the ctime to now, so a signed directory is one whose
//!   last change was a sign. This does not depend on timestamp granularity: a
//!   change in the same clock tick as our sign still leaves mtime == ctime.
//! * We sign only after writing a cache file that describes the directory as it
//!   is, with the lock held, so the last sign always belongs to the cache file
//!   that is current. A writer killed between changing entries and signing
//!   leaves the directory unsigned; one killed while writing the cache leaves the
//!   previous cache file (it is replaced by rename) and an unsigned directory.
//! * A lease's content never changes while its name exists: both
//!   implementations write it once, under the lock, before anyone else can read
//!   it (the reference with `O_EXCL`, we through a hard link), and replace it
//!   only by removing the name. So unchanged entries have unchanged contents.
//!
//! Anything unexpected — no cache, another format or version, a corrupt or
//! truncated file, another directory's identity, an mtime that is not ours, or
//! a file system that does not keep the nanoseconds we set — makes the caller
//! scan the directory as before. A cache that cannot be written or a sign that
//! fails only costs the next call a scan. Releases (DEL, GC) always scan.

use std::fmt::Write as _;
use std::fs::{self, DirBuilder, File};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::overwrite_private;

/// The cache directory's name inside the `dataDir`.
pub const SUBDIR: &str = ".cni-rs-cache";
/// First line of a cache file; a different format uses a different line.
const MAGIC: &str = "cni-rs host-local lease cache v2";
/// Last line of a complete cache file.
const END: &str = "end";
const DIR_MODE: u32 = 0o700;

/// The store directory's identity and the mtime we set on it when signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    dev: u64,
    ino: u64,
    secs: i64,
    nanos: i64,
}

impl Signature {
    /// A new signature for the directory described by `meta`: one second before
    /// now, so it is never equal to the ctime the sign itself produces.
    pub fn new(meta: &fs::Metadata) -> Signature {
        let since_epoch = SystemTime::now()
            .checked_sub(Duration::from_secs(1))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        Signature {
            dev: meta.dev(),
            ino: meta.ino(),
            secs: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            nanos: i64::from(since_epoch.subsec_nanos()),
        }
    }

    /// Whether the directory described by `meta` carries this signature.
    fn matches(&self, meta: &fs::Metadata) -> bool {
        let signed = (meta.mtime(), meta.mtime_nsec()) != (meta.ctime(), meta.ctime_nsec());
        signed
            && (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec())
                == (self.dev, self.ino, self.secs, self.nanos)
    }

    /// The mtime to set.
    fn time(&self) -> SystemTime {
        let secs = u64::try_from(self.secs).unwrap_or_default();
        let nanos = u32::try_from(self.nanos).unwrap_or_default();
        UNIX_EPOCH + Duration::new(secs, nanos)
    }
}

/// One lease file: its name and its content, as a scan finds it and as the
/// cache records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name, an IP address (a scan keeps only such names, and a cache
    /// lists what a scan found).
    pub name: String,
    /// File content, as a scan reads it.
    pub text: String,
}

impl Entry {
    /// The address the name spells. Parsed on demand: an ADD compares the
    /// contents of a thousand leases and needs the address of the few that
    /// match.
    pub fn ip(&self) -> Option<IpAddr> {
        self.name.parse().ok()
    }
}

/// The cache file of the directory described by `meta`.
fn file_for(cache_dir: &Path, meta: &fs::Metadata) -> PathBuf {
    cache_dir.join(format!("{:x}-{:x}", meta.dev(), meta.ino()))
}

/// The cached entries of the store directory described by `meta` (taken under
/// the lock), or `None` unless the directory carries the cache's signature.
pub fn load(cache_dir: &Path, meta: &fs::Metadata) -> Option<Vec<Entry>> {
    let data = fs::read(file_for(cache_dir, meta)).ok()?;
    let text = std::str::from_utf8(&data).ok()?;
    let (signature, entries) = parse(text)?;
    signature.matches(meta).then_some(entries)
}

/// Records `entries` (file name and content of each lease, sorted by name) as
/// the content of the store directory `dir` (described by `meta`), then signs
/// the directory. Call with the lock held and `entries` exactly matching the
/// directory.
///
/// # Errors
///
/// I/O failures; the directory is then left as it was (unsigned, since the
/// caller changed or scanned it), so the next call scans.
pub fn publish<'a>(
    cache_dir: &Path,
    dir: &Path,
    meta: &fs::Metadata,
    entries: impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
) -> io::Result<()> {
    let signature = Signature::new(meta);
    create_private_dir(cache_dir)?;
    // Rewritten in place, not replaced by a rename: ext4 flushes a file renamed
    // over another at once, which cost an ADD 0.7 ms. A torn file (a crash in
    // the middle) fails its checksum, and the directory is unsigned then anyway.
    overwrite_private(
        &file_for(cache_dir, meta),
        render(&signature, entries).as_bytes(),
    )?;
    File::open(dir)?.set_modified(signature.time())
}

/// Creates the cache directory (and parents) with mode 0700 if missing.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// The file format: the magic line, `<dev> <ino> <secs> <nanos> <count>
/// <checksum>`, then per entry `<name> <content length in bytes>` and the
/// content on its own line, then `end`. The checksum (hex) is [`checksum`] of
/// everything after its line.
fn render<'a>(
    signature: &Signature,
    entries: impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
) -> String {
    let size: usize = entries
        .clone()
        .map(|(name, text)| name.len() + text.len() + 8)
        .sum();
    let count = entries.len();
    let mut body = String::with_capacity(size + 8);
    // A thousand leases are rendered on every ADD: plain pushes, little
    // formatting. Writing to a String cannot fail.
    for (name, text) in entries {
        body.push_str(name);
        let _ = writeln!(body, " {}", text.len());
        body.push_str(text);
        body.push('\n');
    }
    body.push_str(END);
    body.push('\n');
    let mut out = String::with_capacity(body.len() + 128);
    let _ = writeln!(
        out,
        "{MAGIC}\n{} {} {} {} {count} {:016x}",
        signature.dev,
        signature.ino,
        signature.secs,
        signature.nanos,
        checksum(body.as_bytes())
    );
    out.push_str(&body);
    out
}

/// 64-bit FNV-1a: enough to tell a torn or half-old file from a whole one.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Parses [`render`]'s format; `None` for anything else.
fn parse(text: &str) -> Option<(Signature, Vec<Entry>)> {
    let rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
    let (header, mut rest) = rest.split_once('\n')?;
    let mut fields = header.split(' ');
    let mut field = || fields.next();
    let signature = Signature {
        dev: field()?.parse().ok()?,
        ino: field()?.parse().ok()?,
        secs: field()?.parse().ok()?,
        nanos: field()?.parse().ok()?,
    };
    let count: usize = field()?.parse().ok()?;
    let sum = u64::from_str_radix(field()?, 16).ok()?;
    if field().is_some() || checksum(rest.as_bytes()) != sum {
        return None;
    }
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let (line, after) = rest.split_once('\n')?;
        let (name, len) = line.split_once(' ')?;
        let len: usize = len.parse().ok()?;
        let content = after.get(..len)?;
        rest = after.get(len..)?.strip_prefix('\n')?;
        entries.push(Entry {
            name: name.to_owned(),
            text: content.to_owned(),
        });
    }
    if rest != format!("{END}\n") {
        return None;
    }
    Some((signature, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, text: &str) -> Entry {
        Entry {
            name: name.into(),
            text: text.into(),
        }
    }

    fn entries() -> Vec<Entry> {
        vec![
            entry("10.0.0.2", "abc\r\neth0"),
            entry("10.0.0.3", ""),
            entry("fd00::2", " odd\nlegacy \n\n"),
        ]
    }

    fn pairs(entries: &[Entry]) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        entries.iter().map(|e| (e.name.as_str(), e.text.as_str()))
    }

    fn signature() -> Signature {
        Signature {
            dev: 2049,
            ino: 77,
            secs: 1_700_000_000,
            nanos: 123_456_789,
        }
    }

    #[test]
    fn render_and_parse_round_trip() {
        let text = render(&signature(), pairs(&entries()));
        assert_eq!(parse(&text), Some((signature(), entries())));
        assert_eq!(
            parse(&render(&signature(), pairs(&[]))),
            Some((signature(), Vec::new()))
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_rejected() {
        let text = render(&signature(), pairs(&entries()));
        for len in 0..text.len() {
            assert_eq!(parse(&text[..len]), None, "truncated to {len}");
        }
        let header_end = text.find(" 3 ").unwrap();
        let corruptions = [
            text.replace("cache v2", "cache v1"),
            text.replace(" 9\n", " 10\n"),
            format!("{text}junk"),
            text.replace("10.0.0.3", "lockfile"),
            format!("{} 2 {}", &text[..header_end], &text[header_end + 3..]),
            // Same structure, one content byte changed: only the checksum tells.
            text.replace("abc", "abd"),
        ];
        for corrupt in corruptions {
            assert_ne!(corrupt, text);
            assert_eq!(parse(&corrupt), None, "{corrupt:?}");
        }
    }

    /// An empty store directory in a temp dir, and where its cache goes.
    struct Fixture {
        _tmp: tempfile::TempDir,
        cache: PathBuf,
        dir: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let tmp = tempfile::tempdir().unwrap();
            let cache = tmp.path().join("cache");
            let dir = tmp.path().join("store");
            fs::create_dir(&dir).unwrap();
            Fixture {
                _tmp: tmp,
                cache,
                dir,
            }
        }

        fn meta(&self) -> fs::Metadata {
            fs::metadata(&self.dir).unwrap()
        }

        fn publish(&self, entries: &[Entry]) {
            publish(&self.cache, &self.dir, &self.meta(), pairs(entries)).unwrap();
        }

        fn load(&self) -> Option<Vec<Entry>> {
            load(&self.cache, &self.meta())
        }

        fn cache_file(&self) -> PathBuf {
            file_for(&self.cache, &self.meta())
        }
    }

    #[test]
    fn a_shorter_rewrite_in_place_leaves_no_old_tail() {
        let fx = Fixture::new();
        fx.publish(&entries());
        let old = fs::read_to_string(fx.cache_file()).unwrap();
        let fewer = &entries()[..1];
        fx.publish(fewer);
        assert_eq!(fx.load().as_deref(), Some(fewer));
        assert_eq!(fs::metadata(fx.cache_file()).unwrap().mode() & 0o777, 0o600);
        // What a rewrite without the truncation would leave, the new file
        // followed by the old one's tail, is refused.
        let new = fs::read_to_string(fx.cache_file()).unwrap();
        assert!(new.len() < old.len());
        let torn = format!("{new}{}", &old[new.len()..]);
        assert_eq!(parse(&torn), None);
    }

    #[test]
    fn publish_signs_and_any_entry_change_unsigns() {
        let fx = Fixture::new();
        assert_eq!(fx.load(), None, "no cache yet");
        fx.publish(&entries());
        assert_eq!(fs::metadata(&fx.cache).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fx.load(), Some(entries()));
        // Any entry change, however soon, unsigns the directory.
        fs::write(fx.dir.join("x"), "").unwrap();
        assert_eq!(fx.load(), None);
    }

    #[test]
    fn a_sign_without_its_cache_file_is_not_trusted() {
        let fx = Fixture::new();
        fx.publish(&entries());
        // Someone else sets the mtime (e.g. `touch -d`): not our signature.
        File::open(&fx.dir)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(5))
            .unwrap();
        assert_eq!(fx.load(), None);
        // A corrupt cache file for a signed directory is ignored.
        fx.publish(&entries());
        fs::write(fx.cache_file(), "garbage").unwrap();
        assert_eq!(fx.load(), None);
    }
}
