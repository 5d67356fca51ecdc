//! Root tests of the Kubernetes node path: kubelet's CRI calls
//! (RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox)
//! against a private containerd ([`PrivateContainerd`]) whose CNI
//! `bin_dir` holds our three plugins and whose `conf_dir` holds CRI-O's
//! `100-crio-bridge.conf` with private names, subnets and `dataDir`.
//!
//! - pods get one address of each family from the ranges, reported by
//!   PodSandboxStatus, and the host reaches them; Stop and Remove leave no
//!   lease, rule, veth or netns mount; with both masquerade backends;
//! - a containerd restart with pods running: Stop and Remove afterwards
//!   still clean up;
//! - containerd killed with SIGKILL in the middle of RunPodSandbox (while
//!   the plugin runs), then the kubelet-style retry: the pod runs, and once
//!   every sandbox containerd knows is removed nothing is left.

#![cfg(test)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use integration::containerd::Setup;
use integration::{
    Cleanup, PrivateContainerd, TestNetwork, cmd, crio_settings, plugin_dir, require_root,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

integration::test_network! {
    /// One test's network: CRI-O's settings on `10.<160+k>.0.0/16` and
    /// `fd<k>:cc00::/64`.
    Net
}

impl Net {
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        Net(TestNetwork::new("cri", tag, k, cleanup))
    }

    fn v4_prefix(&self) -> String {
        format!("10.{}.", 160 + u16::from(self.k))
    }

    fn v6_prefix(&self) -> String {
        format!("fd{:02x}:cc00::", self.k)
    }

    /// CRI-O's `100-crio-bridge.conf` (0.3.1) with this network's names.
    fn crio_config(&self, backend: Option<&str>) -> Value {
        let subnets = [
            format!("{}0.0/16", self.v4_prefix()),
            format!("{}/64", self.v6_prefix()),
        ];
        let mut conf = self.bridge_config("0.3.1", &subnets, &[crio_settings()]);
        conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "1100:200::1/24"}]);
        if let Some(backend) = backend {
            conf["ipMasqBackend"] = json!(backend);
        }
        conf
    }

    /// Masquerade rules of this network in either backend's tables.
    fn rules(&self) -> usize {
        let iptables = cmd::run_ok("iptables-save", &["-t", "nat"]);
        let ip6tables = cmd::run_ok("ip6tables-save", &["-t", "nat"]);
        let nft = cmd::run("nft", &["list", "table", "inet", "cni_plugins_masquerade"]);
        let nft = String::from_utf8_lossy(&nft.stdout).into_owned();
        let quoted = format!("name: \\\"{}\\\"", self.name);
        let mentions =
            |text: &str, needle: &str| text.lines().filter(|l| l.contains(needle)).count();
        mentions(&iptables, &quoted)
            + mentions(&ip6tables, &quoted)
            + mentions(&nft, &format!("net: {},", self.name))
    }

    /// Asserts that nothing of any pod is left.
    fn assert_clean(&self, containerd: &PrivateContainerd) {
        assert!(self.leases().is_empty(), "leases: {:?}", self.leases());
        assert!(self.ports().is_empty(), "veths left on {}", self.bridge);
        assert_eq!(self.rules(), 0, "masquerade rules left");
        let netns_mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&containerd.dir.display().to_string()) && l.contains("netns"))
            .count();
        assert_eq!(netns_mounts, 0, "netns mounts left");
    }
}

/// A `bin_dir` with our three plugins, removed by `cleanup`.
fn our_bin_dir(cleanup: &mut Cleanup) -> PathBuf {
    let dir = std::env::temp_dir().join(integration::unique_name("cni-cri-bin"));
    std::fs::create_dir_all(&dir).unwrap();
    cleanup.remove_path(&dir);
    for plugin in ["bridge", "host-local", "loopback"] {
        std::os::unix::fs::symlink(plugin_dir().join(plugin), dir.join(plugin)).unwrap();
    }
    dir
}

/// The daemon with `conf` as its only network, or `None` when it cannot
/// run here.
fn containerd(test: &str, bin: &Path, conf: &Value) -> Option<PrivateContainerd> {
    let containerd = PrivateContainerd::start(test, bin, &Setup::default())?;
    let path = containerd.dir.join("net.d/10-crio.conf");
    std::fs::write(path, conf.to_string()).unwrap();
    Some(containerd)
}

/// Runs `count` pods and checks each one's status and reachability;
/// returns their IDs.
fn run_pods(containerd: &PrivateContainerd, net: &Net, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let reply = containerd
            .run_pod(&format!("pod-{i}"))
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", containerd.log()));
        let status = containerd.status(&reply.stdout);
        assert_eq!(status["state"], "SANDBOX_READY", "{status}");
        let ip = status["ip"].as_str().unwrap_or_default();
        assert!(ip.starts_with(&net.v4_prefix()), "{status}");
        let extra = &status["additional_ips"];
        assert_eq!(extra.as_array().map(Vec::len), Some(1), "{status}");
        assert!(
            extra[0]
                .as_str()
                .unwrap_or_default()
                .starts_with(&net.v6_prefix()),
            "{status}"
        );
        let ping = cmd::run("ping", &["-c1", "-W2", ip]);
        assert!(ping.status.success(), "the host cannot reach {ip}");
        ids.push(reply.stdout);
    }
    ids
}

