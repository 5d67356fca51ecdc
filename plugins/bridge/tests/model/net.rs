//! The model's kernel: links, addresses, routes and sysctls of the host and
//! the pods, with the kernel's answers (EEXIST, ENODEV, ...) where the plugin
//! tells them apart.

use super::{Fault, HOST, ModelLink, PortVlan, World};
use bridge::BridgeError;
use bridge::netlink::{Link, NetlinkError, RouteEntry};
use bridge::node::{HostNet, Links, Namespaces, PodNet, PortFlags, VethSpec};
use bridge::sysctl::SysctlError;
use ipnetwork::IpNetwork;
use std::cell::RefCell;
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EIO: i32 = 5;
const EOPNOTSUPP: i32 = 95;
const EADDRNOTAVAIL: i32 = 99;

fn errno(action: &str, errno: i32) -> NetlinkError {
    NetlinkError {
        action: action.to_owned(),
        reason: io::Error::from_raw_os_error(errno).to_string(),
        errno: Some(errno),
    }
}

fn injected(action: &str, fault: Fault) -> NetlinkError {
    NetlinkError {
        action: action.to_owned(),
        reason: fault.0,
        errno: Some(EIO),
    }
}

/// The sysctl values a new namespace or link starts with.
fn default_sysctl(key: &str) -> &'static str {
    match key.rsplit('/').next() {
        Some("accept_dad" | "enhanced_dad" | "accept_ra") => "1",
        _ => "0",
    }
}

/// The link as netlink shows it.
fn shown(ns_of_link: u32, index: u32, link: &ModelLink) -> Link {
    Link {
        index,
        name: link.name.clone(),
        kind: link.kind.clone(),
        mac: link.mac.to_vec(),
        master: link.master,
        peer_index: link.peer.map(|(_, peer)| peer),
        peer_in_other_netns: link.peer.is_some_and(|(ns, _)| ns != ns_of_link),
        admin_up: link.up,
        promisc: link.promisc,
        oper_up: link.up,
        mtu: link.mtu,
    }
}

/// One namespace of the world, as the [`Links`] of either side see it.
struct Space<'m> {
    world: &'m RefCell<World>,
    ns: u32,
}

impl Space<'_> {
    /// Runs one operation: counted, failed when told, else `change`d.
    fn op<T>(
        &self,
        action: &str,
        change: impl FnOnce(&mut World) -> Result<T, NetlinkError>,
    ) -> Result<T, NetlinkError> {
        let mut world = self.world.borrow_mut();
        world.op(action).map_err(|fault| injected(action, fault))?;
        change(&mut world)
    }

    /// Changes the link `index`, or ENODEV.
    fn with_link<T>(
        &self,
        action: &str,
        index: u32,
        change: impl FnOnce(&mut ModelLink) -> Result<T, NetlinkError>,
    ) -> Result<T, NetlinkError> {
        let ns = self.ns;
        self.op(action, |world| {
            let link = world.namespace(ns).links.get_mut(&index);
            change(link.ok_or_else(|| errno(action, ENODEV))?)
        })
    }

    fn link_by_name(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let ns = self.ns;
        self.op("look up link by name", |world| {
            let links = &world.namespace(ns).links;
            Ok(links
                .iter()
                .find(|(_, l)| l.name == name)
                .map(|(i, l)| shown(ns, *i, l)))
        })
    }

    fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
        let ns = self.ns;
        self.op("look up link by index", |world| {
            Ok(world
                .namespace(ns)
                .links
                .get(&index)
                .map(|l| shown(ns, index, l)))
        })
    }

    fn add_address(&self, index: u32, address: IpNetwork) -> Result<(), NetlinkError> {
        let ns = self.ns;
        self.op("add address", |world| {
            let namespace = world.namespace(ns);
            let link = namespace
                .links
                .get_mut(&index)
                .ok_or_else(|| errno("add address", ENODEV))?;
            if !link.addresses.insert(address) {
                return Err(errno("add address", EEXIST));
            }
            // The kernel's prefix route, once the link is up.
            let network = IpNetwork::new(address.network(), address.prefix())
                .map_err(|_| errno("add address", EADDRNOTAVAIL))?;
            if link.up {
                namespace.routes.insert((network, None, index));
            }
            Ok(())
        })
    }

    fn del_link(&self, index: u32) -> Result<(), NetlinkError> {
        let ns = self.ns;
        self.op("delete link", |world| {
            world.remove_link(ns, index);
            Ok(())
        })
    }

    /// Writes a sysctl unless it holds `value`; a key of a missing link is
    /// not found.
    fn sysctl(&self, key: &str, value: &str) -> Result<(), SysctlError> {
        let ns = self.ns;
        let error = |source| SysctlError {
            key: key.to_owned(),
            source,
        };
        let mut world = self.world.borrow_mut();
        world
            .op(&format!("sysctl {key}"))
            .map_err(|fault| error(io::Error::other(fault.0)))?;
        let namespace = world.namespace(ns);
        let link = key.split('/').nth(3).filter(|_| key.contains("/conf/"));
        let exists = match link {
            Some("all" | "default") | None => true,
            Some(name) => namespace.links.values().any(|l| l.name == name),
        };
        if !exists {
            return Err(error(io::ErrorKind::NotFound.into()));
        }
        if value == default_sysctl(key) {
            namespace.sysctls.remove(key);
        } else {
            namespace.sysctls.insert(key.to_owned(), value.to_owned());
        }
        Ok(())
    }
}

