//! Root tests of a pod with several interfaces, attached by a delegating
//! meta-plugin as Multus does it: `integration/clients/multus-lite` (test
//! code, Go on Debian's libcni `pkg/invoke`) calls `bridge` for `eth0` on
//! CRI-O's network and for `net1` on a second bridge with its own
//! host-local range and `dataDir` and no gateway route, passing the
//! runtime's `CNI_ARGS` (`K8S_POD_NAME`, `IgnoreUnknown=1`) on.
//!
//! Only eth0's network gives the default route, both interfaces get their
//! addresses, CHECK passes, DEL of one delegate leaves the other intact,
//! and DEL of the pod removes both. The same pod attached through the
//! reference plugins as delegates gives the same result, field by field.
//!
//! Each run has a namespace standing for the host ([`PrivateHost`]), so the
//! two implementations can use the same bridges and subnets side by side.

#![cfg(test)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use integration::reference::REFERENCE_DIR;
use integration::{
    Cleanup, PluginCall, PrivateHost, TestNetns, cmd, plugin_dir, require_root, unique_name,
};
use serde_json::{Value, json};

/// The network of `eth0` (CRI-O's) and of `net1`.
const POD_SUBNET: &str = "10.85.0.0/16";
const POD_SUBNET6: &str = "1100:200::/24";
const SECOND_SUBNET: &str = "192.168.77.0/24";

/// The runtime's arguments, as kubelet's CRI runtime passes them.
const K8S_ARGS: &str =
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=x";

static MULTUS: OnceLock<PathBuf> = OnceLock::new();

/// The built meta-plugin (once per test binary).
fn multus_lite() -> &'static Path {
    MULTUS.get_or_init(|| {
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("multus-lite");
        integration::go::build("multus-lite", &out_dir)
    })
}

/// Which plugins the meta-plugin delegates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delegates {
    Ours,
    Reference,
}

/// One pod on one host: the host namespace, a `CNI_PATH` with the
/// meta-plugin and the delegates, the pod's namespace and its config.
struct Pod {
    host: PrivateHost,
    cni_path: PathBuf,
    ns: TestNetns,
    id: String,
    conf: Value,
}

impl Pod {
    fn new(delegates: Delegates, cleanup: &mut Cleanup) -> Pod {
        let host = PrivateHost::new(cleanup);
        let cni_path = host.dir.join("cni-bin");
        std::fs::create_dir_all(&cni_path).unwrap();
        let source = match delegates {
            Delegates::Ours => plugin_dir(),
            Delegates::Reference => PathBuf::from(REFERENCE_DIR),
        };
        for plugin in ["bridge", "host-local", "loopback"] {
            std::os::unix::fs::symlink(source.join(plugin), cni_path.join(plugin)).unwrap();
        }
        std::os::unix::fs::symlink(multus_lite(), cni_path.join("multus-lite")).unwrap();
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "multi",
            "type": "multus-lite",
            "cacheDir": host.dir.join("cache"),
            "delegates": [
                {
                    "cniVersion": "1.0.0",
                    "name": "crio",
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "1100:200::1/24"}],
                        "ranges": [[{"subnet": POD_SUBNET}], [{"subnet": POD_SUBNET6}]],
                        "dataDir": host.dir.join("leases-crio"),
                    },
                },
                {
                    "cniVersion": "1.0.0",
                    "name": "storage",
                    "type": "bridge",
                    "bridge": "br-storage",
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": SECOND_SUBNET}]],
                        "dataDir": host.dir.join("leases-storage"),
                    },
                },
            ],
        });
        Pod {
            host,
            cni_path,
            ns: TestNetns::new("mu"),
            id: unique_name("mu"),
            conf,
        }
    }

    /// `command` of `binary` (in [`Pod::cni_path`]) run in the host
    /// namespace for this pod, as a runtime calls it.
    fn call(&self, binary: &str, command: &str, ifname: &str, conf: &Value) -> PluginCall {
        let wrapper = self
            .host
            .script(&format!("run-{binary}"), "", &self.cni_path.join(binary));
        PluginCall::with_binary(wrapper)
            .cni_path(&self.cni_path)
            .command(command)
            .container_id(&self.id)
            .netns(self.ns.path())
            .ifname(ifname)
            .args(K8S_ARGS)
            .config(conf)
    }

    /// The meta-plugin's `command` for the whole pod.
    fn multus(&self, command: &str) -> PluginCall {
        self.call("multus-lite", command, "eth0", &self.conf)
    }

    /// The addresses of `ifname` inside the pod, `ip/len`.
    fn addresses(&self, ifname: &str) -> Vec<String> {
        let out = self.ns.exec(&["ip", "-j", "addr", "show", "dev", ifname]);
        let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        links[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect()
    }

    /// The pod's default routes, as `dev via`.
    fn default_routes(&self) -> Vec<String> {
        let mut routes = Vec::new();
        for family in ["-4", "-6"] {
            let out = self
                .ns
                .exec(&["ip", family, "-j", "route", "show", "default"]);
            let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            for route in list.as_array().into_iter().flatten() {
                routes.push(format!(
                    "{} {}",
                    route["dev"].as_str().unwrap_or(""),
                    route["gateway"].as_str().unwrap_or("")
                ));
            }
        }
        routes
    }

    /// Lease files of a delegate's network.
    fn leases(&self, network: &str) -> Vec<String> {
        let dir = self
            .host
            .dir
            .join(format!("leases-{network}"))
            .join(network);
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f != "lock" && !f.starts_with("last_reserved_ip"))
            .collect()
    }

    /// Whether the pod's masquerade chain (eth0's network) exists.
    fn masquerade_chain(&self) -> bool {
        let chain = bridge::masq::chain_name("crio", &self.id);
        let out = self.host.ns.exec(&["iptables", "-t", "nat", "-S"]);
        String::from_utf8_lossy(&out.stdout).contains(&chain)
    }
}

