//! A small blocking netlink client for the CNI plugins: rtnetlink, and
//! nf_tables batches ([`nftables`]).
//!
//! A [`Socket`] sends one request at a time and reads the kernel's answer to
//! its end, checking sequence numbers. [`link`], [`addr`] and [`route`] build
//! the requests the plugins make and read only the reply attributes they use,
//! so the binaries do not carry a parser for every attribute of every link
//! kind.
//!
//! A socket belongs to the network namespace of the thread that opened it,
//! for as long as it lives: open it on a thread that is inside the target
//! namespace (`setns` is per thread).
//!
//! ```no_run
//! use cni_netlink::{Socket, link, link::LinkRequest};
//!
//! let socket = Socket::open()?;
//! if let Some(lo) = link::get(&socket, &LinkRequest::new().name("lo"))? {
//!     link::set(&socket, &LinkRequest::index(lo.index).up())?;
//!     let addresses = cni_netlink::addr::dump(&socket, lo.index)?;
//!     println!("lo is up with {addresses:?}");
//! }
//! # Ok::<(), cni_netlink::Error>(())
//! ```

pub mod addr;
mod attr;
mod consts;
pub mod error;
pub mod link;
pub mod nftables;
pub mod route;
pub mod socket;

pub use error::Error;
pub use socket::Socket;
