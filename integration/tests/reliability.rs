//! Reliability proof (issue 9): the plugins keep their promises when a node
//! runs many ADDs and DELs at once, when the runtime is killed mid-call, and
//! when configs are hostile or broken. Every test execs the real built
//! binaries as a runtime does and asserts kernel state (`ip -j`, `iptables
//! -t nat -S` of both families) and the files of a private host-local
//! `dataDir`.
//!
//! * **Concurrency**: 50 pods attached by 50 parallel bridge processes (one
//!   bridge, dual stack, `isGateway`, `ipMasq`, `hairpinMode`), all
//!   addresses distinct, every pod pings both gateways, then 50 parallel
//!   DELs leave no veth, lease or `CNI-` chain; and 25 DELs interleaved with
//!   25 ADDs of other pods.
//! * **Crashes**: a bridge ADD is killed with SIGKILL at chosen points —
//!   after the veth exists and after IPAM (a fake `host-local` in a private
//!   `CNI_PATH` kills its parent), during masquerade setup (a fake
//!   `iptables-restore` / `ip6tables-restore` first in `PATH` kills its
//!   parent before or after applying its batch) — and at random times
//!   (sometimes the whole process group, children included). After each
//!   kill the lease store is sound, a DEL of the crashed container removes
//!   everything the ADD created, and an ADD of another container works.
//!   No test hook exists in production code.
//! * **Hostile input**: truncation of the CRI-O config at every byte offset,
//!   wrong JSON types for every field, huge and deeply nested stdin, unknown
//!   commands, missing and empty variables, forbidden container IDs and
//!   ifnames, path traversal, CIDRs of the wrong family, `CNI_NETNS` that is
//!   not a network namespace, `CNI_PATH` without a usable IPAM plugin. Each
//!   is answered by an error object with the right code, a non-zero exit,
//!   no panic, and no change to links, the `dataDir` or the nat tables.
//! * **Resource hygiene**: fakes that pause inside the call let the test read
//!   the children's inherited file descriptors (only 0, 1 and 2) and every
//!   thread's network namespace; a secret-looking environment variable is
//!   never written to disk without `CNI_TRACE`.
//!
//! The counts tried (pods, kills per point, bad inputs) are printed; run with
//! `--nocapture` to see them. Sizes: 50 + 25/25 pods; 12 kills after the
//! veth, 12 after IPAM, 12 during masquerade, 24 at random times.
//!
//! Isolation: every test has its own bridge (`unique_ifname`), network
//! name, container IDs, namespaces, temporary directories and subnets
//! `10.159.<k>.0/24` and `fd59:0:<k>::/64` (`k` unique per test), so the
//! tests run in parallel with each other and with the other test files.
//! [`Cleanup`] guards remove bridges, the `CNI-…` chains of both families
//! and the directories, and the namespaces (with the veths inside) are
//! deleted on drop, also when a test fails. Fake programs are shell scripts
//! generated into temporary directories. Build the plugins first:
//! `cargo build --workspace --all-features`.

#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration::{
    Cleanup, PluginCall, PluginOutput, TestNetns, cmd, kernel, plugin_dir, plugin_path,
    require_root, unique_ifname, unique_name,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// CRI-O's shipped config, the acceptance config (REFERENCE §9).
const CRIO_CONF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cni-types/tests/fixtures/100-crio-bridge.conf"
));

/// How long a bounded wait (a link vanishing, a fake program appearing, a
/// killed process group draining) may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The test world: a private network and pods on it.
// ---------------------------------------------------------------------------

/// One test's network: bridge, network name, subnets, private dataDir.
struct Net {
    k: u8,
    bridge: String,
    name: String,
    data_dir: PathBuf,
}

