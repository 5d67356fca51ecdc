//! Root tests of `macspoofchk` in our `bridge`: the exact
//! nftables objects (`nft list table bridge nat`, read with the `nft` tool, independently
//! of the plugin's code), that they really drop frames with a spoofed source MAC, that DEL
//! and a failed ADD leave none of them, and that they are the reference's: Debian's
//! `/usr/lib/cni/bridge` and ours remove each other's.
//!
//! The table and its base chain `PREROUTING` are shared by every attachment on the host
//! (and by tests running in parallel), so every observation is filtered to one
//! attachment's objects: its two chains and the base-chain rules carrying its comment.
//! Every test has its own bridge, network name, container IDs, namespaces and subnet
//! `10.160.<k>.0/24`; a [`Cleanup`] guard removes the bridge, the dataDir and each
//! attachment's nft chains and rules, also when a test panics.
//!
//! Build the plugins first: `cargo build --workspace --all-features`.

#![cfg(test)]

use std::collections::BTreeMap;

use integration::reference::Impl;
use integration::{
    Cleanup, PluginCall, TestNetns, TestNetwork, cmd, kernel, require_root, unique_name,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// The test world.
// ---------------------------------------------------------------------------

integration::test_network! {
    /// One test's private network (bridge, network name, dataDir, lease files) with the
    /// subnet `10.160.<k>.0/24`.
    Net
}

impl Net {
    /// A fresh network; `k` must be unique per test. The bridge and the dataDir are
    /// removed by `cleanup`.
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        Net(TestNetwork::new("msbr", tag, k, cleanup))
    }

    fn ip4(&self, host: u8) -> String {
        format!("10.160.{}.{host}", self.k)
    }

    /// A gateway network with `macspoofchk` on, and the keys of `extra` set over it.
    fn config(&self, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "macspoofchk": true,
            "ipam": {
                "type": "host-local",
                "dataDir": self.data_dir,
                "subnet": format!("10.160.{}.0/24", self.k),
            },
        });
        if let (Some(conf), Value::Object(extra)) = (conf.as_object_mut(), extra) {
            conf.extend(extra);
        }
        conf
    }
}

/// One attachment: container ID, `eth0`, namespace path.
struct Pod {
    id: String,
    netns_path: String,
}

impl Pod {
    /// An attachment in `ns`; its nft chains and rules are removed by `cleanup`.
    fn new(ns: &TestNetns, cleanup: &mut Cleanup) -> Pod {
        let pod = Pod {
            id: unique_name("ms"),
            netns_path: ns.path_str(),
        };
        let (id, ifname) = (pod.id.clone(), "eth0".to_string());
        cleanup.push(format!("remove nft objects of {id}/{ifname}"), move || {
            kernel::remove_spoof_check(&id, &ifname)
        });
        pod
    }

    fn call(&self, imp: Impl, command: &str, conf: &Value) -> PluginCall {
        imp.bridge_call(command, &self.id, &self.netns_path, conf)
    }

    fn iface_chain(&self) -> String {
        format!("cni-br-iface-{}-eth0", self.id)
    }

    fn mac_chain(&self) -> String {
        format!("{}-mac", self.iface_chain())
    }

    fn comment(&self) -> String {
        format!("macspoofchk-{}-eth0", self.id)
    }

    /// `nft list table bridge nat` as it would print with only this attachment's
    /// objects in the table; `""` when none of them is there.
    fn listing(&self) -> String {
        attachment_listing(
            &kernel::nft_bridge_nat(),
            &self.iface_chain(),
            &self.comment(),
        )
    }

