//! End-to-end benchmark: our `bridge` + `host-local` against Debian's
//! reference plugins, with CRI-O's `100-crio-bridge.conf`, interleaved in one
//! run so that machine noise hits both.
//!
//! Run as root from a release build (`scripts/bench.sh` does both):
//!
//! ```text
//! cargo build --release --workspace && sudo target/release/bench [--quick] [--runs N] [--pods N]
//! ```
//!
//! Our plugins are the ones next to this binary (or in `$CNI_RS_PLUGIN_DIR`);
//! the reference is `/usr/lib/cni` or `--reference DIR` (when missing, only
//! ours is measured). Ours is also measured with `ipMasqBackend: "nftables"`
//! in a phase of its own (see `bench/nft.rs`).
//! Progress goes to stderr, the table to stdout, and the same table to
//! `results/bench.md` with a chart in `results/bench.svg`.
//!
//! Everything the bench creates carries the prefix `cnirsb-` (namespaces,
//! bridges, network names, masquerade comments, the lease directory) and is
//! swept at exit, after an error or Ctrl-C, and again at the next start; so
//! is the nftables masquerade table when it was absent at the start.

// A binary's modules would be looked up next to it in src/bin/; they live
// in src/bin/bench/ instead, so each is named by path.
#[path = "bench/cli.rs"]
mod cli;
#[path = "bench/cold.rs"]
mod cold;
#[path = "bench/cri.rs"]
mod cri;
#[path = "bench/ctx.rs"]
mod ctx;
#[path = "bench/error.rs"]
mod error;
#[path = "bench/exec.rs"]
mod exec;
#[path = "bench/figures.rs"]
mod figures;
#[path = "bench/host.rs"]
mod host;
#[path = "bench/impls.rs"]
mod impls;
#[path = "bench/ipv6.rs"]
mod ipv6;
#[path = "bench/machine.rs"]
mod machine;
#[path = "bench/nft.rs"]
mod nft;
#[path = "bench/parallel.rs"]
mod parallel;
#[path = "bench/pod.rs"]
mod pod;
#[path = "bench/pool.rs"]
mod pool;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/rss.rs"]
mod rss;
#[path = "bench/scale.rs"]
mod scale;
#[path = "bench/signals.rs"]
mod signals;
#[path = "bench/stats.rs"]
mod stats;
#[path = "bench/svg.rs"]
mod svg;
#[path = "bench/sweep.rs"]
mod sweep;
#[path = "bench/version.rs"]
mod version;

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use integration::Cleanup;

use cli::{Command, Options};
use ctx::Ctx;
use error::BenchResult;
use figures::{BINARIES, Figures};
use impls::{Impl, Kind, PREFIX};
use ipv6::Scenario;
use signals::Interrupt;

/// Serialises bench runs on one machine (they share bridge names).
const LOCK_FILE: &str = "/run/cni-rs-bench.lock";

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (where `results/` goes).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The directory holding our plugins: `$CNI_RS_PLUGIN_DIR`, else this
/// binary's directory.
fn ours_dir() -> BenchResult<PathBuf> {
    if let Some(dir) =
        std::env::var_os(integration::plugin::PLUGIN_DIR_ENV).filter(|d| !d.is_empty())
    {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("the bench binary has no directory")?;
    Ok(dir.to_path_buf())
}

fn has_binaries(dir: &Path, names: &[&str]) -> bool {
    names.iter().all(|n| dir.join(n).is_file())
}

fn take_lock() -> BenchResult<File> {
    let file = File::create(LOCK_FILE)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            Err(format!("another bench is running ({LOCK_FILE} is locked)").into())
        }
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

fn run(options: &Options) -> BenchResult<()> {
    // First, before any thread exists: every later thread inherits the mask.
    let interrupt = Interrupt::install()?;
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "needs root (network namespaces, bridges, iptables); run scripts/bench.sh as root"
                .into(),
        );
    }
    let _lock = take_lock()?;

    let (ours, reference_present) = locate_plugins(options)?;
    let reference = options.reference.as_path();

    let tmp = std::env::temp_dir();
    let stale = sweep::remove_stale_dirs(&tmp);
    let work = tempfile::Builder::new().prefix(PREFIX).tempdir_in(&tmp)?;
    let mut impls = vec![Impl::new(Kind::Ours, &ours, work.path())?];
    if reference_present {
        impls.push(Impl::new(Kind::Reference, reference, work.path())?);
    }
    let nftables = Impl::new(Kind::OursNftables, &ours, work.path())?;
    let owns_table = sweep::claim_nft_table()?;

    let mut cleanup = Cleanup::new();
    cleanup.remove_path(work.path());
    let mut sweep_impls = impls.clone();
    sweep_impls.push(nftables.clone());
    let swept_impls = sweep_impls.clone();
    cleanup.push(
        "sweep bench namespaces, bridges, chains and rules",
        move || {
            let swept = sweep::sweep(&swept_impls, owns_table);
            if !swept.errors.is_empty() {
                return Err(swept.errors.join("; "));
            }
            if owns_table {
                sweep::release_nft_table();
            }
            Ok(())
        },
    );

    let leftovers = sweep::sweep(&sweep_impls, owns_table);
    if !leftovers.is_empty() || stale > 0 {
        eprintln!(
            "bench: removed leftovers of an earlier run: {}, {stale} lease dir(s)",
            leftovers.summary()
        );
    }

    let mut facts = machine::collect(&workspace_root(), reference_present.then_some(reference));
    let figures = measure(options, &impls, &nftables, &interrupt, work.path())?;
    facts.load = format!(
        "{}, {} at end (1, 5, 15 min)",
        facts.load,
        machine::loadavg()
    );

    finish_cleanup(&mut cleanup, owns_table)?;
    write_results(&facts, &figures)
}

