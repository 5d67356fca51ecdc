//! Root tests for `bridge::masq` against the real `iptables` of the host.
//!
//! Every test uses its own network name (`masqtest-<pid>-<n>`), so its `CNI-…` chain is
//! unique and tests can run in parallel. A [`Cleanup`] guard removes whatever is left,
//! even on panic. The test addresses come from the benchmarking range 198.18.0.0/15 and
//! the documentation range 2001:db8::/32, so no real traffic is affected.

#![cfg(test)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bridge::masq::{self, IpNetwork};
use integration::{IpFamily, kernel, ms, require_root};

/// One test's network name, container ID and addresses (one per family).
struct Case {
    net: String,
    id: String,
    n: u32,
}

impl Case {
    fn new(n: u32) -> Self {
        Self {
            net: format!("masqtest-{}-{n}", std::process::id()),
            id: "abc123".to_owned(),
            n,
        }
    }

    fn chain(&self) -> String {
        masq::chain_name(&self.net, &self.id)
    }

    /// The comment as `iptables -S` prints it (and as a shell would pass it: unquoted).
    fn comment(&self) -> String {
        masq::comment(&self.net, &self.id)
    }

    fn quoted_comment(&self) -> String {
        format!("\"{}\"", self.comment().replace('"', "\\\""))
    }

    fn v4(&self) -> IpNetwork {
        format!("198.18.{}.2/24", self.n).parse().unwrap()
    }

    fn v6(&self) -> IpNetwork {
        format!("2001:db8:{}::2/64", self.n).parse().unwrap()
    }

    fn addrs(&self) -> Vec<IpNetwork> {
        vec![self.v4(), self.v6()]
    }

    fn setup(&self, addrs: &[IpNetwork]) {
        masq::setup(&self.net, &self.id, addrs).expect("setup");
    }

    fn teardown(&self, addrs: &[IpNetwork]) {
        masq::teardown(&self.net, &self.id, addrs).expect("teardown");
    }

    /// The lines of the `family`'s `-t nat -S` that mention this test's chain, in order.
    fn rules(&self, family: IpFamily) -> Vec<String> {
        kernel::nat_rules(family, &self.chain())
    }

    /// Both families hold exactly the reference's rules for `v4()` and `v6()`.
    fn assert_reference_rules(&self) {
        assert_eq!(
            self.rules(IpFamily::V4),
            self.reference_rendering(self.v4())
        );
        assert_eq!(
            self.rules(IpFamily::V6),
            self.reference_rendering(self.v6())
        );
    }

    fn assert_gone(&self) {
        assert_eq!(self.rules(IpFamily::V4), Vec::<String>::new());
        assert_eq!(self.rules(IpFamily::V6), Vec::<String>::new());
        let presence = masq::exists(&self.net, &self.id).unwrap();
        assert!(!presence.any(), "{presence:?}");
    }

    /// What the reference's rules look like in `-S` for `addr`.
    fn reference_rendering(&self, addr: IpNetwork) -> Vec<String> {
        let (c, q) = (self.chain(), self.quoted_comment());
        let (host, multicast) = match addr {
            IpNetwork::V4(_) => (32, "224.0.0.0/4"),
            IpNetwork::V6(_) => (128, "ff00::/8"),
        };
        vec![
            format!("-N {c}"),
            format!(
                "-A POSTROUTING -s {}/{host} -m comment --comment {q} -j {c}",
                addr.ip()
            ),
            format!(
                "-A {c} -d {}/{} -m comment --comment {q} -j ACCEPT",
                addr.network(),
                addr.prefix()
            ),
            format!("-A {c} ! -d {multicast} -m comment --comment {q} -j MASQUERADE"),
        ]
    }

    /// Runs `<bin> -t nat <args>` the way go-iptables does (separate argv words, `--wait`).
    fn ipt(&self, bin: &str, args: &[&str]) -> Output {
        let mut argv = vec!["-t", "nat"];
        argv.extend_from_slice(args);
        argv.push("--wait");
        run(bin, &argv)
    }

    fn ipt_ok(&self, bin: &str, args: &[&str]) {
        let out = self.ipt(bin, args);
        assert!(out.status.success(), "{bin} {args:?}: {out:?}");
    }

