//! The Kubernetes node path: RunPodSandbox and StopPodSandbox through a
//! private containerd per implementation ([`PrivateContainerd`]), whose CNI
//! `bin_dir` holds that implementation's plugins and whose `conf_dir` holds
//! its CRI-O config. The times are the CRI calls as the client
//! (`clients/cri.py`, kubelet's side) measures them, so they include
//! containerd's own work (netns, the pause container) around the plugins.
//!
//! After one untimed pod per daemon (the first unpacks the pause image),
//! `opts.cri_runs` rounds each run one pod per implementation, then stop
//! and remove it, the order rotating each round. Skipped, with a note,
//! when containerd or python3-grpcio is missing.

use std::path::Path;
use std::time::Duration;

use integration::PrivateContainerd;
use integration::containerd::{CONTAINERD, Setup};

use crate::ctx::Ctx;
use crate::error::BenchResult;

/// What the phase measured, per implementation in `ctx.impls` order.
#[derive(Debug, Default)]
pub struct CriSamples {
    /// RunPodSandbox latencies.
    pub run: Vec<Vec<Duration>>,
    /// StopPodSandbox latencies.
    pub stop: Vec<Vec<Duration>>,
    /// Why the phase did not run, if it did not.
    pub skipped: Option<String>,
}

/// Units of work of the phase on the progress bar.
pub fn steps(o: &crate::cli::Options) -> usize {
    o.cri_runs
}

/// Whether containerd and the CRI client can run here.
fn available() -> bool {
    let grpc = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|out| out.status.success());
    Path::new(CONTAINERD).is_file() && grpc
}

/// Runs the phase.
///
/// # Errors
///
/// When a CRI call fails, or on Ctrl-C.
pub fn measure(ctx: &Ctx<'_>) -> BenchResult<CriSamples> {
    if !available() {
        ctx.progress.inc(steps(ctx.opts) as u64);
        return Ok(CriSamples {
            skipped: Some("containerd or python3-grpcio is not installed".to_owned()),
            ..CriSamples::default()
        });
    }
    ctx.phase("RunPodSandbox and StopPodSandbox through containerd");
    let mut daemons = Vec::new();
    for imp in ctx.impls {
        let daemon = PrivateContainerd::start("bench", &imp.dir, &Setup::default())
            .ok_or("containerd did not start")?;
        std::fs::write(daemon.dir.join("net.d/10-crio.conf"), &imp.config)?;
        cycle(&daemon, "warm-up")?;
        daemons.push(daemon);
    }
    let mut samples = CriSamples {
        run: vec![Vec::new(); daemons.len()],
        stop: vec![Vec::new(); daemons.len()],
        skipped: None,
    };
    for round in 0..ctx.opts.cri_runs {
        for k in 0..daemons.len() {
            let idx = (round + k) % daemons.len();
            let (run, stop) = cycle(&daemons[idx], &format!("pod-{round}"))?;
            samples.run[idx].push(run);
            samples.stop[idx].push(stop);
        }
        ctx.progress.inc(1);
        ctx.check()?;
    }
    Ok(samples)
}

/// One pod run, then stopped and removed: the Run and Stop latencies.
fn cycle(daemon: &PrivateContainerd, name: &str) -> BenchResult<(Duration, Duration)> {
    let run = daemon.run_pod(name)?;
    let (stop, _) = daemon.stop_and_remove(&run.stdout)?;
    Ok((
        Duration::from_secs_f64(run.seconds),
        Duration::from_secs_f64(stop.seconds),
    ))
}
