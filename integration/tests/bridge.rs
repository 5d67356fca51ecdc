//! Root tests of the built `bridge` binary (with our `host-local`), executed
//! exactly as a runtime executes them, asserting the kernel state they leave:
//! links and port flags (`ip -j -d`, `bridge -j -d`), addresses, routes,
//! sysctls read inside the namespaces, `iptables -t nat -S`, and the lease
//! files of a private host-local `dataDir`.
//!
//! Every test has its own bridge (`unique_ifname`), network name, container
//! IDs, namespaces and subnets (`10.<200+n>.0.0/16` and `fd<nn>:ab00::/24`,
//! `n` unique per test), so the tests run in parallel. A [`Cleanup`] guard
//! removes the bridge, the `CNI-…` chains of both families and the dataDir,
//! and the namespaces (with the veths inside) are deleted on drop, also when
//! a test panics.
//!
//! The side-by-side tests run Debian's reference plugins from
//! `/usr/lib/cni` (`apt-get install containernetworking-plugins`). Build the
//! plugins first: `cargo build --workspace --all-features`.

#![cfg(test)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration::reference::Impl;
use integration::{
    Cleanup, IpFamily, PluginCall, PluginOutput, TestNetns, TestNetwork, cmd, kernel, ms,
    require_root, unique_ifname, unique_name, wait_until,
};
use serde_json::{Value, json};

/// CRI-O's shipped config, `100-crio-bridge.conf`: the acceptance config.
const CRIO_CONF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cni-types/tests/fixtures/100-crio-bridge.conf"
));

/// The reference's recorded ADD outputs of the CRI-O config (bridge `hbr0`,
/// sandbox `/run/netns/hns-a`), used to validate [`expected_result`].
const REFERENCE_FIXTURES: [(&str, &str); 3] = [
    (
        "0.3.1",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../cni-types/tests/fixtures/reference-bridge-ADD-0.3.1.json"
        )),
    ),
    (
        "0.4.0",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../cni-types/tests/fixtures/reference-bridge-ADD-0.4.0.json"
        )),
    ),
    (
        "1.0.0",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../cni-types/tests/fixtures/reference-bridge-ADD-1.0.0.json"
        )),
    ),
];

/// How long a host veth may take to disappear after its namespace is deleted
/// (the kernel destroys namespaces asynchronously).
const VANISH_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The test world: a private network and attachments ("pods") on it.
// ---------------------------------------------------------------------------

integration::test_network! {
    /// One test's private network (bridge, network name, dataDir, lease files)
    /// with this file's subnets and configs.
    Net
}

impl Net {
    /// A fresh network; `n` (1..=55) picks the subnets and must be unique per
    /// test. The bridge and the dataDir are removed by `cleanup`.
    fn new(tag: &str, n: u8, cleanup: &mut Cleanup) -> Net {
        assert!((1..=55).contains(&n), "subnet index {n} out of range");
        Net(TestNetwork::new("cbr", tag, n, cleanup))
    }

    fn subnet4(&self) -> String {
        format!("10.{}.0.0/16", 200 + u16::from(self.k))
    }

    fn ip4(&self, host: u8) -> String {
        format!("10.{}.0.{host}", 200 + u16::from(self.k))
    }

    /// A /24 like CRI-O's `1100:200::/24`, but a valid network (no host bits).
    fn subnet6(&self) -> String {
        format!("fd{:02x}:ab00::/24", self.k)
    }

    fn ip6(&self, host: u16) -> String {
        format!("fd{:02x}:ab00::{host:x}", self.k)
    }

    /// The IPAM section of the CRI-O config with this network's subnets;
    /// `routes` adds CRI-O's two routes (the v6 one with host bits).
    fn ipam(&self, routes: bool) -> Value {
        let mut ipam = json!({
            "type": "host-local",
            "dataDir": self.data_dir,
            "ranges": [[{"subnet": self.subnet4()}], [{"subnet": self.subnet6()}]],
        });
        if routes {
            ipam["routes"] = json!([
                {"dst": "0.0.0.0/0"},
                {"dst": format!("{}/24", self.ip6(1))},
            ]);
        }
        ipam
    }

    /// CRI-O's config as a JSON value with this network's names, subnets and
    /// dataDir, with the top-level keys of `extra` set over it (`null`
    /// removes a key).
    fn config(&self, version: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": self.name,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": self.ipam(true),
        });
        if let (Some(conf), Value::Object(extra)) = (conf.as_object_mut(), extra) {
            for (key, value) in extra {
                if value.is_null() {
                    conf.remove(&key);
                } else {
                    conf.insert(key, value);
                }
            }
        }
        conf
    }

    /// The text of CRI-O's `100-crio-bridge.conf` with only the bridge name,
    /// network name, subnets (and the v6 route derived from the subnet) and
    /// `dataDir` replaced, at `version`.
    fn crio_config(&self, version: &str) -> String {
        let text = CRIO_CONF
            .replace(
                "\"cniVersion\": \"0.3.1\"",
                &format!("\"cniVersion\": \"{version}\""),
            )
            .replace(
                "\"name\": \"crio\"",
                &format!("\"name\": \"{}\"", self.name),
            )
            .replace(
                "\"bridge\": \"cni0\"",
                &format!("\"bridge\": \"{}\"", self.bridge),
            )
            .replace("10.85.0.0/16", &self.subnet4())
            .replace("1100:200::1/24", &format!("{}/24", self.ip6(1)))
            .replace("1100:200::/24", &self.subnet6())
            .replace(
                "\"type\": \"host-local\",",
                &format!(
                    "\"type\": \"host-local\",\n        \"dataDir\": {},",
                    json!(self.data_dir)
                ),
            );
        for original in ["cni0", "\"crio\"", "10.85.", "1100:"] {
            assert!(!text.contains(original), "{original} not replaced:\n{text}");
        }
        assert!(text.contains("dataDir"), "dataDir not inserted:\n{text}");
        let parsed: Value = serde_json::from_str(&text).expect("crio config is JSON");
        assert_eq!(parsed["cniVersion"], version);
        text
    }

    /// The CRI-O config as a one-plugin conflist ("twin") at `version`.
    fn crio_conflist(&self, version: &str) -> Value {
        let mut plugin: Value =
            serde_json::from_str(&self.crio_config(version)).expect("crio config is JSON");
        let object = plugin.as_object_mut().expect("config is an object");
        object.remove("cniVersion");
        object.remove("name");
        json!({"cniVersion": version, "name": self.name, "plugins": [plugin]})
    }
}

/// One attachment: a container ID, an interface name and a namespace.
struct Pod {
    id: String,
    ifname: String,
    netns_name: String,
    netns_path: String,
    chain: String,
    network: String,
}

impl Pod {
    /// A new attachment of `ns` to `net`; its masquerade chains (both
    /// families) are removed by `cleanup`.
    fn new(net: &Net, ns: &TestNetns, ifname: &str, cleanup: &mut Cleanup) -> Pod {
        let id = unique_name("ctr");
        let chain = bridge::masq::chain_name(&net.name, &id);
        cleanup.iptables_chain(false, "nat", &chain);
        cleanup.iptables_chain(true, "nat", &chain);
        Pod {
            id,
            ifname: ifname.to_string(),
            netns_name: ns.name().to_string(),
            netns_path: ns.path_str(),
            chain,
            network: net.name.clone(),
        }
    }

    /// A call of `imp` for this attachment, with the environment a runtime
    /// sets and `stdin` as the config.
    fn call(&self, imp: Impl, command: &str, stdin: impl Into<Vec<u8>>) -> PluginCall {
        imp.call("bridge")
            .command(command)
            .container_id(&self.id)
            .netns(&self.netns_path)
            .ifname(&self.ifname)
            .stdin(stdin)
    }

    /// The host veth name our plugin derives for this attachment first.
    fn derived_veth(&self) -> String {
        kernel::derived_veth_name(&self.network, &self.id, &self.ifname)
    }

    fn ns(&self) -> Option<&str> {
        Some(self.netns_name.as_str())
    }

    /// The lease files naming this attachment.
    fn leases(&self, net: &Net) -> Vec<String> {
        let owner = format!("{}\r\n{}", self.id, self.ifname);
        net.leases()
            .into_iter()
            .filter(|(_, content)| content.trim() == owner || content.trim() == self.id)
            .map(|(name, _)| name)
            .collect()
    }

    /// `-S` lines of the nat table mentioning this attachment's chain.
    fn rules(&self, ipv6: bool) -> Vec<String> {
        kernel::nat_rules(IpFamily::from_ipv6(ipv6), &self.chain)
    }

    /// The reference's rules for `addr` (`ip/prefix`) in `iptables -S`.
    fn reference_rules(&self, ip: &str, network: &str) -> Vec<String> {
        let c = &self.chain;
        let comment = format!("\"name: \\\"{}\\\" id: \\\"{}\\\"\"", self.network, self.id);
        let (host, multicast) = if ip.contains(':') {
            (128, "ff00::/8")
        } else {
            (32, "224.0.0.0/4")
        };
        vec![
            format!("-N {c}"),
            format!("-A POSTROUTING -s {ip}/{host} -m comment --comment {comment} -j {c}"),
            format!("-A {c} -d {network} -m comment --comment {comment} -j ACCEPT"),
            format!("-A {c} ! -d {multicast} -m comment --comment {comment} -j MASQUERADE"),
        ]
    }

