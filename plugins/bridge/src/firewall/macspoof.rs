//! MAC spoof check for the bridge plugin (`macspoofchk`): frames entering the bridge
//! from the container's veth must carry the container interface's MAC.
//!
//! The objects are the reference plugin's, in the nftables **bridge** family:
//!
//! ```text
//! table bridge nat {
//!     chain PREROUTING {
//!         type filter hook prerouting priority dstnat; policy accept;
//!         iifname "<host veth>" jump cni-br-iface-<id>-<if> comment "macspoofchk-<id>-<if>"
//!     }
//!     chain cni-br-iface-<id>-<if> {
//!         jump cni-br-iface-<id>-<if>-mac comment "macspoofchk-<id>-<if>"
//!     }
//!     chain cni-br-iface-<id>-<if>-mac {
//!         ether saddr <container MAC> return comment "macspoofchk-<id>-<if>"
//!         drop comment "macspoofchk-<id>-<if>"
//!     }
//! }
//! ```
//!
//! (`nft list` indents with tabs), with the expressions `nft` writes for them, so either
//! implementation's DEL removes what the other's ADD created. The table and the base chain
//! are shared by every attachment and never removed.
//!
//! Every change is one nf_tables netlink transaction, in-process: no `nft` process runs. A
//! setup first lists the base chain's rules with the attachment's comment (their handles),
//! which nftables deletes only by handle, and replaces them.

use super::{Firewall, FirewallError, PendingChange, Target};
use crate::pending::Pending;
use cni_netlink::Socket;
use cni_netlink::nftables::expr::{CmpOp, Expr, MetaKey, PayloadBase, Verdict};
use cni_netlink::nftables::{BaseChain, Batch, Family, list_chains, list_rules};
use cni_types::config::Attachment;

/// The table shared by every attachment.
const TABLE: &str = "nat";
/// The base chain shared by every attachment.
const BASE_CHAIN: &str = "PREROUTING";
/// `type filter hook prerouting priority dstnat` in the bridge family.
const PREROUTING: BaseChain = BaseChain {
    kind: "filter",
    hook: 0,
    priority: -300,
};
/// The length of an interface name as `iifname` compares it (`IFNAMSIZ`).
const IFNAMSIZ: usize = 16;

/// The errnos that say the bridge family's table cannot exist here (no
/// table, no bridge family, no nf_tables): nothing of ours can be there.
const ABSENT: [i32; 3] = [2, 95, 97];

/// The names of one attachment's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Names {
    /// `cni-br-iface-<containerID>-<ifname>`.
    iface_chain: String,
    /// `cni-br-iface-<containerID>-<ifname>-mac`.
    mac_chain: String,
    /// `macspoofchk-<containerID>-<ifname>`, on every rule.
    comment: String,
}

impl Names {
    /// The names for `container_id` and `ifname`, as the reference derives them.
    fn new(container_id: &str, ifname: &str) -> Self {
        let iface_chain = format!("cni-br-iface-{container_id}-{ifname}");
        Self {
            mac_chain: format!("{iface_chain}-mac"),
            iface_chain,
            comment: format!("macspoofchk-{container_id}-{ifname}"),
        }
    }

    /// The four rules, in the reference's order: chain and expressions.
    fn rules(&self, host_veth: &str, mac: [u8; 6]) -> [(&str, Vec<Expr>); 4] {
        let mut name = host_veth.as_bytes().to_vec();
        name.resize(IFNAMSIZ, 0);
        let jump = |chain: &str| Expr::Verdict(Verdict::Jump(chain.to_owned()));
        [
            (
                BASE_CHAIN,
                vec![
                    Expr::Meta(MetaKey::IifName),
                    Expr::Cmp {
                        op: CmpOp::Eq,
                        data: name,
                    },
                    jump(&self.iface_chain),
                ],
            ),
            (&self.iface_chain, vec![jump(&self.mac_chain)]),
            (
                &self.mac_chain,
                vec![
                    Expr::Payload {
                        base: PayloadBase::LinkLayer,
                        offset: 6,
                        len: 6,
                    },
                    Expr::Cmp {
                        op: CmpOp::Eq,
                        data: mac.to_vec(),
                    },
                    Expr::Verdict(Verdict::Return),
                ],
            ),
            (&self.mac_chain, vec![Expr::Verdict(Verdict::Drop)]),
        ]
    }
}

