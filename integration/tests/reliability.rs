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

use integration::network::is_bookkeeping;
use integration::{
    Cleanup, IpFamily, PluginCall, PluginOutput, TestNetns, TestNetwork, cmd, kernel, plugin_dir,
    plugin_path, require_root, unique_name, wait_until,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// CRI-O's shipped config, `100-crio-bridge.conf`: the acceptance config.
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

integration::test_network! {
    /// One test's network (bridge, network name, private dataDir, lease files)
    /// with this file's subnets and configs.
    Net
}

impl Net {
    /// A fresh network on `10.159.<k>.0/24` and `fd59:0:<k>::/64`; the
    /// bridge and the dataDir are removed by `cleanup`.
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        Net(TestNetwork::new("rbr", tag, k, cleanup))
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

    /// Entries other than `lock` and `last_reserved_ip.*`: leases and
    /// anything else (a leftover temporary file counts).
    fn leftovers(&self) -> BTreeMap<String, String> {
        self.store_bytes()
            .into_iter()
            .filter(|(name, _)| !is_bookkeeping(name))
            .map(|(name, content)| (name, String::from_utf8_lossy(&content).into_owned()))
            .collect()
    }

    /// `-S` lines of both nat tables naming this network in a comment.
    fn nat_lines(&self) -> Vec<String> {
        nat_rules_of_both(&format!("name: \\\"{}\\\"", self.name))
    }

    /// Nothing of any pod is left: no port, no lease (only `lock` and
    /// `last_reserved_ip.*`), no rule naming the network, no chain of `pods`.
    fn assert_empty(&self, pods: &[&Pod]) {
        wait_until("the bridge to have no ports", WAIT, || {
            self.ports().is_empty()
        });
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
            &[
                "link",
                "add",
                "name",
                self.bridge.as_str(),
                "type",
                "bridge",
            ],
        );
        cmd::ip_ok(None, &["link", "set", self.bridge.as_str(), "up"]);
    }
}

/// The world of most tests here: one network, one pod on it, and the guard.
/// Fields drop in order: the pod's namespace goes first, the guard last.
struct World {
    pod: Pod,
    net: Net,
    cleanup: Cleanup,
}

