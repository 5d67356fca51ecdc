//! Root tests of the spec 1.1.0 commands GC and STATUS, executed as a runtime
//! executes them (`CNI_COMMAND` and `CNI_PATH` only, the config on stdin),
//! asserting what they leave in the kernel (`iptables -t nat -S` in both
//! families, links, pings) and on disk (the lease files of a private
//! host-local `dataDir`).
//!
//! Attachments are made three ways: by our `bridge`, by Debian's reference
//! `bridge` with its own `host-local` (`/usr/lib/cni`, `CNI_PATH` pointing
//! there; its lease store and chain names are the ones ours reads), and as
//! leftovers (ADD, then the namespace is deleted before any DEL).
//!
//! Every test has its own bridge (`unique_ifname`), network names, container
//! IDs, namespaces, dataDir and subnets (`10.157.<k>.0/24`, `fd57:0:<k>::/64`,
//! `k` unique per test), so the tests run in parallel with each other and
//! with the other test files. A [`Cleanup`] guard removes the bridges, the
//! `CNI-…` chains of both families, the dataDirs and any mount, and the
//! namespaces are deleted on drop, also when a test panics. Build the plugins
//! first: `cargo build --workspace --all-features`.

#![cfg(test)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration::reference::Impl;
use integration::{
    Cleanup, IpFamily, PluginCall, PluginOutput, TestNetns, TestNetwork, cmd, crio_settings,
    kernel, ms, require_root, unique_name,
};
use serde_json::{Value, json};

/// CRI-O's shipped config, `100-crio-bridge.conf`.
const CRIO_CONF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cni-types/tests/fixtures/100-crio-bridge.conf"
));

/// `CNI_NETNS` for direct host-local ADDs: required by the dispatcher, never
/// opened by host-local.
const DUMMY_NETNS: &str = "/var/run/netns/gc-status-unused";

/// The conflist key carrying the GC's valid attachments.
const VALID: &str = "cni.dev/valid-attachments";

// ---------------------------------------------------------------------------
// The test world.
// ---------------------------------------------------------------------------

integration::test_network! {
    /// One private network (bridge, network name, dataDir, lease files) with
    /// this file's subnets and config.
    Net
}

impl Net {
    /// A fresh network; `k` picks the subnets and is unique per network in
    /// this file. The bridge and the dataDir are removed by `cleanup`.
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        Net(TestNetwork::new("gcbr", tag, k, cleanup))
    }

    /// A network whose leases live in `data_dir` (which the caller cleans).
    fn sharing_data_dir(tag: &str, k: u8, data_dir: PathBuf) -> Net {
        Net(TestNetwork::sharing_data_dir("gcbr", tag, k, data_dir))
    }

    fn subnet4(&self) -> String {
        format!("10.157.{}.0/24", self.k)
    }

    fn ip4(&self, host: u8) -> String {
        format!("10.157.{}.{host}", self.k)
    }

    fn subnet6(&self) -> String {
        format!("fd57:0:{}::/64", self.k)
    }

    fn ip6(&self, host: u16) -> String {
        format!("fd57:0:{}::{host:x}", self.k)
    }

    /// A dual-stack bridge config (gateway on the bridge, masquerade on) at
    /// `version`, leasing from this network's dataDir.
    fn config(&self, version: &str) -> Value {
        let subnets = [self.subnet4(), self.subnet6()];
        self.bridge_config(version, &subnets, &[crio_settings()])
    }

    /// Lines of `nat -S` carrying this network's rule comment, sorted.
    fn commented_rules(&self, ipv6: bool) -> Vec<String> {
        let marker = format!("--comment \"name: \\\"{}\\\" id: ", self.name);
        let mut lines = kernel::nat_rules(IpFamily::from_ipv6(ipv6), &marker);
        lines.sort();
        lines
    }

    /// Everything of this network that GC may change: the lease directory
    /// and the commented rules plus every line naming one of `pods`' chains.
    fn state(&self, pods: &[&Pod]) -> State {
        let rules = |ipv6: bool| {
            let mut lines = self.commented_rules(ipv6);
            for pod in pods {
                lines.extend(pod.rules(ipv6));
            }
            lines.sort();
            lines.dedup();
            lines
        };
        State {
            store: self.store(),
            rules4: rules(false),
            rules6: rules(true),
        }
    }
}

/// A network's GC-relevant state.
#[derive(Debug, PartialEq)]
struct State {
    store: BTreeMap<String, String>,
    rules4: Vec<String>,
    rules6: Vec<String>,
}

/// One attachment: container ID, `eth0`, its own namespace, its chain.
struct Pod {
    id: String,
    ns: Option<TestNetns>,
    netns_path: String,
    chain: String,
    network: String,
    result: Value,
}

