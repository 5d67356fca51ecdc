//! IP masquerade through iptables: the reference plugin's rules, programmed
//! with one `iptables-restore` batch per family, or, on an iptables-nft node,
//! written over nf_tables netlink by [`super::iptables_nft`].
//!
//! The rules are byte-compatible with the reference plugin's iptables backend: the same
//! `CNI-<hash>` chain in table `nat`, the same comment, and the same three kinds of rules
//! (an `ACCEPT` per subnet, a `MASQUERADE` except multicast, and a `POSTROUTING` jump
//! per address). A chain created by either implementation is found and removed by the
//! other; the reference's DEL leaks them when the namespace is gone, ours does not.
//!
//! The difference is the cost. The reference runs about 18 `iptables` processes per ADD.
//! Here every step is one `iptables-restore` (IPv4) or `ip6tables-restore` (IPv6) batch,
//! run with `--noflush --wait` and the batch on stdin. The two families run concurrently.
//! The binaries are looked up in `PATH`, like the reference's `iptables`, so whichever
//! alternative the node selected (nft or legacy) is the one that is used. When that is
//! iptables-nft, [`Iptables`] runs no helper at all: the same rules go over netlink.
//! The free functions of this module always use the helpers.
//!
//! ```no_run
//! use bridge::masq::{self, IpNetwork};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let addrs: Vec<IpNetwork> = vec!["10.85.0.2/16".parse()?, "1100:200::2/24".parse()?];
//! masq::setup("crio", "abc123", &addrs)?;
//! assert!(masq::exists("crio", "abc123")?.v4);
//! // DEL works without the addresses too: the chain is derived from name + ID.
//! masq::teardown("crio", "abc123", &[])?;
//! # Ok(())
//! # }
//! ```

use std::cell::{OnceCell, RefCell};
use std::fmt::Write as _;

use super::helper::{Helper, Started, on_path};
use super::iptables_nft::{self, Applied};
use super::{Family, Firewall, FirewallError, PendingChange, Target};
use crate::pending::Pending;
use cni_types::config::Attachment;

/// The address type used by this module, re-exported so callers need no direct dependency.
pub use ipnetwork::IpNetwork;
use sha2::{Digest, Sha512};

/// The builtin chain that receives the per-address jumps.
const POSTROUTING: &str = "POSTROUTING";

/// The arguments of every `*-restore` run.
const RESTORE_ARGS: &[&str] = &["--noflush", "--wait"];
/// The arguments of a listing.
const LIST_ARGS: &[&str] = &["-w", "-t", "nat", "-S"];

/// The helper that applies a batch in `family`.
fn restore_helper(family: Family) -> Helper {
    let program = match family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    };
    Helper {
        program,
        args: RESTORE_ARGS,
        family: Some(family),
        label: program,
    }
}

/// The helper that lists `family`'s `nat` table.
fn list_helper(family: Family) -> Helper {
    let (program, label) = match family {
        Family::V4 => ("iptables", "iptables -t nat -S"),
        Family::V6 => ("ip6tables", "ip6tables -t nat -S"),
    };
    Helper {
        program,
        args: LIST_ARGS,
        family: Some(family),
        label,
    }
}

/// The multicast range of `family`, which is never masqueraded.
fn multicast(family: Family) -> &'static str {
    match family {
        Family::V4 => "224.0.0.0/4",
        Family::V6 => "ff00::/8",
    }
}

/// The prefix length of a single host (`/32` or `/128`).
fn host_prefix(family: Family) -> u8 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

/// In which families a container's `CNI-…` chain exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presence {
    /// The chain exists in the IPv4 `nat` table.
    pub v4: bool,
    /// The chain exists in the IPv6 `nat` table.
    pub v6: bool,
}

impl Presence {
    /// Whether the chain exists in `family`.
    #[must_use]
    pub fn get(self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    /// Whether the chain exists in any family.
    #[must_use]
    pub fn any(self) -> bool {
        self.v4 || self.v6
    }

    /// Records that the chain exists (or not) in `family`.
    pub(crate) fn set(&mut self, family: Family, present: bool) {
        match family {
            Family::V4 => self.v4 = present,
            Family::V6 => self.v6 = present,
        }
    }
}

/// The chain of a container: `"CNI-"` + the first 24 hex chars of
/// `sha512(network + container_id)`, 28 chars in total.
#[must_use]
pub fn chain_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::new()
        .chain_update(network.as_bytes())
        .chain_update(container_id.as_bytes())
        .finalize();
    let mut name = String::with_capacity(28);
    name.push_str("CNI-");
    for byte in &digest[..12] {
        // Writing to a String cannot fail.
        let _ = write!(name, "{byte:02x}");
    }
    name
}

