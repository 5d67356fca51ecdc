//! Gateways: filling in each address's gateway, the default routes of
//! `isDefaultGateway`, and the gateway addresses put on the bridge (or on
//! the VLAN gateway interface, see [`crate::vlan_gateway`]).

use crate::config::BridgeConfig;
use crate::netlink::{Link, NetlinkError};
use crate::node::HostNet;
use crate::sysctl::SysctlError;
use cni_types::result::{Result as CniResult, Route};
use ipnetwork::IpNetwork;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Index of the container interface in the result's `interfaces`.
pub const CONTAINER_INTERFACE: usize = 2;

/// Where the gateway addresses go: the bridge, or with `vlan` the VLAN's
/// gateway interface (`<bridge>.<vlan>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The bridge itself.
    Bridge,
    /// The VLAN gateway interface.
    VlanInterface,
}

impl std::fmt::Display for Place {
    /// The reference's wording of a failure to put an address there.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Place::Bridge => "failed to set bridge addr",
            Place::VlanInterface => "failed to set vlan interface for bridge with addr",
        })
    }
}

/// Why a gateway step failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The link has a conflicting address and `forceAddress` is off.
    #[error("{place}: \"{link}\" already has an IP address different from {wanted}")]
    Conflict {
        /// Where the address was to go.
        place: Place,
        /// The link's name.
        link: String,
        /// The gateway address wanted.
        wanted: IpNetwork,
    },
    /// A netlink request failed.
    #[error("{place}: {source}")]
    Netlink {
        /// Where the address was to go.
        place: Place,
        /// The kernel's answer.
        source: NetlinkError,
    },
    /// Forwarding could not be enabled.
    #[error("failed to enable forwarding: {0}")]
    Forwarding(#[from] SysctlError),
}

/// Points every address at the container interface, fills in missing
/// gateways (network + 1) when the bridge is the gateway, appends one
/// default route per family for `isDefaultGateway`, and returns the bridge
/// addresses to ensure (gateway with the address's prefix), IPv4 first.
pub fn apply_gateways(result: &mut CniResult, conf: &BridgeConfig) -> Vec<IpNetwork> {
    let mut bridge_v4 = Vec::new();
    let mut bridge_v6 = Vec::new();
    let mut default_route_done = [false, false];
    for index in 0..result.ips.len() {
        let ip = &mut result.ips[index];
        ip.interface = Some(CONTAINER_INTERFACE);
        if ip.gateway.is_none() && conf.is_gateway {
            ip.gateway = first_host(ip.address);
        }
        let (gateway, address) = (ip.gateway, ip.address);
        let family = usize::from(!address.is_ipv4());
        if conf.is_default_gateway && !default_route_done[family] {
            let default_dst = default_destination(address.is_ipv4());
            let present = result
                .routes
                .iter()
                .any(|r| r.gw.is_some() && r.dst == default_dst);
            if !present {
                result.routes.push(Route::new(default_dst, gateway));
            }
            default_route_done[family] = true;
        }
        if conf.is_gateway
            && let Some(gateway) = gateway.and_then(|gw| IpNetwork::new(gw, address.prefix()).ok())
        {
            let list = if address.is_ipv4() {
                &mut bridge_v4
            } else {
                &mut bridge_v6
            };
            if !list.contains(&gateway) {
                list.push(gateway);
            }
        }
    }
    bridge_v4.extend(bridge_v6);
    bridge_v4
}

