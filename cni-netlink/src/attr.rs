//! Netlink attributes: the few value shapes our requests carry, and readers
//! for the ones we take from replies. Only these are linked, not
//! netlink-packet-route's parsers and emitters for every attribute of every
//! link kind.

use crate::error::Error;
use netlink_packet_core::{Emitable, Nla, NlaBuffer, NlasIterator};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One attribute of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attr {
    /// A one-byte value.
    U8(u16, u8),
    /// A 32-bit value in host byte order.
    U32(u16, u32),
    /// A 32-bit value in network byte order (nf_tables).
    U32Be(u16, u32),
    /// A 64-bit value in network byte order (nf_tables).
    U64Be(u16, u64),
    /// Raw bytes: a MAC, an address's octets, a struct.
    Bytes(u16, Vec<u8>),
    /// A NUL-terminated string.
    Str(u16, String),
    /// Attributes inside an attribute.
    Nested(u16, Vec<Attr>),
}

impl Attr {
    /// An IP address's octets (4 or 16 bytes).
    pub(crate) fn ip(kind: u16, ip: IpAddr) -> Attr {
        match ip {
            IpAddr::V4(v4) => Attr::Bytes(kind, v4.octets().to_vec()),
            IpAddr::V6(v6) => Attr::Bytes(kind, v6.octets().to_vec()),
        }
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::U8(..) => 1,
            Attr::U32(..) | Attr::U32Be(..) => 4,
            Attr::U64Be(..) => 8,
            Attr::Bytes(_, bytes) => bytes.len(),
            Attr::Str(_, text) => text.len() + 1,
            Attr::Nested(_, attrs) => attrs.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::U8(kind, _)
            | Attr::U32(kind, _)
            | Attr::U32Be(kind, _)
            | Attr::U64Be(kind, _)
            | Attr::Bytes(kind, _)
            | Attr::Str(kind, _)
            | Attr::Nested(kind, _) => *kind,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Attr::U8(_, value) => buffer[0] = *value,
            Attr::U32(_, value) => buffer[..4].copy_from_slice(&value.to_ne_bytes()),
            Attr::U32Be(_, value) => buffer[..4].copy_from_slice(&value.to_be_bytes()),
            Attr::U64Be(_, value) => buffer[..8].copy_from_slice(&value.to_be_bytes()),
            Attr::Bytes(_, bytes) => buffer[..bytes.len()].copy_from_slice(bytes),
            Attr::Str(_, text) => {
                buffer[..text.len()].copy_from_slice(text.as_bytes());
                buffer[text.len()] = 0;
            }
            Attr::Nested(_, attrs) => attrs.as_slice().emit(buffer),
        }
    }
}

/// A message's fixed header and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message<H> {
    /// `ifinfomsg`, `ifaddrmsg` or `rtmsg`.
    pub(crate) header: H,
    /// The attributes after it.
    pub(crate) attrs: Vec<Attr>,
}

impl<H: Emitable> Emitable for Message<H> {
    fn buffer_len(&self) -> usize {
        self.header.buffer_len() + self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        let header_len = self.header.buffer_len();
        self.header.emit(&mut buffer[..header_len]);
        self.attrs.as_slice().emit(&mut buffer[header_len..]);
    }
}

impl<H: Emitable> Message<H> {
    /// The message's bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut bytes);
        bytes
    }
}

/// The attributes in `bytes` (a reply's payload after its fixed header, or
/// a nested attribute's value).
pub(crate) fn attributes(
    bytes: &[u8],
) -> impl Iterator<Item = Result<NlaBuffer<&[u8]>, Error>> + '_ {
    NlasIterator::new(bytes).map(|nla| nla.map_err(Error::from))
}

/// The attributes after a fixed header of `header_len` bytes.
pub(crate) fn attributes_after(
    payload: &[u8],
    header_len: usize,
) -> impl Iterator<Item = Result<NlaBuffer<&[u8]>, Error>> + '_ {
    attributes(payload.get(header_len..).unwrap_or_default())
}

