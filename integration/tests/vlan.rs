//! The VLAN features of `bridge` on a real kernel, side by side with Debian's
//! reference plugin where it has the feature: `vlan` (the port's PVID and
//! untagged flags, `vlan_filtering` on the bridge), `vlanTrunk`,
//! `preserveDefaultVlan`, and `vlan` with `isGateway` (the gateway on the
//! shared `<bridge>.<vlan>` veth pair, pods reaching it and each other).
//!
//! They need `CONFIG_BRIDGE_VLAN_FILTERING`. This VM's own kernel lacks it,
//! so here they say so and return (the clean failure there is proven in
//! `bridge.rs`); `scripts/kernel-matrix.sh` runs them for real on Debian's
//! 5.10, 6.1 and 6.12 kernels and sets `CNI_RS_EXPECT_VLAN_FILTERING=1`, so
//! that a kernel without the feature fails them instead.

#![cfg(test)]

use integration::reference::Impl;
use integration::{
    Cleanup, IpFamily, TestNetns, TestNetwork, kernel, require_root, unique_ifname, unique_name,
};
use serde_json::{Value, json};

/// The access VLAN of these tests.
const VLAN: u16 = 100;

/// A VLAN as `bridge -j vlan show` has it: its ID and its flags joined.
type ShownVlan = (u64, String);

/// Whether the test can run: root, and a kernel with bridge VLAN filtering
/// (required when `CNI_RS_EXPECT_VLAN_FILTERING` is set).
fn vlan_kernel(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if kernel::bridge_vlan_filtering() {
        return true;
    }
    assert!(
        std::env::var_os("CNI_RS_EXPECT_VLAN_FILTERING").is_none(),
        "{test}: this kernel was expected to have bridge VLAN filtering"
    );
    eprintln!("{test}: this kernel has no bridge VLAN filtering; scripts/kernel-matrix.sh runs it");
    false
}

/// One test's network, with a bridge name short enough for `<bridge>.100`
/// (11 characters) and subnets `10.91.<k>.0/24`, `fd91:0:0:<k>::/64`.
struct Net(TestNetwork);

impl Net {
    /// A fresh network; the bridge, its VLAN gateway pair and the `dataDir`
    /// are removed by `cleanup`.
    fn new(k: u8, cleanup: &mut Cleanup) -> Net {
        Net::named(k, format!("v{}", &unique_ifname("")[..10]), cleanup)
    }

    fn named(k: u8, bridge: String, cleanup: &mut Cleanup) -> Net {
        let data_dir = std::env::temp_dir().join(unique_name("cni-vlan-data"));
        let mut net = TestNetwork::sharing_data_dir("v", "vlan", k, data_dir);
        net.bridge = bridge;
        cleanup.link_del(None, &net.bridge);
        cleanup.link_del(None, &format!("{}.{VLAN}", net.bridge));
        cleanup.remove_path(&net.data_dir);
        Net(net)
    }

    fn ip4(&self, host: u8) -> String {
        format!("10.91.{}.{host}", self.0.k)
    }

    fn ip6(&self, host: u8) -> String {
        format!("fd91:0:0:{}::{host:x}", self.0.k)
    }

    /// The gateway interface's name.
    fn gateway(&self) -> String {
        format!("{}.{VLAN}", self.0.bridge)
    }

    /// A bridge config with both families from host-local and a default
    /// route, `extra`'s keys set over it.
    fn config(&self, extra: &Value) -> Value {
        let subnets = [
            format!("10.91.{}.0/24", self.0.k),
            format!("fd91:0:0:{}::/64", self.0.k),
        ];
        let mut conf = self
            .0
            .bridge_config("1.0.0", &subnets, std::slice::from_ref(extra));
        conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
        conf
    }

    /// Replaces this network's names and subnets in `text` by placeholders,
    /// so two networks' states compare.
    fn normalized(&self, text: &str) -> String {
        text.replace(&self.gateway(), "BRIDGE.VLAN")
            .replace(&self.0.bridge, "BRIDGE")
            .replace(&format!("10.91.{}.", self.0.k), "NET4.")
            .replace(&format!("fd91:0:0:{}::", self.0.k), "NET6::")
    }
}