/// What the table holds of one attachment.
#[derive(Debug, Default, PartialEq, Eq)]
struct Present {
    /// The base chain exists as the reference makes it (and so the table).
    base_chain: bool,
    /// Handles of the base-chain rules with our comment.
    base_rules: Vec<u64>,
    /// Whether the iface chain exists.
    iface_chain: bool,
    /// Whether the mac chain exists.
    mac_chain: bool,
}

impl Present {
    /// The attachment's two chains, iface chain first, with whether each is
    /// there.
    fn chains<'n>(&self, names: &'n Names) -> [(bool, &'n str); 2] {
        [
            (self.iface_chain, &names.iface_chain),
            (self.mac_chain, &names.mac_chain),
        ]
    }
}

/// Finds the attachment's objects; nothing where the table cannot exist.
fn present(socket: &Socket, names: &Names) -> Result<Present, FirewallError> {
    let absent = |err: &cni_netlink::Error| err.errno().is_some_and(|e| ABSENT.contains(&e));
    let rules = match list_rules(socket, Family::Bridge, TABLE, BASE_CHAIN) {
        Err(err) if absent(&err) => return Ok(Present::default()),
        other => other.map_err(FirewallError::from)?,
    };
    let chains = list_chains(socket, Family::Bridge, TABLE).map_err(FirewallError::from)?;
    let named = |name: &str| chains.iter().any(|c| c.name == name);
    Ok(Present {
        base_chain: chains
            .iter()
            .any(|c| c.name == BASE_CHAIN && c.base.as_ref().is_some_and(|b| b.is(&PREROUTING))),
        base_rules: rules
            .into_iter()
            .filter(|rule| rule.comment.as_deref() == Some(names.comment.as_str()))
            .map(|rule| rule.handle)
            .collect(),
        iface_chain: named(&names.iface_chain),
        mac_chain: named(&names.mac_chain),
    })
}

/// The setup transaction: the table and base chain declared unless
/// there, the stale base-chain rules deleted, both chains declared (and
/// emptied if they were there), and the four rules added. A first setup
/// only adds, so the kernel has nothing to free after an RCU grace period,
/// which closing the socket would wait for (see
/// [`super::nft_masq::setup_batch`]).
fn setup_batch(names: &Names, host_veth: &str, mac: [u8; 6], present: &Present) -> Batch {
    let mut batch = Batch::new();
    if !present.base_chain {
        batch.add_table(Family::Bridge, TABLE, None);
        batch.add_chain(Family::Bridge, TABLE, BASE_CHAIN, Some(PREROUTING), None);
    }
    for handle in &present.base_rules {
        batch.delete_rule(Family::Bridge, TABLE, BASE_CHAIN, *handle);
    }
    for (there, chain) in present.chains(names) {
        if there {
            batch.flush_chain(Family::Bridge, TABLE, chain);
        } else {
            batch.add_chain(Family::Bridge, TABLE, chain, None, None);
        }
    }
    for (chain, exprs) in names.rules(host_veth, mac) {
        batch.add_rule(Family::Bridge, TABLE, chain, &exprs, Some(&names.comment));
    }
    batch
}

/// The teardown transaction: the base-chain rules, then the iface chain
/// (whose rule keeps the mac chain in use), then the mac chain; only what
/// is there.
fn teardown_batch(names: &Names, present: &Present) -> Batch {
    let mut batch = Batch::new();
    for handle in &present.base_rules {
        batch.delete_rule(Family::Bridge, TABLE, BASE_CHAIN, *handle);
    }
    for (there, chain) in present.chains(names) {
        if there {
            batch.delete_chain(Family::Bridge, TABLE, chain);
        }
    }
    batch
}

/// Parses `aa:bb:cc:dd:ee:ff`.
fn parse_mac(text: &str) -> Result<[u8; 6], FirewallError> {
    crate::config::parse_mac(text)
        .ok_or_else(|| FirewallError::Netlink(format!("invalid MAC address \"{text}\"")))
}

/// Lets only frames with source `mac` in from `host_veth`, the bridge port of the
/// attachment `container_id`/`ifname`.
///
/// Creates the table and base chain unless they exist, the attachment's two chains and
/// its four rules. Calling it again for the same attachment replaces its base-chain
/// rule(s) and refills both chains, so exactly one set of rules remains.
///
/// # Errors
///
/// [`FirewallError::Netlink`] when nf_tables refuses the transaction (for example
/// because the kernel has no bridge-family nf_tables); it is atomic, so a failure
/// changes nothing.
pub fn setup(
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: &str,
) -> Result<(), FirewallError> {
    let names = Names::new(container_id, ifname);
    let mac = parse_mac(mac)?;
    let socket = Socket::open_netfilter().map_err(FirewallError::from)?;
    let present = present(&socket, &names)?;
    setup_batch(&names, host_veth, mac, &present)
        .send(&socket)
        .map_err(FirewallError::from)
}

