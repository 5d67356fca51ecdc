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
//! 2. the bridges `cnirsb-ours`, `cnirsb-ref`;
//! 3. any `nat` chain still carrying a masquerade comment for a bench network
//!    (left when a namespace vanished without a DEL), in one
//!    `iptables-restore` batch per family;
//! 4. stale lease directories `/tmp/cnirsb-*` (only at start, see
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
    /// What could not be removed.
    pub errors: Vec<String>,
}

impl Swept {
    /// Whether anything was found.
    pub fn is_empty(&self) -> bool {
        self.namespaces + self.bridges + self.chains == 0 && self.errors.is_empty()
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "{} namespace(s), {} bridge(s), {} leftover chain(s){}",
            self.namespaces,
            self.bridges,
            self.chains,
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

/// Removes every namespace, bridge and chain with the bench prefix; see the
/// module docs. `impls` are used for the DELs (a namespace of an
/// implementation not in the list is just deleted).
pub fn sweep(impls: &[Impl]) -> Swept {
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
}
