//! The seam between the bridge plugin's steps and the node they change.
//!
//! Everything ADD, DEL, CHECK, GC and STATUS ask of the kernel and the node
//! goes through the traits here: links, addresses, routes, port flags and
//! sysctls of the host ([`HostNet`]) and of the pod ([`PodNet`]), opening the
//! pod's namespace ([`Namespaces`]), the firewall ([`Firewall`], masquerade
//! and the MAC spoof check) and the IPAM plugin ([`Ipam`]). Host and pod
//! handles are distinct types, so a step cannot configure the wrong
//! namespace. The shipped implementation is the private `system` module (netlink,
//! `/proc/sys`, helper programs, exec); the tests drive the same steps
//! through an in-memory model of the node that can fail any operation.

use crate::error::BridgeError;
use crate::firewall::Firewall;
use crate::netlink::{Link, NetlinkError, RouteEntry};
use crate::pending::Pending;
use crate::sysctl::SysctlError;
use cni_types::CniError;
use cni_types::netns::NetnsError;
use cni_types::result::Result as CniResult;
use ipnetwork::IpNetwork;
use std::net::IpAddr;
use std::os::fd::RawFd;

/// What both namespaces offer: links by name or index, their state and
/// addresses, and the namespace's `net` sysctls.
pub trait Links {
    /// Looks a link up by name; `None` when it does not exist.
    ///
    /// # Errors
    /// [`NetlinkError`] for any other failure.
    fn link_by_name(&self, name: &str) -> Result<Option<Link>, NetlinkError>;

    /// Looks a link up by index; `None` when it does not exist.
    ///
    /// # Errors
    /// [`NetlinkError`] for any other failure.
    fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError>;

    /// Sets a link up.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError>;

    /// Every address of a link.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn addresses(&self, index: u32) -> Result<Vec<IpNetwork>, NetlinkError>;

    /// Adds an address (with its IPv4 broadcast); with `skip_dad`, an IPv6
    /// address is usable at once.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when it is already there.
    fn add_address(
        &self,
        index: u32,
        name: &str,
        address: IpNetwork,
        skip_dad: bool,
    ) -> Result<(), NetlinkError>;

    /// Deletes a link (a veth together with its peer); absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`] for failures other than "not found".
    fn del_link(&self, index: u32, name: &str) -> Result<(), NetlinkError>;

    /// Writes a `/proc/sys` key of this namespace (e.g.
    /// `net/ipv6/conf/eth0/accept_dad`) unless it already holds `value`.
    ///
    /// # Errors
    /// [`SysctlError`].
    fn sysctl(&self, key: &str, value: &str) -> Result<(), SysctlError>;
}

/// The host's side: the bridge, the host end of the veth and its port.
pub trait HostNet: Links {
    /// Creates a bridge, up. Fails with EEXIST when the name is taken.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn create_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetlinkError>;

    /// Creates the veth pair `host`/`peer`, the peer directly inside `pod`'s
    /// namespace (with `peer_mac` when given), both ends with `mtu`.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when either name is taken.
    fn create_veth(&self, veth: &VethSpec<'_>, pod: &dyn PodNet) -> Result<(), NetlinkError>;

    /// Creates the veth pair `host`/`peer` with both ends in the host's
    /// namespace (the VLAN gateway's pair), both with `mtu`.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when either name is taken.
    fn create_host_veth(&self, veth: &VethSpec<'_>) -> Result<(), NetlinkError>;

    /// Gives a down link no IPv6 link-local address when it comes up.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn set_no_ipv6_link_local(&self, index: u32, name: &str) -> Result<(), NetlinkError>;

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn set_promisc(&self, index: u32, name: &str, on: bool) -> Result<(), NetlinkError>;

    /// Makes `index` a port of `master`.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn enslave(&self, index: u32, name: &str, master: u32) -> Result<(), NetlinkError>;

    /// Sets a link's hardware address.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn set_mac(&self, index: u32, name: &str, mac: &[u8]) -> Result<(), NetlinkError>;

    /// Sets the bridge-port hairpin and isolation flags.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn set_port_flags(&self, index: u32, name: &str, flags: PortFlags) -> Result<(), NetlinkError>;

    /// Adds a VLAN to a bridge port, as PVID and untagged when `access`.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn add_port_vlan(
        &self,
        index: u32,
        name: &str,
        vid: u16,
        access: bool,
    ) -> Result<(), NetlinkError>;

    /// Removes a VLAN from a bridge port; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn del_port_vlan(&self, index: u32, name: &str, vid: u16) -> Result<(), NetlinkError>;

    /// Deletes an address; absent is fine.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn del_address(&self, index: u32, name: &str, address: IpNetwork) -> Result<(), NetlinkError>;
}

/// The pod's side: its interface's addresses and routes.
pub trait PodNet: Links {
    /// The namespace as a file descriptor, where a new link is to be created.
    fn netns_fd(&self) -> RawFd;

