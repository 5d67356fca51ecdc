//! IP masquerade through nf_tables netlink, in upstream's layout (the
//! reference plugins' `ipMasqBackend: "nftables"`, v1.6 and later), so that
//! either implementation's DEL and GC remove the other's rules:
//!
//! ```text
//! table inet cni_plugins_masquerade {
//!     comment "Masquerading for plugins from github.com/containernetworking/plugins"
//!     chain masq_checks {
//!         comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
//!         ip saddr 10.81.0.2 ip daddr != 10.81.0.0/24 masquerade comment "<prefix>, net: upnet, if: eth0, id: up1"
//!         ip6 saddr fd81::2 ip6 daddr != fd81::/64 masquerade comment "<prefix>, net: upnet, if: eth0, id: up1"
//!     }
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip daddr 224.0.0.0/4 return
//!         ip6 daddr ff00::/8 return
//!         goto masq_checks
//!     }
//! }
//! ```
//!
//! where `<prefix>` is 16 hex characters of sha512(network), `-`, and 16 of
//! sha512(`ifname:containerID`). The table and chains are shared by every
//! attachment; a setup rebuilds `postrouting` and replaces the attachment's
//! rules (found by their comment's prefix) in one transaction, which the
//! kernel applies all or nothing. No helper process runs.

use super::{Firewall, FirewallError, PendingChange, Target};
use crate::pending::Pending;
use cni_netlink::Socket;
use cni_netlink::nftables::expr::{CmpOp, Expr, Field, Verdict, address_match};
use cni_netlink::nftables::{BaseChain, Batch, Family, list_chains, list_rules};
use cni_types::config::Attachment;
use ipnetwork::IpNetwork;
use sha2::{Digest, Sha512};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The shared table.
pub const TABLE: &str = "cni_plugins_masquerade";
const TABLE_COMMENT: &str = "Masquerading for plugins from github.com/containernetworking/plugins";
/// The chain of the per-address rules.
pub const MASQ_CHAIN: &str = "masq_checks";
const MASQ_CHAIN_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// The base chain.
pub const POSTROUTING: &str = "postrouting";
/// knftables' longest comment.
const MAX_COMMENT: usize = 128;

/// The first 16 hex characters of sha512(`text`).
fn short_hash(text: &str) -> String {
    let digest = Sha512::digest(text.as_bytes());
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// The prefix of every comment of one attachment's rules.
pub fn comment_prefix(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        short_hash(network),
        short_hash(&format!("{ifname}:{container_id}"))
    )
}

/// One attachment's rule comment: the prefix, then the network, interface
/// and container ID with `"` removed, cut to 128 characters.
pub fn comment(network: &str, ifname: &str, container_id: &str) -> String {
    let clean = |text: &str| text.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        comment_prefix(network, ifname, container_id),
        clean(network),
        clean(ifname),
        clean(container_id)
    );
    if comment.len() > MAX_COMMENT {
        let mut end = MAX_COMMENT;
        while !comment.is_char_boundary(end) {
            end -= 1;
        }
        comment.truncate(end);
    }
    comment
}

/// `ip|ip6 saddr <address> ip|ip6 daddr != <network> masquerade`.
fn masquerade_rule(address: IpNetwork) -> Vec<Expr> {
    let host = IpNetwork::from(address.ip());
    let subnet = IpNetwork::new(address.network(), address.prefix()).unwrap_or(address);
    // One `meta nfproto` per rule, before its first address match, as nft.
    let mut rule = address_match(true, Field::Source, host, CmpOp::Eq);
    rule.extend(address_match(false, Field::Destination, subnet, CmpOp::Neq));
    rule.push(Expr::Masquerade);
    rule
}