macro_rules! links_through_space {
    ($type:ty) => {
        impl Links for $type {
            fn link_by_name(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
                self.space().link_by_name(name)
            }

            fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
                self.space().link_by_index(index)
            }

            fn set_up(&self, index: u32, _name: &str) -> Result<(), NetlinkError> {
                let ns = self.space().ns;
                self.space().op("set link up", |world| {
                    let namespace = world.namespace(ns);
                    let link = namespace
                        .links
                        .get_mut(&index)
                        .ok_or_else(|| errno("set link up", ENODEV))?;
                    link.up = true;
                    let prefixes: Vec<IpNetwork> = link
                        .addresses
                        .iter()
                        .filter_map(|a| IpNetwork::new(a.network(), a.prefix()).ok())
                        .collect();
                    for network in prefixes {
                        namespace.routes.insert((network, None, index));
                    }
                    Ok(())
                })
            }

            fn addresses(&self, index: u32) -> Result<Vec<IpNetwork>, NetlinkError> {
                self.space().with_link("list addresses", index, |l| {
                    Ok(l.addresses.iter().copied().collect())
                })
            }

            fn add_address(
                &self,
                index: u32,
                _name: &str,
                address: IpNetwork,
                _skip_dad: bool,
            ) -> Result<(), NetlinkError> {
                self.space().add_address(index, address)
            }

            fn del_link(&self, index: u32, _name: &str) -> Result<(), NetlinkError> {
                self.space().del_link(index)
            }

            fn sysctl(&self, key: &str, value: &str) -> Result<(), SysctlError> {
                self.space().sysctl(key, value)
            }
        }
    };
}

/// The host's namespace.
pub struct Host<'m>(pub &'m RefCell<World>);

impl Host<'_> {
    fn space(&self) -> Space<'_> {
        Space {
            world: self.0,
            ns: HOST,
        }
    }
}

