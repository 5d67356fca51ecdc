//! DEL as a step list over one [`Detach`] context: idempotent and thorough.
//! It removes the container interface (and with it the host veth), releases
//! the IPAM lease, removes masquerade and the MAC spoof check. Every step
//! runs whatever failed before it; the first failure is reported. Unlike the
//! reference, masquerade and the spoof check are removed even when the
//! namespace is already gone.
//!
//! Once the interface's addresses are read the rest is independent, so the
//! IPAM plugin and the firewall batches are started first and finished after
//! the kernel's veth deletion (tens of milliseconds), which they overlap.

use crate::config::BridgeConfig;
use crate::container;
use crate::error::BridgeError;
use crate::firewall::{PendingChange, Target};
use crate::netlink::Link;
use crate::node::{Node, PodNet};
use crate::pending::Pending;
use crate::steps::{Step, run_all};
use cni_types::CniError;
use cni_types::skel::Request;
use ipnetwork::IpNetwork;

/// The steps of DEL, in order.
pub fn steps<'n, 'r>() -> [Step<Detach<'n, 'r>>; 9] {
    [
        Step {
            name: "find the container interface",
            run: Detach::find_container_interface,
        },
        Step {
            name: "read the container's addresses",
            run: Detach::read_addresses,
        },
        Step {
            name: "start IPAM DEL",
            run: Detach::start_ipam,
        },
        Step {
            name: "start removing masquerade",
            run: Detach::start_masquerade_removal,
        },
        Step {
            name: "start removing the MAC spoof check",
            run: Detach::start_spoof_check_removal,
        },
        Step {
            name: "delete the container interface",
            run: Detach::delete_container_interface,
        },
        Step {
            name: "finish IPAM DEL",
            run: Detach::finish_ipam,
        },
        Step {
            name: "finish removing masquerade",
            run: Detach::finish_masquerade_removal,
        },
        Step {
            name: "finish removing the MAC spoof check",
            run: Detach::finish_spoof_check_removal,
        },
    ]
}

/// The attachment being torn down.
pub struct Detach<'n, 'r> {
    node: Node<'n>,
    conf: &'r BridgeConfig,
    req: &'r Request<'r>,
    found: Option<(Box<dyn PodNet + 'n>, Link)>,
    addresses: Vec<IpNetwork>,
    releasing: Option<Pending<'n, Result<(), CniError>>>,
    unmasquerading: Option<PendingChange<'n>>,
    unspoofing: Option<PendingChange<'n>>,
}

/// Runs DEL on `node`.
///
/// # Errors
/// [`BridgeError`] naming the first failed step (the others in details).
pub fn del(node: Node<'_>, req: &Request<'_>, conf: &BridgeConfig) -> Result<(), BridgeError> {
    let mut detach = Detach {
        node,
        conf,
        req,
        found: None,
        addresses: Vec::new(),
        releasing: None,
        unmasquerading: None,
        unspoofing: None,
    };
    let failures = run_all(&steps(), &mut detach);
    BridgeError::first_of(failures.into_iter().map(|failed| failed.error).collect())
}

impl Detach<'_, '_> {
    /// Opens the namespace and finds `CNI_IFNAME` in it; nothing when
    /// `CNI_NETNS` is empty, the namespace is gone or the interface already
    /// deleted.
    fn find_container_interface(&mut self) -> Result<(), BridgeError> {
        let path = &self.req.env.netns;
        if path.is_empty() {
            return Ok(());
        }
        let Some(pod) = self.node.namespaces.open(path)? else {
            return Ok(());
        };
        if let Some(link) = pod.link_by_name(&self.req.env.ifname)? {
            self.found = Some((pod, link));
        }
        Ok(())
    }

    /// The interface's global addresses (what masquerade was set up for); when
    /// the interface is gone, what the runtime remembers (`prevResult`), which
    /// lets masquerade teardown take its fast path.
    /// A failure to list them is reported after the fallback.
    fn read_addresses(&mut self) -> Result<(), BridgeError> {
        let listed = match &self.found {
            Some((pod, link)) => container::global_addresses(pod.as_ref(), link),
            None => Ok(Vec::new()),
        };
        self.addresses = listed.as_ref().cloned().unwrap_or_default();
        if self.addresses.is_empty()
            && let Ok(Some(previous)) = self.req.prev_result()
        {
            self.addresses = previous.ips.iter().map(|ip| ip.address).collect();
        }
        listed.map(drop).map_err(BridgeError::from)
    }

    fn start_ipam(&mut self) -> Result<(), BridgeError> {
        if let Some(plugin) = &self.conf.ipam_type {
            self.releasing = Some(self.node.ipam.start_del(plugin));
        }
        Ok(())
    }

    fn start_masquerade_removal(&mut self) -> Result<(), BridgeError> {
        if self.conf.ip_masq {
            let target = Target {
                addresses: self.addresses.clone(),
                ..self.target()
            };
            self.unmasquerading = Some(self.node.masquerade.start_teardown(&target));
        }
        Ok(())
    }

    fn start_spoof_check_removal(&mut self) -> Result<(), BridgeError> {
        if self.conf.macspoofchk {
            self.unspoofing = Some(self.node.spoof_check.start_teardown(&self.target()));
        }
        Ok(())
    }

    fn delete_container_interface(&mut self) -> Result<(), BridgeError> {
        if let Some((pod, link)) = &self.found {
            pod.del_link(link.index, &link.name)?;
        }
        Ok(())
    }

    fn finish_ipam(&mut self) -> Result<(), BridgeError> {
        match self.releasing.take() {
            Some(pending) => pending.finish().map_err(BridgeError::Ipam),
            None => Ok(()),
        }
    }

    fn finish_masquerade_removal(&mut self) -> Result<(), BridgeError> {
        match self.unmasquerading.take() {
            Some(pending) => pending.finish().map_err(BridgeError::Masquerade),
            None => Ok(()),
        }
    }

    fn finish_spoof_check_removal(&mut self) -> Result<(), BridgeError> {
        match self.unspoofing.take() {
            Some(pending) => pending.finish().map_err(BridgeError::MacSpoofTeardown),
            None => Ok(()),
        }
    }

    fn target(&self) -> Target {
        Target::for_attachment(&self.conf.network, self.req.env)
    }
}