    /// The listing the reference creates (verified with Debian's
    /// 1.1.1) for this attachment with `veth` and `mac`.
    fn expected_listing(&self, veth: &str, mac: &str) -> String {
        let (iface, chain_mac, comment) = (self.iface_chain(), self.mac_chain(), self.comment());
        format!(
            "table bridge nat {{\n\
             \tchain PREROUTING {{\n\
             \t\ttype filter hook prerouting priority dstnat; policy accept;\n\
             \t\tiifname \"{veth}\" jump {iface} comment \"{comment}\"\n\
             \t}}\n\
             \n\
             \tchain {iface} {{\n\
             \t\tjump {chain_mac} comment \"{comment}\"\n\
             \t}}\n\
             \n\
             \tchain {chain_mac} {{\n\
             \t\tether saddr {mac} return comment \"{comment}\"\n\
             \t\tdrop comment \"{comment}\"\n\
             \t}}\n\
             }}\n"
        )
    }

    /// Asserts that no chain and no base-chain rule of this attachment is left.
    fn assert_no_nft_objects(&self) {
        assert_eq!(self.listing(), "", "nft objects of {} left", self.id);
        let table = kernel::nft_bridge_nat();
        assert!(
            !table.contains(&self.iface_chain()) && !table.contains(&self.comment()),
            "{table}"
        );
    }
}

// ---------------------------------------------------------------------------
// Observers and clean-up, with the `nft` tool.
// ---------------------------------------------------------------------------

/// Filters a `nft list table bridge nat` text to one attachment: the base chain with its
/// header and only the rules ending in `comment "<comment>"`, and the attachment's two
/// chains (`iface_chain` and `iface_chain-mac`) whole. `""` when none of them is there.
fn attachment_listing(table: &str, iface_chain: &str, comment: &str) -> String {
    let mac_chain = format!("{iface_chain}-mac");
    let rule_suffix = format!(" comment \"{comment}\"");
    let mut blocks: Vec<String> = Vec::new();
    let mut ours = false;
    let mut lines = table.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("\tchain ")
            .and_then(|l| l.strip_suffix(" {"))
        else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "\t}").collect();
        let kept: Vec<&str> = if name == "PREROUTING" {
            let rules: Vec<&str> = body
                .iter()
                .copied()
                .filter(|l| l.ends_with(&rule_suffix))
                .collect();
            ours |= !rules.is_empty();
            body.iter()
                .copied()
                .filter(|l| l.starts_with("\t\ttype "))
                .chain(rules)
                .collect()
        } else if name == iface_chain || name == mac_chain {
            ours = true;
            body
        } else {
            continue;
        };
        let mut block = format!("\tchain {name} {{\n");
        for l in kept {
            block.push_str(l);
            block.push('\n');
        }
        block.push_str("\t}");
        blocks.push(block);
    }
    if !ours {
        return String::new();
    }
    format!("table bridge nat {{\n{}\n}}\n", blocks.join("\n\n"))
}

/// The attachment's objects in `nft -j list table bridge nat`, without handles, with
/// `id`, `veth` and `mac` replaced by placeholders.
fn attachment_json(id: &str, veth: &str, mac: &str) -> Vec<Value> {
    let out = cmd::run_ok("nft", &["-j", "list", "table", "bridge", "nat"]);
    let parsed: Value = serde_json::from_str(&out).expect("nft -j prints JSON");
    let comment = format!("macspoofchk-{id}-eth0");
    let chain = format!("cni-br-iface-{id}-eth0");
    parsed["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter(|o| {
            let c = &o["chain"]["name"];
            c == "PREROUTING"
                || c.as_str().is_some_and(|n| n.starts_with(&chain))
                || o["rule"]["comment"] == comment.as_str()
        })
        .map(|o| {
            let mut o = o.clone();
            for kind in ["chain", "rule"] {
                if let Some(obj) = o.get_mut(kind).and_then(Value::as_object_mut) {
                    obj.remove("handle");
                }
            }
            let text = o
                .to_string()
                .replace(id, "<id>")
                .replace(veth, "<veth>")
                .replace(mac, "<mac>");
            serde_json::from_str(&text).expect("still JSON")
        })
        .collect()
}

