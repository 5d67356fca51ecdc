//! The `bridge` CNI plugin: attaches a container to a Linux bridge through a
//! veth pair, with addresses from a delegated IPAM plugin, routes, the
//! gateway on the bridge and IP masquerade. All network changes go through
//! netlink; masquerade through one `iptables-restore` batch per family, the
//! MAC spoof check through one `nft` batch.

mod add;
mod check;
pub mod config;
mod container;
mod del;
mod error;
mod gateway;
mod gc;
mod helper;
mod link;
pub mod macspoof;
pub mod masq;
mod netlink;
mod rollback;
mod status;
mod sysctl;

pub use error::BridgeError;

use cni_types::CniError;
use cni_types::result::Result as CniResult;
use cni_types::skel::{Plugin, Request};

/// What `bridge` prints when run without `CNI_COMMAND`.
pub const ABOUT: &str = concat!(
    "CNI bridge plugin v",
    env!("CARGO_PKG_VERSION"),
    " (cni-rs)"
);

/// The bridge plugin.
#[derive(Debug, Default)]
pub struct Bridge;

impl Plugin for Bridge {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        Ok(add::add(req)?)
    }

    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        Ok(del::del(req)?)
    }

    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        Ok(check::check(req)?)
    }

    fn status(&self, req: &Request<'_>) -> Result<(), CniError> {
        Ok(status::status(req)?)
    }

    fn gc(&self, req: &Request<'_>) -> Result<(), CniError> {
        Ok(gc::gc(req)?)
    }
}