    /// The reference's ADD for one address (`SetupIPMasq`: version probe, list chains,
    /// `-N` if absent, then `-C`/`-A` for each of the three rules).
    fn reference_add(&self, addr: IpNetwork) {
        let bin = family_of(addr).iptables();
        let (c, comment) = (self.chain(), self.comment());
        let dst = format!("{}/{}", addr.network(), addr.prefix());
        let src = addr.ip().to_string();
        let multicast = if addr.is_ipv4() {
            "224.0.0.0/4"
        } else {
            "ff00::/8"
        };
        assert!(run(bin, &["--version"]).status.success());
        let listed = self.ipt(bin, &["-S"]);
        if !String::from_utf8_lossy(&listed.stdout).contains(&format!("-N {c}\n")) {
            self.ipt_ok(bin, &["-N", &c]);
        }
        let m = ["-m", "comment", "--comment", comment.as_str()];
        let accept: Vec<&str> = [&c, "-d", &dst, "-j", "ACCEPT"]
            .into_iter()
            .chain(m)
            .collect();
        let masq: Vec<&str> = [&c, "!", "-d", multicast, "-j", "MASQUERADE"]
            .into_iter()
            .chain(m)
            .collect();
        let jump: Vec<&str> = ["POSTROUTING", "-s", &src, "-j", &c]
            .into_iter()
            .chain(m)
            .collect();
        for rule in [accept, masq, jump] {
            let check: Vec<&str> = ["-C"].into_iter().chain(rule.iter().copied()).collect();
            if !self.ipt(bin, &check).status.success() {
                let append: Vec<&str> = ["-A"].into_iter().chain(rule.iter().copied()).collect();
                self.ipt_ok(bin, &append);
            }
        }
    }

    /// The reference's DEL for one address (`TeardownIPMasq`), asserting that every
    /// step it needs succeeds. The legacy `-s ip/len` delete may fail (it is ignored).
    fn reference_del(&self, addr: IpNetwork) {
        let bin = family_of(addr).iptables();
        let (c, comment) = (self.chain(), self.comment());
        let m = ["-m", "comment", "--comment", comment.as_str()];
        let src = addr.ip().to_string();
        let legacy = addr.to_string();
        assert!(run(bin, &["--version"]).status.success());
        let del: Vec<&str> = ["-D", "POSTROUTING", "-s", &src, "-j", &c]
            .into_iter()
            .chain(m)
            .collect();
        self.ipt_ok(bin, &del);
        let del_legacy: Vec<&str> = ["-D", "POSTROUTING", "-s", &legacy, "-j", &c]
            .into_iter()
            .chain(m)
            .collect();
        let _ = self.ipt(bin, &del_legacy);
        self.ipt_ok(bin, &["-F", &c]);
        self.ipt_ok(bin, &["-X", &c]);
    }
}

fn family_of(addr: IpNetwork) -> IpFamily {
    IpFamily::from_ipv6(!addr.is_ipv4())
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"))
}

/// Removes the test's chain in both families when dropped, even on panic.
struct Cleanup<'a>(&'a Case);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Err(e) = masq::teardown(&self.0.net, &self.0.id, &[]) {
            eprintln!("cleanup of {}: {e}", self.0.net);
        }
    }
}

#[test]
fn setup_renders_exactly_like_the_reference() {
    if !require_root("setup_renders_exactly_like_the_reference") {
        return;
    }
    let case = Case::new(1);
    let _cleanup = Cleanup(&case);
    case.setup(&case.addrs());
    case.assert_reference_rules();
    let presence = masq::exists(&case.net, &case.id).unwrap();
    assert!(presence.v4 && presence.v6, "{presence:?}");
}

#[test]
fn setup_of_one_family_leaves_the_other_alone() {
    if !require_root("setup_of_one_family_leaves_the_other_alone") {
        return;
    }
    let case = Case::new(2);
    let _cleanup = Cleanup(&case);
    case.setup(&[case.v4()]);
    assert_eq!(
        case.rules(IpFamily::V4),
        case.reference_rendering(case.v4())
    );
    assert_eq!(case.rules(IpFamily::V6), Vec::<String>::new());
    case.teardown(&[case.v4()]);
    case.assert_gone();
}

#[test]
fn setup_twice_keeps_one_jump_per_address() {
    if !require_root("setup_twice_keeps_one_jump_per_address") {
        return;
    }
    let case = Case::new(3);
    let _cleanup = Cleanup(&case);
    let second: IpNetwork = "198.19.3.9/16".parse().unwrap();
    let addrs = [case.v4(), second, case.v6()];
    case.setup(&addrs);
    let first = (case.rules(IpFamily::V4), case.rules(IpFamily::V6));
    case.setup(&addrs);
    case.setup(&addrs);
    assert_eq!((case.rules(IpFamily::V4), case.rules(IpFamily::V6)), first);
    let jumps = first
        .0
        .iter()
        .filter(|l| l.starts_with("-A POSTROUTING"))
        .count();
    assert_eq!(jumps, 2, "{:#?}", first.0);
    assert_eq!(first.0.len(), 1 + 2 + 2 + 1, "{:#?}", first.0);

    // A repeated ADD with fewer addresses drops the stale jump and ACCEPT rule.
    case.setup(&[case.v4(), case.v6()]);
    case.assert_reference_rules();
}