impl Pod {
    /// A new attachment of a fresh namespace to `net`; its chains (both
    /// families) are removed by `cleanup`.
    fn new(net: &Net, cleanup: &mut Cleanup) -> Pod {
        Pod::with_id(net, &unique_name("ctr"), cleanup)
    }

    /// Like [`Pod::new`] with a given container ID.
    fn with_id(net: &Net, id: &str, cleanup: &mut Cleanup) -> Pod {
        let chain = bridge::masq::chain_name(&net.name, id);
        cleanup.iptables_chain(false, "nat", &chain);
        cleanup.iptables_chain(true, "nat", &chain);
        let ns = TestNetns::new("gc-pod");
        Pod {
            id: id.to_string(),
            netns_path: ns.path_str(),
            ns: Some(ns),
            chain,
            network: net.name.clone(),
            result: Value::Null,
        }
    }

    /// A call of `imp` for this attachment as a runtime makes it.
    fn call(&self, imp: Impl, command: &str, conf: &Value) -> PluginCall {
        imp.bridge_call(command, &self.id, &self.netns_path, conf)
    }

    /// ADD through `imp`; keeps the result for CHECK.
    fn add(&mut self, imp: Impl, conf: &Value) {
        let out = self.call(imp, "ADD", conf).run().expect_success();
        self.result = out.json();
        assert_eq!(
            self.addresses().len(),
            2,
            "dual-stack result: {}",
            self.result
        );
    }

    /// Deletes the namespace without DEL, as after a crash or reboot.
    fn lose_netns(&mut self) {
        self.ns = None;
    }

    fn ns(&self) -> &TestNetns {
        self.ns.as_ref().expect("the pod's namespace still exists")
    }

