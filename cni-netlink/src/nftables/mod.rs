//! nf_tables over netlink (`NETLINK_NETFILTER`): tables, chains and rules
//! built from the few expressions the plugins use, sent as one batch that
//! the kernel applies all or nothing; and the rules of a chain listed with
//! their handles and comments, to delete them by comment.
//!
//! The expressions are the ones `nft` itself writes for the same rules (see
//! [`expr`]), so `nft list` and `nft --debug=netlink` show the objects as if
//! `nft -f` had made them.
//!
//! ```no_run
//! use cni_netlink::Socket;
//! use cni_netlink::nftables::{Batch, Family, expr::Expr};
//!
//! let socket = Socket::open_netfilter()?;
//! let mut batch = Batch::new();
//! batch.add_table(Family::Inet, "demo", Some("made by hand"));
//! batch.add_chain(Family::Inet, "demo", "checks", None, None);
//! batch.add_rule(Family::Inet, "demo", "checks", &[Expr::Masquerade], Some("masq all"));
//! batch.send(&socket)?;
//! # Ok::<(), cni_netlink::Error>(())
//! ```

mod consts;
pub mod expr;
pub mod xtables;

use crate::attr::{Attr, Message, attributes, attributes_after, read_string, read_u64_be};
use crate::error::Error;
use crate::socket::{Socket, encode};
use consts::*;
use expr::Expr;
use netlink_packet_core::{Emitable, NLM_F_ACK, NLM_F_REQUEST};

/// An nf_tables family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `inet`: IPv4 and IPv6.
    Inet,
    /// `ip`.
    Ip,
    /// `ip6`.
    Ip6,
    /// `bridge`.
    Bridge,
}

impl Family {
    fn number(self) -> u8 {
        match self {
            Family::Inet => NFPROTO_INET,
            Family::Ip => NFPROTO_IPV4,
            Family::Ip6 => NFPROTO_IPV6,
            Family::Bridge => NFPROTO_BRIDGE,
        }
    }
}

/// A base chain's hook: `type <kind> hook <hook> priority <priority>;
/// policy accept;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    /// `nat` or `filter`.
    pub kind: &'static str,
    /// The hook number (`NF_INET_POST_ROUTING` is 4, `PRE_ROUTING` 0).
    pub hook: u32,
    /// The priority (`srcnat` is 100, `dstnat` -100; bridge `dstnat` -300).
    pub priority: i32,
}

impl BaseChain {
    /// `type nat hook postrouting priority srcnat`.
    pub const NAT_POSTROUTING: BaseChain = BaseChain {
        kind: "nat",
        hook: 4,
        priority: 100,
    };
}

/// `struct nfgenmsg`: the family, the version and the resource ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NfGen {
    family: u8,
    res_id: u16,
}

impl Emitable for NfGen {
    fn buffer_len(&self) -> usize {
        4
    }

    fn emit(&self, buffer: &mut [u8]) {
        buffer[0] = self.family;
        buffer[1] = NFNETLINK_V0;
        buffer[2..4].copy_from_slice(&self.res_id.to_be_bytes());
    }
}

/// One request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    message: u16,
    flags: u16,
    body: Message<NfGen>,
}

/// Requests to apply in one transaction: all of them, or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    requests: Vec<Request>,
}

