//! Unique names for namespaces, interfaces, bridges and container IDs.
//!
//! Names combine the caller's prefix, the process id and a per-process counter,
//! so tests running in parallel (threads of one test binary, or several test
//! binaries at once) never collide, plus a few characters from the clock so a
//! name left behind by an earlier run with a recycled pid is not reused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest Linux interface name in bytes (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;

static COUNTER: AtomicU64 = AtomicU64::new(0);

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Encodes `n` in lowercase base 36, left-padded with `0` to at least `width`.
fn base36(mut n: u64, width: usize) -> String {
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(BASE36[(n % 36) as usize]);
        n /= 36;
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

/// Keeps `[A-Za-z0-9_.-]` and turns everything else into `-`; an empty prefix
/// becomes `t`, and a prefix not starting with a letter or digit gets a `t` in
/// front (container IDs and network names must start alphanumerically).
fn sanitize(prefix: &str) -> String {
    let mut out: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 't');
    }
    out
}

fn next_count() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn clock_chars(width: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let s = base36(u64::from(nanos), width);
    s[s.len() - width..].to_string()
}

/// A name unique to this call: `<prefix>-<pid>-<counter>-<3 clock chars>`.
///
/// Suitable for netns names, container IDs, file names and network names
/// (only `[A-Za-z0-9_.-]`, starting with a letter or digit). Not bounded in
/// length: use [`unique_ifname`] for interface names.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{}-{}-{}-{}",
        sanitize(prefix),
        std::process::id(),
        next_count(),
        clock_chars(3)
    )
}

/// A unique interface name of at most [`IFNAME_MAX`] (15) bytes.
///
/// Layout: the prefix cut to 7 bytes, the pid in 5 base-36 chars, the counter
/// in 3 base-36 chars (fixed widths, so no two pid/counter pairs give the same
/// name), then clock chars up to 15 bytes. Example: `unique_ifname("br")`
/// gives something like `br02n9k00apq3`.
pub fn unique_ifname(prefix: &str) -> String {
    let mut prefix = sanitize(prefix);
    prefix.truncate(7);
    let pid = base36(u64::from(std::process::id()), 5);
    // Fixed width keeps the name injective; wraps after 46656 names per process.
    let count = base36(next_count() % (36 * 36 * 36), 3);
    let mut name = format!("{prefix}{pid}{count}");
    let room = IFNAME_MAX.saturating_sub(name.len()).min(3);
    if room > 0 {
        name.push_str(&clock_chars(room));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ifnames_fit_and_differ() {
        let mut seen = HashSet::new();
        for prefix in ["br", "veth", "a-very-long-prefix", "", "x y/z"] {
            for _ in 0..200 {
                let name = unique_ifname(prefix);
                assert!(name.len() <= IFNAME_MAX, "{name} too long");
                assert!(
                    name.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                    "{name}"
                );
                assert!(seen.insert(name.clone()), "duplicate {name}");
            }
        }
    }

    #[test]
    fn names_are_unique_and_valid() {
        let a = unique_name("lo_add");
        let b = unique_name("lo_add");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("lo_add-{}-", std::process::id())));
        assert!(unique_name("-x").starts_with("t-x-"));
    }

    #[test]
    fn base36_pads() {
        assert_eq!(base36(0, 3), "000");
        assert_eq!(base36(35, 1), "z");
        assert_eq!(base36(36, 1), "10");
    }
}
