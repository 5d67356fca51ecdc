//! The kernel boundary: a small blocking wrapper over rtnetlink. A
//! [`Kernel`] is one rtnetlink connection, bound to the network namespace of
//! the thread that opened it, driven by a single-threaded runtime (setns is
//! per thread, so nothing here may hop threads).

use futures_util::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::link::{
    BridgeVlanInfoFlags, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage, State,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkBridgeVlan, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use std::net::IpAddr;
use std::os::fd::RawFd;
use tokio::runtime::Runtime;

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

/// The text of an rtnetlink error that is not a kernel errno. An unexpected
/// message is not printed with `Debug`: that alone would link the `Debug` code
/// of every netlink attribute type, a tenth of the binary and of its resident set.
fn describe_other(err: &rtnetlink::Error) -> String {
    match err {
        rtnetlink::Error::UnexpectedMessage(_) => "received an unexpected netlink message".into(),
        other => other.to_string(),
    }
}

impl NetlinkError {
    fn new(action: impl Into<String>, err: rtnetlink::Error) -> NetlinkError {
        let errno = match &err {
            rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
            _ => None,
        };
        let reason = match &err {
            rtnetlink::Error::NetlinkError(message) => {
                cni_types::error::go_errno_text(&message.to_io())
            }
            other => describe_other(other),
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

/// One rtnetlink connection and the runtime that drives it.
pub struct Kernel {
    runtime: Runtime,
    handle: Handle,
    /// A second connection, with `NETLINK_GET_STRICT_CHK`, for dumps the kernel
    /// filters, so they do not return an entry per port of the bridge. Separate
    /// so that strict checking cannot reject any other request.
    strict: Handle,
}

impl Kernel {
    /// Opens a connection in the calling thread's network namespace.
    ///
    /// # Errors
    /// [`NetlinkError`] when the runtime or the socket cannot be created.
    pub fn connect() -> Result<Kernel, NetlinkError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|err| NetlinkError::other("start netlink runtime", err.to_string()))?;
        // Both sockets are opened here, by the calling thread, so both belong
        // to its namespace.
        let (handle, strict) = runtime.block_on(async {
            let open =
                |err: std::io::Error| NetlinkError::other("open netlink socket", err.to_string());
            let (connection, handle, _) = rtnetlink::new_connection().map_err(open)?;
            tokio::spawn(connection);
            let (connection, strict, _) =
                rtnetlink::new_connection_with_strict_check().map_err(open)?;
            tokio::spawn(connection);
            Ok::<_, NetlinkError>((handle, strict))
        })?;
        Ok(Kernel {
            runtime,
            handle,
            strict,
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
        let request = self.handle.link().get().match_name(name).execute();
        self.first_link(request, format!("look up link \"{name}\""))
    }

    /// Looks a link up by index; `None` when it does not exist.
    ///
    /// # Errors
    /// [`NetlinkError`] for any other failure.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
        let request = self.handle.link().get().match_index(index).execute();
        self.first_link(request, format!("look up link {index}"))
    }

    fn first_link(
        &self,
        request: impl futures_util::Stream<Item = Result<LinkMessage, rtnetlink::Error>>,
        action: String,
    ) -> Result<Option<Link>, NetlinkError> {
        let found = self.runtime.block_on(async {
            futures_util::pin_mut!(request);
            request.try_next().await
        });
        match found {
            Ok(message) => Ok(message.as_ref().map(Link::from_message)),
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
        let mut builder = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        if vlan_filtering {
            builder = builder.vlan_filtering(true);
        }
        self.send_link_add(builder.build(), format!("create bridge \"{name}\""))
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
        let mut peer_builder = LinkUnspec::new_with_name(peer).setns_by_fd(peer_netns);
        let mut builder = LinkVeth::new(host, peer);
        if let Some(mtu) = mtu {
            peer_builder = peer_builder.mtu(mtu);
            builder = builder.mtu(mtu);
        }
        if let Some(mac) = peer_mac {
            peer_builder = peer_builder.address(mac.to_vec());
        }
        let message = builder
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_builder.build())))
            .build();
        self.send_link_add(message, format!("create veth pair \"{host}\"/\"{peer}\""))
    }

    fn send_link_add(&self, message: LinkMessage, action: String) -> Result<(), NetlinkError> {
        let request = self.handle.link().add(message);
        self.runtime
            .block_on(request.execute())
            .map_err(|err| NetlinkError::new(action, err))
    }

    fn send_link_set(&self, message: LinkMessage, action: String) -> Result<(), NetlinkError> {
        let request = self.handle.link().set(message);
        self.runtime
            .block_on(request.execute())
            .map_err(|err| NetlinkError::new(action, err))
    }

    /// Sets a link up.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.send_link_set(
            LinkUnspec::new_with_index(index).up().build(),
            format!("set \"{name}\" up"),
        )
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_promisc(&self, index: u32, name: &str, on: bool) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index).promiscuous(on).build();
        self.send_link_set(message, format!("set promiscuous mode on \"{name}\""))
    }

    /// Makes `index` a port of `master` and sets it up, in one request.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn enslave_and_up(&self, index: u32, name: &str, master: u32) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index)
            .controller(master)
            .up()
            .build();
        self.send_link_set(message, format!("connect \"{name}\" to bridge"))
    }

    /// Sets a link's hardware address.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_mac(&self, index: u32, name: &str, mac: &[u8]) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.send_link_set(message, format!("set MAC of \"{name}\""))
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
        let mut builder = LinkBridgePort::new(index).hairpin(hairpin);
        if isolated {
            builder = builder.isolated(true);
        }
        let request = self.handle.link().set_port(builder.build());
        self.runtime
            .block_on(request.execute())
            .map_err(|err| NetlinkError::new(format!("set bridge port flags of \"{name}\""), err))
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
        let message = LinkBridgeVlan::new(index).vlan(vid, flags).build();
        self.send_link_set(message, format!("add VLAN {vid} to \"{name}\""))
    }

    /// Removes a VLAN from a bridge port; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn del_port_vlan(&self, index: u32, name: &str, vid: u16) -> Result<(), NetlinkError> {
        // `bridge vlan del`: RTM_DELLINK in the AF_BRIDGE family.
        let message = LinkBridgeVlan::new(index)
            .vlan(vid, BridgeVlanInfoFlags::empty())
            .build();
        let request = self.handle.link().del_with_message(message);
        match self.runtime.block_on(request.execute()) {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = NetlinkError::new(format!("remove VLAN {vid} from \"{name}\""), err);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Deletes a link; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`] for failures other than "not found".
    pub fn del_link(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let request = self.handle.link().del(index);
        match self.runtime.block_on(request.execute()) {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = NetlinkError::new(format!("delete link \"{name}\""), err);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
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
        let mut request = self.strict.address().get().set_link_index_filter(index);
        request.message_mut().header.index = index;
        let request = request.execute();
        let messages: Vec<AddressMessage> = self
            .runtime
            .block_on(request.try_collect())
            .map_err(|err| NetlinkError::new(format!("list addresses of link {index}"), err))?;
        Ok(messages
            .iter()
            .filter(|message| message.header.index == index)
            .filter_map(|message| {
                message
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        AddressAttribute::Address(ip) => {
                            IpNetwork::new(*ip, message.header.prefix_len).ok()
                        }
                        _ => None,
                    })
            })
            .collect())
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
        let mut request = self
            .handle
            .address()
            .add(index, address.ip(), address.prefix());
        if skip_dad && address.is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        if let IpNetwork::V4(v4) = address {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Broadcast(v4.broadcast()));
        }
        self.runtime
            .block_on(request.execute())
            .map_err(|err| NetlinkError::new(format!("add address {address} to \"{name}\""), err))
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
        let request = self.handle.address().del(message);
        match self.runtime.block_on(request.execute()) {
            Ok(()) => Ok(()),
            Err(err) => {
                let err =
                    NetlinkError::new(format!("delete address {address} from \"{name}\""), err);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
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
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.network(), dst.prefix())
            .map_err(|err| NetlinkError::other(action(), err.to_string()))?
            .output_interface(index)
            // What the reference (Go netlink) installs; `ip route` hides it.
            .protocol(RouteProtocol::Boot);
        if let Some(gw) = gw {
            builder = builder
                .gateway(gw)
                .map_err(|err| NetlinkError::other(action(), err.to_string()))?;
        }
        let request = self.handle.route().add(builder.build());
        self.runtime
            .block_on(request.execute())
            .map_err(|err| NetlinkError::new(action(), err))
    }

    /// The main table's routes of one family.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn routes(&self, ipv4: bool) -> Result<Vec<RouteEntry>, NetlinkError> {
        let filter: RouteMessage = if ipv4 {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        };
        let request = self.handle.route().get(filter).execute();
        let messages: Vec<RouteMessage> = self
            .runtime
            .block_on(request.try_collect())
            .map_err(|err| NetlinkError::new("list routes", err))?;
        Ok(messages.iter().filter_map(route_entry).collect())
    }
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