/// The rule comment: `name: "<network>" id: "<containerID>"`, with Go `%q` quoting.
#[must_use]
pub fn comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Quotes like Go's `%q` for ASCII input: backslash escapes for `"`, `\` and control
/// characters. Other characters are kept (the dispatcher restricts names and IDs anyway).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes one argument for an `iptables-restore` line: inside double quotes a backslash
/// takes the next character literally. This is also how `iptables -S` prints comments.
fn restore_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The rule texts of one container, without the leading `-A`/`-D`.
#[derive(Debug)]
struct Rules {
    /// The `CNI-…` chain.
    chain: String,
    /// The comment, already quoted for a restore line.
    comment: String,
}

impl Rules {
    /// The rules of `container_id` on `network`.
    fn new(network: &str, container_id: &str) -> Self {
        Self {
            chain: chain_name(network, container_id),
            comment: restore_quote(&comment(network, container_id)),
        }
    }

    /// `<chain> -d <network/len> … -j ACCEPT`: traffic inside the subnet is not masqueraded.
    fn accept(&self, addr: &IpNetwork) -> String {
        format!(
            "{} -d {}/{} -m comment --comment {} -j ACCEPT",
            self.chain,
            addr.network(),
            addr.prefix(),
            self.comment
        )
    }

    /// `<chain> ! -d <multicast> … -j MASQUERADE`: everything else is.
    fn masquerade(&self, family: Family) -> String {
        format!(
            "{} ! -d {} -m comment --comment {} -j MASQUERADE",
            self.chain,
            multicast(family),
            self.comment
        )
    }

    /// `POSTROUTING -s <ip>/32 … -j <chain>`: the jump for one address (`/128` for IPv6).
    fn jump(&self, addr: &IpNetwork) -> String {
        format!(
            "{POSTROUTING} -s {}/{} -m comment --comment {} -j {}",
            addr.ip(),
            host_prefix(Family::of(addr)),
            self.comment,
            self.chain
        )
    }

    /// The chain's rules and the jumps to it for `addrs`, all of `family`, as `-A` lines.
    /// Like the reference's `AppendUnique`, a rule is added once even if two addresses
    /// share a subnet (or an address is repeated).
    fn append_lines(&self, family: Family, addrs: &[IpNetwork]) -> Vec<String> {
        let accepts = addrs.iter().map(|a| format!("-A {}", self.accept(a)));
        let masquerade = std::iter::once(format!("-A {}", self.masquerade(family)));
        let jumps = addrs.iter().map(|a| format!("-A {}", self.jump(a)));
        unique(accepts.chain(masquerade).chain(jumps))
    }
}

/// The lines in order, without repeats.
fn unique(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// Wraps restore lines into a `nat` table transaction.
fn batch(lines: impl IntoIterator<Item = String>) -> String {
    let mut out = String::from("*nat\n");
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    out
}

/// The first-ADD batch: `-N` fails if the chain already exists, which makes the whole
/// batch fail atomically and sends [`setup`] to [`rewrite_batch`].
fn create_batch(rules: &Rules, family: Family, addrs: &[IpNetwork]) -> String {
    let create = std::iter::once(format!("-N {}", rules.chain));
    batch(create.chain(rules.append_lines(family, addrs)))
}

/// The repeated-ADD batch: delete the jumps found by listing (`stale`, as `-D` lines),
/// declare the chain (creates it, or flushes it under `--noflush`), then add everything.
fn rewrite_batch(rules: &Rules, family: Family, addrs: &[IpNetwork], stale: &[String]) -> String {
    let declare = std::iter::once(format!(":{} - [0:0]", rules.chain));
    batch(
        stale
            .iter()
            .cloned()
            .chain(declare)
            .chain(rules.append_lines(family, addrs)),
    )
}

/// The fast DEL batch when the addresses are known: delete our jumps, flush and delete
/// the chain. Fails atomically if any of it is absent or another jump still references it.
fn teardown_batch(rules: &Rules, addrs: &[IpNetwork]) -> String {
    let jumps = unique(addrs.iter().map(|a| format!("-D {}", rules.jump(a))));
    let chain = [
        format!(":{} - [0:0]", rules.chain),
        format!("-X {}", rules.chain),
    ];
    batch(jumps.into_iter().chain(chain))
}

/// What `iptables -t nat -S` says about one chain.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    /// Every POSTROUTING rule that jumps to the chain, as a `-D` restore line.
    jumps: Vec<String>,
    /// Whether the chain is declared (`-N <chain>`).
    chain_exists: bool,
}

