//! Property tests: no input makes the parsers or the dispatcher panic, and
//! every conversion the spec allows round-trips.

use cni_types::args::CniArgs;
use cni_types::env::CniEnv;
use cni_types::result::{self, Dns, Interface, IpConfig, Result as CniResult, Route};
use cni_types::skel::{self, Plugin, Request};
use cni_types::version::parse_semver;
use cni_types::{CniError, CniVersion};
use ipnetwork::IpNetwork;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A plugin that answers every command with a fixed result.
struct Echo;

impl Plugin for Echo {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        // Touch every accessor a real plugin uses.
        let _ = req.prev_result();
        let _ = req.args(&["IP", "MAC"]);
        let _ = req.parse_config::<serde_json::Value>();
        Ok(CniResult {
            ips: vec![IpConfig {
                interface: None,
                address: "10.0.0.2/24".parse().map_err(CniError::internal)?,
                gateway: None,
            }],
            ..CniResult::default()
        })
    }
    fn del(&self, _: &Request<'_>) -> Result<(), CniError> {
        Ok(())
    }
    fn check(&self, _: &Request<'_>) -> Result<(), CniError> {
        Ok(())
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn network() -> impl Strategy<Value = IpNetwork> {
    ip().prop_flat_map(|ip| {
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        (Just(ip), 0u8..=max).prop_filter_map("prefix fits the family", |(ip, prefix)| {
            IpNetwork::new(ip, prefix).ok()
        })
    })
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}"
}

fn current_result() -> impl Strategy<Value = CniResult> {
    let interface = (
        name(),
        proptest::option::of("[0-9a-f]{2}(:[0-9a-f]{2}){5}"),
        proptest::option::of("/run/netns/[a-z]{1,8}"),
    )
        .prop_map(|(name, mac, sandbox)| Interface {
            name,
            mac: mac.unwrap_or_default(),
            sandbox: sandbox.unwrap_or_default(),
            ..Interface::default()
        });
    let ip_config = (
        proptest::option::of(0usize..4),
        network(),
        proptest::option::of(ip()),
    )
        .prop_map(|(interface, address, gateway)| IpConfig {
            interface,
            address,
            gateway,
        });
    let route = (network(), proptest::option::of(ip())).prop_map(|(dst, gw)| Route::new(dst, gw));
    let dns = (
        proptest::collection::vec("[0-9.]{1,15}", 0..3),
        "[a-z.]{0,10}",
    )
        .prop_map(|(nameservers, domain)| Dns {
            nameservers,
            domain,
            ..Dns::default()
        });
    (
        proptest::collection::vec(interface, 0..4),
        proptest::collection::vec(ip_config, 0..4),
        proptest::collection::vec(route, 0..4),
        dns,
    )
        .prop_map(|(interfaces, ips, routes, dns)| CniResult {
            interfaces,
            ips,
            routes,
            dns,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dispatcher_never_panics_on_any_stdin(stdin in proptest::collection::vec(any::<u8>(), 0..512), command in "(ADD|DEL|CHECK|GC|STATUS|VERSION|[A-Z]{0,6})") {
        let env = CniEnv::from_vars([
            ("CNI_COMMAND", command.as_str()),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]);
        let outcome = skel::dispatch(&Echo, "about", &env, &mut || Ok(stdin.clone()));
        if !outcome.success {
            let error: serde_json::Value = serde_json::from_slice(&outcome.stdout).unwrap();
            prop_assert!(error["code"].as_u64().is_some());
            prop_assert!(error["msg"].as_str().is_some());
        }
    }

    #[test]
    fn dispatcher_never_panics_on_any_config_object(
        version in proptest::option::of("(0\\.[1-4]\\.[0-1]|1\\.[01]\\.0|[0-9x.]{0,6})"),
        name in proptest::option::of("[ -~]{0,20}"),
        prev in proptest::option::of(any::<bool>()),
        env_values in proptest::collection::vec("[ -~]{0,20}", 5),
    ) {
        let mut config = serde_json::json!({ "type": "x" });
        if let Some(version) = version { config["cniVersion"] = version.into(); }
        if let Some(name) = name { config["name"] = name.into(); }
        if let Some(valid) = prev {
            config["prevResult"] = if valid { serde_json::json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}) } else { serde_json::json!({"ips": 7}) };
        }
        let env = CniEnv::from_vars([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", env_values[0].as_str()),
            ("CNI_NETNS", env_values[1].as_str()),
            ("CNI_IFNAME", env_values[2].as_str()),
            ("CNI_ARGS", env_values[3].as_str()),
            ("CNI_PATH", env_values[4].as_str()),
        ]);
        let bytes = serde_json::to_vec(&config).unwrap();
        let outcome = skel::dispatch(&Echo, "about", &env, &mut || Ok(bytes.clone()));
        let _: serde_json::Value = serde_json::from_slice(&outcome.stdout).unwrap();
    }

    #[test]
    fn result_decoding_never_panics(text in "[ -~]{0,200}", version in 0usize..7) {
        let _ = result::decode_bytes(text.as_bytes(), CniVersion::ALL[version]);
    }

    #[test]
    fn every_result_round_trips_through_0_3_and_1_x(current in current_result(), version in 2usize..7) {
        let version = CniVersion::ALL[version];
        let printed = result::encode(&current, version).unwrap();
        let (again, parsed) = result::decode_bytes(&printed, CniVersion::V0_1_0).unwrap();
        prop_assert_eq!(parsed, version);
        prop_assert_eq!(again, current);
    }

    #[test]
    fn conversion_to_0_2_keeps_first_address_per_family(current in current_result()) {
        match result::encode(&current, CniVersion::V0_2_0) {
            Err(_) => prop_assert!(current.ips.is_empty()),
            Ok(printed) => {
                let (again, _) = result::decode_bytes(&printed, CniVersion::V0_1_0).unwrap();
                let first = |v4: bool| current.ips.iter().find(|ip| ip.address.is_ipv4() == v4).map(|ip| (ip.address, ip.gateway));
                let kept: Vec<_> = again.ips.iter().map(|ip| (ip.address, ip.gateway)).collect();
                let expected: Vec<_> = [first(true), first(false)].into_iter().flatten().collect();
                prop_assert_eq!(kept, expected);
                prop_assert!(again.interfaces.is_empty());
                // Routes survive when their family has an address.
                for route in &again.routes {
                    prop_assert!(current.routes.iter().any(|r| r.dst == route.dst && r.gw == route.gw));
                }
            }
        }
    }

    #[test]
    fn cni_args_parsing_never_panics(text in "[ -~]{0,80}") {
        let _ = CniArgs::parse_known(&text, &["IP", "MAC"]);
    }

    #[test]
    fn cni_args_round_trip(pairs in proptest::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,8}", "[a-z0-9.:/-]{0,12}"), 1..6)) {
        let text = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
        let args = CniArgs::parse(&text).unwrap();
        for (key, _) in &pairs {
            let last = pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            prop_assert_eq!(args.get(key), last);
        }
    }

    #[test]
    fn version_parsing_never_panics(text in "[ -~]{0,20}") {
        let _ = parse_semver(&text);
        let _ = CniVersion::from_exact(&text);
    }
}
