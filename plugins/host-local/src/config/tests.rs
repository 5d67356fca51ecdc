use super::*;
use cni_types::CniError;

const CRIO: &str = include_str!("../../../../cni-types/tests/fixtures/100-crio-bridge.conf");

fn load(json: &str) -> Result<IpamConfig, ConfigError> {
    IpamConfig::from_json(json.as_bytes(), None)
}

fn error(json: &str) -> CniError {
    load(json).unwrap_err().into()
}

#[test]
fn crio_config_gives_two_sets_routes_and_default_dir() {
    let conf = load(CRIO).unwrap();
    assert_eq!(conf.name, "crio");
    assert_eq!(conf.range_sets.len(), 2);
    assert_eq!(conf.range_sets[0].to_string(), "10.85.0.1-10.85.255.254");
    assert_eq!(
        conf.range_sets[1].to_string(),
        "1100:200::1-1100:2ff:ffff:ffff:ffff:ffff:ffff:ffff"
    );
    assert_eq!(conf.routes.len(), 2);
    assert_eq!(conf.routes[1].dst.to_string(), "1100:200::1/24");
    assert_eq!(conf.data_dir, PathBuf::from("/var/lib/cni/networks"));
    assert!(conf.resolv_conf.is_none());
    assert!(conf.requested.is_empty());
}

#[test]
fn legacy_flat_range_comes_first() {
    let conf = load(
        r#"{"cniVersion":"0.3.1","name":"n","ipam":{"type":"host-local","subnet":"192.168.122.0/24",
            "rangeStart":"192.168.122.200","ranges":[[{"subnet":"10.1.0.0/16"}]],"dataDir":"/tmp/x"}}"#,
    )
    .unwrap();
    assert_eq!(conf.range_sets.len(), 2);
    assert_eq!(
        conf.range_sets[0].to_string(),
        "192.168.122.200-192.168.122.254"
    );
    assert_eq!(conf.range_sets[1].to_string(), "10.1.0.1-10.1.255.254");
    assert_eq!(conf.data_dir, PathBuf::from("/tmp/x"));
}

#[test]
fn runtime_ip_ranges_override_the_config() {
    let conf = load(
        r#"{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}]]},
            "runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/24","gateway":"10.9.0.254"}]]}}"#,
    )
    .unwrap();
    assert_eq!(conf.range_sets.len(), 1);
    assert_eq!(conf.range_sets[0].to_string(), "10.9.0.1-10.9.0.254");
    // An empty ipRanges list does not override.
    let conf = load(r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}]]},"runtimeConfig":{"ipRanges":[]}}"#)
        .unwrap();
    assert_eq!(conf.range_sets[0].to_string(), "10.1.0.1-10.1.255.254");
}

#[test]
fn structural_errors_have_reference_messages_and_code_7() {
    for (json, msg) in [
        (r#"{"name":"n"}"#, "IPAM config missing 'ipam' key"),
        (
            r#"{"name":"n","ipam":{"type":"host-local"}}"#,
            "no IP ranges specified",
        ),
        (
            r#"{"name":"n","ipam":{"ranges":[]}}"#,
            "no IP ranges specified",
        ),
        (
            r#"{"name":"n","ipam":{"ranges":[[{"gateway":"10.0.0.1"}]]}}"#,
            "invalid range set 0: IP <nil> not v4 nor v6",
        ),
        (
            r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0"}]]}}"#,
            "invalid CIDR address: 10.0.0.0",
        ),
        (
            r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/33"}]]}}"#,
            "invalid CIDR address: 10.0.0.0/33",
        ),
        (
            r#"{"name":"n","ipam":{"ranges":[[{"subnet":"banana/8"}]]}}"#,
            "invalid CIDR address: banana/8",
        ),
        (
            r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.x"}]]}}"#,
            "invalid IP address: 10.0.0.x",
        ),
        (
            r#"{"cniVersion":"0.3.1","name":"n","ipam":{"ranges":[[{"subnet":"10.88.0.0/31"}]]}}"#,
            "invalid range set 0: Network 10.88.0.0/31 too small to allocate from",
        ),
        (
            r#"{"cniVersion":"0.2.0","name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}],[{"subnet":"10.2.0.0/16"}]]}}"#,
            "CNI version 0.2.0 does not support more than 1 address per family",
        ),
        (
            r#"{"cniVersion":"0.3.1","name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}],[{"subnet":"10.1.0.0/24"}]]}}"#,
            "range set 0 overlaps with 1",
        ),
        (
            r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}]],"dataDir":"/var/lib/../../etc"}}"#,
            "invalid dataDir \"/var/lib/../../etc\": it must not be empty or contain NUL or '..' components",
        ),
    ] {
        let err = error(json);
        assert_eq!((err.code.as_u32(), err.msg.as_str()), (7, msg), "{json}");
    }
}

#[test]
fn wrong_types_are_code_7() {
    for json in [
        r#"{"name":"n","ipam":"host-local"}"#,
        r#"{"name":"n","ipam":{"ranges":"10.0.0.0/8"}}"#,
        r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/8"}]],"routes":[{"dst":"nope"}]}}"#,
        r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/8"}]],"dataDir":5}}"#,
    ] {
        let err = error(json);
        assert_eq!(err.code.as_u32(), 7, "{json}");
        assert!(
            err.msg.starts_with("failed to load netconf: "),
            "{}",
            err.msg
        );
    }
}

#[test]
fn requested_ips_are_merged_in_order_without_prefixes_or_duplicates() {
    let json = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}],[{"subnet":"fd00::/64"}]]},
        "args":{"cni":{"ips":["fd00::9/64","10.1.0.9"]}},"runtimeConfig":{"ips":["10.1.0.9/16","10.1.0.10"]}}"#;
    let conf = IpamConfig::from_json(json.as_bytes(), Some("10.1.0.8/16")).unwrap();
    let requested: Vec<String> = conf.requested.iter().map(ToString::to_string).collect();
    assert_eq!(
        requested,
        vec!["10.1.0.8", "fd00::9", "10.1.0.9", "10.1.0.10"]
    );
    let err: CniError = IpamConfig::from_json(json.as_bytes(), Some("10.1.0.300"))
        .unwrap_err()
        .into();
    assert_eq!(
        (err.code.as_u32(), err.msg.as_str()),
        (7, "invalid IP address: 10.1.0.300")
    );
}

#[test]
fn resolv_conf_path_is_kept() {
    let conf = load(
        r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.1.0.0/16"}]],"resolvConf":"/etc/r.conf"}}"#,
    )
    .unwrap();
    assert_eq!(conf.resolv_conf, Some(PathBuf::from("/etc/r.conf")));
}
