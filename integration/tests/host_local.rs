//! Tests of the built `host-local` binary and the lease store it leaves on disk,
//! executed as a runtime does, and compared with the reference plugin
//! (`/usr/lib/cni/host-local`).
//!
//! host-local opens no network namespace, so these tests need no root: each
//! one gets a private `dataDir` in its own temporary directory (removed on
//! drop, even when the test fails) and a unique network name, so they run in
//! parallel and never touch `/var/lib/cni`. `CNI_NETNS` is a dummy path; the
//! dispatcher requires it for ADD and CHECK but host-local never opens it. The
//! binaries must have been built with `cargo build --workspace` first.
//!
//! File modes: our store writes leases and `last_reserved_ip.N` with mode 0600
//! like upstream ≥ v1.4.0; Debian's reference (1.1.1) writes 0644. Comparisons
//! with the reference are therefore on names and contents, and modes are
//! asserted for our files only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;

use integration::{Cleanup, PluginCall, PluginOutput, unique_name};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The reference plugin installed by Debian's `containernetworking-plugins`.
const REFERENCE: &str = "/usr/lib/cni/host-local";
/// `CNI_NETNS` for ADD and CHECK: required, never opened by host-local.
const NETNS: &str = "/var/run/netns/x";
const IFNAME: &str = "eth0";

/// Which host-local binary to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    Ours,
    Reference,
}

impl Impl {
    fn plugin(self) -> PluginCall {
        match self {
            Impl::Ours => PluginCall::new("host-local"),
            Impl::Reference => {
                assert!(
                    Path::new(REFERENCE).is_file(),
                    "reference plugin {REFERENCE} not found: install containernetworking-plugins"
                );
                PluginCall::with_binary(REFERENCE)
            }
        }
    }
}

/// A call as a runtime makes it: container ID, `CNI_IFNAME=eth0`, the config on
/// stdin, and `CNI_NETNS` for ADD and CHECK only (DEL must not need it).
fn call(imp: Impl, command: &str, id: &str, conf: &Value) -> PluginCall {
    let call = imp
        .plugin()
        .command(command)
        .container_id(id)
        .ifname(IFNAME)
        .config(conf);
    if command == "DEL" {
        call
    } else {
        call.netns(NETNS)
    }
}

/// ADD that must succeed; returns the result object.
fn add(imp: Impl, conf: &Value, id: &str) -> Value {
    call(imp, "ADD", id, conf).run().expect_success().json()
}

/// DEL that must succeed and print nothing.
fn del(imp: Impl, conf: &Value, id: &str) {
    let out = call(imp, "DEL", id, conf).run().expect_success();
    assert!(out.stdout.is_empty(), "DEL printed\n{}", out.describe());
}

/// CHECK that must succeed and print nothing.
fn check(imp: Impl, conf: &Value, id: &str) {
    let out = call(imp, "CHECK", id, conf).run().expect_success();
    assert!(out.stdout.is_empty(), "CHECK printed\n{}", out.describe());
}

/// Requires exit status 1 (not a panic's 101 or a signal) and an error object
/// with `code` and exactly `msg`.
fn assert_error(out: &PluginOutput, code: u64, msg: &str) -> Value {
    let err = out.expect_error(code);
    assert_eq!(out.code(), Some(1), "exit status\n{}", out.describe());
    assert_eq!(err["msg"], msg, "msg\n{}", out.describe());
    err
}

/// The addresses of a result's `ips`, in order.
fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("result has no ips: {result}"))
        .iter()
        .map(|ip| {
            ip["address"]
                .as_str()
                .unwrap_or_else(|| panic!("ip without address: {ip}"))
                .to_string()
        })
        .collect()
}

/// A private data directory (`<tmp>/data`, not created up front, so nothing in
/// `<tmp>` means "nothing created") and a unique network name.
struct Net {
    tmp: TempDir,
    name: String,
}

impl Net {
    fn new(test: &str) -> Net {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("hl-{test}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a tempdir: {e}"));
        Net {
            tmp,
            name: unique_name(test),
        }
    }

    /// The temporary directory holding everything this test may create.
    fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// The configured `dataDir`.
    fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// `<dataDir>/<network>`.
    fn store(&self) -> PathBuf {
        self.data_dir().join(&self.name)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.store().join(file)
    }

    /// A network config with `ipam` (plus `type` and our `dataDir`).
    fn conf(&self, version: &str, ipam: Value) -> Value {
        let mut ipam = ipam;
        ipam["type"] = json!("host-local");
        ipam["dataDir"] = json!(self.data_dir().display().to_string());
        json!({"cniVersion": version, "name": self.name, "type": "bridge", "ipam": ipam})
    }

    /// CRI-O's default network: 10.85.0.0/16 and 1100:200::/24.
    fn crio(&self, version: &str) -> Value {
        self.conf(version, crio_ipam())
    }

    /// Writes a file into the store by hand with `mode`.
    fn write(&self, file: &str, content: &[u8], mode: u32) {
        let path = self.path(file);
        fs::write(&path, content).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }

    fn names(&self) -> BTreeSet<String> {
        names(&self.store())
    }

    /// Every file under the store, recursively.
    fn snapshot(&self) -> Snapshot {
        snapshot(&self.store())
    }
}

fn crio_ipam() -> Value {
    json!({
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "1100:200::1/24"}],
        "ranges": [[{"subnet": "10.85.0.0/16"}], [{"subnet": "1100:200::/24"}]]
    })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

/// The names in `dir` (not recursive).
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Requires `path` to be a regular file owned by us, with exactly `content`
/// and `mode`.
fn assert_file(path: &Path, content: &str, file_mode: u32) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    assert_eq!(
        String::from_utf8_lossy(&read(path)),
        content,
        "content of {}",
        path.display()
    );
    assert_eq!(
        mode(path),
        file_mode,
        "mode of {}: {:o}",
        path.display(),
        mode(path)
    );
    assert_eq!(
        meta.uid(),
        nix::unistd::geteuid().as_raw(),
        "owner of {}",
        path.display()
    );
    assert_eq!(
        meta.gid(),
        nix::unistd::getegid().as_raw(),
        "group of {}",
        path.display()
    );
}

/// A lease file written by our plugin: `<id>\r\neth0`, no newline, 0600.
fn assert_lease(net: &Net, ip: &str, id: &str) {
    assert_file(&net.path(ip), &format!("{id}\r\n{IFNAME}"), 0o600);
}

/// `last_reserved_ip.<n>` written by our plugin: the IP, no newline, 0600.
fn assert_last_reserved(net: &Net, n: usize, ip: &str) {
    assert_file(&net.path(&format!("last_reserved_ip.{n}")), ip, 0o600);
}

