//! CHECK: compares the attachment with `prevResult` (REFERENCE §6.5), with
//! two fixes: a configured route whose destination has host bits (CRI-O's
//! `1100:200::1/24`) is compared by its network, and an L2-only network
//! (no IPAM) does not fail for lack of an IPAM plugin. Masquerade is checked
//! too when `ipMasq` is set.

use crate::config::{BridgeConfig, format_mac};
use crate::error::BridgeError;
use crate::masq;
use crate::netlink::{Kernel, Link, is_bridge, is_veth};
use cni_types::ipam;
use cni_types::netns::Netns;
use cni_types::result::{Interface, Result as CniResult};
use cni_types::skel::Request;
use ipnetwork::IpNetwork;

/// Runs CHECK.
///
/// # Errors
/// [`BridgeError::Check`] describing the first difference found.
pub fn check(req: &Request<'_>) -> Result<(), BridgeError> {
    let conf = BridgeConfig::from_json(req.stdin, &req.env.args)?;
    let env = req.env;
    let netns = Netns::open(&env.netns).map_err(|e| BridgeError::netns(&env.netns, e))?;
    if let Some(ipam_type) = conf.ipam_type.as_deref() {
        ipam::exec_check(env, ipam_type, req.stdin).map_err(BridgeError::Ipam)?;
    }
    let previous = req
        .prev_result()
        .map_err(|e| BridgeError::Check(e.msg))?
        .ok_or_else(|| BridgeError::Check("Required prevResult missing".to_owned()))?;
    let host = Kernel::connect()?;
    let container = {
        let _inside = netns
            .enter()
            .map_err(|e| BridgeError::netns(&env.netns, e))?;
        Kernel::connect()?
    };

    let bridge_entry = previous.interfaces.iter().find(|i| i.name == conf.bridge);
    let bridge_entry = bridge_entry.ok_or_else(|| {
        fail(format!(
            "CNI created bridge {} in host namespace was not found",
            conf.bridge
        ))
    })?;
    let bridge = check_bridge(&host, &conf, bridge_entry)?;
    let container_entry = previous
        .interfaces
        .iter()
        .position(|i| i.name == env.ifname && i.sandbox == env.netns)
        .ok_or_else(|| {
            fail(format!(
                "CNI created interface in container {} not found",
                env.ifname
            ))
        })?;
    let container_link = check_container_link(&container, &previous.interfaces[container_entry])?;
    check_host_veth(&host, &previous, &container_link, &bridge)?;
    check_addresses(&container, &previous, container_entry, &container_link)?;
    check_routes(&container, &previous)?;
    if conf.ip_masq {
        check_masquerade(&conf, &env.container_id, &previous)?;
    }
    Ok(())
}

/// Every family with an address must have the container's chain.
fn check_masquerade(
    conf: &BridgeConfig,
    container_id: &str,
    previous: &CniResult,
) -> Result<(), BridgeError> {
    let presence = masq::exists(&conf.network, container_id)?;
    for ip in &previous.ips {
        let family = masq::Family::of(&ip.address);
        if !presence.get(family) {
            return Err(fail(format!(
                "masquerade chain {} for address {} not found",
                masq::chain_name(&conf.network, container_id),
                ip.address
            )));
        }
    }
    Ok(())
}

fn fail(msg: String) -> BridgeError {
    BridgeError::Check(msg)
}

fn check_bridge(
    host: &Kernel,
    conf: &BridgeConfig,
    entry: &Interface,
) -> Result<Link, BridgeError> {
    if entry.name.is_empty() {
        return Err(fail("Interface name missing ".to_owned()));
    }
    let bridge = host
        .link_by_name(&entry.name)?
        .ok_or_else(|| fail(format!("Interface name {} not found", entry.name)))?;
    if !entry.sandbox.is_empty() {
        return Err(fail(format!(
            "Interface {} has a sandbox, a bridge must not",
            entry.name
        )));
    }
    if !is_bridge(&bridge) {
        return Err(fail(format!(
            "Interface {} does not have link type of bridge",
            entry.name
        )));
    }
    if !entry.mac.is_empty() && !entry.mac.eq_ignore_ascii_case(&format_mac(&bridge.mac)) {
        return Err(fail(format!(
            "Bridge interface {} Mac doesn't match: {}",
            entry.name, entry.mac
        )));
    }
    if bridge.promisc != conf.promisc_mode {
        return Err(fail(format!(
            "Bridge interface {} configured Promisc Mode {} doesn't match current state: {} ",
            entry.name, conf.promisc_mode, bridge.promisc
        )));
    }
    Ok(bridge)
}

