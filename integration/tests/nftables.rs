//! Root tests of the nftables masquerade writer (`bridge::firewall::nft_masq`
//! over `cni_netlink::nftables`): one netlink transaction, no `nft` process,
//! in upstream's layout byte for byte, with the expressions `nft` itself
//! writes, and interchangeable with rules made by `nft`.
//!
//! nf_tables state is per network namespace: every test works in namespaces
//! of its own and leaves the host's tables alone; deleting the namespace
//! deletes what it made.

#![cfg(test)]

use std::collections::BTreeSet;

use bridge::firewall::Target;
use bridge::firewall::nft_masq::{self, TABLE};
use cni_types::netns::Netns;
use integration::{TestNetns, cmd, require_root};

/// What upstream v1.7.1 printed (`nft list table inet cni_plugins_masquerade`)
/// after an ADD of container `up1`, `eth0`, network `upnet`, dual stack.
const UPSTREAM_LISTING: &str = "table inet cni_plugins_masquerade {
\tcomment \"Masquerading for plugins from github.com/containernetworking/plugins\"
\tchain masq_checks {
\t\tcomment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\"
\t\tip saddr 10.81.0.2 ip daddr != 10.81.0.0/24 masquerade comment \"a545f43c8324953b-f5c4d0d7605f51a7, net: upnet, if: eth0, id: up1\"
\t\tip6 saddr fd81::2 ip6 daddr != fd81::/64 masquerade comment \"a545f43c8324953b-f5c4d0d7605f51a7, net: upnet, if: eth0, id: up1\"
\t}

\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip daddr 224.0.0.0/4 return
\t\tip6 daddr ff00::/8 return
\t\tgoto masq_checks
\t}
}
";

fn target(network: &str, id: &str, addresses: &[&str]) -> Target {
    Target {
        network: network.to_owned(),
        container_id: id.to_owned(),
        ifname: "eth0".to_owned(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        ..Target::default()
    }
}

fn upstream_target() -> Target {
    target("upnet", "up1", &["10.81.0.2/24", "fd81::2/64"])
}

/// Runs `work` with its thread inside `ns`.
fn inside<T: Send>(ns: &TestNetns, work: impl FnOnce() -> T + Send) -> T {
    Netns::open(ns.path()).unwrap().run(work).unwrap()
}

fn setup(ns: &TestNetns, target: &Target) {
    inside(ns, || nft_masq::setup(target)).unwrap();
}

fn teardown(ns: &TestNetns, target: &Target) {
    inside(ns, || nft_masq::teardown(target)).unwrap();
}

/// `nft <args>` inside `ns`.
fn nft(ns: &TestNetns, args: &[&str]) -> String {
    let mut all = vec!["netns", "exec", ns.name(), "nft"];
    all.extend_from_slice(args);
    cmd::run_ok("ip", &all)
}

fn listing(ns: &TestNetns) -> String {
    nft(ns, &["list", "table", "inet", TABLE])
}

/// `nft --debug=netlink list table`, with the handles (the numbers after
/// each rule's chain name) left out: the expressions of every rule, chain
/// by chain, in order.
fn expressions(ns: &TestNetns) -> Vec<String> {
    let text = nft(ns, &["--debug=netlink", "list", "table", "inet", TABLE]);
    let mut rules = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("inet cni_plugins_masquerade ") {
            let chain = rest.split(' ').next().unwrap_or_default();
            rules.push(format!("{chain}:"));
        } else if line.starts_with("  ") && !rules.is_empty() {
            if let Some(rule) = rules.last_mut() {
                rule.push_str(line.trim());
                rule.push('\n');
            }
        } else if line.starts_with("table") {
            break;
        }
    }
    rules
}

