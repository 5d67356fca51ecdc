//! The result table as plain text (stdout) and Markdown (`results/bench.md`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::Options;
use crate::figures::{Figures, Row, format_value};
use crate::impls::Kind;
use crate::ipv6::{self, ReadinessSamples};
use crate::machine::Facts;
use crate::rss::RssSamples;
use crate::stats::{self, Summary};

const HEADINGS: [&str; 6] = ["figure", "ours", "reference", "ours/ref", "target", "met"];

/// The cells of one row, as text.
fn cells(row: &Row) -> [String; 6] {
    let met = match row.met() {
        Some(true) => "yes",
        Some(false) => "NO",
        None if row.target.is_some() => "n/a",
        None => "",
    };
    [
        row.figure.clone(),
        format_value(row.ours, row.unit),
        format_value(row.reference, row.unit),
        row.ratio().map(|r| format!("{r:.2}")).unwrap_or_default(),
        row.target_text(),
        met.to_string(),
    ]
}

/// The table with aligned columns, for a terminal.
pub fn text(facts: &Facts, figures: &Figures) -> String {
    let rows: Vec<[String; 6]> = figures.rows().iter().map(cells).collect();
    let mut widths = HEADINGS.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 6]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i == 0 || i >= 4 {
                let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{cell}  ", " ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = String::from("cni-rs bench: ours vs reference CNI plugins\n");
    for (key, value) in facts.pairs() {
        let _ = writeln!(out, "  {key:<10} {value}");
    }
    out.push('\n');
    let headings = HEADINGS.map(str::to_string);
    let _ = writeln!(out, "{}", line(&headings));
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let _ = writeln!(out, "{}", "-".repeat(total));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    out.push_str("\nnotes:\n");
    for note in notes(figures) {
        let _ = writeln!(out, "  - {note}");
    }
    out
}

