//! The kernel boundary: a small blocking rtnetlink client. A [`Kernel`] is
//! a pair of netlink sockets bound to the network namespace of the thread
//! that opened them (setns is per thread).

use cni_netlink::Socket;
use ipnetwork::IpNetwork;
use netlink_packet_core::{Emitable, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort, InfoData,
    InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage, State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
    RouteVia,
};
use std::net::IpAddr;
use std::os::fd::RawFd;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

/// Longest Linux interface name in bytes (`IFNAMSIZ` - 1).
const IFNAME_MAX: usize = 15;

/// A failed netlink request.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {reason}")]
pub struct NetlinkError {
    /// What was being done, naming the object.
    pub action: String,
    /// The kernel's answer.
    pub reason: String,
    /// The errno, when the kernel sent one.
    pub errno: Option<i32>,
}

impl NetlinkError {
    fn new(action: impl Into<String>, err: cni_netlink::Error) -> NetlinkError {
        let errno = err.errno();
        let reason = match errno {
            Some(errno) => {
                cni_types::error::go_errno_text(&std::io::Error::from_raw_os_error(errno))
            }
            None => err.to_string(),
        };
        NetlinkError {
            action: action.into(),
            reason,
            errno,
        }
    }

    fn other(action: impl Into<String>, reason: impl Into<String>) -> NetlinkError {
        NetlinkError {
            action: action.into(),
            reason: reason.into(),
            errno: None,
        }
    }

    /// The object already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno == Some(libc_errno::EEXIST)
    }

    /// The object does not exist (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno,
            Some(
                libc_errno::ENODEV
                    | libc_errno::ENOENT
                    | libc_errno::ESRCH
                    | libc_errno::EADDRNOTAVAIL
            )
        )
    }
}

/// The errno values we tell apart.
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EADDRNOTAVAIL: i32 = 99;
}

/// What we read of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `bridge`, `veth`, ... (empty when the kernel gives no kind).
    pub kind: String,
    /// Hardware address.
    pub mac: Vec<u8>,
    /// Index of the bridge this link is a port of.
    pub master: Option<u32>,
    /// For a veth, the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// IFF_UP is set.
    pub admin_up: bool,
    /// IFF_PROMISC is set.
    pub promisc: bool,
    /// The operational state is UP.
    pub oper_up: bool,
    /// MTU.
    pub mtu: u32,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Link {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            kind: String::new(),
            mac: Vec::new(),
            master: None,
            peer_index: None,
            admin_up: message.header.flags.contains(LinkFlags::Up),
            promisc: message.header.flags.contains(LinkFlags::Promisc),
            oper_up: false,
            mtu: 0,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::Address(mac) => link.mac.clone_from(mac),
                LinkAttribute::Controller(master) => link.master = Some(*master),
                LinkAttribute::Link(peer) => link.peer_index = Some(*peer),
                LinkAttribute::OperState(state) => link.oper_up = *state == State::Up,
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = kind.to_string();
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// A route as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination (`0.0.0.0/0` / `::/0` for the default route).
    pub dst: IpNetwork,
    /// Next hop.
    pub gw: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
}

/// Two rtnetlink sockets in one network namespace.
pub struct Kernel {
    socket: Socket,
    /// A second socket, with `NETLINK_GET_STRICT_CHK`, for dumps the kernel
    /// filters, so they do not return an entry per port of the bridge.
    /// Separate so that strict checking cannot reject any other request.
    strict: Socket,
}

impl Kernel {
    /// Opens the sockets in the calling thread's network namespace.
    ///
    /// # Errors
    /// [`NetlinkError`] when a socket cannot be created.
    pub fn connect() -> Result<Kernel, NetlinkError> {
        let open =
            |err: cni_netlink::Error| NetlinkError::other("open netlink socket", err.to_string());
        Ok(Kernel {
            socket: Socket::open().map_err(open)?,
            strict: Socket::open_strict().map_err(open)?,
        })
    }