/// One file or directory of a snapshot.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    dir: bool,
    mode: u32,
    content: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dir {
            write!(f, "dir {:o}", self.mode)
        } else {
            write!(
                f,
                "file {:o} {:?}",
                self.mode,
                String::from_utf8_lossy(&self.content)
            )
        }
    }
}

/// Relative path → kind, mode and content of everything below a directory.
type Snapshot = BTreeMap<String, Entry>;

fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        {
            let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let is_dir = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
                .is_dir();
            let content = if is_dir { Vec::new() } else { read(&path) };
            out.insert(
                rel,
                Entry {
                    dir: is_dir,
                    mode: mode(&path),
                    content,
                },
            );
            if is_dir {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

/// Names and contents only (the reference writes other modes).
fn contents(snap: &Snapshot) -> BTreeMap<String, String> {
    snap.iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.content).into_owned()))
        .collect()
}

fn without_last_reserved(snap: &Snapshot) -> Snapshot {
    snap.iter()
        .filter(|(k, _)| !k.starts_with("last_reserved_ip."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One step of a differential run.
struct Step<'a> {
    command: &'a str,
    id: &'a str,
    cni_args: Option<&'a str>,
}

fn step<'a>(command: &'a str, id: &'a str) -> Step<'a> {
    Step {
        command,
        id,
        cni_args: None,
    }
}

/// Runs `steps` with our plugin and with the reference, each on a fresh store
/// with the same config (`ipam` at `version`). Successful steps must print the
/// same bytes; failing steps the same `msg` (codes and the error object's
/// `cniVersion` differ: the reference reports 999 for everything). At the end
/// both stores must hold the same names and contents. Returns our outputs and
/// our network.
fn same_as_reference(
    test: &str,
    version: &str,
    ipam: &Value,
    steps: &[Step<'_>],
) -> (Vec<PluginOutput>, Net) {
    let ours = Net::new(test);
    let reference = Net::new(test);
    let mut outputs = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let run = |imp: Impl, net: &Net| {
            let mut c = call(imp, s.command, s.id, &net.conf(version, ipam.clone()));
            if let Some(args) = s.cni_args {
                c = c.args(args);
            }
            c.run()
        };
        let mine = run(Impl::Ours, &ours);
        let theirs = run(Impl::Reference, &reference);
        let what = format!(
            "step {i} ({} {} {:?}) at {version}\nours:\n{}\nreference:\n{}",
            s.command,
            s.id,
            s.cni_args,
            mine.describe(),
            theirs.describe()
        );
        assert_eq!(
            mine.success(),
            theirs.success(),
            "exit status differs, {what}"
        );
        if mine.success() {
            assert_eq!(
                mine.stdout_str(),
                theirs.stdout_str(),
                "stdout differs, {what}"
            );
        } else {
            assert_eq!(mine.code(), Some(1), "{what}");
            assert_eq!(
                mine.json()["msg"],
                theirs.json()["msg"],
                "msg differs, {what}"
            );
        }
        outputs.push(mine);
    }
    assert_eq!(
        contents(&ours.snapshot()),
        contents(&reference.snapshot()),
        "stores differ (left ours, right reference) at {version}"
    );
    (outputs, ours)
}

// ---------------------------------------------------------------------------
// Files and results
// ---------------------------------------------------------------------------

#[test]
fn add_lays_out_store_for_v4_and_v6() {
    let net = Net::new("hl_layout");
    let conf = net.crio("1.0.0");

    let first = add(Impl::Ours, &conf, "c1");
    assert_eq!(
        first,
        json!({
            "cniVersion": "1.0.0",
            "ips": [
                {"address": "10.85.0.2/16", "gateway": "10.85.0.1"},
                {"address": "1100:200::2/24", "gateway": "1100:200::1"}
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "1100:200::1/24"}],
            "dns": {}
        })
    );

    // The missing dataDir and the store are created 0755.
    assert_eq!(mode(&net.data_dir()), 0o755, "dataDir mode");
    assert_eq!(mode(&net.store()), 0o755, "store dir mode");
    assert_eq!(names(net.root()), set(&["data"]));
    // Beside the network's directory: our scan cache, private, one file per
    // store (a name no network can have, so the reference never reads it).
    assert_eq!(
        names(&net.data_dir()),
        set(&[net.name.as_str(), ".cni-rs-cache"])
    );
    let cache_dir = net.data_dir().join(".cni-rs-cache");
    assert_eq!(mode(&cache_dir), 0o700, "cache dir mode");
    assert_eq!(names(&cache_dir).len(), 1, "one cache file per store");
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.2",
            "1100:200::2",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    assert_file(&net.path("lock"), "", 0o750);
    assert_lease(&net, "10.85.0.2", "c1");
    assert_lease(&net, "1100:200::2", "c1");
    assert_eq!(
        read(&net.path("10.85.0.2")),
        b"c1\r\neth0",
        "exact lease bytes"
    );
    assert_last_reserved(&net, 0, "10.85.0.2");
    assert_last_reserved(&net, 1, "1100:200::2");

    let second = add(Impl::Ours, &conf, "c2");
    assert_eq!(addresses(&second), ["10.85.0.3/16", "1100:200::3/24"]);
    assert_eq!(second["ips"][0]["gateway"], "10.85.0.1");
    assert_eq!(second["ips"][1]["gateway"], "1100:200::1");
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.2",
            "1100:200::2",
            "10.85.0.3",
            "1100:200::3",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    assert_lease(&net, "10.85.0.2", "c1");
    assert_lease(&net, "1100:200::2", "c1");
    assert_lease(&net, "10.85.0.3", "c2");
    assert_lease(&net, "1100:200::3", "c2");
    assert_last_reserved(&net, 0, "10.85.0.3");
    assert_last_reserved(&net, 1, "1100:200::3");
    assert_file(&net.path("lock"), "", 0o750);
}

#[test]
fn add_result_at_0_3_1_has_versions_and_gateways() {
    let net = Net::new("hl_v031");
    let out = call(Impl::Ours, "ADD", "c1", &net.crio("0.3.1"))
        .run()
        .expect_success();
    assert_eq!(
        out.json(),
        json!({
            "cniVersion": "0.3.1",
            "ips": [
                {"version": "4", "address": "10.85.0.2/16", "gateway": "10.85.0.1"},
                {"version": "6", "address": "1100:200::2/24", "gateway": "1100:200::1"}
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "1100:200::1/24"}],
            "dns": {}
        })
    );
}

#[test]
fn add_output_is_byte_identical_to_reference() {
    // 0.3.1 is what CRI-O's default config uses; the others must hold too.
    for version in ["0.3.1", "0.3.0", "0.4.0", "1.0.0"] {
        let (outs, _) = same_as_reference(
            "hl_bytes",
            version,
            &crio_ipam(),
            &[step("ADD", "c1"), step("ADD", "c2")],
        );
        assert!(
            outs[0].stdout_str().contains("\"1100:200::1/24\""),
            "{}",
            outs[0].stdout_str()
        );
    }
}

