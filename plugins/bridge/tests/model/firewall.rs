//! The model's firewall: masquerade chains per family (each family's batch
//! atomic, as one `iptables-restore` is) and the spoof check's rules (one
//! atomic transaction, as one nf_tables batch is).

use super::World;
use bridge::firewall::{Family, Firewall, FirewallError, InFamily, PendingChange, Target};
use bridge::masq::chain_name;
use bridge::pending::Pending;
use cni_types::config::Attachment;
use ipnetwork::IpNetwork;
use std::cell::RefCell;

/// One family's `CNI-…` chain and the jumps to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqChain {
    /// The network its comment names.
    pub network: String,
    /// The container its comment names.
    pub container_id: String,
    /// The subnets accepted and the addresses jumping to the chain.
    pub addresses: Vec<IpNetwork>,
}

/// One attachment's spoof check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoofRules {
    /// The host veth its base-chain rule matches.
    pub host_veth: String,
    /// The MAC it lets through.
    pub mac: String,
}

fn injected(helper: &'static str, family: Option<Family>, why: String) -> FirewallError {
    FirewallError::Failed {
        command: helper.to_owned(),
        family: InFamily(family),
        status: "exit status 1".to_owned(),
        stderr: why,
    }
}

fn ipv6(family: Family) -> bool {
    family == Family::V6
}

/// Masquerade.
pub struct Masquerade<'m>(pub &'m RefCell<World>);

impl Masquerade<'_> {
    /// One family's batch: `change` applies it unless the fault hits.
    fn batch(&self, family: Family, change: impl FnOnce(&mut World)) -> Result<(), FirewallError> {
        let mut world = self.0.borrow_mut();
        world
            .apply(&format!("iptables-restore {family}"), change)
            .map_err(|fault| injected("iptables-restore", Some(family), fault.0))
    }
}

impl Firewall for Masquerade<'_> {
    fn start_setup(&self, target: &Target) -> PendingChange<'_> {
        let chain = chain_name(&target.network, &target.container_id);
        let results = Family::ALL
            .into_iter()
            .map(|family| {
                let addresses: Vec<IpNetwork> = target
                    .addresses
                    .iter()
                    .filter(|a| Family::of(a) == family)
                    .copied()
                    .collect();
                if addresses.is_empty() {
                    return Ok(());
                }
                self.batch(family, |world| {
                    let rules = MasqChain {
                        network: target.network.clone(),
                        container_id: target.container_id.clone(),
                        addresses,
                    };
                    world
                        .state
                        .masquerade
                        .insert((ipv6(family), chain.clone()), rules);
                })
            })
            .collect();
        Pending::ready(FirewallError::combine(results))
    }

    fn start_teardown(&self, target: &Target) -> PendingChange<'_> {
        let chain = chain_name(&target.network, &target.container_id);
        let results = Family::ALL
            .into_iter()
            .map(|family| {
                self.batch(family, |world| {
                    world
                        .state
                        .masquerade
                        .remove(&(ipv6(family), chain.clone()));
                })
            })
            .collect();
        Pending::ready(FirewallError::combine(results))
    }

    fn check(&self, target: &Target) -> Result<(), FirewallError> {
        let chain = chain_name(&target.network, &target.container_id);
        let world = self.0.borrow();
        match target.addresses.iter().find(|a| {
            let key = (ipv6(Family::of(a)), chain.clone());
            !world.state.masquerade.contains_key(&key)
        }) {
            None => Ok(()),
            Some(a) => Err(FirewallError::Missing(format!("no chain for {a}"))),
        }
    }

    fn collect(&self, network: &str, valid: &[Attachment]) -> Result<(), FirewallError> {
        let mut world = self.0.borrow_mut();
        world
            .apply("iptables -S", |world| {
                world.state.masquerade.retain(|_, chain| {
                    chain.network != network
                        || valid.iter().any(|a| a.container_id == chain.container_id)
                });
            })
            .map_err(|fault| injected("iptables -t nat -S", None, fault.0))
    }

    fn available(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The MAC spoof check.
pub struct SpoofCheck<'m>(pub &'m RefCell<World>);

impl SpoofCheck<'_> {
    fn batch(&self, change: impl FnOnce(&mut World)) -> PendingChange<'_> {
        let mut world = self.0.borrow_mut();
        let outcome = world
            .apply("nf_tables spoof check", change)
            .map_err(|fault| injected("nf_tables", None, fault.0));
        Pending::ready(outcome)
    }
}

impl Firewall for SpoofCheck<'_> {
    fn start_setup(&self, target: &Target) -> PendingChange<'_> {
        self.batch(|world| {
            world.state.spoof_table = true;
            let key = (target.container_id.clone(), target.ifname.clone());
            let rules = SpoofRules {
                host_veth: target.host_veth.clone(),
                mac: target.mac.clone(),
            };
            world.state.spoof_rules.insert(key, rules);
        })
    }

    fn start_teardown(&self, target: &Target) -> PendingChange<'_> {
        self.batch(|world| {
            let key = (target.container_id.clone(), target.ifname.clone());
            world.state.spoof_rules.remove(&key);
        })
    }

    fn check(&self, _target: &Target) -> Result<(), FirewallError> {
        Ok(())
    }

    fn collect(&self, _network: &str, _valid: &[Attachment]) -> Result<(), FirewallError> {
        Ok(())
    }

    fn available(&self) -> Result<(), String> {
        Ok(())
    }
}