/// The meta-plugin's ADD result with the values that differ between runs
/// (MAC addresses, host veth names, the sandbox path) blanked.
fn comparable(mut result: Value) -> Value {
    for interface in result["interfaces"].as_array_mut().into_iter().flatten() {
        interface["mac"] = json!("<mac>");
        if interface["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("veth"))
        {
            interface["name"] = json!("<veth>");
        }
        if interface.get("sandbox").is_some() {
            interface["sandbox"] = json!("<netns>");
        }
    }
    result
}

#[test]
fn a_pod_with_two_networks_gets_both_and_loses_each_on_its_own() {
    let test = "a_pod_with_two_networks_gets_both_and_loses_each_on_its_own";
    if !require_root(test) {
        return;
    }
    let mut cleanup = Cleanup::new();
    let pod = Pod::new(Delegates::Ours, &mut cleanup);

    let result = pod.multus("ADD").run().expect_success().json();
    // The first delegate's result: eth0 on CRI-O's network.
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][2]["name"], "eth0", "{result}");
    assert_eq!(result["ips"][0]["address"], "10.85.0.2/16", "{result}");
    assert_eq!(pod.addresses("eth0"), ["10.85.0.2/16", "1100:200::2/24"]);
    assert_eq!(pod.addresses("net1"), ["192.168.77.2/24"]);
    // Only eth0's network has a gateway route.
    assert_eq!(
        pod.default_routes(),
        ["eth0 10.85.0.1"],
        "{}",
        pod.ns.ip(&["route"])
    );
    assert!(pod.masquerade_chain());
    pod.multus("CHECK").run().expect_success();

    // DEL of the second delegate alone leaves eth0 as it is.
    let storage = pod.conf["delegates"][1].clone();
    pod.call("bridge", "DEL", "net1", &storage)
        .run()
        .expect_success();
    assert!(
        pod.ns
            .exec(&["ip", "link", "show", "net1"])
            .stdout
            .is_empty()
    );
    assert!(pod.leases("storage").is_empty());
    assert_eq!(pod.addresses("eth0"), ["10.85.0.2/16", "1100:200::2/24"]);
    assert_eq!(pod.leases("crio").len(), 2);
    assert!(pod.masquerade_chain());

    // DEL of the pod removes the rest (and net1 again, which is gone).
    pod.multus("DEL").run().expect_success();
    assert!(
        pod.ns
            .exec(&["ip", "link", "show", "eth0"])
            .stdout
            .is_empty()
    );
    assert!(pod.leases("crio").is_empty());
    assert!(!pod.masquerade_chain());
    let ports = pod.host.ns.ip(&["-o", "link", "show", "type", "veth"]);
    assert!(ports.is_empty(), "{ports}");
    pod.multus("DEL").run().expect_success();
}

#[test]
fn delegating_to_the_reference_plugins_gives_the_same_result() {
    let test = "delegating_to_the_reference_plugins_gives_the_same_result";
    if !require_root(test) {
        return;
    }
    if !Path::new(REFERENCE_DIR).join("bridge").is_file() {
        eprintln!("SKIPPED {test}: no reference plugins in {REFERENCE_DIR}");
        return;
    }
    let mut cleanup = Cleanup::new();
    let ours = Pod::new(Delegates::Ours, &mut cleanup);
    let reference = Pod::new(Delegates::Reference, &mut cleanup);
    let ours_result = ours.multus("ADD").run().expect_success().json();
    let reference_result = reference.multus("ADD").run().expect_success().json();
    assert_eq!(comparable(ours_result), comparable(reference_result));
    for ifname in ["eth0", "net1"] {
        assert_eq!(
            ours.addresses(ifname),
            reference.addresses(ifname),
            "{ifname}"
        );
    }
    assert_eq!(ours.default_routes(), reference.default_routes());
    for pod in [&ours, &reference] {
        pod.multus("DEL").run().expect_success();
        assert!(pod.leases("crio").is_empty() && pod.leases("storage").is_empty());
    }
    // Nothing of either pod's firewall is left in its host.
    for pod in [&ours, &reference] {
        let rules = cmd::run_ok(
            "ip",
            &["netns", "exec", pod.host.ns.name(), "iptables-save"],
        );
        assert!(!rules.contains("CNI-"), "{rules}");
    }
}
