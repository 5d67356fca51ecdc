//! The iptables backend without helper processes: on a node whose iptables
//! is iptables-nft, the reference's masquerade rules are written over
//! nf_tables netlink exactly as iptables-nft writes them (table `nat` of
//! family `ip` / `ip6`, the `CNI-…` chain, the same expressions and xtables
//! extensions; see [`cni_netlink::nftables::xtables`]). `iptables -S`,
//! `iptables-save` and the reference's `iptables -D` read them as their
//! own, and ours reads theirs.
//!
//! An ADD is one transaction for both families. A shape this module has
//! not proven identical (a comment over 255 bytes, a `/0` subnet, a
//! `POSTROUTING` chain iptables-nft would not have made) is
//! [`Applied::Unproven`]: the caller then runs `iptables-restore` instead.

use super::masq::{Presence, chain_name, comment};
use super::{Family, FirewallError};
use cni_netlink::Socket;
use cni_netlink::nftables::expr::{CmpOp, Expr, Field, Verdict};
use cni_netlink::nftables::{self as nft, BaseChain, Batch, xtables};
use ipnetwork::IpNetwork;
use std::path::Path;

/// iptables' `nat` table.
const TABLE: &str = "nat";
/// The builtin chain that receives the per-address jumps.
const POSTROUTING: &str = "POSTROUTING";
/// What a kernel answers when a chain made by `-N` exists already.
const EEXIST: i32 = 17;
/// What a kernel without nf_tables for a family answers (`EOPNOTSUPP`,
/// `EAFNOSUPPORT`): nothing of ours can be there.
const NO_FAMILY: [i32; 2] = [95, 97];

impl From<cni_netlink::Error> for FirewallError {
    fn from(err: cni_netlink::Error) -> FirewallError {
        FirewallError::Netlink(err.to_string())
    }
}

/// Whether this node's iptables is iptables-nft: both `*-restore` helpers
/// on `PATH` resolve to `xtables-nft-multi` (an iptables-legacy node's
/// resolve to `xtables-legacy-multi`, whose tables only those binaries can
/// write).
pub fn node_uses_nft() -> bool {
    ["iptables-restore", "ip6tables-restore"]
        .into_iter()
        .all(|program| resolved_on_path(program).is_some_and(|p| p.ends_with("xtables-nft-multi")))
}

/// The file `program` on `PATH` is, all links followed.
fn resolved_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .and_then(|found| Path::canonicalize(&found).ok())
}

/// The nf_tables family of an IP family.
fn nft_family(family: Family) -> nft::Family {
    match family {
        Family::V4 => nft::Family::Ip,
        Family::V6 => nft::Family::Ip6,
    }
}

/// What [`setup`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The rules are in place.
    Done,
    /// Nothing was changed: this shape is left to `iptables-restore`, for
    /// the reason given.
    Unproven(String),
}

/// One container's rules of one family, as expressions.
#[derive(Debug)]
struct FamilyRules {
    family: Family,
    /// `CNI-…` chain rules, then `POSTROUTING` jumps, without repeats.
    chain_rules: Vec<Vec<Expr>>,
    jumps: Vec<Vec<Expr>>,
}

/// The reference's rules for `addrs` (all of `family`): an `ACCEPT` per
/// subnet, one `MASQUERADE` except multicast, a jump per address; `None`
/// for a shape not proven identical to iptables-nft's.
fn family_rules(
    chain: &str,
    text: &str,
    family: Family,
    addrs: &[IpNetwork],
) -> Option<FamilyRules> {
    let tail = |verdict: Expr| -> Option<Vec<Expr>> {
        Some(vec![xtables::comment(text)?, Expr::Counter, verdict])
    };
    let with = |mut head: Vec<Expr>, verdict: Expr| {
        head.extend(tail(verdict)?);
        Some(head)
    };
    let (multicast, ipv6) = match family {
        Family::V4 => ("224.0.0.0/4", false),
        Family::V6 => ("ff00::/8", true),
    };
    let multicast: IpNetwork = multicast.parse().ok()?;
    let mut chain_rules = Vec::new();
    for addr in addrs {
        let subnet = IpNetwork::new(addr.network(), addr.prefix()).ok()?;
        let accept = xtables::address(Field::Destination, subnet, CmpOp::Eq)?;
        push_unique(
            &mut chain_rules,
            with(accept, Expr::Verdict(Verdict::Accept))?,
        );
    }
    let outside = xtables::address(Field::Destination, multicast, CmpOp::Neq)?;
    chain_rules.push(with(outside, xtables::masquerade(ipv6))?);
    let mut jumps = Vec::new();
    for addr in addrs {
        let host = IpNetwork::from(addr.ip());
        let source = xtables::address(Field::Source, host, CmpOp::Eq)?;
        let jump = Expr::Verdict(Verdict::Jump(chain.to_owned()));
        push_unique(&mut jumps, with(source, jump)?);
    }
    Some(FamilyRules {
        family,
        chain_rules,
        jumps,
    })
}