#[test]
fn pods_through_containerds_cri_get_both_families_and_leave_nothing() {
    let test = "pods_through_containerds_cri_get_both_families_and_leave_nothing";
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let bin = our_bin_dir(&mut cleanup);
    // The nftables backend's table is shared and stays after DEL, as
    // upstream's does; remove it if this test made it.
    let table = ["inet", "cni_plugins_masquerade"];
    let listed = cmd::run("nft", &["list", "table", table[0], table[1]]);
    if !listed.status.success() {
        cleanup.command("nft", &["delete", "table", table[0], table[1]]);
    }
    // Rules per pod: iptables has three per family (ACCEPT, MASQUERADE and
    // the POSTROUTING jump), nftables one per address.
    for (k, backend, rules_per_pod) in [(1, None, 6), (2, Some("nftables"), 2)] {
        let net = Net::new(test, k, &mut cleanup);
        let Some(containerd) = containerd(test, &bin, &net.crio_config(backend)) else {
            return;
        };
        let ids = run_pods(&containerd, &net, 3);
        assert_eq!(net.leases().len(), 6);
        assert_eq!(net.rules(), 3 * rules_per_pod, "{backend:?}");
        for id in &ids {
            containerd
                .stop_and_remove(id)
                .unwrap_or_else(|e| panic!("Stop/Remove {id}: {e}"));
        }
        net.assert_clean(&containerd);
    }
}

#[test]
fn a_restarted_containerd_still_cleans_up_its_pods() {
    let test = "a_restarted_containerd_still_cleans_up_its_pods";
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let bin = our_bin_dir(&mut cleanup);
    let net = Net::new(test, 3, &mut cleanup);
    let Some(containerd) = containerd(test, &bin, &net.crio_config(None)) else {
        return;
    };
    let ids = run_pods(&containerd, &net, 2);
    containerd.kill(Signal::SIGTERM);
    containerd.start_daemon();
    for id in &ids {
        let status = containerd.status(id);
        assert_eq!(
            status["state"], "SANDBOX_READY",
            "after the restart: {status}"
        );
        containerd
            .stop_and_remove(id)
            .unwrap_or_else(|e| panic!("Stop/Remove {id}: {e}"));
    }
    net.assert_clean(&containerd);
}

#[test]
fn a_run_cut_short_by_sigkill_is_retried_and_leaves_nothing() {
    let test = "a_run_cut_short_by_sigkill_is_retried_and_leaves_nothing";
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 4, &mut cleanup);
    // A bridge that takes a second before it does its work, so that the
    // kill lands while the plugin runs.
    let bin = our_bin_dir(&mut cleanup);
    let slow = bin.join("bridge");
    std::fs::remove_file(&slow).unwrap();
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && sleep 1\nexec {} \"$@\"\n",
            plugin_dir().join("bridge").display()
        ),
    )
    .unwrap();
    cmd::run_ok("chmod", &["755", &slow.display().to_string()]);
    let Some(containerd) = containerd(test, &bin, &net.crio_config(None)) else {
        return;
    };
    std::thread::scope(|scope| {
        let run = scope.spawn(|| containerd.cri(&["run", "web-0", "uid-web-0", "default"]));
        std::thread::sleep(Duration::from_millis(500));
        containerd.kill(Signal::SIGKILL);
        assert!(run.join().unwrap().is_err(), "the call survived the kill");
    });
    // The orphaned plugin finishes its ADD meanwhile: the kill did land
    // while it ran.
    integration::wait_until("the orphaned ADD", Duration::from_secs(10), || {
        net.leases().len() == 2
    });
    containerd.start_daemon();
    // kubelet's next sync: it lists the pod's sandboxes, stops the ones
    // that are not ready (the killed attempt, which containerd recovered),
    // and runs the pod again as the next attempt.
    let known = containerd.cri(&["list"]).unwrap().stdout;
    for id in known.lines().filter(|l| !l.is_empty()) {
        if containerd.status(id)["state"] != "SANDBOX_READY" {
            containerd
                .cri(&["stop", id])
                .unwrap_or_else(|e| panic!("StopPodSandbox {id}: {e}"));
        }
    }
    let retried = containerd
        .cri(&["run", "web-0", "uid-web-0", "default", "1"])
        .unwrap_or_else(|e| panic!("the retry: {e}\n{}", containerd.log()));
    let status = containerd.status(&retried.stdout);
    assert_eq!(status["state"], "SANDBOX_READY", "{status}");
    assert_eq!(
        net.leases().len(),
        2,
        "only the running attempt's: {:?}",
        net.leases()
    );
    assert_eq!(net.ports().len(), 1);
    // kubelet removes every sandbox of the pod but the running one when it
    // goes, and that one too when the pod is deleted.
    let known = containerd.cri(&["list"]).unwrap().stdout;
    for id in known.lines().filter(|l| !l.is_empty()) {
        containerd
            .stop_and_remove(id)
            .unwrap_or_else(|e| panic!("Stop/Remove {id}: {e}\n{}", containerd.log()));
    }
    net.assert_clean(&containerd);
}
