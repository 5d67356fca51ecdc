//! The model's IPAM plugin: host-local's behaviour in miniature. One address
//! per range set (its first subnet), from the network's second address up,
//! gateway the first; the config's routes; a repeated ADD of an attachment
//! gets its lease again; DEL releases every lease of the attachment.

use super::World;
use bridge::node::Ipam;
use bridge::pending::Pending;
use cni_types::result::{IpConfig, Result as CniResult, Route};
use cni_types::skel::Request;
use cni_types::{CniError, ErrorCode};
use ipnetwork::IpNetwork;
use serde_json::Value;
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The error an IPAM fault gives: code 11, which the plugin must pass on.
pub const FAULT_CODE: u32 = 11;

/// The plugin, as one call runs it.
pub struct Leases<'m> {
    world: &'m RefCell<World>,
    config: Value,
    container_id: String,
    ifname: String,
}

impl<'m> Leases<'m> {
    /// The plugin as the call `req` runs it.
    pub fn new(world: &'m RefCell<World>, req: &Request<'_>) -> Leases<'m> {
        Leases {
            world,
            config: serde_json::from_slice(req.stdin).unwrap_or(Value::Null),
            container_id: req.env.container_id.clone(),
            ifname: req.env.ifname.clone(),
        }
    }

    /// Who leases: network, container ID, interface.
    fn owner(&self) -> (String, String, String) {
        (
            self.network(),
            self.container_id.clone(),
            self.ifname.clone(),
        )
    }

    /// Counts one run of the plugin.
    fn run(&self, command: &str) -> Result<std::cell::RefMut<'m, World>, CniError> {
        let mut world = self.world.borrow_mut();
        world
            .op(&format!("IPAM {command}"))
            .map_err(|fault| CniError::new(ErrorCode::from_u32(FAULT_CODE), fault.0))?;
        Ok(world)
    }

    fn network(&self) -> String {
        self.config["name"].as_str().unwrap_or_default().to_owned()
    }

    fn subnets(&self) -> Vec<IpNetwork> {
        let sets = self.config["ipam"]["ranges"].as_array().cloned();
        sets.unwrap_or_default()
            .iter()
            .filter_map(|set| set[0]["subnet"].as_str()?.parse().ok())
            .collect()
    }

    fn routes(&self) -> Vec<Route> {
        let routes = self.config["ipam"]["routes"].as_array().cloned();
        routes
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                let dst = r["dst"].as_str()?.parse().ok()?;
                let gw = r["gw"].as_str().and_then(|g| g.parse().ok());
                Some(Route::new(dst, gw))
            })
            .collect()
    }

    /// Runs the plugin's `command`, which makes `change`; a fault is the
    /// plugin's failure with [`FAULT_CODE`].
    fn apply<T>(
        &self,
        command: &str,
        change: impl FnOnce(&mut World) -> Result<T, CniError>,
    ) -> Result<T, CniError> {
        let mut world = self.world.borrow_mut();
        world
            .apply(&format!("IPAM {command}"), change)
            .map_err(|fault| CniError::new(ErrorCode::from_u32(FAULT_CODE), fault.0))?
    }

    fn add(&self) -> Result<CniResult, CniError> {
        let (owner, subnets) = (self.owner(), self.subnets());
        let ips = self.apply("ADD", |world| {
            subnets
                .iter()
                .map(|subnet| lease(world, &owner, *subnet))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(CniResult {
            ips,
            routes: self.routes(),
            ..CniResult::default()
        })
    }
}

/// `owner`'s address in `subnet`: the one it holds, else the first free one.
fn lease(
    world: &mut World,
    owner: &(String, String, String),
    subnet: IpNetwork,
) -> Result<IpConfig, CniError> {
    let leases = &mut world.state.leases;
    let held = leases
        .iter()
        .find(|(ip, o)| *o == owner && subnet.contains(**ip))
        .map(|(ip, _)| *ip);
    let ip = match held {
        Some(ip) => ip,
        None => {
            let free = (2..1000u32)
                .map(|n| nth(subnet, n))
                .find(|ip| !leases.contains_key(ip))
                .ok_or_else(|| CniError::internal("no IP addresses available"))?;
            leases.insert(free, owner.clone());
            free
        }
    };
    Ok(IpConfig {
        interface: None,
        address: IpNetwork::new(ip, subnet.prefix()).map_err(CniError::internal)?,
        gateway: Some(nth(subnet, 1)),
    })
}

/// The `n`th address of `subnet`.
fn nth(subnet: IpNetwork, n: u32) -> IpAddr {
    match subnet {
        IpNetwork::V4(v4) => IpAddr::from(Ipv4Addr::from(u32::from(v4.network()) + n)),
        IpNetwork::V6(v6) => IpAddr::from(Ipv6Addr::from(u128::from(v6.network()) + u128::from(n))),
    }
}

impl Ipam for Leases<'_> {
    fn start_add(&self, _plugin: &str) -> Pending<'_, Result<CniResult, CniError>> {
        Pending::ready(self.add())
    }

    fn start_del(&self, _plugin: &str) -> Pending<'_, Result<(), CniError>> {
        let owner = self.owner();
        Pending::ready(self.apply("DEL", |world| {
            world.state.leases.retain(|_, o| *o != owner);
            Ok(())
        }))
    }

    fn check(&self, _plugin: &str) -> Result<(), CniError> {
        let owner = self.owner();
        let world = self.run("CHECK")?;
        if world.state.leases.values().any(|o| *o == owner) {
            Ok(())
        } else {
            Err(CniError::internal("no lease"))
        }
    }

    fn gc(&self, _plugin: &str) -> Result<(), CniError> {
        self.run("GC").map(drop)
    }

    fn installed(&self, _plugin: &str) -> Result<(), CniError> {
        Ok(())
    }

    fn status(&self, _plugin: &str) -> Result<(), CniError> {
        self.run("STATUS").map(drop)
    }
}
