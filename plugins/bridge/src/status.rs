//! STATUS (spec 1.1.0): can this plugin service ADD right now? It needs
//! netlink, the chosen masquerade backend when `ipMasq` is set, nf_tables
//! when `macspoofchk` is set, and a ready IPAM plugin (whose STATUS answer is
//! passed on unchanged).

use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::node::Node;

/// Runs STATUS on `node`.
///
/// # Errors
/// [`BridgeError::Unavailable`] (code 50), or the IPAM plugin's error.
pub fn status(node: Node<'_>, conf: &BridgeConfig) -> Result<(), BridgeError> {
    node.host
        .link_by_name("lo")
        .map_err(|err| unavailable(format!("netlink is not usable: {err}")))?;
    if conf.ip_masq {
        node.masquerade.available().map_err(unavailable)?;
    }
    if conf.macspoofchk {
        node.spoof_check.available().map_err(unavailable)?;
    }
    if let Some(plugin) = conf.ipam_type.as_deref() {
        // Without its IPAM plugin bridge cannot service ADD: code 50, not 999.
        node.ipam
            .installed(plugin)
            .map_err(|err| unavailable(err.msg))?;
        node.ipam.status(plugin).map_err(BridgeError::Ipam)?;
    }
    Ok(())
}

/// Code 50 with `reason`.
pub fn unavailable(reason: String) -> BridgeError {
    BridgeError::Unavailable(reason)
}
