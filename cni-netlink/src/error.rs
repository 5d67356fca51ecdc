//! Why a netlink request failed.

use std::io;

/// A failed request: the kernel's refusal, a socket error, or a reply we
/// could not read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel answered with an error (`NLMSG_ERROR`, or a dump ended
    /// with one).
    #[error("{}", io::Error::from_raw_os_error(*.0))]
    Kernel(i32),
    /// Opening, binding, sending on or reading from the socket failed. The
    /// text is the system's alone: callers name what they were doing.
    #[error("{source}")]
    Io {
        /// The socket call that failed.
        op: &'static str,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The kernel flagged a dump as interrupted (`NLM_F_DUMP_INTR`): the
    /// objects changed while it ran, so it may have missed some.
    #[error("the netlink dump was interrupted by a concurrent change")]
    Interrupted,
    /// A reply did not have the layout its type promises.
    #[error("malformed netlink reply: {0}")]
    Malformed(String),
}

impl Error {
    /// The errno the kernel answered with, for [`Error::Kernel`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel(errno) => Some(*errno),
            _ => None,
        }
    }
}

impl From<netlink_packet_core::DecodeError> for Error {
    fn from(err: netlink_packet_core::DecodeError) -> Error {
        Error::Malformed(err.to_string())
    }
}