#[test]
fn legacy_flat_subnet_with_range_start() {
    let ipam = json!({"subnet": "192.168.122.0/24", "rangeStart": "192.168.122.200"});
    let (outs, net) = same_as_reference(
        "hl_legacy",
        "1.0.0",
        &ipam,
        &[step("ADD", "c1"), step("ADD", "c2")],
    );
    assert_eq!(
        outs[0].json()["ips"],
        json!([{"address": "192.168.122.200/24", "gateway": "192.168.122.1"}])
    );
    assert_eq!(addresses(&outs[1].json()), ["192.168.122.201/24"]);
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "192.168.122.200",
            "192.168.122.201",
            "last_reserved_ip.0"
        ])
    );
    assert_lease(&net, "192.168.122.200", "c1");
    assert_lease(&net, "192.168.122.201", "c2");
    assert_last_reserved(&net, 0, "192.168.122.201");
}

#[test]
fn legacy_flat_subnet_is_prepended_to_ranges() {
    let ipam = json!({
        "subnet": "192.168.122.0/24",
        "rangeStart": "192.168.122.200",
        "ranges": [[{"subnet": "1100:200::/24"}]]
    });
    let (outs, net) = same_as_reference("hl_legacy_ranges", "1.0.0", &ipam, &[step("ADD", "c1")]);
    assert_eq!(
        outs[0].json()["ips"],
        json!([
            {"address": "192.168.122.200/24", "gateway": "192.168.122.1"},
            {"address": "1100:200::2/24", "gateway": "1100:200::1"}
        ])
    );
    assert_last_reserved(&net, 0, "192.168.122.200");
    assert_last_reserved(&net, 1, "1100:200::2");
}

#[test]
fn range_start_end_and_gateway_are_honoured() {
    // The gateway lies inside the range and is skipped.
    let ipam = json!({"ranges": [[{
        "subnet": "10.20.0.0/24",
        "rangeStart": "10.20.0.10",
        "rangeEnd": "10.20.0.12",
        "gateway": "10.20.0.11"
    }]]});
    let (outs, net) = same_as_reference(
        "hl_range",
        "1.0.0",
        &ipam,
        &[step("ADD", "c1"), step("ADD", "c2"), step("ADD", "c3")],
    );
    assert_eq!(
        outs[0].json()["ips"],
        json!([{"address": "10.20.0.10/24", "gateway": "10.20.0.11"}])
    );
    assert_eq!(
        outs[1].json()["ips"],
        json!([{"address": "10.20.0.12/24", "gateway": "10.20.0.11"}])
    );
    assert_error(
        &outs[2],
        999,
        "failed to allocate for range 0: no IP addresses available in range set: 10.20.0.10-10.20.0.12",
    );
    assert_eq!(
        net.names(),
        set(&["lock", "10.20.0.10", "10.20.0.12", "last_reserved_ip.0"])
    );
    assert_last_reserved(&net, 0, "10.20.0.12");
}

#[test]
fn multiple_ranges_in_one_set() {
    let ipam = json!({"ranges": [[
        {"subnet": "10.30.0.0/24", "rangeStart": "10.30.0.10", "rangeEnd": "10.30.0.11"},
        {"subnet": "10.31.0.0/24", "rangeStart": "10.31.0.20", "rangeEnd": "10.31.0.20", "gateway": "10.31.0.254"}
    ]]});
    let (outs, net) = same_as_reference(
        "hl_multi",
        "1.0.0",
        &ipam,
        &[
            step("ADD", "c1"),
            step("ADD", "c2"),
            step("ADD", "c3"),
            step("ADD", "c4"),
            step("DEL", "c1"),
            step("ADD", "c5"),
        ],
    );
    let ips: Vec<Value> = [0, 1, 2, 5]
        .iter()
        .map(|&i| outs[i].json()["ips"].clone())
        .collect();
    assert_eq!(
        ips,
        [
            json!([{"address": "10.30.0.10/24", "gateway": "10.30.0.1"}]),
            json!([{"address": "10.30.0.11/24", "gateway": "10.30.0.1"}]),
            json!([{"address": "10.31.0.20/24", "gateway": "10.31.0.254"}]),
            // After the last range's end the walk wraps to the first range.
            json!([{"address": "10.30.0.10/24", "gateway": "10.30.0.1"}]),
        ]
    );
    assert_error(
        &outs[3],
        999,
        "failed to allocate for range 0: no IP addresses available in range set: \
         10.30.0.10-10.30.0.11,10.31.0.20-10.31.0.20",
    );
    assert_lease(&net, "10.30.0.10", "c5");
    assert_lease(&net, "10.30.0.11", "c2");
    assert_lease(&net, "10.31.0.20", "c3");
    assert_last_reserved(&net, 0, "10.30.0.10");
}

#[test]
fn runtime_config_ip_ranges_override_the_configured_ranges() {
    // Issue #4 and the conventions: runtimeConfig.ipRanges overrides `ranges`
    // (and the legacy flat range). The reference prepends them instead, so a
    // pod gets one address per set from all three; that is a documented
    // difference (README), pinned here against the reference's behaviour.
    let net = Net::new("hl_ipranges");
    let mut conf = net.conf(
        "1.0.0",
        json!({"subnet": "192.168.9.0/24", "ranges": [[{"subnet": "10.85.0.0/16"}]]}),
    );
    conf["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.77.0.0/16"}]]});
    let mine = call(Impl::Ours, "ADD", "c1", &conf).run().expect_success();

    let reference = Net::new("hl_ipranges");
    let mut ref_conf = reference.conf("1.0.0", conf["ipam"].clone());
    ref_conf["runtimeConfig"] = conf["runtimeConfig"].clone();
    let theirs = call(Impl::Reference, "ADD", "c1", &ref_conf)
        .run()
        .expect_success();
    assert_eq!(
        addresses(&theirs.json()),
        ["10.77.0.2/16", "192.168.9.2/24", "10.85.0.2/16"],
        "the reference's behaviour changed"
    );
    assert_eq!(
        addresses(&mine.json()),
        ["10.77.0.2/16"],
        "runtimeConfig.ipRanges must replace the configured ranges"
    );
}

// ---------------------------------------------------------------------------
// resolvConf
// ---------------------------------------------------------------------------