/// A comment as nf_tables userdata: one TLV of type 0 (the comment type of
/// tables, chains and rules), NUL-terminated. Longer than 254 bytes is cut.
fn comment_userdata(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(254)];
    let mut data = vec![NFTNL_UDATA_COMMENT, (text.len() + 1) as u8];
    data.extend_from_slice(text);
    data.push(0);
    data
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    fn push(&mut self, message: u16, flags: u16, family: Family, attrs: Vec<Attr>) {
        self.requests.push(Request {
            message,
            flags,
            body: request(family, attrs),
        });
    }

    /// `add table`: creates it unless it exists (then it is left as it is).
    pub fn add_table(&mut self, family: Family, name: &str, comment: Option<&str>) {
        let mut attrs = vec![
            Attr::Str(NFTA_TABLE_NAME, name.to_owned()),
            Attr::U32Be(NFTA_TABLE_FLAGS, 0),
        ];
        if let Some(comment) = comment {
            attrs.push(Attr::Bytes(NFTA_TABLE_USERDATA, comment_userdata(comment)));
        }
        self.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, attrs);
    }

    /// Creates the table unless it exists, naming nothing else (so an
    /// existing table is left exactly as it is), as iptables-nft does.
    pub fn ensure_table(&mut self, family: Family, name: &str) {
        let attrs = vec![Attr::Str(NFTA_TABLE_NAME, name.to_owned())];
        self.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, attrs);
    }

    /// `add chain`: creates it unless it exists. `base` makes it a base
    /// chain with policy accept.
    pub fn add_chain(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        base: Option<BaseChain>,
        comment: Option<&str>,
    ) {
        let mut attrs = vec![
            Attr::Str(NFTA_CHAIN_TABLE, table.to_owned()),
            Attr::Str(NFTA_CHAIN_NAME, name.to_owned()),
        ];
        if let Some(base) = base {
            attrs.push(nest(
                NFTA_CHAIN_HOOK,
                vec![
                    Attr::U32Be(NFTA_HOOK_HOOKNUM, base.hook),
                    Attr::U32Be(NFTA_HOOK_PRIORITY, base.priority as u32),
                ],
            ));
            attrs.push(Attr::U32Be(NFTA_CHAIN_POLICY, NF_ACCEPT));
            attrs.push(Attr::Str(NFTA_CHAIN_TYPE, base.kind.to_owned()));
        }
        if let Some(comment) = comment {
            attrs.push(Attr::Bytes(NFTA_CHAIN_USERDATA, comment_userdata(comment)));
        }
        self.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, attrs);
    }

    /// `iptables -N`: creates a regular chain, failing (and with it the
    /// batch) if it exists.
    pub fn create_chain(&mut self, family: Family, table: &str, name: &str) {
        let attrs = vec![
            Attr::Str(NFTA_CHAIN_TABLE, table.to_owned()),
            Attr::Str(NFTA_CHAIN_NAME, name.to_owned()),
        ];
        self.push(NFT_MSG_NEWCHAIN, NLM_F_EXCL, family, attrs);
    }

    /// `delete chain` (it must exist and have no rules or references).
    pub fn delete_chain(&mut self, family: Family, table: &str, name: &str) {
        let attrs = vec![
            Attr::Str(NFTA_CHAIN_TABLE, table.to_owned()),
            Attr::Str(NFTA_CHAIN_NAME, name.to_owned()),
        ];
        self.push(NFT_MSG_DELCHAIN, 0, family, attrs);
    }

    /// `flush chain`: deletes every rule of the chain.
    pub fn flush_chain(&mut self, family: Family, table: &str, chain: &str) {
        let attrs = vec![
            Attr::Str(NFTA_RULE_TABLE, table.to_owned()),
            Attr::Str(NFTA_RULE_CHAIN, chain.to_owned()),
        ];
        self.push(NFT_MSG_DELRULE, 0, family, attrs);
    }

    /// `add rule`: appends a rule of `exprs`, with `comment`.
    pub fn add_rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        exprs: &[Expr],
        comment: Option<&str>,
    ) {
        let list = exprs.iter().map(Expr::to_attr).collect();
        let mut attrs = vec![
            Attr::Str(NFTA_RULE_TABLE, table.to_owned()),
            Attr::Str(NFTA_RULE_CHAIN, chain.to_owned()),
            nest(NFTA_RULE_EXPRESSIONS, list),
        ];
        if let Some(comment) = comment {
            attrs.push(Attr::Bytes(NFTA_RULE_USERDATA, comment_userdata(comment)));
        }
        self.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, attrs);
    }

    /// `iptables -A`: appends a rule of `exprs` as iptables-nft does, with
    /// its compat attribute (no protocol, no flags) and no userdata.
    pub fn append_xt_rule(&mut self, family: Family, table: &str, chain: &str, exprs: &[Expr]) {
        let list = exprs.iter().map(Expr::to_attr).collect();
        let attrs = vec![
            Attr::Str(NFTA_RULE_TABLE, table.to_owned()),
            Attr::Str(NFTA_RULE_CHAIN, chain.to_owned()),
            nest(NFTA_RULE_EXPRESSIONS, list),
            nest(
                NFTA_RULE_COMPAT,
                vec![
                    Attr::U32Be(NFTA_RULE_COMPAT_PROTO, 0),
                    Attr::U32Be(NFTA_RULE_COMPAT_FLAGS, 0),
                ],
            ),
        ];
        self.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, attrs);
    }

    /// `delete rule … handle <handle>`.
    pub fn delete_rule(&mut self, family: Family, table: &str, chain: &str, handle: u64) {
        let attrs = vec![
            Attr::Str(NFTA_RULE_TABLE, table.to_owned()),
            Attr::Str(NFTA_RULE_CHAIN, chain.to_owned()),
            Attr::U64Be(NFTA_RULE_HANDLE, handle),
        ];
        self.push(NFT_MSG_DELRULE, 0, family, attrs);
    }

    /// The requests as they go to the kernel, for inspection: message type
    /// (`NFT_MSG_…`), flags (without `NLM_F_REQUEST` and `NLM_F_ACK`) and
    /// payload (`nfgenmsg` and attributes).
    pub fn requests(&self) -> Vec<(u16, u16, Vec<u8>)> {
        self.requests
            .iter()
            .map(|r| (r.message, r.flags, r.body.to_bytes()))
            .collect()
    }

    /// The datagram: `BATCH_BEGIN`, the requests (each asking for an ACK)
    /// and `BATCH_END`, numbered from `first`.
    fn datagram(&self, first: u32) -> Result<Vec<u8>, Error> {
        let marker = NfGen {
            family: 0,
            res_id: u16::from(NFNL_SUBSYS_NFTABLES),
        };
        let mut bytes = encode(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first, &marker)?;
        let mut sequence = first;
        for request in &self.requests {
            sequence = sequence.wrapping_add(1);
            let message_type = (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | request.message;
            let flags = request.flags | NLM_F_REQUEST | NLM_F_ACK;
            bytes.extend(encode(message_type, flags, sequence, &request.body)?);
        }
        let end = encode(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            sequence.wrapping_add(1),
            &marker,
        )?;
        bytes.extend(end);
        Ok(bytes)
    }

    /// Applies the batch as one transaction. An empty batch sends nothing.
    ///
    /// # Errors
    /// [`Error::Kernel`] with the first request's refusal (then nothing of
    /// the batch was applied), [`Error::Io`] when the socket fails.
    pub fn send(&self, socket: &Socket) -> Result<(), Error> {
        if self.is_empty() {
            return Ok(());
        }
        let count = u32::try_from(self.requests.len() + 2)
            .map_err(|_| Error::Malformed("a batch of too many requests".to_owned()))?;
        let first = socket.next_sequences(count);
        socket.send_batch(&self.datagram(first)?)
    }
}

