//! Links: looking one up, creating, changing and deleting them, and what we
//! read of a link.

use crate::attr::{Attr, Message, attributes, attributes_after, read_string, read_u8, read_u32};
use crate::consts::*;
use crate::error::Error;
use crate::socket::Socket;
use netlink_packet_core::{NLA_F_NESTED, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{LinkFlags, LinkHeader};
use std::os::fd::RawFd;

/// The size of `struct ifinfomsg`.
const HEADER_LEN: usize = 16;

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
    /// The peer is in another namespace (the kernel sent its netns id).
    pub peer_in_other_netns: bool,
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
    /// Reads an `RTM_NEWLINK` payload.
    fn parse(payload: &[u8]) -> Result<Link, Error> {
        let header = LinkHeader::parse(payload)?;
        let mut link = Link {
            index: header.index,
            name: String::new(),
            kind: String::new(),
            mac: Vec::new(),
            master: None,
            peer_index: None,
            peer_in_other_netns: false,
            admin_up: header.flags.contains(LinkFlags::Up),
            promisc: header.flags.contains(LinkFlags::Promisc),
            oper_up: false,
            mtu: 0,
        };
        for nla in attributes_after(payload, HEADER_LEN) {
            let nla = nla?;
            match nla.kind() {
                IFLA_IFNAME => link.name = read_string(&nla),
                IFLA_ADDRESS => link.mac = nla.value().to_vec(),
                IFLA_MASTER => link.master = Some(read_u32(&nla)?),
                IFLA_LINK => link.peer_index = Some(read_u32(&nla)?),
                IFLA_LINK_NETNSID => link.peer_in_other_netns = true,
                IFLA_OPERSTATE => link.oper_up = read_u8(&nla)? == IF_OPER_UP,
                IFLA_MTU => link.mtu = read_u32(&nla)?,
                IFLA_LINKINFO => {
                    for info in attributes(nla.value()) {
                        let info = info?;
                        if info.kind() == IFLA_INFO_KIND {
                            link.kind = read_string(&info);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(link)
    }
}

/// A link request: an `ifinfomsg` and the attributes set on it. Names must
/// fit a netlink attribute (callers check `IFNAMSIZ`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest(Message<LinkHeader>);

impl LinkRequest {
    /// A request about no link in particular (name it with [`Self::name`]).
    pub fn new() -> LinkRequest {
        LinkRequest(Message {
            header: LinkHeader::default(),
            attrs: Vec::new(),
        })
    }

    /// A request about the link with this index.
    pub fn index(index: u32) -> LinkRequest {
        let mut request = LinkRequest::new();
        request.0.header.index = index;
        request
    }

    /// A `bridge vlan` request (family AF_BRIDGE) for one VLAN of a bridge
    /// port, as PVID and untagged when `access`.
    pub fn bridge_vlan(index: u32, vid: u16, access: bool) -> LinkRequest {
        let flags = if access {
            BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED
        } else {
            0
        };
        // struct bridge_vlan_info { __u16 flags; __u16 vid; }
        let mut info = flags.to_ne_bytes().to_vec();
        info.extend_from_slice(&vid.to_ne_bytes());
        let mut request = LinkRequest::index(index);
        request.0.header.interface_family = AddressFamily::Bridge;
        request.attr(Attr::Nested(
            IFLA_AF_SPEC,
            vec![Attr::Bytes(IFLA_BRIDGE_VLAN_INFO, info)],
        ))
    }

    fn attr(mut self, attr: Attr) -> LinkRequest {
        self.0.attrs.push(attr);
        self
    }

    /// Sets IFF_UP (and marks it changed).
    pub fn up(mut self) -> LinkRequest {
        self.0.header.flags |= LinkFlags::Up;
        self.0.header.change_mask |= LinkFlags::Up;
        self
    }

    /// Clears IFF_UP (and marks it changed).
    pub fn down(mut self) -> LinkRequest {
        self.0.header.flags.remove(LinkFlags::Up);
        self.0.header.change_mask |= LinkFlags::Up;
        self
    }

    /// Sets or clears IFF_PROMISC (and marks it changed).
    pub fn promisc(mut self, on: bool) -> LinkRequest {
        self.0.header.flags.set(LinkFlags::Promisc, on);
        self.0.header.change_mask |= LinkFlags::Promisc;
        self
    }

    /// IFLA_IFNAME.
    pub fn name(self, name: &str) -> LinkRequest {
        self.attr(Attr::Str(IFLA_IFNAME, name.to_owned()))
    }

    /// IFLA_MTU.
    pub fn mtu(self, mtu: u32) -> LinkRequest {
        self.attr(Attr::U32(IFLA_MTU, mtu))
    }

    /// IFLA_ADDRESS: the hardware address.
    pub fn mac(self, mac: &[u8]) -> LinkRequest {
        self.attr(Attr::Bytes(IFLA_ADDRESS, mac.to_vec()))
    }

    /// IFLA_MASTER: make the link a port of this bridge.
    pub fn master(self, index: u32) -> LinkRequest {
        self.attr(Attr::U32(IFLA_MASTER, index))
    }

    /// IFLA_NET_NS_FD: the link goes into (or is created in) the namespace
    /// this descriptor refers to.
    pub fn netns_fd(self, fd: RawFd) -> LinkRequest {
        self.attr(Attr::U32(IFLA_NET_NS_FD, fd.cast_unsigned()))
    }

    /// IFLA_LINKINFO of a bridge, with `vlan_filtering` on when asked.
    pub fn bridge(self, vlan_filtering: bool) -> LinkRequest {
        let mut info = vec![Attr::Str(IFLA_INFO_KIND, "bridge".to_owned())];
        if vlan_filtering {
            info.push(Attr::Nested(
                IFLA_INFO_DATA,
                vec![Attr::U8(IFLA_BR_VLAN_FILTERING, 1)],
            ));
        }
        self.attr(Attr::Nested(IFLA_LINKINFO, info))
    }

    /// IFLA_LINKINFO of a veth whose other end is `peer` (its name, and
    /// where and how to create it).
    pub fn veth(self, peer: &LinkRequest) -> LinkRequest {
        self.attr(Attr::Nested(
            IFLA_LINKINFO,
            vec![
                Attr::Str(IFLA_INFO_KIND, "veth".to_owned()),
                Attr::Nested(
                    IFLA_INFO_DATA,
                    vec![Attr::Bytes(VETH_INFO_PEER, peer.0.to_bytes())],
                ),
            ],
        ))
    }

    /// One IPv4 per-interface setting (`net.ipv4.conf.<if>.*`), given by its
    /// `IPV4_DEVCONF_*` index, in IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF. The
    /// kernel sets only the settings the request names.
    pub fn ipv4_conf(self, key: Ipv4Conf, value: u32) -> LinkRequest {
        self.attr(Attr::Nested(
            IFLA_AF_SPEC,
            vec![Attr::Nested(
                AF_INET,
                vec![Attr::Nested(
                    IFLA_INET_CONF,
                    vec![Attr::U32(key as u16, value)],
                )],
            )],
        ))
    }

    /// No IPv6 address generation (`addrgenmode none`, in
    /// IFLA_AF_SPEC/AF_INET6): the link gets no link-local address, and so no
    /// `fe80::/64` route, when it comes up. Only valid on an existing link.
    pub fn no_ipv6_link_local(self) -> LinkRequest {
        self.attr(Attr::Nested(
            IFLA_AF_SPEC,
            vec![Attr::Nested(
                AF_INET6,
                vec![Attr::U8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE)],
            )],
        ))
    }

    /// Bridge-port flags (family AF_BRIDGE, IFLA_PROTINFO, for
    /// `RTM_SETLINK`): hairpin mode as given, isolation only when on. The
    /// bridge applies these without a netdevice state change, which a
    /// `RTM_NEWLINK` with IFLA_INFO_SLAVE_DATA would raise: on a port
    /// without carrier that makes IPv6 walk the namespace's whole routing
    /// table, a cost that grows with every pod on the node.
    pub fn bridge_port(mut self, hairpin: bool, isolated: bool) -> LinkRequest {
        let mut port = vec![Attr::U8(IFLA_BRPORT_MODE, hairpin.into())];
        if isolated {
            port.push(Attr::U8(IFLA_BRPORT_ISOLATED, 1));
        }
        self.0.header.interface_family = AddressFamily::Bridge;
        self.attr(Attr::Nested(IFLA_PROTINFO | NLA_F_NESTED, port))
    }
}

/// The `IPV4_DEVCONF_*` settings we set (their index in the kernel's enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Ipv4Conf {
    /// `arp_notify`: a gratuitous ARP when the link comes up or changes MAC.
    ArpNotify = 22,
}

impl Default for LinkRequest {
    fn default() -> LinkRequest {
        LinkRequest::new()
    }
}

/// Looks up the link a request names (by index or IFLA_IFNAME); `None`
/// only if the kernel answers with no link and no error.
///
/// # Errors
/// [`Error::Kernel`] with ENODEV when there is no such link, else
/// [`Error`].
pub fn get(socket: &Socket, request: &LinkRequest) -> Result<Option<Link>, Error> {
    let mut found = None;
    socket.request(RTM_GETLINK, 0, &request.0, |kind, payload| {
        if kind == RTM_NEWLINK && found.is_none() {
            found = Some(Link::parse(payload)?);
        }
        Ok(())
    })?;
    Ok(found)
}

/// `RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL`: creates a link.
///
/// # Errors
/// [`Error::Kernel`] (EEXIST when the name is taken), else [`Error`].
pub fn create(socket: &Socket, request: &LinkRequest) -> Result<(), Error> {
    socket.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &request.0, ignore)
}

/// `RTM_SETLINK`: changes flags and attributes of an existing link.
///
/// # Errors
/// [`Error`].
pub fn set(socket: &Socket, request: &LinkRequest) -> Result<(), Error> {
    // The flags rtnetlink sends; the kernel ignores them for RTM_SETLINK.
    socket.request(RTM_SETLINK, NLM_F_CREATE | NLM_F_EXCL, &request.0, ignore)
}

/// `RTM_DELLINK`: deletes a link, or with [`LinkRequest::bridge_vlan`]
/// removes a VLAN from a port.
///
/// # Errors
/// [`Error::Kernel`] (ENODEV when it is absent), else [`Error`].
pub fn delete(socket: &Socket, request: &LinkRequest) -> Result<(), Error> {
    socket.request(RTM_DELLINK, 0, &request.0, ignore)
}

/// A reply handler for requests answered only with an ACK.
pub(crate) fn ignore(_: u16, _: &[u8]) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DefaultNla, Emitable};
    use netlink_packet_route::link::{
        AfSpecBridge, AfSpecInet6, AfSpecUnspec, BridgeVlanInfo, BridgeVlanInfoFlags,
        In6AddrGenMode, InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo,
        LinkMessage, LinkProtoInfoBridge, State,
    };

    /// netlink-packet-route's encoding of the same request (what rtnetlink
    /// sent before).
    fn reference(message: &LinkMessage) -> Vec<u8> {
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        bytes
    }

    fn reference_message(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes = attributes;
        message
    }

    #[test]
    fn one_ipv4_setting_is_nested_in_af_spec() {
        let bytes = LinkRequest::index(5)
            .ipv4_conf(Ipv4Conf::ArpNotify, 1)
            .0
            .to_bytes();
        let header = reference(&reference_message(5, vec![]));
        assert_eq!(bytes[..header.len()], header[..], "same link header");
        // IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { 22: u32 1 } } }, each
        // attribute a native-endian (len, type) pair.
        let expected: Vec<u8> = [20u16, 26, 16, 2, 12, 1, 8, 22]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .chain(1u32.to_ne_bytes())
            .collect();
        assert_eq!(bytes[header.len()..], expected[..]);
    }

    #[test]
    fn no_ipv6_link_local_is_addr_gen_mode_none_in_af_spec() {
        let bytes = LinkRequest::index(5).no_ipv6_link_local().0.to_bytes();
        let theirs = reference(&reference_message(
            5,
            vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )])],
        ));
        assert_eq!(bytes, theirs);
    }

    #[test]
    fn lookup_by_name_and_by_index() {
        assert_eq!(
            LinkRequest::new().name("cni0").0.to_bytes(),
            reference(&reference_message(
                0,
                vec![LinkAttribute::IfName("cni0".into())]
            ))
        );
        assert_eq!(
            LinkRequest::index(7).0.to_bytes(),
            reference(&reference_message(7, vec![]))
        );
    }

    #[test]
    fn bridge_with_mtu_and_vlan_filtering() {
        let ours = LinkRequest::new().up().name("cni0").mtu(1400).bridge(true);
        let mut theirs = reference_message(
            0,
            vec![
                LinkAttribute::IfName("cni0".into()),
                LinkAttribute::Mtu(1400),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Bridge),
                    LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)])),
                ]),
            ],
        );
        theirs.header.flags = LinkFlags::Up;
        theirs.header.change_mask = LinkFlags::Up;
        assert_eq!(ours.0.to_bytes(), reference(&theirs));
        let plain = LinkRequest::new().up().name("cni0").bridge(false);
        theirs.attributes.remove(1);
        theirs.attributes[1] = LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]);
        assert_eq!(plain.0.to_bytes(), reference(&theirs));
    }

    #[test]
    fn veth_with_its_peer_in_another_namespace() {
        let peer = LinkRequest::new()
            .name("eth0")
            .netns_fd(5)
            .mtu(1500)
            .mac(&[2, 0, 0, 0, 0, 1]);
        let ours = LinkRequest::new().name("veth1234").mtu(1500).veth(&peer);
        let theirs_peer = reference_message(
            0,
            vec![
                LinkAttribute::IfName("eth0".into()),
                LinkAttribute::NetNsFd(5),
                LinkAttribute::Mtu(1500),
                LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            ],
        );
        let theirs = reference_message(
            0,
            vec![
                LinkAttribute::IfName("veth1234".into()),
                LinkAttribute::Mtu(1500),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(theirs_peer))),
                ]),
            ],
        );
        assert_eq!(ours.0.to_bytes(), reference(&theirs));
    }

    #[test]
    fn flag_changes() {
        let mut theirs = reference_message(3, vec![LinkAttribute::Controller(9)]);
        theirs.header.flags = LinkFlags::Up;
        theirs.header.change_mask = LinkFlags::Up;
        assert_eq!(
            LinkRequest::index(3).master(9).up().0.to_bytes(),
            reference(&theirs)
        );
        theirs.attributes.clear();
        theirs.header.flags = LinkFlags::empty();
        assert_eq!(
            LinkRequest::index(3).down().0.to_bytes(),
            reference(&theirs)
        );
        theirs.header.flags = LinkFlags::Promisc;
        theirs.header.change_mask = LinkFlags::Promisc;
        assert_eq!(
            LinkRequest::index(3).promisc(true).0.to_bytes(),
            reference(&theirs)
        );
        theirs.header.flags = LinkFlags::empty();
        assert_eq!(
            LinkRequest::index(3).promisc(false).0.to_bytes(),
            reference(&theirs)
        );
    }

    #[test]
    fn bridge_port_flags() {
        for (hairpin, isolated) in [(false, false), (true, false), (true, true)] {
            let mut port = vec![LinkProtoInfoBridge::Other(DefaultNla::new(
                IFLA_BRPORT_MODE,
                vec![hairpin.into()],
            ))];
            if isolated {
                port.push(LinkProtoInfoBridge::Other(DefaultNla::new(
                    IFLA_BRPORT_ISOLATED,
                    vec![1],
                )));
            }
            let mut theirs = reference_message(4, vec![LinkAttribute::ProtoInfoBridge(port)]);
            theirs.header.interface_family = AddressFamily::Bridge;
            assert_eq!(
                LinkRequest::index(4)
                    .bridge_port(hairpin, isolated)
                    .0
                    .to_bytes(),
                reference(&theirs)
            );
        }
    }

    #[test]
    fn bridge_vlan() {
        for (access, flags) in [
            (
                true,
                BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
            ),
            (false, BridgeVlanInfoFlags::empty()),
        ] {
            let mut theirs = reference_message(
                4,
                vec![LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
                    BridgeVlanInfo { vid: 100, flags },
                )])],
            );
            theirs.header.interface_family = AddressFamily::Bridge;
            assert_eq!(
                LinkRequest::bridge_vlan(4, 100, access).0.to_bytes(),
                reference(&theirs)
            );
        }
    }

    #[test]
    fn reads_what_we_use_of_a_link() {
        let mut message = reference_message(
            12,
            vec![
                LinkAttribute::IfName("veth0".into()),
                LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
                LinkAttribute::Controller(3),
                LinkAttribute::Link(2),
                LinkAttribute::OperState(State::Up),
                LinkAttribute::Mtu(1450),
                LinkAttribute::TxQueueLen(1000),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            ],
        );
        message.header.flags = LinkFlags::Up | LinkFlags::Promisc | LinkFlags::Broadcast;
        let link = Link::parse(&reference(&message)).unwrap();
        assert_eq!(
            link,
            Link {
                index: 12,
                name: "veth0".into(),
                kind: "veth".into(),
                mac: vec![2, 0, 0, 0, 0, 9],
                master: Some(3),
                peer_index: Some(2),
                peer_in_other_netns: false,
                admin_up: true,
                promisc: true,
                oper_up: true,
                mtu: 1450,
            }
        );
        let bare = Link::parse(&reference(&reference_message(1, vec![]))).unwrap();
        assert_eq!(
            (bare.index, bare.admin_up, bare.oper_up, bare.master),
            (1, false, false, None)
        );
        assert!(bare.kind.is_empty());
    }

    #[test]
    fn a_short_link_message_is_malformed() {
        assert!(matches!(Link::parse(&[0; 8]), Err(Error::Malformed(_))));
    }
}