/// `postrouting`'s three rules: multicast returns, the rest goes to the checks.
fn postrouting_rules() -> Vec<Vec<Expr>> {
    let multicast = [
        IpNetwork::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 4),
        IpNetwork::new(IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)), 8),
    ];
    let returns = multicast.into_iter().flatten().map(|network| {
        let mut rule = address_match(true, Field::Destination, network, CmpOp::Eq);
        rule.push(Expr::Verdict(Verdict::Return));
        rule
    });
    let goto = vec![Expr::Verdict(Verdict::Goto(MASQ_CHAIN.to_owned()))];
    returns.chain(std::iter::once(goto)).collect()
}

/// What of the shared layout is already in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// `masq_checks` exists (and so the table).
    pub checks: bool,
    /// `postrouting` exists with its three rules.
    pub postrouting: bool,
}

/// The transaction that sets `target` up: the table and chains declared and
/// `postrouting` rebuilt unless `layout` says they are in place, the rules
/// with handles `stale` deleted, and one rule per address added.
///
/// Upstream declares and rebuilds everything on every ADD. The result is
/// the same, but a transaction that deletes or updates anything has the
/// kernel free it after an RCU grace period, which the closing of the
/// socket then waits for (about 8 ms here); one that only adds rules does
/// not.
pub fn setup_batch(target: &Target, layout: Layout, stale: &[u64]) -> Batch {
    let mut batch = Batch::new();
    if !layout.checks {
        batch.add_table(Family::Inet, TABLE, Some(TABLE_COMMENT));
        batch.add_chain(
            Family::Inet,
            TABLE,
            MASQ_CHAIN,
            None,
            Some(MASQ_CHAIN_COMMENT),
        );
    }
    if !layout.postrouting {
        batch.add_table(Family::Inet, TABLE, Some(TABLE_COMMENT));
        let hook = Some(BaseChain::NAT_POSTROUTING);
        batch.add_chain(Family::Inet, TABLE, POSTROUTING, hook, None);
        batch.flush_chain(Family::Inet, TABLE, POSTROUTING);
        for rule in postrouting_rules() {
            batch.add_rule(Family::Inet, TABLE, POSTROUTING, &rule, None);
        }
    }
    for handle in stale {
        batch.delete_rule(Family::Inet, TABLE, MASQ_CHAIN, *handle);
    }
    let comment = comment(&target.network, &target.ifname, &target.container_id);
    for address in &target.addresses {
        let rule = masquerade_rule(*address);
        batch.add_rule(Family::Inet, TABLE, MASQ_CHAIN, &rule, Some(&comment));
    }
    batch
}

/// What of the shared layout is in place.
fn layout(socket: &Socket) -> Result<Layout, FirewallError> {
    let chains = list_chains(socket, Family::Inet, TABLE).map_err(FirewallError::from)?;
    let checks = chains
        .iter()
        .any(|c| c.name == MASQ_CHAIN && c.base.is_none());
    let hooked = chains.iter().any(|c| {
        c.name == POSTROUTING
            && c.base
                .as_ref()
                .is_some_and(|b| b.is(&BaseChain::NAT_POSTROUTING))
    });
    let postrouting = hooked
        && list_rules(socket, Family::Inet, TABLE, POSTROUTING)
            .map_err(FirewallError::from)?
            .len()
            == postrouting_rules().len();
    Ok(Layout {
        checks,
        postrouting,
    })
}

/// The handles of `target`'s rules in `masq_checks` (none without the
/// table).
fn attachment_rules(socket: &Socket, target: &Target) -> Result<Vec<u64>, FirewallError> {
    let prefix = comment_prefix(&target.network, &target.ifname, &target.container_id);
    let rules = list_rules(socket, Family::Inet, TABLE, MASQ_CHAIN).map_err(FirewallError::from)?;
    Ok(rules
        .into_iter()
        .filter(|rule| {
            rule.comment
                .as_deref()
                .is_some_and(|c| c.starts_with(&prefix))
        })
        .map(|rule| rule.handle)
        .collect())
}

/// What [`look_up`] read for a setup: the socket, the shared layout and
/// the attachment's rules already there.
#[derive(Debug)]
pub struct LookedUp {
    socket: Socket,
    layout: Layout,
    stale: Vec<u64>,
}