/// The host veth and the container MAC of an ADD result.
fn veth_and_mac(result: &Value) -> (String, String) {
    let interfaces = result["interfaces"].as_array().expect("interfaces");
    let veth = interfaces[1]["name"]
        .as_str()
        .expect("veth name")
        .to_string();
    let mac = interfaces[2]["mac"]
        .as_str()
        .expect("container mac")
        .to_string();
    (veth, mac)
}

/// Sets the MAC of `eth0` in `ns` while it stays up.
fn set_mac(ns: &TestNetns, mac: &str) {
    ns.ip(&["link", "set", "dev", "eth0", "address", mac]);
}

/// The links in the namespace, sorted.
fn links_in(ns: &TestNetns) -> Vec<String> {
    let mut names: Vec<String> = kernel::links(Some(ns.name()))
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// 1. The objects.
// ---------------------------------------------------------------------------

#[test]
fn add_creates_exactly_the_references_nft_objects() {
    if !require_root("add_creates_exactly_the_references_nft_objects") {
        return;
    }
    let ns = TestNetns::new("ms-add");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-add", 1, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    let conf = net.config(json!({}));

    let out = pod.call(Impl::Ours, "ADD", &conf).run().expect_success();
    let (veth, mac) = veth_and_mac(&out.json());
    let link = kernel::link(Some(ns.name()), "eth0").expect("eth0");
    assert_eq!(link["address"], mac.as_str(), "the MAC is the container's");
    assert_eq!(pod.listing(), pod.expected_listing(&veth, &mac));
    // The base chain as the kernel holds it: priority -300 (`dstnat`), filter, accept.
    let base = cmd::run_ok(
        "nft",
        &["-j", "list", "chain", "bridge", "nat", "PREROUTING"],
    );
    let base: Value = serde_json::from_str(&base).expect("JSON");
    let chain = base["nftables"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o.get("chain").is_some()))
        .expect("PREROUTING chain")["chain"]
        .clone();
    assert_eq!(
        (
            &chain["type"],
            &chain["hook"],
            &chain["prio"],
            &chain["policy"]
        ),
        (
            &json!("filter"),
            &json!("prerouting"),
            &json!(-300),
            &json!("accept")
        )
    );
    println!("{}", pod.listing());
}

// ---------------------------------------------------------------------------
// 2. Behaviour: spoofed frames are dropped.
// ---------------------------------------------------------------------------

#[test]
fn a_spoofed_source_mac_is_dropped_and_the_real_one_passes() {
    if !require_root("a_spoofed_source_mac_is_dropped_and_the_real_one_passes") {
        return;
    }
    let ns_a = TestNetns::new("ms-spoof-a");
    let ns_b = TestNetns::new("ms-spoof-b");
    let ns_c = TestNetns::new("ms-spoof-c");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-spoof", 2, &mut cleanup);
    let a = Pod::new(&ns_a, &mut cleanup);
    let b = Pod::new(&ns_b, &mut cleanup);
    let c = Pod::new(&ns_c, &mut cleanup);
    let conf = net.config(json!({}));
    // C, on the same bridge without the check, is the control.
    let unchecked = net.config(json!({"macspoofchk": false}));
    let (_, mac_a) = veth_and_mac(
        &a.call(Impl::Ours, "ADD", &conf)
            .run()
            .expect_success()
            .json(),
    );
    b.call(Impl::Ours, "ADD", &conf).run().expect_success();
    let (_, mac_c) = veth_and_mac(
        &c.call(Impl::Ours, "ADD", &unchecked)
            .run()
            .expect_success()
            .json(),
    );
    assert_eq!(c.listing(), "", "no objects without macspoofchk");
    let (gateway, ip_a, ip_b) = (net.ip4(1), net.ip4(2), net.ip4(3));
    assert!(kernel::has_addr(
        Some(ns_b.name()),
        "eth0",
        &format!("{ip_b}/24")
    ));

    for dst in [&gateway, &ip_b] {
        assert!(ns_a.ping(dst, 5), "A cannot reach {dst} with its own MAC");
    }
    assert!(ns_c.ping(&gateway, 5), "C cannot reach the gateway");

    let spoofed = "02:00:5e:10:16:02";
    set_mac(&ns_a, spoofed);
    for dst in [&gateway, &ip_b] {
        assert!(
            !ns_a.ping(dst, 3),
            "A reached {dst} with the spoofed MAC {spoofed}"
        );
    }
    // The same spoofing without the check goes through: the drop is the check's.
    set_mac(&ns_c, "02:00:5e:10:16:03");
    assert!(
        ns_c.ping(&gateway, 5),
        "C cannot reach the gateway with a new MAC"
    );
    // The other direction is not filtered, but A no longer answers from its MAC.
    assert!(!ns_b.ping(&ip_a, 2), "B reached A while A spoofs");

    set_mac(&ns_a, &mac_a);
    for dst in [&gateway, &ip_b] {
        assert!(
            ns_a.ping(dst, 5),
            "A cannot reach {dst} after restoring its MAC"
        );
    }
    set_mac(&ns_c, &mac_c);
}

