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
use crate::masq;
use cni_types::ipam;
use cni_types::skel::Request;

/// Runs GC.
///
/// # Errors
/// [`BridgeError`] naming the first failure; the other steps still run.
pub fn gc(req: &Request<'_>) -> Result<(), BridgeError> {
    let conf = BridgeConfig::from_json(req.stdin, "")?;
    let Some(valid) = req.config.valid_attachments.as_ref() else {
        return Ok(());
    };
    let mut failures: Vec<BridgeError> = Vec::new();
    match masq::attached_containers(&conf.network) {
        Ok(ids) => {
            for id in ids
                .iter()
                .filter(|id| !valid.iter().any(|a| &a.container_id == *id))
            {
                if let Err(err) = masq::teardown(&conf.network, id, &[]) {
                    failures.push(err.into());
                }
            }
        }
        Err(err) => failures.push(err.into()),
    }
    if let Some(ipam_type) = conf.ipam_type.as_deref()
        && let Err(err) = ipam::exec_gc(req.env, ipam_type, req.stdin)
    {
        failures.push(BridgeError::Ipam(err));
    }
    BridgeError::first_of(failures)
}
