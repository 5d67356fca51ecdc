//! Ctrl-C handling: finish the current step, then clean up.
//!
//! SIGINT, SIGTERM and SIGHUP are blocked in every bench thread and received
//! by one watcher thread with `sigwait`, so no handler code and no `unsafe`.
//! The first signal sets a flag that the phases check between steps; they
//! then return an error and the clean-up guard runs. A second signal exits at
//! once (the next run sweeps what is left). Children get an empty signal
//! mask from `std::process::Command`, so Ctrl-C still reaches them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SigSet, Signal};

use crate::error::BenchResult;

/// Set once an interrupt arrived.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// Blocks the signals in the calling thread (and so in every thread
    /// started after this) and starts the watcher. Call it first in `main`.
    ///
    /// # Errors
    ///
    /// When the signal mask cannot be changed or the thread not started.
    pub fn install() -> BenchResult<Interrupt> {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        set.thread_block()?;
        let interrupt = Interrupt::default();
        let flag = Arc::clone(&interrupt.flag);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || watch(&set, &flag))?;
        Ok(interrupt)
    }

    /// An error once an interrupt arrived.
    ///
    /// # Errors
    ///
    /// `interrupted` after a signal.
    pub fn check(&self) -> BenchResult<()> {
        if self.is_set() {
            return Err("interrupted".into());
        }
        Ok(())
    }

    /// Whether an interrupt arrived.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

fn watch(set: &SigSet, flag: &AtomicBool) {
    while let Ok(signal) = set.wait() {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nbench: {signal} again: exiting without clean-up (the next run sweeps)");
            std::process::exit(130);
        }
        eprintln!("\nbench: {signal}: stopping after the current step and cleaning up");
    }
}