// ---------------------------------------------------------------------------
// 3. DEL and failed ADDs leave nothing.
// ---------------------------------------------------------------------------

#[test]
fn del_removes_the_chains_and_rule_and_a_second_del_succeeds() {
    if !require_root("del_removes_the_chains_and_rule_and_a_second_del_succeeds") {
        return;
    }
    let ns = TestNetns::new("ms-del");
    let ns_other = TestNetns::new("ms-del-o");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-del", 3, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    let other = Pod::new(&ns_other, &mut cleanup);
    let conf = net.config(json!({}));
    pod.call(Impl::Ours, "ADD", &conf).run().expect_success();
    let (veth_o, mac_o) = veth_and_mac(
        &other
            .call(Impl::Ours, "ADD", &conf)
            .run()
            .expect_success()
            .json(),
    );
    assert_ne!(pod.listing(), "");

    for _ in 0..2 {
        let out = pod.call(Impl::Ours, "DEL", &conf).run().expect_success();
        assert_eq!(out.stderr_str(), "", "DEL complained");
        pod.assert_no_nft_objects();
        assert_eq!(links_in(&ns), vec!["lo".to_string()]);
    }
    // The table, the base chain and the other attachment stay.
    assert_eq!(other.listing(), other.expected_listing(&veth_o, &mac_o));
    other.call(Impl::Ours, "DEL", &conf).run().expect_success();
    other.assert_no_nft_objects();
    assert!(
        kernel::nft_bridge_nat().contains("\tchain PREROUTING {"),
        "the base chain was removed"
    );
    assert_eq!(net.ports(), Vec::<String>::new());
}

#[test]
fn del_without_the_netns_still_removes_the_chains() {
    if !require_root("del_without_the_netns_still_removes_the_chains") {
        return;
    }
    let ns = TestNetns::new("ms-del-nons");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-del-nons", 4, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    let conf = net.config(json!({}));
    pod.call(Impl::Ours, "ADD", &conf).run().expect_success();
    drop(ns);
    pod.call(Impl::Ours, "DEL", &conf).run().expect_success();
    pod.assert_no_nft_objects();
    assert_eq!(net.leases(), BTreeMap::new());
    // And with an empty CNI_NETNS.
    let ns2 = TestNetns::new("ms-del-empty");
    let pod2 = Pod::new(&ns2, &mut cleanup);
    pod2.call(Impl::Ours, "ADD", &conf).run().expect_success();
    pod2.call(Impl::Ours, "DEL", &conf)
        .env("CNI_NETNS", "")
        .run()
        .expect_success();
    pod2.assert_no_nft_objects();
}

/// After a failed ADD: no nft object, no port on the bridge, no lease, and the
/// namespace holds only `lo`.
fn assert_failed_add_left_nothing(net: &Net, pod: &Pod, ns: &TestNetns) {
    pod.assert_no_nft_objects();
    if kernel::link_exists(None, &net.bridge) {
        assert_eq!(net.ports(), Vec::<String>::new(), "veth left on the bridge");
    }
    assert_eq!(net.leases(), BTreeMap::new(), "lease left");
    assert_eq!(links_in(ns), vec!["lo".to_string()]);
}

