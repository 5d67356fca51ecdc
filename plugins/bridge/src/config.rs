//! The bridge plugin's configuration: fields, defaults and validation, with
//! the reference plugin's messages. The requested container MAC is resolved
//! here from its three sources.

use crate::firewall::Family;
use cni_types::result::Dns;
use cni_types::{CniArgs, CniError, ErrorCode};
use serde::Deserialize;

/// The `CNI_ARGS` keys bridge understands.
pub const KNOWN_ARGS: &[&str] = &["MAC"];

/// Highest VLAN ID the bridge accepts.
const MAX_VLAN_ID: i64 = 4094;

/// A validated bridge configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Network name.
    pub network: String,
    /// Linux bridge name.
    pub bridge: String,
    /// Put the gateway address on the bridge.
    pub is_gateway: bool,
    /// Add a default route via the gateway (implies `is_gateway`).
    pub is_default_gateway: bool,
    /// Replace a conflicting bridge address instead of failing.
    pub force_address: bool,
    /// Masquerade traffic leaving the subnet.
    pub ip_masq: bool,
    /// Which masquerade backend `ipMasqBackend` asks for.
    pub ip_masq_backend: MasqBackend,
    /// MTU for a new bridge and both veth ends; `None` keeps the kernel's.
    pub mtu: Option<u32>,
    /// Bridge-port hairpin flag.
    pub hairpin_mode: bool,
    /// Promiscuous mode on the bridge.
    pub promisc_mode: bool,
    /// Access VLAN (PVID, untagged) of the port; 0 means none.
    pub vlan: u16,
    /// Tagged VLANs of the port, sorted and de-duplicated.
    pub vlan_trunk: Vec<u16>,
    /// Keep the default VLAN 1 on the port when VLANs are configured
    /// (default true).
    pub preserve_default_vlan: bool,
    /// Drop frames from the container whose source MAC is not its interface's
    /// (nftables, bridge family).
    pub macspoofchk: bool,
    /// Keep IPv6 duplicate address detection on in the container.
    pub enable_dad: bool,
    /// Leave the container interface down (L2 only, no IPAM).
    pub disable_container_interface: bool,
    /// Bridge-port isolation flag.
    pub port_isolation: bool,
    /// The IPAM plugin type; `None` is L2 mode.
    pub ipam_type: Option<String>,
    /// The IP families the IPAM will most likely lease from: foreseen for
    /// `host-local` from its subnets (see `host_local_families`), empty for
    /// other plugins. Only a hint, to start helpers early.
    pub expected_families: Vec<Family>,
    /// DNS from the config (the IPAM's is used when this is empty).
    pub dns: Dns,
    /// MAC for the container interface, from `CNI_ARGS`, `args.cni.mac` or
    /// `runtimeConfig.mac` (later sources win).
    pub mac: Option<[u8; 6]>,
}

/// The masquerade backend `ipMasqBackend` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasqBackend {
    /// Unset: iptables, unless iptables is unusable and nftables works (as
    /// upstream chooses).
    Auto,
    /// `"iptables"`: the `CNI-…` chains in the `nat` tables.
    Iptables,
    /// `"nftables"`: table `inet cni_plugins_masquerade`.
    Nftables,
}

/// The JSON as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    name: String,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: i64,
    #[serde(default)]
    vlan_trunk: Vec<RawTrunk>,
    #[serde(default)]
    preserve_default_vlan: Option<bool>,
    #[serde(default)]
    macspoofchk: bool,
    #[serde(default)]
    enabledad: bool,
    #[serde(default)]
    disable_container_interface: bool,
    #[serde(default)]
    port_isolation: bool,
    #[serde(default)]
    ipam: Option<RawIpam>,
    #[serde(default)]
    dns: Dns,
    #[serde(default)]
    args: Option<RawArgs>,
    #[serde(default)]
    runtime_config: Option<RawRuntimeConfig>,
}

