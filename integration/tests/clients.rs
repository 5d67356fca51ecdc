//! Root tests that prove the drop-in claim with real clients, software nobody
//! in this project wrote, driving our `bridge`, `host-local` and `loopback`:
//!
//! * **libcni** (the library inside CRI-O, containerd and Podman's CNI
//!   backend), Debian's `golang-github-appc-cni-dev` 1.1.2, through a small
//!   driver of our own (`integration/clients/libcni-driver/main.go`; Debian
//!   does not package `cnitool`). The driver loads a `.conf` with
//!   `ConfFromBytes` + `ConfListFromConf` or a `.conflist` with
//!   `ConfListFromBytes` and calls `AddNetworkList`, `CheckNetworkList` or
//!   `DelNetworkList`, as a runtime does. It is built once per test binary
//!   with Debian's `golang-go` in GOPATH mode (`GO111MODULE=off
//!   GOPATH=/usr/share/gocode`, offline) into cargo's `target/tmp`. libcni
//!   refuses CHECK for configs older than 0.4.0 before calling any plugin,
//!   and libcni 1.1.2 knows spec versions up to 1.0.0 only, so 1.1.0 (GC,
//!   STATUS) cannot be driven by it; that path is covered by exec in
//!   `gc_status.rs`.
//! * **Podman 4.3.1** (Debian `podman`) with `network_backend = "cni"`,
//!   running a container from a busybox-static rootfs imported with
//!   `podman import`, attached to a network whose only plugin directory
//!   holds symlinks to our three binaries. What this VM needs: `runc` as the
//!   OCI runtime and lowered limits (`--ulimit nofile=1024:1024 --ulimit
//!   nproc=1024:1024`; without them runc fails with "error setting rlimit
//!   type 7: operation not permitted", the VM lacks CAP_SYS_RESOURCE).
//!
//! Isolation: every test has its own bridge (`unique_ifname`), network
//! name, container IDs, host-local `dataDir` and subnets (`10.158.<k>.0/24`,
//! `fd58:0:<k>::/64`, `k` unique per test), so the tests run in parallel with
//! each other and with the other test files. libcni gets a private cache
//! directory. Podman gets a private `containers.conf` (`CONTAINERS_CONF`),
//! network config directory, storage (`--root`, `--runroot`, `--tmpdir`, vfs
//! driver) and image. A [`Cleanup`] guard removes podman's containers and
//! images, any mount left under its storage, the bridges, the `CNI-…`
//! chains of both families, the temp directories and podman's entries in
//! its fixed libcni cache (`/var/lib/cni/results/<network>-…`); namespaces
//! are deleted on drop, also when a test panics. Two things on the host are
//! written by podman and cannot be redirected in 4.3.1: the libcni cache
//! directory `/var/lib/cni/results` (emptied again by DEL) and c/image's
//! blob-info cache `/var/lib/containers/cache`.
//!
//! Needs `apt-get install golang-go golang-github-appc-cni-dev podman runc
//! busybox-static` (`scripts/test.sh` does it) and the plugins built first:
//! `cargo build --workspace --all-features`.

#![cfg(test)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use integration::{
    Cleanup, IpFamily, TestNetns, TestNetwork, cmd, kernel, ms, plugin_path, require_root,
    unique_name, wait_until,
};
use serde_json::{Value, json};

/// CRI-O's shipped config, `100-crio-bridge.conf`.
const CRIO_CONF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cni-types/tests/fixtures/100-crio-bridge.conf"
));

/// Podman's libcni cache, fixed in 4.3.1.
const PODMAN_CNI_CACHE: &str = "/var/lib/cni/results";

/// How long a host veth may take to disappear after DEL or `podman rm`.
const VANISH_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits podman must set on this VM (no CAP_SYS_RESOURCE).
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

// ---------------------------------------------------------------------------
// One private network: CRI-O's config with our names, subnets and dataDir.
// ---------------------------------------------------------------------------

integration::test_network! {
    Net
}

