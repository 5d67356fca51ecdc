//! Facts about the machine and the builds, recorded with the numbers.

use std::path::Path;

use crate::host;
use crate::impls::REFERENCE_DIR;

/// What a reader needs to compare two runs.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `date -u` at the start.
    pub date: String,
    /// `uname -r`.
    pub kernel: String,
    /// Online CPUs.
    pub nproc: usize,
    /// CPU model.
    pub cpu: String,
    /// `iptables --version` (shows the nf_tables or legacy backend).
    pub iptables: String,
    /// Our build: commit and profile.
    pub ours: String,
    /// The reference: Debian package version, or why it is absent.
    pub reference: String,
    /// Load averages at the start (and at the end, once known): other work
    /// on the machine shows up here.
    pub load: String,
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Collects the facts; anything that cannot be read is `unknown`.
/// `reference` is the directory of the reference plugins, `None` when they
/// are missing.
pub fn collect(workspace: &Path, reference: Option<&Path>) -> Facts {
    let unknown = || "unknown".to_string();
    let first_line = |program: &str, args: &[&str]| {
        host::run_ok(program, args)
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .filter(|s| !s.is_empty())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(unknown);
    let root = workspace.to_string_lossy();
    let commit = first_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let dirty = host::run_ok(
        "git",
        &["-C", &root, "status", "--porcelain", "--untracked-files=no"],
    )
    .map(|s| !s.trim().is_empty())
    .unwrap_or(false);
    let profile = if cfg!(debug_assertions) {
        "DEBUG build (numbers are not meaningful)"
    } else {
        "release build"
    };
    let ours = match commit {
        Some(c) if dirty => format!("{c} + uncommitted changes, {profile}"),
        Some(c) => format!("{c}, {profile}"),
        None => profile.to_string(),
    };
    let reference = match reference {
        None => "not installed: ours only".to_string(),
        Some(dir) if dir == Path::new(REFERENCE_DIR) => first_line(
            "dpkg-query",
            &["-W", "-f=${Version}\n", "containernetworking-plugins"],
        )
        .map(|v| format!("containernetworking-plugins {v} in {REFERENCE_DIR}"))
        .unwrap_or_else(|| format!("{REFERENCE_DIR} (version unknown)")),
        Some(dir) => format!("{} (version unknown)", dir.display()),
    };
    Facts {
        date: first_line("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(unknown),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| unknown()),
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu,
        iptables: first_line("iptables", &["--version"]).unwrap_or_else(unknown),
        ours,
        reference,
        load: format!("{} at start", loadavg()),
    }
}

impl Facts {
    /// `key: value` pairs in display order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("date", self.date.clone()),
            ("kernel", self.kernel.clone()),
            ("nproc", self.nproc.to_string()),
            ("cpu", self.cpu.clone()),
            ("iptables", self.iptables.clone()),
            ("ours", self.ours.clone()),
            ("reference", self.reference.clone()),
            ("load avg", self.load.clone()),
        ]
    }
}