    /// The result's addresses (`ip/prefix`).
    fn addresses(&self) -> Vec<String> {
        self.result["ips"]
            .as_array()
            .map(|ips| {
                ips.iter()
                    .filter_map(|ip| ip["address"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The result's addresses without prefix, i.e. the lease file names.
    fn ips(&self) -> Vec<String> {
        let mut ips: Vec<String> = self
            .addresses()
            .iter()
            .map(|a| a.split('/').next().unwrap_or_default().to_string())
            .collect();
        ips.sort();
        ips
    }

    /// The lease files naming this attachment, sorted.
    fn leases(&self, net: &Net) -> Vec<String> {
        let owner = format!("{}\r\neth0", self.id);
        net.leases()
            .into_iter()
            .filter(|(_, content)| content.trim() == owner)
            .map(|(name, _)| name)
            .collect()
    }

    /// `nat -S` lines naming this attachment's chain, in listing order.
    fn rules(&self, ipv6: bool) -> Vec<String> {
        kernel::nat_rules(IpFamily::from_ipv6(ipv6), &self.chain)
    }

    /// The reference's rules in `iptables -S` for this attachment's address of
    /// one family (`subnet` is that family's network).
    fn expected_rules(&self, ipv6: bool, subnet: &str) -> Vec<String> {
        let c = &self.chain;
        let comment = format!("\"name: \\\"{}\\\" id: \\\"{}\\\"\"", self.network, self.id);
        let ip = self
            .ips()
            .into_iter()
            .find(|ip| ip.contains(':') == ipv6)
            .expect("an address of the family");
        let (host, multicast) = if ipv6 {
            (128, "ff00::/8")
        } else {
            (32, "224.0.0.0/4")
        };
        vec![
            format!("-N {c}"),
            format!("-A POSTROUTING -s {ip}/{host} -m comment --comment {comment} -j {c}"),
            format!("-A {c} -d {subnet} -m comment --comment {comment} -j ACCEPT"),
            format!("-A {c} ! -d {multicast} -m comment --comment {comment} -j MASQUERADE"),
        ]
    }

    /// Asserts the attachment's leases and both chains (with their
    /// POSTROUTING jumps) are exactly as ADD made them.
    fn assert_intact(&self, net: &Net) {
        assert_eq!(self.leases(net), self.ips(), "leases of {}", self.id);
        assert_eq!(
            self.rules(false),
            self.expected_rules(false, &net.subnet4()),
            "v4 rules of {}",
            self.id
        );
        assert_eq!(
            self.rules(true),
            self.expected_rules(true, &net.subnet6()),
            "v6 rules of {}",
            self.id
        );
    }

    /// Asserts nothing of the attachment is left: no lease, no chain, no jump.
    fn assert_collected(&self, net: &Net) {
        assert_eq!(
            self.leases(net),
            Vec::<String>::new(),
            "leases of {}",
            self.id
        );
        assert_eq!(self.rules(false), Vec::<String>::new(), "v4 of {}", self.id);
        assert_eq!(self.rules(true), Vec::<String>::new(), "v6 of {}", self.id);
    }

    /// The attachment as a `cni.dev/valid-attachments` entry.
    fn attachment(&self) -> Value {
        json!({"containerID": self.id, "ifname": "eth0"})
    }

    /// Pings the gateway of both families from inside the pod.
    fn assert_reaches_gateways(&self, net: &Net) {
        assert!(
            self.ns().ping(&net.ip4(1), 3),
            "{} -> {}",
            self.id,
            net.ip4(1)
        );
        // The bridge's v6 address may still be tentative (host-side DAD).
        assert!(
            self.ns().ping(&net.ip6(1), 6),
            "{} -> {}",
            self.id,
            net.ip6(1)
        );
    }

    /// Our CHECK at 1.1.0 with `prevResult` = this attachment's ADD result.
    fn assert_check_passes(&self, net: &Net) {
        let mut conf = net.config("1.1.0");
        conf["prevResult"] = self.result.clone();
        let out = self.call(Impl::Ours, "CHECK", &conf).run().expect_success();
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
}

// ---------------------------------------------------------------------------
// Calls and observers.
// ---------------------------------------------------------------------------

/// A GC or STATUS call of our `plugin` as the spec has the runtime make it:
/// only `CNI_COMMAND` and `CNI_PATH` (and `PATH`), the config on stdin.
fn runtime_call(plugin: &str, command: &str, conf: &Value) -> PluginCall {
    PluginCall::new(plugin).command(command).config(conf)
}

/// `conf` with `cni.dev/valid-attachments` set to `valid`.
fn with_valid(conf: &Value, valid: Vec<Value>) -> Value {
    let mut conf = conf.clone();
    conf[VALID] = Value::Array(valid);
    conf
}

/// Runs GC of our `plugin` and requires success with empty stdout.
fn gc_ok(plugin: &str, conf: &Value) {
    let out = runtime_call(plugin, "GC", conf).run().expect_success();
    assert!(
        out.stdout.is_empty(),
        "GC prints nothing\n{}",
        out.describe()
    );
}

/// Runs STATUS of our `plugin` and requires success with empty stdout.
fn status_ok(plugin: &str, conf: &Value) {
    let out = runtime_call(plugin, "STATUS", conf).run().expect_success();
    assert!(
        out.stdout.is_empty(),
        "STATUS prints nothing\n{}",
        out.describe()
    );
}

/// Requires a failure exactly as the dispatcher reports one (exit status 1,
/// no panic) with `code`, and the error object's `cniVersion` = `version`.
fn assert_error(out: &PluginOutput, code: u64, version: &str) -> Value {
    let err = out.expect_error(code);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(!out.stderr_str().contains("panicked"), "{}", out.describe());
    assert_eq!(err["cniVersion"], version, "{}", out.describe());
    err
}

/// A direct host-local call (as bridge delegates it) for `id`/`ifname`.
fn host_local(command: &str, id: &str, ifname: &str, conf: &Value) -> PluginOutput {
    PluginCall::new("host-local")
        .command(command)
        .container_id(id)
        .netns(DUMMY_NETNS)
        .ifname(ifname)
        .config(conf)
        .run()
}

// ---------------------------------------------------------------------------
// 1. Bridge GC with a subset valid, across implementations and leftovers.
// ---------------------------------------------------------------------------

#[test]
fn bridge_gc_removes_exactly_the_invalid_attachments_of_its_network() {
    if !require_root("bridge_gc_removes_exactly_the_invalid_attachments_of_its_network") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("gc-a", 1, &mut cleanup);
    let other = Net::new("gc-b", 2, &mut cleanup);
    let ours11 = net.config("1.1.0");
    // Debian's reference knows versions up to 1.0.0.
    let ref10 = net.config("1.0.0");

    let mut ours_keep = Pod::new(&net, &mut cleanup);
    let mut ours_gone = Pod::new(&net, &mut cleanup);
    let mut ref_keep = Pod::new(&net, &mut cleanup);
    let mut ref_gone = Pod::new(&net, &mut cleanup);
    let mut leak_ours = Pod::new(&net, &mut cleanup);
    let mut leak_ref = Pod::new(&net, &mut cleanup);
    let start = Instant::now();
    ours_keep.add(Impl::Ours, &ours11);
    ref_keep.add(Impl::Reference, &ref10);
    ours_gone.add(Impl::Ours, &ours11);
    ref_gone.add(Impl::Reference, &ref10);
    leak_ours.add(Impl::Ours, &ours11);
    leak_ref.add(Impl::Reference, &ref10);
    leak_ours.lose_netns();
    leak_ref.lose_netns();

    // The other network: its own bridge, name, dataDir and subnets. One of
    // its containers has the ID of an attachment that is invalid in `net`.
    let mut other_own = Pod::new(&other, &mut cleanup);
    let mut other_twin = Pod::with_id(&other, &ours_gone.id, &mut cleanup);
    other_own.add(Impl::Ours, &other.config("1.1.0"));
    other_twin.add(Impl::Ours, &other.config("1.1.0"));
    println!("9 ADDs in {:.0} ms", ms(start.elapsed()));

    let all = [
        &ours_keep, &ours_gone, &ref_keep, &ref_gone, &leak_ours, &leak_ref,
    ];
    for pod in all {
        pod.assert_intact(&net);
    }
    let reserved_before = last_reserved(&net);
    assert_eq!(reserved_before.len(), 2, "{:?}", net.store());
    let other_before = other.state(&[&other_own, &other_twin]);
    assert_eq!(other_before.store.len(), 4 + 3, "{:?}", other_before.store);

    let gc_conf = with_valid(
        &ours11,
        vec![
            ours_keep.attachment(),
            ref_keep.attachment(),
            // A valid attachment with nothing on this host is harmless.
            json!({"containerID": unique_name("elsewhere"), "ifname": "eth0"}),
        ],
    );
    let start = Instant::now();
    gc_ok("bridge", &gc_conf);
    println!("GC in {:.0} ms", ms(start.elapsed()));

    for pod in [&ours_gone, &ref_gone, &leak_ours, &leak_ref] {
        pod.assert_collected(&net);
    }
    for pod in [&ours_keep, &ref_keep] {
        pod.assert_intact(&net);
    }
    assert_only_valid_leases_and_rules_left(&net, [&ours_keep, &ref_keep], &reserved_before);
    assert_eq!(other.state(&[&other_own, &other_twin]), other_before);

    // The valid attachments still work.
    for pod in [&ours_keep, &ref_keep] {
        pod.assert_reaches_gateways(&net);
        pod.assert_check_passes(&net);
    }

    // Idempotent: a second GC changes nothing.
    let after = net.state(&all);
    gc_ok("bridge", &gc_conf);
    assert_eq!(net.state(&all), after);
    assert_eq!(other.state(&[&other_own, &other_twin]), other_before);
}

/// The `last_reserved_ip.*` files (host-local's round-robin state) of `net`.
fn last_reserved(net: &Net) -> BTreeMap<String, String> {
    let mut store = net.store();
    store.retain(|name, _| name.starts_with("last_reserved_ip."));
    store
}

/// Asserts GC left exactly `valid`'s leases (plus round-robin state and lock) and rules.
fn assert_only_valid_leases_and_rules_left(
    net: &Net,
    valid: [&Pod; 2],
    reserved_before: &BTreeMap<String, String>,
) {
    // Exactly the valid leases are left, with the round-robin state and lock.
    let mut valid_ips: Vec<String> = valid[0].ips();
    valid_ips.extend(valid[1].ips());
    valid_ips.sort();
    assert_eq!(
        net.leases().into_keys().collect::<Vec<_>>(),
        valid_ips,
        "leases after GC"
    );
    assert_eq!(&last_reserved(net), reserved_before);
    assert!(net.lease_dir().join("lock").is_file(), "lock kept");
    // And exactly the valid rules carry this network's comment.
    for ipv6 in [false, true] {
        let mut want: Vec<String> = valid
            .iter()
            .flat_map(|p| p.rules(ipv6))
            .filter(|l| !l.starts_with("-N "))
            .collect();
        want.sort();
        assert_eq!(net.commented_rules(ipv6), want, "ipv6={ipv6}");
    }
}

/// GC carries on past a failing step: with host-local missing from
/// `CNI_PATH` the masquerade rules are still collected and the error is
/// reported; a later GC that finds host-local releases the leases.
#[test]
fn bridge_gc_carries_on_when_the_ipam_plugin_is_missing() {
    if !require_root("bridge_gc_carries_on_when_the_ipam_plugin_is_missing") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("gc-noipam", 8, &mut cleanup);
    let empty_dir = std::env::temp_dir().join(unique_name("cni-gc-empty-path"));
    std::fs::create_dir(&empty_dir).expect("create an empty CNI_PATH dir");
    cleanup.remove_path(&empty_dir);
    let mut pod = Pod::new(&net, &mut cleanup);
    pod.add(Impl::Ours, &net.config("1.1.0"));
    pod.lose_netns();

    let gc_conf = with_valid(&net.config("1.1.0"), Vec::new());
    let out = runtime_call("bridge", "GC", &gc_conf)
        .cni_path(&empty_dir)
        .run();
    let err = assert_error(&out, 999, "1.1.0");
    assert_eq!(
        err["msg"],
        format!(
            "failed to find plugin \"host-local\" in path [{}]",
            empty_dir.display()
        )
    );
    assert_eq!(pod.rules(false), Vec::<String>::new());
    assert_eq!(pod.rules(true), Vec::<String>::new());
    assert_eq!(pod.leases(&net), pod.ips(), "IPAM GC did not run");

    gc_ok("bridge", &gc_conf);
    pod.assert_collected(&net);
}

// ---------------------------------------------------------------------------
// 2. host-local GC on its own.
// ---------------------------------------------------------------------------

#[test]
fn host_local_gc_releases_exactly_the_invalid_leases() {
    // host-local opens no namespace: this one runs without root too.
    let mut cleanup = Cleanup::new();
    let net = Net::new("gc-hl", 3, &mut cleanup);
    // A second network in the same dataDir, sharing no lease directory.
    let neighbour = Net::sharing_data_dir("gc-hl-n", 3, net.data_dir.clone());
    let conf = net.config("1.1.0");
    let neighbour_conf = neighbour.config("1.1.0");
    let (keep, gone, id_only) = (
        unique_name("keep"),
        unique_name("gone"),
        unique_name("legacy-keep"),
    );
    let legacy_gone = unique_name("legacy-gone");

    for (id, ifname) in [(&keep, "eth0"), (&keep, "net1"), (&gone, "eth0")] {
        host_local("ADD", id, ifname, &conf).expect_success();
    }
    host_local("ADD", &gone, "eth0", &neighbour_conf).expect_success();
    // Legacy single-line leases (older releases wrote the container ID
    // only; readers compare trimmed content).
    let dir = net.lease_dir();
    std::fs::write(dir.join(net.ip4(200)), &id_only).expect("write legacy lease");
    std::fs::write(dir.join(net.ip4(201)), format!("{legacy_gone}\n")).expect("write lease");
    std::fs::write(dir.join(net.ip6(0xc9)), &legacy_gone).expect("write legacy lease");
    let before = net.store();
    let neighbour_before = neighbour.store();
    assert_eq!(before.len(), 6 + 3 + 3, "{before:#?}");

    // The leaked lease blocks a new ADD of the same attachment.
    let dup = host_local("ADD", &gone, "eth0", &conf);
    let msg = dup.expect_error(999)["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("duplicate allocation is not allowed"), "{msg}");

    // Without a valid-attachments list GC releases nothing.
    gc_ok("host-local", &conf);
    assert_eq!(net.store(), before);

    let gc_conf = with_valid(
        &conf,
        vec![
            json!({"containerID": keep, "ifname": "eth0"}),
            // A legacy lease stays while its container has any valid attachment.
            json!({"containerID": id_only, "ifname": "eth7"}),
            json!({"containerID": unique_name("absent"), "ifname": "eth0"}),
        ],
    );
    gc_ok("host-local", &gc_conf);
    let kept = |names: &[String]| -> BTreeMap<String, String> {
        before
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect()
    };
    let mut kept_names: Vec<String> = vec![
        net.ip4(2),
        net.ip6(2),
        net.ip4(200),
        "last_reserved_ip.0".into(),
        "last_reserved_ip.1".into(),
        "lock".into(),
    ];
    let expected = kept(&kept_names);
    assert_eq!(expected.len(), kept_names.len(), "{before:#?}");
    assert_eq!(expected[&net.ip4(2)], format!("{keep}\r\neth0"));
    assert_eq!(net.store(), expected, "after GC");
    assert_eq!(
        neighbour.store(),
        neighbour_before,
        "another network's leases"
    );

    // Idempotent.
    gc_ok("host-local", &gc_conf);
    assert_eq!(net.store(), expected);

    // The collected attachment can be added again; the round robin is not
    // rewound (the next addresses follow the last reserved ones).
    let again = host_local("ADD", &gone, "eth0", &conf)
        .expect_success()
        .json();
    assert_eq!(again["ips"][0]["address"], format!("{}/24", net.ip4(5)));
    assert_eq!(again["ips"][1]["address"], format!("{}/64", net.ip6(5)));
    kept_names.retain(|n| !n.starts_with("last_reserved_ip."));
    let mut leases: Vec<String> = net.store().into_keys().collect();
    leases.retain(|n| !n.starts_with("last_reserved_ip."));
    kept_names.extend([net.ip4(5), net.ip6(5)]);
    kept_names.sort();
    assert_eq!(leases, kept_names);
}

// ---------------------------------------------------------------------------
// 3. STATUS.
// ---------------------------------------------------------------------------

#[test]
fn status_of_a_healthy_network_succeeds_silently() {
    if !require_root("status_of_a_healthy_network_succeeds_silently") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("st-ok", 4, &mut cleanup);
    let conf = net.config("1.1.0");
    status_ok("bridge", &conf);
    status_ok("host-local", &conf);
    // An L2-only bridge (no IPAM) is ready as well.
    let mut l2 = conf.clone();
    l2["ipam"] = json!({});
    l2["ipMasq"] = json!(false);
    l2["isGateway"] = json!(false);
    status_ok("bridge", &l2);
    assert!(
        !kernel::link_exists(None, &net.bridge),
        "STATUS creates no bridge"
    );
}

#[test]
fn status_reports_an_exhausted_pool_until_a_lease_is_released() {
    if !require_root("status_reports_an_exhausted_pool_until_a_lease_is_released") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("st-full", 5, &mut cleanup);
    // A /30 has one address to lease: .1 is the gateway, .2 the only one.
    let mut conf = net.config("1.1.0");
    conf["ipam"]["ranges"][0][0]["subnet"] = json!(format!("{}/30", net.ip4(0)));
    status_ok("bridge", &conf);

    let mut pod = Pod::new(&net, &mut cleanup);
    pod.add(Impl::Ours, &conf);
    assert!(pod.ips().contains(&net.ip4(2)), "{}", pod.result);

    // Not able to service ADD: code 50, the spec's "plugin not available". 51 would claim
    // existing containers may have limited connectivity, which a full pool
    // does not cause.
    let via_bridge = runtime_call("bridge", "STATUS", &conf).run();
    let err = assert_error(&via_bridge, 50, "1.1.0");
    assert_eq!(
        err["msg"],
        format!(
            "no IP addresses available in range set: {}-{}",
            net.ip4(1),
            net.ip4(2)
        )
    );
    // bridge passes host-local's answer on unchanged.
    let direct = runtime_call("host-local", "STATUS", &conf).run();
    assert_error(&direct, 50, "1.1.0");
    assert_eq!(via_bridge.stdout, direct.stdout);
    // And STATUS is right: an ADD cannot be serviced.
    let add = host_local("ADD", &unique_name("late"), "eth0", &conf);
    let msg = add.expect_error(999)["msg"].to_string();
    assert!(msg.contains("no IP addresses available"), "{msg}");
    // STATUS changed nothing.
    assert_eq!(pod.leases(&net), pod.ips());
    pod.call(Impl::Ours, "DEL", &conf).run().expect_success();
    status_ok("bridge", &conf);
    status_ok("host-local", &conf);
}

#[test]
fn status_reports_an_unusable_data_dir_and_a_missing_ipam_plugin() {
    if !require_root("status_reports_an_unusable_data_dir_and_a_missing_ipam_plugin") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("st-bad", 6, &mut cleanup);
    let mut conf = net.config("1.1.0");

    // dataDir is a regular file.
    std::fs::write(&net.data_dir, "not a directory").expect("write the file");
    for plugin in ["bridge", "host-local"] {
        let out = runtime_call(plugin, "STATUS", &conf).run();
        let err = assert_error(&out, 50, "1.1.0");
        let msg = err["msg"].as_str().unwrap_or_default();
        let store = net.lease_dir().display().to_string();
        assert!(
            msg.starts_with(&format!("lease store {store} is not usable: ")),
            "{plugin}: {msg}"
        );
        assert!(msg.contains("Not a directory"), "{plugin}: {msg}");
    }

    // dataDir is on a read-only mount (root ignores permission bits).
    let ro = std::env::temp_dir().join(unique_name("cni-gc-ro"));
    std::fs::create_dir(&ro).expect("create the mount point");
    cleanup.remove_path(&ro);
    let ro_str = ro.display().to_string();
    cmd::run_ok("mount", &["--bind", ro_str.as_str(), ro_str.as_str()]);
    cleanup.command("umount", &[ro_str.as_str()]);
    cmd::run_ok("mount", &["-o", "remount,bind,ro", ro_str.as_str()]);
    conf["ipam"]["dataDir"] = json!(ro);
    for plugin in ["bridge", "host-local"] {
        let out = runtime_call(plugin, "STATUS", &conf).run();
        let err = assert_error(&out, 50, "1.1.0");
        let msg = err["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("Read-only file system"), "{plugin}: {msg}");
        assert!(msg.contains(&ro_str), "{plugin}: {msg}");
    }

    // The IPAM plugin is not in CNI_PATH: bridge cannot service ADD.
    let unused = net.data_dir.with_extension("unused");
    cleanup.remove_path(&unused);
    conf["ipam"]["dataDir"] = json!(unused);
    let empty_dir = std::env::temp_dir().join(unique_name("cni-st-empty-path"));
    std::fs::create_dir(&empty_dir).expect("create an empty CNI_PATH dir");
    cleanup.remove_path(&empty_dir);
    let out = runtime_call("bridge", "STATUS", &conf)
        .cni_path(&empty_dir)
        .run();
    let err = assert_error(&out, 50, "1.1.0");
    assert_eq!(
        err["msg"],
        format!(
            "failed to find plugin \"host-local\" in path [{}]",
            empty_dir.display()
        )
    );
}

// ---------------------------------------------------------------------------
// 4. GC and STATUS at versions that do not have them.
// ---------------------------------------------------------------------------

#[test]
fn gc_and_status_at_older_versions_fail_cleanly_and_change_nothing() {
    if !require_root("gc_and_status_at_older_versions_fail_cleanly_and_change_nothing") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("gc-old", 9, &mut cleanup);
    let mut pod = Pod::new(&net, &mut cleanup);
    pod.add(Impl::Ours, &net.config("1.0.0"));
    pod.lose_netns();
    let before = net.state(&[&pod]);

    let cases = [
        ("0.3.1", "config version does not allow {}"),
        ("0.4.0", "config version does not allow {}"),
        ("1.0.0", "config version does not allow {}"),
        ("2.0.0", "incompatible CNI versions"),
    ];
    for (version, msg) in cases {
        // An empty list would collect everything if the version were ignored.
        let conf = with_valid(&net.config(version), Vec::new());
        for plugin in ["bridge", "host-local"] {
            for command in ["GC", "STATUS"] {
                let out = runtime_call(plugin, command, &conf).run();
                let err = assert_error(&out, 1, version);
                assert_eq!(
                    err["msg"],
                    msg.replace("{}", command),
                    "{plugin} {command} {version}"
                );
            }
        }
    }
    assert_eq!(net.state(&[&pod]), before, "nothing changed");

    // The same request at 1.1.0 does collect (so the above could fail).
    gc_ok("bridge", &with_valid(&net.config("1.1.0"), Vec::new()));
    pod.assert_collected(&net);
}

// ---------------------------------------------------------------------------
// 5. A 1.1.0 conflist driven as a runtime drives it.
// ---------------------------------------------------------------------------

/// A runtime's view of a conflist: every plugin gets the list's name and
/// `cniVersion`, and the previous plugin's result as `prevResult`.
struct Runtime {
    list: Value,
    version: String,
}

impl Runtime {
    /// Picks the highest of the list's `cniVersions` that both this runtime
    /// (1.1.0) and every plugin (their VERSION answer) support.
    fn new(list: Value) -> Runtime {
        let runtime_supports = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
        let mut candidates: Vec<String> = list["cniVersions"]
            .as_array()
            .expect("cniVersions")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .filter(|v| runtime_supports.contains(&v.as_str()))
            .collect();
        for plugin in list["plugins"].as_array().expect("plugins") {
            let kind = plugin["type"].as_str().expect("type");
            let info = PluginCall::new(kind)
                .command("VERSION")
                .run()
                .expect_success()
                .json();
            let supported = info["supportedVersions"].as_array().expect("versions");
            candidates.retain(|v| supported.iter().any(|s| s == v));
        }
        candidates.sort_by_key(|v| {
            v.split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        });
        let version = candidates.pop().expect("a common version");
        Runtime { list, version }
    }

    /// The stdin of plugin `index`: the plugin object with `name` and
    /// `cniVersion` inserted, `capabilities` removed, and `extra` keys added.
    fn stdin(&self, index: usize, extra: &[(&str, Value)]) -> Value {
        let mut conf = self.list["plugins"][index].clone();
        let object = conf.as_object_mut().expect("plugin object");
        object.remove("capabilities");
        object.insert("name".into(), self.list["name"].clone());
        object.insert("cniVersion".into(), json!(self.version));
        for (key, value) in extra {
            object.insert((*key).into(), value.clone());
        }
        conf
    }

    fn plugins(&self) -> usize {
        self.list["plugins"].as_array().map_or(0, Vec::len)
    }

    fn plugin(&self, index: usize) -> PluginCall {
        PluginCall::new(self.list["plugins"][index]["type"].as_str().expect("type"))
    }

    /// ADD through every plugin in order; returns the final result.
    fn add(&self, pod: &Pod) -> Value {
        let mut prev: Option<Value> = None;
        for i in 0..self.plugins() {
            let extra: Vec<(&str, Value)> =
                prev.iter().map(|p| ("prevResult", p.clone())).collect();
            let out = self
                .attach_call(i, pod, "ADD", &extra)
                .run()
                .expect_success();
            prev = Some(out.json());
        }
        prev.expect("a result")
    }

    /// CHECK (in order) or DEL (in reverse order) with the ADD result.
    fn check_or_del(&self, pod: &Pod, command: &str, result: &Value) {
        let mut order: Vec<usize> = (0..self.plugins()).collect();
        if command == "DEL" {
            order.reverse();
        }
        for i in order {
            let out = self
                .attach_call(i, pod, command, &[("prevResult", result.clone())])
                .run()
                .expect_success();
            assert!(out.stdout.is_empty(), "{command}\n{}", out.describe());
        }
    }

    fn attach_call(
        &self,
        index: usize,
        pod: &Pod,
        command: &str,
        extra: &[(&str, Value)],
    ) -> PluginCall {
        self.plugin(index)
            .command(command)
            .container_id(&pod.id)
            .netns(&pod.netns_path)
            .ifname("eth0")
            .config(&self.stdin(index, extra))
    }

    /// STATUS of every plugin; all must succeed silently.
    fn status(&self) {
        for i in 0..self.plugins() {
            let out = self
                .plugin(i)
                .command("STATUS")
                .config(&self.stdin(i, &[]))
                .run()
                .expect_success();
            assert!(out.stdout.is_empty(), "{}", out.describe());
        }
    }

    /// GC of every plugin with `valid`, unless the list sets `disableGC`.
    fn gc(&self, valid: &[&Pod]) {
        if self.list["disableGC"] == true {
            return;
        }
        let valid: Vec<Value> = valid.iter().map(|p| p.attachment()).collect();
        for i in 0..self.plugins() {
            let out = self
                .plugin(i)
                .command("GC")
                .config(&self.stdin(i, &[(VALID, json!(valid))]))
                .run()
                .expect_success();
            assert!(out.stdout.is_empty(), "{}", out.describe());
        }
    }
}

/// CRI-O's bridge config as a 1.1.0 conflist with this network's bridge,
/// name, subnets and dataDir.
fn crio_conflist(net: &Net) -> Value {
    let mut plugin: Value = serde_json::from_str(CRIO_CONF).expect("CRI-O config is JSON");
    let object = plugin.as_object_mut().expect("config object");
    object.remove("cniVersion");
    object.remove("name");
    plugin["bridge"] = json!(net.bridge);
    plugin["ipam"]["dataDir"] = json!(net.data_dir);
    plugin["ipam"]["ranges"] = json!([[{"subnet": net.subnet4()}], [{"subnet": net.subnet6()}]]);
    // CRI-O's v6 route keeps its host bits (`1100:200::1/24`).
    plugin["ipam"]["routes"] = json!([
        {"dst": "0.0.0.0/0"},
        {"dst": format!("{}/64", net.ip6(1))},
    ]);
    json!({
        "cniVersion": "1.1.0",
        "cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        "name": net.name,
        "plugins": [plugin],
    })
}

#[test]
fn conflist_1_1_0_add_check_status_gc_del_as_a_runtime_runs_it() {
    if !require_root("conflist_1_1_0_add_check_status_gc_del_as_a_runtime_runs_it") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("gc-list", 7, &mut cleanup);
    let runtime = Runtime::new(crio_conflist(&net));
    assert_eq!(runtime.version, "1.1.0");
    let mut pod = Pod::new(&net, &mut cleanup);

    runtime.status();
    let result = runtime.add(&pod);
    assert_eq!(result["cniVersion"], "1.1.0", "{result}");
    pod.result = result.clone();
    pod.assert_intact(&net);
    runtime.check_or_del(&pod, "CHECK", &result);
    runtime.status();

    // The attachment is valid: GC removes nothing and it still works.
    let before = net.state(&[&pod]);
    runtime.gc(&[&pod]);
    assert_eq!(net.state(&[&pod]), before);
    pod.assert_reaches_gateways(&net);
    runtime.check_or_del(&pod, "CHECK", &result);

    // disableGC: the runtime skips GC for the list, and a plugin config that
    // carries it (a .conf converted to a list keeps its keys) is not
    // collected either.
    let mut disabled = runtime.list.clone();
    disabled["disableGC"] = json!(true);
    Runtime {
        list: disabled,
        version: runtime.version.clone(),
    }
    .gc(&[]);
    assert_eq!(net.state(&[&pod]), before);
    let mut in_plugin = runtime.stdin(0, &[(VALID, json!([]))]);
    in_plugin["disableGC"] = json!(true);
    gc_ok("bridge", &in_plugin);
    gc_ok("host-local", &in_plugin);
    assert_eq!(net.state(&[&pod]), before, "disableGC in the plugin config");

    // Nothing is valid any more: the lease and both chains go.
    runtime.gc(&[]);
    pod.assert_collected(&net);
    assert_eq!(net.leases(), BTreeMap::new());
    assert_eq!(net.commented_rules(false), Vec::<String>::new());
    assert_eq!(net.commented_rules(true), Vec::<String>::new());

    // DEL after GC succeeds and removes the interface; again for idempotency.
    for _ in 0..2 {
        runtime.check_or_del(&pod, "DEL", &result);
        assert!(!kernel::link_exists(Some(pod.ns().name()), "eth0"));
        pod.assert_collected(&net);
    }
    wait_for_no_ports(&net);
}

/// Waits until no veth is enslaved to the network's bridge any more.
fn wait_for_no_ports(net: &Net) {
    let start = Instant::now();
    loop {
        let ports = net.ports();
        if ports.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ports left on {}: {ports:?}",
            net.bridge
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