#[test]
fn resolv_conf_fills_dns() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let resolv = tmp.path().join("resolv.conf");
    fs::write(
        &resolv,
        "# generated\n; comment\nnameserver 10.85.0.1\nnameserver 1100:200::1\n\
         domain old.example\ndomain cluster.example\nsearch a.example b.example\n\
         options ndots:5 rotate\nnameserver\n",
    )
    .unwrap_or_else(|e| panic!("writing resolv.conf: {e}"));
    let mut ipam = crio_ipam();
    ipam["resolvConf"] = json!(resolv.display().to_string());
    let (outs, _) = same_as_reference("hl_resolv", "1.0.0", &ipam, &[step("ADD", "c1")]);
    assert_eq!(
        outs[0].json()["dns"],
        json!({
            "nameservers": ["10.85.0.1", "1100:200::1"],
            "domain": "cluster.example",
            "search": ["a.example", "b.example"],
            "options": ["ndots:5", "rotate"]
        })
    );
}

#[test]
fn missing_resolv_conf_fails_and_creates_nothing() {
    let net = Net::new("hl_resolv_missing");
    let resolv = net.root().join("no-such-resolv.conf");
    let mut ipam = crio_ipam();
    ipam["resolvConf"] = json!(resolv.display().to_string());
    let out = call(Impl::Ours, "ADD", "c1", &net.conf("1.0.0", ipam)).run();
    // The reference: code 999, "open <path>: no such file or directory".
    assert_error(
        &out,
        5,
        &format!("open {}: no such file or directory", resolv.display()),
    );
    assert_eq!(
        snapshot(net.root()),
        Snapshot::new(),
        "something was created"
    );
}

// ---------------------------------------------------------------------------
// Requested IPs
// ---------------------------------------------------------------------------

#[test]
fn requested_ip_from_cni_args() {
    let net = Net::new("hl_req_args");
    let out = call(Impl::Ours, "ADD", "c1", &net.crio("1.0.0"))
        .args("IP=10.85.0.50")
        .run()
        .expect_success();
    assert_eq!(addresses(&out.json()), ["10.85.0.50/16", "1100:200::2/24"]);
    assert_lease(&net, "10.85.0.50", "c1");
    assert_last_reserved(&net, 0, "10.85.0.50");
}

#[test]
fn requested_ip_from_args_cni_ips() {
    let net = Net::new("hl_req_argsips");
    let mut conf = net.crio("1.0.0");
    conf["args"] = json!({"cni": {"ips": ["1100:200::50/24"]}});
    let out = add(Impl::Ours, &conf, "c1");
    // The prefix is ignored.
    assert_eq!(addresses(&out), ["10.85.0.2/16", "1100:200::50/24"]);
    assert_lease(&net, "1100:200::50", "c1");
    assert_last_reserved(&net, 1, "1100:200::50");
}

#[test]
fn requested_ip_from_runtime_config_ips() {
    let net = Net::new("hl_req_rc");
    let mut conf = net.crio("1.0.0");
    conf["runtimeConfig"] = json!({"ips": ["10.85.7.7"]});
    let out = add(Impl::Ours, &conf, "c1");
    assert_eq!(addresses(&out), ["10.85.7.7/16", "1100:200::2/24"]);
    assert_lease(&net, "10.85.7.7", "c1");
}

#[test]
fn requested_ips_from_all_sources_are_merged() {
    let ipam = json!({"ranges": [
        [{"subnet": "10.85.0.0/16"}],
        [{"subnet": "1100:200::/24"}],
        [{"subnet": "10.86.0.0/16"}]
    ]});
    let ours = Net::new("hl_req_merge");
    let mut conf = ours.conf("1.0.0", ipam.clone());
    conf["args"] = json!({"cni": {"ips": ["1100:200::50"]}});
    // 10.85.0.50 again: duplicates across sources are merged.
    conf["runtimeConfig"] = json!({"ips": ["10.86.0.7/16", "10.85.0.50"]});
    let mine = call(Impl::Ours, "ADD", "c1", &conf)
        .args("IP=10.85.0.50")
        .run()
        .expect_success();
    assert_eq!(
        addresses(&mine.json()),
        ["10.85.0.50/16", "1100:200::50/24", "10.86.0.7/16"]
    );
    assert_lease(&ours, "10.85.0.50", "c1");
    assert_lease(&ours, "1100:200::50", "c1");
    assert_lease(&ours, "10.86.0.7", "c1");
    assert_last_reserved(&ours, 2, "10.86.0.7");

    let reference = Net::new("hl_req_merge");
    let mut ref_conf = reference.conf("1.0.0", ipam);
    ref_conf["args"] = conf["args"].clone();
    ref_conf["runtimeConfig"] = conf["runtimeConfig"].clone();
    let theirs = call(Impl::Reference, "ADD", "c1", &ref_conf)
        .args("IP=10.85.0.50")
        .run()
        .expect_success();
    assert_eq!(
        mine.stdout_str(),
        theirs.stdout_str(),
        "stdout differs from the reference"
    );
    assert_eq!(contents(&ours.snapshot()), contents(&reference.snapshot()));
}

#[test]
fn two_requested_ips_in_one_family_fail() {
    // host-local does not let args.cni.ips override CNI_ARGS: both are
    // requested, only one fits the single v4 set, the other is left over.
    let net = Net::new("hl_req_two");
    let mut conf = net.crio("1.0.0");
    conf["args"] = json!({"cni": {"ips": ["10.85.0.51"]}});
    let out = call(Impl::Ours, "ADD", "c1", &conf)
        .args("IP=10.85.0.50")
        .run();
    assert_error(
        &out,
        999,
        "failed to allocate all requested IPs: 10.85.0.51",
    );
    assert_eq!(
        net.names(),
        set(&["lock", "last_reserved_ip.0", "last_reserved_ip.1"]),
        "the allocations were not rolled back"
    );
}

#[test]
fn requested_ip_taken_fails_and_changes_nothing() {
    let net = Net::new("hl_req_taken");
    let conf = net.crio("1.0.0");
    call(Impl::Ours, "ADD", "c1", &conf)
        .args("IP=10.85.0.50")
        .run()
        .expect_success();
    let before = snapshot(net.root());

    let out = call(Impl::Ours, "ADD", "c2", &conf)
        .args("IP=10.85.0.50")
        .run();
    assert_error(
        &out,
        999,
        "failed to allocate for range 0: requested IP address 10.85.0.50 is not available \
         in range set 10.85.0.1-10.85.255.254",
    );
    assert_eq!(snapshot(net.root()), before, "the store changed");
    assert_lease(&net, "10.85.0.50", "c1");
}