/// Reads what a setup of `target`'s attachment needs to know, before its
/// addresses are known (while IPAM runs). Changes nothing.
///
/// # Errors
/// [`FirewallError::Netlink`] when nf_tables cannot be read.
pub fn look_up(target: &Target) -> Result<LookedUp, FirewallError> {
    let socket = Socket::open_netfilter().map_err(FirewallError::from)?;
    let layout = layout(&socket)?;
    let stale = attachment_rules(&socket, target)?;
    Ok(LookedUp {
        socket,
        layout,
        stale,
    })
}

/// Masquerades `target`'s addresses, replacing its rules. Nothing is done
/// without addresses.
///
/// # Errors
/// [`FirewallError::Netlink`] when nf_tables cannot be reached or refuses
/// the transaction (then nothing of it was applied).
pub fn setup(target: &Target) -> Result<(), FirewallError> {
    setup_after(target, None)
}

/// [`setup`] after `looked_up`, a [`look_up`] of the same attachment made
/// earlier (read again when missing or failed).
///
/// # Errors
/// As [`setup`].
pub fn setup_after(
    target: &Target,
    looked_up: Option<Result<LookedUp, FirewallError>>,
) -> Result<(), FirewallError> {
    if target.addresses.is_empty() {
        return Ok(());
    }
    let looked_up = match looked_up {
        Some(Ok(looked_up)) => looked_up,
        _ => look_up(target)?,
    };
    setup_batch(target, looked_up.layout, &looked_up.stale)
        .send(&looked_up.socket)
        .map_err(FirewallError::from)
}

/// Removes `target`'s rules, whichever implementation made them (found by
/// the comment's prefix, as upstream deletes them). The table and chains
/// stay. Nothing there is success.
///
/// # Errors
/// [`FirewallError::Netlink`] when nf_tables cannot be reached or refuses.
pub fn teardown(target: &Target) -> Result<(), FirewallError> {
    let socket = Socket::open_netfilter().map_err(FirewallError::from)?;
    let mut batch = Batch::new();
    for handle in attachment_rules(&socket, target)? {
        batch.delete_rule(Family::Inet, TABLE, MASQ_CHAIN, handle);
    }
    batch.send(&socket).map_err(FirewallError::from)
}

/// The handles of `network`'s rules in `masq_checks` whose attachment is
/// not in `valid`, found by the comments' prefixes: the network's hash, then
/// the attachment's (whole even where the comment was cut).
fn stale_rules(
    socket: &Socket,
    network: &str,
    valid: &[Attachment],
) -> Result<Vec<u64>, FirewallError> {
    let network_part = format!("{}-", short_hash(network));
    let kept: Vec<String> = valid
        .iter()
        .map(|a| comment_prefix(network, &a.ifname, &a.container_id))
        .collect();
    let rules = list_rules(socket, Family::Inet, TABLE, MASQ_CHAIN).map_err(FirewallError::from)?;
    Ok(rules
        .into_iter()
        .filter(|rule| {
            rule.comment.as_deref().is_some_and(|comment| {
                comment.starts_with(&network_part)
                    && !kept
                        .iter()
                        .any(|prefix| comment.starts_with(prefix.as_str()))
            })
        })
        .map(|rule| rule.handle)
        .collect())
}

/// Whether nf_tables answers in this namespace: a listing of the table
/// succeeds, whether or not it exists.
///
/// # Errors
/// Why it does not.
pub fn usable() -> Result<(), String> {
    Socket::open_netfilter()
        .and_then(|socket| list_rules(&socket, Family::Inet, TABLE, MASQ_CHAIN))
        .map(drop)
        .map_err(|err| format!("nf_tables is not usable: {err}"))
}

