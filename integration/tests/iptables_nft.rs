//! Root tests of the default (iptables) masquerade backend on an
//! iptables-nft node, where `bridge` writes the reference's rules over
//! nf_tables netlink instead of running `iptables-restore`:
//! - the kernel then holds exactly what the reference plugin and
//!   `iptables-restore` make for the same attachment (`iptables-save` and
//!   `nft --debug=netlink` agree line for line);
//! - the reference's DEL removes our rules and ours removes the
//!   reference's, also with the namespace gone;
//! - an ADD execs nothing but the IPAM plugin;
//! - on an iptables-legacy node the rules still go through
//!   `iptables-restore`, into the legacy tables.
//!
//! Each plugin runs in a namespace standing for the host ([`PrivateHost`]),
//! so the tests leave the machine's tables alone and run in parallel.

#![cfg(test)]

use std::path::{Path, PathBuf};

use integration::{
    Cleanup, PluginCall, PrivateHost, TestNetns, cmd, plugin_path, require_root, unique_name,
};
use serde_json::{Value, json};

/// The `nat` table's state in `host` as `iptables-save` (both families)
/// and `nft --debug=netlink` print it, without the dates, handles and
/// `nft`'s warning comments.
fn nat_state(host: &PrivateHost) -> String {
    let mut state = String::new();
    for save in ["iptables-save", "ip6tables-save"] {
        let out = host.ns.exec(&[save, "-t", "nat"]);
        state.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    for family in ["ip", "ip6"] {
        state.push_str(&host.nft(&["--debug=netlink", "list", "table", family, "nat"]));
    }
    state
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(without_handle)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ip nat CNI-… 5 2` (a rule's header in `--debug=netlink` output, with
/// its handle and position) without the numbers.
fn without_handle(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    if words.len() > 3 && (words[0] == "ip" || words[0] == "ip6") && words[1] == "nat" {
        return words[..3].join(" ");
    }
    line.to_owned()
}

/// CRI-O's network (`crio`, 0.3.1) on private subnets, its leases in
/// `data_dir`.
fn crio_config(bridge: &str, data_dir: &Path) -> Value {
    json!({
        "cniVersion": "0.3.1",
        "name": "crio",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "1100:200::1/24"}],
            "ranges": [[{"subnet": "10.85.0.0/16"}], [{"subnet": "1100:200::/24"}]],
            "dataDir": data_dir,
        },
    })
}

/// One host with one pod namespace and the call that attaches it.
struct Attachment {
    host: PrivateHost,
    pod: TestNetns,
    conf: Value,
}

impl Attachment {
    fn new(cleanup: &mut Cleanup) -> Attachment {
        let host = PrivateHost::new(cleanup);
        let conf = crio_config("cni0", &host.dir.join("leases"));
        Attachment {
            host,
            pod: TestNetns::new("xt"),
            conf,
        }
    }

    /// `command` for container `id` through `bridge` (ours or the
    /// reference's, from [`PrivateHost`]).
    fn call(&self, bridge: PluginCall, command: &str, id: &str) -> PluginCall {
        bridge
            .command(command)
            .container_id(id)
            .netns(self.pod.path())
            .ifname("eth0")
            .config(&self.conf)
    }

    /// Whether any `CNI-` chain or jump is left in either family.
    fn has_rules(&self) -> bool {
        nat_state(&self.host).contains("CNI-")
    }
}

/// The iptables programs `bridge` may look up in `PATH`.
const IPTABLES_PROGRAMS: [&str; 4] = [
    "iptables-restore",
    "ip6tables-restore",
    "iptables",
    "ip6tables",
];

/// A fresh directory (removed by `cleanup`) with an entry per program of
/// [`IPTABLES_PROGRAMS`], each made by `make(dir, program)`.
fn iptables_dir(cleanup: &mut Cleanup, tag: &str, make: impl Fn(&Path, &str)) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(tag));
    std::fs::create_dir_all(&dir).unwrap();
    cleanup.remove_path(&dir);
    for program in IPTABLES_PROGRAMS {
        make(&dir, program);
    }
    dir
}

/// A directory whose iptables programs are scripts running the node's:
/// what `bridge` finds there is not iptables-nft's multi-binary, so it runs
/// the helpers.
fn helper_path(cleanup: &mut Cleanup) -> PathBuf {
    iptables_dir(cleanup, "xt-helpers", |dir, program| {
        let path = dir.join(program);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nexec /usr/sbin/{program} \"$@\"\n"),
        )
        .unwrap();
        cmd::run_ok("chmod", &["755", &path.display().to_string()]);
    })
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> String {
    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.display())
}

/// Whether this node's iptables is iptables-nft (else these tests have
/// nothing to prove here).
fn iptables_nft_node(test: &str) -> bool {
    let version = cmd::run("iptables", &["-V"]);
    let nft = String::from_utf8_lossy(&version.stdout).contains("nf_tables");
    if !nft {
        eprintln!("{test}: skipped, iptables here is not iptables-nft");
    }
    nft
}

#[test]
fn an_add_leaves_what_the_reference_and_iptables_restore_leave() {
    let test = "an_add_leaves_what_the_reference_and_iptables_restore_leave";
    if !require_root(test) || !iptables_nft_node(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let helpers = helper_path(&mut cleanup);
    let (ours, restore, reference) = (
        Attachment::new(&mut cleanup),
        Attachment::new(&mut cleanup),
        Attachment::new(&mut cleanup),
    );
    let id = unique_name("xt");
    ours.call(ours.host.bridge(), "ADD", &id)
        .run()
        .expect_success();
    let via_helpers = restore.host.bridge().env("PATH", path_with(&helpers));
    restore.call(via_helpers, "ADD", &id).run().expect_success();
    let bridge = reference.host.reference_bridge();
    reference.call(bridge, "ADD", &id).run().expect_success();

    let state = nat_state(&ours.host);
    assert!(state.contains("-j MASQUERADE"), "{state}");
    assert!(
        state.contains("[ target name MASQUERADE rev 0 ]"),
        "{state}"
    );
    assert_eq!(state, nat_state(&restore.host), "ours vs iptables-restore");
    assert_eq!(state, nat_state(&reference.host), "ours vs the reference");

    for attachment in [&ours, &restore] {
        let bridge = attachment.host.bridge().env("PATH", path_with(&helpers));
        attachment.call(bridge, "DEL", &id).run().expect_success();
        assert!(!attachment.has_rules(), "{}", nat_state(&attachment.host));
    }
    let bridge = reference.host.reference_bridge();
    reference.call(bridge, "DEL", &id).run().expect_success();
}

#[test]
fn the_reference_del_removes_our_rules_and_ours_removes_its() {
    let test = "the_reference_del_removes_our_rules_and_ours_removes_its";
    if !require_root(test) || !iptables_nft_node(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let node = Attachment::new(&mut cleanup);
    let (ours, reference) = (|| node.host.bridge(), || node.host.reference_bridge());

    let id = unique_name("xt");
    node.call(ours(), "ADD", &id).run().expect_success();
    assert!(node.has_rules());
    node.call(reference(), "DEL", &id).run().expect_success();
    assert!(!node.has_rules(), "{}", nat_state(&node.host));

    let id = unique_name("xt");
    node.call(reference(), "ADD", &id).run().expect_success();
    assert!(node.has_rules());
    node.call(ours(), "DEL", &id).run().expect_success();
    assert!(!node.has_rules(), "{}", nat_state(&node.host));

    // With the namespace gone the reference's DEL leaks its rules; ours
    // removes them.
    let id = unique_name("xt");
    node.call(reference(), "ADD", &id).run().expect_success();
    cmd::run_ok("ip", &["netns", "del", node.pod.name()]);
    node.call(ours(), "DEL", &id).run().expect_success();
    assert!(!node.has_rules(), "{}", nat_state(&node.host));
}

#[test]
fn an_add_on_an_iptables_nft_node_execs_nothing_but_the_ipam_plugin() {
    let test = "an_add_on_an_iptables_nft_node_execs_nothing_but_the_ipam_plugin";
    if !require_root(test) || !iptables_nft_node(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let node = Attachment::new(&mut cleanup);
    let id = unique_name("xt");
    let log = node.host.dir.join("strace.log");
    let strace = format!("strace -f -qq -e trace=execve -o {}", log.display());
    let traced = PluginCall::with_binary(node.host.wrapper("traced", &strace))
        .cni_path(integration::plugin_dir());
    node.call(traced, "ADD", &id).run().expect_success();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let execs: Vec<String> = text
        .lines()
        .filter(|l| l.contains("execve(\"") && !l.contains("ENOENT"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect();
    let expected =
        [plugin_path("bridge"), plugin_path("host-local")].map(|p| p.display().to_string());
    assert_eq!(execs, expected, "{text}");
    assert!(node.has_rules(), "{}", nat_state(&node.host));
    node.call(node.host.bridge(), "DEL", &id)
        .run()
        .expect_success();
    assert!(!node.has_rules());
}

#[test]
fn a_legacy_node_still_programs_the_legacy_tables_through_iptables_restore() {
    let test = "a_legacy_node_still_programs_the_legacy_tables_through_iptables_restore";
    let legacy = Path::new("/usr/sbin/xtables-legacy-multi");
    if !require_root(test) {
        return;
    }
    if !legacy.is_file() {
        eprintln!("{test}: skipped, no {}", legacy.display());
        return;
    }
    let mut cleanup = Cleanup::new();
    let dir = iptables_dir(&mut cleanup, "xt-legacy", |dir, program| {
        std::os::unix::fs::symlink(legacy, dir.join(program)).unwrap();
    });
    let node = Attachment::new(&mut cleanup);
    let id = unique_name("xt");
    let bridge = || node.host.bridge().env("PATH", path_with(&dir));
    node.call(bridge(), "ADD", &id).run().expect_success();
    let saved = |family_save: &str| {
        let out = node.host.ns.exec(&[family_save, "-t", "nat"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let chain = bridge::masq::chain_name("crio", &id);
    assert!(saved("iptables-legacy-save").contains(&chain));
    assert!(saved("ip6tables-legacy-save").contains(&chain));
    assert!(
        !node.has_rules(),
        "nothing in nf_tables: {}",
        nat_state(&node.host)
    );
    node.call(bridge(), "DEL", &id).run().expect_success();
    assert!(!saved("iptables-legacy-save").contains("CNI-"));
    assert!(!saved("ip6tables-legacy-save").contains("CNI-"));
}

/// The `POSTROUTING` rules of `host` in `family_save` output that jump to
/// container `id`'s chain.
fn jumps_to(host: &PrivateHost, family_save: &str, id: &str) -> usize {
    let chain = bridge::masq::chain_name("crio", id);
    let out = host.ns.exec(&[family_save, "-t", "nat"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A POSTROUTING") && l.ends_with(&format!("-j {chain}")))
        .count()
}

#[test]
fn concurrent_and_repeated_adds_keep_one_jump_per_address_and_gc_keeps_the_valid() {
    let test = "concurrent_and_repeated_adds_keep_one_jump_per_address_and_gc_keeps_the_valid";
    if !require_root(test) || !iptables_nft_node(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let node = Attachment::new(&mut cleanup);
    let pods: Vec<(String, TestNetns)> = (0..10)
        .map(|_| (unique_name("xt"), TestNetns::new("xt")))
        .collect();
    let call = |command: &str, (id, ns): &(String, TestNetns)| {
        node.host
            .bridge()
            .command(command)
            .container_id(id)
            .netns(ns.path())
            .ifname("eth0")
            .config(&node.conf)
    };
    // Every ADD starts on a node without table `nat`: they race to create it.
    std::thread::scope(|scope| {
        for pod in &pods {
            scope.spawn(move || call("ADD", pod).run().expect_success());
        }
    });
    for (id, _) in &pods {
        assert_eq!(
            jumps_to(&node.host, "iptables-save", id),
            1,
            "{}",
            nat_state(&node.host)
        );
        assert_eq!(jumps_to(&node.host, "ip6tables-save", id), 1);
    }
    // An ADD over rules left behind (the interface and leases gone, the
    // rules kept) replaces the container's rules.
    pods[0].1.ip(&["link", "del", "eth0"]);
    let leases = node.host.dir.join("leases").join("crio");
    for lease in std::fs::read_dir(&leases).unwrap().flatten() {
        let owner = std::fs::read_to_string(lease.path()).unwrap_or_default();
        if owner.starts_with(&pods[0].0) {
            std::fs::remove_file(lease.path()).unwrap();
        }
    }
    call("ADD", &pods[0]).run().expect_success();
    assert_eq!(jumps_to(&node.host, "iptables-save", &pods[0].0), 1);
    let chain = bridge::masq::chain_name("crio", &pods[0].0);
    let rules = nat_state(&node.host)
        .matches(&format!("-A {chain} "))
        .count();
    assert_eq!(rules, 4, "two per family: {}", nat_state(&node.host));

    let gc = json!({
        "cniVersion": "1.1.0",
        "name": "crio",
        "type": "bridge",
        "bridge": "cni0",
        "ipMasq": true,
        "ipam": node.conf["ipam"],
        "cni.dev/valid-attachments": [{"containerID": pods[1].0, "ifname": "eth0"}],
    });
    node.host
        .bridge()
        .command("GC")
        .config(&gc)
        .run()
        .expect_success();
    assert_eq!(jumps_to(&node.host, "iptables-save", &pods[1].0), 1);
    for (id, _) in pods.iter().filter(|(id, _)| *id != pods[1].0) {
        assert_eq!(
            jumps_to(&node.host, "iptables-save", id),
            0,
            "{}",
            nat_state(&node.host)
        );
        assert_eq!(jumps_to(&node.host, "ip6tables-save", id), 0);
    }
    std::thread::scope(|scope| {
        for pod in &pods {
            scope.spawn(move || call("DEL", pod).run().expect_success());
        }
    });
    assert!(!node.has_rules(), "{}", nat_state(&node.host));
}
