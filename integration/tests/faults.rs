//! Root fault injection, with no test hooks in the product: broken helper
//! programs put first on `PATH` (or in `CNI_PATH`), nf_tables refusing the
//! spoof check (an incompatible base chain already there), a lease store on
//! a full tmpfs, the pod's namespace deleted between ADD and DEL, and a DEL
//! that fails once and is retried. Each must leave nothing behind: no veth,
//! no lease, no masquerade chain or `POSTROUTING` jump, no spoof check chain.
//!
//! Every test has its own bridge, network, namespaces, dual-stack subnets
//! `10.<170+k>.0.0/16` and `fd<k>:cd00::/64`, and a [`Cleanup`] guard that
//! removes whatever is left, also when it panics.
//!
//! Build the plugins first: `cargo build --workspace --all-features`.

#![cfg(test)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use integration::{
    Cleanup, IpFamily, PluginCall, PrivateHost, TestNetns, TestNetwork, cmd, crio_settings, kernel,
    plugin_dir, plugin_path, require_root, unique_name, wait_until,
};
use serde_json::{Value, json};
use std::time::Duration;

integration::test_network! {
    /// One test's private dual-stack network.
    Net
}

impl Net {
    /// A fresh network; `k` (1..=40) must be unique per test.
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        Net(TestNetwork::new("fbr", tag, k, cleanup))
    }

    /// CRI-O's settings (gateway, masquerade, hairpin) on this network's
    /// subnets, with the keys of `extra` set over them.
    fn config(&self, extra: Value) -> Value {
        let subnets = [
            format!("10.{}.0.0/16", 170 + u16::from(self.k)),
            format!("fd{:02x}:cd00::/64", self.k),
        ];
        self.bridge_config("1.0.0", &subnets, &[crio_settings(), extra])
    }
}

/// One attachment: a container ID and `eth0` in its own namespace.
struct Pod {
    id: String,
    ns: TestNetns,
    network: String,
}

impl Pod {
    /// An attachment to `net`; its chains (both families) and spoof check
    /// objects are removed by `cleanup`.
    fn new(net: &Net, cleanup: &mut Cleanup) -> Pod {
        let id = unique_name("flt");
        let chain = bridge::masq::chain_name(&net.name, &id);
        cleanup.iptables_chain(false, "nat", &chain);
        cleanup.iptables_chain(true, "nat", &chain);
        let spoofed = id.clone();
        cleanup.push(format!("remove nft objects of {id}"), move || {
            kernel::remove_spoof_check(&spoofed, "eth0")
        });
        Pod {
            id,
            ns: TestNetns::new("flt"),
            network: net.name.clone(),
        }
    }

    /// A call as a runtime makes it, with `path` first on `PATH` when given.
    fn call(&self, command: &str, conf: &Value, path: Option<&Fakes>) -> PluginCall {
        let mut call = PluginCall::new("bridge")
            .command(command)
            .container_id(&self.id)
            .netns(self.ns.path())
            .ifname("eth0")
            .config(conf);
        if let Some(fakes) = path {
            call = call.env("PATH", fakes.path_first());
        }
        call
    }

    fn chain(&self) -> String {
        bridge::masq::chain_name(&self.network, &self.id)
    }

    fn veth(&self) -> String {
        kernel::derived_veth_name(&self.network, &self.id, "eth0")
    }

    /// Lines of the nat table of `family` naming this attachment's chain:
    /// the chain, its rules and the `POSTROUTING` jumps to it.
    fn rules(&self, family: IpFamily) -> Vec<String> {
        kernel::nat_rules(family, &self.chain())
    }

    /// Whether a spoof check object of this attachment is in the table.
    fn has_spoof_check(&self) -> bool {
        let table = kernel::nft_bridge_nat();
        table.contains(&format!("cni-br-iface-{}-eth0", self.id))
            || table.contains(&format!("macspoofchk-{}-eth0", self.id))
    }

    /// The lease files naming this attachment.
    fn leases(&self, net: &Net) -> Vec<String> {
        let owner = format!("{}\r\neth0", self.id);
        let leases = net.leases().into_iter();
        leases
            .filter(|(_, c)| *c == owner)
            .map(|(ip, _)| ip)
            .collect()
    }

    /// Asserts that nothing of the attachment is left, waiting for the
    /// kernel where a namespace was just deleted.
    fn assert_gone(&self, net: &Net, what: &str) {
        let veth = self.veth();
        wait_until(
            &format!("{veth} to vanish"),
            Duration::from_secs(10),
            || !kernel::link_exists(None, &veth),
        );
        assert_eq!(
            self.leases(net),
            Vec::<String>::new(),
            "{what}: leases left"
        );
        for family in [IpFamily::V4, IpFamily::V6] {
            assert_eq!(
                self.rules(family),
                Vec::<String>::new(),
                "{what}: {family:?} rules left"
            );
        }
        assert!(!self.has_spoof_check(), "{what}: spoof check left");
    }
}

