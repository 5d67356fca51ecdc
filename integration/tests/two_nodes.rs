//! Root test of two simulated Kubernetes nodes ([`TwoNodes`]): each a
//! network namespace with its own containerd and our plugins, the pod CIDR
//! handed over by UpdateRuntimeConfig and rendered from containerd's
//! `conf_template`, routes between the nodes over a veth underlay. A pod on
//! node A and a pod on node B reach each other; a pod's traffic to an
//! address outside the cluster leaves masqueraded to its node's address
//! (the outside has no route to any pod, so only then does it answer);
//! Stop and Remove leave no rule behind on either node.

#![cfg(test)]

use integration::two_nodes::{OUTSIDE, TwoNodes};
use integration::{plugin_dir, require_root};

#[test]
fn pods_on_two_nodes_reach_each_other_and_the_outside_masqueraded() {
    let test = "pods_on_two_nodes_reach_each_other_and_the_outside_masqueraded";
    if !require_root(test) {
        return;
    }
    let Some(cluster) = TwoNodes::start(test, &plugin_dir()) else {
        return;
    };
    let [a, b] = &cluster.nodes;
    for node in [a, b] {
        let rendered = node.rendered_config();
        assert!(rendered.contains(node.pod_cidr), "{rendered}");
        assert!(rendered.contains("\"dst\": \"0.0.0.0/0\""), "{rendered}");
    }
    let (pod_a, ip_a) = a.run_pod("web-a");
    let (pod_b, ip_b) = b.run_pod("web-b");
    assert!(ip_a.starts_with("10.244.1."), "{ip_a}");
    assert!(ip_b.starts_with("10.244.2."), "{ip_b}");

    assert!(a.ping_from_pod(&ip_a, &ip_b), "A's pod cannot reach B's");
    assert!(b.ping_from_pod(&ip_b, &ip_a), "B's pod cannot reach A's");
    assert!(
        a.ping_from_pod(&ip_a, OUTSIDE),
        "not masqueraded to the outside"
    );
    let direct = cluster.outside.exec(&["ping", "-c1", "-W1", &ip_a]);
    assert!(
        !direct.status.success(),
        "the outside has a route to the pod"
    );

    for (node, pod) in [(a, &pod_a), (b, &pod_b)] {
        node.containerd
            .stop_and_remove(pod)
            .unwrap_or_else(|e| panic!("Stop/Remove on node {}: {e}", node.name));
        let rules = node.ns.exec(&["iptables-save", "-t", "nat"]);
        let rules = String::from_utf8_lossy(&rules.stdout);
        assert!(!rules.contains("CNI-"), "node {}: {rules}", node.name);
        let leases = node.ns.ip(&["-o", "link", "show", "type", "veth"]);
        assert!(
            !leases.contains("master cni0"),
            "node {}: {leases}",
            node.name
        );
    }
}
