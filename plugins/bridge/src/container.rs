//! The container side: sysctls, addresses, link state and routes inside the
//! container's namespace, through its [`PodNet`].

use crate::gateway::CONTAINER_INTERFACE;
use crate::netlink::{Link, NetlinkError};
use crate::node::PodNet;
use cni_types::result::Result as CniResult;
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// Why configuring the container side failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The interface vanished.
    #[error("failed to lookup \"{0}\": Link not found")]
    Missing(String),
    /// A route could not be added.
    #[error("failed to add route '{dst} via {gw} dev {ifname}': {reason}")]
    Route {
        /// Destination as configured.
        dst: IpNetwork,
        /// Gateway used (`<nil>` when none).
        gw: String,
        /// Interface name.
        ifname: String,
        /// The kernel's answer.
        reason: String,
    },
}

/// Sets the DAD sysctls of `ifname` (`accept_dad`, and `enhanced_dad` with
/// `enabledad`) and then sets it up, before its addresses are known (ADD
/// does this while IPAM runs). Its link-local address is thus never
/// tentative unless DAD is wanted, and the packets its kernel sends as it
/// comes up go out while the host end is not yet a bridge port. Returns the
/// interface.
///
/// # Errors
/// [`ContainerError`]; sysctl failures themselves are ignored, as the
/// reference does.
pub fn bring_up_unaddressed(
    pod: &dyn PodNet,
    ifname: &str,
    enable_dad: bool,
) -> Result<Link, ContainerError> {
    let dad = format!("net/ipv6/conf/{ifname}/accept_dad");
    if enable_dad {
        let _ = pod.sysctl(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
        let _ = pod.sysctl(&dad, "1");
    } else {
        let _ = pod.sysctl(&dad, "0");
    }
    bring_up(pod, ifname)
}

/// Makes sure IPv6 is enabled on `lo` and `ifname` before an IPv6 address
/// goes on (errors ignored, as the reference does).
pub fn enable_ipv6(pod: &dyn PodNet, ifname: &str) {
    let _ = pod.sysctl("net/ipv6/conf/lo/disable_ipv6", "0");
    let _ = pod.sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0");
}

/// Sets `arp_notify` on the (up) interface `link` (through netlink; failures
/// ignored, as the reference ignores the sysctl's), adds the result's
/// addresses and then its routes (via the route's gateway, else the first
/// gateway of its family). Returns the interface as the kernel now shows it.
///
/// # Errors
/// [`ContainerError`].
pub fn configure(
    container: &dyn PodNet,
    link: &Link,
    result: &CniResult,
) -> Result<Link, ContainerError> {
    let ifname = link.name.as_str();
    let _ = container.set_arp_notify(link.index, ifname);
    let mine = result
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(CONTAINER_INTERFACE));
    for ip in mine.clone() {
        // DAD is governed by the accept_dad sysctl set before (enabledad).
        match container.add_address(link.index, ifname, ip.address, false) {
            Err(err) if !err.is_exists() => return Err(err.into()),
            _ => {}
        }
    }
    let first_gateway = |ipv4: bool| {
        mine.clone()
            .filter(|ip| ip.address.is_ipv4() == ipv4)
            .find_map(|ip| ip.gateway)
    };
    for route in &result.routes {
        let gw = route.gw.or_else(|| first_gateway(route.dst.is_ipv4()));
        match container.add_route(route.dst, gw, link.index) {
            Err(err) if !err.is_exists() => {
                return Err(ContainerError::Route {
                    dst: route.dst,
                    gw: gw.map_or_else(|| "<nil>".to_owned(), |g| g.to_string()),
                    ifname: ifname.to_owned(),
                    reason: err.reason,
                });
            }
            _ => {}
        }
    }
    container
        .link_by_index(link.index)?
        .ok_or_else(|| ContainerError::Missing(ifname.to_owned()))
}

/// Sets the interface up (in L2 mode all there is to do).
///
/// # Errors
/// [`ContainerError`].
pub fn bring_up(container: &dyn PodNet, ifname: &str) -> Result<Link, ContainerError> {
    let link = container
        .link_by_name(ifname)?
        .ok_or_else(|| ContainerError::Missing(ifname.to_owned()))?;
    container.set_up(link.index, ifname)?;
    Ok(link)
}

/// The global unicast addresses of a link (what masquerade was set up for).
///
/// # Errors
/// [`ContainerError::Netlink`].
pub fn global_addresses(
    container: &dyn PodNet,
    link: &Link,
) -> Result<Vec<IpNetwork>, ContainerError> {
    Ok(container
        .addresses(link.index)?
        .into_iter()
        .filter(|a| is_global_unicast(a.ip()))
        .collect())
}

/// Go's `IsGlobalUnicast`: not unspecified, loopback, multicast, link-local
/// or (v4) broadcast.
fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_unicast_matches_go() {
        for (ip, global) in [
            ("10.85.0.2", true),
            ("127.0.0.1", false),
            ("169.254.1.1", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("1100:200::2", true),
            ("fe80::1", false),
            ("::1", false),
            ("ff02::1", false),
        ] {
            assert_eq!(is_global_unicast(ip.parse().unwrap()), global, "{ip}");
        }
    }
}
