//! Routes: adding one, and listing a family's.

use crate::attr::{Attr, Message, attributes_after, read_ip, read_u32};
use crate::consts::*;
use crate::error::Error;
use crate::link::ignore;
use crate::socket::Socket;
use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{RouteHeader, RouteProtocol, RouteScope, RouteType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The size of `struct rtmsg`.
const HEADER_LEN: usize = 12;

/// A route as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination (`0.0.0.0/0` / `::/0` for the default route).
    pub dst: IpNetwork,
    /// Next hop (RTA_GATEWAY).
    pub gw: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
}

impl RouteEntry {
    /// Reads an `RTM_NEWROUTE` payload; `None` when its destination and
    /// prefix length do not make a network.
    fn parse(payload: &[u8]) -> Result<Option<RouteEntry>, Error> {
        let header = RouteHeader::parse(payload)?;
        let mut dst = None;
        let mut gw = None;
        let mut oif = None;
        for nla in attributes_after(payload, HEADER_LEN) {
            let nla = nla?;
            match nla.kind() {
                RTA_DST => dst = read_ip(&nla),
                RTA_GATEWAY => gw = read_ip(&nla),
                RTA_OIF => oif = Some(read_u32(&nla)?),
                _ => {}
            }
        }
        let unspecified = if header.address_family == AddressFamily::Inet {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        let dst = IpNetwork::new(dst.unwrap_or(unspecified), header.destination_prefix_length);
        Ok(dst.ok().map(|dst| RouteEntry { dst, gw, oif }))
    }
}

/// A route request: an `rtmsg` and the attributes set on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest(Message<RouteHeader>);

impl RouteRequest {
    /// A unicast route of the main table, universe scope, protocol static,
    /// in the IPv4 or IPv6 family.
    pub fn new(ipv4: bool) -> RouteRequest {
        let header = RouteHeader {
            address_family: if ipv4 {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            },
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Static,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..RouteHeader::default()
        };
        RouteRequest(Message {
            header,
            attrs: Vec::new(),
        })
    }

    fn attr(mut self, attr: Attr) -> RouteRequest {
        self.0.attrs.push(attr);
        self
    }

    /// Protocol `boot` instead of `static`.
    pub fn protocol_boot(mut self) -> RouteRequest {
        self.0.header.protocol = RouteProtocol::Boot;
        self
    }

    /// RTA_DST (the network's address) and its prefix length.
    pub fn destination(mut self, dst: IpNetwork) -> RouteRequest {
        self.0.header.destination_prefix_length = dst.prefix();
        self.attr(Attr::ip(RTA_DST, dst.network()))
    }

    /// RTA_OIF.
    pub fn output_interface(self, index: u32) -> RouteRequest {
        self.attr(Attr::U32(RTA_OIF, index))
    }

    /// RTA_GATEWAY, a next hop of the route's own family.
    pub fn gateway(self, gw: IpAddr) -> RouteRequest {
        self.attr(Attr::ip(RTA_GATEWAY, gw))
    }

    /// RTA_VIA: an IPv6 next hop of an IPv4 route.
    pub fn via_ipv6(self, gw: Ipv6Addr) -> RouteRequest {
        // struct rtvia { __kernel_sa_family_t rtvia_family; __u8 rtvia_addr[]; }
        let mut via = AF_INET6.to_ne_bytes().to_vec();
        via.extend_from_slice(&gw.octets());
        self.attr(Attr::Bytes(RTA_VIA, via))
    }
}

/// `RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_EXCL`: adds a route.
///
/// # Errors
/// [`Error::Kernel`] (EEXIST when it is there already), else [`Error`].
pub fn add(socket: &Socket, request: &RouteRequest) -> Result<(), Error> {
    socket.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &request.0, ignore)
}

