//! The `bridge` CNI plugin: attaches a container to a Linux bridge through a
//! veth pair, with addresses from a delegated IPAM plugin, routes, the
//! gateway on the bridge and IP masquerade. All network changes go through
//! netlink; masquerade through one `iptables-restore` batch per family, the
//! MAC spoof check through one `nft` batch.
//!
//! ADD, DEL and CHECK are step lists ([`add::steps`], [`del::steps`],
//! [`check::steps`]) over the [`node`] seam; `docs/architecture.md` walks
//! through them.

pub mod add;
pub mod check;
pub mod config;
mod container;
pub mod del;
mod error;
pub mod firewall;
mod gateway;
mod gc;
mod link;
pub mod netlink;
pub mod node;
pub mod pending;
mod result;
mod rollback;
mod status;
pub mod steps;
pub mod sysctl;
mod system;

pub use error::BridgeError;
pub use firewall::{macspoof, masq};

use cni_types::CniError;
use cni_types::result::Result as CniResult;
use cni_types::skel::{Plugin, Request};
use config::BridgeConfig;
use node::Node;
use system::System;

/// What `bridge` prints when run without `CNI_COMMAND`.
pub const ABOUT: &str = concat!(
    "CNI bridge plugin v",
    env!("CARGO_PKG_VERSION"),
    " (cni-rs)"
);

/// The bridge plugin, changing the node it runs on.
#[derive(Debug, Default)]
pub struct Bridge;

impl Plugin for Bridge {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        BridgeOn::new(System::connect(req)?.node()).add(req)
    }

    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        BridgeOn::new(System::connect(req)?.node()).del(req)
    }

    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        BridgeOn::new(System::connect(req)?.node()).check(req)
    }

    fn status(&self, req: &Request<'_>) -> Result<(), CniError> {
        let system = System::connect(req)
            .map_err(|err| status::unavailable(format!("netlink is not usable: {err}")))?;
        BridgeOn::new(system.node()).status(req)
    }

    fn gc(&self, req: &Request<'_>) -> Result<(), CniError> {
        BridgeOn::new(System::connect(req)?.node()).gc(req)
    }
}

/// The bridge plugin on any [`Node`]: what [`Bridge`] runs, for a node that
/// is not the one the process runs on (the tests' model of a node).
pub struct BridgeOn<'n> {
    node: Node<'n>,
}

impl<'n> BridgeOn<'n> {
    /// The plugin changing `node`.
    pub fn new(node: Node<'n>) -> BridgeOn<'n> {
        BridgeOn { node }
    }
}

impl Plugin for BridgeOn<'_> {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        let conf = BridgeConfig::from_json(req.stdin, &req.env.args).map_err(BridgeError::from)?;
        Ok(add::add(self.node, req, &conf)?)
    }

    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = BridgeConfig::from_json(req.stdin, "").map_err(BridgeError::from)?;
        Ok(del::del(self.node, req, &conf)?)
    }

    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = BridgeConfig::from_json(req.stdin, &req.env.args).map_err(BridgeError::from)?;
        Ok(check::check(self.node, req, &conf)?)
    }

    fn status(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = BridgeConfig::from_json(req.stdin, "").map_err(BridgeError::from)?;
        Ok(status::status(self.node, &conf)?)
    }

    fn gc(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = BridgeConfig::from_json(req.stdin, "").map_err(BridgeError::from)?;
        Ok(gc::gc(self.node, req, &conf)?)
    }
}