#[derive(Debug, Deserialize)]
struct RawIpam {
    #[serde(default, rename = "type")]
    plugin_type: String,
    /// host-local's range sets and legacy subnet, read only as a hint; the
    /// IPAM plugin validates them.
    #[serde(default)]
    ranges: serde_json::Value,
    #[serde(default)]
    subnet: serde_json::Value,
}

/// The families a `host-local` config leases from: one address per range set,
/// of the family of its subnets, or the legacy top-level `subnet`. Anything
/// that does not parse is skipped; host-local itself reports it.
fn host_local_families(ipam: &RawIpam) -> Vec<Family> {
    let family = |subnet: &serde_json::Value| {
        let network: ipnetwork::IpNetwork = subnet.as_str()?.parse().ok()?;
        Some(Family::of(&network))
    };
    let sets = ipam.ranges.as_array().into_iter().flatten();
    let first_of_each = sets.filter_map(|set| family(set.as_array()?.first()?.get("subnet")?));
    let mut families: Vec<Family> = Vec::new();
    for found in first_of_each.chain(family(&ipam.subnet)) {
        if !families.contains(&found) {
            families.push(found);
        }
    }
    families
}

#[derive(Debug, Deserialize)]
struct RawTrunk {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default, rename = "minID")]
    min_id: Option<i64>,
    #[serde(default, rename = "maxID")]
    max_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RawArgs {
    #[serde(default)]
    cni: Option<RawMacHolder>,
}

#[derive(Debug, Deserialize)]
struct RawMacHolder {
    #[serde(default)]
    mac: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    mac: Option<String>,
}