/// A directory of fake helper programs, put first on `PATH` or used as
/// `CNI_PATH`; removed by the clean-up guard.
struct Fakes {
    dir: PathBuf,
}

impl Fakes {
    fn new(cleanup: &mut Cleanup) -> Fakes {
        let dir = std::env::temp_dir().join(unique_name("cni-fakes"));
        std::fs::create_dir_all(&dir).unwrap();
        cleanup.remove_path(&dir);
        Fakes { dir }
    }

    /// Installs `name` as a shell script with `body`.
    fn script(&self, name: &str, body: &str) -> &Fakes {
        let path = self.dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// `name` reads its stdin and fails, changing nothing.
    fn failing(&self, name: &str) -> &Fakes {
        self.script(
            name,
            "cat >/dev/null\necho \"$0: injected failure\" >&2\nexit 1",
        )
    }

    /// `name` fails (as `failure` says) on its first run whose arguments
    /// contain `when`, and otherwise runs `real`.
    fn failing_once(&self, name: &str, when: &str, failure: &str, real: &Path) -> &Fakes {
        let mark = self.dir.join(format!("{name}.failed"));
        let body = format!(
            "case \"$*\" in *{when}*) if [ ! -e {mark} ]; then : > {mark}; cat >/dev/null; {failure}; exit 1; fi;; esac\nexec {real} \"$@\"",
            mark = mark.display(),
            real = real.display(),
        );
        self.script(name, &body)
    }

    /// `PATH` with this directory first.
    fn path_first(&self) -> String {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        format!("{}:{path}", self.dir.display())
    }
}

/// Asserts that an ADD failed with code 999 and a message naming `helper`.
fn assert_refused_naming(out: &integration::PluginOutput, helper: &str) {
    let error = out.expect_error(999);
    let msg = error["msg"].as_str().unwrap_or_default();
    assert!(msg.contains(helper), "{msg}");
}

/// ADD with one masquerade helper failing: the other family's chain and
/// jump, the veth and the leases must all be gone.
fn failing_masquerade_helper(test: &str, k: u8, helper: &str) {
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, k, &mut cleanup);
    let pod = Pod::new(&net, &mut cleanup);
    let fakes = Fakes::new(&mut cleanup);
    fakes.failing(helper);
    let out = pod.call("ADD", &net.config(json!({})), Some(&fakes)).run();
    assert_refused_naming(&out, helper);
    pod.assert_gone(&net, &format!("ADD with a failing {helper}"));
    assert!(net.ports().is_empty(), "ports left: {:?}", net.ports());
}

#[test]
fn a_failing_ip6tables_restore_leaves_no_ipv4_masquerade() {
    failing_masquerade_helper(
        "a_failing_ip6tables_restore_leaves_no_ipv4_masquerade",
        1,
        "ip6tables-restore",
    );
}

#[test]
fn a_failing_iptables_restore_leaves_no_ipv6_masquerade() {
    failing_masquerade_helper(
        "a_failing_iptables_restore_leaves_no_ipv6_masquerade",
        2,
        "iptables-restore",
    );
}

#[test]
fn a_refused_spoof_check_leaves_no_spoof_check_and_no_masquerade() {
    let test = "a_refused_spoof_check_leaves_no_spoof_check_and_no_masquerade";
    if !require_root(test) {
        return;
    }
    // The plugin runs in a namespace standing for the host, where a `bridge
    // nat` table already has a PREROUTING chain on another hook: nf_tables
    // refuses the spoof check's transaction.
    let mut cleanup = Cleanup::new();
    let host = PrivateHost::new(&mut cleanup);
    let net = Net::new(test, 3, &mut cleanup);
    let pod = Pod::new(&net, &mut cleanup);
    host.nft(&["add", "table", "bridge", "nat"]);
    let input = "{ type filter hook input priority 0; }";
    host.nft(&["add", "chain", "bridge", "nat", "PREROUTING", input]);
    let before = host.nft(&["list", "table", "bridge", "nat"]);
    let conf = net.config(json!({"macspoofchk": true}));
    let out = host
        .bridge()
        .command("ADD")
        .container_id(&pod.id)
        .netns(pod.ns.path())
        .ifname("eth0")
        .config(&conf)
        .run();
    let error = out.expect_error(999);
    let msg = error["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("failed to setup spoof-check"), "{msg}");
    // Moving a chain to another hook: 6.x refuses with EOPNOTSUPP, 5.10
    // with EEXIST (scripts/kernel-matrix.sh).
    assert!(
        msg.contains("Operation not supported") || msg.contains("File exists"),
        "{msg}"
    );
    let nat = host.ns.exec(&["iptables-save", "-t", "nat"]);
    let nat6 = host.ns.exec(&["ip6tables-save", "-t", "nat"]);
    for saved in [nat, nat6] {
        let text = String::from_utf8_lossy(&saved.stdout).into_owned();
        assert!(!text.contains(&pod.chain()), "{text}");
    }
    let after = host.nft(&["list", "table", "bridge", "nat"]);
    assert_eq!(after, before, "the bridge nat table changed");
    assert_eq!(pod.leases(&net), Vec::<String>::new(), "leases left");
    let links = host.ns.ip(&["-br", "link"]);
    assert!(!links.contains(&pod.veth()), "{links}");
}

/// Mounts a tmpfs of `size` on `dir` until `cleanup` runs (which unmounts
/// it before the directory is removed).
fn mount_tmpfs(dir: &Path, size: &str, cleanup: &mut Cleanup) {
    std::fs::create_dir_all(dir).unwrap();
    let target = dir.display().to_string();
    cmd::run_ok(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            &target,
        ],
    );
    cleanup.command("umount", &[&target]);
}