fn check_container_link(container: &Kernel, entry: &Interface) -> Result<Link, BridgeError> {
    let link = container.link_by_name(&entry.name)?.ok_or_else(|| {
        fail(format!(
            "CNI created interface in container {} not found",
            entry.name
        ))
    })?;
    if !is_veth(&link) {
        return Err(fail(format!(
            "Error: Container interface {} not of type veth",
            entry.name
        )));
    }
    let actual = format_mac(&link.mac);
    if !entry.mac.is_empty() && !entry.mac.eq_ignore_ascii_case(&actual) {
        return Err(fail(format!(
            "Interface {} Mac {} doesn't match container Mac: {}",
            entry.name, entry.mac, actual
        )));
    }
    Ok(link)
}

fn check_host_veth(
    host: &Kernel,
    previous: &CniResult,
    container: &Link,
    bridge: &Link,
) -> Result<(), BridgeError> {
    for entry in previous
        .interfaces
        .iter()
        .filter(|i| i.sandbox.is_empty() && i.name != bridge.name)
    {
        let Some(link) = host.link_by_name(&entry.name)? else {
            continue;
        };
        let paired = is_veth(&link)
            && Some(link.index) == container.peer_index
            && link.peer_index == Some(container.index)
            && link.master == Some(bridge.index);
        if paired {
            if !entry.mac.is_empty() && !entry.mac.eq_ignore_ascii_case(&format_mac(&link.mac)) {
                return Err(fail(format!(
                    "Interface {} Mac doesn't match: {} not found",
                    entry.name, entry.mac
                )));
            }
            return Ok(());
        }
    }
    Err(fail(format!(
        "CNI veth created for bridge {} was not found",
        bridge.name
    )))
}

fn check_addresses(
    container: &Kernel,
    previous: &CniResult,
    entry: usize,
    link: &Link,
) -> Result<(), BridgeError> {
    let present = container.addresses(link.index)?;
    let (routes_v4, routes_v6) = (container.routes(true)?, container.routes(false)?);
    for ip in previous.ips.iter().filter(|ip| ip.interface == Some(entry)) {
        if !present.contains(&ip.address) {
            return Err(fail(format!(
                "Failed to match addr {} on interface {}",
                ip.address, link.name
            )));
        }
        let network = masked(ip.address);
        let routes = if ip.address.is_ipv4() {
            &routes_v4
        } else {
            &routes_v6
        };
        if !routes.iter().any(|r| r.dst == network) {
            return Err(fail(format!(
                "Failed to match route for addr {} on interface {}",
                ip.address, link.name
            )));
        }
    }
    Ok(())
}

fn check_routes(container: &Kernel, previous: &CniResult) -> Result<(), BridgeError> {
    let (routes_v4, routes_v6) = (container.routes(true)?, container.routes(false)?);
    for route in &previous.routes {
        let routes = if route.dst.is_ipv4() {
            &routes_v4
        } else {
            &routes_v6
        };
        let wanted = masked(route.dst);
        // The gateway is compared only when the result names one.
        let found = routes
            .iter()
            .any(|r| r.dst == wanted && (route.gw.is_none() || r.gw == route.gw));
        if !found {
            let gw = route.gw.map_or_else(String::new, |g| format!(" {g}"));
            return Err(fail(format!(
                "Expected Route {{{}{gw}}} not found in routing table",
                route.dst
            )));
        }
    }
    Ok(())
}

/// The network of an address (host bits cleared), same prefix.
fn masked(address: IpNetwork) -> IpNetwork {
    IpNetwork::new(address.network(), address.prefix()).unwrap_or(address)
}
