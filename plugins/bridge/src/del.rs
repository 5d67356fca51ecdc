//! DEL: idempotent and thorough. It removes the container interface (and
//! with it the host veth), releases the IPAM lease and removes masquerade,
//! carrying on past each failure and reporting the first. Unlike the
//! reference, masquerade is removed even when the namespace is already gone.

use crate::config::BridgeConfig;
use crate::container;
use crate::error::BridgeError;
use crate::masq;
use crate::netlink::Kernel;
use cni_types::ipam;
use cni_types::netns::Netns;
use cni_types::skel::Request;
use ipnetwork::IpNetwork;

/// Runs DEL.
///
/// # Errors
/// [`BridgeError`] naming the first failed step (the others in details).
pub fn del(req: &Request<'_>) -> Result<(), BridgeError> {
    // CNI_ARGS is not read: a stale or malformed value must not block cleanup.
    let conf = BridgeConfig::from_json(req.stdin, "")?;
    let env = req.env;
    let mut failures: Vec<BridgeError> = Vec::new();

    let mut addresses = remove_container_interface(req).unwrap_or_else(|err| {
        failures.push(err);
        Vec::new()
    });
    if addresses.is_empty() {
        // The interface is gone: what the runtime remembers still names the
        // addresses, which lets masquerade teardown take its fast path.
        if let Ok(Some(previous)) = req.prev_result() {
            addresses = previous.ips.iter().map(|ip| ip.address).collect();
        }
    }
    if let Some(ipam_type) = conf.ipam_type.as_deref()
        && let Err(err) = ipam::exec_del(env, ipam_type, req.stdin)
    {
        failures.push(BridgeError::Ipam(err));
    }
    if conf.ip_masq
        && let Err(err) = masq::teardown(&conf.network, &env.container_id, &addresses)
    {
        failures.push(err.into());
    }
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

/// Deletes `CNI_IFNAME` in the namespace and returns its global addresses;
/// nothing to do when `CNI_NETNS` is empty or the namespace is gone.
fn remove_container_interface(req: &Request<'_>) -> Result<Vec<IpNetwork>, BridgeError> {
    let path = &req.env.netns;
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let netns = match Netns::open(path) {
        Ok(netns) => netns,
        Err(err) if err.is_not_found() => return Ok(Vec::new()),
        Err(err) => return Err(BridgeError::netns(path, err)),
    };
    let container = {
        let _inside = netns.enter().map_err(|e| BridgeError::netns(path, e))?;
        Kernel::connect()?
    };
    Ok(container::remove(&container, &req.env.ifname)?)
}