links_through_space!(Host<'_>);

impl HostNet for Host<'_> {
    fn create_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetlinkError> {
        self.space().op("create bridge", |world| {
            if world.namespace(HOST).links.values().any(|l| l.name == name) {
                return Err(errno("create bridge", EEXIST));
            }
            let index = world.add_link(HOST, name, "bridge", true);
            let bridge = world.namespace(HOST).links.get_mut(&index);
            if let Some(bridge) = bridge {
                bridge.mtu = mtu.unwrap_or(1500);
                bridge.vlan_filtering = vlan_filtering;
            }
            Ok(())
        })
    }

    fn create_veth(&self, veth: &VethSpec<'_>, pod: &dyn PodNet) -> Result<(), NetlinkError> {
        let pod_ns = u32::try_from(pod.netns_fd()).map_err(|_| errno("create veth", ENODEV))?;
        self.space().op("create veth pair", |world| {
            let taken = |world: &mut World, ns: u32, name: &str| {
                world.namespace(ns).links.values().any(|l| l.name == name)
            };
            if taken(world, HOST, veth.host) || taken(world, pod_ns, veth.peer) {
                return Err(errno("create veth pair", EEXIST));
            }
            let host = world.add_link(HOST, veth.host, "veth", false);
            let peer = world.add_link(pod_ns, veth.peer, "veth", false);
            for (ns, index, other) in [(HOST, host, (pod_ns, peer)), (pod_ns, peer, (HOST, host))] {
                if let Some(link) = world.namespace(ns).links.get_mut(&index) {
                    link.peer = Some(other);
                    link.mtu = veth.mtu.unwrap_or(1500);
                }
            }
            if let (Some(mac), Some(link)) =
                (veth.peer_mac, world.namespace(pod_ns).links.get_mut(&peer))
            {
                link.mac = mac;
            }
            Ok(())
        })
    }

    fn create_host_veth(&self, veth: &VethSpec<'_>) -> Result<(), NetlinkError> {
        self.space().op("create veth pair in the host", |world| {
            let links = &world.namespace(HOST).links;
            if links
                .values()
                .any(|l| l.name == veth.host || l.name == veth.peer)
            {
                return Err(errno("create veth pair in the host", EEXIST));
            }
            let host = world.add_link(HOST, veth.host, "veth", false);
            let peer = world.add_link(HOST, veth.peer, "veth", false);
            for (index, other) in [(host, peer), (peer, host)] {
                if let Some(link) = world.namespace(HOST).links.get_mut(&index) {
                    link.peer = Some((HOST, other));
                    link.mtu = veth.mtu.unwrap_or(1500);
                }
            }
            Ok(())
        })
    }

    fn set_no_ipv6_link_local(&self, index: u32, _name: &str) -> Result<(), NetlinkError> {
        self.space().with_link("set addrgenmode none", index, |l| {
            l.no_ipv6_link_local = true;
            Ok(())
        })
    }

    fn set_promisc(&self, index: u32, _name: &str, on: bool) -> Result<(), NetlinkError> {
        self.space().with_link("set promiscuous mode", index, |l| {
            l.promisc = on;
            Ok(())
        })
    }

    fn enslave(&self, index: u32, _name: &str, master: u32) -> Result<(), NetlinkError> {
        self.space().op("enslave", |world| {
            let links = &mut world.namespace(HOST).links;
            let bridge = links
                .get(&master)
                .filter(|b| b.kind == "bridge")
                .ok_or_else(|| errno("enslave", ENODEV))?;
            let filtering = bridge.vlan_filtering;
            let port = links
                .get_mut(&index)
                .ok_or_else(|| errno("enslave", ENODEV))?;
            port.master = Some(master);
            if filtering {
                let default = PortVlan {
                    pvid: true,
                    untagged: true,
                };
                port.vlans.entry(1).or_insert(default);
            }
            Ok(())
        })
    }

    fn set_mac(&self, index: u32, _name: &str, mac: &[u8]) -> Result<(), NetlinkError> {
        self.space().with_link("set MAC", index, |l| {
            l.mac.copy_from_slice(&mac[..6]);
            Ok(())
        })
    }

    fn set_port_flags(
        &self,
        index: u32,
        _name: &str,
        flags: PortFlags,
    ) -> Result<(), NetlinkError> {
        self.space().with_link("set port flags", index, |l| {
            if l.master.is_none() {
                return Err(errno("set port flags", EOPNOTSUPP));
            }
            l.port_flags = (flags.hairpin, flags.isolated);
            Ok(())
        })
    }

    fn add_port_vlan(
        &self,
        index: u32,
        _name: &str,
        vid: u16,
        access: bool,
    ) -> Result<(), NetlinkError> {
        self.space().op("add port VLAN", |world| {
            let links = &mut world.namespace(HOST).links;
            let master = links.get(&index).and_then(|l| l.master);
            let filtering = master
                .and_then(|m| links.get(&m))
                .is_some_and(|b| b.vlan_filtering);
            let port = links.get_mut(&index).filter(|_| filtering);
            let port = port.ok_or_else(|| errno("add port VLAN", EOPNOTSUPP))?;
            // As the kernel: one PVID per port, and flags replaced.
            if access {
                port.vlans.values_mut().for_each(|vlan| vlan.pvid = false);
            }
            let flags = PortVlan {
                pvid: access,
                untagged: access,
            };
            port.vlans.insert(vid, flags);
            Ok(())
        })
    }

    fn del_port_vlan(&self, index: u32, _name: &str, vid: u16) -> Result<(), NetlinkError> {
        self.space().with_link("delete port VLAN", index, |l| {
            l.vlans.remove(&vid);
            Ok(())
        })
    }

    fn del_address(&self, index: u32, _name: &str, address: IpNetwork) -> Result<(), NetlinkError> {
        self.space().op("delete address", |world| {
            let namespace = world.namespace(HOST);
            if let Some(link) = namespace.links.get_mut(&index) {
                link.addresses.remove(&address);
            }
            if let Ok(network) = IpNetwork::new(address.network(), address.prefix()) {
                namespace.routes.remove(&(network, None, index));
            }
            Ok(())
        })
    }
}

