//! CHECK as a step list over one [`Inspect`] context, stopping at the first
//! difference: the attachment is compared with `prevResult` as the
//! reference does, with two fixes: a configured route whose destination has
//! host bits (CRI-O's `1100:200::1/24`) is compared by its network, and an
//! L2-only network (no IPAM) does not fail for lack of an IPAM plugin.
//! Masquerade is checked too when `ipMasq` is set.

use crate::config::{BridgeConfig, format_mac};
use crate::error::BridgeError;
use crate::firewall::{FirewallError, Target};
use crate::netlink::{Link, is_bridge, is_veth};
use crate::node::{HostNet, Node, PodNet};
use crate::steps::{Step, run_until_failure};
use cni_types::result::{Interface, Result as CniResult};
use cni_types::skel::Request;
use ipnetwork::IpNetwork;

/// The steps of CHECK, in order.
pub fn steps<'n, 'r>() -> [Step<Inspect<'n, 'r>>; 8] {
    [
        Step {
            name: "open the pod's namespace",
            run: Inspect::open_namespace,
        },
        Step {
            name: "check IPAM",
            run: Inspect::check_ipam,
        },
        Step {
            name: "read prevResult",
            run: Inspect::read_previous,
        },
        Step {
            name: "check the bridge",
            run: Inspect::check_bridge,
        },
        Step {
            name: "check the container interface",
            run: Inspect::check_container_interface,
        },
        Step {
            name: "check the host veth",
            run: Inspect::check_host_veth,
        },
        Step {
            name: "check addresses and routes",
            run: Inspect::check_addressing,
        },
        Step {
            name: "check masquerade",
            run: Inspect::check_masquerade,
        },
    ]
}

/// The attachment being checked.
pub struct Inspect<'n, 'r> {
    node: Node<'n>,
    conf: &'r BridgeConfig,
    req: &'r Request<'r>,
    pod: Option<Box<dyn PodNet + 'n>>,
    previous: CniResult,
    bridge: Option<Link>,
    /// The container interface's entry in `previous.interfaces`, and the link.
    container: Option<(usize, Link)>,
}

/// Runs CHECK on `node`.
///
/// # Errors
/// [`BridgeError::Check`] describing the first difference found.
pub fn check(node: Node<'_>, req: &Request<'_>, conf: &BridgeConfig) -> Result<(), BridgeError> {
    let mut inspect = Inspect {
        node,
        conf,
        req,
        pod: None,
        previous: CniResult::default(),
        bridge: None,
        container: None,
    };
    run_until_failure(&steps(), &mut inspect).map_err(|failed| failed.error)
}

impl<'n> Inspect<'n, '_> {
    fn open_namespace(&mut self) -> Result<(), BridgeError> {
        self.pod = Some(self.node.namespaces.open_existing(&self.req.env.netns)?);
        Ok(())
    }

    fn check_ipam(&mut self) -> Result<(), BridgeError> {
        match &self.conf.ipam_type {
            Some(plugin) => self.node.ipam.check(plugin).map_err(BridgeError::Ipam),
            None => Ok(()),
        }
    }

    fn read_previous(&mut self) -> Result<(), BridgeError> {
        self.previous = self
            .req
            .prev_result()
            .map_err(|e| BridgeError::Check(e.msg))?
            .ok_or_else(|| BridgeError::Check("Required prevResult missing".to_owned()))?;
        Ok(())
    }

    fn check_bridge(&mut self) -> Result<(), BridgeError> {
        let name = &self.conf.bridge;
        let entry = self.previous.interfaces.iter().find(|i| &i.name == name);
        let entry = entry.ok_or_else(|| {
            fail(format!(
                "CNI created bridge {name} in host namespace was not found"
            ))
        })?;
        self.bridge = Some(check_bridge(self.node.host, self.conf, entry)?);
        Ok(())
    }

    fn check_container_interface(&mut self) -> Result<(), BridgeError> {
        let env = self.req.env;
        let entry = self
            .previous
            .interfaces
            .iter()
            .position(|i| i.name == env.ifname && i.sandbox == env.netns)
            .ok_or_else(|| {
                fail(format!(
                    "CNI created interface in container {} not found",
                    env.ifname
                ))
            })?;
        let link = check_container_link(self.pod()?, &self.previous.interfaces[entry])?;
        self.container = Some((entry, link));
        Ok(())
    }

    fn check_host_veth(&mut self) -> Result<(), BridgeError> {
        let (_, container) = self.container()?;
        let bridge = self
            .bridge
            .as_ref()
            .ok_or_else(|| out_of_order("the bridge"))?;
        check_host_veth(self.node.host, &self.previous, container, bridge)
    }

    fn check_addressing(&mut self) -> Result<(), BridgeError> {
        let (entry, link) = self.container()?;
        let pod = self.pod()?;
        check_addresses(pod, &self.previous, *entry, link)?;
        check_routes(pod, &self.previous)
    }

    /// Every family with an address must have the container's chain.
    fn check_masquerade(&mut self) -> Result<(), BridgeError> {
        if !self.conf.ip_masq {
            return Ok(());
        }
        let env = self.req.env;
        let target = Target {
            addresses: self.previous.ips.iter().map(|ip| ip.address).collect(),
            ..Target::for_attachment(&self.conf.network, env)
        };
        self.node
            .masquerade
            .check(&target)
            .map_err(|err| match err {
                FirewallError::Missing(what) => fail(what),
                other => BridgeError::Masquerade(other),
            })
    }

    fn pod(&self) -> Result<&(dyn PodNet + 'n), BridgeError> {
        self.pod
            .as_deref()
            .ok_or_else(|| out_of_order("the pod's namespace"))
    }

    fn container(&self) -> Result<&(usize, Link), BridgeError> {
        self.container
            .as_ref()
            .ok_or_else(|| out_of_order("the container interface"))
    }
}