impl World {
    /// Network `k` and a pod tagged `tag` for `test`; `None` (the test is
    /// skipped) without root.
    fn new(test: &str, k: u8, tag: &str) -> Option<World> {
        if !require_root(test) {
            return None;
        }
        let mut cleanup = Cleanup::new();
        let net = Net::new(test, k, &mut cleanup);
        let pod = Pod::new(&net, tag, &mut cleanup);
        Some(World { pod, net, cleanup })
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

    /// `n` pods tagged `tag`, as [`Pod::new`] makes them.
    fn many(net: &Net, tag: &str, n: usize, cleanup: &mut Cleanup) -> Vec<Pod> {
        (0..n).map(|_| Pod::new(net, tag, cleanup)).collect()
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
        kernel::derived_veth_name(&self.network, &self.id, &self.ifname)
    }

    fn owner(&self) -> String {
        format!("{}\r\n{}", self.id, self.ifname)
    }

    fn has_lease(&self, net: &Net) -> bool {
        net.leftovers().values().any(|c| c.trim() == self.owner())
    }

    fn rules(&self) -> Vec<String> {
        nat_rules_of_both(&self.chain)
    }

    /// No veth, no container interface, no lease, no chain or jump.
    fn assert_gone(&self, net: &Net) {
        let veth = self.derived_veth();
        wait_until(&format!("host veth {veth} to vanish"), WAIT, || {
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

/// Lines of both nat tables (`iptables`, then `ip6tables`) containing `needle`.
fn nat_rules_of_both(needle: &str) -> Vec<String> {
    [IpFamily::V4, IpFamily::V6]
        .into_iter()
        .flat_map(|family| kernel::nat_rules(family, needle))
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
        assert!(
            out.success(),
            "ADD of {} failed\n{}",
            pod.id,
            out.describe()
        );
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
                scope.spawn(move || (pod.ns.ping(gw4, 5), pod.ns.ping(gw6, 5)))
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
        assert!(
            out.success(),
            "DEL of {} failed\n{}",
            pod.id,
            out.describe()
        );
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
    let pods = Pod::many(&net, "rel-par", 50, &mut cleanup);
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
    let old = Pod::many(&net, "rel-old", 25, &mut cleanup);
    let new = Pod::many(&net, "rel-new", 25, &mut cleanup);
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

// ---------------------------------------------------------------------------
// 2. Crashes.
// ---------------------------------------------------------------------------

/// A private directory of generated programs (shell scripts), removed on drop.
struct Fakes {
    dir: tempfile::TempDir,
}

impl Fakes {
    fn new(tag: &str) -> Fakes {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cni-rel-{tag}-"))
            .tempdir()
            .expect("create a temporary directory");
        Fakes { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Installs `body` as the executable `name`. The file is written by a
    /// child process (`install`), so no thread of this test binary ever
    /// holds it open for writing and no exec of it fails with ETXTBSY.
    fn install(&self, name: &str, body: &str) -> PathBuf {
        let source = self.file(&format!(".{name}.src"));
        std::fs::write(&source, format!("#!/bin/sh\n{body}\n")).expect("write script source");
        let target = self.file(name);
        cmd::run_ok(
            "install",
            &[
                "-m".as_ref(),
                "0755".as_ref(),
                source.as_os_str(),
                target.as_os_str(),
            ],
        );
        target
    }

    /// Lines appended to the record file `name` by the fakes.
    fn record(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.file(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// The absolute path of `program` in the test's `PATH`.
fn which(program: &str) -> String {
    let out = cmd::run_ok("sh", &["-c", &format!("command -v {program}")]);
    let path = out.trim().to_string();
    assert!(
        path.starts_with('/'),
        "{program} not found in PATH: {out:?}"
    );
    path
}

/// A plugin process started in its own process group, so that whatever it
/// spawned can be waited for (or killed) as a whole.
struct Spawned {
    child: Option<Child>,
    pgid: Pid,
    started: Instant,
}

impl Drop for Spawned {
    /// A test that fails while the plugin runs (or is paused by a fake)
    /// kills the whole group, so nothing finishes after the clean-up.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(self.pgid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Spawned {
    /// Starts the binary of `plugin` with `call`'s environment and `stdin`.
    fn start(plugin: &str, call: &PluginCall, stdin: &[u8]) -> Spawned {
        let mut child = Command::new(plugin_path(plugin))
            .env_clear()
            .envs(call.environment())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn the plugin");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        if let Some(mut pipe) = child.stdin.take() {
            // A config is far below the pipe buffer; a dead plugin is fine.
            let _ = pipe.write_all(stdin);
        }
        Spawned {
            child: Some(child),
            pgid: Pid::from_raw(pid),
            started: Instant::now(),
        }
    }

    fn pid(&self) -> Pid {
        self.pgid
    }

    /// Waits for the plugin and then for every process it left in its
    /// group (orphaned children finish on their own, as on a node).
    fn finish(mut self) -> (ExitStatus, String, Duration) {
        let pgid = self.pgid;
        let started = self.started;
        let child = self.child.take().expect("not finished yet");
        let out = child.wait_with_output().expect("wait for the plugin");
        let took = started.elapsed();
        wait_until(&format!("process group {pgid} to drain"), WAIT, || {
            killpg(pgid, None).is_err()
        });
        let text = format!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text, took)
    }
}

fn was_killed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    status.signal() == Some(Signal::SIGKILL as i32)
}

/// Whether a writer's temporary file (`.tmp-<name>-<pid>`) may be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Temps {
    /// Right after a kill: the writer may have died between writing its
    /// temporary file and linking it into place. Such a file is no lease,
    /// blocks no address, and the next lock holder's scan removes it.
    MayRemain,
    /// After a later call has scanned the store.
    Gone,
}

/// The lease directory is sound: only `lock`, `last_reserved_ip.<N>`
/// holding an address, and leases named by an address whose content is
/// exactly `<id>\r\n<ifname>` (never empty, never half-written, no other
/// file, and no leftover temporary one unless `temps` allows it).
fn assert_store_sound(net: &Net, context: &str, temps: Temps) {
    for (name, content) in net.store_bytes() {
        let text = String::from_utf8_lossy(&content);
        if name == "lock" || (temps == Temps::MayRemain && name.starts_with(".tmp-")) {
            continue;
        }
        if let Some(index) = name.strip_prefix("last_reserved_ip.") {
            assert!(index.parse::<usize>().is_ok(), "{context}: file {name}");
            assert!(
                text.parse::<IpAddr>().is_ok(),
                "{context}: {name} holds {text:?}"
            );
            continue;
        }
        assert!(
            name.parse::<IpAddr>().is_ok(),
            "{context}: unexpected file {name} ({text:?}) in the lease directory"
        );
        let (id, ifname) = text
            .split_once("\r\n")
            .unwrap_or_else(|| panic!("{context}: lease {name} holds {text:?}"));
        assert!(
            !id.is_empty() && id.trim() == id && ifname == "eth0",
            "{context}: lease {name} holds {text:?}"
        );
    }
}

/// What a killed ADD had done, seen before the DEL.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Left {
    veth: bool,
    lease: bool,
    chain: bool,
}

/// The promises after a crash of `pod`'s ADD: a sound store, a DEL that
/// succeeds and removes everything, and a working ADD (and DEL) of `other`.
fn recover(net: &Net, pod: &Pod, other: &Pod, context: &str) -> Left {
    let left = Left {
        veth: kernel::link_exists(None, &pod.derived_veth()),
        lease: pod.has_lease(net),
        chain: !pod.rules().is_empty(),
    };
    assert_store_sound(net, context, Temps::MayRemain);
    let conf = net.config();
    let out = pod.call("DEL", &conf).run();
    assert!(out.success(), "{context}: DEL failed\n{}", out.describe());
    pod.assert_gone(net);
    let out = other.call("ADD", &conf).run();
    assert!(
        out.success(),
        "{context}: ADD of another container failed\n{}",
        out.describe()
    );
    assert_eq!(
        global_addrs(other.ns_name(), &other.ifname).len(),
        2,
        "{context}: addresses of the other container"
    );
    let out = other.call("DEL", &conf).run();
    assert!(
        out.success(),
        "{context}: DEL of the other container\n{}",
        out.describe()
    );
    other.assert_gone(net);
    assert_eq!(net.leftovers(), BTreeMap::new(), "{context}: files left");
    assert_store_sound(net, context, Temps::Gone);
    left
}

/// A deterministic crash point: fakes that kill their parent (bridge), put
/// in front of `CNI_PATH` and/or `PATH`. Each kill appends one line to the
/// record file `killed`; `RELIABILITY_CRASH` (inherited by every child of
/// bridge) selects the mode of iteration `i` from `modes`.
struct CrashPoint {
    fakes: Fakes,
    cni_path: bool,
    path: bool,
    modes: Vec<&'static str>,
}

impl CrashPoint {
    /// A fake `host-local` first in `CNI_PATH` (fakes tagged `tag`), its
    /// body made by `script` from the real host-local's path and the record
    /// file's.
    fn in_ipam(tag: &str, script: impl FnOnce(&str, &str) -> String) -> CrashPoint {
        let fakes = Fakes::new(tag);
        let real = plugin_path("host-local").display().to_string();
        let killed = fakes.file("killed").display().to_string();
        fakes.install("host-local", &script(&real, &killed));
        CrashPoint {
            fakes,
            cni_path: true,
            path: false,
            modes: Vec::new(),
        }
    }

    fn call(&self, pod: &Pod, i: usize) -> PluginCall {
        let mut call = pod.call("ADD", &Value::Null);
        if self.cni_path {
            call = call.cni_path(format!(
                "{}:{}",
                self.fakes.path().display(),
                plugin_dir().display()
            ));
        }
        if self.path {
            let path = call
                .environment()
                .get("PATH")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            call = call.env("PATH", format!("{}:{path}", self.fakes.path().display()));
        }
        match self.modes.get(i % self.modes.len().max(1)) {
            Some(mode) => call.env("RELIABILITY_CRASH", mode),
            None => call,
        }
    }
}

/// Kills bridge ADD `kills` times at `point` and checks the recovery after
/// each kill.
fn crash_at_point(test: &str, k: u8, kills: usize, point: &str, setup: fn(&Net) -> CrashPoint) {
    if !require_root(test) {
        return;
    }
    let start = Instant::now();
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, k, &mut cleanup);
    let mut pod = Pod::new(&net, "rel-crash", &mut cleanup);
    let other = Pod::new(&net, "rel-other", &mut cleanup);
    let crash = setup(&net);
    let conf = net.config().to_string();
    let mut states: BTreeMap<Left, usize> = BTreeMap::new();
    for i in 0..kills {
        if i > 0 {
            pod.renew("rel-crash", &mut cleanup);
        }
        let call = crash.call(&pod, i);
        let (status, output, _) = Spawned::start("bridge", &call, conf.as_bytes()).finish();
        let context = format!("{point}, kill {i}");
        assert!(
            was_killed(status),
            "{context}: ADD was not killed ({status})\n{output}"
        );
        let killed = crash.fakes.record("killed");
        assert_eq!(
            killed.len(),
            i + 1,
            "{context}: the fake did not record its kill: {killed:?}"
        );
        *states
            .entry(recover(&net, &pod, &other, &context))
            .or_default() += 1;
    }
    println!(
        "crashes {point}: {kills} kills ({}), state before DEL {states:?} ({:.1}s)",
        crash.modes.join(", "),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn crash_after_the_veth_exists_is_cleaned_by_del() {
    crash_at_point(
        "crash_after_the_veth_exists_is_cleaned_by_del",
        3,
        12,
        "after the veth exists",
        |net| {
            // IPAM runs while bridge creates the veth: wait for it, never lease.
            CrashPoint::in_ipam("veth", |real, killed| {
                format!(
                    "[ \"$CNI_COMMAND\" = ADD ] || exec '{real}' \"$@\"\n\
                     veth=veth$(printf '%s' \"{net}/$CNI_CONTAINERID/$CNI_IFNAME\" | sha512sum | cut -c1-8)\n\
                     i=0\n\
                     while [ ! -e /sys/class/net/$veth ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n\
                     [ -e /sys/class/net/$veth ] && echo \"$veth\" >> '{killed}'\n\
                     kill -9 $PPID\n\
                     exit 1",
                    net = net.name,
                )
            })
        },
    );
}

#[test]
fn crash_right_after_ipam_is_cleaned_by_del() {
    crash_at_point(
        "crash_right_after_ipam_is_cleaned_by_del",
        4,
        12,
        "after IPAM",
        |_| {
            // The real host-local leases, then bridge dies before reading it.
            CrashPoint::in_ipam("ipam", |real, killed| {
                format!(
                    "[ \"$CNI_COMMAND\" = ADD ] || exec '{real}' \"$@\"\n\
                     out=$('{real}')\n\
                     status=$?\n\
                     [ $status = 0 ] && echo leased >> '{killed}'\n\
                     kill -9 $PPID\n\
                     printf '%s' \"$out\"\n\
                     exit $status"
                )
            })
        },
    );
}

#[test]
fn crash_during_masquerade_setup_is_cleaned_by_del() {
    crash_at_point(
        "crash_during_masquerade_setup_is_cleaned_by_del",
        5,
        12,
        "during masquerade setup",
        |_| {
            let fakes = Fakes::new("masq");
            let killed = fakes.file("killed");
            // Each family's restore kills bridge before or after applying
            // its batch; the other family runs concurrently, unharmed.
            for (program, family) in [("iptables-restore", "v4"), ("ip6tables-restore", "v6")] {
                fakes.install(
                    program,
                    &format!(
                        "case \"$RELIABILITY_CRASH\" in\n\
                         {family}-before) echo before >> '{killed}'; kill -9 $PPID; exit 1 ;;\n\
                         {family}-after) '{real}' \"$@\"; status=$?; echo \"after $status\" >> '{killed}'; kill -9 $PPID; exit $status ;;\n\
                         esac\n\
                         exec '{real}' \"$@\"",
                        real = which(program),
                        killed = killed.display()
                    ),
                );
            }
            CrashPoint {
                fakes,
                cni_path: false,
                path: true,
                modes: vec!["v4-before", "v4-after", "v6-before", "v6-after"],
            }
        },
    );
}

#[test]
fn kills_at_random_times_are_cleaned_by_del() {
    let test = "kills_at_random_times_are_cleaned_by_del";
    if !require_root(test) {
        return;
    }
    let start = Instant::now();
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 6, &mut cleanup);
    let mut pod = Pod::new(&net, "rel-rand", &mut cleanup);
    let other = Pod::new(&net, "rel-other", &mut cleanup);
    let conf = net.config().to_string();

    // How long an ADD takes here, to spread the kills over it.
    let (status, output, took) =
        Spawned::start("bridge", &pod.call("ADD", &Value::Null), conf.as_bytes()).finish();
    assert!(status.success(), "warm-up ADD failed\n{output}");
    let out = pod.call("DEL", &net.config()).run();
    assert!(out.success(), "{}", out.describe());
    pod.assert_gone(&net);
    let window = u64::try_from(took.as_micros())
        .unwrap_or(u64::MAX)
        .max(1000)
        * 9
        / 10;

    let mut rng = Rng::from_clock();
    let seed = rng.0;
    let kills = 24;
    let (mut killed, mut finished) = (0, 0);
    let mut states: BTreeMap<Left, usize> = BTreeMap::new();
    for i in 0..kills {
        pod.renew("rel-rand", &mut cleanup);
        let delay = Duration::from_micros(rng.below(window));
        let whole_group = i % 2 == 1;
        let running = Spawned::start("bridge", &pod.call("ADD", &Value::Null), conf.as_bytes());
        std::thread::sleep(delay);
        if whole_group {
            let _ = killpg(running.pid(), Signal::SIGKILL);
        } else {
            let _ = kill(running.pid(), Signal::SIGKILL);
        }
        let (status, output, _) = running.finish();
        if was_killed(status) {
            killed += 1;
        } else {
            assert!(status.success(), "kill {i}: ADD failed\n{output}");
            finished += 1;
        }
        let context = format!(
            "random kill {i} after {delay:?} ({})",
            if whole_group {
                "process group"
            } else {
                "bridge only"
            }
        );
        *states
            .entry(recover(&net, &pod, &other, &context))
            .or_default() += 1;
    }
    println!(
        "crashes at random times (seed {seed}, window {window} us): {kills} kills sent, \
         {killed} killed mid-ADD, {finished} ADDs already done, state before DEL {states:?} ({:.1}s)",
        start.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// 3. Hostile and broken input.
// ---------------------------------------------------------------------------

const PLUGINS: [&str; 3] = ["bridge", "host-local", "loopback"];

/// The plugin's output for a failure message, cut to a readable size.
fn brief(out: &PluginOutput) -> String {
    let text = out.describe();
    if text.len() <= 4000 {
        return text;
    }
    let cut = (0..=2000)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

/// Requires the spec's error object (`code` in `codes`, a string `msg`,
/// maybe `details`, our `cniVersion`), exit status 1 and no panic.
fn assert_refused(out: &PluginOutput, codes: &[u64], what: &str) -> Value {
    assert_eq!(
        out.code(),
        Some(1),
        "{what}: exit status (success or a signal is wrong)\n{}",
        brief(out)
    );
    let err: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e})\n{}", brief(out)));
    let code = err["code"].as_u64();
    assert!(
        code.is_some_and(|c| codes.contains(&c)),
        "{what}: code {code:?}, expected one of {codes:?}\n{}",
        brief(out)
    );
    let msg = err["msg"].as_str().unwrap_or_else(|| {
        panic!("{what}: no msg\n{}", brief(out));
    });
    let keys: BTreeSet<&str> = err
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let allowed: BTreeSet<&str> = ["cniVersion", "code", "msg", "details"].into();
    assert!(keys.is_subset(&allowed), "{what}: keys {keys:?}");
    assert!(
        !msg.contains("panicked") && !out.stderr_str().contains("panicked"),
        "{what}: the plugin panicked\n{}",
        brief(out)
    );
    err
}

/// How much of the host a refused call may have touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// Nothing: the bridge does not exist and the dataDir was never created.
    Nothing,
    /// The bridge (pre-created by the test) exists, and the IPAM plugin may
    /// have created its store directory, but there is no port, no lease, no
    /// rule.
    StoreDir,
}

/// Checks that refused calls changed nothing: no bridge (or no port on the
/// pre-created one), no veth of `pod`, only a DOWN `lo` in its namespace, no
/// lease (no dataDir at all for [`Allowed::Nothing`]), no rule.
fn assert_untouched(net: &Net, pod: &Pod, allowed: Allowed, what: &str) {
    match allowed {
        Allowed::Nothing => {
            assert!(
                !kernel::link_exists(None, &net.bridge),
                "{what}: bridge {} created",
                net.bridge
            );
            assert!(
                !net.data_dir.exists(),
                "{what}: dataDir created: {:?}",
                net.store_bytes()
            );
        }
        Allowed::StoreDir => {
            assert_eq!(net.ports(), Vec::<String>::new(), "{what}: ports");
            assert_eq!(net.leftovers(), BTreeMap::new(), "{what}: leases");
        }
    }
    assert!(
        !kernel::link_exists(None, &pod.derived_veth()),
        "{what}: veth {} created",
        pod.derived_veth()
    );
    assert_eq!(link_names(pod.ns_name()), ["lo"], "{what}: container links");
    assert!(
        !kernel::link_is_up(pod.ns_name(), "lo"),
        "{what}: lo was set up"
    );
    assert_eq!(net.nat_lines(), Vec::<String>::new(), "{what}: nat rules");
    assert_eq!(pod.rules(), Vec::<String>::new(), "{what}: chain");
}

/// A bad input: which plugin, a call, the codes it may be answered with.
struct Bad {
    plugin: &'static str,
    label: String,
    call: PluginCall,
    codes: &'static [u64],
}

impl Bad {
    /// `call` of `plugin`, named `label` in failure messages, which must be
    /// refused with one of `codes`.
    fn new(
        plugin: &'static str,
        label: impl Into<String>,
        call: PluginCall,
        codes: &'static [u64],
    ) -> Bad {
        Bad {
            plugin,
            label: label.into(),
            call,
            codes,
        }
    }
}

/// Runs the bad inputs, on two threads when `parallel` (only for inputs the
/// dispatcher refuses: two ADDs of one container that get as far as the
/// veth would collide); every one must be refused. All failures are
/// reported together. Returns how many were tried per plugin.
fn refuse_all(bad: Vec<Bad>, parallel: bool) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for b in &bad {
        *counts.entry(b.plugin).or_default() += 1;
    }
    let (even, odd): (Vec<_>, Vec<_>) = bad
        .into_iter()
        .enumerate()
        .partition(|(i, _)| !parallel || i % 2 == 0);
    let mut failures: Vec<(bool, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = [even, odd]
            .into_iter()
            .map(|half| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for (_, b) in half {
                        let out = b.call.run();
                        let what = format!("{} {}", b.plugin, b.label);
                        let checked = std::panic::catch_unwind(|| {
                            assert_refused(&out, b.codes, &what);
                        });
                        if let Err(panic) = checked {
                            let text = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            failures.push((!out.success(), text));
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("bad-input worker panicked"))
            .collect()
    });
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} bad inputs were not refused properly:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    counts
}

/// Prints how many bad inputs of `what` were tried, in all and per plugin.
fn report(what: &str, counts: &BTreeMap<&'static str, usize>) {
    let total: usize = counts.values().sum();
    println!("bad input: {what}: {total} calls {counts:?}");
}

#[test]
fn crio_config_truncated_at_every_offset_is_a_decoding_error() {
    let test = "crio_config_truncated_at_every_offset_is_a_decoding_error";
    let Some(world) = World::new(test, 20, "rel-trunc") else {
        return;
    };
    let World { pod, net, .. } = &world;
    let text = net.crio_text();
    let whole = text.trim_end().len();
    let mut bad = Vec::new();
    for plugin in PLUGINS {
        for cut in 0..whole {
            let commands: &[&str] = if cut % 5 == 0 {
                &["ADD", "DEL", "CHECK"]
            } else {
                &["ADD"]
            };
            for command in commands {
                bad.push(Bad::new(
                    plugin,
                    format!("{command} of the first {cut} bytes"),
                    pod.call_of(plugin, command, &text.as_bytes()[..cut]),
                    &[6],
                ));
            }
        }
    }
    let counts = refuse_all(bad, true);
    assert_untouched(net, pod, Allowed::Nothing, "after the truncations");
    report(
        &format!("CRI-O config ({whole} bytes) truncated at every offset"),
        &counts,
    );
}

/// A JSON kind and the wrong-typed values tried for a field of that kind.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Str,
    Int,
    Array,
    Object,
}

impl Kind {
    fn wrong_values(self) -> Vec<Value> {
        match self {
            Kind::Bool => vec![json!("true"), json!(1), json!([]), json!({})],
            Kind::Str => vec![json!(1), json!(true), json!([]), json!({})],
            Kind::Int => vec![json!("1"), json!(true), json!([]), json!({}), json!(1.5)],
            Kind::Array => vec![json!("x"), json!(1), json!(true), json!({})],
            Kind::Object => vec![json!("x"), json!(1), json!(true), json!([])],
        }
    }
}

/// Sets `value` at `path` (object keys, or array indexes as digits),
/// creating what is missing on the way.
fn set_path(conf: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *conf = value;
        return;
    };
    let mut at = conf;
    for (i, key) in parents.iter().enumerate() {
        let next_is_index = path[i + 1].parse::<usize>().is_ok();
        let empty = if next_is_index { json!([]) } else { json!({}) };
        at = child(at, key, empty);
    }
    *child(at, last, Value::Null) = value;
}

fn child<'a>(at: &'a mut Value, key: &str, empty: Value) -> &'a mut Value {
    match key.parse::<usize>() {
        Ok(index) => {
            if !at.is_array() {
                *at = json!([]);
            }
            let items = at.as_array_mut().expect("just made an array");
            while items.len() <= index {
                items.push(empty.clone());
            }
            &mut items[index]
        }
        Err(_) => {
            if !at.is_object() {
                *at = json!({});
            }
            let fields = at.as_object_mut().expect("just made an object");
            fields.entry(key.to_string()).or_insert(empty)
        }
    }
}

/// Fields every plugin parses (the dispatcher's `NetConf`).
const COMMON_FIELDS: &[(&[&str], Kind)] = &[
    (&["cniVersion"], Kind::Str),
    (&["name"], Kind::Str),
    (&["type"], Kind::Str),
    (&["cniVersions"], Kind::Array),
    (&["cniVersions", "0"], Kind::Str),
    (&["ipMasq"], Kind::Bool),
    (&["ipam"], Kind::Object),
    (&["ipam", "type"], Kind::Str),
    (&["dns"], Kind::Object),
    (&["dns", "nameservers"], Kind::Array),
    (&["dns", "nameservers", "0"], Kind::Str),
    (&["dns", "domain"], Kind::Str),
    (&["dns", "search"], Kind::Array),
    (&["dns", "options"], Kind::Array),
    (&["disableCheck"], Kind::Bool),
    (&["disableGC"], Kind::Bool),
    (&["cni.dev/valid-attachments"], Kind::Array),
    (&["cni.dev/valid-attachments", "0"], Kind::Object),
];

/// Fields only bridge parses.
const BRIDGE_FIELDS: &[(&[&str], Kind)] = &[
    (&["bridge"], Kind::Str),
    (&["isGateway"], Kind::Bool),
    (&["isDefaultGateway"], Kind::Bool),
    (&["forceAddress"], Kind::Bool),
    (&["hairpinMode"], Kind::Bool),
    (&["promiscMode"], Kind::Bool),
    (&["macspoofchk"], Kind::Bool),
    (&["enabledad"], Kind::Bool),
    (&["disableContainerInterface"], Kind::Bool),
    (&["portIsolation"], Kind::Bool),
    (&["preserveDefaultVlan"], Kind::Bool),
    (&["ipMasqBackend"], Kind::Str),
    (&["mtu"], Kind::Int),
    (&["vlan"], Kind::Int),
    (&["vlanTrunk"], Kind::Array),
    (&["vlanTrunk", "0"], Kind::Object),
    (&["vlanTrunk", "0", "id"], Kind::Int),
    (&["vlanTrunk", "0", "minID"], Kind::Int),
    (&["vlanTrunk", "0", "maxID"], Kind::Int),
    (&["args", "cni", "mac"], Kind::Str),
    (&["runtimeConfig", "mac"], Kind::Str),
];

/// Fields host-local parses (directly, or behind bridge).
const IPAM_FIELDS: &[(&[&str], Kind)] = &[
    (&["args"], Kind::Object),
    (&["args", "cni"], Kind::Object),
    (&["args", "cni", "ips"], Kind::Array),
    (&["args", "cni", "ips", "0"], Kind::Str),
    (&["runtimeConfig"], Kind::Object),
    (&["runtimeConfig", "ips"], Kind::Array),
    (&["runtimeConfig", "ips", "0"], Kind::Str),
    (&["runtimeConfig", "ipRanges"], Kind::Array),
    (&["runtimeConfig", "ipRanges", "0"], Kind::Array),
    (
        &["runtimeConfig", "ipRanges", "0", "0", "subnet"],
        Kind::Str,
    ),
    (&["ipam", "dataDir"], Kind::Str),
    (&["ipam", "resolvConf"], Kind::Str),
    (&["ipam", "routes"], Kind::Array),
    (&["ipam", "routes", "0"], Kind::Object),
    (&["ipam", "routes", "0", "dst"], Kind::Str),
    (&["ipam", "routes", "0", "gw"], Kind::Str),
    (&["ipam", "ranges"], Kind::Array),
    (&["ipam", "ranges", "0"], Kind::Array),
    (&["ipam", "ranges", "0", "0"], Kind::Object),
    (&["ipam", "ranges", "0", "0", "subnet"], Kind::Str),
    (&["ipam", "ranges", "0", "0", "rangeStart"], Kind::Str),
    (&["ipam", "ranges", "0", "0", "rangeEnd"], Kind::Str),
    (&["ipam", "ranges", "0", "0", "gateway"], Kind::Str),
    (&["ipam", "subnet"], Kind::Str),
    (&["ipam", "rangeStart"], Kind::Str),
    (&["ipam", "rangeEnd"], Kind::Str),
    (&["ipam", "gateway"], Kind::Str),
];

#[test]
fn every_field_with_a_wrong_json_type_is_refused() {
    let test = "every_field_with_a_wrong_json_type_is_refused";
    let Some(world) = World::new(test, 21, "rel-types") else {
        return;
    };
    let World { pod, net, .. } = &world;
    net.create_bridge();
    let base = net.config();
    let mut bad = Vec::new();
    for plugin in PLUGINS {
        let mut fields: Vec<(&[&str], Kind)> = COMMON_FIELDS.to_vec();
        if plugin == "bridge" {
            fields.extend_from_slice(BRIDGE_FIELDS);
        }
        if plugin != "loopback" {
            fields.extend_from_slice(IPAM_FIELDS);
        }
        for (path, kind) in fields {
            // The dispatcher decodes these two itself (code 6).
            let codes: &'static [u64] = if path == ["name"] || path == ["cniVersion"] {
                &[6]
            } else {
                &[7]
            };
            for value in kind.wrong_values() {
                let mut conf = base.clone();
                set_path(&mut conf, path, value.clone());
                bad.push(Bad::new(
                    plugin,
                    format!("ADD with {} = {value}", path.join(".")),
                    pod.call_of(plugin, "ADD", conf.to_string()),
                    codes,
                ));
            }
        }
    }
    let counts = refuse_all(bad, false);
    assert_untouched(net, pod, Allowed::StoreDir, "after the type confusion");
    assert!(!net.data_dir.exists(), "the dataDir was created");
    report("wrong JSON types per field", &counts);
}