#[test]
fn requested_ip_taken_in_second_set_rolls_back_the_first() {
    // Set 0 (v4) is allocated dynamically, then set 1 fails: the v4 lease is
    // released again. As in the reference, last_reserved_ip.0 keeps the
    // rolled-back address (round-robin is never rewound).
    let steps = [
        Step {
            command: "ADD",
            id: "c1",
            cni_args: Some("IP=1100:200::50"),
        },
        Step {
            command: "ADD",
            id: "c2",
            cni_args: Some("IP=1100:200::50"),
        },
        step("ADD", "c3"),
    ];
    let net = Net::new("hl_req_taken1");
    let conf = net.crio("1.0.0");
    let first = call(Impl::Ours, "ADD", "c1", &conf)
        .args("IP=1100:200::50")
        .run()
        .expect_success();
    assert_eq!(
        addresses(&first.json()),
        ["10.85.0.2/16", "1100:200::50/24"]
    );
    let before = net.snapshot();
    let out = call(Impl::Ours, "ADD", "c2", &conf)
        .args("IP=1100:200::50")
        .run();
    assert_error(
        &out,
        999,
        "failed to allocate for range 1: requested IP address 1100:200::50 is not available \
         in range set 1100:200::1-1100:2ff:ffff:ffff:ffff:ffff:ffff:ffff",
    );
    let after = net.snapshot();
    assert_eq!(
        without_last_reserved(&after),
        without_last_reserved(&before),
        "leases changed"
    );
    assert_last_reserved(&net, 0, "10.85.0.3");
    assert_last_reserved(&net, 1, "1100:200::50");

    let (outs, _) = same_as_reference("hl_req_taken1", "1.0.0", &crio_ipam(), &steps);
    assert_eq!(
        addresses(&outs[2].json()),
        ["10.85.0.4/16", "1100:200::51/24"]
    );
}

#[test]
fn requested_ip_outside_all_ranges_fails_and_rolls_back() {
    let net = Net::new("hl_req_outside");
    let conf = net.crio("1.0.0");
    add(Impl::Ours, &conf, "c0");
    let before = net.snapshot();

    let out = call(Impl::Ours, "ADD", "c1", &conf)
        .args("IP=10.99.3.4")
        .run();
    assert_error(&out, 999, "failed to allocate all requested IPs: 10.99.3.4");
    let after = net.snapshot();
    // Both the v4 and the v6 allocation of this call were rolled back: every
    // lease, the lock and the directory are unchanged.
    assert_eq!(
        without_last_reserved(&after),
        without_last_reserved(&before),
        "leases changed"
    );
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.2",
            "1100:200::2",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    // Only the round-robin cursors moved, exactly as the reference's do.
    assert_last_reserved(&net, 0, "10.85.0.3");
    assert_last_reserved(&net, 1, "1100:200::3");

    let (outs, _) = same_as_reference(
        "hl_req_outside",
        "1.0.0",
        &crio_ipam(),
        &[
            step("ADD", "c0"),
            Step {
                command: "ADD",
                id: "c1",
                cni_args: Some("IP=10.99.3.4"),
            },
            step("ADD", "c1"),
        ],
    );
    assert_eq!(
        addresses(&outs[2].json()),
        ["10.85.0.4/16", "1100:200::4/24"]
    );
}

// ---------------------------------------------------------------------------
// Exhaustion
// ---------------------------------------------------------------------------

#[test]
fn exhausted_range_fails_changes_nothing_and_recovers_after_del() {
    let net = Net::new("hl_exhaust");
    let conf = net.conf("1.0.0", json!({"ranges": [[{"subnet": "10.10.0.0/30"}]]}));
    // .0 network, .1 gateway, .3 broadcast: only .2 is allocatable.
    let first = add(Impl::Ours, &conf, "c1");
    assert_eq!(
        first["ips"],
        json!([{"address": "10.10.0.2/30", "gateway": "10.10.0.1"}])
    );
    let before = snapshot(net.root());

    let msg = "failed to allocate for range 0: no IP addresses available in range set: \
               10.10.0.1-10.10.0.2";
    for id in ["c2", "c3"] {
        let out = call(Impl::Ours, "ADD", id, &conf).run();
        assert_error(&out, 999, msg);
        assert_eq!(snapshot(net.root()), before, "the store changed");
    }

    del(Impl::Ours, &conf, "c1");
    assert_eq!(net.names(), set(&["lock", "last_reserved_ip.0"]));
    let again = add(Impl::Ours, &conf, "c2");
    assert_eq!(addresses(&again), ["10.10.0.2/30"]);
    assert_lease(&net, "10.10.0.2", "c2");

    // The reference fails the same way.
    let (outs, _) = same_as_reference(
        "hl_exhaust",
        "1.0.0",
        &json!({"ranges": [[{"subnet": "10.10.0.0/30"}]]}),
        &[
            step("ADD", "c1"),
            step("ADD", "c2"),
            step("DEL", "c1"),
            step("ADD", "c2"),
        ],
    );
    assert_error(&outs[1], 999, msg);
}

// ---------------------------------------------------------------------------
// DEL and CHECK
// ---------------------------------------------------------------------------

#[test]
fn del_releases_only_that_attachment() {
    let net = Net::new("hl_del");
    let conf = net.crio("1.0.0");
    add(Impl::Ours, &conf, "c1");
    add(Impl::Ours, &conf, "c2");
    let before = net.snapshot();

    del(Impl::Ours, &conf, "c1");
    let after = net.snapshot();
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.3",
            "1100:200::3",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    for kept in [
        "lock",
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "10.85.0.3",
        "1100:200::3",
    ] {
        assert_eq!(after.get(kept), before.get(kept), "{kept} changed");
    }

    // Idempotent, and unknown containers or interfaces are no error.
    del(Impl::Ours, &conf, "c1");
    assert_eq!(net.snapshot(), after, "second DEL changed the store");
    del(Impl::Ours, &conf, "never-added");
    assert_eq!(
        net.snapshot(),
        after,
        "DEL of an unknown container changed the store"
    );
    let out = PluginCall::new("host-local")
        .command("DEL")
        .container_id("c2")
        .ifname("eth1")
        .config(&conf)
        .run()
        .expect_success();
    assert!(out.stdout.is_empty());
    assert_eq!(net.snapshot(), after, "DEL of c2/eth1 released c2/eth0");

    // The next ADD continues after the last reserved address.
    assert_eq!(
        addresses(&add(Impl::Ours, &conf, "c3")),
        ["10.85.0.4/16", "1100:200::4/24"]
    );
}

#[test]
fn del_of_a_never_used_network_succeeds_and_creates_nothing() {
    let net = Net::new("hl_del_fresh");
    del(Impl::Ours, &net.crio("1.0.0"), "c1");
    // The reference creates the store directory and its lock file here.
    assert!(
        !net.store().exists(),
        "DEL created {}",
        net.store().display()
    );
}