impl Net {
    /// A fresh network; `k` picks the subnets and is unique per test in this
    /// file. The bridge, the dataDir and the chains commented with the
    /// network's name are removed by `cleanup`.
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        let net = Net(TestNetwork::new("clbr", tag, k, cleanup));
        let name = net.name.clone();
        cleanup.push(
            format!("remove the CNI chains of network {name}"),
            move || remove_chains_of(&name),
        );
        net
    }

    fn ip4(&self, host: u8) -> String {
        format!("10.158.{}.{host}", self.k)
    }

    fn ip6(&self, host: u16) -> String {
        format!("fd58:0:{}::{host:x}", self.k)
    }

    /// The text of CRI-O's `100-crio-bridge.conf` with only the bridge name,
    /// network name, subnets (CRI-O's v6 route keeps its shape, the gateway
    /// with the subnet's prefix) and `dataDir` replaced, at `version`.
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
            .replace("10.85.0.0/16", &format!("10.158.{}.0/24", self.k))
            .replace("1100:200::1/24", &format!("{}/64", self.ip6(1)))
            .replace("1100:200::/24", &format!("fd58:0:{}::/64", self.k))
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
        let parsed: Value = serde_json::from_str(&text).expect("crio config is JSON");
        assert_eq!(parsed["cniVersion"], version);
        assert!(parsed["ipam"]["dataDir"].is_string(), "no dataDir:\n{text}");
        text
    }

    /// The CRI-O plugin object (without `cniVersion` and `name`).
    fn crio_plugin(&self) -> Value {
        let mut plugin: Value =
            serde_json::from_str(&self.crio_config("1.0.0")).expect("crio config is JSON");
        let object = plugin.as_object_mut().expect("config is an object");
        object.remove("cniVersion");
        object.remove("name");
        plugin
    }

    /// A conflist of this network at `version` with `plugins`.
    fn conflist(&self, version: &str, plugins: Vec<Value>) -> String {
        let list = json!({"cniVersion": version, "name": self.name, "plugins": plugins});
        serde_json::to_string_pretty(&list).expect("serialize conflist")
    }

    /// What host-local writes for one dual-stack attachment of `id`/`ifname`
    /// with host part `host`.
    fn expected_leases(&self, host: u8, id: &str, ifname: &str) -> BTreeMap<String, String> {
        let owner = format!("{id}\r\n{ifname}");
        BTreeMap::from([
            (self.ip4(host), owner.clone()),
            (self.ip6(u16::from(host)), owner),
        ])
    }

    /// The last address host-local handed out from range set `index`.
    fn last_reserved(&self, index: usize) -> String {
        let path = self.lease_dir().join(format!("last_reserved_ip.{index}"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// Asserts what one attachment (`id`, `eth0` in netns `ns`, host veth
    /// `veth`, host part `host`) put into the kernel and on disk.
    fn assert_attached(&self, ns: &str, id: &str, veth: &str, host: u8) {
        let (v4, v6) = (self.ip4(host), self.ip6(u16::from(host)));
        assert_eq!(
            global_addrs(Some(ns), "eth0"),
            vec![format!("{v4}/24"), format!("{v6}/64")],
            "container addresses"
        );
        assert!(kernel::link_is_up(Some(ns), "eth0"), "eth0 is not up");
        let default = route_via(Some(ns), IpFamily::V4, "default")
            .unwrap_or_else(|| panic!("no v4 default route in {ns}"));
        assert_eq!(default["gateway"], self.ip4(1));
        let v6_route = format!("fd58:0:{}::/64", self.k);
        let route = route_via(Some(ns), IpFamily::V6, &v6_route)
            .unwrap_or_else(|| panic!("no route {v6_route} via a gateway in {ns}"));
        assert_eq!(route["gateway"], self.ip6(1));

        let link = kernel::link(None, veth).unwrap_or_else(|| panic!("no host veth {veth}"));
        assert_eq!(link["master"], self.bridge.as_str(), "{veth} not enslaved");
        assert_eq!(link["linkinfo"]["info_kind"], "veth");
        assert!(self.ports().contains(&veth.to_string()));

        assert_eq!(
            self.leases(),
            self.expected_leases(host, id, "eth0"),
            "lease files"
        );
        let chain = bridge::masq::chain_name(&self.name, id);
        for ipv6 in [false, true] {
            let rules = kernel::nat_rules(IpFamily::from_ipv6(ipv6), &chain);
            assert!(
                rules.contains(&format!("-N {chain}")),
                "no chain {chain} (ipv6: {ipv6}): {rules:?}"
            );
            let addr = if ipv6 {
                format!("{v6}/128")
            } else {
                format!("{v4}/32")
            };
            assert!(
                rules
                    .iter()
                    .any(|r| r.starts_with(&format!("-A POSTROUTING -s {addr} "))
                        && r.ends_with(&format!("-j {chain}"))),
                "no POSTROUTING jump for {addr}: {rules:?}"
            );
        }
    }

    /// Asserts nothing of attachment `id` is left: no lease, no chain, no
    /// `veth` (waiting for the kernel), no port on the bridge.
    fn assert_detached(&self, id: &str, veth: &str) {
        wait_until(
            &format!("host veth {veth} to vanish"),
            VANISH_TIMEOUT,
            || !kernel::link_exists(None, veth),
        );
        assert_eq!(self.leases(), BTreeMap::new(), "leases left");
        let chain = bridge::masq::chain_name(&self.name, id);
        let rules = |family| kernel::nat_rules(family, &chain);
        assert_eq!(rules(IpFamily::V4), Vec::<String>::new(), "iptables");
        assert_eq!(rules(IpFamily::V6), Vec::<String>::new(), "ip6tables");
        assert_eq!(self.ports(), Vec::<String>::new(), "ports left");
        assert!(
            kernel::link_exists(None, &self.bridge),
            "DEL never removes the bridge"
        );
    }
}

// ---------------------------------------------------------------------------
// Observers.
// ---------------------------------------------------------------------------

/// Removes every `CNI-…` chain that a rule commented with network `name`
/// jumps to or lives in, in both families.
fn remove_chains_of(name: &str) -> Result<(), String> {
    let marker = format!("--comment \"name: \\\"{name}\\\" id: ");
    let mut inner = Cleanup::new();
    for ipv6 in [false, true] {
        let program = if ipv6 { "ip6tables" } else { "iptables" };
        let out = cmd::try_run(program, &["-w", "-t", "nat", "-S"]).map_err(|e| e.to_string())?;
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut chains: Vec<String> = listing
            .lines()
            .filter(|l| l.contains(&marker))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|word| word.starts_with("CNI-"))
            .collect();
        chains.sort();
        chains.dedup();
        for chain in chains {
            inner.iptables_chain(ipv6, "nat", &chain);
        }
    }
    let failures = inner.run_now();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The non-link-local addresses of a link, as `ip/prefix`.
fn global_addrs(ns: Option<&str>, ifname: &str) -> Vec<String> {
    kernel::addrs(ns, ifname)
        .iter()
        .filter(|a| a["scope"] != "link")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect()
}

/// The route of `family` in `ns` to `dst` with a gateway, if any.
fn route_via(ns: Option<&str>, family: IpFamily, dst: &str) -> Option<Value> {
    kernel::routes(ns, family)
        .into_iter()
        .find(|r| r["dst"] == dst && r.get("gateway").is_some())
}

/// Runs `ping -c1 -W1 dst` through `exec` up to `attempts` times, pausing
/// between tries (neighbour discovery and IPv6 DAD of a fresh address may
/// take a moment); returns the last output and whether one try succeeded.
fn ping_with(attempts: u32, dst: &str, mut exec: impl FnMut(&[&str]) -> Output) -> (bool, String) {
    let mut last = String::new();
    for _ in 0..attempts {
        let out = exec(&["ping", "-c1", "-W1", dst]);
        if out.status.success() {
            return (true, String::new());
        }
        last = describe(&out);
        std::thread::sleep(Duration::from_millis(250));
    }
    (false, last)
}

fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------
// The libcni driver.
// ---------------------------------------------------------------------------

static DRIVER: OnceLock<PathBuf> = OnceLock::new();

/// The built driver, compiled on first use (once per test binary).
fn driver() -> &'static Path {
    DRIVER.get_or_init(build_driver)
}

fn build_driver() -> PathBuf {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libcni-driver");
    integration::go::build("libcni-driver", &out_dir)
}

/// A runtime built on libcni: our plugin directory, a private cache.
struct Libcni {
    cache_dir: PathBuf,
    conf_dir: PathBuf,
}

impl Libcni {
    /// The cache and config directories are removed by `cleanup`.
    fn new(cleanup: &mut Cleanup) -> Libcni {
        let root = std::env::temp_dir().join(unique_name("cni-libcni"));
        cleanup.remove_path(&root);
        let libcni = Libcni {
            cache_dir: root.join("cache"),
            conf_dir: root.join("net.d"),
        };
        std::fs::create_dir_all(&libcni.conf_dir).expect("create conf dir");
        libcni
    }

    /// Writes `text` as `file` (`*.conf` or `*.conflist`) and returns its path.
    fn write_config(&self, file: &str, text: &str) -> PathBuf {
        let path = self.conf_dir.join(file);
        std::fs::write(&path, text).expect("write network config");
        path
    }

    /// Runs `verb` (`add`, `check`, `del`) for `id` in `ns` on `eth0`.
    fn call(&self, verb: &str, config: &Path, id: &str, ns: &TestNetns) -> Output {
        let plugin_dir = plugin_path("bridge")
            .parent()
            .expect("plugin dir")
            .to_path_buf();
        Command::new(driver())
            .arg("-plugin-dir")
            .arg(plugin_dir)
            .arg("-cache-dir")
            .arg(&self.cache_dir)
            .arg("-config")
            .arg(config)
            .args(["-id", id, "-netns", &ns.path_str(), "-ifname", "eth0", verb])
            .output()
            .unwrap_or_else(|e| panic!("cannot run the libcni driver: {e}"))
    }

    fn ok(&self, verb: &str, config: &Path, id: &str, ns: &TestNetns) -> String {
        let out = self.call(verb, config, id, ns);
        assert!(
            out.status.success(),
            "libcni {verb} of {} failed\n{}",
            config.display(),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// ADD; returns the result libcni printed.
    fn add(&self, config: &Path, id: &str, ns: &TestNetns) -> Value {
        let stdout = self.ok("add", config, id, ns);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("libcni printed no JSON result ({e}): {stdout}"))
    }

    /// libcni's cached result for this attachment (`<cache>/results/<net>-<id>-eth0`).
    fn cache_file(&self, net: &Net, id: &str) -> PathBuf {
        self.cache_dir
            .join("results")
            .join(format!("{}-{id}-eth0", net.name))
    }
}

/// Asserts the result of a dual-stack ADD at `version` with host part 2
/// and returns the host veth's name.
fn assert_result(net: &Net, result: &Value, version: &str, ns: &TestNetns) -> String {
    assert_eq!(result["cniVersion"], version, "{result:#}");
    let interfaces = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(interfaces.len(), 3, "{result:#}");
    assert_eq!(interfaces[0]["name"], net.bridge.as_str());
    assert_eq!(interfaces[2]["name"], "eth0");
    assert_eq!(interfaces[2]["sandbox"], ns.path_str().as_str());
    let ips: Vec<(String, String)> = result["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .map(|ip| {
            assert_eq!(ip["interface"], 2, "{result:#}");
            (
                ip["address"].as_str().unwrap_or("").to_string(),
                ip["gateway"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        ips,
        vec![
            (format!("{}/24", net.ip4(2)), net.ip4(1)),
            (format!("{}/64", net.ip6(2)), net.ip6(1)),
        ]
    );
    assert_eq!(
        result["routes"],
        json!([{"dst": "0.0.0.0/0"}, {"dst": format!("{}/64", net.ip6(1))}])
    );
    interfaces[1]["name"]
        .as_str()
        .expect("host veth name")
        .to_string()
}

/// Pings the gateway of both families from the container namespace.
fn assert_pings_gateway(net: &Net, ns: &TestNetns) {
    for (dst, attempts) in [(net.ip4(1), 5), (net.ip6(1), 20)] {
        let (ok, last) = ping_with(attempts, &dst, |args| ns.exec(args));
        assert!(ok, "{} cannot ping the gateway {dst}\n{last}", ns.name());
    }
}

/// ADD, CHECK (and a CHECK that must fail once an address is gone), DEL,
/// DEL of the CRI-O config as a one-plugin conflist at `version`.
fn libcni_conflist_lifecycle(test: &str, k: u8, version: &str) {
    if !require_root(test) {
        return;
    }
    let ns = TestNetns::new("cl-list");
    let mut cleanup = Cleanup::new();
    let net = Net::new("cl-crio", k, &mut cleanup);
    let libcni = Libcni::new(&mut cleanup);
    let id = unique_name("ctr");
    let config = libcni.write_config(
        "100-crio-bridge.conflist",
        &net.conflist(version, vec![net.crio_plugin()]),
    );

    let start = Instant::now();
    let result = libcni.add(&config, &id, &ns);
    println!("libcni ADD at {version}: {:.0} ms", ms(start.elapsed()));
    let veth = assert_result(&net, &result, version, &ns);
    net.assert_attached(ns.name(), &id, &veth, 2);
    assert!(libcni.cache_file(&net, &id).is_file(), "no libcni cache");
    assert_pings_gateway(&net, &ns);

    let start = Instant::now();
    let stdout = libcni.ok("check", &config, &id, &ns);
    println!("libcni CHECK at {version}: {:.0} ms", ms(start.elapsed()));
    assert_eq!(stdout, "", "CHECK prints nothing");

    // CHECK really runs the plugin: with the v4 address gone it must fail.
    ns.ip(&["addr", "del", &format!("{}/24", net.ip4(2)), "dev", "eth0"]);
    let broken = libcni.call("check", &config, &id, &ns);
    assert!(
        !broken.status.success(),
        "CHECK passed without the container's address\n{}",
        describe(&broken)
    );
    println!(
        "CHECK without the address: {}",
        String::from_utf8_lossy(&broken.stderr).trim()
    );

    for round in 1..=2 {
        let start = Instant::now();
        let stdout = libcni.ok("del", &config, &id, &ns);
        println!("libcni DEL #{round}: {:.0} ms", ms(start.elapsed()));
        assert_eq!(stdout, "", "DEL prints nothing");
        net.assert_detached(&id, &veth);
        assert!(!kernel::link_exists(Some(ns.name()), "eth0"));
        assert!(!libcni.cache_file(&net, &id).exists(), "libcni cache left");
    }
}

// ---------------------------------------------------------------------------
// 1. libcni.
// ---------------------------------------------------------------------------

/// CRI-O's file as it ships (a single `.conf` at 0.3.1): ADD, ping, CHECK
/// refused by libcni itself, DEL twice.
#[test]
fn libcni_crio_conf_0_3_1_add_ping_del_and_check_is_refused() {
    if !require_root("libcni_crio_conf_0_3_1_add_ping_del_and_check_is_refused") {
        return;
    }
    let ns = TestNetns::new("cl-conf");
    let mut cleanup = Cleanup::new();
    let net = Net::new("cl-crio", 1, &mut cleanup);
    let libcni = Libcni::new(&mut cleanup);
    let id = unique_name("ctr");
    let config = libcni.write_config("100-crio-bridge.conf", &net.crio_config("0.3.1"));

    let result = libcni.add(&config, &id, &ns);
    let veth = assert_result(&net, &result, "0.3.1", &ns);
    net.assert_attached(ns.name(), &id, &veth, 2);
    assert_pings_gateway(&net, &ns);

    let check = libcni.call("check", &config, &id, &ns);
    assert!(
        !check.status.success(),
        "CHECK at 0.3.1\n{}",
        describe(&check)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stderr).trim(),
        "configuration version \"0.3.1\" does not support the CHECK command"
    );
    // Refused before any plugin ran: the attachment is untouched.
    net.assert_attached(ns.name(), &id, &veth, 2);

    for _ in 0..2 {
        assert_eq!(libcni.ok("del", &config, &id, &ns), "");
        net.assert_detached(&id, &veth);
        assert!(!kernel::link_exists(Some(ns.name()), "eth0"));
    }
}

#[test]
fn libcni_crio_conflist_0_4_0_add_check_del() {
    libcni_conflist_lifecycle("libcni_crio_conflist_0_4_0_add_check_del", 2, "0.4.0");
}

#[test]
fn libcni_crio_conflist_1_0_0_add_check_del() {
    libcni_conflist_lifecycle("libcni_crio_conflist_1_0_0_add_check_del", 3, "1.0.0");
}

/// bridge then loopback in one conflist: loopback gets bridge's result as
/// `prevResult` and must pass it through; DEL runs them in reverse order.
#[test]
fn libcni_bridge_and_loopback_conflist_1_0_0() {
    if !require_root("libcni_bridge_and_loopback_conflist_1_0_0") {
        return;
    }
    let ns = TestNetns::new("cl-lo");
    let mut cleanup = Cleanup::new();
    let net = Net::new("cl-lo", 4, &mut cleanup);
    let libcni = Libcni::new(&mut cleanup);
    let id = unique_name("ctr");
    let plugins = vec![net.crio_plugin(), json!({"type": "loopback"})];
    let config = libcni.write_config("99-bridge-lo.conflist", &net.conflist("1.0.0", plugins));
    assert!(!kernel::link_is_up(Some(ns.name()), "lo"));

    let result = libcni.add(&config, &id, &ns);
    let veth = assert_result(&net, &result, "1.0.0", &ns);
    net.assert_attached(ns.name(), &id, &veth, 2);
    assert!(kernel::link_is_up(Some(ns.name()), "lo"), "lo not up");
    assert!(kernel::has_addr(Some(ns.name()), "lo", "127.0.0.1/8"));
    let (ok, last) = ping_with(3, "127.0.0.1", |args| ns.exec(args));
    assert!(ok, "cannot ping 127.0.0.1\n{last}");
    assert_pings_gateway(&net, &ns);

    assert_eq!(libcni.ok("check", &config, &id, &ns), "");

    assert_eq!(libcni.ok("del", &config, &id, &ns), "");
    net.assert_detached(&id, &veth);
    assert!(!kernel::link_exists(Some(ns.name()), "eth0"));
    assert!(
        !kernel::link_is_up(Some(ns.name()), "lo"),
        "loopback DEL sets lo down"
    );
}

// ---------------------------------------------------------------------------
// 2. Podman with its CNI backend.
// ---------------------------------------------------------------------------

/// A private podman: its own containers.conf, network config dir, plugin
/// dir (our binaries), storage and a busybox image.
struct Podman {
    dir: PathBuf,
    conf: PathBuf,
    image: String,
}

impl Podman {
    /// Sets everything up for `net` and imports the image. `cleanup`
    /// removes the containers, images, mounts, podman's libcni cache
    /// entries of `net` and the directory.
    fn new(net: &Net, cleanup: &mut Cleanup) -> Podman {
        let dir = std::env::temp_dir().join(unique_name("cni-podman"));
        cleanup.remove_path(&dir);
        let podman = Podman {
            conf: dir.join("containers.conf"),
            dir,
            image: format!("localhost/cni-rs-busybox:{}", unique_name("t")),
        };
        let prefix = format!("{}-", net.name);
        cleanup.push(format!("remove {PODMAN_CNI_CACHE}/{prefix}*"), move || {
            remove_cache_entries(&prefix)
        });
        let mounts_under = podman.dir.clone();
        cleanup.push(
            format!("unmount anything under {}", podman.dir.display()),
            move || unmount_under(&mounts_under),
        );
        let rmi = podman.clone_handle();
        cleanup.push("podman rmi -a -f", move || rmi.quiet(&["rmi", "-a", "-f"]));
        let rm = podman.clone_handle();
        cleanup.push("podman rm -a -f", move || {
            rm.quiet(&["rm", "-a", "-f", "-t", "0"])
        });

        let plugins = podman.dir.join("plugins");
        let net_d = podman.dir.join("net.d");
        for d in [&plugins, &net_d] {
            std::fs::create_dir_all(d).expect("create podman dirs");
        }
        for name in ["bridge", "host-local", "loopback"] {
            std::os::unix::fs::symlink(plugin_path(name), plugins.join(name))
                .expect("symlink plugin");
        }
        std::fs::write(
            net_d.join(format!("{}.conflist", net.name)),
            net.conflist("1.0.0", vec![net.crio_plugin()]),
        )
        .expect("write network conflist");
        std::fs::write(
            &podman.conf,
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [{}]\nnetwork_config_dir = {}\n\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n",
                json!(plugins),
                json!(net_d)
            ),
        )
        .expect("write containers.conf");
        podman.import_busybox();
        podman
    }

    fn clone_handle(&self) -> Podman {
        Podman {
            dir: self.dir.clone(),
            conf: self.conf.clone(),
            image: self.image.clone(),
        }
    }

    /// `podman <private storage flags> args...`.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command.env("CONTAINERS_CONF", &self.conf);
        for (flag, sub) in [
            ("--root", "root"),
            ("--runroot", "runroot"),
            ("--tmpdir", "tmp"),
        ] {
            command.arg(flag).arg(self.dir.join(sub));
        }
        command.args(["--storage-driver", "vfs"]).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman ({e}): apt-get install podman runc"))
    }

    /// Runs podman and requires success; the panic shows podman's own error.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`podman {}` failed\n{}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// For clean-up: runs podman, reporting failure as an error.
    fn quiet(&self, args: &[&str]) -> Result<(), String> {
        if !self.dir.join("root").exists() {
            return Ok(());
        }
        let out = self.command(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(describe(&out))
        }
    }

    /// Builds a rootfs of Debian's static busybox with the applets the tests
    /// use, and imports it as [`Podman::image`].
    fn import_busybox(&self) {
        let busybox = Path::new("/bin/busybox");
        let status = cmd::run("dpkg-query", &["-W", "-f=${Status}", "busybox-static"]);
        assert!(
            String::from_utf8_lossy(&status.stdout).contains("ok installed"),
            "the image needs a static busybox: apt-get install busybox-static"
        );
        let rootfs = self.dir.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).expect("create rootfs");
        std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
        for applet in ["sh", "ip", "sleep", "cat", "ping"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet symlink");
        }
        let tarball = self.dir.join("rootfs.tar");
        cmd::run_ok(
            "tar",
            &[
                "-C".as_ref(),
                rootfs.as_os_str(),
                "-cf".as_ref(),
                tarball.as_os_str(),
                ".".as_ref(),
            ],
        );
        let tarball = tarball.to_string_lossy().into_owned();
        self.ok(&["import", "--quiet", &tarball, &self.image]);
    }
}