/// Removes the attachment's base-chain rules (found by their comment) and both of its
/// chains. Idempotent: nothing there (no table, no bridge family) is `Ok`.
/// The table and the base chain stay.
///
/// # Errors
///
/// [`FirewallError::Netlink`] when listing or the transaction fails.
pub fn teardown(container_id: &str, ifname: &str) -> Result<(), FirewallError> {
    let names = Names::new(container_id, ifname);
    let socket = Socket::open_netfilter().map_err(FirewallError::from)?;
    let present = present(&socket, &names)?;
    teardown_batch(&names, &present)
        .send(&socket)
        .map_err(FirewallError::from)
}

/// The MAC spoof check over nf_tables netlink: the [`Firewall`] of `macspoofchk`.
/// Its rules name no network, so GC cannot tell whose they are: it collects
/// none, and DEL removes them even when the namespace is gone. Each change
/// runs on a thread of its own: closing the socket after a commit waits for
/// the kernel's RCU grace period (see [`super::nft_masq::Nftables`]).
#[derive(Debug, Default)]
pub struct Nft;

impl Firewall for Nft {
    fn start_setup(&self, target: &Target) -> PendingChange<'_> {
        let target = target.clone();
        Pending::on_thread(move || {
            setup(
                &target.container_id,
                &target.ifname,
                &target.host_veth,
                &target.mac,
            )
        })
    }

    fn start_teardown(&self, target: &Target) -> PendingChange<'_> {
        let target = target.clone();
        Pending::on_thread(move || teardown(&target.container_id, &target.ifname))
    }

    fn check(&self, _target: &Target) -> Result<(), FirewallError> {
        Ok(())
    }

    fn collect(&self, _network: &str, _valid: &[Attachment]) -> Result<(), FirewallError> {
        Ok(())
    }

    fn available(&self) -> Result<(), String> {
        let socket = Socket::open_netfilter();
        let listed = socket.and_then(|s| list_chains(&s, Family::Bridge, TABLE));
        listed
            .map(drop)
            .map_err(|err| format!("macspoofchk is set but nf_tables is not usable: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names::new("abc123", "eth0")
    }

    #[test]
    fn names_are_the_references() {
        let n = names();
        assert_eq!(n.iface_chain, "cni-br-iface-abc123-eth0");
        assert_eq!(n.mac_chain, "cni-br-iface-abc123-eth0-mac");
        assert_eq!(n.comment, "macspoofchk-abc123-eth0");
    }

    #[test]
    fn rules_take_the_expressions_nft_writes() {
        // nft --debug=netlink for the reference's rules: iifname compares
        // all 16 bytes, ether saddr loads 6 bytes at link header + 6.
        let mac = [0x0a, 0x45, 0xb4, 0xf8, 0xb4, 0x71];
        let names = names();
        let rules = names.rules("veth1234abcd", mac);
        let (chain, base) = &rules[0];
        assert_eq!(*chain, "PREROUTING");
        let mut name = b"veth1234abcd".to_vec();
        name.extend([0; 4]);
        assert_eq!(
            base[1],
            Expr::Cmp {
                op: CmpOp::Eq,
                data: name
            }
        );
        assert_eq!(
            base[2],
            Expr::Verdict(Verdict::Jump("cni-br-iface-abc123-eth0".to_owned()))
        );
        assert_eq!(
            rules[2].1[0],
            Expr::Payload {
                base: PayloadBase::LinkLayer,
                offset: 6,
                len: 6
            }
        );
        assert_eq!(rules[3].1, [Expr::Verdict(Verdict::Drop)]);
        assert!(parse_mac("0a:45:b4:f8:b4").is_err());
    }

    #[test]
    fn teardown_removes_only_what_is_there_rules_before_chains() {
        let partial = Present {
            base_chain: true,
            base_rules: vec![4, 12],
            iface_chain: false,
            mac_chain: true,
        };
        let mut want = Batch::new();
        want.delete_rule(Family::Bridge, TABLE, BASE_CHAIN, 4);
        want.delete_rule(Family::Bridge, TABLE, BASE_CHAIN, 12);
        want.delete_chain(Family::Bridge, TABLE, "cni-br-iface-abc123-eth0-mac");
        assert_eq!(teardown_batch(&names(), &partial), want);
        assert!(teardown_batch(&names(), &Present::default()).is_empty());
    }
}
