//! The implementations under test and the network each one gets.
//!
//! All use CRI-O's `100-crio-bridge.conf` with only what must differ for them
//! to live side by side changed: the network name, the bridge, the subnets and
//! the lease directory. Everything else (`isGateway`, `ipMasq`,
//! `hairpinMode`, the two route entries including the host-bit IPv6 route,
//! `cniVersion` 0.3.1) stays as CRI-O ships it. The third one is ours again
//! with `"ipMasqBackend": "nftables"` added, measured in its own phase only.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::BenchResult;

/// CRI-O's default bridge network config, as shipped.
const CRIO_CONFIG: &str = include_str!("../../../../cni-types/tests/fixtures/100-crio-bridge.conf");

/// Every name the bench gives to a namespace, bridge or network starts with this.
pub const PREFIX: &str = "cnirsb-";

/// Where Debian's reference plugins live.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This workspace's release binaries.
    Ours,
    /// Debian's containernetworking-plugins.
    Reference,
    /// This workspace's release binaries with `"ipMasqBackend": "nftables"`
    /// (masquerade in `table inet cni_plugins_masquerade`, no helper process).
    OursNftables,
}

impl Kind {
    /// Every implementation, ours first: what the sweep and the final check cover.
    pub const ALL: [Kind; 3] = [Kind::Ours, Kind::Reference, Kind::OursNftables];

    /// Short tag used in names (`ours`, `ref`, `nft`).
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Reference => "ref",
            Kind::OursNftables => "nft",
        }
    }

    /// Column heading.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Reference => "reference",
            Kind::OursNftables => "ours, nftables",
        }
    }

    /// The `ipMasqBackend` added to CRI-O's config, if any.
    pub fn masq_backend(self) -> Option<&'static str> {
        match self {
            Kind::OursNftables => Some("nftables"),
            Kind::Ours | Kind::Reference => None,
        }
    }

    /// The network name, which is also the bridge name and the namespace
    /// prefix: `cnirsb-ours`, `cnirsb-ref`, `cnirsb-nft`.
    pub fn network(self) -> String {
        format!("{PREFIX}{}", self.tag())
    }

    /// IPv4 subnet, IPv6 subnet and IPv6 gateway; distinct per implementation,
    /// and outside every subnet the root tests use, so the bench can run beside them.
    fn subnets(self) -> (&'static str, &'static str, Ipv6Addr) {
        match self {
            Kind::Ours => (
                "10.251.0.0/16",
                "fd11::/64",
                Ipv6Addr::new(0xfd11, 0, 0, 0, 0, 0, 0, 1),
            ),
            Kind::Reference => (
                "10.252.0.0/16",
                "fd12::/64",
                Ipv6Addr::new(0xfd12, 0, 0, 0, 0, 0, 0, 1),
            ),
            Kind::OursNftables => (
                "10.253.0.0/16",
                "fd13::/64",
                Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 1),
            ),
        }
    }
}

/// One implementation with its own network.
#[derive(Debug, Clone)]
pub struct Impl {
    /// Which one.
    pub kind: Kind,
    /// `CNI_PATH`: the directory holding its `bridge`, `host-local` and `loopback`.
    pub dir: PathBuf,
    /// Network name, bridge name and namespace prefix (`cnirsb-ours`).
    pub network: String,
    /// The bridge's IPv6 gateway address (`fd11::1`).
    pub gateway6: Ipv6Addr,
    /// The config every call gets on stdin.
    pub config: Vec<u8>,
}

impl Impl {
    /// The implementation `kind` with binaries in `dir` and leases under
    /// `data_root/<tag>`; `ipMasqBackend` set when the kind asks for one.
    ///
    /// # Errors
    ///
    /// When the embedded CRI-O config does not have the expected shape.
    pub fn new(kind: Kind, dir: &Path, data_root: &Path) -> BenchResult<Impl> {
        let network = kind.network();
        let (v4, v6, gateway6) = kind.subnets();
        let mut config = crio_config(&network, v4, v6, gateway6, &data_root.join(kind.tag()))?;
        if let (Some(backend), Some(top)) = (kind.masq_backend(), config.as_object_mut()) {
            top.insert("ipMasqBackend".into(), backend.into());
        }
        Ok(Impl {
            kind,
            dir: dir.to_path_buf(),
            network,
            gateway6,
            config: serde_json::to_string_pretty(&config)?.into_bytes(),
        })
    }

    /// The path of one of its binaries (`bridge`, `host-local`, `loopback`).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.network
    }
}

