//! The gateway of a VLAN (`vlan` with `isGateway`), as the reference builds
//! it: the bridge's own port stays on VLAN 1, so the gateway addresses go on
//! `<bridge>.<vlan>`, one end of a veth pair in the host's namespace whose
//! other end is a bridge port with the VLAN as PVID, egress untagged. Every
//! pod on the VLAN shares it, and DEL leaves it, as it leaves the bridge.
//!
//! Creating it is made safe to interrupt and to race: a pair this call
//! created is deleted again if it cannot be completed, and a pair that is
//! already there has its port completed again (every request idempotent),
//! so a concurrent ADD, or one killed half way, never leaves a gateway
//! that looks done but is not.

use crate::config::BridgeConfig;
use crate::link::{self, LinkError, PortVlans};
use crate::netlink::{Link, NetlinkError};
use crate::node::{HostNet, PortFlags, VethSpec};

/// Why the VLAN gateway interface could not be had.
#[derive(Debug, thiserror::Error)]
pub enum VlanGatewayError {
    /// `<bridge>.<vlan>` is not a valid interface name (too long).
    #[error("failed to create vlan interface: invalid name \"{name}\": {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A link of that name exists and is not a veth pair's end.
    #[error(
        "failed to create vlan interface: \"{0}\" already exists but is not a veth pair in the host namespace"
    )]
    NotAVethPair(String),
    /// Every port name tried was taken.
    #[error("failed to create vlan interface: failed to find a unique veth name")]
    NoUniqueName,
    /// A netlink request failed.
    #[error("failed to create vlan interface: {0}")]
    Netlink(#[from] NetlinkError),
}

impl From<LinkError> for VlanGatewayError {
    fn from(err: LinkError) -> VlanGatewayError {
        match err {
            LinkError::Netlink(err) | LinkError::Veth(err) => VlanGatewayError::Netlink(err),
            other => VlanGatewayError::Netlink(NetlinkError {
                action: "create the VLAN gateway's pair".to_owned(),
                reason: other.to_string(),
                errno: None,
            }),
        }
    }
}

/// The gateway interface's name: `<bridge>.<vlan>`.
pub fn name(conf: &BridgeConfig) -> String {
    format!("{}.{}", conf.bridge, conf.vlan)
}

/// Returns the VLAN gateway interface of `conf.vlan` on `bridge`, up and
/// with its port complete, creating the pair when it is not there.
///
/// # Errors
/// [`VlanGatewayError`]; a pair this call created is deleted first.
pub fn ensure(
    host: &dyn HostNet,
    conf: &BridgeConfig,
    bridge: &Link,
) -> Result<Link, VlanGatewayError> {
    let name = name(conf);
    cni_types::skel::validate_ifname(&name).map_err(|err| VlanGatewayError::BadName {
        name: name.clone(),
        reason: err.msg,
    })?;
    if let Some(existing) = host.link_by_name(&name)? {
        return complete(host, conf, bridge, &existing, false);
    }
    let Some(created) = create(host, &name, bridge.mtu)? else {
        // A concurrent ADD created it first.
        let existing = host.link_by_name(&name)?;
        let existing = existing.ok_or_else(|| VlanGatewayError::NotAVethPair(name.clone()))?;
        return complete(host, conf, bridge, &existing, false);
    };
    complete(host, conf, bridge, &created, true).inspect_err(|_| {
        let _ = host.del_link(created.index, &created.name);
    })
}

/// Creates the pair `name`/`veth…` with the bridge's MTU; `None` when
/// `name` was taken meanwhile.
fn create(host: &dyn HostNet, name: &str, mtu: u32) -> Result<Option<Link>, VlanGatewayError> {
    for _ in 0..link::VETH_NAME_ATTEMPTS {
        let port = link::random_veth_name()?;
        let spec = VethSpec {
            host: &port,
            peer: name,
            mtu: Some(mtu).filter(|m| *m != 0),
            peer_mac: None,
        };
        match host.create_host_veth(&spec) {
            Ok(()) => {
                return match host.link_by_name(name) {
                    Ok(Some(created)) => Ok(Some(created)),
                    Ok(None) => {
                        delete_by_name(host, &port);
                        Err(VlanGatewayError::NotAVethPair(name.to_owned()))
                    }
                    Err(err) => {
                        delete_by_name(host, &port);
                        Err(err.into())
                    }
                };
            }
            Err(err) if err.is_exists() => {
                if host.link_by_name(name)?.is_some() {
                    return Ok(None);
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(VlanGatewayError::NoUniqueName)
}

/// Makes the gateway's peer a port of `bridge` on the VLAN (hairpin and
/// isolation off, VLAN 1 kept unless `preserveDefaultVlan` is false) and
/// sets both ends up. A `new` port also gets IPv6 off first, as every
/// host veth.
fn complete(
    host: &dyn HostNet,
    conf: &BridgeConfig,
    bridge: &Link,
    gateway: &Link,
    new: bool,
) -> Result<Link, VlanGatewayError> {
    let not_a_pair = || VlanGatewayError::NotAVethPair(gateway.name.clone());
    if gateway.kind != "veth" || gateway.peer_in_other_netns {
        return Err(not_a_pair());
    }
    let port = gateway.peer_index.ok_or_else(not_a_pair)?;
    let port = host.link_by_index(port)?.ok_or_else(not_a_pair)?;
    if port.peer_index != Some(gateway.index) || port.peer_in_other_netns {
        return Err(not_a_pair());
    }
    if new {
        link::bring_up_host_end(host, &port)?;
    } else if !port.admin_up {
        host.set_up(port.index, &port.name)?;
    }
    if port.master != Some(bridge.index) {
        host.enslave(port.index, &port.name, bridge.index)?;
    }
    host.set_port_flags(port.index, &port.name, PortFlags::default())?;
    let vlans = PortVlans {
        access: conf.vlan,
        trunk: &[],
        preserve_default: conf.preserve_default_vlan,
    };
    link::configure_port_vlans(host, &port, &vlans)?;
    if !gateway.admin_up {
        host.set_up(gateway.index, &gateway.name)?;
    }
    Ok(host
        .link_by_index(gateway.index)?
        .unwrap_or_else(|| gateway.clone()))
}

/// Deletes the link `name` (with its peer), best effort: for a pair just
/// created whose gateway end could not be looked up.
fn delete_by_name(host: &dyn HostNet, name: &str) {
    if let Ok(Some(link)) = host.link_by_name(name) {
        let _ = host.del_link(link.index, name);
    }
}