/// Appends `rule` unless it is there already (iptables' `AppendUnique`).
fn push_unique(rules: &mut Vec<Vec<Expr>>, rule: Vec<Expr>) {
    if !rules.contains(&rule) {
        rules.push(rule);
    }
}

/// What the `nat` table of one family holds of a container.
#[derive(Debug, Default)]
struct Found {
    /// The container's chain exists.
    chain: bool,
    /// `POSTROUTING` exists as iptables-nft makes it.
    postrouting: bool,
    /// `POSTROUTING` exists in another shape.
    foreign_postrouting: bool,
    /// Handles of `POSTROUTING` rules that jump (or go) to the chain.
    jumps: Vec<u64>,
}

/// Reads the `nat` table of `family` for the chain `chain`: both chains by
/// name, and `POSTROUTING`'s rules only when the chain exists (a jump to a
/// chain that does not exist cannot), so a first ADD costs the same next
/// to a thousand pods as on an empty node.
fn find(socket: &Socket, family: Family, chain: &str) -> Result<Found, FirewallError> {
    let family = nft_family(family);
    let absent = |err: &cni_netlink::Error| err.errno().is_some_and(|e| NO_FAMILY.contains(&e));
    let post = match nft::get_chain(socket, family, TABLE, POSTROUTING) {
        Err(err) if absent(&err) => return Ok(Found::default()),
        other => other?,
    };
    let proper = post.as_ref().map(|post| {
        post.base
            .as_ref()
            .is_some_and(|base| base.is(&BaseChain::NAT_POSTROUTING))
    });
    let mut found = Found {
        chain: nft::get_chain(socket, family, TABLE, chain)?.is_some(),
        postrouting: proper == Some(true),
        foreign_postrouting: proper == Some(false),
        jumps: Vec::new(),
    };
    if found.chain && post.is_some() {
        found.jumps = nft::list_rules(socket, family, TABLE, POSTROUTING)?
            .into_iter()
            .filter(|rule| rule.jump.as_deref() == Some(chain))
            .map(|rule| rule.handle)
            .collect();
    }
    Ok(found)
}

/// Adds to `batch` what makes `rules` the container's only rules in their
/// family, in iptables-nft's order (which is also the order `nft list`
/// shows the chains in): stale jumps deleted; the table if missing; the
/// chain created or emptied and its rules appended; `POSTROUTING` created
/// if missing and the jumps appended.
fn write_family(batch: &mut Batch, chain: &str, rules: &FamilyRules, found: &Found) {
    let family = nft_family(rules.family);
    for &handle in &found.jumps {
        batch.delete_rule(family, TABLE, POSTROUTING, handle);
    }
    if !found.postrouting {
        batch.ensure_table(family, TABLE);
    }
    if found.chain {
        batch.flush_chain(family, TABLE, chain);
    } else {
        batch.create_chain(family, TABLE, chain);
    }
    for rule in &rules.chain_rules {
        batch.append_xt_rule(family, TABLE, chain, rule);
    }
    if !found.postrouting {
        let base = Some(BaseChain::NAT_POSTROUTING);
        batch.add_chain(family, TABLE, POSTROUTING, base, None);
    }
    for rule in &rules.jumps {
        batch.append_xt_rule(family, TABLE, POSTROUTING, rule);
    }
}

/// The rules of `addresses` per family; `None` if a shape is unproven.
fn all_rules(
    network: &str,
    container_id: &str,
    addresses: &[IpNetwork],
) -> Option<Vec<FamilyRules>> {
    let chain = chain_name(network, container_id);
    let text = comment(network, container_id);
    Family::ALL
        .into_iter()
        .map(|family| {
            let addrs: Vec<IpNetwork> = addresses
                .iter()
                .filter(|a| Family::of(a) == family)
                .copied()
                .collect();
            (family, addrs)
        })
        .filter(|(_, addrs)| !addrs.is_empty())
        .map(|(family, addrs)| family_rules(&chain, &text, family, &addrs))
        .collect()
}

/// What [`look_up`] read: the socket, the chain, and what each family's
/// `nat` table holds of it (or why it could not be read).
#[derive(Debug)]
pub struct LookedUp {
    socket: Socket,
    chain: String,
    found: Vec<(Family, Found)>,
}

/// Reads what the `nat` tables of `families` hold of a container's chain,
/// before its addresses are known, so that [`setup_after`] has only its
/// transaction left. Changes nothing.
///
/// # Errors
/// [`FirewallError::Netlink`] when nf_tables cannot be read.
pub fn look_up(
    network: &str,
    container_id: &str,
    families: &[Family],
) -> Result<LookedUp, FirewallError> {
    let socket = Socket::open_netfilter()?;
    let chain = chain_name(network, container_id);
    let found = families
        .iter()
        .map(|&family| Ok((family, find(&socket, family, &chain)?)))
        .collect::<Result<_, FirewallError>>()?;
    Ok(LookedUp {
        socket,
        chain,
        found,
    })
}

