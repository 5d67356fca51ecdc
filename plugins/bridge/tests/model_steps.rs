//! The step lists on the in-memory model without faults: what a successful
//! ADD builds (so the fault matrix compares against a faithful node), that
//! CHECK passes on it and catches a difference, and the named steps.

#![cfg(test)]

mod model;

use cni_types::skel::Outcome;
use model::{HOST, Model, World};
use serde_json::{Value, json};

const POD: &str = "/run/netns/pod";
const CRIO: &str = include_str!("../../../cni-types/tests/fixtures/100-crio-bridge.conf");

/// Runs `command` for the pod on the model.
fn call(model: &Model, command: &str, config: &Value) -> Outcome {
    model::call(model, command, "pod", POD, config)
}

/// A node with the pod's namespace, and CRI-O's config at 1.0.0.
fn crio_node() -> (Model, Value) {
    let mut world = World::new();
    world.add_pod(POD);
    let mut config: Value = serde_json::from_str(CRIO).unwrap();
    config["cniVersion"] = json!("1.0.0");
    (Model::new(world), config)
}

fn link<'w>(world: &'w World, ns: u32, name: &str) -> &'w model::ModelLink {
    world.state.namespaces[&ns]
        .links
        .values()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no {name} in namespace {ns}"))
}

#[test]
fn crio_add_builds_what_the_kernel_would_show() {
    let (model, config) = crio_node();
    let added = call(&model, "ADD", &config);
    assert!(added.success, "{}", String::from_utf8_lossy(&added.stdout));
    let result: Value = serde_json::from_slice(&added.stdout).unwrap();
    let world = model.world.borrow();
    let ips: Vec<&str> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["10.85.0.2/16", "1100:200::2/24"]);
    let veth_name = result["interfaces"][1]["name"].as_str().unwrap();

    let bridge = link(&world, HOST, "cni0");
    let gateways: Vec<String> = bridge.addresses.iter().map(ToString::to_string).collect();
    assert_eq!(gateways, ["10.85.0.1/16", "1100:200::1/24"]);
    let veth = link(&world, HOST, veth_name);
    assert!(veth.up && veth.no_ipv6_link_local);
    assert_eq!(veth.port_flags, (true, false), "hairpin on, not isolated");
    assert!(veth.master.is_some());
    let host_sysctls = &world.state.namespaces[&HOST].sysctls;
    assert_eq!(host_sysctls["net/ipv4/ip_forward"], "1");
    assert_eq!(
        host_sysctls[&format!("net/ipv6/conf/{veth_name}/disable_ipv6")],
        "1"
    );

    let pod = world.state.mounts[POD];
    let eth0 = link(&world, pod, "eth0");
    assert!(eth0.up);
    assert_eq!(eth0.addresses.len(), 2);
    let routes = &world.state.namespaces[&pod].routes;
    assert!(
        routes
            .iter()
            .any(|(dst, gw, _)| dst.to_string() == "0.0.0.0/0"
                && gw.map(|g| g.to_string()) == Some("10.85.0.1".into()))
    );
    assert!(
        routes
            .iter()
            .any(|(dst, _, _)| dst.to_string() == "1100:200::/24")
    );
    assert_eq!(world.state.masquerade.len(), 2, "one chain per family");
    assert_eq!(world.state.leases.len(), 2);
}

#[test]
fn check_passes_after_add_and_catches_a_missing_address() {
    let (model, mut config) = crio_node();
    let added = call(&model, "ADD", &config);
    assert!(added.success);
    config["prevResult"] = serde_json::from_slice(&added.stdout).unwrap();
    let checked = call(&model, "CHECK", &config);
    assert!(
        checked.success,
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    {
        let mut world = model.world.borrow_mut();
        let pod = world.state.mounts[POD];
        let eth0 = world
            .namespace(pod)
            .links
            .values_mut()
            .find(|l| l.name == "eth0")
            .unwrap();
        eth0.addresses.retain(|a| a.is_ipv6());
    }
    let checked = call(&model, "CHECK", &config);
    assert!(!checked.success);
    let error: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(
        error["msg"],
        "Failed to match addr 10.85.0.2/16 on interface eth0"
    );
}

#[test]
fn del_after_add_leaves_the_node_as_it_was_but_for_the_bridge() {
    let (model, config) = crio_node();
    let before = model.world.borrow().state.clone();
    assert!(call(&model, "ADD", &config).success);
    assert!(call(&model, "DEL", &config).success);
    let after = model.world.borrow().state.clone();
    assert_ne!(after, before, "the bridge stays");
    assert_eq!(
        World::without_shared(&after, "cni0"),
        World::without_shared(&before, "cni0")
    );
}

#[test]
fn the_step_lists_are_named() {
    let add = bridge::steps::names(&bridge::add::steps());
    assert_eq!(add.first(), Some(&"open the pod's namespace"));
    assert_eq!(add.len(), 17);
    let del = bridge::steps::names(&bridge::del::steps());
    assert_eq!(del.len(), 9);
    let check = bridge::steps::names(&bridge::check::steps());
    assert_eq!(check.last(), Some(&"check masquerade"));
}