#[test]
fn del_releases_hand_written_legacy_leases() {
    let net = Net::new("hl_legacy_lease");
    let conf = net.crio("1.0.0");
    add(Impl::Ours, &conf, "c0");
    // Older releases wrote only the container ID (readers trim the content).
    net.write("10.85.0.9", b"legacy1", 0o644);
    net.write("1100:200::9", b"legacy1\n", 0o644);
    // A legacy lease of a container that also has current leases.
    net.write("10.85.0.10", b"c0", 0o644);

    check(Impl::Ours, &conf, "legacy1");
    del(Impl::Ours, &conf, "legacy1");
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.2",
            "1100:200::2",
            "10.85.0.10",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    let out = call(Impl::Ours, "CHECK", "legacy1", &conf).run();
    assert_error(
        &out,
        999,
        "host-local: Failed to find address added by container legacy1",
    );

    // Current-format leases are released first; legacy ones only when no
    // current lease matches.
    del(Impl::Ours, &conf, "c0");
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.10",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    del(Impl::Ours, &conf, "c0");
    assert_eq!(
        net.names(),
        set(&["lock", "last_reserved_ip.0", "last_reserved_ip.1"])
    );
}

#[test]
fn check_succeeds_after_add_and_fails_without_lease() {
    let net = Net::new("hl_check");
    let conf = net.crio("1.0.0");
    add(Impl::Ours, &conf, "c1");
    check(Impl::Ours, &conf, "c1");
    let before = net.snapshot();

    let msg = "host-local: Failed to find address added by container c1";
    let other_if = PluginCall::new("host-local")
        .command("CHECK")
        .container_id("c1")
        .netns(NETNS)
        .ifname("eth1")
        .config(&conf)
        .run();
    assert_error(&other_if, 999, msg);
    let unknown = call(Impl::Ours, "CHECK", "c9", &conf).run();
    assert_error(
        &unknown,
        999,
        "host-local: Failed to find address added by container c9",
    );
    assert_eq!(net.snapshot(), before, "CHECK changed the store");

    // One remaining lease is enough.
    fs::remove_file(net.path("10.85.0.2")).unwrap_or_else(|e| panic!("rm: {e}"));
    check(Impl::Ours, &conf, "c1");
    fs::remove_file(net.path("1100:200::2")).unwrap_or_else(|e| panic!("rm: {e}"));
    let out = call(Impl::Ours, "CHECK", "c1", &conf).run();
    assert_error(&out, 999, msg);
}

// ---------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------

/// Our store treats an empty (or whitespace-only) lease file as stale: every
/// writer writes under the lock, so only a crashed writer leaves one. It
/// matches no container and `reserve` replaces it. (The reference instead
/// skips such a file forever.)
#[test]
fn stray_empty_lease_does_not_block_its_address() {
    let net = Net::new("hl_stray");
    let conf = net.crio("1.0.0");
    // Create the store, then free everything again.
    add(Impl::Ours, &conf, "c0");
    del(Impl::Ours, &conf, "c0");
    fs::remove_file(net.path("last_reserved_ip.0")).unwrap_or_else(|e| panic!("rm: {e}"));
    fs::remove_file(net.path("last_reserved_ip.1")).unwrap_or_else(|e| panic!("rm: {e}"));
    net.write("10.85.0.2", b"", 0o600);
    net.write("1100:200::2", b" \r\n", 0o600);

    // Dynamic allocation reclaims the stray files.
    let out = add(Impl::Ours, &conf, "c1");
    assert_eq!(addresses(&out), ["10.85.0.2/16", "1100:200::2/24"]);
    assert_lease(&net, "10.85.0.2", "c1");
    assert_lease(&net, "1100:200::2", "c1");

    // So does a requested address.
    del(Impl::Ours, &conf, "c1");
    net.write("10.85.0.50", b"", 0o600);
    let out = call(Impl::Ours, "ADD", "c2", &conf)
        .args("IP=10.85.0.50")
        .run()
        .expect_success();
    assert_eq!(addresses(&out.json())[0], "10.85.0.50/16");
    assert_lease(&net, "10.85.0.50", "c2");
}

#[test]
fn leftover_tmp_files_are_ignored_and_removed() {
    let net = Net::new("hl_tmp");
    let conf = net.crio("1.0.0");
    add(Impl::Ours, &conf, "c0");
    del(Impl::Ours, &conf, "c0");
    fs::remove_file(net.path("last_reserved_ip.0")).unwrap_or_else(|e| panic!("rm: {e}"));
    // What a writer killed between write and link/rename leaves behind.
    net.write(".tmp-10.85.0.2-99999", b"ghost\r\neth0", 0o600);
    net.write(".tmp-last_reserved_ip.0-99999", b"10.85.0.99", 0o600);

    let out = add(Impl::Ours, &conf, "c1");
    assert_eq!(addresses(&out)[0], "10.85.0.2/16");
    let ghost = call(Impl::Ours, "CHECK", "ghost", &conf).run();
    assert_error(
        &ghost,
        999,
        "host-local: Failed to find address added by container ghost",
    );
    del(Impl::Ours, &conf, "ghost");
    del(Impl::Ours, &conf, "c1");
    // Their writer is dead (writers hold the lock), so the first scan removed them.
    assert_eq!(
        net.names(),
        set(&["lock", "last_reserved_ip.0", "last_reserved_ip.1"])
    );
    assert_last_reserved(&net, 0, "10.85.0.2");
}

// ---------------------------------------------------------------------------
// Compatibility with the reference store
// ---------------------------------------------------------------------------

#[test]
fn reference_leases_are_honoured_by_ours() {
    let net = Net::new("hl_compat_ref");
    let conf = net.crio("1.0.0");
    let theirs = add(Impl::Reference, &conf, "c1");
    assert_eq!(addresses(&theirs), ["10.85.0.2/16", "1100:200::2/24"]);

    check(Impl::Ours, &conf, "c1");
    let mine = add(Impl::Ours, &conf, "c2");
    assert_eq!(addresses(&mine), ["10.85.0.3/16", "1100:200::3/24"]);
    // Requesting the reference's address is refused, not handed out twice.
    let out = call(Impl::Ours, "ADD", "c3", &conf)
        .args("IP=10.85.0.2")
        .run();
    assert_error(
        &out,
        999,
        "failed to allocate for range 0: requested IP address 10.85.0.2 is not available \
         in range set 10.85.0.1-10.85.255.254",
    );

    del(Impl::Ours, &conf, "c1");
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.3",
            "1100:200::3",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    assert_lease(&net, "10.85.0.3", "c2");
    assert_lease(&net, "1100:200::3", "c2");
}