/// Masquerades `addresses` of a container as the reference's iptables
/// backend does, both families in one transaction; a repeated setup
/// replaces the container's rules. No addresses: nothing is done.
///
/// # Errors
/// [`FirewallError::Netlink`] when nf_tables refuses; nothing was applied.
pub fn setup(
    network: &str,
    container_id: &str,
    addresses: &[IpNetwork],
) -> Result<Applied, FirewallError> {
    setup_after(None, network, container_id, addresses)
}

/// [`setup`] after `looked_up` (a [`look_up`] of this container, made
/// earlier; what it lacks is read now).
///
/// # Errors
/// As [`setup`].
pub fn setup_after(
    looked_up: Option<Result<LookedUp, FirewallError>>,
    network: &str,
    container_id: &str,
    addresses: &[IpNetwork],
) -> Result<Applied, FirewallError> {
    let Some(rules) = all_rules(network, container_id, addresses) else {
        return Ok(Applied::Unproven(
            "a comment over 255 bytes or a /0 subnet".to_owned(),
        ));
    };
    if rules.is_empty() {
        return Ok(Applied::Done);
    }
    let chain = chain_name(network, container_id);
    let mut looked_up = match looked_up {
        Some(Ok(looked_up)) if looked_up.chain == chain => looked_up,
        _ => look_up(network, container_id, &[])?,
    };
    // A concurrent setup of the same container may create the chain
    // between the lookup and our batch; then look again, once.
    for attempt in 0.. {
        let mut batch = Batch::new();
        for family_rules in &rules {
            let family = family_rules.family;
            let found = match looked_up.found.iter().position(|(f, _)| *f == family) {
                Some(i) => looked_up.found.remove(i).1,
                None => find(&looked_up.socket, family, &chain)?,
            };
            if found.foreign_postrouting {
                return Ok(Applied::Unproven(format!(
                    "{family} {TABLE} {POSTROUTING} is not iptables-nft's base chain"
                )));
            }
            write_family(&mut batch, &chain, family_rules, &found);
        }
        match batch.send(&looked_up.socket) {
            Err(err) if err.errno() == Some(EEXIST) && attempt == 0 => looked_up.found.clear(),
            sent => return sent.map(|()| Applied::Done).map_err(FirewallError::from),
        }
    }
    Ok(Applied::Done)
}

/// Removes a container's rules in both families, whichever implementation
/// made them: every `POSTROUTING` rule that jumps to its chain (whatever
/// its address or form), then the chain. Needs no addresses; nothing there
/// is success.
///
/// # Errors
/// [`FirewallError::Netlink`] when a listing or the transaction fails.
pub fn teardown(network: &str, container_id: &str) -> Result<(), FirewallError> {
    let chain = chain_name(network, container_id);
    let socket = Socket::open_netfilter()?;
    let mut batch = Batch::new();
    for family in Family::ALL {
        let found = find(&socket, family, &chain)?;
        let nft_family = nft_family(family);
        for &handle in &found.jumps {
            batch.delete_rule(nft_family, TABLE, POSTROUTING, handle);
        }
        if found.chain {
            batch.flush_chain(nft_family, TABLE, &chain);
            batch.delete_chain(nft_family, TABLE, &chain);
        }
    }
    batch.send(&socket).map_err(FirewallError::from)
}

/// In which families the container's chain exists.
///
/// # Errors
/// [`FirewallError::Netlink`] when a listing fails.
pub fn exists(network: &str, container_id: &str) -> Result<Presence, FirewallError> {
    let chain = chain_name(network, container_id);
    let socket = Socket::open_netfilter()?;
    let mut presence = Presence::default();
    for family in Family::ALL {
        let present = match nft::get_chain(&socket, nft_family(family), TABLE, &chain) {
            Err(err) if err.errno().is_some_and(|e| NO_FAMILY.contains(&e)) => false,
            other => other?.is_some(),
        };
        presence.set(family, present);
    }
    Ok(presence)
}

/// Container IDs with rules of `network` in either family, by the comment
/// every rule carries.
///
/// # Errors
/// [`FirewallError::Netlink`] when a listing fails.
pub fn attached_containers(network: &str) -> Result<Vec<String>, FirewallError> {
    let socket = Socket::open_netfilter()?;
    let mut ids: Vec<String> = Vec::new();
    for family in Family::ALL {
        for rule in nft::list_table_rules(&socket, nft_family(family), TABLE)? {
            let text = rule.xt_comment.or(rule.comment).unwrap_or_default();
            if let Some(id) = id_in_comment(&text, network)
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The container ID of a `name: "<network>" id: "<id>"` comment of
/// `network`.
fn id_in_comment(text: &str, network: &str) -> Option<String> {
    let empty = comment(network, "");
    let open = empty.strip_suffix('"')?;
    let id = text.strip_prefix(open)?.strip_suffix('"')?;
    Some(id.to_owned())
}

#[cfg(test)]
mod tests;