/// CRI-O's config with the given network/bridge name, subnets and lease dir.
/// The IPv6 route keeps CRI-O's shape: the gateway address with the subnet's
/// prefix length (`1100:200::1/24` there, `fd11::1/64` here).
fn crio_config(
    network: &str,
    v4: &str,
    v6: &str,
    gateway6: Ipv6Addr,
    data_dir: &Path,
) -> BenchResult<Value> {
    let mut config: Value = serde_json::from_str(CRIO_CONFIG)?;
    let top = config
        .as_object_mut()
        .ok_or("100-crio-bridge.conf is not a JSON object")?;
    for key in ["isGateway", "ipMasq", "hairpinMode"] {
        if top.get(key) != Some(&Value::Bool(true)) {
            return Err(format!("100-crio-bridge.conf: expected {key}: true").into());
        }
    }
    top.insert("name".into(), network.into());
    top.insert("bridge".into(), network.into());
    let ipam = top
        .get_mut("ipam")
        .and_then(Value::as_object_mut)
        .ok_or("100-crio-bridge.conf has no ipam object")?;
    let prefix = v6.rsplit('/').next().unwrap_or("64");
    ipam.insert("dataDir".into(), data_dir.to_string_lossy().into());
    ipam.insert(
        "routes".into(),
        json!([{ "dst": "0.0.0.0/0" }, { "dst": format!("{gateway6}/{prefix}") }]),
    );
    ipam.insert(
        "ranges".into(),
        json!([[{ "subnet": v4 }], [{ "subnet": v6 }]]),
    );
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_keep_crio_settings_and_differ_where_needed() {
        let root = Path::new("/tmp/x");
        let ours = Impl::new(Kind::Ours, Path::new("/o"), root).unwrap();
        let reference = Impl::new(Kind::Reference, Path::new("/r"), root).unwrap();
        let o: Value = serde_json::from_slice(&ours.config).unwrap();
        let r: Value = serde_json::from_slice(&reference.config).unwrap();
        assert_eq!(o["cniVersion"], "0.3.1");
        assert_eq!(o["type"], "bridge");
        assert_eq!(o["name"], "cnirsb-ours");
        assert_eq!(r["bridge"], "cnirsb-ref");
        assert_eq!(o["ipam"]["type"], "host-local");
        assert_eq!(o["ipam"]["dataDir"], "/tmp/x/ours");
        assert_eq!(o["ipam"]["routes"][1]["dst"], "fd11::1/64");
        assert_eq!(r["ipam"]["ranges"][0][0]["subnet"], "10.252.0.0/16");
        assert_eq!(r["ipam"]["ranges"][1][0]["subnet"], "fd12::/64");
        for v in [&o, &r] {
            assert_eq!(v["isGateway"], true);
            assert_eq!(v["ipMasq"], true);
            assert_eq!(v["hairpinMode"], true);
        }
        assert!(ours.bridge().len() <= 15);
        assert!(reference.bridge().len() <= 15);
        assert!(o.get("ipMasqBackend").is_none());
        assert!(r.get("ipMasqBackend").is_none());
    }

    #[test]
    fn nftables_impl_is_ours_with_the_backend_on_its_own_network() {
        let root = Path::new("/tmp/x");
        let ours = Impl::new(Kind::Ours, Path::new("/o"), root).unwrap();
        let nft = Impl::new(Kind::OursNftables, Path::new("/o"), root).unwrap();
        let o: Value = serde_json::from_slice(&ours.config).unwrap();
        let mut n: Value = serde_json::from_slice(&nft.config).unwrap();
        assert_eq!(nft.kind.tag(), "nft");
        assert_eq!(nft.kind.label(), "ours, nftables");
        assert_eq!(nft.binary("bridge"), ours.binary("bridge"));
        assert_eq!(n["ipMasqBackend"], "nftables");
        assert_eq!(n["name"], "cnirsb-nft");
        assert_eq!(n["bridge"], "cnirsb-nft");
        assert!(nft.bridge().len() <= 15);
        assert_eq!(n["ipam"]["dataDir"], "/tmp/x/nft");
        assert_eq!(n["ipam"]["ranges"][0][0]["subnet"], "10.253.0.0/16");
        assert_eq!(n["ipam"]["ranges"][1][0]["subnet"], "fd13::/64");
        assert_eq!(n["ipam"]["routes"][1]["dst"], "fd13::1/64");
        assert_eq!(nft.gateway6, Ipv6Addr::new(0xfd13, 0, 0, 0, 0, 0, 0, 1));
        // Apart from the backend, only what ours' config already varies differs.
        let top = n.as_object_mut().unwrap();
        top.remove("ipMasqBackend");
        for key in ["name", "bridge"] {
            top.insert(key.into(), o[key].clone());
        }
        top.insert("ipam".into(), o["ipam"].clone());
        assert_eq!(n, o);
        let networks: Vec<String> = Kind::ALL.iter().map(|k| k.network()).collect();
        assert_eq!(networks, ["cnirsb-ours", "cnirsb-ref", "cnirsb-nft"]);
    }
}