/// One pod: a namespace and a container ID.
struct Pod {
    ns: TestNetns,
    id: String,
}

impl Pod {
    /// A pod of `net`; its masquerade chains are removed by `cleanup`.
    fn new(net: &Net, cleanup: &mut Cleanup) -> Pod {
        let id = unique_name("vlan");
        let chain = bridge::masq::chain_name(&net.0.name, &id);
        cleanup.iptables_chain(false, "nat", &chain);
        cleanup.iptables_chain(true, "nat", &chain);
        Pod {
            ns: TestNetns::new("vlan"),
            id,
        }
    }

    fn call(&self, imp: Impl, command: &str, conf: &Value) -> integration::PluginOutput {
        imp.bridge_call(command, &self.id, self.ns.path(), conf)
            .run()
    }

    fn add(&self, imp: Impl, conf: &Value) -> Value {
        self.call(imp, "ADD", conf).expect_success().json()
    }

    fn del(&self, imp: Impl, conf: &Value) {
        self.call(imp, "DEL", conf).expect_success();
    }
}

fn host_veth(result: &Value) -> String {
    result["interfaces"][1]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no host veth in {result}"))
        .to_owned()
}

fn shown(ifname: &str) -> Vec<ShownVlan> {
    kernel::port_vlans(ifname)
        .into_iter()
        .map(|(vid, flags)| (vid, flags.join(",")))
        .collect()
}

fn vlans(expected: &[(u64, &str)]) -> Vec<ShownVlan> {
    expected
        .iter()
        .map(|(vid, flags)| (*vid, (*flags).to_owned()))
        .collect()
}

/// The bridge's `vlan_filtering` as `ip -d link` shows it.
fn vlan_filtering(bridge: &str) -> u64 {
    let link = kernel::link(None, bridge).unwrap_or_else(|| panic!("no bridge {bridge}"));
    link["linkinfo"]["info_data"]["vlan_filtering"]
        .as_u64()
        .unwrap_or_default()
}

/// What an access-VLAN ADD of `imp` leaves: the bridge's filtering, the
/// bridge's own VLANs and the port's.
fn access_vlan_state(imp: Impl, k: u8) -> (u64, Vec<ShownVlan>, Vec<ShownVlan>) {
    let mut cleanup = Cleanup::new();
    let net = Net::new(k, &mut cleanup);
    let pod = Pod::new(&net, &mut cleanup);
    let conf = net.config(&json!({"vlan": VLAN}));
    let result = pod.add(imp, &conf);
    let veth = host_veth(&result);
    let state = (
        vlan_filtering(&net.0.bridge),
        shown(&net.0.bridge),
        shown(&veth),
    );
    pod.del(imp, &conf);
    assert!(net.0.ports().is_empty(), "{imp:?}: port left");
    state
}

#[test]
fn an_access_vlan_is_set_as_the_reference_sets_it() {
    if !vlan_kernel("an_access_vlan_is_set_as_the_reference_sets_it") {
        return;
    }
    let ours = access_vlan_state(Impl::Ours, 1);
    assert_eq!(ours.0, 1, "vlan_filtering on the new bridge");
    assert_eq!(
        ours.2,
        vlans(&[(1, "Egress Untagged"), (100, "PVID,Egress Untagged")]),
        "VLAN 1 kept (no longer PVID), VLAN 100 the port's PVID"
    );
    let reference = access_vlan_state(Impl::Reference, 2);
    assert_eq!(ours, reference, "ours vs Debian's reference");
}

