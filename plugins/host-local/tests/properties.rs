//! Property tests of host-local's public parsers: no config, however
//! broken, makes them panic, and every range they accept is consistent
//! (start and end inside the subnet, start not after end, gateway of the
//! subnet's family).

use host_local::config::{IpamConfig, StoreLocation};
use host_local::range::Range;
use ipnetwork::IpNetwork;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        // Mostly near one /64 so that starts and ends fall inside it.
        (any::<u16>(), any::<u64>()).prop_map(|(hi, lo)| {
            IpAddr::V6(Ipv6Addr::from(
                (0xfd59_u128 << 112) | (u128::from(hi) << 64) | u128::from(lo),
            ))
        }),
    ]
}

fn network() -> impl Strategy<Value = IpNetwork> {
    (ip(), 0u8..=128).prop_filter_map("prefix fits the family", |(ip, prefix)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        IpNetwork::new(ip, prefix % (max + 1)).ok()
    })
}

/// A value for a range field: a valid address or network, or junk.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        ip().prop_map(|ip| json!(ip.to_string())),
        network().prop_map(|n| json!(n.to_string())),
        "[ -~]{0,24}".prop_map(Value::from),
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

fn range() -> impl Strategy<Value = Value> {
    (field(), field(), field(), field()).prop_map(|(subnet, start, end, gateway)| {
        json!({"subnet": subnet, "rangeStart": start, "rangeEnd": end, "gateway": gateway})
    })
}

fn config() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(proptest::collection::vec(range(), 0..3), 0..3),
        field(),
        proptest::option::of(proptest::collection::vec(field(), 0..3)),
        field(),
    )
        .prop_map(|(ranges, data_dir, ips, route)| {
            json!({
                "cniVersion": "1.0.0",
                "name": "props",
                "type": "host-local",
                "ipam": {
                    "type": "host-local",
                    "ranges": ranges,
                    "dataDir": data_dir,
                    "routes": [{"dst": route}],
                },
                "runtimeConfig": {"ips": ips},
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_on_any_bytes(stdin in proptest::collection::vec(any::<u8>(), 0..256), ip in "[ -~]{0,20}") {
        let _ = IpamConfig::from_json(&stdin, Some(&ip));
        let _ = StoreLocation::from_json(&stdin);
    }

    #[test]
    fn parsers_never_panic_on_config_shaped_input(conf in config(), ip in proptest::option::of(ip())) {
        let text = conf.to_string();
        let requested = ip.map(|ip| ip.to_string());
        if let Ok(parsed) = IpamConfig::from_json(text.as_bytes(), requested.as_deref()) {
            for set in &parsed.range_sets {
                for range in set.ranges() {
                    prop_assert!(range.subnet().contains(range.range_start()), "{range}");
                    prop_assert!(range.subnet().contains(range.range_end()), "{range}");
                    prop_assert!(range.range_start() <= range.range_end(), "{range}");
                    prop_assert_eq!(range.gateway().is_ipv4(), range.is_ipv4());
                }
            }
        }
        let _ = StoreLocation::from_json(text.as_bytes());
    }

    #[test]
    fn accepted_ranges_are_consistent(subnet in network(), start in proptest::option::of(ip()), end in proptest::option::of(ip()), gateway in proptest::option::of(ip())) {
        if let Ok(range) = Range::new(subnet, start, end, gateway) {
            prop_assert!(range.subnet().contains(range.range_start()), "{range}");
            prop_assert!(range.subnet().contains(range.range_end()), "{range}");
            prop_assert!(range.range_start() <= range.range_end(), "{range}");
            prop_assert_eq!(range.is_ipv4(), subnet.is_ipv4());
            prop_assert_eq!(range.gateway().is_ipv4(), subnet.is_ipv4());
            prop_assert!(range.contains(range.range_start()) && range.contains(range.range_end()));
            if let Some(start) = start {
                prop_assert_eq!(range.range_start(), start);
            }
        }
    }
}
