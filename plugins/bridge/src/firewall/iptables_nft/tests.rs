//! Our batches against the ones iptables-nft 1.8.9 sent for the same rules
//! (`iptables-restore --noflush` under `strace -e trace=sendmsg`, captured
//! by `scripts/capture-iptables-nft.sh`): each `.hex` line is a message's
//! type, flags and payload. `fresh` is the first container on an empty
//! node; `second` is the next one (`crio`/`def456`, `.3`), with the table
//! and `POSTROUTING` already there.

use super::*;

/// A request as `(message type, flags without REQUEST/ACK, payload)`.
type Request = (u16, u16, Vec<u8>);

fn captured(text: &str) -> Vec<Request> {
    text.lines()
        .filter(|line| !line.starts_with("NFNL_MSG_BATCH"))
        .map(|line| {
            let mut fields = line.split(' ');
            let kind = match fields.next().unwrap() {
                "NFT_MSG_NEWTABLE" => 0,
                "NFT_MSG_NEWCHAIN" => 3,
                "NFT_MSG_NEWRULE" => 6,
                other => panic!("unexpected message {other}"),
            };
            let flags = fields.next().unwrap().split('|').fold(0, |acc, flag| {
                acc | match flag {
                    "NLM_F_REQUEST" => 0,
                    "NLM_F_EXCL" => 0x200,
                    "NLM_F_CREATE" => 0x400,
                    "NLM_F_APPEND" => 0x800,
                    other => panic!("unexpected flag {other}"),
                }
            });
            let hex = fields.next().unwrap();
            let payload = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (kind, flags, payload)
        })
        .collect()
}

/// The batch we send for one family of a container whose table holds
/// what `found` says.
fn ours(container_id: &str, addr: &str, found: &Found) -> Vec<Request> {
    let addrs: Vec<IpNetwork> = vec![addr.parse().unwrap()];
    let rules = all_rules("crio", container_id, &addrs).unwrap();
    assert_eq!(rules.len(), 1);
    let mut batch = Batch::new();
    write_family(
        &mut batch,
        &chain_name("crio", container_id),
        &rules[0],
        found,
    );
    batch.requests()
}

/// Both request lists make the same objects in the same order: the same
/// requests apart from iptables' repeated table requests.
fn assert_same_objects(ours: Vec<Request>, mut theirs: Vec<Request>) {
    let rules =
        |list: &[Request]| -> Vec<Request> { list.iter().filter(|r| r.0 == 6).cloned().collect() };
    assert_eq!(rules(&ours), rules(&theirs), "rules, in order");
    let mut table_seen = false;
    theirs.retain(|r| r.0 != 0 || !std::mem::replace(&mut table_seen, true));
    assert_eq!(ours, theirs, "the same requests in the same order");
}

#[test]
fn the_first_container_is_written_as_iptables_nft_writes_it() {
    let fresh = Found::default();
    assert_same_objects(
        ours("abc123", "10.85.0.2/16", &fresh),
        captured(include_str!("v4-fresh.hex")),
    );
    assert_same_objects(
        ours("abc123", "1100:200::2/24", &fresh),
        captured(include_str!("v6-fresh.hex")),
    );
}

#[test]
fn the_next_container_is_written_as_iptables_nft_writes_it() {
    let second = Found {
        postrouting: true,
        ..Found::default()
    };
    let v4 = ours("def456", "10.85.0.3/16", &second);
    assert_eq!(v4, captured(include_str!("v4-second.hex")));
    let v6 = ours("def456", "1100:200::3/24", &second);
    assert_eq!(v6, captured(include_str!("v6-second.hex")));
}

#[test]
fn a_repeated_setup_replaces_the_jumps_and_empties_the_chain() {
    let again = Found {
        chain: true,
        postrouting: true,
        jumps: vec![7, 9],
        ..Found::default()
    };
    let requests = ours("def456", "10.85.0.3/16", &again);
    let kinds: Vec<(u16, u16)> = requests.iter().map(|r| (r.0, r.1)).collect();
    // Two deletions by handle, one flush (a deletion naming only the
    // chain), then the three rules appended.
    assert_eq!(
        kinds,
        [(8, 0), (8, 0), (8, 0), (6, 0xc00), (6, 0xc00), (6, 0xc00)]
    );
}

#[test]
fn shapes_iptables_writes_otherwise_are_left_to_it() {
    let wide: Vec<IpNetwork> = vec!["10.85.0.2/0".parse().unwrap()];
    assert!(all_rules("crio", "abc", &wide).is_none(), "a /0 has no -d");
    let long_id = "x".repeat(240);
    let addr: Vec<IpNetwork> = vec!["10.85.0.2/16".parse().unwrap()];
    assert!(
        all_rules("crio", &long_id, &addr).is_none(),
        "comment > 255"
    );
    assert!(all_rules("crio", &"x".repeat(200), &addr).is_some());
    assert_eq!(all_rules("crio", "abc", &[]).map(|r| r.len()), Some(0));
}

#[test]
fn two_addresses_of_one_subnet_share_their_accept_rule() {
    let addrs: Vec<IpNetwork> = vec![
        "10.85.0.2/16".parse().unwrap(),
        "10.85.0.9/16".parse().unwrap(),
        "1100:200::2/24".parse().unwrap(),
    ];
    let rules = all_rules("crio", "abc", &addrs).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!((rules[0].chain_rules.len(), rules[0].jumps.len()), (2, 2));
    assert_eq!((rules[1].chain_rules.len(), rules[1].jumps.len()), (2, 1));
}

#[test]
fn gc_reads_the_container_of_its_own_network_only() {
    let text = comment("crio", "abc123");
    assert_eq!(id_in_comment(&text, "crio").as_deref(), Some("abc123"));
    assert_eq!(id_in_comment(&text, "cri"), None);
    assert_eq!(id_in_comment(&comment("crio2", "x"), "crio"), None);
    assert_eq!(id_in_comment("name: \"crio\"", "crio"), None);
}