/// Our plugin directory (holding [`BINARIES`]) and whether the reference is present.
fn locate_plugins(options: &Options) -> BenchResult<(PathBuf, bool)> {
    let ours = ours_dir()?;
    if !has_binaries(&ours, &BINARIES) {
        return Err(format!(
            "our plugins are not in {}: run `cargo build --release --workspace` first",
            ours.display()
        )
        .into());
    }
    let reference = options.reference.as_path();
    let reference_present = has_binaries(reference, &["bridge", "host-local"]);
    if !reference_present {
        eprintln!(
            "bench: reference plugins not found in {} (apt-get install \
             containernetworking-plugins); measuring ours only",
            reference.display()
        );
    }
    Ok((ours, reference_present))
}

/// Runs the clean-up now and fails if it failed or left a namespace, a
/// bridge, an nftables masquerade rule, or the table when the run owns it
/// (`owns_table`, see `sweep::claim_nft_table`).
fn finish_cleanup(cleanup: &mut Cleanup, owns_table: bool) -> BenchResult<()> {
    let failures = cleanup.run_now();
    if !failures.is_empty() {
        return Err(format!("clean-up failed: {}", failures.join("; ")).into());
    }
    let left = host::netns_list()?
        .into_iter()
        .filter(|n| n.starts_with(PREFIX))
        .count();
    if left > 0 || Kind::ALL.iter().any(|k| host::link_exists(&k.network())) {
        return Err(format!("clean-up left {left} namespace(s) or a bridge behind").into());
    }
    let (rules, table) = sweep::nft_leftovers(owns_table)?;
    if rules > 0 || table {
        return Err(format!(
            "clean-up left {rules} nftables masquerade rule(s){} behind",
            if table { " and the table" } else { "" }
        )
        .into());
    }
    Ok(())
}

/// Prints the table and writes `results/bench.md` and `results/bench.svg`.
fn write_results(facts: &machine::Facts, figures: &Figures) -> BenchResult<()> {
    print!("{}", report::text(facts, figures));
    let results = workspace_root().join("results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("bench.md"), report::markdown(facts, figures))?;
    std::fs::write(
        results.join("bench.svg"),
        svg::chart(facts, &figures.rows()),
    )?;
    eprintln!(
        "bench: wrote {} and {}",
        results.join("bench.md").display(),
        results.join("bench.svg").display()
    );
    Ok(())
}

/// Units of work for the progress bar.
fn total_steps(o: &Options, n_impls: usize) -> u64 {
    let steps = n_impls // warm-up
        + o.version_runs
        + o.runs
        + nft::steps(o)
        + cri::steps(o)
        + o.rss_runs
        + 3 * o.ipv6_runs
        + o.parallel_rounds * n_impls
        + n_impls * (2 * o.scale_runs + 2 * o.pods);
    steps as u64
}

/// Runs every phase; `impls` are ours and the reference (when present),
/// `nftables` is ours with the nftables backend (its own phase only).
fn measure(
    options: &Options,
    impls: &[Impl],
    nftables: &Impl,
    interrupt: &Interrupt,
    work_dir: &Path,
) -> BenchResult<Figures> {
    let progress = ProgressBar::with_draw_target(
        Some(total_steps(options, impls.len())),
        ProgressDrawTarget::stderr(),
    );
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg}")?
            .progress_chars("=> "),
    );
    let ctx = Ctx {
        impls,
        nftables,
        opts: options,
        progress: &progress,
        interrupt,
        work_dir,
    };
    let sizes = impls
        .iter()
        .map(|imp| {
            BINARIES
                .iter()
                .map(|b| std::fs::metadata(imp.binary(b)).ok().map(|m| m.len()))
                .collect()
        })
        .collect();

    let result = (|| -> BenchResult<Figures> {
        cold::warm_up(&ctx)?;
        let version = version::measure(&ctx)?;
        let cold = cold::measure(&ctx)?;
        let rss = Some(rss::measure(&ctx)?);
        let ready_new = ipv6::measure(&ctx, Scenario::NewBridge)?;
        let ready_alone = ipv6::measure(&ctx, Scenario::Alone)?;
        let ready_busy = ipv6::measure(&ctx, Scenario::BridgeBusy)?;
        let parallel = parallel::measure(&ctx)?;
        let scale = scale::measure(&ctx)?;
        // Last, so the phases above run with the host as before it existed
        // (no cnirsb-nft bridge, no nftables masquerade table it created).
        let nft = nft::measure(&ctx)?;
        let cri = cri::measure(&ctx)?;
        Ok(Figures {
            kinds: impls.iter().map(|i| i.kind).collect(),
            options: options.clone(),
            sizes,
            version,
            cold,
            rss,
            ready_new,
            ready_alone,
            ready_busy,
            parallel,
            scale,
            nft,
            cri,
        })
    })();
    if result.is_err() {
        progress.abandon();
        eprintln!("bench: cleaning up");
    } else {
        progress.finish_and_clear();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_include_the_nftables_and_cri_phases() {
        let o = Options::quick();
        // Warm-ups 2, VERSION 50, cold 10, nftables 1 + 10 + 1 + 2, CRI 3,
        // RSS 2, IPv6 15, parallel 2, scale 2 * (10 + 100).
        assert_eq!(total_steps(&o, 2), 2 + 50 + 10 + 14 + 3 + 2 + 15 + 2 + 220);
        let o = Options::full();
        assert_eq!(
            total_steps(&o, 1),
            1 + 200 + 50 + (1 + 50 + 3 + 5) + 15 + 5 + 60 + 3 + (80 + 1000)
        );
    }
}
