//! Root tests of `bridge` with `ipMasqBackend: "nftables"`, exec'd as a
//! runtime does: ADD writes upstream's rules into the host's table
//! `inet cni_plugins_masquerade` over netlink (no helper process), CHECK
//! finds them, DEL and GC remove them (also with the namespace gone, and
//! also when the config names the other backend); with the iptables helpers
//! missing from `PATH`, an unset backend chooses nftables.
//!
//! The plugin runs in a namespace of its own test's making, which stands for
//! the host: the bridge, the table and its rules live there and go with it,
//! so the tests leave the machine's own tables alone and run in parallel.

#![cfg(test)]

use bridge::firewall::nft_masq::{TABLE, comment_prefix};
use integration::{
    Cleanup, PluginCall, PrivateHost, TestNetns, TestNetwork, cmd, plugin_path, require_root,
    unique_name,
};
use serde_json::{Value, json};

integration::test_network! {
    /// One test's private dual-stack network.
    Net
}

impl Net {
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        Net(TestNetwork::new("nbr", tag, k, cleanup))
    }

    /// CRI-O's gateway and masquerade (with the nftables backend) on
    /// `10.<190+k>.0.0/16` and `fd<k>:ee00::/64`, with the keys of `extra`
    /// set over them (`null` removes one).
    fn config(&self, extra: Value) -> Value {
        let subnets = [
            format!("10.{}.0.0/16", 190 + u16::from(self.k)),
            format!("fd{:02x}:ee00::/64", self.k),
        ];
        let settings = json!({"isGateway": true, "ipMasq": true, "ipMasqBackend": "nftables"});
        self.bridge_config("1.0.0", &subnets, &[settings, extra])
    }
}

/// `nft -a list table inet cni_plugins_masquerade` in `host`, or `""`.
fn table(host: &PrivateHost) -> String {
    host.nft(&["-a", "list", "table", "inet", TABLE])
}

/// Deletes the rules in `host` whose comment starts with `prefix`.
fn remove_rules(host: &PrivateHost, prefix: &str) {
    for line in table(host).lines().filter(|l| l.contains(prefix)) {
        if let Some(handle) = line.rsplit("# handle ").next() {
            let args = [
                "delete",
                "rule",
                "inet",
                TABLE,
                "masq_checks",
                "handle",
                handle.trim(),
            ];
            host.nft(&args);
        }
    }
}

/// One attachment, `eth0` in its own namespace.
struct Pod<'h> {
    host: &'h PrivateHost,
    id: String,
    ns: TestNetns,
    prefix: String,
}