#[test]
fn trunks_and_preserve_default_vlan_follow_upstream() {
    if !vlan_kernel("trunks_and_preserve_default_vlan_follow_upstream") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new(3, &mut cleanup);
    let trunk = json!([{"id": 101}, {"minID": 200, "maxID": 202}]);
    let cases = [
        (
            json!({"vlan": VLAN, "preserveDefaultVlan": false}),
            vec![(100, "PVID,Egress Untagged")],
        ),
        (
            json!({"vlanTrunk": trunk}),
            vec![
                (1, "PVID,Egress Untagged"),
                (101, ""),
                (200, ""),
                (201, ""),
                (202, ""),
            ],
        ),
        (
            json!({"vlanTrunk": trunk, "preserveDefaultVlan": false}),
            vec![(101, ""), (200, ""), (201, ""), (202, "")],
        ),
        (
            json!({"vlan": VLAN, "vlanTrunk": [{"id": 101}]}),
            vec![
                (1, "Egress Untagged"),
                (100, "PVID,Egress Untagged"),
                (101, ""),
            ],
        ),
    ];
    for (extra, expected) in cases {
        let pod = Pod::new(&net, &mut cleanup);
        let conf = net.config(&extra);
        let result = pod.add(Impl::Ours, &conf);
        assert_eq!(shown(&host_veth(&result)), vlans(&expected), "{extra}");
        pod.del(Impl::Ours, &conf);
    }
    assert_eq!(vlan_filtering(&net.0.bridge), 1);
}

/// The pod's IPv4 routes: destination, gateway and device.
fn routes(pod: &Pod) -> Vec<String> {
    kernel::routes(Some(pod.ns.name()), IpFamily::V4)
        .iter()
        .map(|r| format!("{} via {} dev {}", r["dst"], r["gateway"], r["dev"]))
        .collect()
}

/// The gateway pair's port: the bridge's port that is no pod's veth.
fn gateway_port(net: &Net, pod_veths: &[String]) -> String {
    let ports: Vec<String> = net
        .0
        .ports()
        .into_iter()
        .filter(|p| !pod_veths.contains(p))
        .collect();
    assert_eq!(ports.len(), 1, "one gateway port: {ports:?}");
    ports[0].clone()
}

/// Two pods of `imp` on VLAN 100 with the gateway: checks what the kernel
/// holds and that the pods reach the gateway, each other and the host, and
/// returns it normalized for comparison with another implementation.
fn vlan_gateway_state(imp: Impl, k: u8) -> Value {
    let mut cleanup = Cleanup::new();
    let net = Net::new(k, &mut cleanup);
    let conf = net.config(&json!({"vlan": VLAN, "isGateway": true, "ipMasq": true}));
    let (first, second) = (Pod::new(&net, &mut cleanup), Pod::new(&net, &mut cleanup));
    let result = first.add(imp, &conf);
    let second_result = second.add(imp, &conf);
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        names.get(3).copied(),
        Some(net.gateway().as_str()),
        "{imp:?}: {result}"
    );
    let veths = [host_veth(&result), host_veth(&second_result)];
    let port = gateway_port(&net, &veths);
    let gateway = net.gateway();
    assert!(kernel::link_is_up(None, &gateway), "{imp:?}: gateway down");
    assert!(first.ns.ping(&net.ip4(1), 3), "{imp:?}: pod to gateway");
    assert!(first.ns.ping(&net.ip4(3), 3), "{imp:?}: pod to pod");
    assert!(
        first.ns.ping(&net.ip6(1), 5),
        "{imp:?}: pod to gateway over IPv6"
    );
    let state = json!({
        "result interfaces": names.len(),
        "gateway addresses": kernel::addr_cidrs(None, &gateway)
            .into_iter().filter(|a| !a.starts_with("fe80")).collect::<Vec<_>>(),
        "bridge addresses": kernel::addr_cidrs(None, &net.0.bridge)
            .into_iter().filter(|a| !a.starts_with("fe80")).collect::<Vec<_>>(),
        "gateway port VLANs": shown(&port),
        "pod port VLANs": shown(&veths[0]),
        "bridge VLANs": shown(&net.0.bridge),
        "pod routes": routes(&first),
    });
    first.del(imp, &conf);
    second.del(imp, &conf);
    assert_eq!(
        net.0.ports(),
        vec![port],
        "{imp:?}: DEL leaves the gateway port"
    );
    assert!(
        kernel::link_exists(None, &gateway),
        "{imp:?}: DEL leaves the gateway"
    );
    serde_json::from_str(&net.normalized(&state.to_string())).unwrap_or(state)
}