#[test]
fn failed_ipam_rolls_the_check_back() {
    if !require_root("failed_ipam_rolls_the_check_back") {
        return;
    }
    let ns = TestNetns::new("ms-f-ipam");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-f-ipam", 5, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    let mut conf = net.config(json!({}));
    // Too small to allocate from: host-local fails while the nft batch runs.
    conf["ipam"]["subnet"] = json!(format!("{}/31", net.ip4(0)));
    let out = pod.call(Impl::Ours, "ADD", &conf).run();
    let err = out.expect_error(7);
    assert!(
        err["msg"].as_str().is_some_and(|m| m.contains("too small")),
        "{err}"
    );
    assert_failed_add_left_nothing(&net, &pod, &ns);
}

#[test]
fn a_failure_after_everything_else_rolls_the_check_back() {
    if !require_root("a_failure_after_everything_else_rolls_the_check_back") {
        return;
    }
    let ns = TestNetns::new("ms-f-late");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-f-late", 6, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    // The bridge already has another address: the gateway step, the last one, fails.
    cmd::ip_ok(
        None,
        &["link", "add", net.bridge.as_str(), "type", "bridge"],
    );
    let other = format!("{}/24", net.ip4(254));
    cmd::ip_ok(
        None,
        &["addr", "add", other.as_str(), "dev", net.bridge.as_str()],
    );
    let conf = net.config(json!({}));
    let out = pod.call(Impl::Ours, "ADD", &conf).run();
    let err = out.expect_error(999);
    assert_eq!(
        err["msg"],
        format!(
            "failed to set bridge addr: \"{}\" already has an IP address different from {}/24",
            net.bridge,
            net.ip4(1)
        )
    );
    assert_failed_add_left_nothing(&net, &pod, &ns);
}

#[test]
fn without_nft_on_path_the_check_is_still_made_and_status_agrees() {
    if !require_root("without_nft_on_path_the_check_is_still_made_and_status_agrees") {
        return;
    }
    let ns = TestNetns::new("ms-f-nonft");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-f-nonft", 7, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    let empty = std::env::temp_dir().join(unique_name("cni-ms-path"));
    std::fs::create_dir(&empty).expect("create an empty PATH dir");
    cleanup.remove_path(&empty);
    let conf = net.config(json!({}));

    // The objects are written over netlink: no nft binary is needed.
    let result = pod
        .call(Impl::Ours, "ADD", &conf)
        .env("PATH", &empty)
        .run()
        .expect_success()
        .json();
    let (veth, mac) = veth_and_mac(&result);
    assert_eq!(pod.listing(), pod.expected_listing(&veth, &mac));
    PluginCall::new("bridge")
        .command("STATUS")
        .env("PATH", &empty)
        .config(&net.config(json!({"cniVersion": "1.1.0"})))
        .run()
        .expect_success();
    pod.call(Impl::Ours, "DEL", &conf)
        .env("PATH", &empty)
        .run()
        .expect_success();
    pod.assert_no_nft_objects();
}

// ---------------------------------------------------------------------------
// 4. Side by side with the reference.
// ---------------------------------------------------------------------------