/// A pod's namespace.
pub struct Pod<'m> {
    world: &'m RefCell<World>,
    ns: u32,
}

impl Pod<'_> {
    fn space(&self) -> Space<'_> {
        Space {
            world: self.world,
            ns: self.ns,
        }
    }
}

links_through_space!(Pod<'_>);

impl PodNet for Pod<'_> {
    fn netns_fd(&self) -> RawFd {
        RawFd::try_from(self.ns).unwrap_or(-1)
    }

    fn set_arp_notify(&self, index: u32, _name: &str) -> Result<(), NetlinkError> {
        let ns = self.ns;
        self.space().op("set arp_notify", |world| {
            let namespace = world.namespace(ns);
            let name = namespace
                .links
                .get(&index)
                .map(|l| l.name.clone())
                .ok_or_else(|| errno("set arp_notify", ENODEV))?;
            let key = format!("net/ipv4/conf/{name}/arp_notify");
            namespace.sysctls.insert(key, "1".to_owned());
            Ok(())
        })
    }

    fn add_route(
        &self,
        dst: IpNetwork,
        gw: Option<IpAddr>,
        index: u32,
    ) -> Result<(), NetlinkError> {
        let ns = self.ns;
        self.space().op("add route", |world| {
            let namespace = world.namespace(ns);
            if !namespace.links.contains_key(&index) {
                return Err(errno("add route", ENODEV));
            }
            let dst = IpNetwork::new(dst.network(), dst.prefix())
                .map_err(|_| errno("add route", EADDRNOTAVAIL))?;
            if namespace.routes.iter().any(|(d, _, _)| *d == dst) {
                return Err(errno("add route", EEXIST));
            }
            namespace.routes.insert((dst, gw, index));
            Ok(())
        })
    }

    fn routes(&self, ipv4: bool) -> Result<Vec<RouteEntry>, NetlinkError> {
        let ns = self.ns;
        self.space().op("list routes", |world| {
            Ok(world
                .namespace(ns)
                .routes
                .iter()
                .filter(|(dst, _, _)| dst.is_ipv4() == ipv4)
                .map(|(dst, gw, oif)| RouteEntry {
                    dst: *dst,
                    gw: *gw,
                    oif: Some(*oif),
                })
                .collect())
        })
    }
}

/// The namespace files.
pub struct Mounts<'m>(pub &'m RefCell<World>);

impl Namespaces for Mounts<'_> {
    fn open(&self, path: &str) -> Result<Option<Box<dyn PodNet + '_>>, BridgeError> {
        let mut world = self.0.borrow_mut();
        world
            .op("open namespace")
            .map_err(|fault| BridgeError::Netlink(injected("open namespace", fault)))?;
        Ok(world
            .state
            .mounts
            .get(path)
            .map(|&ns| Box::new(Pod { world: self.0, ns }) as Box<dyn PodNet + '_>))
    }
}
