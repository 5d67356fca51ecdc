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
    assert_eq!(add.len(), 18);
    let del = bridge::steps::names(&bridge::del::steps());
    assert_eq!(del.len(), 9);
    let check = bridge::steps::names(&bridge::check::steps());
    assert_eq!(check.last(), Some(&"check masquerade"));
}

/// The port VLANs of the host veth of the result `added`.
fn port_vlans(model: &Model, added: &Outcome) -> Vec<(u16, bool, bool)> {
    let result: Value = serde_json::from_slice(&added.stdout).unwrap();
    let veth = result["interfaces"][1]["name"].as_str().unwrap();
    let world = model.world.borrow();
    link(&world, HOST, veth)
        .vlans
        .iter()
        .map(|(vid, flags)| (*vid, flags.pvid, flags.untagged))
        .collect()
}

#[test]
fn ports_keep_the_default_vlan_unless_told_otherwise() {
    let cases = [
        (
            json!({"vlan": 100}),
            vec![(1, false, true), (100, true, true)],
        ),
        (
            json!({"vlan": 100, "preserveDefaultVlan": false}),
            vec![(100, true, true)],
        ),
        (
            json!({"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 201}]}),
            vec![
                (1, true, true),
                (101, false, false),
                (200, false, false),
                (201, false, false),
            ],
        ),
        (
            json!({"vlanTrunk": [{"id": 101}], "preserveDefaultVlan": false}),
            vec![(101, false, false)],
        ),
    ];
    for (changes, expected) in cases {
        let (model, mut config) = crio_node();
        config["isGateway"] = json!(false);
        for (key, value) in changes.as_object().unwrap() {
            config[key] = value.clone();
        }
        let added = call(&model, "ADD", &config);
        assert!(added.success, "{}", String::from_utf8_lossy(&added.stdout));
        assert_eq!(port_vlans(&model, &added), expected, "{changes}");
    }
}

/// CRI-O's config on VLAN 100, with the gateway.
fn crio_on_vlan(model_config: &mut Value) {
    model_config["vlan"] = json!(100);
}

#[test]
fn vlan_with_is_gateway_puts_the_gateways_on_a_shared_veth_pair() {
    let (model, mut config) = crio_node();
    crio_on_vlan(&mut config);
    model.world.borrow_mut().add_pod("/run/netns/second");
    let added = call(&model, "ADD", &config);
    assert!(added.success, "{}", String::from_utf8_lossy(&added.stdout));
    let result: Value = serde_json::from_slice(&added.stdout).unwrap();
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4);
    assert_eq!(names[3], "cni0.100");
    assert!(
        result["ips"]
            .as_array()
            .unwrap()
            .iter()
            .all(|ip| ip["interface"] == 2)
    );
    assert_eq!(
        port_vlans(&model, &added),
        vec![(1, false, true), (100, true, true)]
    );
    let second = model::call(&model, "ADD", "second", "/run/netns/second", &config);
    assert!(
        second.success,
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    {
        let world = model.world.borrow();
        assert!(link(&world, HOST, "cni0").addresses.is_empty());
        let gateway = link(&world, HOST, "cni0.100");
        let shown: Vec<String> = gateway.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.85.0.1/16", "1100:200::1/24"]);
        assert!(gateway.up);
        let (_, port) = gateway.peer.unwrap();
        let port = &world.state.namespaces[&HOST].links[&port];
        assert!(port.up && port.name.starts_with("veth"));
        assert_eq!(port.port_flags, (false, false));
        let vlans: Vec<_> = port
            .vlans
            .iter()
            .map(|(v, f)| (*v, f.pvid, f.untagged))
            .collect();
        assert_eq!(vlans, [(1, false, true), (100, true, true)]);
        let pairs = world.state.namespaces[&HOST]
            .links
            .values()
            .filter(|l| l.name.starts_with("cni0."))
            .count();
        assert_eq!(pairs, 1, "one gateway for the VLAN's pods");
    }
    config["prevResult"] = result;
    let checked = call(&model, "CHECK", &config);
    assert!(
        checked.success,
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    assert!(call(&model, "DEL", &config).success);
    assert!(model::call(&model, "DEL", "second", "/run/netns/second", &config).success);
    let world = model.world.borrow();
    assert!(link(&world, HOST, "cni0.100").up, "DEL leaves the gateway");
    assert!(world.state.leases.is_empty());
}

#[test]
fn a_vlan_gateway_left_half_built_is_completed_and_a_foreign_name_refused() {
    let (model, mut config) = crio_node();
    crio_on_vlan(&mut config);
    {
        let mut world = model.world.borrow_mut();
        let gateway = world.add_link(HOST, "cni0.100", "veth", false);
        let port = world.add_link(HOST, "vethhalf0001", "veth", false);
        let links = &mut world.namespace(HOST).links;
        links.get_mut(&gateway).unwrap().peer = Some((HOST, port));
        links.get_mut(&port).unwrap().peer = Some((HOST, gateway));
    }
    let added = call(&model, "ADD", &config);
    assert!(added.success, "{}", String::from_utf8_lossy(&added.stdout));
    {
        let world = model.world.borrow();
        let port = link(&world, HOST, "vethhalf0001");
        assert!(port.up && port.master.is_some());
        assert!(port.vlans[&100].pvid);
        assert!(link(&world, HOST, "cni0.100").up);
    }

    let (model, mut config) = crio_node();
    crio_on_vlan(&mut config);
    model
        .world
        .borrow_mut()
        .add_link(HOST, "cni0.100", "", true);
    let before = model.world.borrow().state.clone();
    let refused = call(&model, "ADD", &config);
    assert!(!refused.success);
    let error: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(
        error["msg"],
        "failed to create vlan interface: \"cni0.100\" already exists but is not a veth pair in the host namespace"
    );
    let after = model.world.borrow().state.clone();
    assert_eq!(
        World::without_shared(&after, "cni0"),
        World::without_shared(&before, "cni0")
    );
}
