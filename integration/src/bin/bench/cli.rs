//! Command-line flags.

use std::path::PathBuf;

use crate::impls::REFERENCE_DIR;

/// How much work each phase does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Cold ADD/DEL runs per implementation (`--runs`).
    pub runs: usize,
    /// Pods attached before the "ADD at N pods" measurement (`--pods`).
    pub pods: usize,
    /// VERSION and `/bin/true` calls per implementation.
    pub version_runs: usize,
    /// Timed ADD/DEL runs at 0 and at `pods` pods.
    pub scale_runs: usize,
    /// ADDs per implementation measured for peak RSS.
    pub rss_runs: usize,
    /// Pods per implementation in the IPv6 readiness measurement.
    pub ipv6_runs: usize,
    /// Plugin processes started at once in the throughput measurement.
    pub parallel: usize,
    /// Rounds of the throughput measurement (the median is reported).
    pub parallel_rounds: usize,
    /// Worker threads that attach and detach the background pods (untimed).
    pub fill_workers: usize,
    /// Pods per implementation run and stopped through containerd's CRI.
    pub cri_runs: usize,
    /// Directory of the reference plugins (`--reference`).
    pub reference: PathBuf,
}

impl Options {
    /// The full run (about 10 minutes on a 2-core VM).
    pub fn full() -> Options {
        Options {
            runs: 50,
            pods: 500,
            version_runs: 200,
            scale_runs: 40,
            rss_runs: 5,
            ipv6_runs: 20,
            parallel: 50,
            parallel_rounds: 3,
            fill_workers: 4,
            cri_runs: 15,
            reference: PathBuf::from(REFERENCE_DIR),
        }
    }

    /// The smoke run of `--quick`.
    pub fn quick() -> Options {
        Options {
            runs: 10,
            pods: 50,
            version_runs: 50,
            scale_runs: 5,
            rss_runs: 2,
            ipv6_runs: 5,
            parallel: 50,
            parallel_rounds: 1,
            fill_workers: 4,
            cri_runs: 3,
            reference: PathBuf::from(REFERENCE_DIR),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the bench.
    Run(Options),
    /// Print [`USAGE`].
    Help,
}

/// Usage text for `--help`.
pub const USAGE: &str = "\
usage: bench [--quick] [--runs N] [--pods N] [--reference DIR]

Times our bridge/host-local (next to this binary) against the reference
plugins in /usr/lib/cni, interleaved, with CRI-O's 100-crio-bridge.conf.
Needs root. Writes a table to stdout, results/bench.md and results/bench.svg.

  --runs N   cold ADD/DEL runs per implementation (default 50)
  --pods N   pods attached for the ADD-at-N-pods figure (default 500,
             at most 1000: a Linux bridge takes 1024 ports)
  --reference DIR
             where the reference bridge and host-local are (default
             /usr/lib/cni); when they are missing only ours is measured
  --quick    smoke run: --runs 10 --pods 50 and fewer samples elsewhere
  -h, --help this text";

/// Most background pods: a Linux bridge has at most 1024 ports, and the
/// timed pod needs one more.
pub const MAX_PODS: usize = 1000;

/// Parses the arguments after the program name. Later flags win; `--runs`
/// and `--pods` override the values `--quick` sets, in any order.
///
/// # Errors
///
/// An unknown flag, a missing value, or a value that is not a positive integer.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut quick = false;
    let mut runs = None;
    let mut pods = None;
    let mut reference = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quick" => quick = true,
            "--runs" => runs = Some(count(&arg, args.next())?),
            "--pods" => pods = Some(count(&arg, args.next())?),
            "--reference" => {
                let dir = args.next().ok_or("--reference needs a directory")?;
                reference = Some(PathBuf::from(dir));
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let mut options = if quick {
        Options::quick()
    } else {
        Options::full()
    };
    if let Some(runs) = runs {
        options.runs = runs;
    }
    if let Some(pods) = pods {
        if pods > MAX_PODS {
            return Err(format!(
                "--pods {pods}: at most {MAX_PODS} (bridge port limit)"
            ));
        }
        options.pods = pods;
    }
    if let Some(reference) = reference {
        options.reference = reference;
    }
    Ok(Command::Run(options))
}

fn count(flag: &str, value: Option<String>) -> Result<usize, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} {value:?}: expected a positive integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|a| (*a).to_string()))
    }

    #[test]
    fn defaults_are_the_full_run() {
        assert_eq!(parse_strs(&[]), Ok(Command::Run(Options::full())));
    }

    #[test]
    fn explicit_counts_override_quick_in_any_order() {
        let Ok(Command::Run(o)) = parse_strs(&["--runs", "7", "--quick"]) else {
            panic!("expected a run");
        };
        assert_eq!((o.runs, o.pods), (7, 50));
        let Ok(Command::Run(o)) = parse_strs(&["--quick", "--pods", "3"]) else {
            panic!("expected a run");
        };
        assert_eq!((o.runs, o.pods), (10, 3));
        let Ok(Command::Run(o)) = parse_strs(&["--reference", "/opt/cni/bin"]) else {
            panic!("expected a run");
        };
        assert_eq!(o.reference, PathBuf::from("/opt/cni/bin"));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse_strs(&["--runs"]).is_err());
        assert!(parse_strs(&["--runs", "0"]).is_err());
        assert!(parse_strs(&["--pods", "x"]).is_err());
        assert!(parse_strs(&["--fast"]).is_err());
        assert!(parse_strs(&["--pods", "1001"]).is_err());
        assert!(parse_strs(&["--reference"]).is_err());
        assert_eq!(parse_strs(&["--runs", "2", "-h"]), Ok(Command::Help));
    }
}
