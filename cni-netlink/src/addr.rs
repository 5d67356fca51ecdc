//! Addresses: adding and deleting one, and listing a link's.

use crate::attr::{Attr, Message, attributes_after, read_ip};
use crate::consts::*;
use crate::error::Error;
use crate::link::ignore;
use crate::socket::Socket;
use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressHeader, AddressHeaderFlags};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The size of `struct ifaddrmsg`.
const HEADER_LEN: usize = 8;

/// An address request: an `ifaddrmsg` and the attributes set on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRequest(Message<AddressHeader>);

impl AddressRequest {
    /// A request about `network` (its family and prefix length) on link
    /// `index`, with no attributes yet.
    pub fn new(index: u32, network: IpNetwork) -> AddressRequest {
        let header = AddressHeader {
            family: if network.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            },
            prefix_len: network.prefix(),
            index,
            ..AddressHeader::default()
        };
        AddressRequest(Message {
            header,
            attrs: Vec::new(),
        })
    }

    fn attr(mut self, attr: Attr) -> AddressRequest {
        self.0.attrs.push(attr);
        self
    }

    /// IFA_ADDRESS.
    pub fn address(self, ip: IpAddr) -> AddressRequest {
        self.attr(Attr::ip(IFA_ADDRESS, ip))
    }

    /// IFA_LOCAL.
    pub fn local(self, ip: IpAddr) -> AddressRequest {
        self.attr(Attr::ip(IFA_LOCAL, ip))
    }

    /// IFA_BROADCAST.
    pub fn broadcast(self, ip: Ipv4Addr) -> AddressRequest {
        self.attr(Attr::ip(IFA_BROADCAST, IpAddr::V4(ip)))
    }

    /// IFA_MULTICAST.
    pub fn multicast(self, ip: Ipv6Addr) -> AddressRequest {
        self.attr(Attr::ip(IFA_MULTICAST, IpAddr::V6(ip)))
    }

    /// IFA_F_NODAD, in the header and in IFA_FLAGS: an IPv6 address that
    /// skips duplicate address detection.
    pub fn no_dad(mut self) -> AddressRequest {
        self.0.header.flags |= AddressHeaderFlags::Nodad;
        self.attr(Attr::U32(IFA_FLAGS, IFA_F_NODAD))
    }
}

/// `RTM_NEWADDR` with `NLM_F_CREATE | NLM_F_EXCL`: adds an address.
///
/// # Errors
/// [`Error::Kernel`] (EEXIST when it is there already), else [`Error`].
pub fn add(socket: &Socket, request: &AddressRequest) -> Result<(), Error> {
    socket.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &request.0, ignore)
}

/// `RTM_DELADDR`: deletes an address.
///
/// # Errors
/// [`Error::Kernel`] (EADDRNOTAVAIL when it is absent), else [`Error`].
pub fn delete(socket: &Socket, request: &AddressRequest) -> Result<(), Error> {
    socket.request(RTM_DELADDR, 0, &request.0, ignore)
}

/// The addresses of link `index` (IFA_ADDRESS and prefix length), in the
/// kernel's order. The dump asks for that link only, which a socket with
/// strict checking gets from the kernel (Linux 4.20+); others get every
/// address and the rest are dropped here.
///
/// # Errors
/// [`Error`].
pub fn dump(socket: &Socket, index: u32) -> Result<Vec<IpNetwork>, Error> {
    let request = Message {
        header: AddressHeader {
            index,
            ..AddressHeader::default()
        },
        attrs: Vec::new(),
    };
    socket.dump(RTM_GETADDR, &request, |kind, payload| {
        if kind == RTM_NEWADDR {
            parse_for(payload, index)
        } else {
            Ok(None)
        }
    })
}

/// An `RTM_NEWADDR` payload's first IFA_ADDRESS with its prefix length, if
/// the address is on link `index`.
fn parse_for(payload: &[u8], index: u32) -> Result<Option<IpNetwork>, Error> {
    let header = AddressHeader::parse(payload)?;
    if header.index != index {
        return Ok(None);
    }
    for nla in attributes_after(payload, HEADER_LEN) {
        let nla = nla?;
        if nla.kind() == IFA_ADDRESS
            && let Some(ip) = read_ip(&nla)
        {
            return Ok(IpNetwork::new(ip, header.prefix_len).ok());
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;
    use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};

    fn reference(message: &AddressMessage) -> Vec<u8> {
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        bytes
    }

    fn reference_message(
        index: u32,
        network: IpNetwork,
        attributes: Vec<AddressAttribute>,
    ) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.family = if network.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        message.header.prefix_len = network.prefix();
        message.header.index = index;
        message.attributes = attributes;
        message
    }

    #[test]
    fn ipv4_with_broadcast() {
        let net: IpNetwork = "10.85.0.2/16".parse().unwrap();
        let ours = AddressRequest::new(3, net)
            .address(net.ip())
            .local(net.ip())
            .broadcast("10.85.255.255".parse().unwrap());
        let theirs = reference_message(
            3,
            net,
            vec![
                AddressAttribute::Address(net.ip()),
                AddressAttribute::Local(net.ip()),
                AddressAttribute::Broadcast("10.85.255.255".parse().unwrap()),
            ],
        );
        assert_eq!(ours.0.to_bytes(), reference(&theirs));
    }

    #[test]
    fn ipv6_without_dad_and_multicast() {
        let net: IpNetwork = "fd00::2/64".parse().unwrap();
        let ours = AddressRequest::new(3, net)
            .address(net.ip())
            .local(net.ip())
            .no_dad();
        let mut theirs = reference_message(
            3,
            net,
            vec![
                AddressAttribute::Address(net.ip()),
                AddressAttribute::Local(net.ip()),
                AddressAttribute::Flags(AddressFlags::Nodad),
            ],
        );
        theirs.header.flags = AddressHeaderFlags::Nodad;
        assert_eq!(ours.0.to_bytes(), reference(&theirs));

        let group: Ipv6Addr = "ff02::5".parse().unwrap();
        let net = IpNetwork::new(IpAddr::V6(group), 128).unwrap();
        let theirs = reference_message(3, net, vec![AddressAttribute::Multicast(group)]);
        assert_eq!(
            AddressRequest::new(3, net).multicast(group).0.to_bytes(),
            reference(&theirs)
        );
    }

    #[test]
    fn the_dump_request_names_the_link() {
        let mut theirs = AddressMessage::default();
        theirs.header.index = 9;
        let ours = Message {
            header: AddressHeader {
                index: 9,
                ..AddressHeader::default()
            },
            attrs: Vec::new(),
        };
        assert_eq!(ours.to_bytes(), reference(&theirs));
    }

    #[test]
    fn reads_the_address_of_the_right_link() {
        let net: IpNetwork = "fd00::2/64".parse().unwrap();
        let reply = reference(&reference_message(
            4,
            net,
            vec![
                AddressAttribute::Local("fd00::9".parse().unwrap()),
                AddressAttribute::Address(net.ip()),
                AddressAttribute::Label("eth0".into()),
            ],
        ));
        assert_eq!(parse_for(&reply, 4).unwrap(), Some(net));
        assert_eq!(parse_for(&reply, 5).unwrap(), None);
        let bare = reference(&reference_message(4, net, vec![]));
        assert_eq!(parse_for(&bare, 4).unwrap(), None);
    }
}
