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
//! (`nft list` indents with tabs), so either implementation's DEL removes what the other's ADD created. The table and the
//! base chain are shared by every attachment and never removed.
//!
//! Every change is one atomic `nft -j -f -` transaction with a JSON batch on stdin (JSON
//! needs no quoting of names), like [`super::masq`] runs one `iptables-restore` batch.
//! `nft` is looked up in `PATH`, as the reference does. A first ADD costs one process; a
//! repeated ADD and every DEL list the table first (`nft -j list table bridge nat`) to find
//! the handles of the `PREROUTING` rules, which nftables deletes only by handle.

use serde_json::{Value, json};

use super::helper::{Helper, on_path};
use super::{Firewall, FirewallError, PendingChange, Target};
use crate::pending::Pending;
use cni_types::config::Attachment;

/// The nftables program.
const NFT: &str = "nft";
/// The family of every object.
const FAMILY: &str = "bridge";
/// The table shared by every attachment.
const TABLE: &str = "nat";
/// The base chain shared by every attachment.
const BASE_CHAIN: &str = "PREROUTING";
/// The base chain's priority (`dstnat` in the bridge family).
const PRIORITY: i32 = -300;
/// How a batch is applied.
const APPLY: Helper = Helper {
    program: NFT,
    args: &["-j", "-f", "-"],
    family: None,
    label: "nft -j -f -",
};
/// How the table is listed.
const LIST: Helper = Helper {
    program: NFT,
    args: &["-j", "list", "table", FAMILY, TABLE],
    family: None,
    label: "nft -j list table bridge nat",
};

/// Whether `nft` says the table does not exist (or the kernel has no bridge
/// family, where it cannot exist either): nothing of ours can be there.
fn is_absent(err: &FirewallError) -> bool {
    match err {
        FirewallError::NotFound { .. } => true,
        FirewallError::Failed { stderr, .. } => {
            stderr.contains("No such file or directory") || stderr.contains("not supported")
        }
        _ => false,
    }
}

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

    /// A regular chain of the table, for `add`, `create`, `flush` and `delete`.
    fn chain(name: &str) -> Value {
        json!({"chain": {"family": FAMILY, "table": TABLE, "name": name}})
    }

    /// A rule with our comment.
    fn rule(&self, chain: &str, expr: Value) -> Value {
        json!({"rule": {
            "family": FAMILY, "table": TABLE, "chain": chain,
            "comment": self.comment, "expr": expr,
        }})
    }

    /// The four rules, in the reference's order.
    fn rules(&self, host_veth: &str, mac: &str) -> [Value; 4] {
        [
            self.rule(
                BASE_CHAIN,
                json!([
                    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": host_veth}},
                    {"jump": {"target": self.iface_chain}},
                ]),
            ),
            self.rule(
                &self.iface_chain,
                json!([{"jump": {"target": self.mac_chain}}]),
            ),
            self.rule(
                &self.mac_chain,
                json!([
                    {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": mac}},
                    {"return": null},
                ]),
            ),
            self.rule(&self.mac_chain, json!([{"drop": null}])),
        ]
    }
}

/// The table and its base chain, declared (created unless they exist).
fn declare_base() -> [Value; 2] {
    [
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        json!({"add": {"chain": {
            "family": FAMILY, "table": TABLE, "name": BASE_CHAIN,
            "type": "filter", "hook": "prerouting", "prio": PRIORITY, "policy": "accept",
        }}}),
    ]
}

/// Deletes the rule with `handle` from the base chain.
fn delete_base_rule(handle: u64) -> Value {
    json!({"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": BASE_CHAIN, "handle": handle}}})
}

/// Wraps commands into a batch for `nft -j -f -`.
fn batch(commands: impl IntoIterator<Item = Value>) -> String {
    json!({"nftables": commands.into_iter().collect::<Vec<_>>()}).to_string()
}

/// The first-ADD batch: `create` fails if the iface chain already exists, which makes the
/// whole batch fail atomically and sends [`setup`] to [`rewrite_batch`].
fn create_batch(names: &Names, host_veth: &str, mac: &str) -> String {
    let chains =
        [&names.iface_chain, &names.mac_chain].map(|name| json!({"create": Names::chain(name)}));
    let rules = names.rules(host_veth, mac).map(|rule| json!({"add": rule}));
    batch(declare_base().into_iter().chain(chains).chain(rules))
}