/// Removes podman's libcni cache files of one network.
fn remove_cache_entries(prefix: &str) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(PODMAN_CNI_CACHE) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            std::fs::remove_file(entry.path()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Lazily unmounts every mount point under `dir`, deepest first (podman
/// mounts a tmpfs for each container's /dev/shm under its storage).
fn unmount_under(dir: &Path) -> Result<(), String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").map_err(|e| e.to_string())?;
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let out = cmd::try_run("umount", &["-l", point]).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(describe(&out));
        }
    }
    Ok(())
}

/// The `inet`/`inet6` addresses in busybox `ip addr` output, link-local
/// ones excepted.
fn addrs_in_ip_output(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next()) {
                (Some("inet" | "inet6"), Some(addr)) if !addr.starts_with("fe80:") => {
                    Some(addr.to_string())
                }
                _ => None,
            }
        })
        .collect()
}

/// `podman run --rm <image> ip addr show eth0`: the container sees the
/// addresses our host-local leased, and when it exits podman has run DEL
/// through our plugins (no lease, no veth, no chain).
#[test]
fn podman_run_rm_sees_our_lease_and_del_releases_it() {
    if !require_root("podman_run_rm_sees_our_lease_and_del_releases_it") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("cl-podman", 5, &mut cleanup);
    let podman = Podman::new(&net, &mut cleanup);

    let start = Instant::now();
    let mut args = vec!["run", "--rm", "--pull=never", "--network", &net.name];
    args.extend(ULIMITS);
    args.extend([podman.image.as_str(), "ip", "addr", "show", "eth0"]);
    let stdout = podman.ok(&args);
    println!("podman run --rm: {:.0} ms", ms(start.elapsed()));
    println!("{stdout}");

    let (v4, v6) = (net.ip4(2), net.ip6(2));
    assert_eq!(
        addrs_in_ip_output(&stdout),
        vec![format!("{v4}/24"), format!("{v6}/64")],
        "the container's eth0"
    );
    // Our host-local handed out exactly these addresses from our dataDir.
    assert_eq!(net.last_reserved(0), v4);
    assert_eq!(net.last_reserved(1), v6);

    // After exit: DEL went through our plugins.
    assert_eq!(net.leases(), BTreeMap::new(), "leases left after --rm");
    assert_eq!(net.ports(), Vec::<String>::new(), "veth left after --rm");
    let chains = |family| kernel::nat_rules(family, &format!("\\\"{}\\\"", net.name));
    assert_eq!(chains(IpFamily::V4), Vec::<String>::new(), "iptables left");
    assert_eq!(chains(IpFamily::V6), Vec::<String>::new(), "ip6tables left");
    assert_eq!(podman.ok(&["ps", "-a", "-q"]), "", "container left");
    assert!(
        kernel::link_exists(None, &net.bridge),
        "bridge created by ADD"
    );
}

