//! An in-memory model of the node the bridge plugin changes: the host's and
//! the pods' links, addresses, routes and sysctls, the masquerade and spoof
//! check rules, and the IPAM plugin's leases. It implements every trait of
//! `bridge::node`, records each operation, and can be told to fail the Nth.
//!
//! Test code only: the shipped binaries never contain it.

#![allow(dead_code)] // each test binary uses a different part

mod firewall;
mod ipam;
mod net;

use bridge::node::Node;
use bridge::{BridgeOn, GivenNode};
use cni_types::result::Result as CniResult;
use cni_types::skel::{Outcome, Plugin, Request, dispatch};
use cni_types::{CniEnv, CniError};
use ipnetwork::IpNetwork;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub use firewall::{MasqChain, SpoofRules};

/// The code of an IPAM fault, which the plugin must pass on unchanged.
pub fn ipam_fault_code() -> u32 {
    ipam::FAULT_CODE
}

/// The host's namespace.
pub const HOST: u32 = 0;

/// Everything the model can compare: the node's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// Namespaces by id; [`HOST`] is the host's.
    pub namespaces: BTreeMap<u32, Namespace>,
    /// Namespace files (`/run/netns/x`) and the namespace each names.
    pub mounts: BTreeMap<String, u32>,
    /// Masquerade chains by family (`true` for IPv6) and name.
    pub masquerade: BTreeMap<(bool, String), MasqChain>,
    /// The spoof check's shared table and base chain exist.
    pub spoof_table: bool,
    /// Spoof check rules by container ID and interface.
    pub spoof_rules: BTreeMap<(String, String), SpoofRules>,
    /// IPAM leases: address → (network, container ID, interface).
    pub leases: BTreeMap<IpAddr, (String, String, String)>,
}

/// One network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespace {
    /// Links by index.
    pub links: BTreeMap<u32, ModelLink>,
    /// Routes: destination, gateway, output interface.
    pub routes: BTreeSet<(IpNetwork, Option<IpAddr>, u32)>,
    /// `/proc/sys` values that differ from the kernel's defaults.
    pub sysctls: BTreeMap<String, String>,
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelLink {
    /// Its name.
    pub name: String,
    /// `bridge`, `veth` or `` (loopback, physical).
    pub kind: String,
    /// Hardware address.
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// IFF_UP.
    pub up: bool,
    /// IFF_PROMISC.
    pub promisc: bool,
    /// The bridge it is a port of.
    pub master: Option<u32>,
    /// A veth's peer: namespace and index.
    pub peer: Option<(u32, u32)>,
    /// Its addresses.
    pub addresses: BTreeSet<IpNetwork>,
    /// `addrgenmode none`.
    pub no_ipv6_link_local: bool,
    /// Port flags: hairpin, isolated.
    pub port_flags: (bool, bool),
    /// Port VLANs and their flags.
    pub vlans: BTreeMap<u16, PortVlan>,
    /// A bridge with VLAN filtering.
    pub vlan_filtering: bool,
}

/// A port's VLAN flags, as `bridge vlan show` has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortVlan {
    /// Untagged frames that enter the port go to this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

/// The node and what the calls so far did to it: their operations in order.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// The node.
    pub state: State,
    /// Every operation so far, by name.
    pub ops: Vec<String>,
    /// The operation (1-based) to fail, if any.
    pub fail_at: Option<usize>,
    /// The operation that failed, once it has.
    pub failed: Option<String>,
    /// Fail helper and IPAM runs after they applied their change (a helper
    /// killed after its commit, an IPAM plugin that wrote the lease and then
    /// failed) instead of before. Netlink requests always fail before: the
    /// kernel answers with the outcome of what it did.
    pub fault_after: bool,
    next_index: u32,
    next_namespace: u32,
}

/// An operation the model was told to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault(pub String);

impl World {
    /// A node with `lo` and `eth0` on the host and nothing else.
    pub fn new() -> World {
        let mut world = World {
            next_index: 1,
            next_namespace: HOST,
            ..World::default()
        };
        let host = world.add_namespace();
        world.add_link(host, "lo", "", true);
        world.add_link(host, "eth0", "", true);
        world
    }

