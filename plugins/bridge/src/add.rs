//! ADD as a step list over one [`Attach`] context. Each step that may change
//! something records its undo first ([`Undo`]); a failure undoes them all,
//! newest first, so a failed ADD leaves no veth, lease or rule behind.
//!
//! Independent work overlaps although the steps run in order: a step starts
//! the IPAM plugin or a firewall batch and a later step finishes it (see
//! [`Pending`]), so IPAM runs while the bridge, the veth and the container
//! interface are set up, and the iptables batches run while the container is
//! configured. The host veth becomes a bridge port only once the container
//! interface is configured; the reference attaches it first.

use crate::config::{BridgeConfig, format_mac};
use crate::container;
use crate::error::BridgeError;
use crate::firewall::{Firewall, PendingChange, Target};
use crate::gateway::{self, Place};
use crate::link;
use crate::netlink::Link;
use crate::node::{Node, PodNet};
use crate::pending::Pending;
use crate::result::{self, Addressing};
use crate::rollback::Rollback;
use crate::steps::{Step, run_until_failure};
use crate::vlan_gateway;
use cni_types::CniError;
use cni_types::result::Result as CniResult;
use cni_types::skel::Request;

/// The steps of ADD, in order.
pub fn steps<'n, 'r>() -> [Step<Attach<'n, 'r>>; 18] {
    [
        Step {
            name: "open the pod's namespace",
            run: Attach::open_namespace,
        },
        Step {
            name: "start IPAM ADD",
            run: Attach::start_ipam,
        },
        Step {
            name: "prepare masquerade",
            run: Attach::prepare_masquerade,
        },
        Step {
            name: "ensure the bridge",
            run: Attach::ensure_bridge,
        },
        Step {
            name: "create the veth pair",
            run: Attach::create_veth,
        },
        Step {
            name: "bring the host veth up",
            run: Attach::bring_up_host_veth,
        },
        Step {
            name: "start the MAC spoof check",
            run: Attach::start_spoof_check,
        },
        Step {
            name: "bring the container interface up",
            run: Attach::bring_up_container,
        },
        Step {
            name: "finish IPAM ADD",
            run: Attach::finish_ipam,
        },
        Step {
            name: "start masquerade",
            run: Attach::start_masquerade,
        },
        Step {
            name: "configure the container interface",
            run: Attach::configure_container,
        },
        Step {
            name: "finish the MAC spoof check",
            run: Attach::finish_spoof_check,
        },
        Step {
            name: "attach the host veth to the bridge",
            run: Attach::attach_to_bridge,
        },
        Step {
            name: "ensure the VLAN gateway interface",
            run: Attach::ensure_vlan_gateway,
        },
        Step {
            name: "put the gateway on the bridge or VLAN interface",
            run: Attach::configure_gateway,
        },
        Step {
            name: "refuse router advertisements",
            run: Attach::refuse_router_advertisements,
        },
        Step {
            name: "finish masquerade",
            run: Attach::finish_masquerade,
        },
        Step {
            name: "read the host interfaces",
            run: Attach::read_interfaces,
        },
    ]
}

/// How to undo an ADD step that may have changed something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Release the lease of the IPAM plugin named here (after its ADD ends).
    ReleaseIpam(String),
    /// Delete the veth pair whose host end has this name.
    DeleteVeth(String),
    /// Remove the masquerade rules (after their setup ends).
    RemoveMasquerade(Target),
    /// Remove the MAC spoof check (after its setup ends).
    RemoveSpoofCheck(Target),
}

/// The attachment being built: what ADD knows and holds so far.
pub struct Attach<'n, 'r> {
    node: Node<'n>,
    conf: &'r BridgeConfig,
    req: &'r Request<'r>,
    pod: Option<Box<dyn PodNet + 'n>>,
    bridge: Option<Link>,
    veth: Option<Link>,
    container: Option<Link>,
    vlan_gateway: Option<Link>,
    leasing: Option<Pending<'n, Result<CniResult, CniError>>>,
    addressing: Option<Addressing>,
    masquerading: Option<PendingChange<'n>>,
    spoof_checking: Option<PendingChange<'n>>,
    rollback: Rollback<Undo>,
}