impl Net {
    /// A fresh network on `10.159.<k>.0/24` and `fd59:0:<k>::/64`; the
    /// bridge and the dataDir are removed by `cleanup`.
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        let net = Net {
            k,
            bridge: unique_ifname("rbr"),
            name: unique_name(tag),
            data_dir: std::env::temp_dir().join(unique_name("cni-rel-data")),
        };
        cleanup.link_del(None, &net.bridge);
        cleanup.remove_path(&net.data_dir);
        net
    }

    fn subnet4(&self) -> String {
        format!("10.159.{}.0/24", self.k)
    }

    fn gw4(&self) -> String {
        format!("10.159.{}.1", self.k)
    }

    fn subnet6(&self) -> String {
        format!("fd59:0:{}::/64", self.k)
    }

    fn gw6(&self) -> String {
        format!("fd59:0:{}::1", self.k)
    }

    /// The dual-stack config of the brief: CRI-O's shape with this
    /// network's bridge, subnets and dataDir, at 1.0.0.
    fn config(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": self.data_dir,
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                "ranges": [[{"subnet": self.subnet4()}], [{"subnet": self.subnet6()}]],
            },
        })
    }

    /// The text of CRI-O's `100-crio-bridge.conf` with only the names,
    /// subnets and the dataDir replaced (byte layout kept), at 1.0.0.
    fn crio_text(&self) -> String {
        let text = CRIO_CONF
            .replace("\"0.3.1\"", "\"1.0.0\"")
            .replace("\"crio\"", &format!("\"{}\"", self.name))
            .replace("\"cni0\"", &format!("\"{}\"", self.bridge))
            .replace("10.85.0.0/16", &self.subnet4())
            .replace("1100:200::1/24", &format!("{}/64", self.gw6()))
            .replace("1100:200::/24", &self.subnet6())
            .replace(
                "\"type\": \"host-local\",",
                &format!(
                    "\"type\": \"host-local\",\n        \"dataDir\": {},",
                    json!(self.data_dir)
                ),
            );
        let parsed: Value = serde_json::from_str(&text).expect("CRI-O config stays JSON");
        assert_eq!(parsed["ipam"]["dataDir"], json!(self.data_dir), "{text}");
        assert_eq!(parsed["bridge"], self.bridge.as_str(), "{text}");
        text
    }

    fn lease_dir(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }

    /// Every entry of the lease directory with its content.
    fn store(&self) -> BTreeMap<String, Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(self.lease_dir()) else {
            return BTreeMap::new();
        };
        entries
            .map(|e| e.expect("read lease dir entry").path())
            .map(|path| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, std::fs::read(&path).unwrap_or_default())
            })
            .collect()
    }

    /// Entries other than `lock` and `last_reserved_ip.*`: leases and
    /// anything else (a leftover temporary file counts).
    fn leftovers(&self) -> BTreeMap<String, String> {
        self.store()
            .into_iter()
            .filter(|(name, _)| name != "lock" && !name.starts_with("last_reserved_ip."))
            .map(|(name, content)| (name, String::from_utf8_lossy(&content).into_owned()))
            .collect()
    }

    /// Host links enslaved to this bridge.
    fn ports(&self) -> Vec<String> {
        kernel::links(None)
            .into_iter()
            .filter(|l| l["master"].as_str() == Some(self.bridge.as_str()))
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// `-S` lines of both nat tables naming this network in a comment.
    fn nat_lines(&self) -> Vec<String> {
        let marker = format!("name: \\\"{}\\\"", self.name);
        ["iptables", "ip6tables"]
            .into_iter()
            .flat_map(|program| nat_rules(program, &marker))
            .collect()
    }

    /// Nothing of any pod is left: no port, no lease (only `lock` and
    /// `last_reserved_ip.*`), no rule naming the network, no chain of `pods`.
    fn assert_empty(&self, pods: &[&Pod]) {
        wait_until("the bridge to have no ports", || self.ports().is_empty());
        assert_eq!(self.leftovers(), BTreeMap::new(), "leases left");
        assert_eq!(self.nat_lines(), Vec::<String>::new(), "nat rules left");
        for pod in pods {
            pod.assert_gone(self);
        }
    }

    /// Creates the bridge up front (as a node that already runs pods has
    /// it), for tests whose failures happen after `ensure_bridge`.
    fn create_bridge(&self) {
        cmd::ip_ok(
            None,
            &["link", "add", "name", self.bridge.as_str(), "type", "bridge"],
        );
        cmd::ip_ok(None, &["link", "set", self.bridge.as_str(), "up"]);
    }
}