    /// Counts one operation; the one told to fail returns [`Fault`].
    pub fn op(&mut self, name: &str) -> Result<(), Fault> {
        self.ops.push(name.to_owned());
        if self.fail_at == Some(self.ops.len()) {
            self.failed = Some(name.to_owned());
            return Err(Fault(format!(
                "injected fault in operation {}",
                self.ops.len()
            )));
        }
        Ok(())
    }

    /// Counts one run of a helper or the IPAM plugin that makes `change`:
    /// the one told to fail returns [`Fault`], before or (with
    /// `fault_after`) after making it.
    pub fn apply<T>(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut World) -> T,
    ) -> Result<T, Fault> {
        match self.op(name) {
            Ok(()) => Ok(change(self)),
            Err(fault) => {
                if self.fault_after {
                    change(self);
                }
                Err(fault)
            }
        }
    }

    /// A new namespace with `lo`; returns its id.
    pub fn add_namespace(&mut self) -> u32 {
        let id = self.next_namespace;
        self.next_namespace += 1;
        self.state.namespaces.insert(id, Namespace::default());
        self.add_link(id, "lo", "", true);
        id
    }

    /// A pod namespace reachable at `path`.
    pub fn add_pod(&mut self, path: &str) -> u32 {
        let id = self.add_namespace();
        self.state.mounts.insert(path.to_owned(), id);
        id
    }

    /// Deletes the namespace at `path` (as `ip netns del` does once nothing
    /// holds it): its veths' peers go with it.
    pub fn delete_pod(&mut self, path: &str) {
        let Some(id) = self.state.mounts.remove(path) else {
            return;
        };
        let indexes: Vec<u32> = self.state.namespaces[&id].links.keys().copied().collect();
        for index in indexes {
            self.remove_link(id, index);
        }
        self.state.namespaces.remove(&id);
    }

    /// Adds a link with a fresh index; returns it.
    pub fn add_link(&mut self, ns: u32, name: &str, kind: &str, up: bool) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        let link = ModelLink {
            name: name.to_owned(),
            kind: kind.to_owned(),
            mac: [0x02, 0, 0, 0, (index >> 8) as u8, index as u8],
            mtu: 1500,
            up,
            ..ModelLink::default()
        };
        self.namespace(ns).links.insert(index, link);
        index
    }

    /// The namespace `id`.
    pub fn namespace(&mut self, id: u32) -> &mut Namespace {
        self.state.namespaces.entry(id).or_default()
    }

    /// Removes a link, its veth peer, its routes and its sysctls; a bridge's
    /// ports lose their master.
    pub fn remove_link(&mut self, ns: u32, index: u32) {
        let Some(link) = self
            .state
            .namespaces
            .get_mut(&ns)
            .and_then(|n| n.links.remove(&index))
        else {
            return;
        };
        let namespace = self.namespace(ns);
        namespace.routes.retain(|(_, _, oif)| *oif != index);
        for family in ["ipv4", "ipv6"] {
            let prefix = format!("net/{family}/conf/{}/", link.name);
            namespace.sysctls.retain(|key, _| !key.starts_with(&prefix));
        }
        for port in namespace.links.values_mut() {
            if port.master == Some(index) {
                port.master = None;
                port.port_flags = (false, false);
                port.vlans.clear();
            }
        }
        if let Some((peer_ns, peer)) = link.peer {
            self.remove_link(peer_ns, peer);
        }
    }

    /// The node without what every pod of a network shares and no ADD or
    /// DEL removes: the bridge named `bridge` (with its addresses and their
    /// routes), its complete VLAN gateway pairs (an incomplete one is a
    /// leak), forwarding, the bridge's sysctls and the spoof check's shared
    /// table.
    pub fn without_shared(state: &State, bridge: &str) -> State {
        let mut state = state.clone();
        if let Some(host) = state.namespaces.get_mut(&HOST) {
            for index in complete_vlan_gateways(host, bridge) {
                if let Some(link) = host.links.remove(&index) {
                    host.routes.retain(|(_, _, oif)| *oif != index);
                    for family in ["ipv4", "ipv6"] {
                        let prefix = format!("net/{family}/conf/{}/", link.name);
                        host.sysctls.retain(|key, _| !key.starts_with(&prefix));
                    }
                }
            }
            let bridges: Vec<u32> = host
                .links
                .iter()
                .filter(|(_, l)| l.name == bridge && l.kind == "bridge")
                .map(|(i, _)| *i)
                .collect();
            for index in bridges {
                host.links.remove(&index);
                host.routes.retain(|(_, _, oif)| *oif != index);
            }
            let bridge_keys = format!("net/ipv6/conf/{bridge}/");
            host.sysctls.retain(|key, _| {
                !(key == "net/ipv4/ip_forward"
                    || key == "net/ipv6/conf/all/forwarding"
                    || key.starts_with(&bridge_keys))
            });
        }
        state.spoof_table = false;
        state
    }
}