#[test]
fn our_leases_are_honoured_by_reference() {
    let net = Net::new("hl_compat_ours");
    let conf = net.crio("1.0.0");
    add(Impl::Ours, &conf, "c1");

    check(Impl::Reference, &conf, "c1");
    // The reference continues after our last_reserved_ip files.
    let theirs = add(Impl::Reference, &conf, "c2");
    assert_eq!(addresses(&theirs), ["10.85.0.3/16", "1100:200::3/24"]);
    check(Impl::Ours, &conf, "c2");

    del(Impl::Reference, &conf, "c1");
    assert_eq!(
        net.names(),
        set(&[
            "lock",
            "10.85.0.3",
            "1100:200::3",
            "last_reserved_ip.0",
            "last_reserved_ip.1"
        ])
    );
    let out = call(Impl::Reference, "CHECK", "c1", &conf).run();
    assert!(
        !out.success(),
        "reference CHECK found a released lease\n{}",
        out.describe()
    );
    del(Impl::Ours, &conf, "c2");
    assert_eq!(
        net.names(),
        set(&["lock", "last_reserved_ip.0", "last_reserved_ip.1"])
    );
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

/// Runs `command` for every ID at once, each in its own process.
fn in_parallel(imps: &[Impl], command: &str, conf: &Value, ids: &[String]) -> Vec<PluginOutput> {
    thread::scope(|scope| {
        let handles: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let imp = imps[i % imps.len()];
                scope.spawn(move || call(imp, command, id, conf).run())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("{command} thread panicked"))
            })
            .collect()
    })
}

/// Requires 0..n distinct v4 and v6 addresses from `outs`, one lease file each
/// naming its container; returns them.
fn distinct_allocations(
    net: &Net,
    outs: &[PluginOutput],
    ids: &[String],
) -> (BTreeSet<IpAddr>, BTreeSet<IpAddr>) {
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for (out, id) in outs.iter().zip(ids) {
        if !out.success() {
            panic!("ADD {id} failed\n{}", out.describe());
        }
        for address in addresses(&out.json()) {
            let ip: IpAddr = address
                .split('/')
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("bad address {address}"));
            let fresh = if ip.is_ipv4() {
                v4.insert(ip)
            } else {
                v6.insert(ip)
            };
            assert!(fresh, "{ip} handed out twice");
            let lease = read(&net.path(&ip.to_string()));
            assert_eq!(
                String::from_utf8_lossy(&lease),
                format!("{id}\r\n{IFNAME}"),
                "lease of {ip}"
            );
        }
    }
    (v4, v6)
}

#[test]
fn fifty_parallel_adds_and_dels() {
    const N: usize = 50;
    let net = Net::new("hl_parallel");
    let conf = net.crio("1.0.0");
    let ids: Vec<String> = (0..N).map(|i| format!("par{i}")).collect();

    let outs = in_parallel(&[Impl::Ours], "ADD", &conf, &ids);
    let (v4, v6) = distinct_allocations(&net, &outs, &ids);
    println!(
        "parallel ADD: {N} calls, {} distinct IPv4, {} distinct IPv6",
        v4.len(),
        v6.len()
    );
    assert_eq!((v4.len(), v6.len()), (N, N));
    // From a fresh store round-robin hands out exactly .2 ..= .51 (::2 ..= ::33).
    let expected_v4: BTreeSet<IpAddr> = (2..2 + N)
        .map(|i| IpAddr::from([10, 85, 0, u8::try_from(i).unwrap_or(0)]))
        .collect();
    let expected_v6: BTreeSet<IpAddr> = (2..2 + N)
        .map(|i| IpAddr::from([0x1100, 0x200, 0, 0, 0, 0, 0, u16::try_from(i).unwrap_or(0)]))
        .collect();
    assert_eq!(v4, expected_v4);
    assert_eq!(v6, expected_v6);
    let last4 = String::from_utf8_lossy(&read(&net.path("last_reserved_ip.0"))).into_owned();
    let last6 = String::from_utf8_lossy(&read(&net.path("last_reserved_ip.1"))).into_owned();
    let max4 = v4.iter().max().map(IpAddr::to_string);
    let max6 = v6.iter().max().map(IpAddr::to_string);
    assert_eq!(Some(last4.clone()), max4, "last_reserved_ip.0");
    assert_eq!(Some(last6.clone()), max6, "last_reserved_ip.1");
    assert_eq!(net.names().len(), 2 * N + 3, "{:?}", net.names());
    println!("parallel ADD: last_reserved_ip.0={last4} last_reserved_ip.1={last6}");

    let outs = in_parallel(&[Impl::Ours], "DEL", &conf, &ids);
    let failed = outs.iter().filter(|o| !o.success()).count();
    println!(
        "parallel DEL: {N} calls, {failed} failed, {} files left",
        net.names().len()
    );
    for out in &outs {
        assert!(out.success(), "DEL failed\n{}", out.describe());
    }
    assert_eq!(
        net.names(),
        set(&["lock", "last_reserved_ip.0", "last_reserved_ip.1"])
    );
    assert_last_reserved(&net, 0, &last4);
    assert_last_reserved(&net, 1, &last6);
}

#[test]
fn parallel_adds_mixed_with_reference_never_collide() {
    // Both take flock(LOCK_EX) on the same `lock` file.
    const N: usize = 40;
    let net = Net::new("hl_parallel_mix");
    let conf = net.crio("1.0.0");
    let ids: Vec<String> = (0..N).map(|i| format!("mix{i}")).collect();
    let imps = [Impl::Ours, Impl::Reference];

    let outs = in_parallel(&imps, "ADD", &conf, &ids);
    let (v4, v6) = distinct_allocations(&net, &outs, &ids);
    println!(
        "mixed parallel ADD: {N} calls ({} ours), {} distinct IPv4, {} distinct IPv6",
        N / 2,
        v4.len(),
        v6.len()
    );
    assert_eq!((v4.len(), v6.len()), (N, N));

    let outs = in_parallel(&imps, "DEL", &conf, &ids);
    for out in &outs {
        assert!(out.success(), "DEL failed\n{}", out.describe());
    }
    assert_eq!(
        net.names(),
        set(&["lock", "last_reserved_ip.0", "last_reserved_ip.1"])
    );
}

// ---------------------------------------------------------------------------
// Bad input: an error object with the right code, exit status 1, nothing created
// ---------------------------------------------------------------------------

/// ADD with `ipam` must fail with `code` and `msg` and leave the test's
/// temporary directory empty.
fn assert_rejected(test: &str, ipam: Value, code: u64, msg: &str) {
    let net = Net::new(test);
    let out = call(Impl::Ours, "ADD", "c1", &net.conf("1.0.0", ipam)).run();
    assert_error(&out, code, msg);
    assert_eq!(
        snapshot(net.root()),
        Snapshot::new(),
        "something was created"
    );
}

#[test]
fn malformed_json_is_rejected() {
    let net = Net::new("hl_bad_json");
    let text = net.crio("1.0.0").to_string();
    let truncated = &text[..text.len() - 1];
    let out = PluginCall::new("host-local")
        .command("ADD")
        .container_id("c1")
        .netns(NETNS)
        .ifname(IFNAME)
        .stdin(truncated)
        .run();
    assert_error(
        &out,
        6,
        "error unmarshall network config: unexpected end of JSON input",
    );
    assert_eq!(
        snapshot(net.root()),
        Snapshot::new(),
        "something was created"
    );
}

