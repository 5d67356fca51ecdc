//! The bridge plugin's errors, and the one place they become CNI codes.

use crate::config::ConfigError;
use crate::container::ContainerError;
use crate::firewall::FirewallError;
use crate::gateway::GatewayError;
use crate::link::LinkError;
use crate::netlink::NetlinkError;
use crate::vlan_gateway::VlanGatewayError;
use cni_types::netns::NetnsError;
use cni_types::{CniError, ErrorCode};

/// Why a bridge call failed.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The configuration or `CNI_ARGS` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The container's namespace could not be opened.
    #[error("failed to open netns \"{path}\": {source}")]
    Netns {
        /// `CNI_NETNS`.
        path: String,
        /// Why.
        source: NetnsError,
    },
    /// The delegated IPAM plugin failed; its error is passed on unchanged.
    #[error(transparent)]
    Ipam(CniError),
    /// IPAM returned no address.
    #[error("IPAM plugin returned missing IP config")]
    NoIpConfig,
    /// A host-side link step failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A container-side step failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// A gateway step failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The VLAN gateway interface could not be had.
    #[error(transparent)]
    VlanGateway(#[from] VlanGatewayError),
    /// Masquerade setup, teardown or listing failed.
    #[error(transparent)]
    Masquerade(FirewallError),
    /// ADD could not set up the MAC spoof check.
    #[error("failed to setup spoof-check: {0}")]
    MacSpoofSetup(FirewallError),
    /// DEL could not remove the MAC spoof check.
    #[error("failed to teardown spoof-check: {0}")]
    MacSpoofTeardown(FirewallError),
    /// Another netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// STATUS: the plugin cannot service ADD (code 50).
    #[error("{0}")]
    Unavailable(String),
    /// A step found the steps out of order.
    #[error("{0}")]
    Internal(String),
    /// CHECK found a difference.
    #[error("{0}")]
    Check(String),
    /// Several DEL steps failed; the first is the message.
    #[error("{first}")]
    Several {
        /// The first failure.
        first: Box<BridgeError>,
        /// The others, as text.
        others: Vec<String>,
    },
}

impl BridgeError {
    /// Wraps a namespace error with the netns path ("not found" becomes the
    /// reference's Statfs message on its own, see the conversion to
    /// [`CniError`]).
    pub fn netns(path: &str, source: NetnsError) -> BridgeError {
        BridgeError::Netns {
            path: path.to_owned(),
            source,
        }
    }
}

impl BridgeError {
    /// `Ok` when nothing failed, else the first failure with the others
    /// listed in its details.
    ///
    /// # Errors
    /// The first of `failures`.
    pub fn first_of(failures: Vec<BridgeError>) -> Result<(), BridgeError> {
        let mut failures = failures.into_iter();
        match failures.next() {
            None => Ok(()),
            Some(first) => {
                let others: Vec<String> = failures.map(|f| f.to_string()).collect();
                if others.is_empty() {
                    Err(first)
                } else {
                    Err(BridgeError::Several {
                        first: Box::new(first),
                        others,
                    })
                }
            }
        }
    }
}

impl From<BridgeError> for CniError {
    fn from(err: BridgeError) -> CniError {
        match err {
            BridgeError::Config(config) => config.into(),
            BridgeError::Ipam(delegate) => delegate,
            BridgeError::Netns { source, .. } if source.is_not_found() => {
                CniError::internal(source)
            }
            BridgeError::Several { first, others } => {
                let mut converted = CniError::from(*first);
                if !others.is_empty() {
                    converted.details = others.join("; ");
                }
                converted
            }
            BridgeError::Check(msg) => CniError::internal(msg),
            BridgeError::Unavailable(msg) => CniError::new(ErrorCode::PluginNotAvailable, msg),
            other => CniError::new(ErrorCode::Internal, other.to_string()),
        }
    }
}
