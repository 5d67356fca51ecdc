//! Rule expressions, and the expression sequences `nft` writes for an
//! address match, so that rules made here read back exactly as `nft -f`'s.
//! Every expression that loads a value loads it into register 1, as `nft`
//! does for these rules.

use super::consts::*;
use super::nest;
use crate::attr::Attr;
use ipnetwork::IpNetwork;

/// A `meta` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// `meta nfproto` (one byte: 2 for IPv4, 10 for IPv6).
    NfProto,
    /// `meta iifname`.
    IifName,
}

/// Where a payload load starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    /// The link layer header (`ether`).
    LinkLayer,
    /// The network header (`ip`, `ip6`).
    Network,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`.
    Eq,
    /// `!=`.
    Neq,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump <chain>`.
    Jump(String),
    /// `goto <chain>`.
    Goto(String),
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `[ meta load <key> => reg 1 ]`.
    Meta(MetaKey),
    /// `[ payload load <len>b @ <base> header + <offset> => reg 1 ]`.
    Payload {
        /// The header.
        base: PayloadBase,
        /// Bytes into it.
        offset: u32,
        /// Bytes to load.
        len: u32,
    },
    /// `[ cmp <op> reg 1 <data> ]`.
    Cmp {
        /// The comparison.
        op: CmpOp,
        /// The value, in network byte order.
        data: Vec<u8>,
    },
    /// `[ bitwise reg 1 = ( reg 1 & <mask> ) ^ 0 ]`.
    Mask(Vec<u8>),
    /// `[ immediate reg 0 <verdict> ]`.
    Verdict(Verdict),
    /// `[ masq ]`.
    Masquerade,
    /// `[ counter pkts 0 bytes 0 ]`.
    Counter,
    /// `[ match name <name> rev <rev> ]`: an xtables match run through
    /// `nft_compat`, as iptables-nft writes one, with its info struct.
    XtMatch(Xt),
    /// `[ target name <name> rev <rev> ]`: an xtables target, likewise.
    XtTarget(Xt),
}

/// An xtables extension as iptables-nft hands it to `nft_compat`: its name,
/// revision and info struct (padded as the extension's size requires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xt {
    /// The extension, e.g. `comment` or `MASQUERADE`.
    pub name: String,
    /// Its revision.
    pub rev: u32,
    /// Its info struct, in host byte order.
    pub info: Vec<u8>,
}

impl Xt {
    fn to_attrs(&self) -> Vec<Attr> {
        vec![
            Attr::Str(NFTA_XT_NAME, self.name.clone()),
            Attr::U32Be(NFTA_XT_REV, self.rev),
            Attr::Bytes(NFTA_XT_INFO, self.info.clone()),
        ]
    }
}

fn value(kind: u16, bytes: Vec<u8>) -> Attr {
    nest(kind, vec![Attr::Bytes(NFTA_DATA_VALUE, bytes)])
}

impl Expr {
    /// The expression as an `NFTA_LIST_ELEM` of a rule's expression list.
    pub(crate) fn to_attr(&self) -> Attr {
        let reg = |kind| Attr::U32Be(kind, NFT_REG_1);
        let (name, data) = match self {
            Expr::Meta(key) => {
                let key = match key {
                    MetaKey::NfProto => 15,
                    MetaKey::IifName => 6,
                };
                (
                    "meta",
                    vec![reg(NFTA_META_DREG), Attr::U32Be(NFTA_META_KEY, key)],
                )
            }
            Expr::Payload { base, offset, len } => {
                let base = match base {
                    PayloadBase::LinkLayer => 0,
                    PayloadBase::Network => 1,
                };
                let data = vec![
                    reg(NFTA_PAYLOAD_DREG),
                    Attr::U32Be(NFTA_PAYLOAD_BASE, base),
                    Attr::U32Be(NFTA_PAYLOAD_OFFSET, *offset),
                    Attr::U32Be(NFTA_PAYLOAD_LEN, *len),
                ];
                ("payload", data)
            }
            Expr::Cmp { op, data } => {
                let op = match op {
                    CmpOp::Eq => 0,
                    CmpOp::Neq => 1,
                };
                let data = vec![
                    reg(NFTA_CMP_SREG),
                    Attr::U32Be(NFTA_CMP_OP, op),
                    value(NFTA_CMP_DATA, data.clone()),
                ];
                ("cmp", data)
            }
            Expr::Mask(mask) => {
                let len = u32::try_from(mask.len()).unwrap_or(u32::MAX);
                let data = vec![
                    reg(NFTA_BITWISE_SREG),
                    reg(NFTA_BITWISE_DREG),
                    Attr::U32Be(NFTA_BITWISE_LEN, len),
                    value(NFTA_BITWISE_MASK, mask.clone()),
                    value(NFTA_BITWISE_XOR, vec![0; mask.len()]),
                ];
                ("bitwise", data)
            }
            Expr::Verdict(verdict) => ("immediate", verdict_data(verdict)),
            Expr::Masquerade => ("masq", Vec::new()),
            Expr::Counter => (
                "counter",
                vec![
                    Attr::U64Be(NFTA_COUNTER_BYTES, 0),
                    Attr::U64Be(NFTA_COUNTER_PACKETS, 0),
                ],
            ),
            Expr::XtMatch(xt) => ("match", xt.to_attrs()),
            Expr::XtTarget(xt) => ("target", xt.to_attrs()),
        };
        nest(
            NFTA_LIST_ELEM,
            vec![
                Attr::Str(NFTA_EXPR_NAME, name.to_owned()),
                nest(NFTA_EXPR_DATA, data),
            ],
        )
    }
}