/// One attachment: container ID, `eth0`, its own namespace.
struct Pod {
    id: String,
    ifname: String,
    ns: TestNetns,
    chain: String,
    network: String,
}

impl Pod {
    /// A pod in a fresh namespace; its chains (both families) are removed by
    /// `cleanup`. Declare `cleanup` before the pods: the namespaces go first.
    fn new(net: &Net, tag: &str, cleanup: &mut Cleanup) -> Pod {
        let id = unique_name(tag);
        let chain = bridge::masq::chain_name(&net.name, &id);
        cleanup.iptables_chain(false, "nat", &chain);
        cleanup.iptables_chain(true, "nat", &chain);
        Pod {
            id,
            ifname: "eth0".to_string(),
            ns: TestNetns::new(tag),
            chain,
            network: net.name.clone(),
        }
    }

    /// A new container ID in the same namespace (the previous attachment
    /// must be gone).
    fn renew(&mut self, tag: &str, cleanup: &mut Cleanup) {
        self.id = unique_name(tag);
        self.chain = bridge::masq::chain_name(&self.network, &self.id);
        cleanup.iptables_chain(false, "nat", &self.chain);
        cleanup.iptables_chain(true, "nat", &self.chain);
    }

    /// A bridge call for this pod as a runtime makes it.
    fn call(&self, command: &str, conf: &Value) -> PluginCall {
        self.call_of("bridge", command, conf.to_string())
    }

    fn call_of(&self, plugin: &str, command: &str, stdin: impl Into<Vec<u8>>) -> PluginCall {
        PluginCall::new(plugin)
            .command(command)
            .container_id(&self.id)
            .netns(self.ns.path())
            .ifname(&self.ifname)
            .stdin(stdin)
    }

    fn ns_name(&self) -> Option<&str> {
        Some(self.ns.name())
    }

    /// The host veth name bridge derives for this attachment first.
    fn derived_veth(&self) -> String {
        bridge_veth_name(&self.network, &self.id, &self.ifname)
    }

    fn owner(&self) -> String {
        format!("{}\r\n{}", self.id, self.ifname)
    }

    fn has_lease(&self, net: &Net) -> bool {
        net.leftovers().values().any(|c| c.trim() == self.owner())
    }

    fn rules(&self) -> Vec<String> {
        ["iptables", "ip6tables"]
            .into_iter()
            .flat_map(|program| nat_rules(program, &self.chain))
            .collect()
    }

    /// No veth, no container interface, no lease, no chain or jump.
    fn assert_gone(&self, net: &Net) {
        let veth = self.derived_veth();
        wait_until(&format!("host veth {veth} to vanish"), || {
            !kernel::link_exists(None, &veth)
        });
        assert_eq!(
            link_names(self.ns_name()),
            ["lo"],
            "links left in {}",
            self.ns.name()
        );
        assert!(!self.has_lease(net), "lease of {} left", self.id);
        assert_eq!(self.rules(), Vec::<String>::new(), "rules of {}", self.id);
    }
}

// ---------------------------------------------------------------------------
// Observers and small helpers.
// ---------------------------------------------------------------------------

