//! What every phase needs: the implementations, the options, the progress
//! bar and the interrupt flag.

use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::cli::Options;
use crate::error::BenchResult;
use crate::impls::Impl;
use crate::signals::Interrupt;

/// Pause before measurements that follow bulk work.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Shared state of one bench run.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// Ours first, then the reference when it is installed.
    pub impls: &'a [Impl],
    /// Ours with `ipMasqBackend: "nftables"`, measured in its own phase only.
    pub nftables: &'a Impl,
    /// Sample counts.
    pub opts: &'a Options,
    /// Progress on stderr.
    pub progress: &'a ProgressBar,
    /// Set by Ctrl-C.
    pub interrupt: &'a Interrupt,
    /// Scratch directory (removed at exit).
    pub work_dir: &'a Path,
}

impl Ctx<'_> {
    /// An error once Ctrl-C was pressed; phases call this between steps.
    ///
    /// # Errors
    ///
    /// `interrupted`.
    pub fn check(&self) -> BenchResult<()> {
        self.interrupt.check()
    }

    /// Names the phase on the progress bar (and on its own line when stderr
    /// is not a terminal).
    pub fn phase(&self, name: &str) {
        if self.progress.is_hidden() {
            eprintln!("bench: {name}");
        }
        self.progress.set_message(name.to_string());
    }

    /// Waits [`SETTLE`] so deferred kernel work of the previous step (the
    /// teardown of deleted namespaces, DAD and router solicitations on new
    /// host veths) does not land in the next measurement.
    ///
    /// # Errors
    ///
    /// `interrupted`.
    pub fn settle(&self) -> BenchResult<()> {
        let until = Instant::now() + SETTLE;
        while Instant::now() < until {
            self.check()?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// One unit of work done.
    pub fn step(&self) {
        self.progress.inc(1);
    }

    /// The implementations in the order used for iteration `i`: rotated by
    /// one each iteration, so neither always runs first. Yields the index
    /// into [`Ctx::impls`] with each.
    pub fn rotation(&self, i: usize) -> Vec<(usize, &Impl)> {
        rotated(self.impls.len(), i)
            .into_iter()
            .map(|idx| (idx, &self.impls[idx]))
            .collect()
    }

    /// One empty sample vector per implementation.
    pub fn per_impl<T>(&self) -> Vec<Vec<T>> {
        self.impls.iter().map(|_| Vec::new()).collect()
    }
}

/// The indices `0..n` in the order used for iteration `i`: starting at
/// `i % n` and wrapping around, so each index runs first in turn.
pub fn rotated(n: usize, i: usize) -> Vec<usize> {
    (0..n).map(|k| (i + k) % n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_starts_one_later_each_iteration() {
        assert_eq!(rotated(3, 0), [0, 1, 2]);
        assert_eq!(rotated(3, 1), [1, 2, 0]);
        assert_eq!(rotated(3, 5), [2, 0, 1]);
        assert_eq!(rotated(1, 7), [0]);
        assert!(rotated(0, 2).is_empty());
    }
}