    /// Sets `net.ipv4.conf.<name>.arp_notify` to 1.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn set_arp_notify(&self, index: u32, name: &str) -> Result<(), NetlinkError>;

    /// Adds a route to `dst` via `gw` out of `index`.
    ///
    /// # Errors
    /// [`NetlinkError`]; EEXIST when it is already there.
    fn add_route(&self, dst: IpNetwork, gw: Option<IpAddr>, index: u32)
    -> Result<(), NetlinkError>;

    /// The routes of one family.
    ///
    /// # Errors
    /// [`NetlinkError`].
    fn routes(&self, ipv4: bool) -> Result<Vec<RouteEntry>, NetlinkError>;
}

/// The veth pair to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VethSpec<'a> {
    /// The host end's name.
    pub host: &'a str,
    /// The container end's name.
    pub peer: &'a str,
    /// The MTU of both ends; `None` keeps the kernel's.
    pub mtu: Option<u32>,
    /// The container end's MAC; `None` lets the kernel choose.
    pub peer_mac: Option<[u8; 6]>,
}

/// A bridge port's flags, each set explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortFlags {
    /// Frames may leave through the port they came in by.
    pub hairpin: bool,
    /// The port talks only to non-isolated ports.
    pub isolated: bool,
}

/// Opens pod namespaces.
pub trait Namespaces {
    /// Opens the namespace at `path` with a connection inside it; `None` when
    /// the path does not exist (the namespace is gone).
    ///
    /// # Errors
    /// [`BridgeError::Netns`] when it is not a namespace or cannot be
    /// entered, [`BridgeError::Netlink`] when no connection can be opened.
    fn open(&self, path: &str) -> Result<Option<Box<dyn PodNet + '_>>, BridgeError>;

    /// [`Namespaces::open`] for a namespace that must exist (ADD, CHECK).
    ///
    /// # Errors
    /// As [`Namespaces::open`], and [`BridgeError::Netns`] with the
    /// reference's "not found" message when the path does not exist.
    fn open_existing(&self, path: &str) -> Result<Box<dyn PodNet + '_>, BridgeError> {
        self.open(path)?
            .ok_or_else(|| BridgeError::netns(path, NetnsError::NotFound(path.into())))
    }
}

/// The delegated IPAM plugin, called with the request's environment and
/// stdin. Errors are the plugin's own, code included.
pub trait Ipam {
    /// Starts the plugin's ADD.
    fn start_add(&self, plugin: &str) -> Pending<'_, Result<CniResult, CniError>>;

    /// Starts the plugin's DEL.
    fn start_del(&self, plugin: &str) -> Pending<'_, Result<(), CniError>>;

    /// Runs the plugin's CHECK.
    ///
    /// # Errors
    /// The plugin's error.
    fn check(&self, plugin: &str) -> Result<(), CniError>;

    /// Runs the plugin's GC.
    ///
    /// # Errors
    /// The plugin's error.
    fn gc(&self, plugin: &str) -> Result<(), CniError>;

    /// Whether the plugin is installed.
    ///
    /// # Errors
    /// Why it cannot be found.
    fn installed(&self, plugin: &str) -> Result<(), CniError>;

    /// Runs the plugin's STATUS.
    ///
    /// # Errors
    /// The plugin's error.
    fn status(&self, plugin: &str) -> Result<(), CniError>;
}

/// Everything a command may change, as the steps see it.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// The host's namespace.
    pub host: &'a dyn HostNet,
    /// Opens pod namespaces.
    pub namespaces: &'a dyn Namespaces,
    /// Masquerade (`ipMasq`).
    pub masquerade: &'a dyn Firewall,
    /// The MAC spoof check (`macspoofchk`).
    pub spoof_check: &'a dyn Firewall,
    /// The IPAM plugin.
    pub ipam: &'a dyn Ipam,
}
