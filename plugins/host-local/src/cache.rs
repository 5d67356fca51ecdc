//! A cache of the store directory's lease files, so an ADD does not open and
//! read every lease to do the duplicate check (the reference reads every
//! lease file of the network on each ADD).
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
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::files::overwrite_private;

/// The cache directory's name inside the `dataDir`.
pub const SUBDIR: &str = ".cni-rs-cache";
/// First line of a cache file; a different format uses a different line.
const MAGIC: &str = "cni-rs host-local lease cache v3";
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
/// cache records it. Entries loaded from a cache file share that file's text
/// (a thousand of them are loaded and dropped on every ADD); others own a
/// buffer of their own.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The text the name and the content are slices of.
    buffer: Rc<str>,
    /// Where the file name is in `buffer`: an IP address (a scan keeps only
    /// such names, and a cache lists what a scan found).
    name: Range<usize>,
    /// Where the file content is in `buffer`, as a scan reads it.
    text: Range<usize>,
}

impl Entry {
    /// An entry with its own buffer.
    pub fn new(name: &str, text: &str) -> Entry {
        let mut buffer = String::with_capacity(name.len() + text.len());
        buffer.push_str(name);
        buffer.push_str(text);
        Entry {
            buffer: Rc::from(buffer),
            name: 0..name.len(),
            text: name.len()..name.len() + text.len(),
        }
    }

    /// The file name.
    pub fn name(&self) -> &str {
        self.buffer.get(self.name.clone()).unwrap_or_default()
    }

    /// The file content.
    pub fn text(&self) -> &str {
        self.buffer.get(self.text.clone()).unwrap_or_default()
    }

    /// The address the name spells. Parsed on demand: an ADD compares the
    /// contents of a thousand leases and needs the address of the few that
    /// match.
    pub fn ip(&self) -> Option<IpAddr> {
        self.name().parse().ok()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.name(), self.text()) == (other.name(), other.text())
    }
}

impl Eq for Entry {}

/// The cache file of the directory described by `meta`.
fn file_for(cache_dir: &Path, meta: &fs::Metadata) -> PathBuf {
    cache_dir.join(format!("{:x}-{:x}", meta.dev(), meta.ino()))
}

/// The cached entries of the store directory described by `meta` (taken under
/// the lock), or `None` unless the directory carries the cache's signature.
pub fn load(cache_dir: &Path, meta: &fs::Metadata) -> Option<Vec<Entry>> {
    let text = fs::read_to_string(file_for(cache_dir, meta)).ok()?;
    let (signature, entries) = parse(Rc::from(text))?;
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

/// FNV-1a over 64-bit words (then the remaining bytes), each step followed by
/// a rotation so high bits reach low ones: enough to tell a torn or half-old
/// file from a whole one. Word-wise because a thousand leases are hashed twice
/// per ADD (on load and on publish); byte-wise FNV took 0.1 ms of that.
fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let step = |hash: u64, value: u64| (hash ^ value).wrapping_mul(PRIME).rotate_left(23);
    let length = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let mut words = bytes.chunks_exact(8);
    let mut hash = step(0xcbf2_9ce4_8422_2325, length);
    for word in &mut words {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(word);
        hash = step(hash, u64::from_le_bytes(buf));
    }
    words
        .remainder()
        .iter()
        .fold(hash, |hash, &byte| step(hash, u64::from(byte)))
}

/// Parses [`render`]'s format; `None` for anything else. The entries are
/// slices of `text`.
fn parse(text: Rc<str>) -> Option<(Signature, Vec<Entry>)> {
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
        // `rest` is always a suffix of `text`: this is where the entry starts.
        let at = text.len() - rest.len();
        let (line, after) = rest.split_once('\n')?;
        let (name, len) = line.split_once(' ')?;
        let len: usize = len.parse().ok()?;
        after.get(..len)?;
        rest = after.get(len..)?.strip_prefix('\n')?;
        let content_at = at + line.len() + 1;
        entries.push(Entry {
            buffer: Rc::clone(&text),
            name: at..at + name.len(),
            text: content_at..content_at + len,
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
        Entry::new(name, text)
    }

    fn entries() -> Vec<Entry> {
        vec![
            entry("10.0.0.2", "abc\r\neth0"),
            entry("10.0.0.3", ""),
            entry("fd00::2", " odd\nlegacy \n\n"),
        ]
    }

    fn pairs(entries: &[Entry]) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        entries.iter().map(|e| (e.name(), e.text()))
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
        assert_eq!(parse(Rc::from(text)), Some((signature(), entries())));
        assert_eq!(
            parse(Rc::from(render(&signature(), pairs(&[])))),
            Some((signature(), Vec::new()))
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_rejected() {
        let text = render(&signature(), pairs(&entries()));
        for len in 0..text.len() {
            assert_eq!(parse(Rc::from(&text[..len])), None, "truncated to {len}");
        }
        let header_end = text.find(" 3 ").unwrap();
        let corruptions = [
            text.replace("cache v3", "cache v2"),
            text.replace(" 9\n", " 10\n"),
            format!("{text}junk"),
            text.replace("10.0.0.3", "lockfile"),
            format!("{} 2 {}", &text[..header_end], &text[header_end + 3..]),
            // Same structure, one content byte changed: only the checksum tells.
            text.replace("abc", "abd"),
        ];
        for corrupt in corruptions {
            assert_ne!(corrupt, text);
            assert_eq!(parse(Rc::from(corrupt.as_str())), None, "{corrupt:?}");
        }
    }

    #[test]
    fn checksum_sees_every_byte_length_and_order() {
        let data: Vec<u8> = (0..1003u32).map(|i| (i * 7 % 251) as u8).collect();
        let sum = checksum(&data);
        for at in 0..data.len() {
            let mut changed = data.clone();
            changed[at] ^= 0x01;
            assert_ne!(checksum(&changed), sum, "byte {at}");
        }
        let mut swapped = data.clone();
        swapped.swap(0, 8);
        assert_ne!(checksum(&swapped), sum);
        assert_ne!(checksum(&data[..1000]), checksum(&data));
        assert_ne!(checksum(&[0; 8]), checksum(&[0; 16]));
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
        assert_eq!(parse(Rc::from(torn.as_str())), None);
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
