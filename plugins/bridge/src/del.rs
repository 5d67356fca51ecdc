//! DEL: idempotent and thorough. It removes the container interface (and
//! with it the host veth), releases the IPAM lease, removes masquerade and
//! the MAC spoof check, carrying on past each failure and reporting the
//! first. Unlike the reference, masquerade and the spoof check are removed
//! even when the namespace is already gone.
//!
//! The steps are independent once the interface's addresses are read, so
//! they run at the same time: the kernel's veth deletion (tens of
//! milliseconds) overlaps the IPAM plugin, the iptables and the nft batches.

use crate::config::BridgeConfig;
use crate::container;
use crate::error::BridgeError;
use crate::macspoof;
use crate::masq;
use crate::netlink::{Kernel, Link};
use cni_types::ipam;
use cni_types::netns::Netns;
use cni_types::skel::Request;

/// Runs DEL.
///
/// # Errors
/// [`BridgeError`] naming the first failed step (the others in details).
pub fn del(req: &Request<'_>) -> Result<(), BridgeError> {
    // CNI_ARGS is not read: a stale or malformed value must not block cleanup.
    let conf = BridgeConfig::from_json(req.stdin, "")?;
    let env = req.env;
    let mut failures: Vec<BridgeError> = Vec::new();

    let found = find_container_interface(req).unwrap_or_else(|err| {
        failures.push(err);
        None
    });
    let mut addresses = match &found {
        Some((kernel, link)) => container::global_addresses(kernel, link).unwrap_or_else(|err| {
            failures.push(err.into());
            Vec::new()
        }),
        None => Vec::new(),
    };
    if addresses.is_empty() {
        // The interface is gone: what the runtime remembers still names the
        // addresses, which lets masquerade teardown take its fast path.
        if let Ok(Some(previous)) = req.prev_result() {
            addresses = previous.ips.iter().map(|ip| ip.address).collect();
        }
    }

    std::thread::scope(|scope| {
        let ipam_job = conf
            .ipam_type
            .as_deref()
            .map(|ipam_type| scope.spawn(move || ipam::exec_del(env, ipam_type, req.stdin)));
        let masq_job = conf
            .ip_masq
            .then(|| scope.spawn(|| masq::teardown(&conf.network, &env.container_id, &addresses)));
        let spoof_job = conf
            .macspoofchk
            .then(|| scope.spawn(|| macspoof::teardown(&env.container_id, &env.ifname)));
        if let Some((kernel, link)) = &found
            && let Err(err) = kernel.del_link(link.index, &link.name)
        {
            failures.push(err.into());
        }
        if let Some(job) = ipam_job {
            match job.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => failures.push(BridgeError::Ipam(err)),
                Err(_) => {
                    failures.push(BridgeError::Internal("IPAM DEL thread panicked".to_owned()))
                }
            }
        }
        if let Some(job) = masq_job {
            match job.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => failures.push(err.into()),
                Err(_) => failures.push(BridgeError::Internal(
                    "masquerade teardown thread panicked".to_owned(),
                )),
            }
        }
        if let Some(job) = spoof_job {
            match job.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => failures.push(BridgeError::MacSpoofTeardown(err)),
                Err(_) => failures.push(BridgeError::Internal(
                    "macspoofchk teardown thread panicked".to_owned(),
                )),
            }
        }
    });

    BridgeError::first_of(failures)
}

/// Opens the namespace and finds `CNI_IFNAME` in it; `None` when `CNI_NETNS`
/// is empty, the namespace is gone or the interface is already deleted.
fn find_container_interface(req: &Request<'_>) -> Result<Option<(Kernel, Link)>, BridgeError> {
    let path = &req.env.netns;
    if path.is_empty() {
        return Ok(None);
    }
    let netns = match Netns::open(path) {
        Ok(netns) => netns,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(BridgeError::netns(path, err)),
    };
    let kernel = {
        let _inside = netns.enter().map_err(|e| BridgeError::netns(path, e))?;
        Kernel::connect()?
    };
    Ok(kernel
        .link_by_name(&req.env.ifname)?
        .map(|link| (kernel, link)))
}