#[test]
fn vlan_with_is_gateway_builds_the_references_gateway_pair() {
    if !vlan_kernel("vlan_with_is_gateway_builds_the_references_gateway_pair") {
        return;
    }
    let ours = vlan_gateway_state(Impl::Ours, 4);
    assert_eq!(
        ours["gateway addresses"],
        json!(["NET4.1/24", "NET6::1/64"]),
        "{ours:#}"
    );
    assert_eq!(ours["bridge addresses"], json!([]), "{ours:#}");
    let expected_port = json!([[1, "Egress Untagged"], [100, "PVID,Egress Untagged"]]);
    assert_eq!(ours["gateway port VLANs"], expected_port, "{ours:#}");
    assert_eq!(ours["pod port VLANs"], expected_port, "{ours:#}");
    let reference = vlan_gateway_state(Impl::Reference, 5);
    assert_eq!(ours, reference, "ours vs Debian's reference");
}

#[test]
fn a_vlan_gateway_is_shared_with_the_reference_either_way() {
    if !vlan_kernel("a_vlan_gateway_is_shared_with_the_reference_either_way") {
        return;
    }
    for (creator, joiner, k) in [
        (Impl::Reference, Impl::Ours, 6),
        (Impl::Ours, Impl::Reference, 7),
    ] {
        let mut cleanup = Cleanup::new();
        let net = Net::new(k, &mut cleanup);
        let conf = net.config(&json!({"vlan": VLAN, "isGateway": true}));
        let (first, second) = (Pod::new(&net, &mut cleanup), Pod::new(&net, &mut cleanup));
        let first_result = first.add(creator, &conf);
        let port = gateway_port(&net, &[host_veth(&first_result)]);
        let second_result = second.add(joiner, &conf);
        let veths = [host_veth(&first_result), host_veth(&second_result)];
        assert_eq!(
            gateway_port(&net, &veths),
            port,
            "{joiner:?} made a second gateway"
        );
        assert!(
            second.ns.ping(&net.ip4(1), 3),
            "{joiner:?}'s pod to the gateway"
        );
        assert!(
            second.ns.ping(&net.ip4(2), 3),
            "{joiner:?}'s pod to {creator:?}'s"
        );
        // Each DEL by the other implementation.
        first.del(joiner, &conf);
        second.del(creator, &conf);
        assert_eq!(net.0.ports(), vec![port]);
        assert!(net.0.leases().is_empty(), "{:?}", net.0.leases());
    }
}

#[test]
fn a_gateway_name_too_long_is_refused_and_rolled_back() {
    if !vlan_kernel("a_gateway_name_too_long_is_refused_and_rolled_back") {
        return;
    }
    let mut cleanup = Cleanup::new();
    // 12 characters: `<bridge>.100` would be 16, over IFNAMSIZ.
    let net = Net::named(8, format!("v{}", &unique_ifname("")[..11]), &mut cleanup);
    let pod = Pod::new(&net, &mut cleanup);
    let conf = net.config(&json!({"vlan": VLAN, "isGateway": true, "ipMasq": true}));
    let out = pod.call(Impl::Ours, "ADD", &conf);
    let error = out.expect_error(999);
    let msg = error["msg"].as_str().unwrap_or_default();
    let wanted = format!(
        "failed to create vlan interface: invalid name \"{}\"",
        net.gateway()
    );
    assert!(msg.starts_with(&wanted), "{msg}");
    assert!(net.0.ports().is_empty(), "port left");
    assert!(net.0.leases().is_empty(), "lease left");
    let inside: Vec<String> = kernel::links(Some(pod.ns.name()))
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(inside, ["lo"]);
    let rules = kernel::nat_rules(IpFamily::V4, &pod.id);
    assert!(rules.is_empty(), "{rules:?}");
}
