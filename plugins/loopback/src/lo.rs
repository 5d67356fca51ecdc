//! Netlink work on `lo`, run on a thread that is already inside the
//! container's namespace. Each call opens its own netlink socket, so the
//! socket belongs to that namespace.

use crate::LoopbackError;
use cni_netlink::link::{self, Link, LinkRequest};
use cni_netlink::{Socket, addr};
use ipnetwork::IpNetwork;

/// Sets `lo` up and returns its addresses.
///
/// # Errors
/// [`LoopbackError::Netlink`] when the kernel refuses.
pub fn bring_up() -> Result<Vec<IpNetwork>, LoopbackError> {
    let socket = open()?;
    let index = lo_link(&socket)?.index;
    link::set(&socket, &LinkRequest::index(index).up())
        .map_err(netlink("failed to set \"lo\" UP"))?;
    addresses(&socket, index)
}

/// Sets `lo` down.
///
/// # Errors
/// [`LoopbackError::Netlink`] when the kernel refuses.
pub fn set_down() -> Result<(), LoopbackError> {
    let socket = open()?;
    let index = lo_link(&socket)?.index;
    link::set(&socket, &LinkRequest::index(index).down())
        .map_err(netlink("failed to set \"lo\" DOWN"))
}

/// Whether `lo` has IFF_UP.
///
/// # Errors
/// [`LoopbackError::Netlink`] when `lo` cannot be read.
pub fn is_up() -> Result<bool, LoopbackError> {
    Ok(lo_link(&open()?)?.admin_up)
}

/// Opens a netlink socket in the calling thread's namespace.
fn open() -> Result<Socket, LoopbackError> {
    Socket::open().map_err(|err| LoopbackError::Netlink {
        action: "failed to open netlink socket",
        reason: err.to_string(),
    })
}

/// Looks `lo` up by name.
fn lo_link(socket: &Socket) -> Result<Link, LoopbackError> {
    const ACTION: &str = "failed to look up \"lo\"";
    link::get(socket, &LinkRequest::new().name("lo"))
        .map_err(netlink(ACTION))?
        .ok_or(LoopbackError::Netlink {
            action: ACTION,
            reason: "not found".to_owned(),
        })
}

/// Every address on the link, IPv4 first, in the kernel's order.
fn addresses(socket: &Socket, index: u32) -> Result<Vec<IpNetwork>, LoopbackError> {
    let mut found =
        addr::dump(socket, index).map_err(netlink("failed to list addresses of \"lo\""))?;
    found.sort_by_key(|net| net.is_ipv6());
    Ok(found)
}

/// Maps a netlink error to [`LoopbackError::Netlink`] for `action`.
fn netlink(action: &'static str) -> impl Fn(cni_netlink::Error) -> LoopbackError {
    move |err| LoopbackError::Netlink {
        action,
        // The words rtnetlink used for a kernel error, kept as they were.
        reason: match err {
            cni_netlink::Error::Kernel(_) => format!("Received a netlink error message {err}"),
            other => other.to_string(),
        },
    }
}
