//! Host-side links: the bridge (created or reused) and the veth pair whose
//! container end is created directly inside the container's namespace.

use crate::config::BridgeConfig;
use crate::netlink::{Link, NetlinkError, is_bridge};
use crate::node::{HostNet, PodNet, PortFlags, VethSpec};
use sha2::{Digest, Sha512};
use std::io::Read;

/// How many host veth names are tried before giving up, as the reference.
pub const VETH_NAME_ATTEMPTS: usize = 10;

/// The VLAN the kernel puts every new port of a VLAN-filtering bridge on.
const DEFAULT_VLAN: u16 = 1;

/// Why a link step failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Creating or configuring the bridge failed.
    #[error("failed to create bridge \"{bridge}\": {reason}")]
    Bridge {
        /// The bridge name.
        bridge: String,
        /// What went wrong.
        reason: String,
    },
    /// The container interface name is taken inside the namespace.
    #[error("container veth name provided ({0}) already exists")]
    ContainerNameTaken(String),
    /// Every host veth name tried was taken.
    #[error("failed to find a unique veth name")]
    NoUniqueName,
    /// Creating the veth pair failed otherwise.
    #[error("failed to make veth pair: {0}")]
    Veth(NetlinkError),
    /// Attaching the host end to the bridge failed.
    #[error("failed to connect \"{veth}\" to bridge {bridge}: {source}")]
    Connect {
        /// Host veth name.
        veth: String,
        /// Bridge name.
        bridge: String,
        /// The kernel's answer.
        source: NetlinkError,
    },
    /// Any other netlink failure.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Checks the bridge name, creates the bridge unless it exists, checks that
/// an existing link of that name is a bridge, applies promiscuous mode and
/// sets it up (its `accept_ra=0` comes later, see
/// [`refuse_router_advertisements`]). An existing bridge's MTU and VLAN
/// filtering are left alone.
///
/// # Errors
/// [`LinkError::Bridge`].
pub fn ensure_bridge(host: &dyn HostNet, conf: &BridgeConfig) -> Result<Link, LinkError> {
    let failed = |reason: String| LinkError::Bridge {
        bridge: conf.bridge.clone(),
        reason,
    };
    // The kernel's name rules, checked before the name reaches netlink: a
    // name longer than a netlink attribute can hold would panic the encoder.
    cni_types::skel::validate_ifname(&conf.bridge).map_err(|err| failed(err.msg))?;
    let mut bridge = host
        .link_by_name(&conf.bridge)
        .map_err(|e| failed(e.to_string()))?;
    if bridge.is_none() {
        match host.create_bridge(&conf.bridge, conf.mtu, conf.uses_vlans()) {
            // A parallel ADD may have created it first.
            Err(err) if !err.is_exists() => return Err(failed(err.reason)),
            _ => {}
        }
        bridge = host
            .link_by_name(&conf.bridge)
            .map_err(|e| failed(e.to_string()))?;
    }
    let bridge = bridge.ok_or_else(|| failed("not found after creation".to_owned()))?;
    if !is_bridge(&bridge) {
        return Err(failed(format!(
            "\"{}\" already exists but is not a bridge",
            conf.bridge
        )));
    }
    if conf.promisc_mode && !bridge.promisc {
        host.set_promisc(bridge.index, &bridge.name, true)
            .map_err(|e| failed(e.to_string()))?;
    }
    if !bridge.admin_up {
        host.set_up(bridge.index, &bridge.name)
            .map_err(|e| failed(e.to_string()))?;
    }
    Ok(bridge)
}

/// Creates the veth pair: the host end named `veth` + 8 hex characters, the
/// container end named `ifname` inside `pod`'s namespace. The first host
/// name is derived from the attachment (so operators can tell which pod a
/// veth serves); on a collision random names are tried. Returns the host
/// end's name.
///
/// # Errors
/// [`LinkError::ContainerNameTaken`], [`LinkError::NoUniqueName`] or
/// [`LinkError::Veth`].
pub fn create_veth(
    host: &dyn HostNet,
    conf: &BridgeConfig,
    attachment: &str,
    ifname: &str,
    pod: &dyn PodNet,
) -> Result<String, LinkError> {
    for attempt in 0..VETH_NAME_ATTEMPTS {
        let name = if attempt == 0 {
            derived_veth_name(attachment)
        } else {
            random_veth_name()?
        };
        let spec = VethSpec {
            host: &name,
            peer: ifname,
            mtu: conf.mtu,
            peer_mac: conf.mac,
        };
        match host.create_veth(&spec, pod) {
            Ok(()) => return Ok(name),
            Err(err) if err.is_exists() => {
                if host.link_by_name(&name)?.is_none() {
                    return Err(LinkError::ContainerNameTaken(ifname.to_owned()));
                }
            }
            Err(err) => return Err(LinkError::Veth(err)),
        }
    }
    Err(LinkError::NoUniqueName)
}

/// The host end of a veth pair just created as `name`.
///
/// # Errors
/// [`LinkError::Veth`] when it is not there, [`LinkError::Netlink`] when it
/// cannot be looked up.
pub fn find_created(host: &dyn HostNet, name: &str) -> Result<Link, LinkError> {
    host.link_by_name(name)?
        .ok_or_else(|| LinkError::Veth(not_found_after_create(name)))
}