/// Fills the file system holding `dir` with one file; returns it.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let out = cmd::run(
        "dd",
        &["if=/dev/zero", &format!("of={}", filler.display()), "bs=4k"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No space left"),
        "dd did not fill it: {stderr}"
    );
    filler
}

#[test]
fn a_full_lease_store_fails_add_and_keeps_the_existing_leases() {
    let test = "a_full_lease_store_fails_add_and_keeps_the_existing_leases";
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 4, &mut cleanup);
    mount_tmpfs(&net.data_dir, "512k", &mut cleanup);
    let conf = net.config(json!({}));
    let first = Pod::new(&net, &mut cleanup);
    first.call("ADD", &conf, None).run().expect_success();
    let before = net.store_bytes();
    assert_eq!(first.leases(&net).len(), 2, "{before:?}");

    let filler = fill(&net.data_dir);
    let second = Pod::new(&net, &mut cleanup);
    let out = second.call("ADD", &conf, None).run();
    assert!(
        !out.success(),
        "ADD on a full store succeeded: {}",
        out.describe()
    );
    let msg = out.json()["msg"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(msg.contains("no space left on device"), "{msg}");
    assert_eq!(net.store_bytes(), before, "the existing leases changed");
    second.assert_gone(&net, "ADD on a full store");

    std::fs::remove_file(filler).unwrap();
    second.call("DEL", &conf, None).run().expect_success();
    first.call("DEL", &conf, None).run().expect_success();
    first.assert_gone(&net, "DEL after the store had room again");
}

#[test]
fn the_pod_namespace_deleted_between_add_and_del_leaves_nothing() {
    let test = "the_pod_namespace_deleted_between_add_and_del_leaves_nothing";
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 5, &mut cleanup);
    let pod = Pod::new(&net, &mut cleanup);
    let conf = net.config(json!({"macspoofchk": true}));
    pod.call("ADD", &conf, None).run().expect_success();
    assert!(pod.has_spoof_check() && !pod.rules(IpFamily::V6).is_empty());
    cmd::run_ok("ip", &["netns", "del", pod.ns.name()]);
    pod.call("DEL", &conf, None).run().expect_success();
    pod.assert_gone(&net, "DEL after the namespace was deleted");
    pod.call("DEL", &conf, None).run().expect_success();
}

#[test]
fn a_del_that_fails_once_is_completed_by_its_retry() {
    let test = "a_del_that_fails_once_is_completed_by_its_retry";
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 6, &mut cleanup);
    let pod = Pod::new(&net, &mut cleanup);
    let conf = net.config(json!({"macspoofchk": true}));
    pod.call("ADD", &conf, None).run().expect_success();

    // The IPAM plugin fails its first DEL (code 11).
    let fakes = Fakes::new(&mut cleanup);
    let busy = r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"store busy"}'"#;
    fakes.failing_once("host-local", "", busy, &plugin_path("host-local"));
    let del = |pod: &Pod| {
        pod.call("DEL", &conf, Some(&fakes))
            .cni_path(fakes.dir.as_os_str())
            .run()
    };
    let first = del(&pod);
    first.expect_error(11);
    // DEL went on past the failure: the veth, masquerade and the spoof
    // check are gone; the lease waits for the retry.
    assert!(!kernel::link_exists(None, &pod.veth()), "veth left");
    assert!(pod.rules(IpFamily::V4).is_empty() && pod.rules(IpFamily::V6).is_empty());
    assert!(!pod.has_spoof_check(), "spoof check left");
    assert_eq!(pod.leases(&net).len(), 2, "the failed release released");

    del(&pod).expect_success();
    pod.assert_gone(&net, "the retried DEL");
    assert!(plugin_dir().join("host-local").is_file());
}