    /// Asserts that nothing of this attachment is left: no lease, no chain
    /// in either family, and none of `veths` nor the derived veth name
    /// (waiting for the kernel when the namespace was just deleted).
    fn assert_gone(&self, net: &Net, veths: &[&str]) {
        assert_eq!(self.leases(net), Vec::<String>::new(), "leases left");
        assert_eq!(self.rules(false), Vec::<String>::new(), "iptables left");
        assert_eq!(self.rules(true), Vec::<String>::new(), "ip6tables left");
        let derived = self.derived_veth();
        for veth in veths.iter().copied().chain([derived.as_str()]) {
            wait_until(
                &format!("host veth {veth} to vanish"),
                VANISH_TIMEOUT,
                || !kernel::link_exists(None, veth),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Observers.
// ---------------------------------------------------------------------------

fn host_link(name: &str) -> Value {
    kernel::link(None, name).unwrap_or_else(|| panic!("no link {name} in the host namespace"))
}

fn ns_link(ns: Option<&str>, name: &str) -> Value {
    kernel::link(ns, name).unwrap_or_else(|| panic!("no link {name} in netns {ns:?}"))
}

fn kind(link: &Value) -> &str {
    link["linkinfo"]["info_kind"].as_str().unwrap_or("")
}

fn mac(link: &Value) -> String {
    link["address"].as_str().unwrap_or("").to_string()
}

fn names(links: &[Value]) -> Vec<String> {
    links
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

/// The bridge-port object of `veth` (`bridge -j -d link show dev <veth>`).
fn port(veth: &str) -> Value {
    let out = cmd::run_ok("bridge", &["-j", "-d", "link", "show", "dev", veth]);
    let ports: Value = serde_json::from_str(&out).expect("bridge -j prints JSON");
    ports
        .as_array()
        .and_then(|p| p.first())
        .cloned()
        .unwrap_or_else(|| panic!("{veth} is not a bridge port: {out}"))
}

/// The non-link-local addresses of a link, as `ip/prefix`.
fn global_addrs(ns: Option<&str>, ifname: &str) -> Vec<String> {
    kernel::addrs(ns, ifname)
        .iter()
        .filter(|a| a["scope"] != "link")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect()
}

/// The route of `family` in `ns` with destination `dst` (`default` or a
/// network) and a gateway, if any.
fn route_via(ns: Option<&str>, family: IpFamily, dst: &str) -> Option<Value> {
    kernel::routes(ns, family)
        .into_iter()
        .find(|r| r["dst"] == dst && r.get("gateway").is_some())
}

// ---------------------------------------------------------------------------
// Expected results, printed as libcni 1.1.2 prints them.
// ---------------------------------------------------------------------------

/// A JSON value with a fixed key order, printed like Go's
/// `json.MarshalIndent(v, "", "    ")` (no trailing newline).
enum J {
    Str(String),
    Int(u64),
    Obj(Vec<(&'static str, J)>),
    Arr(Vec<J>),
}

impl J {
    fn s(text: &str) -> J {
        J::Str(text.to_string())
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = |out: &mut String, depth: usize| out.push_str(&"    ".repeat(depth));
        match self {
            J::Str(s) => out.push_str(&serde_json::to_string(s).expect("string")),
            J::Int(n) => out.push_str(&n.to_string()),
            J::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            J::Arr(items) if items.is_empty() => out.push_str("[]"),
            J::Obj(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    pad(out, depth + 1);
                    out.push_str(&format!("\"{key}\": "));
                    value.write(out, depth + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                pad(out, depth);
                out.push('}');
            }
            J::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    pad(out, depth + 1);
                    item.write(out, depth + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                pad(out, depth);
                out.push(']');
            }
        }
    }
}

/// Everything an ADD result of the bridge says.
struct Expected {
    version: String,
    bridge: (String, String),
    veth: (String, String),
    container: (String, String, String),
    /// `(address/prefix, gateway)`.
    ips: Vec<(String, String)>,
    /// `(dst, gw)`.
    routes: Vec<(String, Option<String>)>,
}

impl Expected {
    /// The CRI-O shape for `net` (first address `.2`, routes as CRI-O's).
    fn crio(version: &str, net: &Net, host: u8, links: Links) -> Expected {
        Expected {
            version: version.to_string(),
            bridge: links.bridge,
            veth: links.veth,
            container: links.container,
            ips: vec![
                (format!("{}/16", net.ip4(host)), net.ip4(1)),
                (format!("{}/24", net.ip6(u16::from(host))), net.ip6(1)),
            ],
            routes: vec![
                ("0.0.0.0/0".to_string(), None),
                (format!("{}/24", net.ip6(1)), None),
            ],
        }
    }
}

/// Names and MACs of the three interfaces of a result.
struct Links {
    bridge: (String, String),
    veth: (String, String),
    /// name, mac, sandbox.
    container: (String, String, String),
}

impl Links {
    /// Names from the config and the result's veth name, MACs from the
    /// kernel, so a result that matches proves its MACs are the real ones.
    fn from_kernel(net: &Net, pod: &Pod, result: &Value) -> Links {
        let veth = result["interfaces"][1]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no host veth in the result: {result}"))
            .to_string();
        Links {
            bridge: (net.bridge.clone(), mac(&host_link(&net.bridge))),
            veth: (veth.clone(), mac(&host_link(&veth))),
            container: (
                pod.ifname.clone(),
                mac(&ns_link(pod.ns(), &pod.ifname)),
                pod.netns_path.clone(),
            ),
        }
    }
}

fn route_json(dst: &str, gw: Option<&String>) -> J {
    let mut fields = vec![("dst", J::s(dst))];
    if let Some(gw) = gw {
        fields.push(("gw", J::s(gw)));
    }
    J::Obj(fields)
}

/// The exact bytes the reference prints for `e` at `e.version`.
fn expected_result(e: &Expected) -> String {
    let v = e.version.as_str();
    let is_v6 = |text: &str| text.contains(':');
    if v == "0.1.0" || v == "0.2.0" {
        let family = |v6: bool| {
            let (address, gateway) = e.ips.iter().find(|(a, _)| is_v6(a) == v6)?;
            let routes: Vec<J> = e
                .routes
                .iter()
                .filter(|(dst, _)| is_v6(dst) == v6)
                .map(|(dst, gw)| route_json(dst, gw.as_ref()))
                .collect();
            let mut fields = vec![("ip", J::s(address)), ("gateway", J::s(gateway))];
            if !routes.is_empty() {
                fields.push(("routes", J::Arr(routes)));
            }
            Some(J::Obj(fields))
        };
        let mut fields = vec![("cniVersion", J::s(v))];
        if let Some(ip4) = family(false) {
            fields.push(("ip4", ip4));
        }
        if let Some(ip6) = family(true) {
            fields.push(("ip6", ip6));
        }
        fields.push(("dns", J::Obj(Vec::new())));
        return J::Obj(fields).render();
    }
    let with_version = matches!(v, "0.3.0" | "0.3.1" | "0.4.0");
    let interfaces = J::Arr(vec![
        J::Obj(vec![
            ("name", J::s(&e.bridge.0)),
            ("mac", J::s(&e.bridge.1)),
        ]),
        J::Obj(vec![("name", J::s(&e.veth.0)), ("mac", J::s(&e.veth.1))]),
        J::Obj(vec![
            ("name", J::s(&e.container.0)),
            ("mac", J::s(&e.container.1)),
            ("sandbox", J::s(&e.container.2)),
        ]),
    ]);
    let ips = J::Arr(
        e.ips
            .iter()
            .map(|(address, gateway)| {
                let mut fields = Vec::new();
                if with_version {
                    fields.push(("version", J::s(if is_v6(address) { "6" } else { "4" })));
                }
                fields.push(("interface", J::Int(2)));
                fields.push(("address", J::s(address)));
                fields.push(("gateway", J::s(gateway)));
                J::Obj(fields)
            })
            .collect(),
    );
    let mut fields = vec![
        ("cniVersion", J::s(v)),
        ("interfaces", interfaces),
        ("ips", ips),
    ];
    if !e.routes.is_empty() {
        let routes = e
            .routes
            .iter()
            .map(|(dst, gw)| route_json(dst, gw.as_ref()))
            .collect();
        fields.push(("routes", J::Arr(routes)));
    }
    fields.push(("dns", J::Obj(Vec::new())));
    J::Obj(fields).render()
}

/// Replaces every MAC value and the host veth name in a printed result by
/// placeholders, keeping everything else (indentation, key order) as is.
fn normalize(stdout: &str) -> String {
    let is_mac = |s: &str| {
        s.len() == 17
            && s.split(':')
                .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
    };
    stdout
        .split('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let tail = if trimmed.ends_with(',') { "," } else { "" };
            if let Some(value) = trimmed.strip_prefix("\"mac\": \"") {
                let value = value.trim_end_matches(',').trim_end_matches('"');
                assert!(is_mac(value), "bad MAC {value:?} in\n{stdout}");
                return format!("{indent}\"mac\": \"<mac>\"{tail}");
            }
            if let Some(value) = trimmed.strip_prefix("\"name\": \"veth") {
                let value = value.trim_end_matches(',').trim_end_matches('"');
                assert!(
                    value.len() == 8 && value.bytes().all(|c| c.is_ascii_hexdigit()),
                    "bad veth name veth{value} in\n{stdout}"
                );
                return format!("{indent}\"name\": \"veth<8 hex>\"{tail}");
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Requires exit status 1, an error object with `code` and `msg`, our
/// `cniVersion` key (README "Differences"), and no panic.
fn assert_error(out: &PluginOutput, code: u64, msg: &str, version: &str) -> Value {
    let err = out.expect_error(code);
    assert_eq!(out.code(), Some(1), "exit status\n{}", out.describe());
    assert_eq!(err["msg"], msg, "msg\n{}", out.describe());
    assert_eq!(err["cniVersion"], version, "{}", out.describe());
    assert!(!out.stderr_str().contains("panicked"), "{}", out.describe());
    err
}

/// ADD through our plugin; returns the output and the parsed result.
fn add(pod: &Pod, stdin: &str) -> (PluginOutput, Value) {
    let out = pod.call(Impl::Ours, "ADD", stdin).run().expect_success();
    let result = out.json();
    (out, result)
}

fn veth_of(result: &Value) -> String {
    result["interfaces"][1]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no host veth in {result}"))
        .to_string()
}

// ---------------------------------------------------------------------------
// 1. Features.
// ---------------------------------------------------------------------------

#[test]
fn add_creates_bridge_veth_pair_and_container_interface() {
    if !require_root("add_creates_bridge_veth_pair_and_container_interface") {
        return;
    }
    let ns = TestNetns::new("br-links");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-links", 1, &mut cleanup);
    // A non-default CNI_IFNAME proves the name is taken from the runtime.
    let pod = Pod::new(&net, &ns, "net1", &mut cleanup);
    assert!(!kernel::link_exists(None, &net.bridge));

    let (_, result) = add(&pod, &net.config("1.0.0", json!({})).to_string());

    let bridge = host_link(&net.bridge);
    assert_eq!(kind(&bridge), "bridge", "{bridge}");
    assert!(kernel::link_is_up(None, &net.bridge), "bridge not UP");

    let veth_name = veth_of(&result);
    assert!(
        veth_name.len() == 12
            && veth_name.starts_with("veth")
            && veth_name[4..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "host veth {veth_name} is not veth + 8 lower-case hex"
    );
    assert_eq!(veth_name, pod.derived_veth(), "not the derived name");
    let veth = host_link(&veth_name);
    assert_eq!(kind(&veth), "veth", "{veth}");
    assert_eq!(veth["master"], net.bridge.as_str(), "{veth}");
    assert!(kernel::link_is_up(None, &veth_name), "host veth not UP");
    assert_eq!(net.ports(), vec![veth_name.clone()]);

    let inside = names(&kernel::links(pod.ns()));
    assert_eq!(inside, vec!["lo".to_string(), "net1".to_string()]);
    let container = ns_link(pod.ns(), "net1");
    assert_eq!(kind(&container), "veth", "{container}");
    assert!(kernel::link_is_up(pod.ns(), "net1"), "net1 not UP");
    assert_eq!(
        container["link_index"], veth["ifindex"],
        "net1's peer is not the host veth"
    );

    let links = Links::from_kernel(&net, &pod, &result);
    assert_eq!(result["interfaces"][0]["mac"], links.bridge.1.as_str());
    assert_eq!(result["interfaces"][1]["mac"], links.veth.1.as_str());
    assert_eq!(result["interfaces"][2]["mac"], links.container.1.as_str());
    assert_eq!(result["interfaces"][2]["sandbox"], ns.path_str().as_str());
    assert!(result["interfaces"][0].get("sandbox").is_none());
    assert!(result["interfaces"][1].get("sandbox").is_none());
}

#[test]
fn mtu_applies_to_a_new_bridge_and_both_veth_ends() {
    if !require_root("mtu_applies_to_a_new_bridge_and_both_veth_ends") {
        return;
    }
    let ns = TestNetns::new("br-mtu");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-mtu", 2, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let (_, result) = add(&pod, &net.config("1.0.0", json!({"mtu": 1400})).to_string());
    let veth = veth_of(&result);
    assert_eq!(host_link(&net.bridge)["mtu"], 1400, "bridge MTU");
    assert_eq!(host_link(&veth)["mtu"], 1400, "host veth MTU");
    assert_eq!(ns_link(pod.ns(), "eth0")["mtu"], 1400, "container MTU");
}

#[test]
fn mac_sources_apply_in_order_cni_args_then_args_then_runtime_config() {
    if !require_root("mac_sources_apply_in_order_cni_args_then_args_then_runtime_config") {
        return;
    }
    let ns1 = TestNetns::new("br-mac1");
    let ns2 = TestNetns::new("br-mac2");
    let ns3 = TestNetns::new("br-mac3");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-mac", 3, &mut cleanup);
    let cases = [
        // (namespace, CNI_ARGS MAC, args.cni.mac, runtimeConfig.mac, expected)
        (&ns1, "02:aa:00:00:00:01", None, None, "02:aa:00:00:00:01"),
        (
            &ns2,
            "02:aa:00:00:00:02",
            Some("02:bb:00:00:00:02"),
            None,
            "02:bb:00:00:00:02",
        ),
        (
            &ns3,
            "02:aa:00:00:00:03",
            Some("02:bb:00:00:00:03"),
            Some("02:cc:00:00:00:03"),
            "02:cc:00:00:00:03",
        ),
    ];
    for (ns, cni_args_mac, args_mac, runtime_mac, expected) in cases {
        let pod = Pod::new(&net, ns, "eth0", &mut cleanup);
        let mut extra = json!({});
        if let Some(mac) = args_mac {
            extra["args"] = json!({"cni": {"mac": mac}});
        }
        if let Some(mac) = runtime_mac {
            extra["runtimeConfig"] = json!({"mac": mac});
        }
        let out = pod
            .call(Impl::Ours, "ADD", net.config("1.0.0", extra).to_string())
            .args(&format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;MAC={cni_args_mac}"
            ))
            .run()
            .expect_success();
        let result = out.json();
        assert_eq!(mac(&ns_link(pod.ns(), "eth0")), expected, "kernel MAC");
        assert_eq!(result["interfaces"][2]["mac"], expected, "result MAC");
    }
}

#[test]
fn hairpin_mode_sets_the_port_flag_and_reflects_frames() {
    if !require_root("hairpin_mode_sets_the_port_flag_and_reflects_frames") {
        return;
    }
    let ns_on = TestNetns::new("br-hp-on");
    let ns_off = TestNetns::new("br-hp-off");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-hairpin", 4, &mut cleanup);
    let on = Pod::new(&net, &ns_on, "eth0", &mut cleanup);
    let off = Pod::new(&net, &ns_off, "eth0", &mut cleanup);
    let conf = |hairpin: bool| {
        net.config("1.0.0", json!({"hairpinMode": hairpin}))
            .to_string()
    };
    let (_, result_on) = add(&on, &conf(true));
    let (_, result_off) = add(&off, &conf(false));

    let port_on = port(&veth_of(&result_on));
    let port_off = port(&veth_of(&result_off));
    assert_eq!(port_on["hairpin"], true, "{port_on}");
    assert_eq!(port_off["hairpin"], false, "{port_off}");
    assert_eq!(port_on["isolated"], false, "{port_on}");
    assert_eq!(port_on["master"], net.bridge.as_str());

    // Functional check. With hairpin on, the bridge sends flooded frames
    // back out of the port they came in on, so a pod hears its own
    // multicast. IPv6 DAD without the enhanced-DAD nonce then sees its own
    // Neighbour Solicitation and marks the address `dadfailed`; without
    // hairpin the same address becomes valid. (A pod's traffic to its own
    // address never leaves `lo`, so pinging itself proves nothing.)
    for ns in [&ns_on, &ns_off] {
        ns.exec_ok(&[
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/enhanced_dad && \
             echo 0 > /proc/sys/net/ipv6/conf/eth0/enhanced_dad && \
             echo 1 > /proc/sys/net/ipv6/conf/eth0/accept_dad",
        ]);
    }
    let probe = |ns: &TestNetns, host: u16| {
        let cidr = format!("{}/24", net.ip6(host));
        ns.ip(&["addr", "add", cidr.as_str(), "dev", "eth0"]);
        let ip = net.ip6(host);
        move |ns: &TestNetns| {
            kernel::addrs(Some(ns.name()), "eth0")
                .into_iter()
                .find(|a| a["local"] == ip.as_str())
                .unwrap_or_else(|| panic!("{ip} vanished"))
        }
    };
    let state_on = probe(&ns_on, 0xa99);
    let state_off = probe(&ns_off, 0xb99);
    wait_until(
        "DAD to fail on the hairpin port",
        Duration::from_secs(5),
        || state_on(&ns_on)["dadfailed"] == true,
    );
    wait_until(
        "DAD to finish without hairpin",
        Duration::from_secs(5),
        || state_off(&ns_off).get("tentative").is_none(),
    );
    assert!(
        state_off(&ns_off).get("dadfailed").is_none(),
        "DAD failed without hairpin: {}",
        state_off(&ns_off)
    );
}

#[test]
fn port_isolation_sets_the_isolated_flag() {
    if !require_root("port_isolation_sets_the_isolated_flag") {
        return;
    }
    let ns_a = TestNetns::new("br-iso-a");
    let ns_b = TestNetns::new("br-iso-b");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-iso", 5, &mut cleanup);
    let a = Pod::new(&net, &ns_a, "eth0", &mut cleanup);
    let b = Pod::new(&net, &ns_b, "eth0", &mut cleanup);
    let conf = net
        .config("1.0.0", json!({"portIsolation": true}))
        .to_string();
    let (_, result_a) = add(&a, &conf);
    let (_, result_b) = add(&b, &conf);
    for result in [&result_a, &result_b] {
        let p = port(&veth_of(result));
        assert_eq!(p["isolated"], true, "{p}");
        assert_eq!(p["hairpin"], true, "{p}");
    }
    // Isolated ports reach the bridge (the gateway) but not each other.
    assert!(
        ns_a.ping(&net.ip4(1), 3),
        "isolated pod cannot reach the gateway"
    );
    assert!(!ns_a.ping(&net.ip4(3), 1), "isolated pods reach each other");
}

#[test]
fn promisc_mode_turns_on_bridge_promiscuity() {
    if !require_root("promisc_mode_turns_on_bridge_promiscuity") {
        return;
    }
    let ns = TestNetns::new("br-promisc");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-promisc", 6, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.config("1.0.0", json!({"hairpinMode": false, "promiscMode": true}));
    let (_, result) = add(&pod, &conf.to_string());
    let bridge = host_link(&net.bridge);
    assert!(
        kernel::link_flags(None, &net.bridge).contains(&"PROMISC".to_string()),
        "{bridge}"
    );
    assert!(bridge["promiscuity"].as_u64() >= Some(1), "{bridge}");
    assert_eq!(port(&veth_of(&result))["hairpin"], false);
    // CHECK compares the promisc state with the config.
    let mut check = conf.clone();
    check["prevResult"] = result;
    pod.call(Impl::Ours, "CHECK", check.to_string())
        .run()
        .expect_success();
}

#[test]
fn addresses_gateways_and_routes_follow_the_ipam_result() {
    if !require_root("addresses_gateways_and_routes_follow_the_ipam_result") {
        return;
    }
    let ns = TestNetns::new("br-addr");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-addr", 7, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let (_, result) = add(&pod, &net.config("0.3.1", json!({})).to_string());
    let inside = pod.ns();

    assert_eq!(
        global_addrs(inside, "eth0"),
        vec![format!("{}/16", net.ip4(2)), format!("{}/24", net.ip6(2))]
    );
    assert_eq!(
        global_addrs(None, &net.bridge),
        vec![format!("{}/16", net.ip4(1)), format!("{}/24", net.ip6(1))],
        "gateway addresses on the bridge"
    );
    let v4 = kernel::addrs(None, &net.bridge)
        .into_iter()
        .find(|a| a["family"] == "inet")
        .expect("v4 address on the bridge");
    let broadcast = format!("10.{}.255.255", 200 + u16::from(net.k));
    assert_eq!(v4["broadcast"], broadcast.as_str(), "{v4}");
    // The bridge MAC is pinned (addr_assign_type 3 = NET_ADDR_SET) so it no
    // longer follows the lowest port MAC.
    let assign = std::fs::read_to_string(format!("/sys/class/net/{}/addr_assign_type", net.bridge))
        .expect("read addr_assign_type");
    assert_eq!(assign.trim(), "3", "bridge MAC not pinned");

    let default4 = route_via(inside, IpFamily::V4, "default").expect("v4 default route");
    assert_eq!(default4["gateway"], net.ip4(1).as_str(), "{default4}");
    assert_eq!(default4["dev"], "eth0");
    // CRI-O's `<gw>/24` route (host bits set) lands as the network via gw.
    let subnet6 = net.subnet6();
    let route6 = route_via(inside, IpFamily::V6, &subnet6).expect("v6 route via the gateway");
    assert_eq!(route6["gateway"], net.ip6(1).as_str(), "{route6}");
    assert_eq!(route6["metric"], 1024, "{route6}");
    assert!(
        route_via(inside, IpFamily::V6, "default").is_none(),
        "no v6 default route without isDefaultGateway"
    );

    assert_eq!(
        net.leases(),
        BTreeMap::from([
            (net.ip4(2), format!("{}\r\n{}", pod.id, pod.ifname)),
            (net.ip6(2), format!("{}\r\n{}", pod.id, pod.ifname)),
        ]),
        "lease files"
    );
    assert_eq!(result["ips"][0]["gateway"], net.ip4(1).as_str());
    assert_eq!(result["ips"][1]["gateway"], net.ip6(1).as_str());
}

#[test]
fn is_default_gateway_adds_default_routes_for_both_families() {
    if !require_root("is_default_gateway_adds_default_routes_for_both_families") {
        return;
    }
    let ns = TestNetns::new("br-defgw");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-defgw", 8, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.config(
        "1.0.0",
        json!({"isGateway": null, "isDefaultGateway": true, "ipam": net.ipam(false)}),
    );
    let (out, result) = add(&pod, &conf.to_string());

    let default4 = route_via(pod.ns(), IpFamily::V4, "default").expect("v4 default");
    let default6 = route_via(pod.ns(), IpFamily::V6, "default").expect("v6 default");
    assert_eq!(default4["gateway"], net.ip4(1).as_str());
    assert_eq!(default6["gateway"], net.ip6(1).as_str());
    // isDefaultGateway implies isGateway: the gateways are on the bridge.
    assert_eq!(
        global_addrs(None, &net.bridge),
        vec![format!("{}/16", net.ip4(1)), format!("{}/24", net.ip6(1))]
    );

    let mut expected = Expected::crio("1.0.0", &net, 2, Links::from_kernel(&net, &pod, &result));
    expected.routes = vec![
        ("0.0.0.0/0".to_string(), Some(net.ip4(1))),
        ("::/0".to_string(), Some(net.ip6(1))),
    ];
    assert_eq!(out.stdout_str(), expected_result(&expected));
}

#[test]
fn sysctls_in_the_container_and_on_the_host() {
    if !require_root("sysctls_in_the_container_and_on_the_host") {
        return;
    }
    let ns = TestNetns::new("br-sysctl");
    let ns_dad = TestNetns::new("br-sysctl-dad");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-sysctl", 9, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let dad = Pod::new(&net, &ns_dad, "eth0", &mut cleanup);
    let (_, result) = add(&pod, &net.config("1.0.0", json!({})).to_string());
    add(
        &dad,
        &net.config("1.0.0", json!({"enabledad": true})).to_string(),
    );

    let get = |ns: Option<&str>, key: &str| kernel::sysctl(ns, key);
    assert_eq!(get(pod.ns(), "net/ipv6/conf/eth0/accept_dad"), "0");
    assert_eq!(get(pod.ns(), "net/ipv4/conf/eth0/arp_notify"), "1");
    assert_eq!(get(dad.ns(), "net/ipv6/conf/eth0/accept_dad"), "1");
    assert_eq!(get(dad.ns(), "net/ipv6/conf/eth0/enhanced_dad"), "1");
    assert_eq!(get(dad.ns(), "net/ipv4/conf/eth0/arp_notify"), "1");

    // A new bridge starts with accept_ra=1; the plugin turns it off.
    assert_eq!(
        get(None, &format!("net/ipv6/conf/{}/accept_ra", net.bridge)),
        "0"
    );
    let veth = veth_of(&result);
    assert_eq!(get(None, &format!("net/ipv6/conf/{veth}/accept_ra")), "0");
    // Forwarding (this host may have had it on already; never turned off here).
    assert_eq!(get(None, "net/ipv4/ip_forward"), "1");
    assert_eq!(get(None, "net/ipv6/conf/all/forwarding"), "1");
}

#[test]
fn the_host_veth_has_ipv6_off_and_no_ipv6_route() {
    if !require_root("the_host_veth_has_ipv6_off_and_no_ipv6_route") {
        return;
    }
    let ns = TestNetns::new("br-nov6");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-nov6", 32, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let (_, result) = add(&pod, &net.crio_config("1.0.0"));
    let veth = veth_of(&result);

    assert!(kernel::link_is_up(None, &veth));
    assert_eq!(
        kernel::sysctl(None, &format!("net/ipv6/conf/{veth}/disable_ipv6")),
        "1"
    );
    assert_eq!(kernel::addr_cidrs(None, &veth), Vec::<String>::new());
    // Neither the link-local nor the multicast route of an IPv6 port.
    let routes = cmd::ip_ok(None, &["-6", "route", "show", "table", "all", "dev", &veth]);
    assert_eq!(routes.trim(), "", "{veth} has IPv6 routes");
    // The pod's side keeps its link-local address.
    let inside = kernel::addrs(pod.ns(), "eth0");
    assert!(
        inside
            .iter()
            .any(|a| a["scope"] == "link" && a["family"] == "inet6"),
        "{inside:?}"
    );
}

#[test]
fn masquerade_rules_are_rendered_exactly_like_the_reference() {
    if !require_root("masquerade_rules_are_rendered_exactly_like_the_reference") {
        return;
    }
    let ns = TestNetns::new("br-masq");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-masq", 10, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    add(&pod, &net.config("1.0.0", json!({})).to_string());
    assert_eq!(
        pod.rules(false),
        pod.reference_rules(&net.ip4(2), &net.subnet4())
    );
    assert_eq!(
        pod.rules(true),
        pod.reference_rules(&net.ip6(2), &net.subnet6())
    );
}

#[test]
fn result_bytes_per_version() {
    if !require_root("result_bytes_per_version") {
        return;
    }
    // The expected-output renderer reproduces the reference's recordings.
    for (version, recorded) in REFERENCE_FIXTURES {
        let parsed: Value = serde_json::from_str(recorded).expect("fixture is JSON");
        let field = |i: usize, key: &str| {
            parsed["interfaces"][i][key]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let expected = Expected {
            version: version.to_string(),
            bridge: (field(0, "name"), field(0, "mac")),
            veth: (field(1, "name"), field(1, "mac")),
            container: (field(2, "name"), field(2, "mac"), field(2, "sandbox")),
            ips: vec![
                ("10.85.0.2/16".into(), "10.85.0.1".into()),
                ("1100:200::2/24".into(), "1100:200::1".into()),
            ],
            routes: vec![("0.0.0.0/0".into(), None), ("1100:200::1/24".into(), None)],
        };
        assert_eq!(
            expected_result(&expected),
            recorded,
            "renderer vs {version}"
        );
    }

    let mut namespaces = Vec::new();
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-bytes", 11, &mut cleanup);
    for (i, version) in ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        .iter()
        .enumerate()
    {
        namespaces.push(TestNetns::new("br-bytes"));
        let ns = namespaces.last().expect("just pushed");
        let pod = Pod::new(&net, ns, "eth0", &mut cleanup);
        let (out, result) = add(&pod, &net.crio_config(version));
        let host = u8::try_from(i + 2).expect("small");
        if *version == "0.2.0" {
            // No interfaces at 0.2.0: the MACs come from the kernel only.
            let links = Links {
                bridge: (String::new(), String::new()),
                veth: (String::new(), String::new()),
                container: (String::new(), String::new(), String::new()),
            };
            let expected = Expected::crio(version, &net, host, links);
            assert_eq!(out.stdout_str(), expected_result(&expected), "at {version}");
            assert!(result.get("interfaces").is_none());
        } else {
            let links = Links::from_kernel(&net, &pod, &result);
            let expected = Expected::crio(version, &net, host, links);
            assert_eq!(out.stdout_str(), expected_result(&expected), "at {version}");
        }
        assert!(
            !out.stdout.ends_with(b"\n"),
            "trailing newline at {version}"
        );
    }
    // Drop the guard before the namespaces (it must run while they exist).
    drop(cleanup);
    drop(namespaces);
}

// ---------------------------------------------------------------------------
// 2. Connectivity.
// ---------------------------------------------------------------------------

#[test]
fn two_pods_reach_each_other_and_the_gateway_over_both_families() {
    if !require_root("two_pods_reach_each_other_and_the_gateway_over_both_families") {
        return;
    }
    let ns_a = TestNetns::new("br-ping-a");
    let ns_b = TestNetns::new("br-ping-b");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-ping", 12, &mut cleanup);
    let a = Pod::new(&net, &ns_a, "eth0", &mut cleanup);
    let b = Pod::new(&net, &ns_b, "eth0", &mut cleanup);
    let conf = net.crio_config("1.0.0");
    add(&a, &conf);
    add(&b, &conf);
    let start = Instant::now();
    for (ns, peer) in [(&ns_a, 3), (&ns_b, 2)] {
        for dst in [net.ip4(peer), net.ip4(1)] {
            assert!(ns.ping(&dst, 3), "{} cannot ping {dst}", ns.name());
        }
        // The bridge's own v6 address is tentative (host-side DAD) for a
        // second or two after the first ADD.
        for dst in [net.ip6(u16::from(peer)), net.ip6(1)] {
            assert!(ns.ping(&dst, 6), "{} cannot ping {dst}", ns.name());
        }
    }
    println!("pings done in {:.0} ms", ms(start.elapsed()));
}

// ---------------------------------------------------------------------------
// 3. CRI-O's config, as a .conf and as conflist twins.
// ---------------------------------------------------------------------------

#[test]
fn crio_conf_0_3_1_add_del_del_and_check_is_refused() {
    if !require_root("crio_conf_0_3_1_add_del_del_and_check_is_refused") {
        return;
    }
    let ns = TestNetns::new("br-crio031");
    let mut cleanup = Cleanup::new();
    let net = Net::new("crio", 13, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.crio_config("0.3.1");

    let (out, result) = add(&pod, &conf);
    let veth = veth_of(&result);
    let expected = Expected::crio("0.3.1", &net, 2, Links::from_kernel(&net, &pod, &result));
    assert_eq!(out.stdout_str(), expected_result(&expected));
    assert_eq!(port(&veth)["hairpin"], true);
    assert_eq!(
        pod.rules(false),
        pod.reference_rules(&net.ip4(2), &net.subnet4())
    );
    assert_eq!(
        pod.rules(true),
        pod.reference_rules(&net.ip6(2), &net.subnet6())
    );

    let check = pod.call(Impl::Ours, "CHECK", conf.clone()).run();
    assert_error(&check, 1, "config version does not allow CHECK", "0.3.1");

    for round in 1..=2 {
        let out = pod
            .call(Impl::Ours, "DEL", conf.clone())
            .run()
            .expect_success();
        assert!(out.stdout.is_empty(), "DEL #{round}\n{}", out.describe());
        pod.assert_gone(&net, &[&veth]);
        assert!(!kernel::link_exists(pod.ns(), "eth0"));
    }
    assert_eq!(net.leases(), BTreeMap::new());
    assert_eq!(
        net.store().keys().cloned().collect::<Vec<_>>(),
        vec!["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    );
    assert!(
        kernel::link_exists(None, &net.bridge),
        "DEL never removes the bridge"
    );
}

/// What libcni feeds plugin `index` of `conflist`: the plugin object with
/// `cniVersion` and `name` inserted, plus `prevResult` when given.
fn runtime_stdin(conflist: &Value, index: usize, prev: Option<&Value>) -> String {
    let mut conf = conflist["plugins"][index].clone();
    conf["cniVersion"] = conflist["cniVersion"].clone();
    conf["name"] = conflist["name"].clone();
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    conf.to_string()
}

fn crio_conflist_lifecycle(test: &str, n: u8, version: &str) {
    if !require_root(test) {
        return;
    }
    let ns = TestNetns::new("br-crio-list");
    let mut cleanup = Cleanup::new();
    let net = Net::new("crio", n, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let list = net.crio_conflist(version);

    let (out, result) = add(&pod, &runtime_stdin(&list, 0, None));
    let veth = veth_of(&result);
    let expected = Expected::crio(version, &net, 2, Links::from_kernel(&net, &pod, &result));
    assert_eq!(out.stdout_str(), expected_result(&expected));

    let with_prev = runtime_stdin(&list, 0, Some(&result));
    let check = pod.call(Impl::Ours, "CHECK", with_prev.clone()).run();
    let check = check.expect_success();
    assert!(check.stdout.is_empty(), "{}", check.describe());

    for round in 1..=2 {
        let out = pod
            .call(Impl::Ours, "DEL", with_prev.clone())
            .run()
            .expect_success();
        assert!(out.stdout.is_empty(), "DEL #{round}\n{}", out.describe());
        pod.assert_gone(&net, &[&veth]);
        assert!(!kernel::link_exists(pod.ns(), "eth0"));
        assert_eq!(net.ports(), Vec::<String>::new());
        assert_eq!(net.leases(), BTreeMap::new(), "after DEL #{round}");
    }
}

#[test]
fn crio_conflist_0_4_0_add_check_del_del() {
    crio_conflist_lifecycle("crio_conflist_0_4_0_add_check_del_del", 14, "0.4.0");
}

#[test]
fn crio_conflist_1_0_0_add_check_del_del() {
    crio_conflist_lifecycle("crio_conflist_1_0_0_add_check_del_del", 15, "1.0.0");
}

#[test]
fn crio_conflist_1_1_0_add_check_del_del() {
    crio_conflist_lifecycle("crio_conflist_1_1_0_add_check_del_del", 16, "1.1.0");
}

// ---------------------------------------------------------------------------
// 4. Side by side with the reference.
// ---------------------------------------------------------------------------

/// What one implementation's ADD left behind, with random values removed.
#[derive(Debug, PartialEq)]
struct Observed {
    stdout: String,
    rules4: Vec<String>,
    rules6: Vec<String>,
    store: BTreeMap<String, String>,
    kernel: Value,
}

/// The kernel state of an attachment, without random values (MACs, veth
/// names, ifindexes).
fn kernel_state(net: &Net, pod: &Pod, veth: &str) -> Value {
    let inside = pod.ns();
    let sysctl = |ns: Option<&str>, key: String| kernel::sysctl(ns, &key);
    // `ip -d` prints every field, `protocol boot` and `type unicast` included.
    let routes = |family: &str| {
        let out = cmd::ip_ok(inside, &["-d", "-j", family, "route", "show"]);
        let parsed: Value = serde_json::from_str(&out).expect("ip -j route prints JSON");
        let mut routes: Vec<String> = parsed
            .as_array()
            .map(|r| r.iter().map(Value::to_string).collect())
            .unwrap_or_default();
        routes.sort();
        routes
    };
    let mut port = port(veth);
    if let Some(p) = port.as_object_mut() {
        for key in ["ifindex", "ifname", "link", "flags"] {
            p.remove(key);
        }
    }
    let bridge = host_link(&net.bridge);
    let host_veth = host_link(veth);
    let container = ns_link(inside, &pod.ifname);
    json!({
        "bridge": {
            "addrs": global_addrs(None, &net.bridge),
            "mtu": bridge["mtu"],
            "flags": bridge["flags"],
            "linkinfo": bridge["linkinfo"]["info_data"]["stp_state"],
            "addr_assign_type": std::fs::read_to_string(
                format!("/sys/class/net/{}/addr_assign_type", net.bridge)).unwrap_or_default(),
            "accept_ra": sysctl(None, format!("net/ipv6/conf/{}/accept_ra", net.bridge)),
        },
        "veth": {
            "mtu": host_veth["mtu"],
            "master": host_veth["master"],
            "accept_ra": sysctl(None, format!("net/ipv6/conf/{veth}/accept_ra")),
            "port": port,
        },
        "container": {
            "links": names(&kernel::links(inside)),
            "kind": kind(&container),
            "mtu": container["mtu"],
            "flags": container["flags"],
            "addrs": global_addrs(inside, &pod.ifname),
            "routes4": routes("-4"),
            "routes6": routes("-6"),
            "accept_dad": sysctl(inside, format!("net/ipv6/conf/{}/accept_dad", pod.ifname)),
            "arp_notify": sysctl(inside, format!("net/ipv4/conf/{}/arp_notify", pod.ifname)),
        },
    })
}

fn side_by_side(test: &str, n: u8, version: &str) {
    if !require_root(test) {
        return;
    }
    let ns = TestNetns::new("br-sbs");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-sbs", n, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.crio_config(version);

    let mut observed = Vec::new();
    for imp in [Impl::Reference, Impl::Ours] {
        let start = Instant::now();
        let out = pod.call(imp, "ADD", conf.clone()).run().expect_success();
        let add_time = start.elapsed();
        let result = out.json();
        let veth = veth_of(&result);
        let seen = Observed {
            stdout: normalize(&out.stdout_str()),
            rules4: pod.rules(false),
            rules6: pod.rules(true),
            store: net.store(),
            kernel: kernel_state(&net, &pod, &veth),
        };
        let modes: Vec<String> = std::fs::read_dir(net.lease_dir())
            .expect("lease dir")
            .filter_map(Result::ok)
            .map(|e| {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = e
                    .metadata()
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0);
                format!("{}={mode:o}", e.file_name().to_string_lossy())
            })
            .collect();

        let start = Instant::now();
        pod.call(imp, "DEL", conf.clone()).run().expect_success();
        let del_time = start.elapsed();
        pod.assert_gone(&net, &[&veth]);
        println!(
            "{imp:?} at {version}: ADD {:.1} ms, DEL {:.1} ms; file modes {modes:?}",
            ms(add_time),
            ms(del_time)
        );
        observed.push(seen);

        // A fresh start for the next implementation: no bridge, empty store.
        cmd::ip_ok(None, &["link", "del", "dev", net.bridge.as_str()]);
        std::fs::remove_dir_all(net.lease_dir()).expect("remove the lease dir");
    }
    let ours = observed.pop().expect("ours");
    let reference = observed.pop().expect("reference");
    assert_eq!(
        ours.stdout, reference.stdout,
        "results differ beyond MACs and veth names"
    );
    assert_eq!(ours.rules4, reference.rules4, "iptables rules differ");
    assert_eq!(ours.rules6, reference.rules6, "ip6tables rules differ");
    assert_eq!(ours.rules4.len(), 4, "{:#?}", ours.rules4);
    assert_eq!(ours.store, reference.store, "lease store differs");
    let differences = json_differences(&reference.kernel, &ours.kernel);
    assert!(
        differences.is_empty(),
        "kernel state differs from the reference's (path: reference vs ours):\n{}",
        differences.join("\n")
    );
}

/// The leaves of `value` as `path = value` (arrays of route strings are
/// compared element by element, as parsed JSON).
fn flatten(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                flatten(v, format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                match v
                    .as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                {
                    Some(parsed @ Value::Object(_)) => {
                        flatten(&parsed, format!("{path}[{i}]"), out)
                    }
                    _ => flatten(v, format!("{path}[{i}]"), out),
                }
            }
        }
        leaf => {
            out.insert(path, leaf.clone());
        }
    }
}

/// `path: <reference> vs <ours>` for every leaf that differs.
fn json_differences(reference: &Value, ours: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(reference, String::new(), &mut a);
    flatten(ours, String::new(), &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show =
                |v: Option<&Value>| v.map_or_else(|| "(absent)".to_string(), Value::to_string);
            format!("  {k}: {} vs {}", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

#[test]
fn side_by_side_with_the_reference_at_0_3_1() {
    side_by_side("side_by_side_with_the_reference_at_0_3_1", 17, "0.3.1");
}

#[test]
fn side_by_side_with_the_reference_at_1_0_0() {
    side_by_side("side_by_side_with_the_reference_at_1_0_0", 18, "1.0.0");
}

/// ADD by `adder`, DEL by `deleter` (without prevResult), DEL again by
/// `deleter`: nothing may be left.
fn cross_cleanup(test: &str, n: u8, adder: Impl, deleter: Impl) {
    if !require_root(test) {
        return;
    }
    let ns = TestNetns::new("br-cross");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-cross", n, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.crio_config("1.0.0");
    let out = pod.call(adder, "ADD", conf.clone()).run().expect_success();
    let veth = veth_of(&out.json());
    assert_eq!(pod.leases(&net).len(), 2);
    assert_eq!(pod.rules(false).len(), 4);
    assert_eq!(pod.rules(true).len(), 4);
    for _ in 0..2 {
        pod.call(deleter, "DEL", conf.clone())
            .run()
            .expect_success();
        pod.assert_gone(&net, &[&veth]);
        assert_eq!(net.ports(), Vec::<String>::new());
        assert_eq!(names(&kernel::links(pod.ns())), vec!["lo".to_string()]);
    }
}

#[test]
fn reference_add_then_our_del_leaves_nothing() {
    cross_cleanup(
        "reference_add_then_our_del_leaves_nothing",
        19,
        Impl::Reference,
        Impl::Ours,
    );
}

#[test]
fn our_add_then_reference_del_leaves_nothing() {
    cross_cleanup(
        "our_add_then_reference_del_leaves_nothing",
        20,
        Impl::Ours,
        Impl::Reference,
    );
}

#[test]
fn reference_leaks_the_chain_without_netns_and_our_del_removes_it() {
    if !require_root("reference_leaks_the_chain_without_netns_and_our_del_removes_it") {
        return;
    }
    let ns_a = TestNetns::new("br-leak-a");
    let ns_b = TestNetns::new("br-leak-b");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-leak", 21, &mut cleanup);
    let a = Pod::new(&net, &ns_a, "eth0", &mut cleanup);
    let b = Pod::new(&net, &ns_b, "eth0", &mut cleanup);
    let conf = net.crio_config("1.0.0");
    let veth_a = veth_of(
        &a.call(Impl::Reference, "ADD", conf.clone())
            .run()
            .expect_success()
            .json(),
    );
    let veth_b = veth_of(
        &b.call(Impl::Reference, "ADD", conf.clone())
            .run()
            .expect_success()
            .json(),
    );
    drop(ns_a);
    drop(ns_b);

    // A: the reference's DEL succeeds and releases the lease, but the
    // masquerade chain stays (it finds the chain through the interface's
    // addresses, which are gone with the namespace: containernetworking/plugins#810).
    a.call(Impl::Reference, "DEL", conf.clone())
        .run()
        .expect_success();
    assert_eq!(a.leases(&net), Vec::<String>::new());
    assert_eq!(
        a.rules(false).len(),
        4,
        "the reference no longer leaks (v4)?"
    );
    assert_eq!(
        a.rules(true).len(),
        4,
        "the reference no longer leaks (v6)?"
    );
    // Our DEL removes what the reference left.
    a.call(Impl::Ours, "DEL", conf.clone())
        .run()
        .expect_success();
    a.assert_gone(&net, &[&veth_a]);

    // B: our DEL alone, on the reference's attachment, removes lease and chain.
    assert_eq!(b.leases(&net).len(), 2);
    b.call(Impl::Ours, "DEL", conf.clone())
        .run()
        .expect_success();
    b.assert_gone(&net, &[&veth_b]);
    assert_eq!(net.leases(), BTreeMap::new());
}

// ---------------------------------------------------------------------------
// 5. Injected failures: error JSON, and nothing left behind.
// ---------------------------------------------------------------------------

/// After a failed ADD: no port on the bridge (if it exists), no veth with the
/// derived name, no lease, no chain, and the namespace holds only
/// `expected_links`.
fn assert_failed_add_left_nothing(net: &Net, pod: &Pod, expected_links: &[&str]) {
    if kernel::link_exists(None, &net.bridge) {
        assert_eq!(net.ports(), Vec::<String>::new(), "veth left on the bridge");
    }
    assert!(
        !kernel::link_exists(None, &pod.derived_veth()),
        "veth {} left",
        pod.derived_veth()
    );
    assert_eq!(net.leases(), BTreeMap::new(), "lease left");
    assert_eq!(
        pod.rules(false),
        Vec::<String>::new(),
        "iptables chain left"
    );
    assert_eq!(
        pod.rules(true),
        Vec::<String>::new(),
        "ip6tables chain left"
    );
    let mut inside = names(&kernel::links(pod.ns()));
    inside.sort();
    let mut expected: Vec<&str> = expected_links.to_vec();
    expected.sort_unstable();
    assert_eq!(inside, expected, "links in the container namespace");
}

#[test]
fn ipam_failure_is_passed_through_unchanged_and_leaves_nothing() {
    if !require_root("ipam_failure_is_passed_through_unchanged_and_leaves_nothing") {
        return;
    }
    let ns = TestNetns::new("br-f-ipam");
    let ns_ref = TestNetns::new("br-f-ipam-ref");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-f-ipam", 22, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let subnet = format!("{}/31", net.ip4(0));
    let mut ipam = net.ipam(false);
    ipam["ranges"] = json!([[{"subnet": subnet}]]);
    let conf = net.config("1.0.0", json!({"ipam": ipam})).to_string();

    let out = pod.call(Impl::Ours, "ADD", conf.clone()).run();
    let msg = format!("invalid range set 0: Network {subnet} too small to allocate from");
    let err = assert_error(&out, 7, &msg, "1.0.0");
    // host-local's own answer to the same stdin, byte for byte.
    let direct = PluginCall::new("host-local")
        .command("ADD")
        .container_id(&pod.id)
        .netns(&pod.netns_path)
        .ifname("eth0")
        .stdin(conf.clone())
        .run();
    assert_eq!(
        out.stdout_str(),
        direct.stdout_str(),
        "not passed through unchanged"
    );
    assert_failed_add_left_nothing(&net, &pod, &["lo"]);

    // The reference says the same (with code 999: its host-local codes
    // config errors as internal).
    let ref_pod = Pod::new(&net, &ns_ref, "eth0", &mut cleanup);
    let reference = ref_pod.call(Impl::Reference, "ADD", conf).run();
    assert_eq!(
        reference.json()["msg"],
        err["msg"],
        "{}",
        reference.describe()
    );
}

#[test]
fn taken_container_ifname_fails_and_leaves_nothing() {
    if !require_root("taken_container_ifname_fails_and_leaves_nothing") {
        return;
    }
    let ns = TestNetns::new("br-f-ifname");
    let ns_ref = TestNetns::new("br-f-ifname-ref");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-f-ifname", 23, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    for ns in [&ns, &ns_ref] {
        ns.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]);
    }
    let conf = net.config("1.0.0", json!({})).to_string();
    let out = pod.call(Impl::Ours, "ADD", conf.clone()).run();
    let err = assert_error(
        &out,
        999,
        "container veth name provided (eth0) already exists",
        "1.0.0",
    );
    assert_failed_add_left_nothing(&net, &pod, &["lo", "eth0p", "eth0"]);
    assert_eq!(
        ns_link(pod.ns(), "eth0")["link"],
        "eth0p",
        "the existing eth0 was replaced"
    );

    let ref_pod = Pod::new(&net, &ns_ref, "eth0", &mut cleanup);
    let reference = ref_pod.call(Impl::Reference, "ADD", conf).run();
    assert_eq!(
        reference.json()["msg"],
        err["msg"],
        "{}",
        reference.describe()
    );
}

#[test]
fn invalid_mtu_fails_and_leaves_nothing() {
    if !require_root("invalid_mtu_fails_and_leaves_nothing") {
        return;
    }
    let ns_new = TestNetns::new("br-f-mtu-new");
    let ns_old = TestNetns::new("br-f-mtu-old");
    let mut cleanup = Cleanup::new();

    // A new bridge: the kernel refuses to create it with MTU 100000.
    let net = Net::new("br-f-mtu", 24, &mut cleanup);
    let pod = Pod::new(&net, &ns_new, "eth0", &mut cleanup);
    let out = pod
        .call(
            Impl::Ours,
            "ADD",
            net.config("1.0.0", json!({"mtu": 100000})).to_string(),
        )
        .run();
    let err = out.expect_error(999);
    assert_eq!(out.code(), Some(1));
    let prefix = format!("failed to create bridge \"{}\": ", net.bridge);
    assert!(
        err["msg"].as_str().is_some_and(|m| m.starts_with(&prefix)),
        "{}",
        out.describe()
    );
    assert!(
        !kernel::link_exists(None, &net.bridge),
        "bridge created anyway"
    );
    assert_failed_add_left_nothing(&net, &pod, &["lo"]);

    // An existing bridge: the kernel refuses the veth pair.
    let net = Net::new("br-f-mtu", 24, &mut cleanup);
    cmd::ip_ok(
        None,
        &["link", "add", "name", net.bridge.as_str(), "type", "bridge"],
    );
    let pod = Pod::new(&net, &ns_old, "eth0", &mut cleanup);
    let out = pod
        .call(
            Impl::Ours,
            "ADD",
            net.config("1.0.0", json!({"mtu": 100000})).to_string(),
        )
        .run();
    let err = out.expect_error(999);
    assert_eq!(out.code(), Some(1));
    assert!(
        err["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("failed to make veth pair: ")),
        "{}",
        out.describe()
    );
    assert_eq!(
        host_link(&net.bridge)["mtu"],
        1500,
        "existing bridge MTU changed"
    );
    assert_failed_add_left_nothing(&net, &pod, &["lo"]);
}

#[test]
fn cni_path_without_host_local_fails_and_leaves_nothing() {
    if !require_root("cni_path_without_host_local_fails_and_leaves_nothing") {
        return;
    }
    let ns = TestNetns::new("br-f-path");
    let ns_ref = TestNetns::new("br-f-path-ref");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-f-path", 25, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let (dir_a, dir_b) = (net.data_dir.join("bin-a"), net.data_dir.join("bin-b"));
    for dir in [&dir_a, &dir_b] {
        std::fs::create_dir_all(dir).expect("create empty plugin dir");
    }
    let cni_path = format!("{}:{}", dir_a.display(), dir_b.display());
    let conf = net.config("1.0.0", json!({})).to_string();
    let out = pod
        .call(Impl::Ours, "ADD", conf.clone())
        .cni_path(&cni_path)
        .run();
    let msg = format!(
        "failed to find plugin \"host-local\" in path [{} {}]",
        dir_a.display(),
        dir_b.display()
    );
    let err = assert_error(&out, 999, &msg, "1.0.0");
    assert_failed_add_left_nothing(&net, &pod, &["lo"]);

    // Same message from the reference (which leaves its veth behind, in
    // its own namespace, removed with it).
    let ref_pod = Pod::new(&net, &ns_ref, "eth0", &mut cleanup);
    let reference = ref_pod
        .call(Impl::Reference, "ADD", conf)
        .cni_path(&cni_path)
        .run();
    assert_eq!(
        reference.json()["msg"],
        err["msg"],
        "{}",
        reference.describe()
    );
}

#[test]
fn bridge_name_taken_by_a_non_bridge_fails_and_leaves_nothing() {
    if !require_root("bridge_name_taken_by_a_non_bridge_fails_and_leaves_nothing") {
        return;
    }
    let ns = TestNetns::new("br-f-nobr");
    let ns_ref = TestNetns::new("br-f-nobr-ref");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-f-nobr", 26, &mut cleanup);
    let peer = unique_ifname("nbp");
    cmd::ip_ok(
        None,
        &[
            "link",
            "add",
            net.bridge.as_str(),
            "type",
            "veth",
            "peer",
            "name",
            peer.as_str(),
        ],
    );
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.config("1.0.0", json!({})).to_string();
    let out = pod.call(Impl::Ours, "ADD", conf.clone()).run();
    let msg = format!(
        "failed to create bridge \"{0}\": \"{0}\" already exists but is not a bridge",
        net.bridge
    );
    let err = assert_error(&out, 999, &msg, "1.0.0");
    let impostor = host_link(&net.bridge);
    assert_eq!(kind(&impostor), "veth", "the non-bridge link was replaced");
    assert!(impostor.get("master").is_none());
    assert_failed_add_left_nothing(&net, &pod, &["lo"]);

    let ref_pod = Pod::new(&net, &ns_ref, "eth0", &mut cleanup);
    let reference = ref_pod.call(Impl::Reference, "ADD", conf).run();
    assert_eq!(
        reference.json()["msg"],
        err["msg"],
        "{}",
        reference.describe()
    );
}

// ---------------------------------------------------------------------------
// 6. DEL idempotency.
// ---------------------------------------------------------------------------

#[test]
fn del_after_the_netns_is_gone_removes_lease_and_chains() {
    if !require_root("del_after_the_netns_is_gone_removes_lease_and_chains") {
        return;
    }
    let ns_a = TestNetns::new("br-del-gone-a");
    let ns_b = TestNetns::new("br-del-gone-b");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-del-gone", 27, &mut cleanup);
    let a = Pod::new(&net, &ns_a, "eth0", &mut cleanup);
    let b = Pod::new(&net, &ns_b, "eth0", &mut cleanup);
    let conf = net.config("1.0.0", json!({}));
    let (_, result_a) = add(&a, &conf.to_string());
    let (_, result_b) = add(&b, &conf.to_string());
    drop(ns_a);
    drop(ns_b);

    // A: as CRI-O after a reboot, no prevResult: the chain is found by name.
    // B: as a runtime with its cache, prevResult given.
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = result_b.clone();
    for (pod, stdin, result) in [
        (&a, conf.to_string(), &result_a),
        (&b, with_prev.to_string(), &result_b),
    ] {
        for round in 1..=2 {
            let out = pod
                .call(Impl::Ours, "DEL", stdin.clone())
                .run()
                .expect_success();
            assert!(out.stdout.is_empty(), "DEL #{round}\n{}", out.describe());
            pod.assert_gone(&net, &[&veth_of(result)]);
        }
    }
    assert_eq!(net.leases(), BTreeMap::new());
}

#[test]
fn del_with_empty_netns_removes_lease_and_chains() {
    if !require_root("del_with_empty_netns_removes_lease_and_chains") {
        return;
    }
    let ns = TestNetns::new("br-del-nons");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-del-nons", 28, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.config("1.0.0", json!({})).to_string();
    let (_, result) = add(&pod, &conf);
    let veth = veth_of(&result);

    for round in 1..=2 {
        let out = pod
            .call(Impl::Ours, "DEL", conf.clone())
            .netns("")
            .run()
            .expect_success();
        assert!(out.stdout.is_empty(), "DEL #{round}\n{}", out.describe());
        assert_eq!(pod.leases(&net), Vec::<String>::new(), "lease left");
        assert_eq!(pod.rules(false), Vec::<String>::new(), "iptables left");
        assert_eq!(pod.rules(true), Vec::<String>::new(), "ip6tables left");
    }
    // Without a namespace the container interface cannot be reached; a
    // later DEL that names it removes it.
    pod.call(Impl::Ours, "DEL", conf).run().expect_success();
    pod.assert_gone(&net, &[&veth]);
    assert!(!kernel::link_exists(pod.ns(), "eth0"));
}

#[test]
fn del_twice_succeeds_and_leaves_nothing() {
    if !require_root("del_twice_succeeds_and_leaves_nothing") {
        return;
    }
    let ns = TestNetns::new("br-del-twice");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-del-twice", 29, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.config("1.0.0", json!({})).to_string();
    let (_, result) = add(&pod, &conf);
    let veth = veth_of(&result);
    for round in 1..=2 {
        let out = pod
            .call(Impl::Ours, "DEL", conf.clone())
            .run()
            .expect_success();
        assert!(out.stdout.is_empty(), "DEL #{round}\n{}", out.describe());
        pod.assert_gone(&net, &[&veth]);
        assert_eq!(names(&kernel::links(pod.ns())), vec!["lo".to_string()]);
        assert_eq!(net.ports(), Vec::<String>::new());
    }
}

// ---------------------------------------------------------------------------
// forceAddress and VLANs
// ---------------------------------------------------------------------------

#[test]
fn force_address_replaces_a_conflicting_bridge_address() {
    if !require_root("force_address_replaces_a_conflicting_bridge_address") {
        return;
    }
    let ns = TestNetns::new("br-force");
    let ns2 = TestNetns::new("br-force2");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-force", 30, &mut cleanup);
    cmd::ip_ok(
        None,
        &["link", "add", net.bridge.as_str(), "type", "bridge"],
    );
    cmd::ip_ok(
        None,
        &["addr", "add", "192.0.2.1/24", "dev", net.bridge.as_str()],
    );

    // Without forceAddress the foreign IPv4 address is a conflict.
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net.config("1.0.0", json!({ "ipMasq": false })).to_string();
    let out = pod.call(Impl::Ours, "ADD", conf).run();
    let msg = format!(
        "failed to set bridge addr: \"{}\" already has an IP address different from {}/16",
        net.bridge,
        net.ip4(1)
    );
    assert_error(&out, 999, &msg, "1.0.0");
    assert_failed_add_left_nothing(&net, &pod, &["lo"]);
    assert!(global_addrs(None, &net.bridge).contains(&"192.0.2.1/24".to_owned()));

    // With it, the conflicting address is replaced by the gateway.
    let pod = Pod::new(&net, &ns2, "eth0", &mut cleanup);
    let conf = net
        .config("1.0.0", json!({ "ipMasq": false, "forceAddress": true }))
        .to_string();
    pod.call(Impl::Ours, "ADD", conf.clone())
        .run()
        .expect_success();
    let addrs = global_addrs(None, &net.bridge);
    assert!(!addrs.contains(&"192.0.2.1/24".to_owned()), "{addrs:?}");
    assert!(addrs.contains(&format!("{}/16", net.ip4(1))), "{addrs:?}");
    pod.call(Impl::Ours, "DEL", conf).run().expect_success();
}

#[test]
fn vlan_and_trunk_configure_the_port_or_fail_cleanly_without_kernel_support() {
    if !require_root("vlan_and_trunk_configure_the_port_or_fail_cleanly_without_kernel_support") {
        return;
    }
    let ns = TestNetns::new("br-vlan");
    let mut cleanup = Cleanup::new();
    let net = Net::new("br-vlan", 31, &mut cleanup);
    let pod = Pod::new(&net, &ns, "eth0", &mut cleanup);
    let conf = net
        .config(
            "1.0.0",
            json!({
                "isGateway": null, "ipMasq": null, "hairpinMode": null,
                "vlan": 100, "vlanTrunk": [{"id": 200}, {"minID": 300, "maxID": 302}],
            }),
        )
        .to_string();
    let out = pod.call(Impl::Ours, "ADD", conf.clone()).run();
    if !kernel::bridge_vlan_filtering() {
        eprintln!("kernel without bridge VLAN filtering: checking the clean failure");
        let msg = format!(
            "failed to create bridge \"{}\": operation not supported",
            net.bridge
        );
        assert_error(&out, 999, &msg, "1.0.0");
        assert!(
            !kernel::link_exists(None, &net.bridge),
            "bridge left behind"
        );
        assert_failed_add_left_nothing(&net, &pod, &["lo"]);
        return;
    }
    let result = out.expect_success().json();
    let vlans = kernel::port_vlans(&veth_of(&result));
    let ids: Vec<u64> = vlans.iter().map(|(vid, _)| *vid).collect();
    assert_eq!(
        ids,
        vec![1, 100, 200, 300, 301, 302],
        "VLAN 1 kept, access and trunk VLANs added"
    );
    let flags = |vid: u64| {
        vlans
            .iter()
            .find(|(v, _)| *v == vid)
            .map(|(_, f)| f.join(","))
    };
    assert_eq!(flags(1).as_deref(), Some("Egress Untagged"));
    assert_eq!(flags(100).as_deref(), Some("PVID,Egress Untagged"));
    assert_eq!(flags(200).as_deref(), Some(""));
    pod.call(Impl::Ours, "DEL", conf).run().expect_success();
}
