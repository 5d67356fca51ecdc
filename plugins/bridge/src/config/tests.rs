use super::*;

const CRIO: &str = include_str!("../../../../cni-types/tests/fixtures/100-crio-bridge.conf");

fn load(json: &str) -> Result<BridgeConfig, ConfigError> {
    BridgeConfig::from_json(json.as_bytes(), "")
}

fn message(json: &str) -> (u32, String) {
    let err: CniError = load(json).unwrap_err().into();
    (err.code.as_u32(), err.msg)
}

#[test]
fn crio_config_has_the_expected_settings() {
    let conf = load(CRIO).unwrap();
    assert_eq!(conf.network, "crio");
    assert_eq!(conf.bridge, "cni0");
    assert!(conf.is_gateway && conf.ip_masq && conf.hairpin_mode);
    assert!(!conf.is_default_gateway && !conf.promisc_mode && !conf.force_address);
    assert_eq!(conf.ipam_type.as_deref(), Some("host-local"));
    assert_eq!(conf.mtu, None);
    assert_eq!(conf.mac, None);
    assert!(!conf.uses_vlans());
}

#[test]
fn defaults_and_implications() {
    let conf = load(r#"{"name":"n","isDefaultGateway":true,"bridge":""}"#).unwrap();
    assert_eq!(conf.bridge, "cni0");
    assert!(conf.is_gateway);
    assert_eq!(conf.ipam_type, None);
    let conf = load(r#"{"name":"n","ipam":{"type":""},"mtu":1400}"#).unwrap();
    assert_eq!(conf.ipam_type, None);
    assert_eq!(conf.mtu, Some(1400));
}

#[test]
fn invalid_combinations_have_reference_messages() {
    for (json, expected) in [
        (
            r#"{"name":"n","hairpinMode":true,"promiscMode":true}"#,
            (
                7,
                "cannot set hairpin mode and promiscuous mode at the same time.",
            ),
        ),
        (
            r#"{"name":"n","vlan":4095}"#,
            (7, "invalid VLAN ID 4095 (must be between 0 and 4094)"),
        ),
        (
            r#"{"name":"n","vlan":-1}"#,
            (7, "invalid VLAN ID -1 (must be between 0 and 4094)"),
        ),
        (r#"{"name":"n","mtu":-5}"#, (7, "invalid MTU -5")),
        (
            r#"{"name":"n","ipam":{"type":"host-local"},"disableContainerInterface":true}"#,
            (
                7,
                "cannot use IPAM when DisableContainerInterface flag is set",
            ),
        ),
        (
            r#"{"name":"n","ipMasqBackend":"pf"}"#,
            (7, "unknown ipmasq backend \"pf\""),
        ),
        (
            r#"{"name":"n","runtimeConfig":{"mac":"zz:00:00:00:00:00"}}"#,
            (7, "invalid MAC address \"zz:00:00:00:00:00\""),
        ),
        (
            r#"{"name":"n","vlanTrunk":[{"id":0}]}"#,
            (7, "incorrect trunk id parameter"),
        ),
        (
            r#"{"name":"n","vlanTrunk":[{"minID":0,"maxID":5}]}"#,
            (7, "incorrect trunk minID parameter"),
        ),
        (
            r#"{"name":"n","vlanTrunk":[{"minID":1,"maxID":5000}]}"#,
            (7, "incorrect trunk maxID parameter"),
        ),
        (
            r#"{"name":"n","vlanTrunk":[{"minID":9,"maxID":5}]}"#,
            (7, "minID is greater than maxID in trunk parameter"),
        ),
        (
            r#"{"name":"n","vlanTrunk":[{"minID":9}]}"#,
            (
                7,
                "minID and maxID should be configured simultaneously, maxID is missing",
            ),
        ),
        (
            r#"{"name":"n","vlanTrunk":[{"maxID":9}]}"#,
            (
                7,
                "minID and maxID should be configured simultaneously, minID is missing",
            ),
        ),
    ] {
        assert_eq!(message(json), (expected.0, expected.1.to_owned()), "{json}");
    }
}

#[test]
fn wrong_types_are_code_7() {
    let (code, msg) = message(r#"{"name":"n","isGateway":"yes"}"#);
    assert_eq!(code, 7);
    assert!(msg.starts_with("failed to load netconf: "), "{msg}");
}

#[test]
fn trunk_ids_are_expanded_sorted_and_unique() {
    let conf =
        load(r#"{"name":"n","vlanTrunk":[{"id":20},{"minID":10,"maxID":12},{"id":11}]}"#).unwrap();
    assert_eq!(conf.vlan_trunk, vec![10, 11, 12, 20]);
    assert!(conf.uses_vlans());
}

#[test]
fn mac_precedence_is_cni_args_then_args_then_runtime_config() {
    let json = r#"{"name":"n","args":{"cni":{"mac":"02:00:00:00:00:02"}},"runtimeConfig":{"mac":"02:00:00:00:00:03"}}"#;
    let conf = BridgeConfig::from_json(json.as_bytes(), "MAC=02:00:00:00:00:01").unwrap();
    assert_eq!(conf.mac, Some([2, 0, 0, 0, 0, 3]));
    let json = r#"{"name":"n","args":{"cni":{"mac":"02:00:00:00:00:02"}}}"#;
    let conf = BridgeConfig::from_json(json.as_bytes(), "MAC=02:00:00:00:00:01").unwrap();
    assert_eq!(conf.mac, Some([2, 0, 0, 0, 0, 2]));
    let conf = BridgeConfig::from_json(
        br#"{"name":"n"}"#,
        "IgnoreUnknown=1;K8S_POD_NAME=x;MAC=02:00:00:00:00:01",
    )
    .unwrap();
    assert_eq!(conf.mac, Some([2, 0, 0, 0, 0, 1]));
}

#[test]
fn unknown_cni_args_fail_without_ignore_unknown() {
    let err: CniError = BridgeConfig::from_json(br#"{"name":"n"}"#, "FOO=1")
        .unwrap_err()
        .into();
    assert_eq!(
        (err.code.as_u32(), err.msg.as_str()),
        (4, "ARGS: unknown args [\"FOO=1\"]")
    );
}

#[test]
fn mac_parsing_and_formatting() {
    assert_eq!(
        parse_mac("0A:1b:2c:3d:4e:5f"),
        Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f])
    );
    assert_eq!(
        parse_mac("0a-1b-2c-3d-4e-5f"),
        Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f])
    );
    for bad in [
        "",
        "0a:1b:2c:3d:4e",
        "0a:1b:2c:3d:4e:5f:60",
        "0a:1b:2c:3d:4e:5",
        "gg:1b:2c:3d:4e:5f",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    assert_eq!(
        format_mac(&[0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]),
        "0a:1b:2c:3d:4e:5f"
    );
}

#[test]
fn macspoofchk_is_accepted_and_off_by_default() {
    assert!(
        load(r#"{"name":"n","macspoofchk":true}"#)
            .unwrap()
            .macspoofchk
    );
    assert!(!load(CRIO).unwrap().macspoofchk);
}

#[test]
fn arrays_where_objects_belong_are_config_errors() {
    // serde's derived structs also read a JSON array by position; Go's decoder
    // refuses it, and so must we, or `"ipam": []` would silently mean L2 mode.
    for json in [
        r#"{"name":"n","ipam":[]}"#,
        r#"{"name":"n","ipam":["host-local"]}"#,
        r#"{"name":"n","vlanTrunk":[[1,5]]}"#,
        r#"{"name":"n","runtimeConfig":[]}"#,
    ] {
        let (code, msg) = message(json);
        assert_eq!(code, 7, "{json}: {msg}");
    }
}

#[test]
fn families_are_foreseen_from_host_local_subnets_only() {
    let with_ipam = |ipam: &str| {
        load(&format!(
            r#"{{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{ipam}}}"#
        ))
        .unwrap()
        .expected_families
    };
    // CRI-O's config: an IPv4 and an IPv6 range set.
    let crio = load(CRIO).unwrap();
    assert_eq!(crio.expected_families, [Family::V4, Family::V6]);
    assert_eq!(
        with_ipam(r#"{"type":"host-local","subnet":"fd00::/64"}"#),
        [Family::V6]
    );
    assert_eq!(
        with_ipam(
            r#"{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.2.0.0/24"}]]}"#
        ),
        [Family::V4]
    );
    // Other plugins, and shapes host-local would refuse, foresee nothing.
    assert_eq!(with_ipam(r#"{"type":"dhcp","subnet":"10.1.0.0/24"}"#), []);
    assert_eq!(with_ipam(r#"{"type":"host-local","ranges":{"a":1}}"#), []);
    assert_eq!(
        with_ipam(r#"{"type":"host-local","ranges":[["x"]],"subnet":7}"#),
        []
    );
}

#[test]
fn masquerade_backends_are_chosen_by_name() {
    let backend = |json: &str| load(json).unwrap().ip_masq_backend;
    assert_eq!(backend(r#"{"name":"n"}"#), MasqBackend::Auto);
    assert_eq!(
        backend(r#"{"name":"n","ipMasqBackend":""}"#),
        MasqBackend::Auto
    );
    assert_eq!(
        backend(r#"{"name":"n","ipMasqBackend":"iptables"}"#),
        MasqBackend::Iptables
    );
    assert_eq!(
        backend(r#"{"name":"n","ipMasqBackend":"nftables"}"#),
        MasqBackend::Nftables
    );
}

#[test]
fn the_default_vlan_is_kept_unless_asked_otherwise() {
    let conf = load(r#"{"name":"n","vlan":100}"#).unwrap();
    assert!(conf.preserve_default_vlan);
    let conf = load(r#"{"name":"n","vlan":100,"preserveDefaultVlan":false}"#).unwrap();
    assert!(!conf.preserve_default_vlan);
}

#[test]
fn vlan_with_is_gateway_is_accepted() {
    let conf = load(r#"{"name":"n","vlan":5,"isDefaultGateway":true}"#).unwrap();
    assert_eq!((conf.vlan, conf.is_gateway), (5, true));
}
