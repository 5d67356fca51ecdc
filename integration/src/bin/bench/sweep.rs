//! Removing everything the bench creates, whatever state a run left.
//!
//! The same sweep runs at start (leftovers of an interrupted earlier run) and
//! at exit (from the clean-up guard, also after an error or Ctrl-C). It is
//! idempotent and finds its targets by the [`PREFIX`] every bench name
//! carries:
//!
//! 1. namespaces `cnirsb-<impl>-...`: a DEL through that implementation's
//!    bridge (removing the veth, the lease and the masquerade chains as a
//!    runtime would), then `ip netns del`;
//! 2. the bridges `cnirsb-ours`, `cnirsb-ref`, `cnirsb-nft`;
//! 3. any `nat` chain still carrying a masquerade comment for a bench network
//!    (left when a namespace vanished without a DEL), in one
//!    `iptables-restore` batch per family;
//! 4. any rule of the nftables backend's chain
//!    `inet cni_plugins_masquerade masq_checks` whose comment names a bench
//!    network (`net: cnirsb-…`), in one `nft -f -` batch; then the table
//!    itself when the bench owns it (it was absent when the run started, see
//!    [`claim_nft_table`]) and no rule is left in `masq_checks`;
//! 5. stale lease directories `/tmp/cnirsb-*` (only at start, see
//!    [`remove_stale_dirs`]).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::BenchResult;
use crate::exec::Invocation;
use crate::host;
use crate::impls::{Impl, Kind, PREFIX};
use crate::pod::Pod;
use crate::{pod, pool};

/// What a sweep removed.
#[derive(Debug, Default)]
pub struct Swept {
    /// Namespaces deleted.
    pub namespaces: usize,
    /// Bridges deleted.
    pub bridges: usize,
    /// Masquerade chains removed directly (not by a DEL).
    pub chains: usize,
    /// nftables masquerade rules removed directly (not by a DEL).
    pub rules: usize,
    /// Whether the (owned, empty) nftables masquerade table was deleted.
    pub table: bool,
    /// What could not be removed.
    pub errors: Vec<String>,
}

impl Swept {
    /// Whether anything was found (deleting the owned table at the end of a
    /// run is expected, not a leftover).
    pub fn is_empty(&self) -> bool {
        self.namespaces + self.bridges + self.chains + self.rules == 0 && self.errors.is_empty()
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "{} namespace(s), {} bridge(s), {} leftover chain(s), {} nftables rule(s){}{}",
            self.namespaces,
            self.bridges,
            self.chains,
            self.rules,
            if self.table {
                ", the nftables masquerade table"
            } else {
                ""
            },
            if self.errors.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} error(s): {}",
                    self.errors.len(),
                    self.errors.join("; ")
                )
            }
        )
    }
}

/// Removes every namespace, bridge, chain and nftables rule with the bench
/// prefix, and the nftables masquerade table when `owns_table` and it is
/// empty; see the module docs. `impls` are used for the DELs (a namespace
/// of an implementation not in the list is just deleted).
pub fn sweep(impls: &[Impl], owns_table: bool) -> Swept {
    let mut swept = Swept::default();
    sweep_namespaces(impls, &mut swept);
    for kind in Kind::ALL {
        match host::link_del(&kind.network()) {
            Ok(true) => swept.bridges += 1,
            Ok(false) => {}
            Err(e) => swept.errors.push(e.to_string()),
        }
    }
    for program in ["iptables", "ip6tables"] {
        match remove_chains(program) {
            Ok(n) => swept.chains += n,
            Err(e) => swept.errors.push(e.to_string()),
        }
    }
    match remove_nft_rules(owns_table) {
        Ok((rules, table)) => {
            swept.rules += rules;
            swept.table |= table;
        }
        Err(e) => swept.errors.push(e.to_string()),
    }
    swept
}

fn sweep_namespaces(impls: &[Impl], swept: &mut Swept) {
    let names = match host::netns_list() {
        Ok(names) => names,
        Err(e) => {
            swept.errors.push(e.to_string());
            return;
        }
    };
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    let never = crate::signals::Interrupt::default();
    let errors = pool::run(names.len(), 4, false, &never, |i| {
        let name = &names[i];
        let owner = impls
            .iter()
            .find(|imp| name.starts_with(&format!("{}-", imp.network)));
        let mut del_error = None;
        if let Some(imp) = owner {
            let pod = Pod::adopt(name);
            if let Err(e) = pod::del(imp, &pod) {
                del_error = Some(e.to_string());
            }
        }
        host::netns_del(name)?;
        match del_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    });
    swept.namespaces += names.len();
    swept.errors.extend(errors);
}