/// The repeated-ADD batch: delete the base-chain rules with our comment (`stale` handles),
/// declare both chains, flush them, and add every rule again.
fn rewrite_batch(names: &Names, host_veth: &str, mac: &str, stale: &[u64]) -> String {
    let chains = [&names.iface_chain, &names.mac_chain];
    let deletes = stale.iter().map(|h| delete_base_rule(*h));
    let declares = chains.map(|name| json!({"add": Names::chain(name)}));
    let flushes = chains.map(|name| json!({"flush": Names::chain(name)}));
    let rules = names.rules(host_veth, mac).map(|rule| json!({"add": rule}));
    batch(
        declare_base()
            .into_iter()
            .chain(deletes)
            .chain(declares)
            .chain(flushes)
            .chain(rules),
    )
}

/// What the table holds of one attachment.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    /// Handles of the base-chain rules with our comment.
    base_rules: Vec<u64>,
    /// Whether the iface chain exists.
    iface_chain: bool,
    /// Whether the mac chain exists.
    mac_chain: bool,
}

/// Finds an attachment's objects in `nft -j list table bridge nat` output.
fn parse_listing(text: &str, names: &Names) -> Result<Listing, serde_json::Error> {
    let parsed: Value = serde_json::from_str(text)?;
    let mut listing = Listing::default();
    let objects = parsed["nftables"].as_array().map(Vec::as_slice);
    for object in objects.unwrap_or_default() {
        if let Some(name) = object["chain"]["name"].as_str() {
            listing.iface_chain |= name == names.iface_chain;
            listing.mac_chain |= name == names.mac_chain;
        }
        let rule = &object["rule"];
        if rule["chain"] == BASE_CHAIN
            && rule["comment"] == names.comment.as_str()
            && let Some(handle) = rule["handle"].as_u64()
        {
            listing.base_rules.push(handle);
        }
    }
    Ok(listing)
}

/// The DEL batch from a listing; `None` when nothing is there.
fn teardown_batch(names: &Names, listing: &Listing) -> Option<String> {
    let deletes = listing.base_rules.iter().map(|h| delete_base_rule(*h));
    // The iface chain first: its rule is what keeps the mac chain in use.
    let chains = [
        (listing.iface_chain, &names.iface_chain),
        (listing.mac_chain, &names.mac_chain),
    ]
    .into_iter()
    .filter(|(present, _)| *present)
    .map(|(_, name)| json!({"delete": Names::chain(name)}));
    let commands: Vec<Value> = deletes.chain(chains).collect();
    (!commands.is_empty()).then(|| batch(commands))
}

/// Applies one batch atomically: either every command applies or none does.
fn apply(batch: &str) -> Result<(), FirewallError> {
    APPLY.run(batch.as_bytes()).map(drop)
}

/// Lists the table as JSON. Read-only.
fn list() -> Result<String, FirewallError> {
    LIST.read()
}