/// Masquerade through nf_tables netlink: the [`Firewall`] of
/// `ipMasqBackend: "nftables"`. The transaction itself takes a fraction of
/// a millisecond, but closing the socket after a commit waits for the
/// kernel to free the transaction after an RCU grace period (about 8 ms
/// here), so each change runs on a thread of its own and overlaps the rest
/// of the command, as the iptables helpers do. What a setup reads first is
/// read while IPAM runs ([`Firewall::prepare`]).
#[derive(Debug, Default)]
pub struct Nftables {
    /// The lookup started by [`Firewall::prepare`] for the next setup.
    looked_up: RefCell<Option<Pending<'static, Result<LookedUp, FirewallError>>>>,
}

impl Drop for Nftables {
    /// A lookup for a setup that never came is waited for.
    fn drop(&mut self) {
        if let Some(looked_up) = self.looked_up.get_mut().take() {
            drop(looked_up.finish());
        }
    }
}

impl Firewall for Nftables {
    fn prepare(&self, target: &Target, _families: &[super::Family]) {
        let target = target.clone();
        let looked_up = Pending::on_thread(move || look_up(&target));
        *self.looked_up.borrow_mut() = Some(looked_up);
    }

    fn start_setup(&self, target: &Target) -> PendingChange<'_> {
        let target = target.clone();
        let looked_up = self.looked_up.take().map(Pending::finish);
        Pending::on_thread(move || setup_after(&target, looked_up))
    }

    fn start_teardown(&self, target: &Target) -> PendingChange<'_> {
        let target = target.clone();
        Pending::on_thread(move || teardown(&target))
    }

    fn check(&self, target: &Target) -> Result<(), FirewallError> {
        let socket = Socket::open_netfilter().map_err(FirewallError::from)?;
        if attachment_rules(&socket, target)?.len() >= target.addresses.len() {
            return Ok(());
        }
        Err(FirewallError::Missing(format!(
            "nftables masquerade rules {} for addresses {:?} not found",
            comment_prefix(&target.network, &target.ifname, &target.container_id),
            target
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        )))
    }

    fn collect(&self, network: &str, valid: &[Attachment]) -> Result<(), FirewallError> {
        let socket = Socket::open_netfilter().map_err(FirewallError::from)?;
        let mut batch = Batch::new();
        for handle in stale_rules(&socket, network, valid)? {
            batch.delete_rule(Family::Inet, TABLE, MASQ_CHAIN, handle);
        }
        batch.send(&socket).map_err(FirewallError::from)
    }

    fn available(&self) -> Result<(), String> {
        usable().map_err(|why| format!("ipMasqBackend is nftables but {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_upstreams() {
        assert_eq!(
            comment_prefix("upnet", "eth0", "up1"),
            "a545f43c8324953b-f5c4d0d7605f51a7"
        );
        assert_eq!(
            comment_prefix("mynet", "eth0", "abc123"),
            "d23676b4f2d9fe04-ebce0e3dd4dafae3"
        );
        assert_eq!(
            comment("upnet", "eth0", "up1"),
            "a545f43c8324953b-f5c4d0d7605f51a7, net: upnet, if: eth0, id: up1"
        );
        assert_eq!(comment("a\"b", "eth0", "x").matches('"').count(), 0);
        let long = comment("n", "eth0", &"c".repeat(200));
        assert_eq!(long.len(), 128);
        assert!(long.starts_with(&comment_prefix("n", "eth0", &"c".repeat(200))));
    }

    #[test]
    fn a_masquerade_rule_matches_the_host_then_leaves_its_subnet() {
        let rule = masquerade_rule("10.81.0.2/24".parse().unwrap());
        assert_eq!(rule.len(), 7, "{rule:?}");
        assert_eq!(rule.last(), Some(&Expr::Masquerade));
        assert_eq!(
            rule[3],
            Expr::Cmp {
                op: CmpOp::Eq,
                data: vec![10, 81, 0, 2]
            }
        );
        assert_eq!(
            rule[5],
            Expr::Cmp {
                op: CmpOp::Neq,
                data: vec![10, 81, 0]
            }
        );
    }
}
