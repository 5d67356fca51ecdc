//! Netlink work on `lo`, run on a thread that is already inside the
//! container's namespace. Each call opens its own rtnetlink connection on a
//! single-threaded runtime, so the socket belongs to that namespace.

use crate::LoopbackError;
use futures_util::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkFlags, LinkMessage};
use rtnetlink::{Handle, LinkUnspec};

/// Sets `lo` up and returns its addresses.
///
/// # Errors
/// [`LoopbackError::Netlink`] when the kernel refuses.
pub fn bring_up() -> Result<Vec<IpNetwork>, LoopbackError> {
    with_handle(|handle| async move {
        let index = lo_link(&handle).await?.header.index;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink("failed to set \"lo\" UP"))?;
        addresses(&handle, index).await
    })
}

/// Sets `lo` down.
///
/// # Errors
/// [`LoopbackError::Netlink`] when the kernel refuses.
pub fn set_down() -> Result<(), LoopbackError> {
    with_handle(|handle| async move {
        let index = lo_link(&handle).await?.header.index;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).down().build())
            .execute()
            .await
            .map_err(netlink("failed to set \"lo\" DOWN"))
    })
}

/// Whether `lo` has IFF_UP.
///
/// # Errors
/// [`LoopbackError::Netlink`] when `lo` cannot be read.
pub fn is_up() -> Result<bool, LoopbackError> {
    with_handle(
        |handle| async move { Ok(lo_link(&handle).await?.header.flags.contains(LinkFlags::Up)) },
    )
}

/// Looks `lo` up by name.
async fn lo_link(handle: &Handle) -> Result<LinkMessage, LoopbackError> {
    handle
        .link()
        .get()
        .match_name("lo")
        .execute()
        .try_next()
        .await
        .map_err(netlink("failed to look up \"lo\""))?
        .ok_or(LoopbackError::Netlink {
            action: "failed to look up \"lo\"",
            reason: "not found".to_owned(),
        })
}

/// Every address on the link, IPv4 first, in the kernel's order.
async fn addresses(handle: &Handle, index: u32) -> Result<Vec<IpNetwork>, LoopbackError> {
    let messages: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(netlink("failed to list addresses of \"lo\""))?;
    let mut found: Vec<IpNetwork> = messages
        .iter()
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
        .collect();
    found.sort_by_key(|net| net.is_ipv6());
    Ok(found)
}

/// Runs `work` with a fresh rtnetlink handle on a single-threaded runtime.
fn with_handle<T, F, Fut>(work: F) -> Result<T, LoopbackError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, LoopbackError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|err| LoopbackError::Netlink {
            action: "failed to start netlink runtime",
            reason: err.to_string(),
        })?;
    runtime.block_on(async move {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|err| LoopbackError::Netlink {
                action: "failed to open netlink socket",
                reason: err.to_string(),
            })?;
        let driver = tokio::spawn(connection);
        let outcome = work(handle).await;
        driver.abort();
        outcome
    })
}

/// Maps a netlink error to [`LoopbackError::Netlink`] for `action`.
fn netlink(action: &'static str) -> impl Fn(rtnetlink::Error) -> LoopbackError {
    move |err| LoopbackError::Netlink {
        action,
        // Not `Display` for an unexpected message: it prints the message with
        // `Debug`, which links the `Debug` code of every netlink type.
        reason: match err {
            rtnetlink::Error::UnexpectedMessage(_) => {
                "received an unexpected netlink message".into()
            }
            other => other.to_string(),
        },
    }
}
