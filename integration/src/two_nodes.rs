//! Two simulated Kubernetes nodes, pod to pod, kubenet style: each node is
//! a network namespace running its own private containerd with our plugins,
//! the nodes are joined by a veth "underlay" (`192.168.250.0/24`) with a
//! route to each other's pod CIDR, and node A also has a link to an
//! "outside" namespace (`203.0.113.0/24`) that has no route to any pod.
//!
//! Each node gets its pod CIDR as kubelet hands it over: the CRI call
//! UpdateRuntimeConfig with `pod_cidr`, from which containerd renders its
//! `conf_template` (our bridge, `isGateway`, `ipMasq`, host-local on that
//! CIDR, and loopback) into its `conf_dir`. Used by `tests/two_nodes.rs`
//! and by the demo's `--two-nodes` mode (`src/bin/two-nodes.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::containerd::Setup;
use crate::{Cleanup, PrivateContainerd, TestNetns, cmd, unique_ifname, unique_name, wait_until};

/// The outside address node A routes to; the outside has no route back to
/// any pod, so only masqueraded traffic gets an answer.
pub const OUTSIDE: &str = "203.0.113.2";

/// containerd's `conf_template` (Go template): the cluster's bridge
/// network on the node's pod CIDR. `{{DATA_DIR}}` is filled in per node.
const TEMPLATE: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$range}}"}]{{end}}],
        "routes": [{{range $i, $route := .Routes}}{{if $i}}, {{end}}{"dst": "{{$route}}"}{{end}}],
        "dataDir": "{{DATA_DIR}}"
      }
    },
    {"type": "loopback"}
  ]
}
"#;

/// One node.
#[derive(Debug)]
pub struct Node {
    /// `A` or `B`.
    pub name: &'static str,
    /// Its pod CIDR.
    pub pod_cidr: &'static str,
    /// Its underlay address.
    pub underlay: &'static str,
    /// Its containerd, running in [`Node::ns`].
    pub containerd: PrivateContainerd,
    /// The node's network namespace (dropped after its containerd).
    pub ns: TestNetns,
}

/// The two nodes and the outside.
#[derive(Debug)]
pub struct TwoNodes {
    /// Node A (`10.244.1.0/24`) and node B (`10.244.2.0/24`).
    pub nodes: [Node; 2],
    /// The outside namespace, linked to node A.
    pub outside: TestNetns,
    /// Removes the templates and the plugin directory.
    _cleanup: Cleanup,
}

impl TwoNodes {
    /// Creates the namespaces and links, starts both containerds with the
    /// plugins of `cni_bin` (which must hold `bridge`, `host-local` and
    /// `loopback`) and hands each its pod CIDR; `None` when containerd
    /// cannot run here.
    ///
    /// # Panics
    ///
    /// When a step fails.
    pub fn start(test: &str, cni_bin: &Path) -> Option<TwoNodes> {
        let mut cleanup = Cleanup::new();
        let (ns_a, ns_b, outside) = (
            TestNetns::new("node"),
            TestNetns::new("node"),
            TestNetns::new("out"),
        );
        for ns in [&ns_a, &ns_b, &outside] {
            // containerd's streaming server listens on 127.0.0.1.
            ns.ip(&["link", "set", "lo", "up"]);
        }
        link(&ns_a, "192.168.250.1/24", &ns_b, "192.168.250.2/24");
        link(&ns_a, "203.0.113.1/24", &outside, "203.0.113.2/24");
        ns_a.ip(&["route", "add", "10.244.2.0/24", "via", "192.168.250.2"]);
        ns_b.ip(&["route", "add", "10.244.1.0/24", "via", "192.168.250.1"]);
        let a = Node::start(
            test,
            "A",
            "10.244.1.0/24",
            "192.168.250.1",
            ns_a,
            cni_bin,
            &mut cleanup,
        )?;
        let b = Node::start(
            test,
            "B",
            "10.244.2.0/24",
            "192.168.250.2",
            ns_b,
            cni_bin,
            &mut cleanup,
        )?;
        Some(TwoNodes {
            nodes: [a, b],
            outside,
            _cleanup: cleanup,
        })
    }
}