/// A 32-bit value in host byte order.
pub(crate) fn read_u32(nla: &NlaBuffer<&[u8]>) -> Result<u32, Error> {
    let value = nla.value();
    let raw: [u8; 4] = value
        .try_into()
        .map_err(|_| malformed(nla, "4 bytes", value.len()))?;
    Ok(u32::from_ne_bytes(raw))
}

/// A 64-bit value in network byte order.
pub(crate) fn read_u64_be(nla: &NlaBuffer<&[u8]>) -> Result<u64, Error> {
    let value = nla.value();
    let raw: [u8; 8] = value
        .try_into()
        .map_err(|_| malformed(nla, "8 bytes", value.len()))?;
    Ok(u64::from_be_bytes(raw))
}

/// A one-byte value.
pub(crate) fn read_u8(nla: &NlaBuffer<&[u8]>) -> Result<u8, Error> {
    match nla.value() {
        [value] => Ok(*value),
        other => Err(malformed(nla, "1 byte", other.len())),
    }
}

/// A string, without its NUL terminator.
pub(crate) fn read_string(nla: &NlaBuffer<&[u8]>) -> String {
    let value = nla.value();
    let value = value.strip_suffix(&[0]).unwrap_or(value);
    String::from_utf8_lossy(value).into_owned()
}

/// An IPv4 or IPv6 address; `None` for any other length.
pub(crate) fn read_ip(nla: &NlaBuffer<&[u8]>) -> Option<IpAddr> {
    let value = nla.value();
    if let Ok(v4) = <[u8; 4]>::try_from(value) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(value) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

fn malformed(nla: &NlaBuffer<&[u8]>, expected: &str, got: usize) -> Error {
    Error::Malformed(format!(
        "attribute {} has {got} bytes, expected {expected}",
        nla.kind()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_each_shape_padded_to_four_bytes() {
        let attrs = [
            Attr::U8(7, 1),
            Attr::U32(4, 1500),
            Attr::Str(3, "eth0".to_owned()),
            Attr::Nested(18, vec![Attr::Str(1, "veth".to_owned())]),
        ];
        let mut bytes = vec![0xff; attrs.as_slice().buffer_len()];
        attrs.as_slice().emit(&mut bytes);
        #[rustfmt::skip]
        let expected = [
            5, 0, 7, 0, 1, 0, 0, 0,
            8, 0, 4, 0, 0xdc, 0x05, 0, 0,
            9, 0, 3, 0, b'e', b't', b'h', b'0', 0, 0, 0, 0,
            16, 0, 18, 0, 9, 0, 1, 0, b'v', b'e', b't', b'h', 0, 0, 0, 0,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn reads_values_back() {
        let attrs = [
            Attr::U8(16, 6),
            Attr::U32(4, 9000),
            Attr::Str(3, "br0".to_owned()),
            Attr::ip(1, "10.0.0.1".parse().unwrap()),
            Attr::ip(1, "fd00::1".parse().unwrap()),
            Attr::Bytes(1, vec![1, 2, 3]),
        ];
        let mut bytes = vec![0; attrs.as_slice().buffer_len()];
        attrs.as_slice().emit(&mut bytes);
        let nlas: Vec<_> = attributes(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(read_u8(&nlas[0]).unwrap(), 6);
        assert_eq!(read_u32(&nlas[1]).unwrap(), 9000);
        assert_eq!(read_string(&nlas[2]), "br0");
        assert_eq!(read_ip(&nlas[3]), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(read_ip(&nlas[4]), Some("fd00::1".parse().unwrap()));
        assert_eq!(read_ip(&nlas[5]), None);
        assert!(read_u32(&nlas[0]).is_err());
        assert!(read_u8(&nlas[1]).is_err());
    }

    #[test]
    fn a_string_without_terminator_reads_whole() {
        let bytes = [7, 0, 3, 0, b'a', b'b', b'c', 0];
        let nla = attributes(&bytes).next().unwrap().unwrap();
        assert_eq!(read_string(&nla), "abc");
    }

    #[test]
    fn a_cut_attribute_is_malformed() {
        let bytes = [12, 0, 3, 0, b'a', b'b'];
        assert!(attributes(&bytes).next().unwrap().is_err());
        assert_eq!(attributes_after(&bytes, 100).count(), 0);
    }
}