/// Sets `accept_ra=0` on the bridge and on the host veth (errors ignored, as
/// the reference: IPv6 may be disabled). ADD does this last, while the
/// iptables batches run, as the steps before IPAM returns are short of CPU.
pub fn refuse_router_advertisements(host: &dyn HostNet, bridge: &str, veth: &str) {
    let _ = host.sysctl(&format!("net/ipv6/conf/{bridge}/accept_ra"), "0");
    let _ = host.sysctl(&format!("net/ipv6/conf/{veth}/accept_ra"), "0");
}

/// Sets the host veth up (not yet a bridge port) with IPv6 off: first
/// `addrgenmode none`, so it gets no link-local address even where the next
/// step fails, then `disable_ipv6=1` (both best effort: IPv6 may be off on
/// the node, or `/proc/sys` read-only). As a bridge port the veth's own IPv6
/// stack never receives a packet; bridged IPv6 traffic does not depend on it.
/// With IPv6 on, coming up gives the veth an `ff00::/8` multicast route in
/// the host's local table and an `fe80::/64` one: one per pod at the same
/// prefix, which the kernel walks on every route added or removed there and
/// on every multicast route lookup (see the README's "Differences from the
/// reference" and `docs/performance.md`).
///
/// # Errors
/// [`LinkError::Netlink`] when the veth cannot be set up.
pub fn bring_up_host_end(host: &dyn HostNet, veth: &Link) -> Result<(), LinkError> {
    let _ = host.set_no_ipv6_link_local(veth.index, &veth.name);
    let _ = host.sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", veth.name), "1");
    host.set_up(veth.index, &veth.name)?;
    Ok(())
}

/// Makes the (already up) host veth a port of the bridge and sets the port
/// flags (hairpin is always set explicitly, false included) and VLANs. The
/// port forwards from here on, so this comes after the container interface
/// is configured: what the container's kernel sends while its interface
/// comes up (a router solicitation, multicast listener reports) then reaches
/// the host veth alone instead of being flooded to every pod on the bridge.
///
/// # Errors
/// [`LinkError::Connect`] or [`LinkError::Netlink`].
pub fn attach_to_bridge(
    host: &dyn HostNet,
    conf: &BridgeConfig,
    veth: &Link,
    bridge: &Link,
) -> Result<(), LinkError> {
    host.enslave(veth.index, &veth.name, bridge.index)
        .map_err(|source| LinkError::Connect {
            veth: veth.name.clone(),
            bridge: conf.bridge.clone(),
            source,
        })?;
    let flags = PortFlags {
        hairpin: conf.hairpin_mode,
        isolated: conf.port_isolation,
    };
    host.set_port_flags(veth.index, &veth.name, flags)?;
    if conf.uses_vlans() {
        let vlans = PortVlans {
            access: conf.vlan,
            trunk: &conf.vlan_trunk,
            preserve_default: conf.preserve_default_vlan,
        };
        configure_port_vlans(host, veth, &vlans)?;
    }
    Ok(())
}

/// The VLANs of one bridge port.
#[derive(Debug, Clone, Copy)]
pub struct PortVlans<'a> {
    /// The access VLAN (PVID, egress untagged); 0 for none.
    pub access: u16,
    /// Tagged VLANs.
    pub trunk: &'a [u16],
    /// Keep the default VLAN 1 that the kernel gives every new port.
    pub preserve_default: bool,
}

/// Sets a port's VLANs as the reference does: VLAN 1 removed only when
/// not preserved; the access VLAN added as PVID and egress untagged (the
/// kernel then keeps VLAN 1 as egress untagged, no longer PVID); each trunk
/// VLAN tagged. Every request is idempotent, so a retry completes a port
/// that an interrupted call left half done.
///
/// # Errors
/// [`NetlinkError`].
pub fn configure_port_vlans(
    host: &dyn HostNet,
    port: &Link,
    vlans: &PortVlans<'_>,
) -> Result<(), NetlinkError> {
    if !vlans.preserve_default {
        host.del_port_vlan(port.index, &port.name, DEFAULT_VLAN)?;
    }
    if vlans.access != 0 {
        host.add_port_vlan(port.index, &port.name, vlans.access, true)?;
    }
    for vid in vlans.trunk {
        host.add_port_vlan(port.index, &port.name, *vid, false)?;
    }
    Ok(())
}

fn not_found_after_create(name: &str) -> NetlinkError {
    NetlinkError {
        action: format!("look up veth \"{name}\""),
        reason: "not found after creation".to_owned(),
        errno: None,
    }
}

/// `veth` + the first 8 hex characters of sha512 of the attachment key.
pub fn derived_veth_name(attachment: &str) -> String {
    let digest = Sha512::digest(attachment.as_bytes());
    format!("veth{}", hex(&digest[..4]))
}

/// `veth` + 8 random hex characters, as the reference names them.
///
/// # Errors
/// [`LinkError::Veth`] when `/dev/urandom` cannot be read.
pub fn random_veth_name() -> Result<String, LinkError> {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .map_err(|err| {
            LinkError::Veth(NetlinkError {
                action: "pick a random veth name".to_owned(),
                reason: err.to_string(),
                errno: None,
            })
        })?;
    Ok(format!("veth{}", hex(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_look_like_the_reference_and_fit_ifnamsiz() {
        let name = derived_veth_name("crio/abc123/eth0");
        assert_eq!(name.len(), 12);
        assert!(name.starts_with("veth") && name[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(name, derived_veth_name("crio/abc123/eth0"));
        assert_ne!(name, derived_veth_name("crio/abc124/eth0"));
    }

    #[test]
    fn random_names_differ() {
        let a = random_veth_name().unwrap();
        let b = random_veth_name().unwrap();
        assert_eq!(a.len(), 12);
        assert_ne!(a, b);
    }
}