/// The same table as Markdown, with the machine facts and notes.
pub fn markdown(facts: &Facts, figures: &Figures) -> String {
    let mut out = String::from("# cni-rs bench: ours vs reference CNI plugins\n\n");
    for (key, value) in facts.pairs() {
        let _ = writeln!(out, "- **{key}**: {value}");
    }
    out.push_str("\n| ");
    out.push_str(&HEADINGS.join(" | "));
    out.push_str(" |\n|---|---:|---:|---:|---|---|\n");
    for row in figures.rows() {
        let cells = cells(&row).map(|c| c.replace('|', "\\|"));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push_str("\n![latency chart](bench.svg)\n\n## How it was measured\n\n");
    for note in notes(figures) {
        let _ = writeln!(out, "- {note}");
    }
    out
}

fn by_kind<T>(figures: &Figures, f: impl Fn(usize) -> Option<T>) -> Vec<(Kind, T)> {
    figures
        .kinds
        .iter()
        .enumerate()
        .filter_map(|(i, k)| f(i).map(|v| (*k, v)))
        .collect()
}

fn list<T>(items: &[(Kind, T)], show: impl Fn(&T) -> String) -> String {
    items
        .iter()
        .map(|(k, v)| format!("{} {}", k.label(), show(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn secs(d: &Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Method and side facts, one sentence each.
pub fn notes(figures: &Figures) -> Vec<String> {
    let mut notes = method_notes(&figures.options);
    if let Some(rss) = &figures.rss {
        notes.push(rss_note(&figures.options, rss));
    }
    notes.push(scale_note(figures));
    notes.push(parallel_note(figures));
    notes.push(nft_note(figures));
    notes.push(ipv6_note(figures));
    notes.push(cri_note(figures));
    notes
}

/// The note on the CRI phase.
fn cri_note(figures: &Figures) -> String {
    match &figures.cri.skipped {
        Some(why) => format!("RunPodSandbox and StopPodSandbox: not measured, {why}."),
        None => format!(
            "RunPodSandbox and StopPodSandbox: one private containerd (Debian's, CRI plugin, \
             runc) per implementation, its CNI bin_dir holding that implementation's plugins \
             and its conf_dir the same CRI-O config; after one untimed pod each, {} rounds \
             each run one pod per implementation, then stop and remove it, the order rotating \
             each round. The times are the CRI calls as the client (integration/clients/cri.py, \
             kubelet's side) measures them, containerd's own work (netns, pause container) \
             included.",
            figures.options.cri_runs
        ),
    }
}

/// How the nftables note names an implementation (the kind's own label
/// for ours with nftables has a comma, which a list cannot take).
fn lane_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Ours => "ours (iptables)",
        Kind::OursNftables => "ours (nftables)",
        Kind::Reference => "reference",
    }
}

/// The note on the nftables phase and the CPU measurement.
fn nft_note(figures: &Figures) -> String {
    let o = &figures.options;
    let nft = &figures.nft;
    let medians = |per: &[Vec<Duration>]| {
        nft.lanes
            .iter()
            .map(|kind| {
                let median = Summary::of(nft.of(per, *kind)).map_or_else(
                    || "n/a".to_string(),
                    |s| format!("{:.2} ms", stats::ms(s.median)),
                );
                format!("{} {median}", lane_label(*kind))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (failed, first) = &nft.parallel_failures;
    let first = first
        .as_ref()
        .map(|f| format!(" (first: {})", f.replace('\n', " ")))
        .unwrap_or_default();
    format!(
        "nftables backend: ours again with \"ipMasqBackend\": \"nftables\" added to the same \
         config (network and bridge cnirsb-nft, 10.253.0.0/16 + fd13::/64), which writes \
         upstream's table inet cni_plugins_masquerade over nf_tables netlink, no helper \
         process; the reference keeps its default iptables backend. After one untimed warm-up \
         cycle, {} rounds each run one cold ADD/DEL cycle of ours, ours with nftables and the \
         reference, the order rotating each round; ADD medians in those rounds: {}; DEL medians: {}. \
         CPU per ADD: user + system time from getrusage(RUSAGE_CHILDREN) read just before the \
         spawn and just after the reap of each of those ADDs, so it includes the children the \
         plugin reaped (host-local, iptables helpers). Then {} round(s) of {} parallel ADDs \
         and DELs with nftables (failed calls: {failed}{first}), against the reference's \
         rounds above, and {} traced ADDs; the largest process is the largest of an ADD's \
         tree (bridge, host-local, helpers), max over the ADDs.",
        o.runs,
        medians(&nft.add),
        medians(&nft.del),
        o.parallel_rounds,
        o.parallel,
        o.rss_runs,
    )
}

/// Notes on how plugins are called, the config, the rounds and VERSION.
fn method_notes(o: &Options) -> Vec<String> {
    vec![
        "Every call execs the plugin as CRI-O does: cleared environment with CNI_COMMAND, \
         CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME=eth0, CNI_PATH, CNI_ARGS \
         (IgnoreUnknown=1;K8S_POD_*) and PATH, the config on stdin. A latency runs from just \
         before the spawn until the exit is reaped and all output read."
            .to_string(),
        "Config: CRI-O's 100-crio-bridge.conf as shipped (cniVersion 0.3.1, isGateway, ipMasq, \
         hairpinMode, routes 0.0.0.0/0 and <gateway>/64); only the network and bridge names \
         (cnirsb-ours, cnirsb-ref), the subnets (10.251.0.0/16 + fd11::/64, 10.252.0.0/16 + \
         fd12::/64) and a private dataDir differ."
            .to_string(),
        format!(
            "Ours and the reference alternate inside every round and the order rotates each \
             round. Cold: {} ADD/DEL cycles per implementation, each in a fresh namespace \
             (created and deleted untimed) with no other pod on the bridge, after one untimed \
             warm-up cycle that creates the bridge. p95 is the nearest-rank 95th percentile.",
            o.runs
        ),
        format!(
            "VERSION: {} calls of bridge per implementation, as libcni's GetVersionInfo makes \
             them; /bin/true is started the same way in the same rounds, and so is our bridge \
             with CNI_TRACE=1 (one record appended per call to a private trace directory). \
             With CNI_TRACE unset the trace costs one environment lookup: that is inside the \
             plain VERSION figure.",
            o.version_runs
        ),
    ]
}

/// The note on how peak RSS was measured, with the method's floor.
fn rss_note(o: &Options, rss: &RssSamples) -> String {
    format!(
        "Peak RSS: each process's own high-water mark (VmHWM), read while it is stopped at \
         exit under ptrace (the tracer only stops and resumes, never touches memory), max \
         of {} ADDs. The target row is the larger of the two plugin processes, bridge and \
         the host-local it runs; the iptables helpers (Debian's xtables-nft-multi) are shown \
         apart. The reference runs them; ours runs none on an iptables-nft node, where it \
         writes the same rules over netlink (n/a in the row). Floor of the method (/bin/true): {:.2} MiB.",
        o.rss_runs,
        rss.floor as f64 / 1024.0
    )
}

/// The note on the scale runs, with the untimed fill and drain times.
fn scale_note(figures: &Figures) -> String {
    let o = &figures.options;
    let fill = by_kind(figures, |i| figures.scale.get(i).map(|s| (s.fill, s.drain)));
    format!(
        "Scale: per implementation, one after the other, {} timed cycles with an empty bridge, \
         then {} pods attached with its own ADD on {} threads (untimed: {}), {} timed cycles, \
         then all detached ({}).",
        o.scale_runs,
        o.pods,
        o.fill_workers,
        list(&fill, |(f, _)| secs(f)),
        o.scale_runs,
        list(&fill, |(_, d)| secs(d)),
    )
}

/// The note on the parallel runs, with failure counts and each first failure.
fn parallel_note(figures: &Figures) -> String {
    let o = &figures.options;
    let failures = by_kind(figures, |i| figures.parallel.failures.get(i).cloned());
    let mut parallel = format!(
        "Throughput: {} ADD processes started at once into fresh namespaces, all reaped, then \
         {} DELs the same way; {} round(s), median wall time. Failed calls: {}.",
        o.parallel,
        o.parallel,
        o.parallel_rounds,
        list(&failures, |(n, _)| n.to_string())
    );
    for (kind, (_, first)) in &failures {
        if let Some(first) = first {
            let _ = write!(
                parallel,
                " First {} failure: {}.",
                kind.label(),
                first.replace('\n', " ")
            );
        }
    }
    parallel
}

/// The note on IPv6 readiness, with settle times and timeouts per scenario.
fn ipv6_note(figures: &Figures) -> String {
    let o = &figures.options;
    let scenarios = [
        ("new bridge", &figures.ready_new),
        ("empty bridge", &figures.ready_alone),
        ("bridge has a pod", &figures.ready_busy),
    ];
    let per_scenario = |what: Settled| {
        scenarios
            .iter()
            .map(|(name, samples)| format!("{name}: {}", readiness_list(figures, samples, what)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "IPv6: {} pods per implementation in each of three scenarios: the bridge deleted \
         before every ADD (so the ADD creates it, as for the first pod on a node), the bridge \
         present without other pods, and the bridge with one more pod attached. From the \
         moment ADD is reaped, a thread in the pod's namespace polls every 0.25 ms until \
         eth0's global address is neither tentative nor dadfailed (/proc/net/if_inet6) and an \
         ICMPv6 echo to the bridge's gateway address is answered (sent every 1 ms from a raw \
         socket); limit {} s. Pod address settled (median): {}. Not usable within the limit: {}.",
        o.ipv6_runs,
        ipv6::LIMIT.as_secs(),
        per_scenario(Settled::Address),
        per_scenario(Settled::Timeouts),
    )
}

#[derive(Clone, Copy)]
enum Settled {
    Address,
    Timeouts,
}

fn readiness_list(figures: &Figures, samples: &ReadinessSamples, what: Settled) -> String {
    let items = by_kind(figures, |i| {
        let runs = samples.get(i)?;
        Some(match what {
            Settled::Address => {
                let settled: Vec<Duration> = runs.iter().flatten().map(|r| r.address).collect();
                Summary::of(&settled)
                    .map(|s| format!("{:.2} ms", stats::ms(s.median)))
                    .unwrap_or_else(|| "n/a".to_string())
            }
            Settled::Timeouts => {
                format!(
                    "{}/{}",
                    runs.iter().filter(|r| r.is_none()).count(),
                    runs.len()
                )
            }
        })
    });
    list(&items, String::clone)
}