#[test]
fn nft_objects_equal_the_references_modulo_names() {
    if !require_root("nft_objects_equal_the_references_modulo_names") {
        return;
    }
    let ns_ref = TestNetns::new("ms-sbs-ref");
    let ns_ours = TestNetns::new("ms-sbs-ours");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-sbs", 8, &mut cleanup);
    let reference = Pod::new(&ns_ref, &mut cleanup);
    let ours = Pod::new(&ns_ours, &mut cleanup);
    let conf = net.config(json!({}));

    let mut texts = Vec::new();
    let mut jsons = Vec::new();
    for (imp, pod) in [(Impl::Reference, &reference), (Impl::Ours, &ours)] {
        let out = pod.call(imp, "ADD", &conf).run().expect_success();
        let (veth, mac) = veth_and_mac(&out.json());
        let listing = pod.listing();
        assert_eq!(listing, pod.expected_listing(&veth, &mac), "{imp:?}");
        texts.push(
            listing
                .replace(&pod.id, "<id>")
                .replace(&veth, "<veth>")
                .replace(&mac, "<mac>"),
        );
        jsons.push(attachment_json(&pod.id, &veth, &mac));
    }
    assert_eq!(texts[0], texts[1], "nft list differs from the reference's");
    assert_eq!(
        jsons[0], jsons[1],
        "nft -j list differs from the reference's"
    );
    println!("{}", texts[1]);
    for (imp, pod) in [(Impl::Reference, &reference), (Impl::Ours, &ours)] {
        pod.call(imp, "DEL", &conf).run().expect_success();
        pod.assert_no_nft_objects();
    }
}

fn cross_cleanup(test: &str, k: u8, adder: Impl, deleter: Impl) {
    if !require_root(test) {
        return;
    }
    let ns = TestNetns::new("ms-cross");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-cross", k, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    let conf = net.config(json!({}));
    let out = pod.call(adder, "ADD", &conf).run().expect_success();
    let (veth, mac) = veth_and_mac(&out.json());
    assert_eq!(pod.listing(), pod.expected_listing(&veth, &mac));
    let out = pod.call(deleter, "DEL", &conf).run().expect_success();
    println!("{deleter:?} DEL stderr: {}", out.stderr_str());
    pod.assert_no_nft_objects();
    assert_eq!(links_in(&ns), vec!["lo".to_string()]);
    assert_eq!(net.leases(), BTreeMap::new());
    assert!(kernel::nft_bridge_nat().contains("\tchain PREROUTING {"));
}

#[test]
fn reference_add_then_our_del_leaves_nothing() {
    cross_cleanup(
        "reference_add_then_our_del_leaves_nothing",
        9,
        Impl::Reference,
        Impl::Ours,
    );
}

#[test]
fn our_add_then_reference_del_leaves_nothing() {
    cross_cleanup(
        "our_add_then_reference_del_leaves_nothing",
        10,
        Impl::Ours,
        Impl::Reference,
    );
}

#[test]
fn leftovers_of_the_same_attachment_are_replaced_not_duplicated() {
    if !require_root("leftovers_of_the_same_attachment_are_replaced_not_duplicated") {
        return;
    }
    let ns = TestNetns::new("ms-left");
    let mut cleanup = Cleanup::new();
    let net = Net::new("ms-left", 11, &mut cleanup);
    let pod = Pod::new(&ns, &mut cleanup);
    let conf = net.config(json!({}));
    let first = pod
        .call(Impl::Reference, "ADD", &conf)
        .run()
        .expect_success();
    let (veth, mac) = veth_and_mac(&first.json());
    // The reference's DEL without the netns releases the lease and leaks the objects.
    drop(ns);
    pod.call(Impl::Reference, "DEL", &conf)
        .run()
        .expect_success();
    assert_eq!(
        pod.listing(),
        pod.expected_listing(&veth, &mac),
        "the reference no longer leaks?"
    );

    // The same container ID and ifname again, in a new namespace: one set of objects,
    // naming the new veth and MAC.
    let ns2 = TestNetns::new("ms-left2");
    let again = Pod {
        id: pod.id.clone(),
        netns_path: ns2.path_str(),
    };
    let out = again.call(Impl::Ours, "ADD", &conf).run().expect_success();
    let (veth2, mac2) = veth_and_mac(&out.json());
    assert_ne!((&veth2, &mac2), (&veth, &mac));
    assert_eq!(again.listing(), again.expected_listing(&veth2, &mac2));
    again.call(Impl::Ours, "DEL", &conf).run().expect_success();
    again.assert_no_nft_objects();
}