/// The routes of one family. Without strict checking the kernel ignores the
/// request's table and dumps them all.
///
/// # Errors
/// [`Error`].
pub fn dump(socket: &Socket, ipv4: bool) -> Result<Vec<RouteEntry>, Error> {
    let request = RouteRequest::new(ipv4);
    socket.dump(RTM_GETROUTE, &request.0, |kind, payload| {
        if kind == RTM_NEWROUTE {
            RouteEntry::parse(payload)
        } else {
            Ok(None)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;
    use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteVia};

    fn reference(message: &RouteMessage) -> Vec<u8> {
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        bytes
    }

    /// What rtnetlink's `RouteMessageBuilder::new()` starts from.
    fn reference_message(family: AddressFamily, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header.address_family = family;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Static;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message.attributes = attributes;
        message
    }

    #[test]
    fn dump_requests() {
        assert_eq!(
            RouteRequest::new(true).0.to_bytes(),
            reference(&reference_message(AddressFamily::Inet, vec![]))
        );
        assert_eq!(
            RouteRequest::new(false).0.to_bytes(),
            reference(&reference_message(AddressFamily::Inet6, vec![]))
        );
    }

    #[test]
    fn a_default_route_via_a_gateway() {
        let dst: IpNetwork = "0.0.0.0/0".parse().unwrap();
        let gw: IpAddr = "10.85.0.1".parse().unwrap();
        let ours = RouteRequest::new(true)
            .protocol_boot()
            .destination(dst)
            .output_interface(2)
            .gateway(gw);
        let mut theirs = reference_message(
            AddressFamily::Inet,
            vec![
                RouteAttribute::Destination(dst.network().into()),
                RouteAttribute::Oif(2),
                RouteAttribute::Gateway(gw.into()),
            ],
        );
        theirs.header.protocol = RouteProtocol::Boot;
        assert_eq!(ours.0.to_bytes(), reference(&theirs));
    }

    #[test]
    fn an_ipv6_route_and_an_ipv4_route_via_ipv6() {
        let dst: IpNetwork = "fd00:1::/64".parse().unwrap();
        let ours = RouteRequest::new(false)
            .protocol_boot()
            .destination(dst)
            .output_interface(2);
        let mut theirs = reference_message(
            AddressFamily::Inet6,
            vec![
                RouteAttribute::Destination(dst.network().into()),
                RouteAttribute::Oif(2),
            ],
        );
        theirs.header.protocol = RouteProtocol::Boot;
        theirs.header.destination_prefix_length = 64;
        assert_eq!(ours.0.to_bytes(), reference(&theirs));

        let dst: IpNetwork = "10.1.0.0/16".parse().unwrap();
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        let ours = RouteRequest::new(true).destination(dst).via_ipv6(gw);
        let mut theirs = reference_message(
            AddressFamily::Inet,
            vec![
                RouteAttribute::Destination(dst.network().into()),
                RouteAttribute::Via(RouteVia::Inet6(gw)),
            ],
        );
        theirs.header.destination_prefix_length = 16;
        assert_eq!(ours.0.to_bytes(), reference(&theirs));
    }

    #[test]
    fn reads_destination_gateway_and_interface() {
        let mut message = reference_message(
            AddressFamily::Inet,
            vec![
                RouteAttribute::Table(254),
                RouteAttribute::Destination("10.85.0.0".parse::<IpAddr>().unwrap().into()),
                RouteAttribute::Gateway("10.85.0.1".parse::<IpAddr>().unwrap().into()),
                RouteAttribute::Oif(3),
            ],
        );
        message.header.destination_prefix_length = 16;
        assert_eq!(
            RouteEntry::parse(&reference(&message)).unwrap(),
            Some(RouteEntry {
                dst: "10.85.0.0/16".parse().unwrap(),
                gw: Some("10.85.0.1".parse().unwrap()),
                oif: Some(3),
            })
        );
        let default = reference(&reference_message(AddressFamily::Inet6, vec![]));
        assert_eq!(
            RouteEntry::parse(&default).unwrap(),
            Some(RouteEntry {
                dst: "::/0".parse().unwrap(),
                gw: None,
                oif: None,
            })
        );
        let mut invalid = reference_message(AddressFamily::Inet, vec![]);
        invalid.header.destination_prefix_length = 40;
        assert_eq!(RouteEntry::parse(&reference(&invalid)).unwrap(), None);
    }
}
