//! A pod: a named network namespace attached to an implementation's bridge
//! by calling its `bridge` binary exactly as CRI-O does.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchResult;
use crate::exec::{self, Finished, Invocation};
use crate::host;
use crate::impls::Impl;

/// A named namespace whose name (`cnirsb-ours-<pid>-<n>-<xyz>`) is also the
/// container ID. Removing it is explicit ([`Pod::remove`]); anything left
/// behind by an error is found by its prefix and swept at exit.
#[derive(Debug)]
pub struct Pod {
    name: String,
}

impl Pod {
    /// Creates a fresh namespace for `imp` (not timed anywhere).
    ///
    /// # Errors
    ///
    /// When `ip netns add` fails.
    pub fn create(imp: &Impl) -> BenchResult<Pod> {
        let name = integration::unique_name(&imp.network);
        host::netns_add(&name)?;
        Ok(Pod { name })
    }

    /// A pod for an existing namespace `name` (found by the sweep).
    pub fn adopt(name: &str) -> Pod {
        Pod {
            name: name.to_string(),
        }
    }

    /// The namespace name and container ID.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        host::netns_path(&self.name)
    }

    /// Deletes the namespace.
    ///
    /// # Errors
    ///
    /// When `ip netns del` fails.
    pub fn remove(self) -> BenchResult<()> {
        host::netns_del(&self.name)
    }
}

/// The call of `plugin` (`bridge`, `host-local`) of `imp` for `pod`, as
/// CRI-O makes it: cleared environment with `CNI_COMMAND`, `CNI_CONTAINERID`,
/// `CNI_NETNS`, `CNI_IFNAME=eth0`, `CNI_PATH`, CRI-O's `CNI_ARGS` and `PATH`;
/// the network config on stdin.
pub fn plugin_call(imp: &Impl, plugin: &str, command: &str, pod: &Pod) -> Invocation {
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=cnirsb;K8S_POD_NAME={0};K8S_POD_INFRA_CONTAINER_ID={0}",
        pod.name
    );
    Invocation::new(imp.binary(plugin))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", pod.name.as_str())
        .env("CNI_NETNS", pod.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", imp.dir.as_os_str())
        .env("CNI_ARGS", args)
        .stdin(imp.config.clone())
}

/// The bridge call of `command` for `pod`.
pub fn call(imp: &Impl, command: &str, pod: &Pod) -> Invocation {
    plugin_call(imp, "bridge", command, pod)
}

/// Attaches `pod` (bridge ADD) and returns the timed run.
///
/// # Errors
///
/// When the plugin fails.
pub fn add(imp: &Impl, pod: &Pod) -> BenchResult<Finished> {
    call(imp, "ADD", pod).run_ok(&format!("{} ADD {}", imp.kind.label(), pod.name))
}

/// Detaches `pod` (bridge DEL) and returns the timed run.
///
/// # Errors
///
/// When the plugin fails.
pub fn del(imp: &Impl, pod: &Pod) -> BenchResult<Finished> {
    call(imp, "DEL", pod).run_ok(&format!("{} DEL {}", imp.kind.label(), pod.name))
}

/// One cold cycle: fresh namespace (untimed), ADD (timed), DEL (timed),
/// namespace deleted (untimed). Returns the ADD and DEL latencies.
///
/// # Errors
///
/// When any step fails; the namespace is then left for the sweep.
pub fn cycle(imp: &Impl) -> BenchResult<(Duration, Duration)> {
    let pod = Pod::create(imp)?;
    let added = add(imp, &pod)?;
    let deleted = del(imp, &pod)?;
    pod.remove()?;
    Ok((added.elapsed, deleted.elapsed))
}

/// One cold cycle whose ADD is also charged its CPU time.
#[derive(Debug, Clone, Copy)]
pub struct CpuCycle {
    /// ADD latency.
    pub add: Duration,
    /// DEL latency.
    pub del: Duration,
    /// User + system CPU time of the ADD's process tree (the plugin and
    /// every child it reaped: `host-local`, the `iptables` helpers).
    pub add_cpu: Duration,
}

/// As [`cycle`], with the ADD's CPU time taken from `RUSAGE_CHILDREN` read
/// just before the spawn and just after the reap ([`exec::children_cpu`]).
///
/// # Errors
///
/// When any step fails; the namespace is then left for the sweep.
pub fn cpu_cycle(imp: &Impl) -> BenchResult<CpuCycle> {
    let pod = Pod::create(imp)?;
    let call = call(imp, "ADD", &pod);
    let what = format!("{} ADD {}", imp.kind.label(), pod.name);
    let before = exec::children_cpu()?;
    let added = call.run_ok(&what)?;
    let after = exec::children_cpu()?;
    let deleted = del(imp, &pod)?;
    pod.remove()?;
    Ok(CpuCycle {
        add: added.elapsed,
        del: deleted.elapsed,
        add_cpu: after.saturating_sub(before),
    })
}