/// Puts each gateway address on `link` (the bridge, or the VLAN gateway
/// interface: `place` says which), pins its MAC (so a bridge no longer
/// follows the lowest port MAC), and enables forwarding for each family
/// that has a gateway.
///
/// # Errors
/// [`GatewayError`].
pub fn configure(
    host: &dyn HostNet,
    link: &Link,
    place: Place,
    conf: &BridgeConfig,
    gateways: &[IpNetwork],
) -> Result<(), GatewayError> {
    for gateway in gateways {
        ensure_address(host, link, place, conf, *gateway)?;
    }
    if gateways.iter().any(IpNetwork::is_ipv4) {
        host.sysctl("net/ipv4/ip_forward", "1")?;
    }
    if gateways.iter().any(IpNetwork::is_ipv6) {
        host.sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// Adds `wanted` to `link` unless it is there. Another IPv4 address, or an
/// overlapping IPv6 one, is a conflict (deleted with `forceAddress`).
fn ensure_address(
    host: &dyn HostNet,
    link: &Link,
    place: Place,
    conf: &BridgeConfig,
    wanted: IpNetwork,
) -> Result<(), GatewayError> {
    let failed = |source| GatewayError::Netlink { place, source };
    let present = host.addresses(link.index).map_err(failed)?;
    if present.contains(&wanted) {
        return Ok(());
    }
    for existing in present.iter().filter(|a| a.is_ipv4() == wanted.is_ipv4()) {
        let conflicts =
            wanted.is_ipv4() || existing.contains(wanted.ip()) || wanted.contains(existing.ip());
        if !conflicts {
            continue;
        }
        if !conf.force_address {
            return Err(GatewayError::Conflict {
                place,
                link: link.name.clone(),
                wanted,
            });
        }
        host.del_address(link.index, &link.name, *existing)
            .map_err(failed)?;
    }
    // The gateway lives on a link this plugin owns: duplicate address
    // detection would only keep it tentative (unusable) for a second or more.
    match host.add_address(link.index, &link.name, wanted, true) {
        Err(err) if !err.is_exists() => return Err(failed(err)),
        _ => {}
    }
    // Read the current MAC just before pinning it: ports change it until then.
    if let Some(current) = host.link_by_index(link.index).map_err(failed)? {
        host.set_mac(link.index, &link.name, &current.mac)
            .map_err(failed)?;
    }
    Ok(())
}

/// The first address of `address`'s network (network + 1).
pub fn first_host(address: IpNetwork) -> Option<IpAddr> {
    match address {
        IpNetwork::V4(v4) => u32::from(v4.network())
            .checked_add(1)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpNetwork::V6(v6) => u128::from(v6.network())
            .checked_add(1)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// `0.0.0.0/0` or `::/0`.
pub fn default_destination(ipv4: bool) -> IpNetwork {
    let unspecified = if ipv4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    IpNetwork::new(unspecified, 0).unwrap_or(IpNetwork::V4(ipnetwork::Ipv4Network::from(
        Ipv4Addr::UNSPECIFIED,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_types::result::IpConfig;

    fn conf(json: &str) -> BridgeConfig {
        BridgeConfig::from_json(json.as_bytes(), "").unwrap()
    }

    fn ip(address: &str, gateway: Option<&str>) -> IpConfig {
        IpConfig {
            interface: None,
            address: address.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn crio_gateways_go_on_the_bridge_with_the_address_prefix() {
        let mut result = CniResult {
            ips: vec![
                ip("10.85.0.2/16", Some("10.85.0.1")),
                ip("1100:200::2/24", Some("1100:200::1")),
            ],
            ..CniResult::default()
        };
        let gateways = apply_gateways(&mut result, &conf(r#"{"name":"crio","isGateway":true}"#));
        let shown: Vec<String> = gateways.iter().map(ToString::to_string).collect();
        assert_eq!(shown, vec!["10.85.0.1/16", "1100:200::1/24"]);
        assert!(result.ips.iter().all(|ip| ip.interface == Some(2)));
        assert!(result.routes.is_empty());
    }

    #[test]
    fn missing_gateway_is_network_plus_one_only_when_gateway() {
        let mut result = CniResult {
            ips: vec![ip("10.1.2.77/24", None)],
            ..CniResult::default()
        };
        apply_gateways(&mut result, &conf(r#"{"name":"n"}"#));
        assert_eq!(result.ips[0].gateway, None);
        apply_gateways(&mut result, &conf(r#"{"name":"n","isGateway":true}"#));
        assert_eq!(result.ips[0].gateway, Some("10.1.2.1".parse().unwrap()));
    }

    #[test]
    fn default_gateway_adds_one_default_route_per_family() {
        let mut result = CniResult {
            ips: vec![
                ip("10.1.2.77/24", None),
                ip("10.9.0.5/24", None),
                ip("fd00::5/64", None),
            ],
            ..CniResult::default()
        };
        let gateways = apply_gateways(
            &mut result,
            &conf(r#"{"name":"n","isDefaultGateway":true}"#),
        );
        let routes: Vec<String> = result
            .routes
            .iter()
            .map(|r| format!("{} via {:?}", r.dst, r.gw))
            .collect();
        assert_eq!(
            routes,
            vec!["0.0.0.0/0 via Some(10.1.2.1)", "::/0 via Some(fd00::1)"]
        );
        assert_eq!(gateways.len(), 3);
    }

    #[test]
    fn existing_default_route_with_gateway_is_kept() {
        let mut result = CniResult {
            ips: vec![ip("10.1.2.77/24", None)],
            routes: vec![Route::new(
                "0.0.0.0/0".parse().unwrap(),
                Some("10.1.2.254".parse().unwrap()),
            )],
            ..CniResult::default()
        };
        apply_gateways(
            &mut result,
            &conf(r#"{"name":"n","isDefaultGateway":true}"#),
        );
        assert_eq!(result.routes.len(), 1);
    }

    #[test]
    fn first_host_masks_host_bits() {
        assert_eq!(
            first_host("10.85.3.9/16".parse().unwrap()),
            Some("10.85.0.1".parse().unwrap())
        );
        assert_eq!(
            first_host("1100:200::2/24".parse().unwrap()),
            Some("1100:200::1".parse().unwrap())
        );
    }
}