/// The indexes of both ends of every complete VLAN gateway pair of
/// `bridge`: `<bridge>.<vid>` up, its peer up, a port of the bridge with
/// the VLAN as PVID, egress untagged.
fn complete_vlan_gateways(host: &Namespace, bridge: &str) -> Vec<u32> {
    let bridge_index = host
        .links
        .iter()
        .find(|(_, l)| l.name == bridge && l.kind == "bridge")
        .map(|(i, _)| *i);
    let prefix = format!("{bridge}.");
    let mut ends = Vec::new();
    for (index, gateway) in &host.links {
        let Some(vid) = gateway.name.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(vid) = vid.parse::<u16>() else {
            continue;
        };
        let Some((HOST, peer)) = gateway.peer else {
            continue;
        };
        let access = PortVlan {
            pvid: true,
            untagged: true,
        };
        let complete = host.links.get(&peer).is_some_and(|port| {
            port.up
                && port.master.is_some()
                && port.master == bridge_index
                && port.vlans.get(&vid) == Some(&access)
        });
        if complete && gateway.up {
            ends.extend([*index, peer]);
        }
    }
    ends
}

/// The model behind every trait of the seam.
#[derive(Debug)]
pub struct Model {
    /// The world the traits change.
    pub world: RefCell<World>,
}

/// The trait objects of one call, borrowing a [`Model`].
pub struct Parts<'m> {
    host: net::Host<'m>,
    namespaces: net::Mounts<'m>,
    masquerade: firewall::Masquerade<'m>,
    spoof_check: firewall::SpoofCheck<'m>,
    ipam: ipam::Leases<'m>,
}

impl Model {
    /// A model of `world`.
    pub fn new(world: World) -> Model {
        Model {
            world: RefCell::new(world),
        }
    }

    /// The parts for the call `req`.
    pub fn parts(&self, req: &Request<'_>) -> Parts<'_> {
        Parts {
            host: net::Host(&self.world),
            namespaces: net::Mounts(&self.world),
            masquerade: firewall::Masquerade(&self.world),
            spoof_check: firewall::SpoofCheck(&self.world),
            ipam: ipam::Leases::new(&self.world, req),
        }
    }
}

impl Parts<'_> {
    /// The parts as the plugin's steps take them.
    pub fn node(&self) -> Node<'_> {
        Node {
            host: &self.host,
            namespaces: &self.namespaces,
            masquerade: &self.masquerade,
            spoof_check: &self.spoof_check,
            ipam: &self.ipam,
        }
    }
}

/// The plugin on a model: the bridge's commands, changing the model's node.
pub struct OnModel<'m>(pub &'m Model);

impl Plugin for OnModel<'_> {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        BridgeOn(GivenNode(self.0.parts(req).node())).add(req)
    }

    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        BridgeOn(GivenNode(self.0.parts(req).node())).del(req)
    }

    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        BridgeOn(GivenNode(self.0.parts(req).node())).check(req)
    }
}

/// Runs `command` for `container_id`'s `eth0` in `netns` with `config` on
/// stdin, through the dispatcher, as a runtime calls the plugin.
pub fn call(
    model: &Model,
    command: &str,
    container_id: &str,
    netns: &str,
    config: &Value,
) -> Outcome {
    let env = CniEnv {
        command: command.to_owned(),
        container_id: container_id.to_owned(),
        netns: netns.to_owned(),
        ifname: "eth0".to_owned(),
        path: "/opt/cni/bin".to_owned(),
        ..CniEnv::default()
    };
    let stdin = serde_json::to_vec(config).unwrap_or_default();
    dispatch(&OnModel(model), "bridge", &env, &mut || Ok(stdin.clone()))
}