#[test]
fn bad_commands_variables_container_ids_and_ifnames_are_refused() {
    let test = "bad_commands_variables_container_ids_and_ifnames_are_refused";
    let Some(world) = World::new(test, 23, "rel-env") else {
        return;
    };
    let World { pod, net, .. } = &world;
    let conf = net.config().to_string();
    let commands = unknown_commands();
    let ifnames = bad_ifnames();
    let mut bad = Vec::new();
    for plugin in PLUGINS {
        for command in &commands {
            bad.push(Bad::new(
                plugin,
                format!("CNI_COMMAND={command:?}"),
                pod.call_of(plugin, command, conf.clone()),
                &[4],
            ));
        }
        for command in ["ADD", "DEL", "CHECK"] {
            bad.extend(missing_variable_calls(pod, plugin, command, &conf));
            for id in BAD_CONTAINER_IDS {
                bad.push(Bad::new(
                    plugin,
                    format!("{command} with container ID {id:?}"),
                    pod.call_of(plugin, command, conf.clone()).container_id(id),
                    &[4],
                ));
            }
            for ifname in &ifnames {
                bad.push(Bad::new(
                    plugin,
                    format!("{command} with ifname {ifname:?}"),
                    pod.call_of(plugin, command, conf.clone()).ifname(ifname),
                    &[4],
                ));
            }
        }
    }
    let counts = refuse_all(bad, true);
    assert_untouched(net, pod, Allowed::Nothing, "after the bad environments");
    report(
        "unknown commands, missing/empty variables, bad container IDs and ifnames",
        &counts,
    );
}

