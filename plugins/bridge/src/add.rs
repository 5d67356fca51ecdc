//! ADD: bridge, veth, MAC spoof check, IPAM, addresses, routes, gateway and
//! masquerade. Every step that changes something pushes its undo; a failure
//! unwinds them all, so a failed ADD leaves no veth, lease or rule behind.

use crate::config::{BridgeConfig, format_mac};
use crate::container;
use crate::error::BridgeError;
use crate::gateway::{apply_gateways, configure_bridge};
use crate::link::{
    attach_to_bridge, bring_up_host_end, create_veth, ensure_bridge, refuse_router_advertisements,
};
use crate::macspoof;
use crate::masq;
use crate::netlink::{Kernel, Link};
use crate::rollback::Rollback;
use crate::sysctl::NetSysctls;
use cni_types::ipam;
use cni_types::netns::Netns;
use cni_types::result::{Interface, Result as CniResult};
use cni_types::skel::Request;
use std::os::fd::AsRawFd;

/// Runs ADD.
///
/// # Errors
/// [`BridgeError`]; everything done before the failure is undone.
pub fn add(req: &Request<'_>) -> Result<CniResult, BridgeError> {
    let conf = BridgeConfig::from_json(req.stdin, &req.env.args)?;
    let netns = Netns::open(&req.env.netns).map_err(|e| BridgeError::netns(&req.env.netns, e))?;
    let host = Kernel::connect()?;
    let container = {
        let _inside = netns
            .enter()
            .map_err(|e| BridgeError::netns(&req.env.netns, e))?;
        Kernel::connect()?
    };
    let mut rollback = Rollback::default();
    match attach(req, &conf, &netns, &host, &container, &mut rollback) {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(err) => {
            rollback.unwind();
            Err(err)
        }
    }
}

/// The steps of ADD; `rollback` collects how to undo each one. Independent
/// work overlaps: the IPAM plugin runs while the bridge and veth are set up,
/// the container interface comes up and the `nft` batch runs, and the
/// iptables batches run while the container is configured. The container's
/// sysctls are written while IPAM runs and the host's last, while the
/// iptables batches finish (see [`NetSysctls`]), except the host veth's
/// `disable_ipv6`, which has to precede its coming up.
///
/// The host veth becomes a bridge port only once the container interface is
/// configured (see [`attach_to_bridge`]); the reference attaches it first.
fn attach<'a>(
    req: &'a Request<'_>,
    conf: &'a BridgeConfig,
    netns: &Netns,
    host: &'a Kernel,
    container: &'a Kernel,
    rollback: &mut Rollback<'a>,
) -> Result<CniResult, BridgeError> {
    let env = req.env;
    std::thread::scope(|scope| {
        let ipam_job = conf.ipam_type.as_deref().map(|ipam_type| {
            scope.spawn(move || ipam::exec_add(env, ipam_type, req.stdin, req.version))
        });
        // The iptables-restore processes start while IPAM runs (from a thread
        // created here, in the host namespace) and wait for their batches.
        let prestart_job = (conf.ip_masq && ipam_job.is_some())
            .then(|| scope.spawn(|| masq::Prestarted::start(&conf.expected_families)));
        // Used on this thread only, which is in the host namespace except
        // inside `netns.enter()`.
        let host_sysctls = NetSysctls::default();
        let links = connect_links(req, conf, netns, host, &host_sysctls, rollback);
        // The spoof check needs only the veth pair, so it overlaps IPAM; it is
        // in place before the host veth becomes a bridge port.
        let spoof_job = match (&links, conf.macspoofchk) {
            (Ok((_, veth)), true) => {
                let mac = container_mac(container, &env.ifname);
                let host_veth = veth.name.clone();
                Some(scope.spawn(move || {
                    macspoof::setup(&env.container_id, &env.ifname, &host_veth, &mac?)
                        .map_err(BridgeError::MacSpoofSetup)
                }))
            }
            _ => None,
        };
        let container_sysctls = NetSysctls::private();
        let early_link = (links.is_ok() && ipam_job.is_some()).then(|| {
            // While IPAM runs.
            container::bring_up_unaddressed(
                netns,
                container,
                &container_sysctls,
                &env.ifname,
                conf.enable_dad,
            )
        });
        let leased = ipam_job.map(|job| {
            let leased = join(job, "IPAM ADD").and_then(|r| r.map_err(BridgeError::Ipam));
            if let (Ok(_), Some(ipam_type)) = (&leased, conf.ipam_type.as_deref()) {
                rollback.push("release IPAM lease", move || {
                    ipam::exec_del(env, ipam_type, req.stdin).map_err(|e| e.to_string())
                });
            }
            leased
        });
        let spoofed = spoof_job.map(|job| {
            let spoofed = join(job, "macspoofchk setup").and_then(|r| r);
            if spoofed.is_ok() {
                rollback.push("remove macspoofchk rules", move || {
                    macspoof::teardown(&env.container_id, &env.ifname).map_err(|e| e.to_string())
                });
            }
            spoofed
        });
        let (bridge, veth) = links?;
        spoofed.transpose()?;
        let mut result = CniResult::default();
        // Both are there exactly when an IPAM plugin is configured (the links
        // are, past this point).
        let container_link = match leased.zip(early_link) {
            Some((leased, early_link)) => {
                let leased = leased?;
                let early_link = early_link?;
                if leased.ips.is_empty() {
                    return Err(BridgeError::NoIpConfig);
                }
                result.ips = leased.ips;
                result.routes = leased.routes;
                result.dns = if conf.dns.is_empty() {
                    leased.dns
                } else {
                    conf.dns.clone()
                };
                let gateways = apply_gateways(&mut result, conf);
                let addresses: Vec<_> = result.ips.iter().map(|ip| ip.address).collect();
                let prestarted = prestart_job
                    .map(|job| join(job, "iptables-restore start"))
                    .transpose()?
                    .unwrap_or_default();
                let masq_job = conf.ip_masq.then(|| {
                    let addresses = addresses.clone();
                    scope.spawn(move || {
                        masq::setup_prestarted(
                            &conf.network,
                            &env.container_id,
                            &addresses,
                            prestarted,
                        )
                    })
                });
                let configured = configure_l3(
                    netns,
                    host,
                    container,
                    &host_sysctls,
                    &container_sysctls,
                    conf,
                    &env.ifname,
                    &early_link,
                    &bridge,
                    &veth,
                    &result,
                    &gateways,
                );
                if let Some(job) = masq_job {
                    join(job, "masquerade setup")?.map_err(BridgeError::from)?;
                    rollback.push("remove masquerade", move || {
                        masq::teardown(&conf.network, &env.container_id, &addresses)
                            .map_err(|e| e.to_string())
                    });
                }
                configured?
            }
            None => {
                result.dns = conf.dns.clone();
                let link = if conf.disable_container_interface {
                    container.link_by_name(&env.ifname)?.ok_or_else(|| {
                        BridgeError::Container(container::ContainerError::Missing(
                            env.ifname.clone(),
                        ))
                    })?
                } else {
                    container::bring_up(container, &env.ifname)?
                };
                attach_to_bridge(host, conf, &veth, &bridge)?;
                refuse_router_advertisements(&host_sysctls, &conf.bridge, &veth.name);
                link
            }
        };

        // Re-read both host-side MACs last: the bridge's is pinned only now,
        // and udev may have changed the veth's after creation.
        let bridge_now = host.link_by_index(bridge.index)?.unwrap_or(bridge);
        let veth_now = host.link_by_index(veth.index)?.unwrap_or(veth);
        result.interfaces = vec![
            Interface {
                name: bridge_now.name,
                mac: format_mac(&bridge_now.mac),
                ..Interface::default()
            },
            Interface {
                name: veth_now.name,
                mac: format_mac(&veth_now.mac),
                ..Interface::default()
            },
            Interface {
                name: env.ifname.clone(),
                mac: format_mac(&container_link.mac),
                sandbox: env.netns.clone(),
                ..Interface::default()
            },
        ];
        Ok(result)
    })
}