/// Finds the chain and the POSTROUTING rules that jump (or go) to it in `-S` output.
/// Such a line with `-A` replaced by `-D` is a valid restore line for the same rule.
fn parse_listing(text: &str, chain: &str) -> Listing {
    let declaration = format!("-N {chain}");
    let jump = format!(" -j {chain}");
    let goto = format!(" -g {chain}");
    let mut listing = Listing::default();
    for line in text.lines().map(str::trim_end) {
        if line == declaration {
            listing.chain_exists = true;
        } else if let Some(rule) = line.strip_prefix("-A POSTROUTING ")
            && (rule.ends_with(&jump) || rule.ends_with(&goto))
        {
            listing.jumps.push(format!("-D {POSTROUTING} {rule}"));
        }
    }
    listing
}

/// The slow DEL batch built from a listing; `None` when there is nothing to remove.
fn cleanup_batch(chain: &str, listing: &Listing) -> Option<String> {
    if listing.jumps.is_empty() && !listing.chain_exists {
        return None;
    }
    let drop_chain = [format!(":{chain} - [0:0]"), format!("-X {chain}")]
        .into_iter()
        .filter(|_| listing.chain_exists);
    Some(batch(listing.jumps.iter().cloned().chain(drop_chain)))
}

/// Runs one `*-restore --noflush --wait` transaction with `batch` on stdin,
/// on `started` (a process of [`Prestarted`]) when there is one. Either
/// every line applies or none does.
fn restore(family: Family, batch: &str, started: Option<Started>) -> Result<(), FirewallError> {
    let started = match started {
        Some(started) => started,
        None => restore_helper(family).start()?,
    };
    started.finish(batch.as_bytes()).map(drop)
}

/// `*-restore` processes started before the container's addresses are known,
/// each blocked reading its batch: their start-up (loading the iptables
/// libraries and extensions) then overlaps IPAM instead of following it.
/// [`setup_prestarted`] feeds them; one that is not used is killed before it
/// has read anything, so it has changed nothing.
#[derive(Debug, Default)]
pub struct Prestarted {
    v4: Option<Started>,
    v6: Option<Started>,
}

impl Prestarted {
    /// Starts one `*-restore` per family in `families`. One that cannot be
    /// started is left out; [`setup_prestarted`] then starts it itself and
    /// reports the error.
    pub fn start(families: &[Family]) -> Prestarted {
        let mut prestarted = Prestarted::default();
        for &family in families {
            let slot = prestarted.slot(family);
            if slot.is_none() {
                *slot = restore_helper(family).start().ok();
            }
        }
        prestarted
    }

    fn slot(&mut self, family: Family) -> &mut Option<Started> {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }
}

/// Lists the whole `nat` table of `family` (`iptables -w -t nat -S`). Read-only.
fn list(family: Family) -> Result<String, FirewallError> {
    list_helper(family).read()
}

/// The addresses of `family` in `addrs`.
fn of_family(addrs: &[IpNetwork], family: Family) -> Vec<IpNetwork> {
    addrs
        .iter()
        .filter(|a| Family::of(a) == family)
        .copied()
        .collect()
}

/// Runs `op` for each `(family, addresses)` job concurrently (one scoped thread per
/// extra job) and returns the results in job order.
fn run_concurrently<T, F>(jobs: &[(Family, Vec<IpNetwork>)], op: F) -> Vec<T>
where
    T: Send,
    F: Fn(Family, &[IpNetwork]) -> T + Sync,
{
    std::thread::scope(|scope| {
        let op = &op;
        let handles: Vec<_> = jobs
            .iter()
            .skip(1)
            .map(|(family, addrs)| scope.spawn(move || op(*family, addrs)))
            .collect();
        let first = jobs.first().map(|(family, addrs)| op(*family, addrs));
        let rest = handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        first.into_iter().chain(rest).collect()
    })
}

/// Sets up one family. The first ADD costs one process: [`create_batch`].
///
/// That batch starts with `-N`, so it fails (atomically, changing nothing) exactly when
/// the chain already exists, i.e. on a repeated ADD. Only then do we list the table and
/// run [`rewrite_batch`], which deletes every jump to the chain that exists (whatever its
/// address or form), flushes the chain and adds everything again: one jump per address.
/// The alternative of trying `-D <jump>` first costs a failed restore on every first ADD
/// (two processes, roughly twice the time) and still keeps stale jumps of other addresses.
fn setup_family(
    rules: &Rules,
    family: Family,
    addrs: &[IpNetwork],
    started: Option<Started>,
) -> Result<(), FirewallError> {
    match restore(family, &create_batch(rules, family, addrs), started) {
        Err(e) if !e.is_not_found() => {
            let listing = parse_listing(&list(family)?, &rules.chain);
            restore(
                family,
                &rewrite_batch(rules, family, addrs, &listing.jumps),
                None,
            )
        }
        done => done,
    }
}

