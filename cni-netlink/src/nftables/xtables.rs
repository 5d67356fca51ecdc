//! The parts of an iptables rule as iptables-nft (1.8.9, `nf_tables` mode)
//! writes them into table `ip nat` / `ip6 nat`: address matches as payload,
//! (bitwise) and cmp; `-m comment` and `-j MASQUERADE` as xtables
//! extensions run through `nft_compat`. A rule built from them is the rule
//! `iptables -A` would have made: `iptables -S`, `iptables -D` and
//! `iptables-save` read it back as their own.

use super::expr::{CmpOp, Expr, Field, Xt, address_match};
use ipnetwork::IpNetwork;

/// `XT_MAX_COMMENT_LEN`: the comment match's info is this many bytes, the
/// text NUL-terminated within them.
const COMMENT_INFO_LEN: usize = 256;

/// `-s|-d [!] <network>`; `None` for a `/0`, which iptables writes as no
/// match at all.
pub fn address(field: Field, network: IpNetwork, op: CmpOp) -> Option<Vec<Expr>> {
    (network.prefix() > 0).then(|| address_match(false, field, network, op))
}

/// `-m comment --comment <text>`; `None` when the text does not fit (255
/// bytes), which iptables refuses too.
pub fn comment(text: &str) -> Option<Expr> {
    if text.len() >= COMMENT_INFO_LEN || text.contains('\0') {
        return None;
    }
    let mut info = text.as_bytes().to_vec();
    info.resize(COMMENT_INFO_LEN, 0);
    Some(Expr::XtMatch(Xt {
        name: "comment".to_owned(),
        rev: 0,
        info,
    }))
}

/// `-j MASQUERADE` (revision 0) for IPv4 or IPv6 (`ipv6`): IPv4's info is
/// `nf_nat_ipv4_multi_range_compat` with one empty range, padded to 24
/// bytes; IPv6's is an empty `nf_nat_range` (40 bytes).
pub fn masquerade(ipv6: bool) -> Expr {
    let info = if ipv6 {
        vec![0; 40]
    } else {
        let mut info = 1u32.to_ne_bytes().to_vec();
        info.resize(24, 0);
        info
    };
    Expr::XtTarget(Xt {
        name: "MASQUERADE".to_owned(),
        rev: 0,
        info,
    })
}