impl<'h> Pod<'h> {
    fn new(host: &'h PrivateHost, net: &Net) -> Pod<'h> {
        let id = unique_name("nb");
        Pod {
            host,
            prefix: comment_prefix(&net.name, "eth0", &id),
            id,
            ns: TestNetns::new("nb"),
        }
    }

    fn call(&self, command: &str, conf: &Value) -> PluginCall {
        self.host
            .bridge()
            .command(command)
            .container_id(&self.id)
            .netns(self.ns.path())
            .ifname("eth0")
            .config(conf)
    }

    /// This attachment's rules, as `nft list` prints them.
    fn rules(&self) -> Vec<String> {
        table(self.host)
            .lines()
            .filter(|l| l.contains(&self.prefix))
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

/// The result's addresses, `ip/prefix`.
fn addresses(result: &Value) -> Vec<String> {
    let ips = result["ips"].as_array().cloned().unwrap_or_default();
    ips.iter()
        .filter_map(|ip| ip["address"].as_str().map(str::to_owned))
        .collect()
}

/// The rules upstream writes for `addresses` of `pod` (knftables cuts
/// comments to 128 characters).
fn expected_rules(net: &Net, pod: &Pod, addresses: &[String]) -> Vec<String> {
    let mut comment = format!(
        "{}, net: {}, if: eth0, id: {}",
        pod.prefix, net.name, pod.id
    );
    comment.truncate(128);
    addresses
        .iter()
        .map(|address| {
            let network: ipnetwork::IpNetwork = address.parse().unwrap();
            let family = if network.is_ipv4() { "ip" } else { "ip6" };
            let subnet = format!("{}/{}", network.network(), network.prefix());
            format!(
                "{family} saddr {} {family} daddr != {subnet} masquerade comment \"{comment}\"",
                network.ip()
            )
        })
        .collect()
}

/// The rules without their `# handle N` suffix.
fn without_handles(rules: &[String]) -> Vec<String> {
    rules
        .iter()
        .map(|r| r.split(" # handle").next().unwrap_or(r).to_owned())
        .collect()
}

/// One test's world: the host namespace (declared first, so it goes last),
/// the clean-up guard and the network.
fn world(test: &str, k: u8) -> Option<(PrivateHost, Cleanup, Net)> {
    if !require_root(test) {
        return None;
    }
    let mut cleanup = Cleanup::new();
    let host = PrivateHost::new(&mut cleanup);
    let net = Net::new(test, k, &mut cleanup);
    Some((host, cleanup, net))
}

#[test]
fn add_check_del_with_the_nftables_backend_dual_stack() {
    let Some((host, _cleanup, net)) =
        world("add_check_del_with_the_nftables_backend_dual_stack", 1)
    else {
        return;
    };
    let pod = Pod::new(&host, &net);
    let conf = net.config(json!({}));
    let result = pod.call("ADD", &conf).run().expect_success().json();
    let addresses = addresses(&result);
    assert_eq!(addresses.len(), 2, "{result}");
    assert_eq!(
        without_handles(&pod.rules()),
        expected_rules(&net, &pod, &addresses)
    );
    let iptables = host.ns.exec(&["iptables-save", "-t", "nat"]);
    assert!(!String::from_utf8_lossy(&iptables.stdout).contains("CNI-"));

    let mut checked = conf.clone();
    checked["prevResult"] = result;
    pod.call("CHECK", &checked).run().expect_success();
    pod.call("DEL", &checked).run().expect_success();
    assert!(pod.rules().is_empty(), "{}", table(&host));
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    pod.call("DEL", &checked).run().expect_success();

    // CHECK finds missing rules.
    let result = pod.call("ADD", &conf).run().expect_success().json();
    checked["prevResult"] = result;
    remove_rules(&host, &pod.prefix);
    pod.call("CHECK", &checked).run().expect_error(999);
    pod.call("DEL", &checked).run().expect_success();
}

#[test]
fn del_with_the_netns_gone_removes_the_nftables_rules() {
    let Some((host, _cleanup, net)) =
        world("del_with_the_netns_gone_removes_the_nftables_rules", 2)
    else {
        return;
    };
    let pod = Pod::new(&host, &net);
    let conf = net.config(json!({}));
    pod.call("ADD", &conf).run().expect_success();
    assert_eq!(pod.rules().len(), 2);
    cmd::run_ok("ip", &["netns", "del", pod.ns.name()]);
    pod.call("DEL", &conf).run().expect_success();
    assert!(pod.rules().is_empty(), "{}", table(&host));
}

#[test]
fn del_with_the_iptables_backend_removes_nftables_rules_too() {
    let test = "del_with_the_iptables_backend_removes_nftables_rules_too";
    let Some((host, _cleanup, net)) = world(test, 3) else {
        return;
    };
    let pod = Pod::new(&host, &net);
    pod.call("ADD", &net.config(json!({})))
        .run()
        .expect_success();
    let iptables = net.config(json!({"ipMasqBackend": null}));
    pod.call("DEL", &iptables).run().expect_success();
    assert!(pod.rules().is_empty(), "{}", table(&host));
}

#[test]
fn without_iptables_on_path_an_unset_backend_chooses_nftables() {
    let test = "without_iptables_on_path_an_unset_backend_chooses_nftables";
    let Some((host, mut cleanup, net)) = world(test, 4) else {
        return;
    };
    let pod = Pod::new(&host, &net);
    let empty = std::env::temp_dir().join(unique_name("empty-path"));
    std::fs::create_dir_all(&empty).unwrap();
    cleanup.remove_path(&empty);
    let conf = net.config(json!({"ipMasqBackend": null}));
    let call = |command: &str, conf: &Value| {
        pod.call(command, conf)
            .env("PATH", format!("{}:/usr/bin:/bin", empty.display()))
    };
    assert!(!empty.join("iptables-restore").exists());
    call("ADD", &conf).run().expect_success();
    assert_eq!(pod.rules().len(), 2, "{}", table(&host));
    // STATUS agrees: the backend it would use works.
    let status = net.config(json!({"ipMasqBackend": null, "cniVersion": "1.1.0"}));
    call("STATUS", &status).run().expect_success();
    call("DEL", &conf).run().expect_success();
    assert!(pod.rules().is_empty());
}

#[test]
fn gc_removes_the_nftables_rules_of_invalid_attachments_only() {
    let test = "gc_removes_the_nftables_rules_of_invalid_attachments_only";
    let Some((host, _cleanup, net)) = world(test, 5) else {
        return;
    };
    let (keep, drop) = (Pod::new(&host, &net), Pod::new(&host, &net));
    let conf = net.config(json!({}));
    for pod in [&keep, &drop] {
        pod.call("ADD", &conf).run().expect_success();
    }
    let gc = net.config(json!({
        "cniVersion": "1.1.0",
        "cni.dev/valid-attachments": [{"containerID": keep.id, "ifname": "eth0"}],
    }));
    host.bridge()
        .command("GC")
        .config(&gc)
        .run()
        .expect_success();
    assert_eq!(keep.rules().len(), 2, "{}", table(&host));
    assert!(drop.rules().is_empty(), "{}", table(&host));
    keep.call("DEL", &conf).run().expect_success();
    drop.call("DEL", &conf).run().expect_success();
}

/// The programs `call` execs, from `strace -f -e trace=execve` in the host
/// namespace.
fn execs_of(host: &PrivateHost, call: &PluginCall) -> Vec<String> {
    let log = host.dir.join("strace.log");
    let strace = format!("strace -f -qq -e trace=execve -o {}", log.display());
    let mut traced = PluginCall::with_binary(host.wrapper("traced", &strace));
    for (key, value) in call.environment() {
        traced = traced.env(key, value);
    }
    let out = traced.stdin(call.stdin_bytes().to_vec()).run();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.success(), "{}\n{text}", out.describe());
    text.lines()
        .filter(|l| l.contains("execve(\"") && !l.contains("ENOENT"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn an_add_with_nftables_and_macspoofchk_execs_nothing_but_the_ipam_plugin() {
    let test = "an_add_with_nftables_and_macspoofchk_execs_nothing_but_the_ipam_plugin";
    let Some((host, _cleanup, net)) = world(test, 6) else {
        return;
    };
    let pod = Pod::new(&host, &net);
    let conf = net.config(json!({"macspoofchk": true}));
    let execs = execs_of(&host, &pod.call("ADD", &conf));
    let bridge = plugin_path("bridge").display().to_string();
    let host_local = plugin_path("host-local").display().to_string();
    assert_eq!(execs, [bridge, host_local], "{execs:?}");
    assert_eq!(pod.rules().len(), 2, "{}", table(&host));
    let spoof = host.nft(&["list", "table", "bridge", "nat"]);
    assert!(
        spoof.contains(&format!("cni-br-iface-{}-eth0", pod.id)),
        "{spoof}"
    );
    pod.call("DEL", &conf).run().expect_success();
}

#[test]
fn concurrent_adds_on_one_network_keep_every_rule() {
    let test = "concurrent_adds_on_one_network_keep_every_rule";
    let Some((host, _cleanup, net)) = world(test, 7) else {
        return;
    };
    let pods: Vec<Pod> = (0..12).map(|_| Pod::new(&host, &net)).collect();
    let conf = net.config(json!({"macspoofchk": true}));
    std::thread::scope(|scope| {
        for pod in &pods {
            let conf = &conf;
            scope.spawn(move || pod.call("ADD", conf).run().expect_success());
        }
    });
    for pod in &pods {
        assert_eq!(pod.rules().len(), 2, "{}", table(&host));
    }
    let postrouting = table(&host).matches("goto masq_checks").count();
    assert_eq!(postrouting, 1, "{}", table(&host));
    std::thread::scope(|scope| {
        for pod in &pods {
            let conf = &conf;
            scope.spawn(move || pod.call("DEL", conf).run().expect_success());
        }
    });
    assert!(
        !table(&host).contains(" masquerade comment"),
        "{}",
        table(&host)
    );
    let spoof = host.nft(&["list", "table", "bridge", "nat"]);
    assert!(!spoof.contains("cni-br-iface"), "{spoof}");
}

#[test]
fn status_reports_a_masquerade_backend_that_cannot_work() {
    let test = "status_reports_a_masquerade_backend_that_cannot_work";
    let Some((host, mut cleanup, net)) = world(test, 8) else {
        return;
    };
    let status = |conf: &Value, call: PluginCall| {
        let out = call.command("STATUS").config(conf).run();
        let err = out.expect_error(50);
        err["msg"].as_str().unwrap_or_default().to_owned()
    };
    // nftables chosen, and nf_tables refuses: a user namespace of its own
    // has no CAP_NET_ADMIN over the host's network namespace.
    let unshared = host.script("unshared", "unshare --user", &plugin_path("bridge"));
    let conf = net.config(json!({"cniVersion": "1.1.0"}));
    let msg = status(&conf, PluginCall::with_binary(unshared));
    let expected = "ipMasqBackend is nftables but nf_tables is not usable: ";
    assert!(msg.starts_with(expected), "{msg}");
    assert!(msg.contains("Operation not permitted"), "{msg}");

    // iptables chosen, and its helpers are not in PATH.
    let empty = std::env::temp_dir().join(unique_name("empty-path"));
    std::fs::create_dir_all(&empty).unwrap();
    cleanup.remove_path(&empty);
    let conf = net.config(json!({"cniVersion": "1.1.0", "ipMasqBackend": "iptables"}));
    let path = format!("{}:/usr/bin:/bin", empty.display());
    let msg = status(&conf, host.bridge().env("PATH", path));
    assert_eq!(msg, "ipMasq is set but iptables-restore is not in PATH");

    // Both work here.
    host.bridge()
        .command("STATUS")
        .config(&conf)
        .run()
        .expect_success();
}