#[test]
fn teardown_with_addresses_removes_everything() {
    if !require_root("teardown_with_addresses_removes_everything") {
        return;
    }
    let case = Case::new(4);
    let _cleanup = Cleanup(&case);
    case.setup(&case.addrs());
    case.teardown(&case.addrs());
    case.assert_gone();
    case.teardown(&case.addrs());
    case.assert_gone();
}

#[test]
fn teardown_without_addresses_removes_everything() {
    if !require_root("teardown_without_addresses_removes_everything") {
        return;
    }
    let case = Case::new(5);
    let _cleanup = Cleanup(&case);
    case.setup(&case.addrs());
    case.teardown(&[]);
    case.assert_gone();
    case.teardown(&[]);
    case.assert_gone();
}

#[test]
fn teardown_of_a_never_created_chain_is_ok() {
    if !require_root("teardown_of_a_never_created_chain_is_ok") {
        return;
    }
    let case = Case::new(6);
    let _cleanup = Cleanup(&case);
    case.teardown(&[]);
    case.teardown(&case.addrs());
    case.assert_gone();
}

#[test]
fn teardown_with_wrong_addresses_still_removes_everything() {
    if !require_root("teardown_with_wrong_addresses_still_removes_everything") {
        return;
    }
    let case = Case::new(7);
    let _cleanup = Cleanup(&case);
    case.setup(&case.addrs());
    let wrong: Vec<IpNetwork> = vec!["198.18.77.7/24".parse().unwrap()];
    case.teardown(&wrong);
    case.assert_gone();
}

#[test]
fn reference_created_chain_is_removed_by_our_teardown() {
    if !require_root("reference_created_chain_is_removed_by_our_teardown") {
        return;
    }
    for (n, addrs_known) in [(8, true), (9, false)] {
        let case = Case::new(n);
        let _cleanup = Cleanup(&case);
        for addr in case.addrs() {
            case.reference_add(addr);
            // A second ADD of the reference adds nothing (AppendUnique).
            case.reference_add(addr);
        }
        // The reference's rendering is exactly ours.
        case.assert_reference_rules();

        // Old reference versions jumped with `-s <ip>/<len>` (stored as the network).
        let (c, comment) = (case.chain(), case.comment());
        for addr in case.addrs() {
            let legacy = addr.to_string();
            let bin = family_of(addr).iptables();
            case.ipt_ok(
                bin,
                &[
                    "-A",
                    "POSTROUTING",
                    "-s",
                    &legacy,
                    "-j",
                    &c,
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                ],
            );
            let rules = case.rules(family_of(addr));
            let want = format!("-s {}/{} ", addr.network(), addr.prefix());
            assert!(rules.iter().any(|l| l.contains(&want)), "{rules:#?}");
        }

        let addrs = if addrs_known {
            case.addrs()
        } else {
            Vec::new()
        };
        case.teardown(&addrs);
        case.assert_gone();
    }
}

#[test]
fn our_chain_is_removed_by_the_reference_commands() {
    if !require_root("our_chain_is_removed_by_the_reference_commands") {
        return;
    }
    let case = Case::new(10);
    let _cleanup = Cleanup(&case);
    case.setup(&case.addrs());
    for addr in case.addrs() {
        // The reference's repeated ADD finds every rule (`-C`) and adds nothing.
        case.reference_add(addr);
    }
    case.assert_reference_rules();
    for addr in case.addrs() {
        case.reference_del(addr);
    }
    case.assert_gone();
}

/// Milliseconds summary of samples: min / median / mean / max.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    format!(
        "min {:.1} ms, median {:.1} ms, mean {:.1} ms, max {:.1} ms (n={})",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        mean,
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

#[test]
fn timings_dual_stack() {
    if !require_root("timings_dual_stack") {
        return;
    }
    const N: usize = 20;
    let case = Case::new(11);
    let _cleanup = Cleanup(&case);
    let addrs = case.addrs();
    let mut t = [(); 7].map(|()| Vec::with_capacity(N));
    for _ in 0..N {
        t[0].push(time(|| case.setup(&addrs)));
        t[1].push(time(|| case.setup(&addrs)));
        t[2].push(time(|| case.teardown(&addrs)));
        case.setup(&addrs);
        t[3].push(time(|| case.teardown(&[])));
        t[4].push(time(|| case.teardown(&[])));
        t[5].push(time(|| addrs.iter().for_each(|a| case.reference_add(*a))));
        t[6].push(time(|| addrs.iter().for_each(|a| case.reference_del(*a))));
    }
    case.assert_gone();
    let labels = [
        "setup (first ADD)",
        "setup (repeated ADD)",
        "teardown (addresses known)",
        "teardown (no addresses)",
        "teardown (nothing there)",
        "reference-style ADD (sequential iptables)",
        "reference-style DEL (sequential iptables)",
    ];
    println!("masq timings, dual stack, one address per family:");
    for (label, samples) in labels.iter().zip(t.iter_mut()) {
        println!("  {label:<44} {}", summary(samples));
    }
}