/// The bridge and the veth pair with its host end up (not yet a bridge
/// port); the veth's removal is pushed as soon as it exists.
///
/// The host end comes up with IPv6 off (see [`bring_up_host_end`]).
fn connect_links<'a>(
    req: &Request<'_>,
    conf: &BridgeConfig,
    netns: &Netns,
    host: &'a Kernel,
    host_sysctls: &NetSysctls,
    rollback: &mut Rollback<'a>,
) -> Result<(Link, Link), BridgeError> {
    let env = req.env;
    let bridge = ensure_bridge(host, conf)?;
    let attachment = format!("{}/{}/{}", conf.network, env.container_id, env.ifname);
    let veth = create_veth(host, conf, &attachment, &env.ifname, netns.as_raw_fd())?;
    let (veth_index, veth_name) = (veth.index, veth.name.clone());
    rollback.push("delete veth", move || {
        host.del_link(veth_index, &veth_name)
            .map_err(|e| e.to_string())
    });
    bring_up_host_end(host, host_sysctls, &veth)?;
    Ok((bridge, veth))
}

/// The MAC of the new container interface, as the result will report it.
fn container_mac(container: &Kernel, ifname: &str) -> Result<String, BridgeError> {
    let link = container.link_by_name(ifname)?.ok_or_else(|| {
        BridgeError::Container(container::ContainerError::Missing(ifname.to_owned()))
    })?;
    Ok(format_mac(&link.mac))
}

/// The container's addresses and routes (its interface is already up), then
/// the host veth becomes a bridge port, then the gateway on the bridge (whose
/// MAC, pinned there, follows the lowest port MAC until then).
#[allow(clippy::too_many_arguments)]
fn configure_l3(
    netns: &Netns,
    host: &Kernel,
    container: &Kernel,
    host_sysctls: &NetSysctls,
    container_sysctls: &NetSysctls,
    conf: &BridgeConfig,
    ifname: &str,
    container_link: &Link,
    bridge: &Link,
    veth: &Link,
    result: &CniResult,
    gateways: &[ipnetwork::IpNetwork],
) -> Result<Link, BridgeError> {
    let has_ipv6 = result.ips.iter().any(|ip| ip.address.is_ipv6());
    if has_ipv6 {
        container::enable_ipv6(netns, container_sysctls, ifname)?;
    }
    let link = container::configure(container, container_link, result)?;
    attach_to_bridge(host, conf, veth, bridge)?;
    configure_bridge(host, host_sysctls, bridge, conf, gateways)?;
    refuse_router_advertisements(host_sysctls, &conf.bridge, &veth.name);
    Ok(link)
}

/// Joins a worker thread, turning a panic into an error.
fn join<T>(job: std::thread::ScopedJoinHandle<'_, T>, what: &str) -> Result<T, BridgeError> {
    job.join()
        .map_err(|_| BridgeError::Internal(format!("{what} thread panicked")))
}
