//! The demo's `--two-nodes` mode: two simulated Kubernetes nodes, each a
//! network namespace with its own containerd and our plugins (from the
//! directory given as the argument), pod CIDRs handed over as kubelet does
//! (UpdateRuntimeConfig rendering containerd's `conf_template`), a pod on
//! each, pod-to-pod and pod-to-outside pings, then everything removed. See
//! `integration::two_nodes`. Needs root, containerd and python3-grpcio.
//!
//! ```text
//! two-nodes <plugin dir>
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use integration::two_nodes::{OUTSIDE, TwoNodes};

fn step(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn main() -> ExitCode {
    let Some(bin) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: two-nodes <plugin dir>");
        return ExitCode::from(2);
    };
    step(
        "two nodes: namespaces joined by a veth underlay (192.168.250.0/24), a containerd on each",
    );
    let Some(cluster) = TwoNodes::start("two-nodes", &bin) else {
        return ExitCode::FAILURE;
    };
    let mut ok = true;
    let mut pods = Vec::new();
    for node in &cluster.nodes {
        step(&format!(
            "node {} ({}): pod CIDR {} from UpdateRuntimeConfig, rendered by containerd",
            node.name, node.underlay, node.pod_cidr
        ));
        print!("{}", node.rendered_config());
        let (id, ip) = node.run_pod(&format!("web-{}", node.name.to_lowercase()));
        println!("RunPodSandbox web-{}: {ip}", node.name.to_lowercase());
        pods.push((node, id, ip));
    }
    step("connectivity");
    let (a, b) = (&pods[0], &pods[1]);
    for (from, to, what) in [
        (a, &b.2, "the pod on node B"),
        (b, &a.2, "the pod on node A"),
    ] {
        let reached = from.0.ping_from_pod(&from.2, to);
        ok &= reached;
        println!(
            "{} -> {to} ({what}): {}",
            from.2,
            if reached { "ok" } else { "FAILED" }
        );
    }
    let out = a.0.ping_from_pod(&a.2, OUTSIDE);
    ok &= out;
    println!(
        "{} -> {OUTSIDE} (outside the cluster, no route back to pods; answers only masqueraded): {}",
        a.2,
        if out { "ok" } else { "FAILED" }
    );
    step("StopPodSandbox and RemovePodSandbox");
    for (node, id, ip) in &pods {
        match node.containerd.stop_and_remove(id) {
            Ok((stop, remove)) => println!(
                "{ip} on node {}: stopped in {:.0} ms, removed in {:.0} ms",
                node.name,
                stop.seconds * 1000.0,
                remove.seconds * 1000.0
            ),
            Err(e) => {
                ok = false;
                println!("{ip} on node {}: {e}", node.name);
            }
        }
    }
    drop(cluster);
    step(if ok {
        "done: both nodes and the outside removed"
    } else {
        "FAILED"
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