fn masq_rules(ns: &TestNetns) -> Vec<String> {
    listing(ns)
        .lines()
        .filter(|l| l.contains(" masquerade comment "))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn the_upstream_layout_byte_for_byte() {
    if !require_root("the_upstream_layout_byte_for_byte") {
        return;
    }
    let ns = TestNetns::new("nftup");
    setup(&ns, &upstream_target());
    assert_eq!(listing(&ns), UPSTREAM_LISTING);
}

#[test]
fn the_expressions_are_the_ones_nft_writes() {
    if !require_root("the_expressions_are_the_ones_nft_writes") {
        return;
    }
    let ours = TestNetns::new("nftours");
    setup(&ours, &upstream_target());
    let by_nft = TestNetns::new("nftcli");
    let file = std::env::temp_dir().join(integration::unique_name("upstream-nft"));
    std::fs::write(&file, UPSTREAM_LISTING).unwrap();
    let loaded = nft(&by_nft, &["-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(loaded, "");
    let (mine, theirs) = (expressions(&ours), expressions(&by_nft));
    assert_eq!(mine.len(), 5, "{mine:#?}");
    // nft -f adds the rules in the text's order, chain by chain; compare
    // each chain's rules in order.
    let by_chain = |rules: &[String], chain: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| r.starts_with(chain))
            .cloned()
            .collect()
    };
    for chain in ["masq_checks:", "postrouting:"] {
        assert_eq!(by_chain(&mine, chain), by_chain(&theirs, chain), "{chain}");
    }
}

#[test]
fn a_repeated_setup_replaces_and_teardown_removes_only_its_rules() {
    if !require_root("a_repeated_setup_replaces_and_teardown_removes_only_its_rules") {
        return;
    }
    let ns = TestNetns::new("nftrep");
    let first = upstream_target();
    let second = target("upnet", "up2", &["10.81.0.3/24"]);
    setup(&ns, &first);
    setup(&ns, &first);
    setup(&ns, &second);
    assert_eq!(masq_rules(&ns).len(), 3, "{}", listing(&ns));
    let postrouting = listing(&ns).matches("goto masq_checks").count();
    assert_eq!(postrouting, 1, "postrouting is rebuilt, not appended to");
    teardown(&ns, &first);
    let left = masq_rules(&ns);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("id: up2"), "{left:?}");
    teardown(&ns, &first);
    teardown(&ns, &second);
    assert!(masq_rules(&ns).is_empty());
    assert!(
        listing(&ns).contains("chain postrouting"),
        "the chains stay"
    );
}

#[test]
fn rules_made_by_nft_are_removed_by_our_teardown() {
    if !require_root("rules_made_by_nft_are_removed_by_our_teardown") {
        return;
    }
    let ns = TestNetns::new("nftint");
    let file = std::env::temp_dir().join(integration::unique_name("upstream-nft"));
    std::fs::write(&file, UPSTREAM_LISTING).unwrap();
    nft(&ns, &["-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    teardown(&ns, &upstream_target());
    assert!(masq_rules(&ns).is_empty(), "{}", listing(&ns));
    // And ours are read back by nft as its own.
    setup(&ns, &upstream_target());
    assert_eq!(listing(&ns), UPSTREAM_LISTING);
}

#[test]
fn a_teardown_without_the_table_is_a_no_op() {
    if !require_root("a_teardown_without_the_table_is_a_no_op") {
        return;
    }
    let ns = TestNetns::new("nftnone");
    teardown(&ns, &upstream_target());
    let tables = nft(&ns, &["list", "tables"]);
    assert_eq!(tables, "", "a teardown created something");
}

#[test]
fn concurrent_setups_of_one_network_keep_every_rule() {
    if !require_root("concurrent_setups_of_one_network_keep_every_rule") {
        return;
    }
    let ns = TestNetns::new("nftpar");
    let targets: Vec<Target> = (2..22)
        .map(|host| {
            target(
                "upnet",
                &format!("c{host}"),
                &[&format!("10.81.0.{host}/24")],
            )
        })
        .collect();
    std::thread::scope(|scope| {
        for target in &targets {
            let ns = &ns;
            scope.spawn(move || setup(ns, target));
        }
    });
    let rules: BTreeSet<String> = masq_rules(&ns).into_iter().collect();
    assert_eq!(rules.len(), targets.len(), "{rules:#?}");
    assert_eq!(listing(&ns).matches("goto masq_checks").count(), 1);
}

#[test]
fn a_setup_repairs_a_tampered_postrouting_chain() {
    if !require_root("a_setup_repairs_a_tampered_postrouting_chain") {
        return;
    }
    let ns = TestNetns::new("nftfix");
    setup(&ns, &upstream_target());
    let handles: Vec<String> = nft(&ns, &["-a", "list", "chain", "inet", TABLE, "postrouting"])
        .lines()
        .filter(|l| l.contains("return"))
        .filter_map(|l| l.rsplit("# handle ").next().map(str::to_owned))
        .collect();
    assert_eq!(handles.len(), 2);
    nft(
        &ns,
        &[
            "delete",
            "rule",
            "inet",
            TABLE,
            "postrouting",
            "handle",
            &handles[0],
        ],
    );
    assert_ne!(listing(&ns), UPSTREAM_LISTING);
    setup(&ns, &upstream_target());
    assert_eq!(listing(&ns), UPSTREAM_LISTING);
}
