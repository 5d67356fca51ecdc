use super::*;
use serde_json::json;

const REF_031: &str = include_str!("../../tests/fixtures/reference-bridge-ADD-0.3.1.json");
const REF_040: &str = include_str!("../../tests/fixtures/reference-bridge-ADD-0.4.0.json");
const REF_100: &str = include_str!("../../tests/fixtures/reference-bridge-ADD-1.0.0.json");
const REF_LO_100: &str = include_str!("../../tests/fixtures/reference-loopback-ADD-1.0.0.json");

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn reference_outputs_round_trip_byte_for_byte() {
    for (fixture, version) in [
        (REF_031, CniVersion::V0_3_1),
        (REF_040, CniVersion::V0_4_0),
        (REF_100, CniVersion::V1_0_0),
        (REF_LO_100, CniVersion::V1_0_0),
    ] {
        let (current, parsed_version) =
            decode_bytes(fixture.as_bytes(), CniVersion::V0_1_0).unwrap();
        assert_eq!(parsed_version, version);
        assert_eq!(text(encode(&current, version).unwrap()), fixture);
    }
}

#[test]
fn downgrade_from_1_0_0_adds_versions_exactly_as_the_reference_prints() {
    let (current, _) = decode_bytes(REF_100.as_bytes(), CniVersion::V1_0_0).unwrap();
    let (ref_040, _) = decode_bytes(REF_040.as_bytes(), CniVersion::V0_4_0).unwrap();
    // Same shape as the 0.4.0 fixture, apart from the per-run MACs and names.
    let mut expected = ref_040.clone();
    expected.interfaces = current.interfaces.clone();
    let printed = text(encode(&current, CniVersion::V0_4_0).unwrap());
    assert_eq!(
        printed,
        text(encode(&expected, CniVersion::V0_4_0).unwrap())
    );
    assert!(printed.contains("\"version\": \"4\",\n            \"interface\": 2,"));
    assert!(printed.contains("\"version\": \"6\""));
}

#[test]
fn downgrade_to_0_2_0_keeps_first_ip_per_family_and_splits_routes() {
    let (current, _) = decode_bytes(REF_031.as_bytes(), CniVersion::V0_3_1).unwrap();
    let printed = text(encode(&current, CniVersion::V0_2_0).unwrap());
    let expected = "{\n    \"cniVersion\": \"0.2.0\",\n    \"ip4\": {\n        \"ip\": \"10.85.0.2/16\",\n        \"gateway\": \"10.85.0.1\",\n        \"routes\": [\n            {\n                \"dst\": \"0.0.0.0/0\"\n            }\n        ]\n    },\n    \"ip6\": {\n        \"ip\": \"1100:200::2/24\",\n        \"gateway\": \"1100:200::1\",\n        \"routes\": [\n            {\n                \"dst\": \"1100:200::1/24\"\n            }\n        ]\n    },\n    \"dns\": {}\n}";
    assert_eq!(printed, expected);
}

#[test]
fn downgrade_to_0_2_0_drops_extra_ips_and_routes_without_family() {
    let current = Result {
        ips: vec![
            IpConfig {
                interface: Some(0),
                address: "10.0.0.5/24".parse().unwrap(),
                gateway: None,
            },
            IpConfig {
                interface: Some(0),
                address: "10.0.1.5/24".parse().unwrap(),
                gateway: None,
            },
        ],
        routes: vec![
            Route::new(
                "0.0.0.0/0".parse().unwrap(),
                Some("10.0.0.1".parse().unwrap()),
            ),
            Route::new("::/0".parse().unwrap(), None),
        ],
        ..Result::default()
    };
    let printed: serde_json::Value =
        serde_json::from_slice(&encode(&current, CniVersion::V0_1_0).unwrap()).unwrap();
    assert_eq!(
        printed,
        json!({"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.5/24", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]}, "dns": {}})
    );
}

#[test]
fn downgrade_to_0_2_0_without_ips_is_an_incompatible_version_error() {
    let l2_only = Result {
        interfaces: vec![Interface {
            name: "cni0".into(),
            ..Interface::default()
        }],
        ..Result::default()
    };
    for version in [CniVersion::V0_1_0, CniVersion::V0_2_0] {
        let err = encode(&l2_only, version).unwrap_err();
        assert_eq!(err, ConversionError::NoIpAddresses);
        let cni: CniError = err.into();
        assert_eq!(cni.code, ErrorCode::IncompatibleVersion);
        assert_eq!(cni.msg, "cannot convert: no valid IP addresses");
    }
    // Every later version prints it.
    for version in &CniVersion::ALL[2..] {
        assert!(encode(&l2_only, *version).is_ok());
    }
}