/// Removes `nat` chains whose rules carry a bench network's masquerade
/// comment, and the `POSTROUTING` jumps to them. Returns how many chains.
fn remove_chains(program: &str) -> BenchResult<usize> {
    let listing = host::run_ok(program, &["-w", "-t", "nat", "-S"])?;
    let (jumps, chains) = bench_chains(&listing);
    if chains.is_empty() {
        return Ok(0);
    }
    let mut batch = String::from("*nat\n");
    for jump in &jumps {
        let _ = writeln!(batch, "-D {jump}");
    }
    for chain in &chains {
        let _ = writeln!(batch, "-F {chain}\n-X {chain}");
    }
    batch.push_str("COMMIT\n");
    Invocation::new(format!("{program}-restore"))
        .arg("--noflush")
        .arg("--wait")
        .stdin(batch)
        .run_ok(&format!(
            "{program}-restore (removing leftover bench chains)"
        ))?;
    Ok(chains.len())
}

/// From `iptables -t nat -S`: the `POSTROUTING` rules (without `-A `) that
/// jump to a chain for a bench network, and the names of those chains.
fn bench_chains(listing: &str) -> (Vec<String>, BTreeSet<String>) {
    let marker = format!("name: \\\"{PREFIX}");
    let mut jumps = Vec::new();
    let mut chains = BTreeSet::new();
    for line in listing.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        if !rule.contains(&marker) {
            continue;
        }
        let mut words = rule.split_whitespace();
        let chain = words.next().unwrap_or_default();
        let target = rule
            .split(" -j ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap_or_default();
        if chain == "POSTROUTING" && target.starts_with("CNI-") {
            jumps.push(rule.to_string());
            chains.insert(target.to_string());
        } else if chain.starts_with("CNI-") {
            chains.insert(chain.to_string());
        }
    }
    (jumps, chains)
}

/// The nftables masquerade backend's shared table (upstream's name).
const NFT_TABLE: &str = "cni_plugins_masquerade";

/// Its chain of per-address rules.
const NFT_CHAIN: &str = "masq_checks";

/// Exists while the bench owns [`NFT_TABLE`]: created when a run starts
/// without the table, removed once a run ended with it swept. A run that
/// could not clean up (a second Ctrl-C) leaves it, so the next run still
/// deletes the table it left.
const NFT_MARKER: &str = "/run/cni-rs-bench.nft-table";

/// Whether `inet cni_plugins_masquerade` exists.
fn nft_table_exists() -> BenchResult<bool> {
    let tables = host::run_ok("nft", &["list", "tables", "inet"])?;
    let wanted = format!("table inet {NFT_TABLE}");
    Ok(tables.lines().any(|l| l.trim() == wanted))
}

/// Whether this run may delete the nftables masquerade table at the end:
/// it did not exist when the run started (or an earlier run that owned it
/// did not finish its clean-up). Records the claim in [`NFT_MARKER`]. Call
/// before the first sweep, holding the bench lock.
///
/// # Errors
///
/// When `nft` cannot list the tables or the marker cannot be written.
pub fn claim_nft_table() -> BenchResult<bool> {
    if Path::new(NFT_MARKER).exists() {
        return Ok(true);
    }
    let exists = nft_table_exists()
        .map_err(|e| format!("{e} (the bench needs nft to clean up: apt-get install nftables)"))?;
    if exists {
        return Ok(false);
    }
    std::fs::write(NFT_MARKER, "")?;
    Ok(true)
}

/// Drops the claim of [`claim_nft_table`], once the run has cleaned up.
pub fn release_nft_table() {
    let _ = std::fs::remove_file(NFT_MARKER);
}

/// `nft -a list chain inet cni_plugins_masquerade masq_checks`, or `None`
/// without the table.
fn masq_checks() -> BenchResult<Option<String>> {
    if !nft_table_exists()? {
        return Ok(None);
    }
    host::run_ok(
        "nft",
        &["-a", "list", "chain", "inet", NFT_TABLE, NFT_CHAIN],
    )
    .map(Some)
}

/// From a `masq_checks` listing with handles: how many rules it has, and
/// the handles of those whose comment names a bench network.
fn masq_rules(listing: &str) -> (usize, Vec<u64>) {
    let marker = format!("net: {PREFIX}");
    let mut total = 0;
    let mut bench = Vec::new();
    for line in listing.lines().map(str::trim) {
        if line.starts_with("table ") || line.starts_with("chain ") {
            continue;
        }
        let Some((rule, handle)) = line.rsplit_once(" # handle ") else {
            continue;
        };
        let Ok(handle) = handle.trim().parse::<u64>() else {
            continue;
        };
        total += 1;
        let comment = rule.split_once(" comment \"").map(|(_, c)| c);
        if comment.is_some_and(|c| c.contains(&marker)) {
            bench.push(handle);
        }
    }
    (total, bench)
}