/// A rule as a listing shows it: its handle, its comments and where it
/// jumps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleInfo {
    /// The chain it is in.
    pub chain: String,
    /// The rule's handle, by which it is deleted.
    pub handle: u64,
    /// Its comment (userdata), if it has one.
    pub comment: Option<String>,
    /// The text of its xtables `comment` match (iptables-nft's `-m
    /// comment`), if it has one.
    pub xt_comment: Option<String>,
    /// The chain its `jump` or `goto` verdict names, if any.
    pub jump: Option<String>,
}

/// The rules of `chain` in `table`, in order; none when the table or the
/// chain does not exist.
///
/// # Errors
/// [`Error`] when the listing fails otherwise.
pub fn list_rules(
    socket: &Socket,
    family: Family,
    table: &str,
    chain: &str,
) -> Result<Vec<RuleInfo>, Error> {
    let attrs = vec![
        Attr::Str(NFTA_RULE_TABLE, table.to_owned()),
        Attr::Str(NFTA_RULE_CHAIN, chain.to_owned()),
    ];
    dump(socket, NFT_MSG_GETRULE, family, attrs, |payload| {
        parse_rule(payload).map(Some)
    })
}

/// The rules of every chain of `table`, chain by chain; none when the
/// table does not exist.
///
/// # Errors
/// [`Error`] when the listing fails otherwise.
pub fn list_table_rules(
    socket: &Socket,
    family: Family,
    table: &str,
) -> Result<Vec<RuleInfo>, Error> {
    let attrs = vec![Attr::Str(NFTA_RULE_TABLE, table.to_owned())];
    dump(socket, NFT_MSG_GETRULE, family, attrs, |payload| {
        parse_rule(payload).map(Some)
    })
}