/// Runs ADD on `node`.
///
/// # Errors
/// [`BridgeError`]; everything done before the failure is undone.
pub fn add(
    node: Node<'_>,
    req: &Request<'_>,
    conf: &BridgeConfig,
) -> Result<CniResult, BridgeError> {
    let mut attach = Attach {
        node,
        conf,
        req,
        pod: None,
        bridge: None,
        veth: None,
        container: None,
        vlan_gateway: None,
        leasing: None,
        addressing: None,
        masquerading: None,
        spoof_checking: None,
        rollback: Rollback::default(),
    };
    let built = match run_until_failure(&steps(), &mut attach) {
        Ok(()) => attach.result(),
        Err(failed) => {
            // For the runtime's log; stdout carries the error object.
            eprintln!(
                "bridge: ADD failed at \"{}\": {}",
                failed.step, failed.error
            );
            Err(failed.error)
        }
    };
    if built.is_err() {
        attach.unwind();
    }
    built
}

impl<'n> Attach<'n, '_> {
    fn open_namespace(&mut self) -> Result<(), BridgeError> {
        self.pod = Some(self.node.namespaces.open_existing(&self.req.env.netns)?);
        Ok(())
    }

    fn start_ipam(&mut self) -> Result<(), BridgeError> {
        if let Some(plugin) = &self.conf.ipam_type {
            self.rollback.push(Undo::ReleaseIpam(plugin.clone()));
            self.leasing = Some(self.node.ipam.start_add(plugin));
        }
        Ok(())
    }

    /// Starts the masquerade helpers, or reads the rules there, while IPAM
    /// runs.
    fn prepare_masquerade(&mut self) -> Result<(), BridgeError> {
        if self.conf.ip_masq && self.leasing.is_some() {
            let target = self.target();
            self.node
                .masquerade
                .prepare(&target, &self.conf.expected_families);
        }
        Ok(())
    }

    fn ensure_bridge(&mut self) -> Result<(), BridgeError> {
        self.bridge = Some(link::ensure_bridge(self.node.host, self.conf)?);
        Ok(())
    }

    /// Creates the pair; its deletion is recorded as soon as its name is
    /// known (both ends go with the host end).
    fn create_veth(&mut self) -> Result<(), BridgeError> {
        let env = self.req.env;
        let attachment = format!("{}/{}/{}", self.conf.network, env.container_id, env.ifname);
        let (host, pod) = (self.node.host, self.pod()?);
        let name = link::create_veth(host, self.conf, &attachment, &env.ifname, pod)?;
        self.rollback.push(Undo::DeleteVeth(name.clone()));
        self.veth = Some(link::find_created(host, &name)?);
        Ok(())
    }

    fn bring_up_host_veth(&mut self) -> Result<(), BridgeError> {
        link::bring_up_host_end(self.node.host, need(&self.veth)?)?;
        Ok(())
    }

    /// The spoof check needs only the veth pair, so it overlaps IPAM; it is
    /// finished before the host veth becomes a bridge port.
    fn start_spoof_check(&mut self) -> Result<(), BridgeError> {
        if !self.conf.macspoofchk {
            return Ok(());
        }
        let ifname = &self.req.env.ifname;
        let container = self.pod()?.link_by_name(ifname)?;
        let container = container.ok_or_else(|| missing(ifname))?;
        let target = Target {
            host_veth: need(&self.veth)?.name.clone(),
            mac: format_mac(&container.mac),
            ..self.target()
        };
        self.rollback.push(Undo::RemoveSpoofCheck(target.clone()));
        self.spoof_checking = Some(self.node.spoof_check.start_setup(&target));
        Ok(())
    }

    /// With IPAM, while it runs: the DAD sysctls and the link up (see
    /// [`container::bring_up_unaddressed`]). Without, all there is to do.
    fn bring_up_container(&mut self) -> Result<(), BridgeError> {
        let (pod, ifname) = (self.pod()?, &self.req.env.ifname);
        let link = if self.leasing.is_some() {
            container::bring_up_unaddressed(pod, ifname, self.conf.enable_dad)?
        } else if self.conf.disable_container_interface {
            pod.link_by_name(ifname)?.ok_or_else(|| missing(ifname))?
        } else {
            container::bring_up(pod, ifname)?
        };
        self.container = Some(link);
        Ok(())
    }

    fn finish_ipam(&mut self) -> Result<(), BridgeError> {
        if let Some(leasing) = self.leasing.take() {
            let leased = leasing.finish().map_err(BridgeError::Ipam)?;
            self.addressing = Some(result::addressing(self.conf, leased)?);
        }
        Ok(())
    }

    fn start_masquerade(&mut self) -> Result<(), BridgeError> {
        let Some(addressing) = self.addressing.as_ref().filter(|_| self.conf.ip_masq) else {
            return Ok(());
        };
        let target = Target {
            addresses: addressing.result.ips.iter().map(|ip| ip.address).collect(),
            ..self.target()
        };
        self.rollback.push(Undo::RemoveMasquerade(target.clone()));
        self.masquerading = Some(self.node.masquerade.start_setup(&target));
        Ok(())
    }

    /// IPv6 on (when there is an IPv6 address), then the addresses and
    /// routes of the (up) container interface.
    fn configure_container(&mut self) -> Result<(), BridgeError> {
        let Some(addressing) = &self.addressing else {
            return Ok(());
        };
        let pod = self.pod()?;
        let ifname = &self.req.env.ifname;
        if addressing.result.ips.iter().any(|ip| ip.address.is_ipv6()) {
            container::enable_ipv6(pod, ifname);
        }
        let link = container::configure(pod, need(&self.container)?, &addressing.result)?;
        self.container = Some(link);
        Ok(())
    }

    fn finish_spoof_check(&mut self) -> Result<(), BridgeError> {
        if let Some(pending) = self.spoof_checking.take() {
            pending.finish().map_err(BridgeError::MacSpoofSetup)?;
        }
        Ok(())
    }

    fn attach_to_bridge(&mut self) -> Result<(), BridgeError> {
        let (veth, bridge) = (need(&self.veth)?, need(&self.bridge)?);
        link::attach_to_bridge(self.node.host, self.conf, veth, bridge)?;
        Ok(())
    }

    /// With `vlan` and gateways to put in place, the VLAN's gateway
    /// interface (shared by the VLAN's pods: not undone, as the bridge).
    fn ensure_vlan_gateway(&mut self) -> Result<(), BridgeError> {
        let has_gateways = self
            .addressing
            .as_ref()
            .is_some_and(|a| !a.gateways.is_empty());
        if self.conf.vlan != 0 && has_gateways {
            let bridge = need(&self.bridge)?;
            let gateway = vlan_gateway::ensure(self.node.host, self.conf, bridge)?;
            self.vlan_gateway = Some(gateway);
        }
        Ok(())
    }

    /// The gateway addresses on the VLAN gateway interface, else on the
    /// bridge (whose MAC, pinned there, follows the lowest port MAC until
    /// then), and forwarding.
    fn configure_gateway(&mut self) -> Result<(), BridgeError> {
        if let Some(addressing) = &self.addressing {
            let (link, place) = match &self.vlan_gateway {
                Some(gateway) => (gateway, Place::VlanInterface),
                None => (need(&self.bridge)?, Place::Bridge),
            };
            let (host, gateways) = (self.node.host, &addressing.gateways);
            gateway::configure(host, link, place, self.conf, gateways)?;
        }
        Ok(())
    }

    fn refuse_router_advertisements(&mut self) -> Result<(), BridgeError> {
        let veth = &need(&self.veth)?.name;
        link::refuse_router_advertisements(self.node.host, &self.conf.bridge, veth);
        Ok(())
    }

    fn finish_masquerade(&mut self) -> Result<(), BridgeError> {
        if let Some(pending) = self.masquerading.take() {
            pending.finish().map_err(BridgeError::Masquerade)?;
        }
        Ok(())
    }

    /// Re-reads the host-side links: the bridge's MAC is pinned only now,
    /// and udev may have changed the veths' after creation.
    fn read_interfaces(&mut self) -> Result<(), BridgeError> {
        let host = self.node.host;
        let links = [&mut self.bridge, &mut self.veth, &mut self.vlan_gateway];
        for link in links.into_iter().flatten() {
            if let Some(now) = host.link_by_index(link.index)? {
                *link = now;
            }
        }
        Ok(())
    }

    /// The result of the finished steps.
    fn result(&mut self) -> Result<CniResult, BridgeError> {
        let links = result::Links {
            bridge: need(&self.bridge)?,
            veth: need(&self.veth)?,
            container: need(&self.container)?,
            vlan_gateway: self.vlan_gateway.as_ref(),
        };
        let addressing = self.addressing.take();
        Ok(result::build(self.conf, self.req.env, addressing, &links))
    }

    /// Undoes what the steps recorded, newest first.
    fn unwind(mut self) {
        let rollback = std::mem::take(&mut self.rollback);
        rollback.unwind(|record| self.undo(record));
    }

    /// Undoes one record; work still under way is finished first, so that
    /// nothing it creates is left behind.
    fn undo(&mut self, record: Undo) -> (&'static str, Result<(), String>) {
        match record {
            Undo::ReleaseIpam(plugin) => {
                if let Some(leasing) = self.leasing.take() {
                    drop(leasing.finish());
                }
                let released = self.node.ipam.start_del(&plugin).finish();
                ("release IPAM lease", released.map_err(|e| e.to_string()))
            }
            Undo::DeleteVeth(name) => ("delete veth", self.delete_veth(&name)),
            Undo::RemoveMasquerade(target) => {
                let setup = self.masquerading.take();
                let removed = remove_rules(setup, self.node.masquerade, &target);
                ("remove masquerade", removed)
            }
            Undo::RemoveSpoofCheck(target) => {
                let setup = self.spoof_checking.take();
                let removed = remove_rules(setup, self.node.spoof_check, &target);
                ("remove macspoofchk rules", removed)
            }
        }
    }

    fn delete_veth(&self, name: &str) -> Result<(), String> {
        let host = self.node.host;
        match host.link_by_name(name).map_err(|e| e.to_string())? {
            Some(veth) => host.del_link(veth.index, name).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn pod(&self) -> Result<&(dyn PodNet + 'n), BridgeError> {
        self.pod
            .as_deref()
            .ok_or_else(|| out_of_order("the pod's namespace"))
    }

    /// The firewall target with what every backend knows of the attachment.
    fn target(&self) -> Target {
        Target::for_attachment(&self.conf.network, self.req.env)
    }
}

/// Removes `target`'s rules from `firewall`, after `setup` (still under way)
/// ends.
fn remove_rules(
    setup: Option<PendingChange<'_>>,
    firewall: &dyn Firewall,
    target: &Target,
) -> Result<(), String> {
    if let Some(setup) = setup {
        drop(setup.finish());
    }
    firewall
        .start_teardown(target)
        .finish()
        .map_err(|e| e.to_string())
}

/// What an earlier step found; its absence means the steps ran out of order.
fn need(found: &Option<Link>) -> Result<&Link, BridgeError> {
    found.as_ref().ok_or_else(|| out_of_order("a link"))
}

fn out_of_order(what: &str) -> BridgeError {
    BridgeError::Internal(format!("ADD step ran before {what} was known"))
}

fn missing(ifname: &str) -> BridgeError {
    BridgeError::Container(container::ContainerError::Missing(ifname.to_owned()))
}