/// Deletes the bench's rules from `masq_checks`, then the table when
/// `owns_table` and no rule is left. Returns the rules deleted and whether
/// the table was.
fn remove_nft_rules(owns_table: bool) -> BenchResult<(usize, bool)> {
    let Some(listing) = masq_checks()? else {
        return Ok((0, false));
    };
    let (total, handles) = masq_rules(&listing);
    if !handles.is_empty() {
        let mut batch = String::new();
        for handle in &handles {
            let _ = writeln!(
                batch,
                "delete rule inet {NFT_TABLE} {NFT_CHAIN} handle {handle}"
            );
        }
        Invocation::new("nft")
            .arg("-f")
            .arg("-")
            .stdin(batch)
            .run_ok("nft (removing leftover bench masquerade rules)")?;
    }
    let table = owns_table && total == handles.len();
    if table {
        host::run_ok("nft", &["delete", "table", "inet", NFT_TABLE])?;
    }
    Ok((handles.len(), table))
}

/// What the sweep should have removed from nftables but is still there:
/// the number of bench rules in `masq_checks`, and whether the table is
/// still there although `owns_table` and no rule is left in it.
///
/// # Errors
///
/// When `nft` fails.
pub fn nft_leftovers(owns_table: bool) -> BenchResult<(usize, bool)> {
    let Some(listing) = masq_checks()? else {
        return Ok((0, false));
    };
    let (total, bench) = masq_rules(&listing);
    Ok((bench.len(), owns_table && total == 0))
}

/// Deletes `<tmp>/cnirsb-*` directories: lease dirs of earlier runs. Only
/// safe while holding the bench lock (no other bench is running).
pub fn remove_stale_dirs(tmp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bench_chains_and_their_jumps_only() {
        let listing = r#"-P PREROUTING ACCEPT
-P POSTROUTING ACCEPT
-N CNI-aaa
-N CNI-bbb
-A POSTROUTING -s 10.251.0.2/32 -m comment --comment "name: \"cnirsb-ours\" id: \"cnirsb-ours-1-2-x\"" -j CNI-aaa
-A POSTROUTING -s 10.85.0.2/32 -m comment --comment "name: \"crio\" id: \"abc\"" -j CNI-bbb
-A CNI-aaa -d 10.251.0.0/16 -m comment --comment "name: \"cnirsb-ours\" id: \"cnirsb-ours-1-2-x\"" -j ACCEPT
-A CNI-ccc ! -d 224.0.0.0/4 -m comment --comment "name: \"cnirsb-ref\" id: \"y\"" -j MASQUERADE
-A CNI-bbb -d 10.85.0.0/16 -m comment --comment "name: \"crio\" id: \"abc\"" -j ACCEPT
"#;
        let (jumps, chains) = bench_chains(listing);
        assert_eq!(jumps.len(), 1);
        assert!(jumps[0].starts_with("POSTROUTING -s 10.251.0.2/32"));
        assert_eq!(
            chains.into_iter().collect::<Vec<_>>(),
            vec!["CNI-aaa".to_string(), "CNI-ccc".to_string()]
        );
    }

    #[test]
    fn finds_bench_rules_in_masq_checks() {
        let listing = r#"table inet cni_plugins_masquerade {
	chain masq_checks { # handle 2
		comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
		ip saddr 10.253.0.2 ip daddr != 10.253.0.0/16 masquerade comment "0123456789abcdef-fedcba9876543210, net: cnirsb-nft, if: eth0, id: cnirsb-nft-1-2-x" # handle 5
		ip6 saddr fd13::2 ip6 daddr != fd13::/64 masquerade comment "0123456789abcdef-fedcba9876543210, net: cnirsb-nft, if: eth0, id: cnirsb-nft-1-2-x" # handle 6
		ip saddr 10.85.0.2 ip daddr != 10.85.0.0/16 masquerade comment "1111111111111111-2222222222222222, net: crio, if: eth0, id: abc" # handle 7
		ip saddr 10.9.0.2 masquerade comment "id: cnirsb-not-a-network" # handle 8
	}
}
"#;
        assert_eq!(masq_rules(listing), (4, vec![5, 6]));
        let empty =
            "table inet cni_plugins_masquerade {\n\tchain masq_checks { # handle 2\n\t}\n}\n";
        assert_eq!(masq_rules(empty), (0, Vec::new()));
    }
}