/// `CNI_COMMAND`s that name no command, the last one 1000 characters long.
fn unknown_commands() -> Vec<String> {
    let long_command = "X".repeat(1000);
    [
        "FOO",
        "add",
        "ADD ",
        " ADD",
        "DELETE",
        "VERSION2",
        "ÄDD",
        long_command.as_str(),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Container IDs the spec's grammar does not allow.
const BAD_CONTAINER_IDS: [&str; 13] = [
    "-x", ".x", "_x", "a/b", "../x", "a b", "a\nb", "a;b", "a$b", "ä", "a\tb", "x:y", "a*",
];

/// Interface names that are too long or hold characters the kernel refuses.
fn bad_ifnames() -> Vec<String> {
    let long_ifname = "e".repeat(100);
    [
        "eth0eth0eth0eth0",
        long_ifname.as_str(),
        ".",
        "..",
        "a/b",
        "a:b",
        "a b",
        "eth0\n",
        "\t",
        "a\u{a0}b",
    ]
    .map(str::to_string)
    .to_vec()
}

/// `command` of `plugin` with each variable it requires unset, then empty.
fn missing_variable_calls(pod: &Pod, plugin: &'static str, command: &str, conf: &str) -> Vec<Bad> {
    let mut required = vec!["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"];
    if command != "DEL" {
        required.push("CNI_NETNS");
    }
    let mut bad = Vec::new();
    for var in required {
        for (how, call) in [
            ("unset", pod.call_of(plugin, command, conf).unset(var)),
            ("empty", pod.call_of(plugin, command, conf).env(var, "")),
        ] {
            bad.push(Bad::new(
                plugin,
                format!("{command} with {var} {how}"),
                call,
                &[4],
            ));
        }
    }
    bad
}

#[test]
fn path_traversal_in_network_names_and_data_dirs_is_refused() {
    let test = "path_traversal_in_network_names_and_data_dirs_is_refused";
    let Some(mut world) = World::new(test, 24, "rel-path") else {
        return;
    };
    let World { pod, net, cleanup } = &mut world;
    net.create_bridge();
    let base = net.config();
    // Where an escape from the dataDir's parent would land.
    let escaped = std::env::temp_dir().join(&net.name);
    cleanup.remove_path(&escaped);
    let names = [
        "../x",
        "a/b",
        ".",
        "..",
        "x/../../y",
        "-x",
        " x",
        "x y",
        "x\n",
        "ä",
        "",
    ];
    let data = net.data_dir.display().to_string();
    let data_dirs = [
        format!("{data}/../.."),
        format!("{data}/a/../.."),
        format!("{data}/.."),
        "..".to_string(),
        "a/../../b".to_string(),
        format!("{data}/x\u{0}y"),
    ];
    let mut bad = Vec::new();
    for plugin in PLUGINS {
        for command in ["ADD", "DEL", "CHECK"] {
            for name in names {
                let mut conf = base.clone();
                conf["name"] = json!(name);
                bad.push(Bad::new(
                    plugin,
                    format!("{command} with network name {name:?}"),
                    pod.call_of(plugin, command, conf.to_string()),
                    &[7],
                ));
            }
            if plugin == "loopback" {
                continue;
            }
            for dir in &data_dirs {
                let mut conf = base.clone();
                conf["ipam"]["dataDir"] = json!(dir);
                bad.push(Bad::new(
                    plugin,
                    format!("{command} with dataDir {dir:?}"),
                    pod.call_of(plugin, command, conf.to_string()),
                    &[7],
                ));
            }
        }
    }
    let counts = refuse_all(bad, false);
    assert_untouched(net, pod, Allowed::StoreDir, "after the traversals");
    assert!(!net.data_dir.exists(), "the dataDir was created");
    assert!(!escaped.exists(), "{} was created", escaped.display());
    report("path traversal in network names and dataDirs", &counts);
}

#[test]
fn cidrs_and_addresses_of_the_wrong_family_are_refused() {
    let test = "cidrs_and_addresses_of_the_wrong_family_are_refused";
    let Some(world) = World::new(test, 25, "rel-family") else {
        return;
    };
    let World { pod, net, .. } = &world;
    net.create_bridge();
    let gw4 = net.gw4();
    let ipam_cases = wrong_family_ipam_cases(net);
    let base = net.config();
    let mut bad = Vec::new();
    for plugin in ["bridge", "host-local"] {
        for (label, ipam) in &ipam_cases {
            let conf = with_ipam_fields(&base, ipam);
            bad.push(Bad::new(
                plugin,
                label.to_string(),
                pod.call_of(plugin, "ADD", conf.to_string()),
                &[7],
            ));
        }
        bad.extend(wrong_family_requested_ip_calls(pod, net, plugin, &base));
    }
    // A route whose gateway is of the other family: host-local hands it
    // over, bridge cannot install it and must roll everything back. (An
    // IPv4 route via an IPv6 gateway is valid, RFC 5549, so not tried.)
    let route = json!({"dst": "::/0", "gw": gw4});
    let mut conf = base.clone();
    conf["ipam"]["routes"] = json!([route]);
    bad.push(Bad::new(
        "bridge",
        format!("route {route}"),
        pod.call_of("bridge", "ADD", conf.to_string()),
        &[999],
    ));
    let counts = refuse_all(bad, false);
    assert_untouched(net, pod, Allowed::StoreDir, "after the wrong families");
    report(
        "CIDRs, ranges, requested IPs and routes of the wrong family",
        &counts,
    );
}

/// Labelled `ipam` fields mixing `net`'s families; a `null` value removes the key.
fn wrong_family_ipam_cases(net: &Net) -> Vec<(&'static str, Value)> {
    let (v4, v6) = (net.subnet4(), net.subnet6());
    let (gw4, gw6) = (net.gw4(), net.gw6());
    let ranges = |range: Value| json!([[range]]);
    vec![
        (
            "v4 subnet, v6 gateway",
            json!({"ranges": ranges(json!({"subnet": v4, "gateway": gw6}))}),
        ),
        (
            "v4 subnet, v6 rangeStart",
            json!({"ranges": ranges(json!({"subnet": v4, "rangeStart": format!("{gw6}5")}))}),
        ),
        (
            "v4 subnet, v6 rangeEnd",
            json!({"ranges": ranges(json!({"subnet": v4, "rangeEnd": format!("{gw6}5")}))}),
        ),
        (
            "v6 subnet, v4 gateway",
            json!({"ranges": ranges(json!({"subnet": v6, "gateway": gw4}))}),
        ),
        (
            "v6 subnet, v4 rangeStart",
            json!({"ranges": ranges(json!({"subnet": v6, "rangeStart": gw4}))}),
        ),
        (
            "legacy v4 subnet, v6 gateway",
            json!({"ranges": null, "subnet": v4, "gateway": gw6}),
        ),
        (
            "legacy v4 subnet, v6 rangeEnd",
            json!({"ranges": null, "subnet": v4, "rangeEnd": gw6}),
        ),
        (
            "both families in one set",
            json!({"ranges": [[{"subnet": v4}, {"subnet": v6}]]}),
        ),
    ]
}

/// `base` with `ipam`'s keys set in its `ipam` section, or removed where `null`.
fn with_ipam_fields(base: &Value, ipam: &Value) -> Value {
    let mut conf = base.clone();
    for (key, value) in ipam.as_object().expect("object") {
        if value.is_null() {
            conf["ipam"].as_object_mut().expect("ipam").remove(key);
        } else {
            conf["ipam"][key] = value.clone();
        }
    }
    conf
}

/// ADDs of `plugin` requesting an address (`IP=`, `runtimeConfig.ips`) of the wrong family.
fn wrong_family_requested_ip_calls(
    pod: &Pod,
    net: &Net,
    plugin: &'static str,
    base: &Value,
) -> Vec<Bad> {
    let (v4, v6) = (net.subnet4(), net.subnet6());
    let (gw4, gw6) = (net.gw4(), net.gw6());
    let mut bad = Vec::new();
    // A v4-only network asked for a v6 address (and the reverse).
    let mut v4_only = base.clone();
    v4_only["ipam"]["ranges"] = json!([[{"subnet": v4}]]);
    let mut v6_only = base.clone();
    v6_only["ipam"]["ranges"] = json!([[{"subnet": v6}]]);
    for (label, conf, args) in [
        (
            "v6 IP= in a v4 network",
            &v4_only,
            format!("IgnoreUnknown=1;IP={gw6}5"),
        ),
        (
            "v4 IP= in a v6 network",
            &v6_only,
            format!("IgnoreUnknown=1;IP={gw4}0"),
        ),
    ] {
        bad.push(Bad::new(
            plugin,
            label.to_string(),
            pod.call_of(plugin, "ADD", conf.to_string()).args(&args),
            &[999],
        ));
    }
    let mut conf = v4_only.clone();
    conf["runtimeConfig"] = json!({"ips": [format!("{gw6}5/64")]});
    bad.push(Bad::new(
        plugin,
        "runtimeConfig.ips of the other family",
        pod.call_of(plugin, "ADD", conf.to_string()),
        &[999],
    ));
    bad
}

#[test]
fn cni_netns_that_is_not_a_network_namespace_is_refused() {
    let test = "cni_netns_that_is_not_a_network_namespace_is_refused";
    let Some(world) = World::new(test, 26, "rel-netns") else {
        return;
    };
    let World { pod, net, .. } = &world;
    let scratch = Fakes::new("netns");
    let file = scratch.file("regular");
    std::fs::write(&file, "not a namespace").expect("write a regular file");
    let link = scratch.file("link-to-regular");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    let missing = PathBuf::from("/run/netns").join(unique_name("rel-missing"));
    let paths: Vec<PathBuf> = vec![
        file,
        link,
        scratch.path().to_path_buf(),
        "/proc/self/ns/mnt".into(),
        "/proc/self/ns/pid".into(),
        "/proc/self/ns".into(),
        "/proc/self/status".into(),
        "/dev/null".into(),
        "relative/netns".into(),
        missing,
    ];
    let conf = net.config().to_string();
    let mut bad = Vec::new();
    for plugin in ["bridge", "loopback"] {
        for command in ["ADD", "CHECK"] {
            for path in &paths {
                bad.push(Bad::new(
                    plugin,
                    format!("{command} with CNI_NETNS={}", path.display()),
                    pod.call_of(plugin, command, conf.clone()).netns(path),
                    &[999],
                ));
            }
        }
    }
    let counts = refuse_all(bad, true);
    // CHECK runs the IPAM CHECK before entering the namespace (as the
    // reference does), and host-local opens its store for that: the lock
    // file may exist, nothing else, and the bridge must not.
    assert!(!kernel::link_exists(None, &net.bridge), "bridge created");
    assert_untouched(net, pod, Allowed::StoreDir, "after the bad namespaces");
    report("CNI_NETNS not a network namespace", &counts);
}

#[test]
fn cni_path_without_a_usable_ipam_plugin_is_refused() {
    let test = "cni_path_without_a_usable_ipam_plugin_is_refused";
    let Some(world) = World::new(test, 27, "rel-cnipath") else {
        return;
    };
    let World { pod, net, .. } = &world;
    net.create_bridge();
    let conf = net.config().to_string();
    let dirs: Vec<(String, Fakes)> = vec![
        ("host-local is a directory".into(), {
            let f = Fakes::new("dir");
            std::fs::create_dir(f.file("host-local")).expect("mkdir");
            f
        }),
        ("host-local is not executable".into(), {
            let f = Fakes::new("noexec");
            std::fs::write(f.file("host-local"), "#!/bin/sh\nexit 0\n").expect("write");
            f
        }),
        ("host-local is a dangling symlink".into(), {
            let f = Fakes::new("dangling");
            std::os::unix::fs::symlink("/nonexistent/host-local", f.file("host-local"))
                .expect("symlink");
            f
        }),
        ("host-local prints garbage".into(), {
            let f = Fakes::new("garbage");
            f.install("host-local", "echo '{not json'");
            f
        }),
        ("host-local prints nothing".into(), {
            let f = Fakes::new("silent");
            f.install("host-local", "exit 0");
            f
        }),
        ("host-local fails silently".into(), {
            let f = Fakes::new("false");
            f.install("host-local", "exit 3");
            f
        }),
    ];
    let mut bad = Vec::new();
    for (label, dir) in &dirs {
        bad.push(Bad::new(
            "bridge",
            label.as_str(),
            pod.call_of("bridge", "ADD", conf.clone())
                .cni_path(dir.path()),
            &[999],
        ));
    }
    for (label, path) in [
        ("only empty entries", "::"),
        ("missing directories", "/nonexistent/a:/nonexistent/b"),
        ("a relative directory", "relative/bin"),
    ] {
        for command in ["ADD", "DEL"] {
            bad.push(Bad::new(
                "bridge",
                format!("{command} with CNI_PATH of {label}"),
                pod.call_of("bridge", command, conf.clone()).cni_path(path),
                &[999],
            ));
        }
    }
    let counts = refuse_all(bad, false);
    assert_untouched(net, pod, Allowed::StoreDir, "after the bad CNI_PATHs");
    report("CNI_PATH without a usable IPAM plugin", &counts);
}

#[test]
fn huge_and_deeply_nested_input_is_refused() {
    let test = "huge_and_deeply_nested_input_is_refused";
    let Some(mut world) = World::new(test, 28, "rel-huge") else {
        return;
    };
    let World { pod, net, cleanup } = &mut world;
    net.create_bridge();
    let base = net.config();
    const MB: usize = 1 << 20;
    let mut nested = base.to_string();
    nested.pop();
    nested.push_str(&format!(",\"x\":{}{}}}", "[".repeat(MB), "]".repeat(MB)));
    let generic: Vec<(&str, Vec<u8>, &'static [u64])> = vec![
        ("10 MB of garbage", vec![b'x'; 10 * MB], &[6]),
        ("10 MB of [", vec![b'['; 10 * MB], &[6]),
        ("10 MB of whitespace", vec![b' '; 10 * MB], &[6]),
        ("an unknown key nested 1M deep", nested.into_bytes(), &[6]),
        ("17 MB (over the limit)", vec![b' '; 17 * MB], &[5]),
    ];
    let mut bad = Vec::new();
    for plugin in PLUGINS {
        for (label, stdin, codes) in &generic {
            bad.push(Bad::new(
                plugin,
                label.to_string(),
                pod.call_of(plugin, "ADD", stdin.clone()),
                codes,
            ));
        }
    }
    // Names far beyond what the kernel, the file system or iptables take.
    for len in [16, 300, 70_000, 10 * MB] {
        let mut conf = base.clone();
        conf["bridge"] = json!("b".repeat(len));
        bad.push(Bad::new(
            "bridge",
            format!("a bridge name of {len} bytes"),
            pod.call_of("bridge", "ADD", conf.to_string()),
            &[999],
        ));
    }
    for plugin in ["bridge", "host-local"] {
        for len in [300, 10 * MB] {
            let mut conf = base.clone();
            conf["name"] = json!("n".repeat(len));
            bad.push(Bad::new(
                plugin,
                format!("a network name of {len} bytes"),
                pod.call_of(plugin, "ADD", conf.to_string()),
                &[5],
            ));
        }
    }
    // A container ID of 300 bytes still fits an iptables comment; this
    // does not, so masquerade fails and everything is rolled back (the
    // chain is removed by the clean-up should a regression leave it).
    let long_id_chain = bridge::masq::chain_name(&net.name, &"c".repeat(100_000));
    cleanup.iptables_chain(false, "nat", &long_id_chain);
    cleanup.iptables_chain(true, "nat", &long_id_chain);
    bad.push(Bad::new(
        "bridge",
        "a container ID of 100000 bytes",
        pod.call_of("bridge", "ADD", base.to_string())
            .container_id(&"c".repeat(100_000)),
        &[999],
    ));
    let counts = refuse_all(bad, false);
    assert_untouched(net, pod, Allowed::StoreDir, "after the huge inputs");
    report("huge and deeply nested stdin, huge names and IDs", &counts);
}

// ---------------------------------------------------------------------------
// 5. Resource hygiene.
// ---------------------------------------------------------------------------

/// Installs `name` in `fakes`: it publishes its pid as `<name>-<command>.pid`,
/// waits for `go-<name>-<command>` (bounded), then execs `real`. While it
/// waits, the test reads its file descriptors and namespaces from /proc.
fn install_pausing(fakes: &Fakes, name: &str, real: &str) {
    let dir = fakes.path().display().to_string();
    fakes.install(
        name,
        &format!(
            "tag={name}-$CNI_COMMAND\n\
             echo $$ > '{dir}/'$tag.tmp\n\
             mv '{dir}/'$tag.tmp '{dir}/'$tag.pid\n\
             i=0\n\
             while [ ! -e '{dir}/go-'$tag ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n\
             exec '{real}' \"$@\""
        ),
    );
}

/// The file descriptors of `pid` as `(fd, target)`, without the one the
/// shell holds on its own script.
fn open_fds(pid: i32, script: &Path) -> Vec<(u32, String)> {
    let mut fds: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the fake's fd table")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .filter(|(_, target)| Path::new(target) != script)
        .collect();
    fds.sort();
    fds
}

/// Descriptors this test process would pass to any child: open without
/// `O_CLOEXEC` (inherited from whoever started the tests, like a
/// runtime's). Bridge gets them from us; only others are its own leaks.
fn inherited_fds() -> BTreeSet<u32> {
    const O_CLOEXEC: u32 = 0o2000000;
    std::fs::read_dir("/proc/self/fdinfo")
        .expect("read our fdinfo")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let fd: u32 = e.file_name().to_str()?.parse().ok()?;
            let info = std::fs::read_to_string(e.path()).ok()?;
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())?;
            (flags & O_CLOEXEC == 0).then_some(fd)
        })
        .collect()
}