/// `veth` + the first 8 hex chars of sha512(`network/id/ifname`), computed
/// with coreutils, independently of the plugin.
fn bridge_veth_name(network: &str, id: &str, ifname: &str) -> String {
    let mut child = Command::new("sha512sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha512sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{network}/{id}/{ifname}").as_bytes())
        .expect("write to sha512sum");
    let out = child.wait_with_output().expect("sha512sum output");
    format!("veth{}", &String::from_utf8_lossy(&out.stdout)[..8])
}

/// Lines of `<program> -t nat -S` containing `needle`.
fn nat_rules(program: &str, needle: &str) -> Vec<String> {
    cmd::run_ok(program, &["-w", "-t", "nat", "-S"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

fn link_names(ns: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = kernel::links(ns)
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The non-link-local addresses of a link, as `ip/prefix`.
fn global_addrs(ns: Option<&str>, ifname: &str) -> BTreeSet<String> {
    kernel::addrs(ns, ifname)
        .iter()
        .filter(|a| a["scope"] != "link")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect()
}

/// Waits (bounded by [`WAIT`]) until `done`; fails the test otherwise.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < WAIT,
            "timed out after {WAIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ping -c1 -W1 dst` from `ns`, up to `attempts` times.
fn ping(ns: &TestNetns, dst: &str, attempts: u32) -> bool {
    (0..attempts).any(|_| ns.exec(&["ping", "-c1", "-W1", dst]).status.success())
}

/// Runs every call at once (one thread and one process each) and returns
/// the outputs in order.
fn in_parallel(calls: Vec<PluginCall>) -> Vec<PluginOutput> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = calls
            .iter()
            .map(|call| scope.spawn(move || call.run()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("plugin thread panicked"))
            .collect()
    })
}

/// The result's addresses (`ip/prefix`).
fn result_addrs(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A small xorshift generator (no dependency); the seed is printed.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------
// 1. Concurrency.
// ---------------------------------------------------------------------------

/// ADDs `pods` in parallel; requires success, two addresses each, in the
/// subnets and on the container interface; returns every address.
fn add_all(net: &Net, pods: &[&Pod]) -> Vec<String> {
    let conf = net.config();
    let outs = in_parallel(pods.iter().map(|p| p.call("ADD", &conf)).collect());
    let mut all = Vec::new();
    for (pod, out) in pods.iter().zip(&outs) {
        assert!(out.success(), "ADD of {} failed\n{}", pod.id, out.describe());
        let addrs = result_addrs(&out.json());
        assert_eq!(addrs.len(), 2, "{}", out.describe());
        let prefix4 = format!("10.159.{}.", net.k);
        let prefix6 = format!("fd59:0:{}::", net.k);
        assert!(addrs[0].starts_with(&prefix4), "{addrs:?}");
        assert!(addrs[1].starts_with(&prefix6), "{addrs:?}");
        let on_link = global_addrs(pod.ns_name(), &pod.ifname);
        assert_eq!(
            on_link,
            addrs.iter().cloned().collect::<BTreeSet<_>>(),
            "addresses on {} in {}",
            pod.ifname,
            pod.ns.name()
        );
        all.extend(addrs);
    }
    all
}

/// Every pod pings both gateways (in parallel).
fn ping_gateways(net: &Net, pods: &[&Pod]) {
    let (gw4, gw6) = (net.gw4(), net.gw6());
    std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .map(|pod| {
                let (gw4, gw6) = (&gw4, &gw6);
                scope.spawn(move || (ping(&pod.ns, gw4, 5), ping(&pod.ns, gw6, 5)))
            })
            .collect();
        for (pod, handle) in pods.iter().zip(handles) {
            let (v4, v6) = handle.join().expect("ping thread panicked");
            assert!(v4, "{} cannot ping {gw4}", pod.ns.name());
            assert!(v6, "{} cannot ping {gw6}", pod.ns.name());
        }
    });
}

/// DELs `pods` in parallel; requires success.
fn del_all(net: &Net, pods: &[&Pod]) {
    let conf = net.config();
    let outs = in_parallel(pods.iter().map(|p| p.call("DEL", &conf)).collect());
    for (pod, out) in pods.iter().zip(&outs) {
        assert!(out.success(), "DEL of {} failed\n{}", pod.id, out.describe());
    }
}

fn assert_distinct(addrs: &[String]) {
    let unique: BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(unique.len(), addrs.len(), "duplicate addresses: {addrs:?}");
}

#[test]
fn fifty_parallel_adds_then_fifty_parallel_dels_leave_nothing() {
    if !require_root("fifty_parallel_adds_then_fifty_parallel_dels_leave_nothing") {
        return;
    }
    let start = Instant::now();
    let mut cleanup = Cleanup::new();
    let net = Net::new("rel-par", 1, &mut cleanup);
    let pods: Vec<Pod> = (0..50)
        .map(|_| Pod::new(&net, "rel-par", &mut cleanup))
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();

    let addrs = add_all(&net, &refs);
    assert_eq!(addrs.len(), 100);
    assert_distinct(&addrs);
    assert_eq!(net.ports().len(), 50, "ports on the bridge");
    assert_eq!(net.leftovers().len(), 100, "lease files");
    for pod in &pods {
        assert_eq!(pod.rules().len(), 2 * 4, "rules of {}", pod.id);
    }
    ping_gateways(&net, &refs);

    del_all(&net, &refs);
    net.assert_empty(&refs);
    println!(
        "concurrency: 50 parallel ADDs, 100 distinct addresses, 100 pings, 50 parallel DELs ({:.1}s)",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn dels_interleaved_with_adds_of_other_pods_leave_nothing() {
    if !require_root("dels_interleaved_with_adds_of_other_pods_leave_nothing") {
        return;
    }
    let start = Instant::now();
    let mut cleanup = Cleanup::new();
    let net = Net::new("rel-mix", 2, &mut cleanup);
    let old: Vec<Pod> = (0..25)
        .map(|_| Pod::new(&net, "rel-old", &mut cleanup))
        .collect();
    let new: Vec<Pod> = (0..25)
        .map(|_| Pod::new(&net, "rel-new", &mut cleanup))
        .collect();
    let old_refs: Vec<&Pod> = old.iter().collect();
    let new_refs: Vec<&Pod> = new.iter().collect();
    assert_distinct(&add_all(&net, &old_refs));

    // One batch: DEL of every old pod and ADD of every new one, alternating.
    let conf = net.config();
    let mut calls = Vec::new();
    for (o, n) in old.iter().zip(&new) {
        calls.push(o.call("DEL", &conf));
        calls.push(n.call("ADD", &conf));
    }
    let outs = in_parallel(calls);
    let mut new_addrs = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        assert!(out.success(), "call {i} failed\n{}", out.describe());
        if i % 2 == 1 {
            new_addrs.extend(result_addrs(&out.json()));
        }
    }
    assert_eq!(new_addrs.len(), 50);
    assert_distinct(&new_addrs);
    for pod in &old {
        pod.assert_gone(&net);
    }
    for pod in &new {
        let on_link = global_addrs(pod.ns_name(), &pod.ifname);
        assert_eq!(on_link.len(), 2, "addresses of {}: {on_link:?}", pod.id);
        assert!(pod.has_lease(&net), "no lease for {}", pod.id);
        assert_eq!(pod.rules().len(), 8, "rules of {}", pod.id);
    }
    assert_eq!(net.ports().len(), 25, "ports on the bridge");
    assert_eq!(net.leftovers().len(), 50, "lease files");
    ping_gateways(&net, &new_refs);

    del_all(&net, &new_refs);
    let all: Vec<&Pod> = old.iter().chain(&new).collect();
    net.assert_empty(&all);
    println!(
        "concurrency: 25 ADDs, then 25 DELs interleaved with 25 ADDs of other pods, 50 pings, 25 DELs ({:.1}s)",
        start.elapsed().as_secs_f64()
    );
}