    /// Looks a link up by name; `None` when it does not exist.
    ///
    /// # Errors
    /// [`NetlinkError`] for any other failure.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        // No link has a longer name, and one longer than a netlink attribute
        // can hold (from a config or a prevResult) would panic the encoder.
        if name.len() > IFNAME_MAX {
            return Ok(None);
        }
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        self.get_link(&message, format!("look up link \"{name}\""))
    }

    /// Looks a link up by index; `None` when it does not exist.
    ///
    /// # Errors
    /// [`NetlinkError`] for any other failure.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.get_link(&message, format!("look up link {index}"))
    }

    fn get_link(
        &self,
        message: &LinkMessage,
        action: String,
    ) -> Result<Option<Link>, NetlinkError> {
        let mut found = None;
        let outcome = self
            .socket
            .request(RTM_GETLINK, 0, message, |kind, payload| {
                if kind == RTM_NEWLINK && found.is_none() {
                    found = Some(Link::from_message(&LinkMessage::parse(payload)?));
                }
                Ok(())
            });
        match outcome {
            Ok(()) => Ok(found),
            Err(err) => {
                let err = NetlinkError::new(action, err);
                if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Sends a request that is answered with an ACK.
    fn send(
        &self,
        message_type: u16,
        flags: u16,
        message: &impl Emitable,
        action: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        self.socket
            .request(message_type, flags, message, |_, _| Ok(()))
            .map_err(|err| NetlinkError::new(action(), err))
    }

    /// Creates a bridge. Fails with EEXIST when the name is taken.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn create_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if vlan_filtering {
            info.push(LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::VlanFiltering(true),
            ])));
        }
        message.attributes.push(LinkAttribute::LinkInfo(info));
        self.send(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &message, || {
            format!("create bridge \"{name}\"")
        })
    }

    /// Creates a veth pair whose `peer` end is created directly inside the
    /// namespace `peer_netns`, with the given MTU and peer MAC.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when either name is taken.
    pub fn create_veth(
        &self,
        host: &str,
        peer: &str,
        peer_netns: RawFd,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), NetlinkError> {
        let mut peer_message = LinkMessage::default();
        peer_message
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_message
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns));
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(host.to_owned()));
        if let Some(mtu) = mtu {
            peer_message.attributes.push(LinkAttribute::Mtu(mtu));
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = peer_mac {
            peer_message
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.send(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &message, || {
            format!("create veth pair \"{host}\"/\"{peer}\"")
        })
    }

    fn set_link(
        &self,
        message: &LinkMessage,
        action: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        self.send(RTM_SETLINK, NLM_F_CREATE | NLM_F_EXCL, message, action)
    }

    /// Sets a link up.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.set_link(&message, || format!("set \"{name}\" up"))
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_promisc(&self, index: u32, name: &str, on: bool) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        if on {
            message.header.flags = LinkFlags::Promisc;
        }
        message.header.change_mask = LinkFlags::Promisc;
        self.set_link(&message, || format!("set promiscuous mode on \"{name}\""))
    }

    /// Makes `index` a port of `master` and sets it up, in one request.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn enslave_and_up(&self, index: u32, name: &str, master: u32) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        message.attributes.push(LinkAttribute::Controller(master));
        self.set_link(&message, || format!("connect \"{name}\" to bridge"))
    }

    /// Sets a link's hardware address.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_mac(&self, index: u32, name: &str, mac: &[u8]) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        self.set_link(&message, || format!("set MAC of \"{name}\""))
    }

    /// Sets the bridge-port hairpin and isolation flags (explicitly, false
    /// included).
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_port_flags(
        &self,
        index: u32,
        name: &str,
        hairpin: bool,
        isolated: bool,
    ) -> Result<(), NetlinkError> {
        let mut port = vec![InfoBridgePort::HairpinMode(hairpin)];
        if isolated {
            port.push(InfoBridgePort::Isolated(true));
        }
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(port)),
        ]));
        self.send(RTM_NEWLINK, 0, &message, || {
            format!("set bridge port flags of \"{name}\"")
        })
    }

    /// A `bridge vlan` request: AF_BRIDGE, one VLAN in IFLA_AF_SPEC.
    fn vlan_message(index: u32, vid: u16, flags: BridgeVlanInfoFlags) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.interface_family = AddressFamily::Bridge;
        message
            .attributes
            .push(LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
                BridgeVlanInfo { vid, flags },
            )]));
        message
    }

    /// Adds a VLAN to a bridge port, as PVID and untagged when `access`.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn add_port_vlan(
        &self,
        index: u32,
        name: &str,
        vid: u16,
        access: bool,
    ) -> Result<(), NetlinkError> {
        let flags = if access {
            BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged
        } else {
            BridgeVlanInfoFlags::empty()
        };
        // `bridge vlan add`: RTM_SETLINK in the AF_BRIDGE family.
        let message = Kernel::vlan_message(index, vid, flags);
        self.set_link(&message, || format!("add VLAN {vid} to \"{name}\""))
    }

    /// Removes a VLAN from a bridge port; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn del_port_vlan(&self, index: u32, name: &str, vid: u16) -> Result<(), NetlinkError> {
        // `bridge vlan del`: RTM_DELLINK in the AF_BRIDGE family.
        let message = Kernel::vlan_message(index, vid, BridgeVlanInfoFlags::empty());
        match self.send(RTM_DELLINK, 0, &message, || {
            format!("remove VLAN {vid} from \"{name}\"")
        }) {
            Err(err) if err.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Deletes a link; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`] for failures other than "not found".
    pub fn del_link(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        match self.send(RTM_DELLINK, 0, &message, || {
            format!("delete link \"{name}\"")
        }) {
            Err(err) if err.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Every address of a link, with flags telling tentative/dadfailed ones.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn addresses(&self, index: u32) -> Result<Vec<IpNetwork>, NetlinkError> {
        // With strict checking the kernel dumps only this link's addresses
        // (Linux 4.20+; older kernels dump all and the filter below applies),
        // instead of one per port of the bridge and per host interface.
        let mut request = AddressMessage::default();
        request.header.index = index;
        let mut found = Vec::new();
        self.strict
            .request(RTM_GETADDR, NLM_F_DUMP, &request, |kind, payload| {
                if kind != RTM_NEWADDR {
                    return Ok(());
                }
                let message = AddressMessage::parse(payload)?;
                if message.header.index != index {
                    return Ok(());
                }
                if let Some(net) = message
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        AddressAttribute::Address(ip) => {
                            IpNetwork::new(*ip, message.header.prefix_len).ok()
                        }
                        _ => None,
                    })
                {
                    found.push(net);
                }
                Ok(())
            })
            .map_err(|err| NetlinkError::new(format!("list addresses of link {index}"), err))?;
        Ok(found)
    }

    /// Adds an address with its IPv4 broadcast. With `skip_dad`, an IPv6
    /// address is usable at once instead of tentative for a second or more.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when it is already there.
    pub fn add_address(
        &self,
        index: u32,
        name: &str,
        address: IpNetwork,
        skip_dad: bool,
    ) -> Result<(), NetlinkError> {
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = address.prefix();
        match address {
            IpNetwork::V4(v4) => {
                message.header.family = AddressFamily::Inet;
                if !v4.ip().is_multicast() {
                    message
                        .attributes
                        .push(AddressAttribute::Address(address.ip()));
                    message
                        .attributes
                        .push(AddressAttribute::Local(address.ip()));
                }
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
            IpNetwork::V6(v6) => {
                message.header.family = AddressFamily::Inet6;
                if v6.ip().is_multicast() {
                    message
                        .attributes
                        .push(AddressAttribute::Multicast(v6.ip()));
                } else {
                    message
                        .attributes
                        .push(AddressAttribute::Address(address.ip()));
                    message
                        .attributes
                        .push(AddressAttribute::Local(address.ip()));
                }
                if skip_dad {
                    message.header.flags |= AddressHeaderFlags::Nodad;
                    message
                        .attributes
                        .push(AddressAttribute::Flags(AddressFlags::Nodad));
                }
            }
        }
        self.send(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &message, || {
            format!("add address {address} to \"{name}\"")
        })
    }

    /// Deletes an address; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn del_address(
        &self,
        index: u32,
        name: &str,
        address: IpNetwork,
    ) -> Result<(), NetlinkError> {
        let mut message = AddressMessage::default();
        message.header.family = if address.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        message.header.prefix_len = address.prefix();
        message.header.index = index;
        message
            .attributes
            .push(AddressAttribute::Local(address.ip()));
        message
            .attributes
            .push(AddressAttribute::Address(address.ip()));
        match self.send(RTM_DELADDR, 0, &message, || {
            format!("delete address {address} from \"{name}\"")
        }) {
            Err(err) if err.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Adds a route to `dst` via `gw` out of `index`.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when it is already there.
    pub fn add_route(
        &self,
        dst: IpNetwork,
        gw: Option<IpAddr>,
        index: u32,
    ) -> Result<(), NetlinkError> {
        let action = || match gw {
            Some(gw) => format!("add route '{dst} via {gw} dev {index}'"),
            None => format!("add route '{dst} dev {index}'"),
        };
        let mut message = route_message(dst.is_ipv4());
        // What the reference (Go netlink) installs; `ip route` hides it.
        message.header.protocol = RouteProtocol::Boot;
        message.header.destination_prefix_length = dst.prefix();
        message
            .attributes
            .push(RouteAttribute::Destination(dst.network().into()));
        message.attributes.push(RouteAttribute::Oif(index));
        match (dst, gw) {
            (_, None) => {}
            (IpNetwork::V4(_), Some(gw @ IpAddr::V4(_)))
            | (IpNetwork::V6(_), Some(gw @ IpAddr::V6(_))) => {
                message.attributes.push(RouteAttribute::Gateway(gw.into()));
            }
            (IpNetwork::V4(_), Some(IpAddr::V6(v6))) => {
                message
                    .attributes
                    .push(RouteAttribute::Via(RouteVia::Inet6(v6)));
            }
            (IpNetwork::V6(_), Some(IpAddr::V4(_))) => {
                return Err(NetlinkError::other(
                    action(),
                    "invalid address family Inet6",
                ));
            }
        }
        self.send(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &message, action)
    }

    /// The main table's routes of one family.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn routes(&self, ipv4: bool) -> Result<Vec<RouteEntry>, NetlinkError> {
        let request = route_message(ipv4);
        let mut found = Vec::new();
        self.socket
            .request(RTM_GETROUTE, NLM_F_DUMP, &request, |kind, payload| {
                if kind == RTM_NEWROUTE {
                    found.extend(route_entry(&RouteMessage::parse(payload)?));
                }
                Ok(())
            })
            .map_err(|err| NetlinkError::new("list routes", err))?;
        Ok(found)
    }
}

/// A route message of the main table, static, universe, unicast.
fn route_message(ipv4: bool) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = if ipv4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::Static;
    message.header.scope = RouteScope::Universe;
    message.header.kind = RouteType::Unicast;
    message
}

/// Reads destination, gateway and output interface of a route message.
fn route_entry(message: &RouteMessage) -> Option<RouteEntry> {
    let ipv4 = message.header.address_family == AddressFamily::Inet;
    let address = |value: &RouteAddress| match value {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    let mut dst: Option<IpAddr> = None;
    let mut gw = None;
    let mut oif = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(value) => dst = address(value),
            RouteAttribute::Gateway(value) => gw = address(value),
            RouteAttribute::Oif(index) => oif = Some(*index),
            _ => {}
        }
    }
    let unspecified = if ipv4 {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let dst = IpNetwork::new(
        dst.unwrap_or(unspecified),
        message.header.destination_prefix_length,
    )
    .ok()?;
    Some(RouteEntry { dst, gw, oif })
}

/// Kind names as the kernel reports them.
pub fn is_bridge(link: &Link) -> bool {
    link.kind == InfoKind::Bridge.to_string()
}

/// Whether the link is a veth.
pub fn is_veth(link: &Link) -> bool {
    link.kind == InfoKind::Veth.to_string()
}