/// An immediate's attributes: the verdict register and the verdict.
fn verdict_data(verdict: &Verdict) -> Vec<Attr> {
    let (code, chain) = match verdict {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Return => (NFT_RETURN, None),
        Verdict::Jump(chain) => (NFT_JUMP, Some(chain)),
        Verdict::Goto(chain) => (NFT_GOTO, Some(chain)),
    };
    let mut attrs = vec![Attr::U32Be(NFTA_VERDICT_CODE, code)];
    attrs.extend(chain.map(|c| Attr::Str(NFTA_VERDICT_CHAIN, c.clone())));
    vec![
        Attr::U32Be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT),
        nest(NFTA_IMMEDIATE_DATA, vec![nest(NFTA_DATA_VERDICT, attrs)]),
    ]
}

/// Which address of the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `saddr`.
    Source,
    /// `daddr`.
    Destination,
}

/// `ip|ip6 saddr|daddr <op> <network>` as `nft` writes it:
/// - with `nfproto`, first `meta nfproto` of the address's family (what `nft`
///   puts before a rule's first address match in an `inet` table; later
///   matches of the same family in the rule go without);
/// - a host (full prefix) loads and compares the whole address;
/// - a prefix on a byte boundary loads and compares only its bytes;
/// - any other prefix loads the whole address and masks it first.
pub fn address_match(nfproto: bool, field: Field, network: IpNetwork, op: CmpOp) -> Vec<Expr> {
    let (family, address, offset) = match (network, field) {
        (IpNetwork::V4(n), Field::Source) => (2, n.network().octets().to_vec(), 12),
        (IpNetwork::V4(n), Field::Destination) => (2, n.network().octets().to_vec(), 16),
        (IpNetwork::V6(n), Field::Source) => (10, n.network().octets().to_vec(), 8),
        (IpNetwork::V6(n), Field::Destination) => (10, n.network().octets().to_vec(), 24),
    };
    let prefix = usize::from(network.prefix());
    let full = address.len() * 8;
    let mut exprs = Vec::new();
    if nfproto {
        exprs.push(Expr::Meta(MetaKey::NfProto));
        exprs.push(Expr::Cmp {
            op: CmpOp::Eq,
            data: vec![family],
        });
    }
    let (loaded, mask) = if prefix == full || (prefix % 8 == 0 && prefix > 0) {
        (address[..prefix / 8].to_vec(), None)
    } else {
        (address.clone(), Some(prefix_mask(address.len(), prefix)))
    };
    exprs.push(Expr::Payload {
        base: PayloadBase::Network,
        offset,
        len: u32::try_from(loaded.len()).unwrap_or(u32::MAX),
    });
    exprs.extend(mask.map(Expr::Mask));
    exprs.push(Expr::Cmp { op, data: loaded });
    exprs
}

/// `len` bytes whose first `prefix` bits are set.
fn prefix_mask(len: usize, prefix: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let bits = prefix.saturating_sub(i * 8).min(8);
            if bits == 0 { 0 } else { 0xffu8 << (8 - bits) }
        })
        .collect()
}