/// A `NFT_MSG_NEWRULE` payload's chain, handle, comments and jump.
fn parse_rule(payload: &[u8]) -> Result<RuleInfo, Error> {
    let mut rule = RuleInfo::default();
    for nla in attributes_after(payload, 4) {
        let nla = nla?;
        match nla.kind() {
            NFTA_RULE_CHAIN => rule.chain = read_string(&nla),
            NFTA_RULE_HANDLE => rule.handle = read_u64_be(&nla)?,
            NFTA_RULE_USERDATA => rule.comment = userdata_comment(nla.value()),
            NFTA_RULE_EXPRESSIONS => read_expressions(nla.value(), &mut rule)?,
            _ => {}
        }
    }
    Ok(rule)
}

/// Takes the jump target and the xtables comment from a rule's expressions
/// (each names itself before its data, as the kernel dumps them).
fn read_expressions(list: &[u8], rule: &mut RuleInfo) -> Result<(), Error> {
    for element in attributes(list) {
        let element = element?;
        let mut name = String::new();
        for nla in attributes(element.value()) {
            let nla = nla?;
            match (nla.kind(), name.as_str()) {
                (NFTA_EXPR_NAME, _) => name = read_string(&nla),
                (NFTA_EXPR_DATA, "immediate") => {
                    rule.jump = rule.jump.take().or(verdict_chain(nla.value())?);
                }
                (NFTA_EXPR_DATA, "match") => {
                    rule.xt_comment = rule.xt_comment.take().or(comment_info(nla.value())?);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The chain an immediate's `jump`/`goto` verdict names.
fn verdict_chain(data: &[u8]) -> Result<Option<String>, Error> {
    for nla in attributes(data) {
        let nla = nla?;
        if nla.kind() != NFTA_IMMEDIATE_DATA {
            continue;
        }
        for data in attributes(nla.value()) {
            let data = data?;
            if data.kind() != NFTA_DATA_VERDICT {
                continue;
            }
            for verdict in attributes(data.value()) {
                let verdict = verdict?;
                if verdict.kind() == NFTA_VERDICT_CHAIN {
                    return Ok(Some(read_string(&verdict)));
                }
            }
        }
    }
    Ok(None)
}

/// The text of an xtables `comment` match's info, up to its NUL.
fn comment_info(data: &[u8]) -> Result<Option<String>, Error> {
    let (mut is_comment, mut text) = (false, None);
    for nla in attributes(data) {
        let nla = nla?;
        match nla.kind() {
            NFTA_XT_NAME => is_comment = read_string(&nla) == "comment",
            NFTA_XT_INFO => {
                let info = nla.value();
                let end = info.iter().position(|&b| b == 0).unwrap_or(info.len());
                text = Some(String::from_utf8_lossy(&info[..end]).into_owned());
            }
            _ => {}
        }
    }
    Ok(text.filter(|_| is_comment))
}

/// The comment TLV of nf_tables userdata, without its NUL.
fn userdata_comment(mut data: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = data {
        let value = rest.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        data = &rest[usize::from(*len)..];
    }
    None
}

/// A chain as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// Its name.
    pub name: String,
    /// For a base chain, its hook.
    pub base: Option<BaseChainInfo>,
}

/// A base chain's hook as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChainInfo {
    /// `nat`, `filter`, ...
    pub kind: String,
    /// The hook number.
    pub hook: u32,
    /// The priority.
    pub priority: i32,
}

impl BaseChainInfo {
    /// Whether it is `base`.
    pub fn is(&self, base: &BaseChain) -> bool {
        self.kind == base.kind && self.hook == base.hook && self.priority == base.priority
    }
}

/// The chains of `table`; none when it does not exist.
///
/// # Errors
/// [`Error`] when the listing fails otherwise.
pub fn list_chains(socket: &Socket, family: Family, table: &str) -> Result<Vec<ChainInfo>, Error> {
    let attrs = vec![Attr::Str(NFTA_CHAIN_TABLE, table.to_owned())];
    dump(socket, NFT_MSG_GETCHAIN, family, attrs, |payload| {
        parse_chain(payload, table)
    })
}

/// The chain `name` of `table`, asked for by name (no dump of the table's
/// other chains); `None` when it or the table does not exist.
///
/// # Errors
/// [`Error`] when the request fails otherwise.
pub fn get_chain(
    socket: &Socket,
    family: Family,
    table: &str,
    name: &str,
) -> Result<Option<ChainInfo>, Error> {
    let attrs = vec![
        Attr::Str(NFTA_CHAIN_TABLE, table.to_owned()),
        Attr::Str(NFTA_CHAIN_NAME, name.to_owned()),
    ];
    let message_type = (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | NFT_MSG_GETCHAIN;
    let mut found = None;
    let asked = socket.request(message_type, 0, &request(family, attrs), |_, payload| {
        found = parse_chain(payload, table)?;
        Ok(())
    });
    match asked {
        Err(Error::Kernel(ENOENT)) => Ok(None),
        other => other.map(|()| found),
    }
}

/// Dumps the objects `message` (`NFT_MSG_GET…`) selects by `attrs`, each
/// reply read by `parse` (`None` skips it); none when the table or chain
/// named does not exist.
fn dump<T>(
    socket: &Socket,
    message: u16,
    family: Family,
    attrs: Vec<Attr>,
    mut parse: impl FnMut(&[u8]) -> Result<Option<T>, Error>,
) -> Result<Vec<T>, Error> {
    let message_type = (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | message;
    let listed = socket.dump(message_type, &request(family, attrs), |_, payload| {
        parse(payload)
    });
    match listed {
        Err(Error::Kernel(ENOENT)) => Ok(Vec::new()),
        other => other,
    }
}

/// A nested attribute, flagged as nested (as `nft` and iptables-nft send
/// them).
pub(crate) fn nest(kind: u16, attrs: Vec<Attr>) -> Attr {
    Attr::Nested(kind | NLA_F_NESTED, attrs)
}

/// A request of `family` with `attrs` after its `nfgenmsg`.
fn request(family: Family, attrs: Vec<Attr>) -> Message<NfGen> {
    Message {
        header: NfGen {
            family: family.number(),
            res_id: 0,
        },
        attrs,
    }
}

/// A `NFT_MSG_NEWCHAIN` payload of `table`; `None` for another table's.
fn parse_chain(payload: &[u8], table: &str) -> Result<Option<ChainInfo>, Error> {
    let (mut name, mut in_table, mut kind, mut hook) = (None, false, None, None);
    for nla in attributes_after(payload, 4) {
        let nla = nla?;
        match nla.kind() {
            NFTA_CHAIN_NAME => name = Some(read_string(&nla)),
            NFTA_CHAIN_TABLE => in_table = read_string(&nla) == table,
            NFTA_CHAIN_TYPE => kind = Some(read_string(&nla)),
            NFTA_CHAIN_HOOK => hook = Some(parse_hook(nla.value())?),
            _ => {}
        }
    }
    let base = match (kind, hook) {
        (Some(kind), Some((hook, priority))) => Some(BaseChainInfo {
            kind,
            hook,
            priority,
        }),
        _ => None,
    };
    Ok(name
        .filter(|_| in_table)
        .map(|name| ChainInfo { name, base }))
}

/// `NFTA_CHAIN_HOOK`'s hook number and priority.
fn parse_hook(value: &[u8]) -> Result<(u32, i32), Error> {
    let (mut hook, mut priority) = (0, 0);
    for nla in attributes(value) {
        let nla = nla?;
        let raw = <[u8; 4]>::try_from(nla.value()).unwrap_or_default();
        match nla.kind() {
            NFTA_HOOK_HOOKNUM => hook = u32::from_be_bytes(raw),
            NFTA_HOOK_PRIORITY => priority = i32::from_be_bytes(raw),
            _ => {}
        }
    }
    Ok((hook, priority))
}

#[cfg(test)]
mod tests;
