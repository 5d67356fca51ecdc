//! The `bridge` CNI plugin: attaches a container to a Linux bridge through a
//! veth pair, with addresses from a delegated IPAM plugin, routes, the
//! gateway on the bridge and IP masquerade. All network changes go through
//! netlink; masquerade through one `iptables-restore` batch per family or one
//! nf_tables netlink transaction, the MAC spoof check through one nf_tables
//! netlink transaction.
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
mod vlan_gateway;

pub use error::BridgeError;
pub use firewall::{macspoof, masq};

use cni_types::CniError;
use cni_types::result::Result as CniResult;
use cni_types::skel::{Command, Plugin, Request};
use config::BridgeConfig;
use node::Node;
use system::System;

/// What `bridge` prints when run without `CNI_COMMAND`.
pub const ABOUT: &str = concat!(
    "CNI bridge plugin v",
    env!("CARGO_PKG_VERSION"),
    " (cni-rs)"
);

/// Where a command's [`Node`] comes from.
pub trait NodeSource {
    /// Runs `work` on the node for the call `req` with `conf`.
    ///
    /// # Errors
    /// What `work` returns, or why the node cannot be had.
    fn run<T>(
        &self,
        req: &Request<'_>,
        conf: &BridgeConfig,
        work: impl FnOnce(Node<'_>) -> Result<T, BridgeError>,
    ) -> Result<T, BridgeError>;
}

/// The node this process runs on: netlink, `/proc/sys`, the helpers, exec.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThisNode;

impl NodeSource for ThisNode {
    fn run<T>(
        &self,
        req: &Request<'_>,
        conf: &BridgeConfig,
        work: impl FnOnce(Node<'_>) -> Result<T, BridgeError>,
    ) -> Result<T, BridgeError> {
        let system = System::connect(req, conf).map_err(|err| match req.command {
            // STATUS: the plugin cannot service ADD.
            Command::Status => status::unavailable(format!("netlink is not usable: {err}")),
            _ => err,
        })?;
        work(system.node())
    }
}

/// A node given from outside (the tests' model of a node).
#[derive(Clone, Copy)]
pub struct GivenNode<'n>(pub Node<'n>);

impl NodeSource for GivenNode<'_> {
    fn run<T>(
        &self,
        _req: &Request<'_>,
        _conf: &BridgeConfig,
        work: impl FnOnce(Node<'_>) -> Result<T, BridgeError>,
    ) -> Result<T, BridgeError> {
        work(self.0)
    }
}

/// The bridge plugin on the node `S` gives.
#[derive(Debug, Default, Clone, Copy)]
pub struct BridgeOn<S>(pub S);

/// The bridge plugin, changing the node it runs on.
pub type Bridge = BridgeOn<ThisNode>;

/// The config, `CNI_ARGS` read for the commands that use them (DEL, STATUS
/// and GC do not: a stale value must not block cleanup).
fn config(req: &Request<'_>) -> Result<BridgeConfig, BridgeError> {
    let args = match req.command {
        Command::Add | Command::Check => req.env.args.as_str(),
        _ => "",
    };
    Ok(BridgeConfig::from_json(req.stdin, args)?)
}

impl<S: NodeSource> Plugin for BridgeOn<S> {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        let conf = config(req)?;
        Ok(self.0.run(req, &conf, |node| add::add(node, req, &conf))?)
    }

    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = config(req)?;
        Ok(self.0.run(req, &conf, |node| del::del(node, req, &conf))?)
    }

    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = config(req)?;
        Ok(self
            .0
            .run(req, &conf, |node| check::check(node, req, &conf))?)
    }

    fn status(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = config(req)?;
        Ok(self.0.run(req, &conf, |node| status::status(node, &conf))?)
    }

    fn gc(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = config(req)?;
        Ok(self.0.run(req, &conf, |node| gc::gc(node, req, &conf))?)
    }
}