#[test]
fn unparsable_cidr_is_rejected() {
    assert_rejected(
        "hl_bad_cidr",
        json!({"ranges": [[{"subnet": "10.85.0.0/33"}]]}),
        7,
        "invalid CIDR address: 10.85.0.0/33",
    );
}

#[test]
fn subnet_with_host_bits_is_rejected() {
    assert_rejected(
        "hl_bad_hostbits",
        json!({"ranges": [[{"subnet": "10.85.0.1/16"}]]}),
        7,
        "invalid range set 0: Network has host bits set. For a subnet mask of length 16 \
         the network address is 10.85.0.0",
    );
}

#[test]
fn range_start_after_range_end_is_rejected() {
    // The reference says "RangeStart 10.85.0.9 not in network 10.85.0.0/16" here.
    assert_rejected(
        "hl_bad_order",
        json!({"ranges": [[{"subnet": "10.85.0.0/16", "rangeStart": "10.85.0.9", "rangeEnd": "10.85.0.5"}]]}),
        7,
        "invalid range set 0: RangeStart 10.85.0.9 is after RangeEnd 10.85.0.5",
    );
}

#[test]
fn range_start_outside_subnet_is_rejected() {
    assert_rejected(
        "hl_bad_start",
        json!({"ranges": [[{"subnet": "10.85.0.0/16", "rangeStart": "10.86.0.9"}]]}),
        7,
        "invalid range set 0: RangeStart 10.86.0.9 not in network 10.85.0.0/16",
    );
}

#[test]
fn too_small_subnet_is_rejected() {
    assert_rejected(
        "hl_bad_small",
        json!({"ranges": [[{"subnet": "10.85.0.0/31"}]]}),
        7,
        "invalid range set 0: Network 10.85.0.0/31 too small to allocate from",
    );
}

#[test]
fn overlapping_range_sets_are_rejected() {
    assert_rejected(
        "hl_bad_overlap",
        json!({"ranges": [[{"subnet": "10.85.0.0/16"}], [{"subnet": "10.85.1.0/24"}]]}),
        7,
        "range set 0 overlaps with 1",
    );
}

#[test]
fn mixed_families_in_a_range_set_are_rejected() {
    assert_rejected(
        "hl_bad_mixed",
        json!({"ranges": [[{"subnet": "10.85.0.0/16"}, {"subnet": "1100:200::/24"}]]}),
        7,
        "invalid range set 0: mixed address families",
    );
}

#[test]
fn range_start_of_the_other_family_is_rejected() {
    assert_rejected(
        "hl_bad_family",
        json!({"ranges": [[{"subnet": "10.85.0.0/16", "rangeStart": "1100:200::5"}]]}),
        7,
        "invalid range set 0: RangeStart 1100:200::5 not in network 10.85.0.0/16",
    );
}

#[test]
fn data_dir_traversal_is_rejected() {
    // The reference follows this path and creates /etc/<network>; never run
    // it here. The Cleanup removes what a regression would leave behind.
    let name = unique_name("hl_bad_datadir");
    let escaped = Path::new("/etc").join(&name);
    let mut cleanup = Cleanup::new();
    cleanup.remove_path(&escaped);
    let tmp_x_existed = Path::new("/tmp/x").exists();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "ipam": {
            "type": "host-local",
            "dataDir": "/tmp/x/../../etc",
            "ranges": [[{"subnet": "10.85.0.0/16"}]]
        }
    });
    let msg = "invalid dataDir \"/tmp/x/../../etc\": it must not be empty or contain NUL or '..' components";
    for command in ["ADD", "CHECK", "DEL"] {
        let out = call(Impl::Ours, command, "c1", &conf).run();
        assert_error(&out, 7, msg);
    }
    assert!(!escaped.exists(), "{} was created", escaped.display());
    assert_eq!(
        Path::new("/tmp/x").exists(),
        tmp_x_existed,
        "/tmp/x was created"
    );

    // The same inside a private directory: nothing at all is created.
    let net = Net::new("hl_bad_datadir");
    let mut conf = net.crio("1.0.0");
    let dotted = format!("{}/a/../escape", net.root().display());
    conf["ipam"]["dataDir"] = json!(dotted);
    for command in ["ADD", "CHECK", "DEL"] {
        let out = call(Impl::Ours, command, "c1", &conf).run();
        assert_error(
            &out,
            7,
            &format!(
                "invalid dataDir \"{dotted}\": it must not be empty or contain NUL or '..' components"
            ),
        );
    }
    assert_eq!(
        snapshot(net.root()),
        Snapshot::new(),
        "something was created"
    );
}

/// ADD, CHECK and DEL with network `name` (dataDir `<tmp>/data`) must be
/// refused by the dispatcher's name check, creating nothing (`../x` would land
/// in `<tmp>/x`).
fn assert_bad_network_name(test: &str, name: &str) {
    let net = Net::new(test);
    let mut conf = net.crio("1.0.0");
    conf["name"] = json!(name);
    for command in ["ADD", "CHECK", "DEL"] {
        let out = call(Impl::Ours, command, "c1", &conf).run();
        let err = assert_error(&out, 7, "invalid characters found in network name");
        assert_eq!(err["details"], name, "{command}");
    }
    assert_eq!(
        snapshot(net.root()),
        Snapshot::new(),
        "something was created"
    );
}

#[test]
fn network_name_with_dotdot_is_rejected() {
    assert_bad_network_name("hl_bad_name_dotdot", "../x");
}

#[test]
fn network_name_with_slash_is_rejected() {
    assert_bad_network_name("hl_bad_name_slash", "a/b");
}

/// ADD with `CNI_ARGS=args` must fail with code 4 and `msg`, creating nothing.
fn assert_bad_cni_args(test: &str, args: &str, msg: &str) {
    let net = Net::new(test);
    let out = call(Impl::Ours, "ADD", "c1", &net.crio("1.0.0"))
        .args(args)
        .run();
    assert_error(&out, 4, msg);
    assert_eq!(
        snapshot(net.root()),
        Snapshot::new(),
        "something was created"
    );
}

#[test]
fn malformed_cni_args_are_rejected() {
    assert_bad_cni_args("hl_bad_args", "IP=1.2.3.4;;", "ARGS: invalid pair \"\"");
}

#[test]
fn unknown_cni_args_key_is_rejected() {
    assert_bad_cni_args(
        "hl_bad_args_key",
        "FOO=bar",
        "ARGS: unknown args [\"FOO=bar\"]",
    );
}

#[test]
fn unknown_cni_args_key_with_ignore_unknown_is_accepted() {
    let net = Net::new("hl_args_ignore");
    let out = call(Impl::Ours, "ADD", "c1", &net.crio("1.0.0"))
        .args("IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.85.0.60")
        .run()
        .expect_success();
    assert_eq!(addresses(&out.json()), ["10.85.0.60/16", "1100:200::2/24"]);
}