/// Why the configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON does not have the expected shape.
    #[error("failed to load netconf: {0}")]
    Shape(#[from] serde_json::Error),
    /// `hairpinMode` together with `promiscMode`.
    #[error("cannot set hairpin mode and promiscuous mode at the same time.")]
    HairpinAndPromisc,
    /// A VLAN ID out of range.
    #[error("invalid VLAN ID {0} (must be between 0 and {MAX_VLAN_ID})")]
    BadVlan(i64),
    /// A malformed `vlanTrunk` entry.
    #[error("{0}")]
    BadTrunk(&'static str),
    /// A negative MTU.
    #[error("invalid MTU {0}")]
    BadMtu(i64),
    /// IPAM together with `disableContainerInterface`.
    #[error("cannot use IPAM when DisableContainerInterface flag is set")]
    IpamWithoutInterface,
    /// A MAC that is not `xx:xx:xx:xx:xx:xx`.
    #[error("invalid MAC address \"{0}\"")]
    BadMac(String),
    /// `ipMasqBackend` names an unknown backend.
    #[error("unknown ipmasq backend \"{0}\"")]
    UnknownMasqBackend(String),
    /// `CNI_ARGS` is malformed.
    #[error(transparent)]
    Args(#[from] cni_types::args::ArgsError),
}

impl From<ConfigError> for CniError {
    fn from(err: ConfigError) -> CniError {
        match err {
            ConfigError::Args(args) => args.into(),
            other => CniError::new(ErrorCode::InvalidNetworkConfig, other.to_string()),
        }
    }
}

impl BridgeConfig {
    /// Reads and validates the configuration and `CNI_ARGS`.
    ///
    /// # Errors
    /// [`ConfigError`]: code 7 for the config, code 4 for `CNI_ARGS`.
    pub fn from_json(stdin: &[u8], cni_args: &str) -> Result<BridgeConfig, ConfigError> {
        let raw: RawConfig = cni_types::json::from_slice(stdin)?;
        let args = CniArgs::parse_known(cni_args, KNOWN_ARGS)?;
        if raw.hairpin_mode && raw.promisc_mode {
            return Err(ConfigError::HairpinAndPromisc);
        }
        if !(0..=MAX_VLAN_ID).contains(&raw.vlan) {
            return Err(ConfigError::BadVlan(raw.vlan));
        }
        let mtu = match raw.mtu {
            0 => None,
            m if m < 0 || m > i64::from(u32::MAX) => return Err(ConfigError::BadMtu(m)),
            m => u32::try_from(m).ok(),
        };
        let expected_families = match &raw.ipam {
            Some(ipam) if ipam.plugin_type == "host-local" => host_local_families(ipam),
            _ => Vec::new(),
        };
        let ipam_type = raw.ipam.map(|i| i.plugin_type).filter(|t| !t.is_empty());
        if ipam_type.is_some() && raw.disable_container_interface {
            return Err(ConfigError::IpamWithoutInterface);
        }
        let ip_masq_backend = match raw.ip_masq_backend.as_deref() {
            None | Some("") => MasqBackend::Auto,
            Some("iptables") => MasqBackend::Iptables,
            Some("nftables") => MasqBackend::Nftables,
            Some(other) => return Err(ConfigError::UnknownMasqBackend(other.to_owned())),
        };
        let mac_text = [
            args.get("MAC").map(str::to_owned),
            raw.args.and_then(|a| a.cni).and_then(|c| c.mac),
            raw.runtime_config.and_then(|rc| rc.mac),
        ]
        .into_iter()
        .flatten()
        .rfind(|m| !m.is_empty());
        let mac = mac_text
            .map(|text| parse_mac(&text).ok_or(ConfigError::BadMac(text)))
            .transpose()?;
        Ok(BridgeConfig {
            network: raw.name,
            bridge: raw
                .bridge
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "cni0".to_owned()),
            is_gateway: raw.is_gateway || raw.is_default_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            ip_masq: raw.ip_masq,
            ip_masq_backend,
            mtu,
            hairpin_mode: raw.hairpin_mode,
            promisc_mode: raw.promisc_mode,
            vlan: u16::try_from(raw.vlan).unwrap_or_default(),
            vlan_trunk: trunk_ids(&raw.vlan_trunk)?,
            // As Debian's 1.1.1 (which never removes it) and upstream up to
            // v1.7: VLAN 1 stays on the port unless asked otherwise.
            preserve_default_vlan: raw.preserve_default_vlan.unwrap_or(true),
            macspoofchk: raw.macspoofchk,
            enable_dad: raw.enabledad,
            disable_container_interface: raw.disable_container_interface,
            port_isolation: raw.port_isolation,
            ipam_type,
            expected_families,
            dns: raw.dns,
            mac,
        })
    }

    /// Whether VLAN filtering is needed on the bridge.
    pub fn uses_vlans(&self) -> bool {
        self.vlan != 0 || !self.vlan_trunk.is_empty()
    }
}

/// Expands `vlanTrunk` entries into sorted, de-duplicated VLAN IDs.
fn trunk_ids(entries: &[RawTrunk]) -> Result<Vec<u16>, ConfigError> {
    let valid = |id: i64| (1..=MAX_VLAN_ID).contains(&id);
    let mut ids: Vec<u16> = Vec::new();
    for entry in entries {
        let (first, last) = match (entry.id, entry.min_id, entry.max_id) {
            (_, Some(min), Some(max)) => {
                if !valid(min) {
                    return Err(ConfigError::BadTrunk("incorrect trunk minID parameter"));
                }
                if !valid(max) {
                    return Err(ConfigError::BadTrunk("incorrect trunk maxID parameter"));
                }
                if min > max {
                    return Err(ConfigError::BadTrunk(
                        "minID is greater than maxID in trunk parameter",
                    ));
                }
                (min, max)
            }
            (_, Some(_), None) => {
                return Err(ConfigError::BadTrunk(
                    "minID and maxID should be configured simultaneously, maxID is missing",
                ));
            }
            (_, None, Some(_)) => {
                return Err(ConfigError::BadTrunk(
                    "minID and maxID should be configured simultaneously, minID is missing",
                ));
            }
            (Some(id), None, None) if valid(id) => (id, id),
            _ => return Err(ConfigError::BadTrunk("incorrect trunk id parameter")),
        };
        ids.extend((first..=last).filter_map(|id| u16::try_from(id).ok()));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as Go does: lower-case, colon-separated.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests;