/// Tears down one family: the fast batch when addresses are known, else (or when it
/// fails) list the table and remove exactly what is there. A missing binary means the
/// family was never set up, so it is skipped.
fn teardown_family(
    rules: &Rules,
    family: Family,
    addrs: &[IpNetwork],
) -> Result<(), FirewallError> {
    if !addrs.is_empty() {
        match restore(family, &teardown_batch(rules, addrs), None) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(_) => {}
        }
    }
    let text = match list(family) {
        Err(e) if e.is_not_found() => return Ok(()),
        other => other?,
    };
    match cleanup_batch(&rules.chain, &parse_listing(&text, &rules.chain)) {
        Some(batch) => restore(family, &batch, None),
        None => Ok(()),
    }
}

/// Masquerades traffic from `addresses` of a container.
///
/// For each family that has addresses, one `*-restore` batch in table `nat` creates the
/// chain `CNI-<hash>` with an `ACCEPT` rule per address's subnet and one `MASQUERADE`
/// rule (except multicast), and a `POSTROUTING` jump per address. The families run
/// concurrently.
///
/// Calling it again for the same container rewrites the chain and leaves exactly one
/// jump per given address (costing a listing and a second batch for that family).
/// No addresses: nothing is done.
///
/// # Errors
///
/// [`FirewallError`] when a binary is missing or a batch fails. A batch is atomic, but the
/// families are independent: the other family may be set up, so undo with [`teardown`].
/// If both fail, the IPv4 error comes first with the IPv6 one in the message.
pub fn setup(
    network: &str,
    container_id: &str,
    addresses: &[IpNetwork],
) -> Result<(), FirewallError> {
    setup_prestarted(network, container_id, addresses, Prestarted::default())
}

/// [`setup`], using the processes of `prestarted` for the first batch of
/// their family. Those of a family without addresses are killed unused.
///
/// # Errors
///
/// As [`setup`].
pub fn setup_prestarted(
    network: &str,
    container_id: &str,
    addresses: &[IpNetwork],
    prestarted: Prestarted,
) -> Result<(), FirewallError> {
    let rules = Rules::new(network, container_id);
    let jobs: Vec<_> = Family::ALL
        .into_iter()
        .map(|f| (f, of_family(addresses, f)))
        .filter(|(_, addrs)| !addrs.is_empty())
        .collect();
    let prestarted = std::sync::Mutex::new(prestarted);
    FirewallError::combine(run_concurrently(&jobs, |f, addrs| {
        let started = prestarted.lock().ok().and_then(|mut p| p.slot(f).take());
        setup_family(&rules, f, addrs, started)
    }))
}

/// Removes a container's masquerade rules in both families.
///
/// Deletes every `POSTROUTING` jump to the container's chain, then flushes and deletes
/// the chain. `addresses` only choose the fast path (one batch per family); when they
/// are empty or do not match what is installed (for example the legacy `-s <ip>/<len>`
/// jump of old reference versions), the `nat` table is listed and exactly the rules
/// found are removed. So it also works after the netns is gone, which the reference
/// leaks. Idempotent: nothing to remove is `Ok`. A family whose binary
/// is missing is skipped.
///
/// # Errors
///
/// [`FirewallError`] when listing or a batch fails. Both families are always tried; if both
/// fail the IPv4 error comes first with the IPv6 one in the message.
pub fn teardown(
    network: &str,
    container_id: &str,
    addresses: &[IpNetwork],
) -> Result<(), FirewallError> {
    let rules = Rules::new(network, container_id);
    let jobs: Vec<_> = Family::ALL
        .into_iter()
        .map(|f| (f, of_family(addresses, f)))
        .collect();
    FirewallError::combine(run_concurrently(&jobs, |f, addrs| {
        teardown_family(&rules, f, addrs)
    }))
}