fn out_of_order(what: &str) -> BridgeError {
    BridgeError::Internal(format!("CHECK step ran before {what} was known"))
}

fn fail(msg: String) -> BridgeError {
    BridgeError::Check(msg)
}

fn check_bridge(
    host: &dyn HostNet,
    conf: &BridgeConfig,
    entry: &Interface,
) -> Result<Link, BridgeError> {
    if entry.name.is_empty() {
        return Err(fail("Interface name missing ".to_owned()));
    }
    let bridge = host
        .link_by_name(&entry.name)?
        .ok_or_else(|| fail(format!("Interface name {} not found", entry.name)))?;
    if !entry.sandbox.is_empty() {
        return Err(fail(format!(
            "Interface {} has a sandbox, a bridge must not",
            entry.name
        )));
    }
    if !is_bridge(&bridge) {
        return Err(fail(format!(
            "Interface {} does not have link type of bridge",
            entry.name
        )));
    }
    if !entry.mac.is_empty() && !entry.mac.eq_ignore_ascii_case(&format_mac(&bridge.mac)) {
        return Err(fail(format!(
            "Bridge interface {} Mac doesn't match: {}",
            entry.name, entry.mac
        )));
    }
    if bridge.promisc != conf.promisc_mode {
        return Err(fail(format!(
            "Bridge interface {} configured Promisc Mode {} doesn't match current state: {} ",
            entry.name, conf.promisc_mode, bridge.promisc
        )));
    }
    Ok(bridge)
}

fn check_container_link(container: &dyn PodNet, entry: &Interface) -> Result<Link, BridgeError> {
    let link = container.link_by_name(&entry.name)?.ok_or_else(|| {
        fail(format!(
            "CNI created interface in container {} not found",
            entry.name
        ))
    })?;
    if !is_veth(&link) {
        return Err(fail(format!(
            "Error: Container interface {} not of type veth",
            entry.name
        )));
    }
    let actual = format_mac(&link.mac);
    if !entry.mac.is_empty() && !entry.mac.eq_ignore_ascii_case(&actual) {
        return Err(fail(format!(
            "Interface {} Mac {} doesn't match container Mac: {}",
            entry.name, entry.mac, actual
        )));
    }
    Ok(link)
}

fn check_host_veth(
    host: &dyn HostNet,
    previous: &CniResult,
    container: &Link,
    bridge: &Link,
) -> Result<(), BridgeError> {
    for entry in previous
        .interfaces
        .iter()
        .filter(|i| i.sandbox.is_empty() && i.name != bridge.name)
    {
        let Some(link) = host.link_by_name(&entry.name)? else {
            continue;
        };
        let paired = is_veth(&link)
            && Some(link.index) == container.peer_index
            && link.peer_index == Some(container.index)
            && link.master == Some(bridge.index);
        if paired {
            if !entry.mac.is_empty() && !entry.mac.eq_ignore_ascii_case(&format_mac(&link.mac)) {
                return Err(fail(format!(
                    "Interface {} Mac doesn't match: {} not found",
                    entry.name, entry.mac
                )));
            }
            return Ok(());
        }
    }
    Err(fail(format!(
        "CNI veth created for bridge {} was not found",
        bridge.name
    )))
}

fn check_addresses(
    container: &dyn PodNet,
    previous: &CniResult,
    entry: usize,
    link: &Link,
) -> Result<(), BridgeError> {
    let present = container.addresses(link.index)?;
    let (routes_v4, routes_v6) = (container.routes(true)?, container.routes(false)?);
    for ip in previous.ips.iter().filter(|ip| ip.interface == Some(entry)) {
        if !present.contains(&ip.address) {
            return Err(fail(format!(
                "Failed to match addr {} on interface {}",
                ip.address, link.name
            )));
        }
        let network = masked(ip.address);
        let routes = if ip.address.is_ipv4() {
            &routes_v4
        } else {
            &routes_v6
        };
        if !routes.iter().any(|r| r.dst == network) {
            return Err(fail(format!(
                "Failed to match route for addr {} on interface {}",
                ip.address, link.name
            )));
        }
    }
    Ok(())
}

fn check_routes(container: &dyn PodNet, previous: &CniResult) -> Result<(), BridgeError> {
    let (routes_v4, routes_v6) = (container.routes(true)?, container.routes(false)?);
    for route in &previous.routes {
        let routes = if route.dst.is_ipv4() {
            &routes_v4
        } else {
            &routes_v6
        };
        let wanted = masked(route.dst);
        // The gateway is compared only when the result names one.
        let found = routes
            .iter()
            .any(|r| r.dst == wanted && (route.gw.is_none() || r.gw == route.gw));
        if !found {
            let gw = route.gw.map_or_else(String::new, |g| format!(" {g}"));
            return Err(fail(format!(
                "Expected Route {{{}{gw}}} not found in routing table",
                route.dst
            )));
        }
    }
    Ok(())
}

/// The network of an address (host bits cleared), same prefix.
fn masked(address: IpNetwork) -> IpNetwork {
    IpNetwork::new(address.network(), address.prefix()).unwrap_or(address)
}
