//! GC (spec 1.1.0): removes this network's masquerade rules of every
//! container not named in `cni.dev/valid-attachments` (found by the rules'
//! comments, so chains leaked by either implementation are found), then
//! delegates GC to the IPAM plugin. Another network's rules never match.
//! Without a valid-attachments list nothing is removed.
//!
//! `macspoofchk` chains are not collected: their names and comments carry
//! only the container ID and interface name, not the network, so another
//! network's live attachment could not be told apart. DEL removes them even
//! when the namespace is gone.

use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::node::Node;
use cni_types::skel::Request;

/// Runs GC on `node`.
///
/// # Errors
/// [`BridgeError`] naming the first failure; the other steps still run.
pub fn gc(node: Node<'_>, req: &Request<'_>, conf: &BridgeConfig) -> Result<(), BridgeError> {
    let Some(valid) = req.config.valid_attachments.as_ref() else {
        return Ok(());
    };
    let mut failures: Vec<BridgeError> = Vec::new();
    if let Err(err) = node.masquerade.collect(&conf.network, valid) {
        failures.push(BridgeError::Masquerade(err));
    }
    if let Some(plugin) = conf.ipam_type.as_deref()
        && let Err(err) = node.ipam.gc(plugin)
    {
        failures.push(BridgeError::Ipam(err));
    }
    BridgeError::first_of(failures)
}