fn netns_of(path: &str) -> String {
    std::fs::read_link(path)
        .map(|t| t.display().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// The network namespace of every thread of `pid`.
fn thread_namespaces(pid: Pid) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .map(|t| netns_of(&format!("{}/ns/net", t.path().display())))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `call` (ADD or DEL) with pausing fakes and inspects each pause:
/// the child holds exactly fds 0, 1 and 2, runs in the host's network
/// namespace, and at IPAM time every thread of bridge is in it too.
/// Returns the number of pauses inspected.
fn inspect_children(
    call: &PluginCall,
    command: &str,
    conf: &str,
    fakes: &Fakes,
    expected: &[&str],
) -> usize {
    let host_ns = netns_of("/proc/self/ns/net");
    let ours = inherited_fds();
    let running = Spawned::start("bridge", call, conf.as_bytes());
    let bridge_pid = running.pid();
    let mut inspected = 0;
    let mut pending: Vec<&str> = expected.to_vec();
    let start = Instant::now();
    while !pending.is_empty() {
        assert!(
            start.elapsed() < WAIT,
            "{command}: {pending:?} never ran (bridge pid {bridge_pid})"
        );
        let mut still = Vec::new();
        for name in pending {
            let tag = format!("{name}-{command}");
            let Ok(text) = std::fs::read_to_string(fakes.file(&format!("{tag}.pid"))) else {
                still.push(name);
                continue;
            };
            let pid: i32 = text.trim().parse().expect("a pid");
            let fds = open_fds(pid, &fakes.file(name));
            let leaked: Vec<&(u32, String)> = fds
                .iter()
                .filter(|(fd, _)| *fd > 2 && !ours.contains(fd))
                .collect();
            assert_eq!(
                leaked,
                Vec::<&(u32, String)>::new(),
                "{command}: {name} inherited more than stdio from bridge \
                 (fds {fds:?}; the test itself passes down {ours:?})"
            );
            let stdio: Vec<u32> = fds
                .iter()
                .map(|(fd, _)| *fd)
                .filter(|fd| *fd <= 2)
                .collect();
            assert_eq!(stdio, [0, 1, 2], "{command}: {name}'s stdio: {fds:?}");
            assert_eq!(
                netns_of(&format!("/proc/{pid}/ns/net")),
                host_ns,
                "{command}: {name} does not run in the host's network namespace"
            );
            if name == "host-local" {
                // Nothing enters the container while IPAM runs.
                let threads = thread_namespaces(bridge_pid);
                assert_eq!(
                    threads,
                    BTreeSet::from([host_ns.clone()]),
                    "{command}: a thread of bridge is in another namespace"
                );
            }
            std::fs::write(fakes.file(&format!("go-{tag}")), "").expect("release the fake");
            inspected += 1;
        }
        pending = still;
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, output, _) = running.finish();
    assert!(status.success(), "{command} failed\n{output}");
    inspected
}

#[test]
fn children_inherit_only_stdio_and_run_in_the_host_namespace() {
    let test = "children_inherit_only_stdio_and_run_in_the_host_namespace";
    let Some(world) = World::new(test, 10, "rel-fds") else {
        return;
    };
    let World { pod, net, .. } = &world;
    // One directory is both CNI_PATH and the front of PATH.
    let fakes = Fakes::new("fds");
    install_pausing(
        &fakes,
        "host-local",
        &plugin_path("host-local").display().to_string(),
    );
    for program in ["iptables-restore", "ip6tables-restore"] {
        install_pausing(&fakes, program, &which(program));
    }
    let conf = net.config().to_string();
    let path = std::env::var("PATH").unwrap_or_default();
    let mut inspected = 0;
    for command in ["ADD", "DEL"] {
        let call = pod
            .call(command, &Value::Null)
            .cni_path(fakes.path())
            .env("PATH", format!("{}:{path}", fakes.path().display()));
        inspected += inspect_children(
            &call,
            command,
            &conf,
            &fakes,
            &["host-local", "iptables-restore", "ip6tables-restore"],
        );
    }
    pod.assert_gone(net);
    net.assert_empty(&[pod]);
    println!(
        "hygiene: {inspected} child processes of bridge ADD and DEL inspected: only fds 0-2, host namespace, no bridge thread elsewhere at IPAM time"
    );
}

/// Files under `roots` containing `needle` (`grep -rlsF`; unreadable files
/// such as namespace bind mounts are skipped).
fn files_containing(needle: &str, roots: &[&Path]) -> Vec<String> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["-rlsF".as_ref(), "--".as_ref(), needle.as_ref()];
    args.extend(roots.iter().filter(|r| r.exists()).map(|r| r.as_os_str()));
    let out = cmd::run("grep", &args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_secret_in_the_environment_is_written_nowhere_without_trace() {
    let test = "a_secret_in_the_environment_is_written_nowhere_without_trace";
    let Some(world) = World::new(test, 11, "rel-secret") else {
        return;
    };
    let World { pod, net, .. } = &world;
    let mut rng = Rng::from_clock();
    let token = |rng: &mut Rng| format!("s3cr3t{:016x}{:016x}", rng.next(), rng.next());
    // Never printed: the test's own output may land in a file under /tmp.
    let secret = token(&mut rng);
    let control = token(&mut rng);
    let tmp = std::env::temp_dir();
    let roots: Vec<&Path> = vec![
        net.data_dir.as_path(),
        tmp.as_path(),
        Path::new("/var/lib/cni"),
        Path::new("/run"),
        Path::new("/dev/shm"),
        Path::new("/var/tmp"),
    ];
    // The search finds a planted token (so a miss below means something).
    let plant = Fakes::new("secret-control");
    std::fs::write(plant.file("planted"), &control).expect("plant the control token");
    assert_eq!(
        files_containing(&control, &roots),
        [plant.file("planted").display().to_string()],
        "the search does not find a planted token"
    );

    let conf = net.config();
    for command in ["ADD", "CHECK", "DEL"] {
        let mut conf = conf.clone();
        if command == "CHECK" {
            // CHECK needs the ADD result.
            conf["prevResult"] = Value::Null;
        }
        let call = pod
            .call(command, &conf)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("RELIABILITY_PASSWORD", &secret)
            .args(&format!("IgnoreUnknown=1;TOKEN={secret}"));
        let out = call.run();
        if command != "CHECK" {
            assert!(out.success(), "{command} failed\n{}", out.describe());
        }
    }
    let found = files_containing(&secret, &roots);
    assert_eq!(
        found,
        Vec::<String>::new(),
        "the secret was written to disk"
    );
    net.assert_empty(&[pod]);
    println!(
        "hygiene: ADD, CHECK and DEL with a secret in 2 variables and CNI_ARGS, no CNI_TRACE: \
         not found under {} directories",
        roots.len()
    );
}