#[test]
fn upgrade_from_0_2_0_moves_routes_to_top_level() {
    let legacy = json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.2.3/24", "gateway": "10.1.2.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "fd00::3/64", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
        "dns": {"nameservers": ["10.1.2.1"]}
    });
    let (current, version) = decode(&legacy, CniVersion::V1_0_0).unwrap();
    assert_eq!(version, CniVersion::V0_2_0);
    assert_eq!(current.ips.len(), 2);
    assert_eq!(current.ips[0].interface, None);
    assert_eq!(current.ips[0].gateway, Some("10.1.2.1".parse().unwrap()));
    assert_eq!(current.routes.len(), 2);
    assert_eq!(current.routes[1].gw, Some("fd00::1".parse().unwrap()));
    assert_eq!(current.dns.nameservers, vec!["10.1.2.1".to_string()]);
    let printed: serde_json::Value =
        serde_json::from_slice(&encode(&current, CniVersion::V0_3_1).unwrap()).unwrap();
    assert_eq!(
        printed["ips"][1],
        json!({"version": "6", "address": "fd00::3/64"})
    );
}

#[test]
fn every_version_round_trips_through_current() {
    let (current, _) = decode_bytes(REF_100.as_bytes(), CniVersion::V1_0_0).unwrap();
    for version in &CniVersion::ALL[2..] {
        let printed = encode(&current, *version).unwrap();
        let (again, parsed) = decode_bytes(&printed, CniVersion::V0_1_0).unwrap();
        assert_eq!(parsed, *version);
        assert_eq!(again, current, "round trip through {version}");
    }
    // 0.2.0 loses interfaces and interface indexes, but keeps addresses and routes.
    let printed = encode(&current, CniVersion::V0_2_0).unwrap();
    let (again, _) = decode_bytes(&printed, CniVersion::V0_1_0).unwrap();
    assert_eq!(again.routes, current.routes);
    let addresses: Vec<_> = again
        .ips
        .iter()
        .map(|ip| (ip.address, ip.gateway))
        .collect();
    let expected: Vec<_> = current
        .ips
        .iter()
        .map(|ip| (ip.address, ip.gateway))
        .collect();
    assert_eq!(addresses, expected);
}

#[test]
fn v1_1_fields_survive_only_at_1_1_0() {
    let mut route = Route::new("10.0.0.0/8".parse().unwrap(), None);
    route.mtu = Some(1400);
    route.table = Some(100);
    let current = Result {
        interfaces: vec![Interface {
            name: "eth0".into(),
            mtu: Some(1400),
            socket_path: "/s".into(),
            ..Interface::default()
        }],
        ips: vec![IpConfig {
            interface: Some(0),
            address: "10.0.0.2/8".parse().unwrap(),
            gateway: None,
        }],
        routes: vec![route],
        dns: Dns::default(),
    };
    let v11 = text(encode(&current, CniVersion::V1_1_0).unwrap());
    assert!(
        v11.contains("\"mtu\": 1400")
            && v11.contains("\"table\": 100")
            && v11.contains("\"socketPath\"")
    );
    for version in [CniVersion::V1_0_0, CniVersion::V0_4_0] {
        let older = text(encode(&current, version).unwrap());
        assert!(
            !older.contains("mtu") && !older.contains("table") && !older.contains("socketPath"),
            "{older}"
        );
    }
}

#[test]
fn missing_version_uses_fallback_and_unknown_version_is_rejected() {
    let no_version = json!({"ips": [{"version": "4", "address": "10.0.0.2/24"}]});
    let (_, version) = decode(&no_version, CniVersion::V0_3_1).unwrap();
    assert_eq!(version, CniVersion::V0_3_1);
    let err = decode(&json!({"cniVersion": "9.9.9"}), CniVersion::V1_0_0).unwrap_err();
    assert_eq!(err.to_string(), "unsupported CNI result version \"9.9.9\"");
    assert_eq!(CniError::from(err).code, ErrorCode::IncompatibleVersion);
}

#[test]
fn malformed_results_are_decoding_errors() {
    for bad in [
        json!({"cniVersion": "1.0.0", "ips": [{"address": "not-an-ip"}]}),
        json!({"cniVersion": "1.0.0", "ips": "x"}),
        json!({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}),
        json!({"cniVersion": "0.4.0", "routes": [{"gw": "10.0.0.1"}]}),
    ] {
        let err = decode(&bad, CniVersion::V1_0_0).unwrap_err();
        assert!(matches!(err, ConversionError::Malformed { .. }), "{bad}");
        assert_eq!(CniError::from(err).code, ErrorCode::Decoding);
    }
    assert!(decode_bytes(b"{", CniVersion::V1_0_0).is_err());
}

#[test]
fn host_bits_are_kept_verbatim() {
    let route: Route = serde_json::from_value(json!({"dst": "1100:200::1/24"})).unwrap();
    assert_eq!(
        serde_json::to_value(&route).unwrap(),
        json!({"dst": "1100:200::1/24"})
    );
}