/// Container IDs that have masquerade rules of `network` in either family,
/// found by the comment every rule carries (chain names are one-way hashes).
/// Used by GC; another network's rules never match.
///
/// # Errors
/// [`FirewallError`] when a table cannot be listed (a missing binary counts as an
/// empty table).
pub fn attached_containers(network: &str) -> Result<Vec<String>, FirewallError> {
    let mut ids: Vec<String> = Vec::new();
    for family in Family::ALL {
        let text = match list(family) {
            Ok(text) => text,
            Err(err) if err.is_not_found() => continue,
            Err(err) => return Err(err),
        };
        for id in ids_in_listing(&text, network) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The container IDs named by `name: "<network>" id: "<id>"` comments in an
/// `iptables -S` listing (which escapes the quotes with backslashes).
fn ids_in_listing(text: &str, network: &str) -> Vec<String> {
    let marker = format!("--comment \"name: \\\"{network}\\\" id: \\\"");
    let mut ids: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(start) = line.find(&marker) else {
            continue;
        };
        let rest = &line[start + marker.len()..];
        if let Some(end) = rest.find("\\\"") {
            let id = rest[..end].to_owned();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Reports in which families the container's chain exists, by listing both `nat`
/// tables concurrently. Read-only. A family whose binary is missing reports `false`.
///
/// # Errors
///
/// [`FirewallError`] when a listing fails.
pub fn exists(network: &str, container_id: &str) -> Result<Presence, FirewallError> {
    let chain = chain_name(network, container_id);
    let jobs = Family::ALL.map(|f| (f, Vec::new()));
    let results = run_concurrently(&jobs, |f, _| match list(f) {
        Ok(text) => Ok((f, parse_listing(&text, &chain).chain_exists)),
        Err(e) if e.is_not_found() => Ok((f, false)),
        Err(e) => Err(e),
    });
    let mut presence = Presence::default();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok((family, present)) => presence.set(family, present),
            Err(e) => errors.push(Err(e)),
        }
    }
    FirewallError::combine(errors).map(|()| presence)
}

/// Masquerade with the reference's iptables rules: the [`Firewall`] of
/// `ipMasq`. On an iptables-nft node they are written over nf_tables
/// netlink as iptables-nft writes them ([`iptables_nft`]); elsewhere, and
/// for a shape that module leaves to iptables, through `iptables-restore`.
#[derive(Debug, Default)]
pub struct Iptables {
    /// Helpers started by [`Firewall::prepare`] for the next setup.
    prepared: RefCell<Option<Pending<'static, Prestarted>>>,
    /// Or, over netlink, what it read of the tables.
    looked_up: RefCell<Option<Pending<'static, Result<iptables_nft::LookedUp, FirewallError>>>>,
    /// Whether this node's iptables is iptables-nft, once asked.
    over_netlink: OnceCell<bool>,
}

impl Iptables {
    /// Whether the rules go over nf_tables netlink here.
    fn over_netlink(&self) -> bool {
        *self.over_netlink.get_or_init(iptables_nft::node_uses_nft)
    }
}

/// Sets up `target` over netlink after `looked_up`, or through the helpers
/// for a shape left to them.
fn setup_over_netlink(
    target: &Target,
    looked_up: Option<Result<iptables_nft::LookedUp, FirewallError>>,
) -> Result<(), FirewallError> {
    let (network, id, addresses) = (&target.network, &target.container_id, &target.addresses);
    match iptables_nft::setup_after(looked_up, network, id, addresses)? {
        Applied::Done => Ok(()),
        Applied::Unproven(_) => setup(network, id, addresses),
    }
}

impl Firewall for Iptables {
    fn prepare(&self, target: &Target, families: &[Family]) {
        let families = families.to_vec();
        if self.over_netlink() {
            let (network, id) = (target.network.clone(), target.container_id.clone());
            let looked_up =
                Pending::on_thread(move || iptables_nft::look_up(&network, &id, &families));
            *self.looked_up.borrow_mut() = Some(looked_up);
            return;
        }
        let started = Pending::on_thread(move || Prestarted::start(&families));
        *self.prepared.borrow_mut() = Some(started);
    }

    fn start_setup(&self, target: &Target) -> PendingChange<'_> {
        let target = target.clone();
        if self.over_netlink() {
            let looked_up = self.looked_up.take().map(Pending::finish);
            return Pending::on_thread(move || setup_over_netlink(&target, looked_up));
        }
        let prestarted = self.prepared.take().map(Pending::finish);
        Pending::on_thread(move || {
            setup_prestarted(
                &target.network,
                &target.container_id,
                &target.addresses,
                prestarted.unwrap_or_default(),
            )
        })
    }

    fn start_teardown(&self, target: &Target) -> PendingChange<'_> {
        let target = target.clone();
        let over_netlink = self.over_netlink();
        Pending::on_thread(move || {
            let (network, id) = (&target.network, &target.container_id);
            if over_netlink {
                iptables_nft::teardown(network, id)
            } else {
                teardown(network, id, &target.addresses)
            }
        })
    }

    fn check(&self, target: &Target) -> Result<(), FirewallError> {
        let (network, id) = (&target.network, &target.container_id);
        let presence = if self.over_netlink() {
            iptables_nft::exists(network, id)?
        } else {
            exists(network, id)?
        };
        match target
            .addresses
            .iter()
            .find(|ip| !presence.get(Family::of(ip)))
        {
            None => Ok(()),
            Some(ip) => Err(FirewallError::Missing(format!(
                "masquerade chain {} for address {ip} not found",
                chain_name(network, id)
            ))),
        }
    }

    fn collect(&self, network: &str, valid: &[Attachment]) -> Result<(), FirewallError> {
        let over_netlink = self.over_netlink();
        let attached = if over_netlink {
            iptables_nft::attached_containers(network)?
        } else {
            attached_containers(network)?
        };
        let removed = attached
            .iter()
            .filter(|id| !valid.iter().any(|a| &a.container_id == *id))
            .map(|id| match over_netlink {
                true => iptables_nft::teardown(network, id),
                false => teardown(network, id, &[]),
            })
            .collect();
        FirewallError::combine(removed)
    }

    fn available(&self) -> Result<(), String> {
        match Family::ALL
            .map(|family| restore_helper(family).program)
            .into_iter()
            .find(|tool| !on_path(tool))
        {
            None => Ok(()),
            Some(tool) => Err(format!("ipMasq is set but {tool} is not in PATH")),
        }
    }
}