/// A veth pair between `a` and `b` with these addresses, both up.
fn link(a: &TestNetns, a_addr: &str, b: &TestNetns, b_addr: &str) {
    let (a_end, b_end) = (unique_ifname("ul"), unique_ifname("ul"));
    a.ip(&[
        "link", "add", &a_end, "type", "veth", "peer", "name", &b_end,
    ]);
    a.ip(&["link", "set", &b_end, "netns", b.name()]);
    a.ip(&["addr", "add", a_addr, "dev", &a_end]);
    b.ip(&["addr", "add", b_addr, "dev", &b_end]);
    a.ip(&["link", "set", &a_end, "up"]);
    b.ip(&["link", "set", &b_end, "up"]);
}

impl Node {
    fn start(
        test: &str,
        name: &'static str,
        pod_cidr: &'static str,
        underlay: &'static str,
        ns: TestNetns,
        cni_bin: &Path,
        cleanup: &mut Cleanup,
    ) -> Option<Node> {
        let dir = std::env::temp_dir().join(unique_name("cni-node"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        cleanup.remove_path(&dir);
        let template = dir.join("cni-template.json");
        let text = TEMPLATE.replace("{{DATA_DIR}}", &dir.join("leases").display().to_string());
        std::fs::write(&template, text).unwrap_or_else(|e| panic!("write the template: {e}"));
        let setup = Setup {
            conf_template: Some(template),
            netns: Some(ns.path()),
        };
        let containerd = PrivateContainerd::start(test, cni_bin, &setup)?;
        containerd
            .cri(&["pod-cidr", pod_cidr])
            .unwrap_or_else(|e| panic!("UpdateRuntimeConfig on node {name}: {e}"));
        let rendered = containerd.dir.join("net.d/10-containerd-net.conflist");
        wait_until(
            "containerd's rendered config",
            Duration::from_secs(10),
            || rendered.is_file(),
        );
        Some(Node {
            name,
            pod_cidr,
            underlay,
            containerd,
            ns,
        })
    }

    /// The network config containerd rendered from the template.
    pub fn rendered_config(&self) -> String {
        let path = self.containerd.dir.join("net.d/10-containerd-net.conflist");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Runs pod `name`; its sandbox ID and IPv4 address.
    ///
    /// # Panics
    ///
    /// When RunPodSandbox fails or the pod has no address.
    pub fn run_pod(&self, name: &str) -> (String, String) {
        let reply = self
            .containerd
            .run_pod(name)
            .unwrap_or_else(|e| panic!("RunPodSandbox on node {}: {e}", self.name));
        let status = self.containerd.status(&reply.stdout);
        let ip = status["ip"].as_str().unwrap_or_default().to_owned();
        assert!(!ip.is_empty(), "no address: {status}");
        (reply.stdout, ip)
    }

    /// The network namespace of the pod with address `ip`.
    ///
    /// # Panics
    ///
    /// When no sandbox of this node has it.
    pub fn pod_netns(&self, ip: &str) -> PathBuf {
        let dir = self
            .containerd
            .dir
            .join("state/io.containerd.grpc.v1.cri/netns");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        entries
            .flatten()
            .map(|e| e.path())
            .find(|netns| {
                let enter = format!("--net={}", netns.display());
                let out = cmd::run("nsenter", &[enter.as_str(), "ip", "-o", "-4", "addr"]);
                String::from_utf8_lossy(&out.stdout).contains(&format!("inet {ip}/"))
            })
            .unwrap_or_else(|| panic!("no pod with {ip} on node {}", self.name))
    }

    /// Whether the pod with address `ip` gets an answer from `dst`.
    pub fn ping_from_pod(&self, ip: &str, dst: &str) -> bool {
        let enter = format!("--net={}", self.pod_netns(ip).display());
        let out = cmd::run("nsenter", &[enter.as_str(), "ping", "-c1", "-W2", dst]);
        out.status.success()
    }
}
