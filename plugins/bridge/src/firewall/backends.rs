//! Masquerade on the backend the config chose (`ipMasqBackend`), removed
//! from both: DEL and GC clean up rules either implementation made with
//! either backend, as upstream's do.

use super::helper::on_path;
use super::masq::Iptables;
use super::nft_masq::{self, Nftables};
use super::{Family, Firewall, FirewallError, PendingChange, Target};
use crate::config::MasqBackend;
use crate::pending::Pending;
use cni_types::config::Attachment;
use std::cell::OnceCell;

/// Masquerade through the chosen backend.
#[derive(Debug)]
pub struct Masquerade {
    backend: MasqBackend,
    chosen: OnceCell<MasqBackend>,
    iptables: Iptables,
    nftables: Nftables,
}

impl Masquerade {
    /// Masquerade through `backend`; `Auto` is resolved on first use.
    pub fn new(backend: MasqBackend) -> Masquerade {
        Masquerade {
            backend,
            chosen: OnceCell::new(),
            iptables: Iptables::default(),
            nftables: Nftables::default(),
        }
    }

    /// The backend in use: as configured, or for `Auto` iptables unless its
    /// helpers are missing and nf_tables answers.
    fn chosen(&self) -> &dyn Firewall {
        let chosen = *self.chosen.get_or_init(|| match self.backend {
            MasqBackend::Auto if !iptables_usable() && nft_masq::usable().is_ok() => {
                MasqBackend::Nftables
            }
            MasqBackend::Nftables => MasqBackend::Nftables,
            _ => MasqBackend::Iptables,
        });
        match chosen {
            MasqBackend::Nftables => &self.nftables,
            _ => &self.iptables,
        }
    }
}

/// Whether both `*-restore` helpers are on `PATH`.
fn iptables_usable() -> bool {
    ["iptables-restore", "ip6tables-restore"]
        .into_iter()
        .all(on_path)
}

/// An nftables failure, unless nf_tables does not answer at all (then
/// there is nothing of it to remove).
fn unless_unusable(outcome: Result<(), FirewallError>) -> Result<(), FirewallError> {
    match outcome {
        Err(_) if nft_masq::usable().is_err() => Ok(()),
        other => other,
    }
}

impl Firewall for Masquerade {
    fn prepare(&self, target: &Target, families: &[Family]) {
        self.chosen().prepare(target, families);
    }

    fn start_setup(&self, target: &Target) -> PendingChange<'_> {
        self.chosen().start_setup(target)
    }

    fn start_teardown(&self, target: &Target) -> PendingChange<'_> {
        let iptables = self.iptables.start_teardown(target);
        let nftables = self.nftables.start_teardown(target);
        Pending::later(move || {
            let nftables = unless_unusable(nftables.finish());
            FirewallError::combine(vec![iptables.finish(), nftables])
        })
    }

    fn check(&self, target: &Target) -> Result<(), FirewallError> {
        self.chosen().check(target)
    }

    fn collect(&self, network: &str, valid: &[Attachment]) -> Result<(), FirewallError> {
        let iptables = self.iptables.collect(network, valid);
        let nftables = unless_unusable(self.nftables.collect(network, valid));
        FirewallError::combine(vec![iptables, nftables])
    }

    fn available(&self) -> Result<(), String> {
        self.chosen().available()
    }
}
