//! The rtnetlink numbers we use, from the kernel's uapi headers
//! (`linux/rtnetlink.h`, `linux/if_link.h`, `linux/if_addr.h`,
//! `linux/if_bridge.h`, `linux/veth.h`). netlink-packet-route keeps its own
//! copies private.

// Message types.
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_SETLINK: u16 = 19;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_GETROUTE: u16 = 26;

// Link attributes.
pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MTU: u16 = 4;
pub(crate) const IFLA_LINK: u16 = 5;
pub(crate) const IFLA_LINK_NETNSID: u16 = 37;
pub(crate) const IFLA_MASTER: u16 = 10;
pub(crate) const IFLA_OPERSTATE: u16 = 16;
pub(crate) const IFLA_PROTINFO: u16 = 12;
pub(crate) const IFLA_LINKINFO: u16 = 18;
pub(crate) const IFLA_AF_SPEC: u16 = 26;
pub(crate) const IFLA_NET_NS_FD: u16 = 28;

// Inside IFLA_LINKINFO.
pub(crate) const IFLA_INFO_KIND: u16 = 1;
pub(crate) const IFLA_INFO_DATA: u16 = 2;

// Inside IFLA_INFO_DATA of a veth or a bridge; IFLA_PROTINFO of a port.
pub(crate) const VETH_INFO_PEER: u16 = 1;
pub(crate) const IFLA_BR_VLAN_FILTERING: u16 = 7;
pub(crate) const IFLA_BRPORT_MODE: u16 = 4;
pub(crate) const IFLA_BRPORT_ISOLATED: u16 = 33;

// Inside IFLA_AF_SPEC of a link message: per-family settings.
pub(crate) const AF_INET: u16 = 2;
pub(crate) const IFLA_INET_CONF: u16 = 1;
pub(crate) const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
pub(crate) const IN6_ADDR_GEN_MODE_NONE: u8 = 1;

// Inside IFLA_AF_SPEC of an AF_BRIDGE message.
pub(crate) const IFLA_BRIDGE_VLAN_INFO: u16 = 2;
pub(crate) const BRIDGE_VLAN_INFO_PVID: u16 = 2;
pub(crate) const BRIDGE_VLAN_INFO_UNTAGGED: u16 = 4;

/// `IF_OPER_UP` in IFLA_OPERSTATE.
pub(crate) const IF_OPER_UP: u8 = 6;

// Address attributes and flags.
pub(crate) const IFA_ADDRESS: u16 = 1;
pub(crate) const IFA_LOCAL: u16 = 2;
pub(crate) const IFA_BROADCAST: u16 = 4;
pub(crate) const IFA_MULTICAST: u16 = 7;
pub(crate) const IFA_FLAGS: u16 = 8;
pub(crate) const IFA_F_NODAD: u32 = 0x02;

// Route attributes.
pub(crate) const RTA_DST: u16 = 1;
pub(crate) const RTA_OIF: u16 = 4;
pub(crate) const RTA_GATEWAY: u16 = 5;
pub(crate) const RTA_VIA: u16 = 18;

/// `AF_INET6` as `struct rtvia` carries it (16 bits).
pub(crate) const AF_INET6: u16 = 10;