/// Parses a listing, naming the command when it is not JSON.
fn read_listing(text: &str, names: &Names) -> Result<Listing, FirewallError> {
    parse_listing(text, names).map_err(|source| FirewallError::Listing {
        command: LIST.label,
        source,
    })
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
/// [`FirewallError`] when `nft` is missing, or a batch fails (for example because the
/// kernel has no bridge-family nf_tables). Each batch is atomic: a failure changes nothing.
pub fn setup(
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: &str,
) -> Result<(), FirewallError> {
    let names = Names::new(container_id, ifname);
    match apply(&create_batch(&names, host_veth, mac)) {
        Err(missing) if missing.is_not_found() => Err(missing),
        Err(first) => {
            // Why the create failed decides: no table at all means the batch itself
            // was refused, which is the error to report.
            let text = match list() {
                Ok(text) => text,
                Err(e) if is_absent(&e) => return Err(first),
                Err(e) => return Err(e),
            };
            let listing = read_listing(&text, &names)?;
            apply(&rewrite_batch(&names, host_veth, mac, &listing.base_rules))
        }
        Ok(()) => Ok(()),
    }
}

/// Removes the attachment's base-chain rules (found by their comment) and both of its
/// chains. Idempotent: nothing there (no table, no `nft`) is `Ok`.
/// The table and the base chain stay.
///
/// # Errors
///
/// [`FirewallError`] when listing or the batch fails.
pub fn teardown(container_id: &str, ifname: &str) -> Result<(), FirewallError> {
    let names = Names::new(container_id, ifname);
    let text = match list() {
        Ok(text) => text,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    match teardown_batch(&names, &read_listing(&text, &names)?) {
        Some(batch) => apply(&batch),
        None => Ok(()),
    }
}

/// The MAC spoof check through `nft`: the [`Firewall`] of `macspoofchk`.
/// Its rules name no network, so GC cannot tell whose they are: it collects
/// none, and DEL removes them even when the namespace is gone.
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
        if on_path(NFT) {
            Ok(())
        } else {
            Err("macspoofchk is set but nft is not in PATH".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::InFamily;

    fn names() -> Names {
        Names::new("abc123", "eth0")
    }

    fn parse(batch: &str) -> Value {
        serde_json::from_str(batch).unwrap()
    }

    #[test]
    fn names_are_the_references() {
        let n = names();
        assert_eq!(n.iface_chain, "cni-br-iface-abc123-eth0");
        assert_eq!(n.mac_chain, "cni-br-iface-abc123-eth0-mac");
        assert_eq!(n.comment, "macspoofchk-abc123-eth0");
    }

    /// The rules as `nft -j list` prints them for the reference's objects (handles and
    /// family/table/chain aside), which is what makes `nft list` output identical.
    fn expected_rules() -> Value {
        json!([
            {"add": {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING",
                "comment": "macspoofchk-abc123-eth0",
                "expr": [
                    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth1234abcd"}},
                    {"jump": {"target": "cni-br-iface-abc123-eth0"}}]}}},
            {"add": {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-abc123-eth0",
                "comment": "macspoofchk-abc123-eth0",
                "expr": [{"jump": {"target": "cni-br-iface-abc123-eth0-mac"}}]}}},
            {"add": {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-abc123-eth0-mac",
                "comment": "macspoofchk-abc123-eth0",
                "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": "0a:45:b4:f8:b4:71"}},
                    {"return": null}]}}},
            {"add": {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-abc123-eth0-mac",
                "comment": "macspoofchk-abc123-eth0",
                "expr": [{"drop": null}]}}},
        ])
    }

    fn expected_base() -> Value {
        json!([
            {"add": {"table": {"family": "bridge", "name": "nat"}}},
            {"add": {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING",
                "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}}},
        ])
    }

    fn chain_cmd(verb: &str, name: &str) -> Value {
        json!({verb: {"chain": {"family": "bridge", "table": "nat", "name": name}}})
    }

    fn concat(parts: &[Value]) -> Value {
        Value::Array(
            parts
                .iter()
                .flat_map(|p| p.as_array().unwrap().clone())
                .collect(),
        )
    }

    #[test]
    fn create_batch_declares_base_creates_chains_then_adds_rules() {
        let got = parse(&create_batch(&names(), "veth1234abcd", "0a:45:b4:f8:b4:71"));
        let chains = json!([
            chain_cmd("create", "cni-br-iface-abc123-eth0"),
            chain_cmd("create", "cni-br-iface-abc123-eth0-mac"),
        ]);
        let want = concat(&[expected_base(), chains, expected_rules()]);
        assert_eq!(got["nftables"], want);
    }

    #[test]
    fn rewrite_batch_deletes_stale_jumps_and_flushes_both_chains() {
        let got = parse(&rewrite_batch(
            &names(),
            "veth1234abcd",
            "0a:45:b4:f8:b4:71",
            &[4, 9],
        ));
        let middle = json!([
            {"delete": {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4}}},
            {"delete": {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 9}}},
            chain_cmd("add", "cni-br-iface-abc123-eth0"),
            chain_cmd("add", "cni-br-iface-abc123-eth0-mac"),
            chain_cmd("flush", "cni-br-iface-abc123-eth0"),
            chain_cmd("flush", "cni-br-iface-abc123-eth0-mac"),
        ]);
        let want = concat(&[expected_base(), middle, expected_rules()]);
        assert_eq!(got["nftables"], want);
    }

    #[test]
    fn json_quoting_keeps_odd_names_literal() {
        let n = Names::new("a\"b", "e\\0");
        let got = parse(&create_batch(&n, "v\"x", "aa:bb:cc:dd:ee:ff"));
        assert_eq!(
            got["nftables"][2]["create"]["chain"]["name"],
            "cni-br-iface-a\"b-e\\0"
        );
        assert_eq!(
            got["nftables"][4]["add"]["rule"]["expr"][0]["match"]["right"],
            "v\"x"
        );
    }

    /// Trimmed `nft -j list table bridge nat` output of the reference's objects, plus a
    /// second attachment and an unrelated rule in the base chain.
    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
      {"table": {"family": "bridge", "name": "nat", "handle": 3}},
      {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
      {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-abc123-eth0", "handle": 2}},
      {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-abc123-eth0-mac", "handle": 3}},
      {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-abc1234-eth0", "handle": 8}},
      {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4, "comment": "macspoofchk-abc123-eth0", "expr": []}},
      {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 10, "comment": "macspoofchk-abc1234-eth0", "expr": []}},
      {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 11, "expr": []}},
      {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 12, "comment": "macspoofchk-abc123-eth0", "expr": []}},
      {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-abc123-eth0", "handle": 5, "comment": "macspoofchk-abc123-eth0", "expr": []}}]}"#;

    #[test]
    fn listing_finds_only_this_attachments_objects() {
        let listing = parse_listing(LISTING, &names()).unwrap();
        assert_eq!(
            listing,
            Listing {
                base_rules: vec![4, 12],
                iface_chain: true,
                mac_chain: true,
            }
        );
        let other = parse_listing(LISTING, &Names::new("zzz", "eth0")).unwrap();
        assert_eq!(other, Listing::default());
        assert!(parse_listing("not json", &names()).is_err());
    }

    #[test]
    fn teardown_batch_deletes_rules_then_iface_then_mac_chain() {
        let listing = parse_listing(LISTING, &names()).unwrap();
        let got = parse(&teardown_batch(&names(), &listing).unwrap());
        let want = json!([
            {"delete": {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4}}},
            {"delete": {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 12}}},
            chain_cmd("delete", "cni-br-iface-abc123-eth0"),
            chain_cmd("delete", "cni-br-iface-abc123-eth0-mac"),
        ]);
        assert_eq!(got["nftables"], want);
    }

    #[test]
    fn teardown_batch_removes_only_what_is_there() {
        let partial = Listing {
            base_rules: vec![],
            iface_chain: false,
            mac_chain: true,
        };
        let got = parse(&teardown_batch(&names(), &partial).unwrap());
        assert_eq!(
            got["nftables"],
            json!([chain_cmd("delete", "cni-br-iface-abc123-eth0-mac")])
        );
        assert_eq!(teardown_batch(&names(), &Listing::default()), None);
    }

    #[test]
    fn absent_table_and_missing_nft_count_as_nothing_there() {
        let failed = |stderr: &str| FirewallError::Failed {
            command: LIST.label.to_owned(),
            family: InFamily(None),
            status: "exit status 1".to_owned(),
            stderr: stderr.to_owned(),
        };
        assert!(is_absent(&not_found()));
        assert!(is_absent(&failed(
            "Error: No such file or directory list table bridge nat ^^^"
        )));
        assert!(!is_absent(&failed("Error: Permission denied")));
    }

    fn not_found() -> FirewallError {
        FirewallError::NotFound {
            program: NFT,
            family: InFamily(None),
        }
    }

    #[test]
    fn errors_name_the_command_and_its_stderr() {
        let err = FirewallError::Failed {
            command: APPLY.label.to_owned(),
            family: InFamily(None),
            status: "exit status 1".to_owned(),
            stderr: "Error: Could not process rule: Operation not supported".to_owned(),
        };
        assert_eq!(
            err.to_string(),
            "nft -j -f - failed: exit status 1: Error: Could not process rule: Operation not supported"
        );
        assert_eq!(not_found().to_string(), "nft not found in PATH");
    }
}
