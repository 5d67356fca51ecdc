//! The ADD result, built by pure functions from what the steps found: the
//! IPAM plugin's addresses with the gateways applied, and the three links.

use crate::config::{BridgeConfig, format_mac};
use crate::error::BridgeError;
use crate::gateway::apply_gateways;
use crate::netlink::Link;
use cni_types::CniEnv;
use cni_types::result::{Interface, Result as CniResult};
use ipnetwork::IpNetwork;

/// The container's addressing: the IPAM result with each address pointed at
/// the container interface, gateways filled in and DNS chosen, and the
/// gateway addresses to put on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    /// `ips`, `routes` and `dns` of the result.
    pub result: CniResult,
    /// The bridge's gateway addresses, IPv4 first.
    pub gateways: Vec<IpNetwork>,
}

/// Turns what the IPAM plugin leased into the container's addressing (see
/// [`apply_gateways`]); the config's DNS wins over the plugin's.
///
/// # Errors
/// [`BridgeError::NoIpConfig`] when the plugin leased no address.
pub fn addressing(conf: &BridgeConfig, leased: CniResult) -> Result<Addressing, BridgeError> {
    if leased.ips.is_empty() {
        return Err(BridgeError::NoIpConfig);
    }
    let mut result = CniResult {
        ips: leased.ips,
        routes: leased.routes,
        dns: if conf.dns.is_empty() {
            leased.dns
        } else {
            conf.dns.clone()
        },
        ..CniResult::default()
    };
    let gateways = apply_gateways(&mut result, conf);
    Ok(Addressing { result, gateways })
}

/// The three links of an attachment as the kernel shows them at the end.
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    /// The bridge.
    pub bridge: &'a Link,
    /// The host end of the veth pair.
    pub veth: &'a Link,
    /// The container interface.
    pub container: &'a Link,
    /// The VLAN gateway interface, with `vlan` and `isGateway`.
    pub vlan_gateway: Option<&'a Link>,
}

/// The ADD result: the interfaces (bridge, host veth, container interface
/// in the pod's sandbox, then any VLAN gateway interface) and the addressing, or the config's DNS alone for
/// an L2-only network.
pub fn build(
    conf: &BridgeConfig,
    env: &CniEnv,
    addressing: Option<Addressing>,
    links: &Links<'_>,
) -> CniResult {
    let mut result = match addressing {
        Some(addressing) => addressing.result,
        None => CniResult {
            dns: conf.dns.clone(),
            ..CniResult::default()
        },
    };
    result.interfaces = vec![
        Interface {
            name: links.bridge.name.clone(),
            mac: format_mac(&links.bridge.mac),
            ..Interface::default()
        },
        Interface {
            name: links.veth.name.clone(),
            mac: format_mac(&links.veth.mac),
            ..Interface::default()
        },
        Interface {
            name: env.ifname.clone(),
            mac: format_mac(&links.container.mac),
            sandbox: env.netns.clone(),
            ..Interface::default()
        },
    ];
    // As the reference: the VLAN's gateway interface comes last.
    if let Some(gateway) = links.vlan_gateway {
        result.interfaces.push(Interface {
            name: gateway.name.clone(),
            mac: format_mac(&gateway.mac),
            ..Interface::default()
        });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_types::result::IpConfig;

    fn link(name: &str, last: u8) -> Link {
        Link {
            index: u32::from(last),
            name: name.to_owned(),
            kind: String::new(),
            mac: vec![2, 0, 0, 0, 0, last],
            master: None,
            peer_index: None,
            peer_in_other_netns: false,
            admin_up: true,
            promisc: false,
            oper_up: true,
            mtu: 1500,
        }
    }

    fn conf(json: &str) -> BridgeConfig {
        BridgeConfig::from_json(json.as_bytes(), "").unwrap()
    }

    #[test]
    fn no_address_is_an_error() {
        let err = addressing(&conf(r#"{"name":"n"}"#), CniResult::default()).unwrap_err();
        assert!(matches!(err, BridgeError::NoIpConfig));
    }

    #[test]
    fn the_configs_dns_wins_and_addresses_point_at_the_container() {
        let leased = CniResult {
            ips: vec![IpConfig {
                interface: None,
                address: "10.1.0.5/24".parse().unwrap(),
                gateway: None,
            }],
            dns: cni_types::result::Dns {
                nameservers: vec!["10.0.0.53".to_owned()],
                ..Default::default()
            },
            ..CniResult::default()
        };
        let got = addressing(
            &conf(r#"{"name":"n","isGateway":true,"dns":{"nameservers":["1.1.1.1"]}}"#),
            leased.clone(),
        )
        .unwrap();
        assert_eq!(got.result.dns.nameservers, ["1.1.1.1"]);
        assert_eq!(got.result.ips[0].interface, Some(2));
        assert_eq!(got.gateways, ["10.1.0.1/24".parse::<IpNetwork>().unwrap()]);
        let kept = addressing(&conf(r#"{"name":"n"}"#), leased).unwrap();
        assert_eq!(kept.result.dns.nameservers, ["10.0.0.53"]);
    }

    #[test]
    fn interfaces_are_bridge_veth_then_container_in_its_sandbox() {
        let env = CniEnv {
            ifname: "eth0".to_owned(),
            netns: "/run/netns/p".to_owned(),
            ..CniEnv::default()
        };
        let (bridge, veth, container) = (link("cni0", 1), link("veth1", 2), link("eth0", 3));
        let links = Links {
            bridge: &bridge,
            veth: &veth,
            container: &container,
            vlan_gateway: None,
        };
        let l2 = build(&conf(r#"{"name":"n"}"#), &env, None, &links);
        let names: Vec<_> = l2.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["cni0", "veth1", "eth0"]);
        assert_eq!(l2.interfaces[2].sandbox, "/run/netns/p");
        assert_eq!(l2.interfaces[2].mac, "02:00:00:00:00:03");
        assert!(l2.interfaces[0].sandbox.is_empty() && l2.ips.is_empty());
    }
}
