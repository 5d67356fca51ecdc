//! A small blocking rtnetlink client for the CNI plugins: a
//! [`Socket`](socket::Socket) that sends one request at a time and reads the
//! kernel's answer to its end, checking sequence numbers.
//!
//! A socket belongs to the network namespace of the thread that opened it,
//! for as long as it lives: open it on a thread that is inside the target
//! namespace (`setns` is per thread).
//!
//! ```no_run
//! use cni_netlink::socket::Socket;
//! use netlink_packet_core::NLM_F_DUMP;
//! use netlink_packet_route::link::LinkHeader;
//!
//! const RTM_GETLINK: u16 = 18;
//! let socket = Socket::open()?;
//! let mut links = 0;
//! socket.request(RTM_GETLINK, NLM_F_DUMP, &LinkHeader::default(), |_, _| {
//!     links += 1;
//!     Ok(())
//! })?;
//! println!("{links} links");
//! # Ok::<(), cni_netlink::Error>(())
//! ```

pub mod error;
pub mod socket;

pub use error::Error;
pub use socket::Socket;