/// A detached container (`sleep`): leases, veth, chains and addresses are in
/// place while it runs, it pings its gateway, and `podman rm -f` runs DEL
/// through our plugins.
#[test]
fn podman_detached_container_holds_leases_until_rm() {
    if !require_root("podman_detached_container_holds_leases_until_rm") {
        return;
    }
    let mut cleanup = Cleanup::new();
    let net = Net::new("cl-podman", 6, &mut cleanup);
    let podman = Podman::new(&net, &mut cleanup);
    let name = unique_name("cl-sleep");

    let start = Instant::now();
    let mut args = vec!["run", "-d", "--pull=never", "--name", &name];
    args.extend(["--network", &net.name]);
    args.extend(ULIMITS);
    args.extend([podman.image.as_str(), "sleep", "600"]);
    let id = podman.ok(&args).trim().to_string();
    println!("podman run -d: {:.0} ms", ms(start.elapsed()));
    assert_eq!(id.len(), 64, "podman printed no container ID: {id:?}");

    let inspect: Value =
        serde_json::from_str(&podman.ok(&["inspect", &name])).expect("podman inspect prints JSON");
    let settings = &inspect[0]["NetworkSettings"];
    let attached = &settings["Networks"][&net.name];
    assert_eq!(attached["IPAddress"], net.ip4(2), "{settings:#}");
    assert_eq!(attached["GlobalIPv6Address"], net.ip6(2), "{settings:#}");
    assert_eq!(attached["Gateway"], net.ip4(1), "{settings:#}");
    let sandbox = settings["SandboxKey"].as_str().expect("SandboxKey");
    let netns = Path::new(sandbox)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("odd SandboxKey {sandbox}"))
        .to_string();
    assert!(
        Path::new("/run/netns").join(&netns).exists(),
        "podman's netns {sandbox} is not under /run/netns"
    );

    let veths = net.ports();
    assert_eq!(veths.len(), 1, "one port on {}: {veths:?}", net.bridge);
    net.assert_attached(&netns, &id, &veths[0], 2);
    let cache = Path::new(PODMAN_CNI_CACHE).join(format!("{}-{id}-eth0", net.name));
    assert!(cache.is_file(), "no libcni cache {}", cache.display());

    for (dst, attempts) in [(net.ip4(1), 5), (net.ip6(1), 20)] {
        let (ok, last) = ping_with(attempts, &dst, |ping| {
            let mut args = vec!["exec", name.as_str()];
            args.extend(ping);
            podman.run(&args)
        });
        assert!(ok, "the container cannot ping its gateway {dst}\n{last}");
    }

    let start = Instant::now();
    podman.ok(&["rm", "-f", "-t", "0", &name]);
    println!("podman rm -f: {:.0} ms", ms(start.elapsed()));
    net.assert_detached(&id, &veths[0]);
    assert!(!Path::new(sandbox).exists(), "netns {sandbox} left");
    assert!(!cache.exists(), "libcni cache {} left", cache.display());
    assert_eq!(podman.ok(&["ps", "-a", "-q"]), "", "container left");
}
