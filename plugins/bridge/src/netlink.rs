//! The kernel boundary: a small blocking rtnetlink client. A [`Kernel`] is
//! a pair of netlink sockets bound to the network namespace of the thread
//! that opened them (setns is per thread).

use crate::node::{PortFlags, VethSpec};
use cni_netlink::Socket;
use cni_netlink::addr::{self, AddressRequest};
use cni_netlink::link::{self, Ipv4Conf, LinkRequest};
use cni_netlink::route::{self, RouteRequest};
use ipnetwork::IpNetwork;
use std::net::IpAddr;
use std::os::fd::RawFd;

pub use cni_netlink::link::Link;
pub use cni_netlink::route::RouteEntry;

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

/// Two rtnetlink sockets in one network namespace.
pub struct Kernel {
    socket: Socket,
    /// A second socket, with `NETLINK_GET_STRICT_CHK`, for dumps the kernel
    /// filters, so they do not return an entry per port of the bridge.
    /// Separate so that strict checking cannot reject any other request.
    strict: Socket,
}

/// Maps "not found" to success, for deletes.
fn absent_is_fine(outcome: Result<(), NetlinkError>) -> Result<(), NetlinkError> {
    match outcome {
        Err(err) if err.is_not_found() => Ok(()),
        other => other,
    }
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
        // can hold (from a config or a prevResult) cannot be encoded.
        if name.len() > IFNAME_MAX {
            return Ok(None);
        }
        self.get_link(
            &LinkRequest::new().name(name),
            format!("look up link \"{name}\""),
        )
    }

    /// Looks a link up by index; `None` when it does not exist.
    ///
    /// # Errors
    /// [`NetlinkError`] for any other failure.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
        self.get_link(&LinkRequest::index(index), format!("look up link {index}"))
    }

    fn get_link(
        &self,
        request: &LinkRequest,
        action: String,
    ) -> Result<Option<Link>, NetlinkError> {
        match link::get(&self.socket, request) {
            Ok(found) => Ok(found),
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

    /// Creates a bridge, up. Fails with EEXIST when the name is taken.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn create_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetlinkError> {
        let mut request = LinkRequest::new().up().name(name);
        if let Some(mtu) = mtu {
            request = request.mtu(mtu);
        }
        link::create(&self.socket, &request.bridge(vlan_filtering))
            .map_err(|err| NetlinkError::new(format!("create bridge \"{name}\""), err))
    }

    /// Creates a veth pair whose peer end is created directly inside the
    /// namespace `peer_netns` (this socket's namespace when `None`), with
    /// the given MTU and peer MAC.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when either name is taken.
    pub fn create_veth(
        &self,
        veth: &VethSpec<'_>,
        peer_netns: Option<RawFd>,
    ) -> Result<(), NetlinkError> {
        let mut peer_request = LinkRequest::new().name(veth.peer);
        if let Some(netns) = peer_netns {
            peer_request = peer_request.netns_fd(netns);
        }
        let mut request = LinkRequest::new().name(veth.host);
        if let Some(mtu) = veth.mtu {
            peer_request = peer_request.mtu(mtu);
            request = request.mtu(mtu);
        }
        if let Some(mac) = veth.peer_mac {
            peer_request = peer_request.mac(&mac);
        }
        link::create(&self.socket, &request.veth(&peer_request)).map_err(|err| {
            NetlinkError::new(
                format!("create veth pair \"{}\"/\"{}\"", veth.host, veth.peer),
                err,
            )
        })
    }

    fn set_link(&self, request: &LinkRequest, action: String) -> Result<(), NetlinkError> {
        link::set(&self.socket, request).map_err(|err| NetlinkError::new(action, err))
    }

    /// Gives a down link no IPv6 link-local address when it comes up
    /// (`addrgenmode none`).
    ///
    /// # Errors
    /// [`NetlinkError`]; `EAFNOSUPPORT` when IPv6 is disabled on the node.
    pub fn set_no_ipv6_link_local(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.set_link(
            &LinkRequest::index(index).no_ipv6_link_local(),
            format!("set addrgenmode none on \"{name}\""),
        )
    }

    /// Sets a link up.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.set_link(
            &LinkRequest::index(index).up(),
            format!("set \"{name}\" up"),
        )
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_promisc(&self, index: u32, name: &str, on: bool) -> Result<(), NetlinkError> {
        self.set_link(
            &LinkRequest::index(index).promisc(on),
            format!("set promiscuous mode on \"{name}\""),
        )
    }

    /// Sets `net.ipv4.conf.<name>.arp_notify` to 1 through netlink, not
    /// `/proc/sys`: resolving `/proc/sys/net/ipv4` costs the kernel a walk
    /// over one entry per network namespace (0.5 ms at 500 pods).
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_arp_notify(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.set_link(
            &LinkRequest::index(index).ipv4_conf(Ipv4Conf::ArpNotify, 1),
            format!("set arp_notify on \"{name}\""),
        )
    }

    /// Makes `index` a port of `master`.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn enslave(&self, index: u32, name: &str, master: u32) -> Result<(), NetlinkError> {
        self.set_link(
            &LinkRequest::index(index).master(master),
            format!("connect \"{name}\" to bridge"),
        )
    }

    /// Sets a link's hardware address.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn set_mac(&self, index: u32, name: &str, mac: &[u8]) -> Result<(), NetlinkError> {
        self.set_link(
            &LinkRequest::index(index).mac(mac),
            format!("set MAC of \"{name}\""),
        )
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
        flags: PortFlags,
    ) -> Result<(), NetlinkError> {
        link::set(
            &self.socket,
            &LinkRequest::index(index).bridge_port(flags.hairpin, flags.isolated),
        )
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
        // `bridge vlan add`: RTM_SETLINK in the AF_BRIDGE family.
        self.set_link(
            &LinkRequest::bridge_vlan(index, vid, access),
            format!("add VLAN {vid} to \"{name}\""),
        )
    }

    /// Removes a VLAN from a bridge port; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn del_port_vlan(&self, index: u32, name: &str, vid: u16) -> Result<(), NetlinkError> {
        // `bridge vlan del`: RTM_DELLINK in the AF_BRIDGE family.
        absent_is_fine(
            link::delete(&self.socket, &LinkRequest::bridge_vlan(index, vid, false)).map_err(
                |err| NetlinkError::new(format!("remove VLAN {vid} from \"{name}\""), err),
            ),
        )
    }

    /// Deletes a link; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`] for failures other than "not found".
    pub fn del_link(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        absent_is_fine(
            link::delete(&self.socket, &LinkRequest::index(index))
                .map_err(|err| NetlinkError::new(format!("delete link \"{name}\""), err)),
        )
    }

    /// Every address of a link (tentative and dadfailed ones included).
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn addresses(&self, index: u32) -> Result<Vec<IpNetwork>, NetlinkError> {
        // With strict checking the kernel dumps only this link's addresses
        // (Linux 4.20+; older kernels dump all and `dump` filters),
        // instead of one per port of the bridge and per host interface.
        addr::dump(&self.strict, index)
            .map_err(|err| NetlinkError::new(format!("list addresses of link {index}"), err))
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
        let ip = address.ip();
        let mut request = AddressRequest::new(index, address);
        // As rtnetlink builds it: a multicast address goes without
        // IFA_ADDRESS/IFA_LOCAL, an IPv6 one as IFA_MULTICAST.
        request = match address {
            IpNetwork::V4(v4) if v4.ip().is_multicast() => request.broadcast(v4.broadcast()),
            IpNetwork::V4(v4) => request.address(ip).local(ip).broadcast(v4.broadcast()),
            IpNetwork::V6(v6) if v6.ip().is_multicast() => request.multicast(v6.ip()),
            IpNetwork::V6(_) => request.address(ip).local(ip),
        };
        if skip_dad && address.is_ipv6() {
            request = request.no_dad();
        }
        addr::add(&self.socket, &request)
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
        let request = AddressRequest::new(index, address)
            .local(address.ip())
            .address(address.ip());
        absent_is_fine(addr::delete(&self.socket, &request).map_err(|err| {
            NetlinkError::new(format!("delete address {address} from \"{name}\""), err)
        }))
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
        // What the reference (Go netlink) installs; `ip route` hides it.
        let request = RouteRequest::new(dst.is_ipv4())
            .protocol_boot()
            .destination(dst)
            .output_interface(index);
        let request = match (dst, gw) {
            (_, None) => request,
            (IpNetwork::V4(_), Some(gw @ IpAddr::V4(_)))
            | (IpNetwork::V6(_), Some(gw @ IpAddr::V6(_))) => request.gateway(gw),
            (IpNetwork::V4(_), Some(IpAddr::V6(gw))) => request.via_ipv6(gw),
            // rtnetlink's refusal, word for word.
            (IpNetwork::V6(_), Some(IpAddr::V4(_))) => {
                return Err(NetlinkError::other(
                    action(),
                    "invalid address family Inet6",
                ));
            }
        };
        route::add(&self.socket, &request).map_err(|err| NetlinkError::new(action(), err))
    }

    /// The routes of one family (every table: the kernel ignores the
    /// table in a non-strict dump request).
    ///
    /// # Errors
    /// [`NetlinkError`].
    pub fn routes(&self, ipv4: bool) -> Result<Vec<RouteEntry>, NetlinkError> {
        route::dump(&self.socket, ipv4).map_err(|err| NetlinkError::new("list routes", err))
    }
}

/// Whether the link is a bridge (its kind as the kernel reports it).
pub fn is_bridge(link: &Link) -> bool {
    link.kind == "bridge"
}

/// Whether the link is a veth.
pub fn is_veth(link: &Link) -> bool {
    link.kind == "veth"
}