impl Drop for Iptables {
    /// Helpers prepared for a setup that never came are killed unused; a
    /// lookup is waited for.
    fn drop(&mut self) {
        if let Some(prepared) = self.prepared.get_mut().take() {
            drop(prepared.finish());
        }
        if let Some(looked_up) = self.looked_up.get_mut().take() {
            drop(looked_up.finish());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::InFamily;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    const CRIO: &str = "CNI-1fd5152973e3196c2da6eee5";
    const C: &str = r#""name: \"crio\" id: \"abc123\"""#;

    #[test]
    fn chain_names_match_the_reference() {
        assert_eq!(
            chain_name("mynet", "abc123"),
            "CNI-70a29d9dc18bc4d652ea5d59"
        );
        assert_eq!(chain_name("crio", "abc123"), CRIO);
        assert_eq!(chain_name("crio", "abc123").len(), 28);
    }

    #[test]
    fn comments_use_go_quoting() {
        assert_eq!(comment("crio", "abc123"), r#"name: "crio" id: "abc123""#);
        assert_eq!(comment(r#"a"b\c"#, "x\ny"), r#"name: "a\"b\\c" id: "x\ny""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
    }

    #[test]
    fn restore_quoting_escapes_quotes_and_backslashes() {
        assert_eq!(restore_quote(r#"name: "crio" id: "abc123""#), C);
        assert_eq!(restore_quote(r#"a\"b"#), r#""a\\\"b""#);
    }

    #[test]
    fn setup_batch_ipv4() {
        let rules = Rules::new("crio", "abc123");
        let got = create_batch(&rules, Family::V4, &[net("10.85.0.2/16")]);
        let want = format!(
            "*nat\n\
             -N {CRIO}\n\
             -A {CRIO} -d 10.85.0.0/16 -m comment --comment {C} -j ACCEPT\n\
             -A {CRIO} ! -d 224.0.0.0/4 -m comment --comment {C} -j MASQUERADE\n\
             -A POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}\n\
             COMMIT\n"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn setup_batch_ipv6() {
        let rules = Rules::new("crio", "abc123");
        let got = create_batch(&rules, Family::V6, &[net("1100:200::2/24")]);
        let want = format!(
            "*nat\n\
             -N {CRIO}\n\
             -A {CRIO} -d 1100:200::/24 -m comment --comment {C} -j ACCEPT\n\
             -A {CRIO} ! -d ff00::/8 -m comment --comment {C} -j MASQUERADE\n\
             -A POSTROUTING -s 1100:200::2/128 -m comment --comment {C} -j {CRIO}\n\
             COMMIT\n"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn setup_batch_two_addresses_of_one_family() {
        let rules = Rules::new("crio", "abc123");
        let addrs = [net("10.85.0.2/16"), net("192.168.7.9/24")];
        let got = create_batch(&rules, Family::V4, &addrs);
        let want = format!(
            "*nat\n\
             -N {CRIO}\n\
             -A {CRIO} -d 10.85.0.0/16 -m comment --comment {C} -j ACCEPT\n\
             -A {CRIO} -d 192.168.7.0/24 -m comment --comment {C} -j ACCEPT\n\
             -A {CRIO} ! -d 224.0.0.0/4 -m comment --comment {C} -j MASQUERADE\n\
             -A POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}\n\
             -A POSTROUTING -s 192.168.7.9/32 -m comment --comment {C} -j {CRIO}\n\
             COMMIT\n"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn setup_batch_adds_a_shared_subnet_once() {
        let rules = Rules::new("crio", "abc123");
        let addrs = [
            net("10.85.0.2/16"),
            net("10.85.0.3/16"),
            net("10.85.0.2/16"),
        ];
        let got = create_batch(&rules, Family::V4, &addrs);
        let want = format!(
            "*nat\n\
             -N {CRIO}\n\
             -A {CRIO} -d 10.85.0.0/16 -m comment --comment {C} -j ACCEPT\n\
             -A {CRIO} ! -d 224.0.0.0/4 -m comment --comment {C} -j MASQUERADE\n\
             -A POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}\n\
             -A POSTROUTING -s 10.85.0.3/32 -m comment --comment {C} -j {CRIO}\n\
             COMMIT\n"
        );
        assert_eq!(got, want);
        let del = teardown_batch(&rules, &addrs);
        assert_eq!(del.matches("-D POSTROUTING").count(), 2, "{del}");
    }

    #[test]
    fn rewrite_batch_deletes_stale_jumps_then_flushes() {
        let rules = Rules::new("crio", "abc123");
        let stale = [format!("-D POSTROUTING -s 10.85.0.0/16 -j {CRIO}")];
        let got = rewrite_batch(&rules, Family::V4, &[net("10.85.0.2/16")], &stale);
        let want = format!(
            "*nat\n\
             -D POSTROUTING -s 10.85.0.0/16 -j {CRIO}\n\
             :{CRIO} - [0:0]\n\
             -A {CRIO} -d 10.85.0.0/16 -m comment --comment {C} -j ACCEPT\n\
             -A {CRIO} ! -d 224.0.0.0/4 -m comment --comment {C} -j MASQUERADE\n\
             -A POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}\n\
             COMMIT\n"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn teardown_batch_ipv4_and_ipv6() {
        let rules = Rules::new("crio", "abc123");
        let v4 = teardown_batch(&rules, &[net("10.85.0.2/16")]);
        assert_eq!(
            v4,
            format!(
                "*nat\n\
                 -D POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}\n\
                 :{CRIO} - [0:0]\n\
                 -X {CRIO}\n\
                 COMMIT\n"
            )
        );
        let v6 = teardown_batch(&rules, &[net("1100:200::2/24"), net("fd00::5/64")]);
        assert_eq!(
            v6,
            format!(
                "*nat\n\
                 -D POSTROUTING -s 1100:200::2/128 -m comment --comment {C} -j {CRIO}\n\
                 -D POSTROUTING -s fd00::5/128 -m comment --comment {C} -j {CRIO}\n\
                 :{CRIO} - [0:0]\n\
                 -X {CRIO}\n\
                 COMMIT\n"
            )
        );
    }

    /// `iptables -t nat -S` with our chain (a current jump, a duplicate, and the legacy
    /// `-s ip/len` form), another container's chain and unrelated rules.
    fn sample_listing() -> String {
        let other = "CNI-70a29d9dc18bc4d652ea5d59";
        let oc = r#""name: \"mynet\" id: \"abc123\"""#;
        format!(
            "-P PREROUTING ACCEPT\n\
             -P POSTROUTING ACCEPT\n\
             -N {other}\n\
             -N {CRIO}\n\
             -N KUBE-POSTROUTING\n\
             -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
             -A POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}\n\
             -A POSTROUTING -s 10.88.0.7/32 -m comment --comment {oc} -j {other}\n\
             -A POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}\n\
             -A POSTROUTING -s 10.85.0.0/16 -m comment --comment {C} -j {CRIO}\n\
             -A {other} -d 10.88.0.0/16 -m comment --comment {oc} -j ACCEPT\n\
             -A {CRIO} -d 10.85.0.0/16 -m comment --comment {C} -j ACCEPT\n\
             -A {CRIO} ! -d 224.0.0.0/4 -m comment --comment {C} -j MASQUERADE\n\
             -A KUBE-POSTROUTING -j MASQUERADE\n"
        )
    }

    #[test]
    fn ids_are_found_by_network_comment_only() {
        let text = concat!(
            "-N CNI-aaaaaaaaaaaaaaaaaaaaaaaa\n",
            "-A POSTROUTING -s 10.85.0.2/32 -m comment --comment \"name: \\\"crio\\\" id: \\\"abc123\\\"\" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa\n",
            "-A CNI-aaaaaaaaaaaaaaaaaaaaaaaa -d 10.85.0.0/16 -m comment --comment \"name: \\\"crio\\\" id: \\\"abc123\\\"\" -j ACCEPT\n",
            "-A POSTROUTING -s 10.85.0.3/32 -m comment --comment \"name: \\\"crio\\\" id: \\\"def456\\\"\" -j CNI-bbbbbbbbbbbbbbbbbbbbbbbb\n",
            "-A POSTROUTING -s 10.88.0.3/32 -m comment --comment \"name: \\\"crio2\\\" id: \\\"zzz\\\"\" -j CNI-cccccccccccccccccccccccc\n",
        );
        assert_eq!(
            ids_in_listing(text, "crio"),
            vec!["abc123".to_owned(), "def456".to_owned()]
        );
        assert_eq!(ids_in_listing(text, "crio2"), vec!["zzz".to_owned()]);
        assert!(ids_in_listing(text, "cri").is_empty());
    }

    #[test]
    fn listing_finds_every_jump_and_nothing_else() {
        let listing = parse_listing(&sample_listing(), CRIO);
        assert!(listing.chain_exists);
        assert_eq!(
            listing.jumps,
            [
                format!("-D POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}"),
                format!("-D POSTROUTING -s 10.85.0.2/32 -m comment --comment {C} -j {CRIO}"),
                format!("-D POSTROUTING -s 10.85.0.0/16 -m comment --comment {C} -j {CRIO}"),
            ]
        );
        let batch = cleanup_batch(CRIO, &listing).unwrap();
        assert!(batch.ends_with(&format!(":{CRIO} - [0:0]\n-X {CRIO}\nCOMMIT\n")));
        assert!(!batch.contains("70a29d9d"));
        assert!(!batch.contains("KUBE"));
    }

    #[test]
    fn listing_of_an_absent_chain_is_empty() {
        let chain = chain_name("absent", "nope");
        let listing = parse_listing(&sample_listing(), &chain);
        assert_eq!(listing, Listing::default());
        assert_eq!(cleanup_batch(&chain, &listing), None);
    }

    #[test]
    fn listing_with_jumps_but_no_declaration_only_deletes_jumps() {
        let text = format!("-A POSTROUTING -s 10.85.0.2/32 -g {CRIO}\n");
        let listing = parse_listing(&text, CRIO);
        assert!(!listing.chain_exists);
        assert_eq!(
            cleanup_batch(CRIO, &listing).unwrap(),
            format!("*nat\n-D POSTROUTING -s 10.85.0.2/32 -g {CRIO}\nCOMMIT\n")
        );
    }

    #[test]
    fn listing_ignores_a_chain_whose_name_extends_ours() {
        let text = format!("-N {CRIO}x\n-A POSTROUTING -j {CRIO}x\n");
        assert_eq!(parse_listing(&text, CRIO), Listing::default());
    }

    #[test]
    fn errors_name_family_command_and_stderr() {
        let e = FirewallError::Failed {
            command: "iptables-restore".into(),
            family: InFamily(Some(Family::V4)),
            status: "exit status 1".into(),
            stderr: "iptables-restore: line 3 failed".into(),
        };
        assert_eq!(
            e.to_string(),
            "iptables-restore (IPv4) failed: exit status 1: iptables-restore: line 3 failed"
        );
        let missing = FirewallError::NotFound {
            program: restore_helper(Family::V6).program,
            family: InFamily(Some(Family::V6)),
        };
        assert_eq!(
            missing.to_string(),
            "ip6tables-restore (IPv6) not found in PATH"
        );
        let both = FirewallError::combine(vec![Err(e), Err(missing)]).unwrap_err();
        assert_eq!(
            both.to_string(),
            "iptables-restore (IPv4) failed: exit status 1: iptables-restore: line 3 failed; \
             also ip6tables-restore (IPv6) not found in PATH"
        );
        assert!(FirewallError::combine(vec![Ok(()), Ok(())]).is_ok());
    }

    #[test]
    fn addresses_split_by_family() {
        let addrs = [
            net("10.85.0.2/16"),
            net("1100:200::2/24"),
            net("10.86.0.2/16"),
        ];
        assert_eq!(of_family(&addrs, Family::V4).len(), 2);
        assert_eq!(of_family(&addrs, Family::V6), [net("1100:200::2/24")]);
    }

    #[test]
    fn concurrent_runner_keeps_job_order() {
        let jobs = Family::ALL.map(|f| (f, Vec::new()));
        assert_eq!(run_concurrently(&jobs, |f, _| f), Family::ALL);
        assert!(run_concurrently(&[], |f, _| f).is_empty());
    }
}
