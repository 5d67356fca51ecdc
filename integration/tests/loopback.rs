//! Root tests of the built `loopback` binary, executed as a runtime does.
//!
//! Each test creates its own network namespace (deleted on drop, even when the
//! test fails), so the tests run in parallel. The binary must have been built
//! with `cargo build --workspace` first.

use integration::{PluginCall, PluginOutput, TestNetns, kernel, require_root};
use serde_json::{Value, json};

/// Every version the plugin supports, oldest first.
const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The reference's ADD output at 1.0.0, recorded with sandbox `/run/netns/hns-lo`.
const REFERENCE_ADD_1_0_0: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cni-types/tests/fixtures/reference-loopback-ADD-1.0.0.json"
));
const REFERENCE_SANDBOX: &str = "/run/netns/hns-lo";

/// Expected bytes for 0.3.0/0.3.1/0.4.0 (placeholders VERSION and SANDBOX).
const ADD_V04_TEMPLATE: &str = r#"{
    "cniVersion": "VERSION",
    "interfaces": [
        {
            "name": "lo",
            "mac": "00:00:00:00:00:00",
            "sandbox": "SANDBOX"
        }
    ],
    "ips": [
        {
            "version": "4",
            "interface": 0,
            "address": "127.0.0.1/8"
        },
        {
            "version": "6",
            "interface": 0,
            "address": "::1/128"
        }
    ],
    "dns": {}
}"#;

/// Expected bytes for 0.1.0/0.2.0 (placeholder VERSION).
const ADD_V020_TEMPLATE: &str = r#"{
    "cniVersion": "VERSION",
    "ip4": {
        "ip": "127.0.0.1/8"
    },
    "ip6": {
        "ip": "::1/128"
    },
    "dns": {}
}"#;

fn config(version: &str) -> String {
    format!(r#"{{"cniVersion":"{version}","name":"lo-test","type":"loopback"}}"#)
}

/// A call with everything a runtime sets for `ns`, `CNI_IFNAME=lo`.
fn call(ns: &TestNetns, command: &str, version: &str) -> PluginCall {
    PluginCall::new("loopback")
        .command(command)
        .container_id(ns.name())
        .netns(ns.path())
        .ifname("lo")
        .stdin(config(version))
}

fn expected_json(version: &str, sandbox: &str) -> Value {
    match version {
        "0.1.0" | "0.2.0" => json!({
            "cniVersion": version,
            "ip4": {"ip": "127.0.0.1/8"},
            "ip6": {"ip": "::1/128"},
            "dns": {}
        }),
        "0.3.0" | "0.3.1" | "0.4.0" => json!({
            "cniVersion": version,
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": sandbox}],
            "ips": [
                {"version": "4", "interface": 0, "address": "127.0.0.1/8"},
                {"version": "6", "interface": 0, "address": "::1/128"}
            ],
            "dns": {}
        }),
        _ => json!({
            "cniVersion": version,
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": sandbox}],
            "ips": [
                {"interface": 0, "address": "127.0.0.1/8"},
                {"interface": 0, "address": "::1/128"}
            ],
            "dns": {}
        }),
    }
}

fn expected_bytes(version: &str, sandbox: &str) -> String {
    match version {
        "0.1.0" | "0.2.0" => ADD_V020_TEMPLATE.replace("VERSION", version),
        "0.3.0" | "0.3.1" | "0.4.0" => ADD_V04_TEMPLATE
            .replace("VERSION", version)
            .replace("SANDBOX", sandbox),
        _ => REFERENCE_ADD_1_0_0
            .replace(REFERENCE_SANDBOX, sandbox)
            .replace(
                "\"cniVersion\": \"1.0.0\"",
                &format!("\"cniVersion\": \"{version}\""),
            ),
    }
}

fn assert_lo_configured(ns: &TestNetns) {
    let name = Some(ns.name());
    assert!(kernel::link_is_up(name, "lo"), "lo is not UP after ADD");
    let addrs = kernel::addr_cidrs(name, "lo");
    assert!(
        addrs.iter().any(|a| a == "127.0.0.1/8"),
        "no 127.0.0.1/8 on lo: {addrs:?}"
    );
    assert!(
        addrs.iter().any(|a| a == "::1/128"),
        "no ::1/128 on lo: {addrs:?}"
    );
}

fn assert_lo_down(ns: &TestNetns) {
    assert!(
        !kernel::link_is_up(Some(ns.name()), "lo"),
        "lo is UP but should be DOWN"
    );
}

/// Requires the exit status 1 the skel always uses for errors (not a panic's
/// 101 or a signal) and an error object with `code` and `msg`.
fn assert_error(out: &PluginOutput, code: u64, msg: &str) -> Value {
    let err = out.expect_error(code);
    assert_eq!(out.code(), Some(1), "exit status\n{}", out.describe());
    assert_eq!(err["msg"], msg, "msg\n{}", out.describe());
    err
}

fn add_at(test: &str, version: &str) {
    if !require_root(test) {
        return;
    }
    let ns = TestNetns::new("lo-add");
    assert_lo_down(&ns);

    let out = call(&ns, "ADD", version).run().expect_success();
    assert_lo_configured(&ns);

    let sandbox = ns.path_str();
    assert_eq!(
        out.json(),
        expected_json(version, &sandbox),
        "{}",
        out.describe()
    );
    assert!(
        !out.stdout.ends_with(b"\n"),
        "trailing newline after the result"
    );
    assert!(
        out.stdout_str().contains("\n    \""),
        "not indented by 4 spaces"
    );
    assert_eq!(
        out.stdout_str(),
        expected_bytes(version, &sandbox),
        "ADD at {version}: bytes differ (key order, indentation or trailing newline)"
    );
}

#[test]
fn add_0_1_0() {
    add_at("add_0_1_0", "0.1.0");
}

#[test]
fn add_0_2_0() {
    add_at("add_0_2_0", "0.2.0");
}

#[test]
fn add_0_3_0() {
    add_at("add_0_3_0", "0.3.0");
}

#[test]
fn add_0_3_1() {
    add_at("add_0_3_1", "0.3.1");
}

#[test]
fn add_0_4_0() {
    add_at("add_0_4_0", "0.4.0");
}

#[test]
fn add_1_0_0() {
    add_at("add_1_0_0", "1.0.0");
}

#[test]
fn add_1_1_0() {
    add_at("add_1_1_0", "1.1.0");
}

#[test]
fn add_1_0_0_matches_reference_bytes() {
    if !require_root("add_1_0_0_matches_reference_bytes") {
        return;
    }
    let ns = TestNetns::new("lo-ref");
    let out = call(&ns, "ADD", "1.0.0").run().expect_success();
    assert_eq!(
        out.stdout_str(),
        REFERENCE_ADD_1_0_0.replace(REFERENCE_SANDBOX, &ns.path_str())
    );
}

#[test]
fn check_passes_when_up_and_fails_when_down() {
    if !require_root("check_passes_when_up_and_fails_when_down") {
        return;
    }
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let ns = TestNetns::new("lo-check");
        call(&ns, "ADD", version).run().expect_success();

        let out = call(&ns, "CHECK", version).run().expect_success();
        assert!(
            out.stdout.is_empty(),
            "CHECK at {version} printed\n{}",
            out.describe()
        );

        ns.exec_ok(&["ip", "link", "set", "lo", "down"]);
        assert_lo_down(&ns);
        let out = call(&ns, "CHECK", version).run();
        assert_error(&out, 999, "loopback interface is down");
    }
}

#[test]
fn del_sets_lo_down_and_repeats() {
    if !require_root("del_sets_lo_down_and_repeats") {
        return;
    }
    let ns = TestNetns::new("lo-del");
    call(&ns, "ADD", "1.0.0").run().expect_success();
    assert_lo_configured(&ns);

    for round in 1..=2 {
        let out = call(&ns, "DEL", "1.0.0").run().expect_success();
        assert!(
            out.stdout.is_empty(),
            "DEL #{round} printed\n{}",
            out.describe()
        );
        assert_lo_down(&ns);
    }
}

#[test]
fn del_every_version() {
    if !require_root("del_every_version") {
        return;
    }
    for version in VERSIONS {
        let ns = TestNetns::new("lo-delv");
        call(&ns, "ADD", version).run().expect_success();
        let out = call(&ns, "DEL", version).run().expect_success();
        assert!(
            out.stdout.is_empty(),
            "DEL at {version} printed\n{}",
            out.describe()
        );
        assert_lo_down(&ns);
    }
}

#[test]
fn del_with_missing_netns_succeeds() {
    if !require_root("del_with_missing_netns_succeeds") {
        return;
    }
    let missing = format!("/run/netns/{}", integration::unique_name("lo-gone"));
    for _ in 0..2 {
        let out = PluginCall::new("loopback")
            .command("DEL")
            .container_id("gone")
            .netns(&missing)
            .ifname("lo")
            .stdin(config("1.0.0"))
            .run()
            .expect_success();
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
}

#[test]
fn add_with_missing_netns_fails() {
    if !require_root("add_with_missing_netns_fails") {
        return;
    }
    let missing = format!("/run/netns/{}", integration::unique_name("lo-gone"));
    let out = PluginCall::new("loopback")
        .command("ADD")
        .container_id("gone")
        .netns(&missing)
        .ifname("lo")
        .stdin(config("1.0.0"))
        .run();
    assert_error(
        &out,
        999,
        &format!("failed to Statfs \"{missing}\": no such file or directory"),
    );
}

#[test]
fn add_with_regular_file_as_netns_fails_cleanly() {
    if !require_root("add_with_regular_file_as_netns_fails_cleanly") {
        return;
    }
    let mut cleanup = integration::Cleanup::new();
    let file = std::env::temp_dir().join(integration::unique_name("lo-notns"));
    cleanup.remove_path(&file);
    std::fs::write(&file, b"not a namespace").unwrap();

    let out = PluginCall::new("loopback")
        .command("ADD")
        .container_id("file")
        .netns(&file)
        .ifname("lo")
        .stdin(config("1.0.0"))
        .run();
    assert_eq!(out.code(), Some(1), "exit status\n{}", out.describe());
    let err = out.json();
    assert!(err["code"].is_u64(), "no error code\n{}", out.describe());
    assert!(
        err["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "no error msg\n{}",
        out.describe()
    );
    assert!(!out.stderr_str().contains("panicked"), "{}", out.describe());
}

#[test]
fn version_prints_supported_versions() {
    // VERSION touches no namespace and needs no root.
    let out = PluginCall::new("loopback")
        .command("VERSION")
        .stdin("{}")
        .run()
        .expect_success();
    assert_eq!(
        out.stdout_str(),
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":\
         [\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
}

#[test]
fn malformed_config_is_code_6_and_changes_nothing() {
    if !require_root("malformed_config_is_code_6_and_changes_nothing") {
        return;
    }
    let ns = TestNetns::new("lo-bad");
    let out = call(&ns, "ADD", "1.0.0").stdin("{\"cniVersion\":").run();
    let err = out.expect_error(6);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        err["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("error unmarshall network config")),
        "{}",
        out.describe()
    );
    assert_lo_down(&ns);
}

#[test]
fn unsupported_version_is_code_1_and_changes_nothing() {
    if !require_root("unsupported_version_is_code_1_and_changes_nothing") {
        return;
    }
    let ns = TestNetns::new("lo-ver");
    let out = call(&ns, "ADD", "9.9.9").run();
    assert_error(&out, 1, "incompatible CNI versions");
    assert_lo_down(&ns);
}

#[test]
fn missing_netns_on_add_is_code_4_and_changes_nothing() {
    if !require_root("missing_netns_on_add_is_code_4_and_changes_nothing") {
        return;
    }
    let ns = TestNetns::new("lo-nons");
    let out = call(&ns, "ADD", "1.0.0").unset("CNI_NETNS").run();
    assert_error(&out, 4, "required env variables [CNI_NETNS] missing");
    assert_lo_down(&ns);
}

#[test]
fn too_long_ifname_is_code_4_and_changes_nothing() {
    if !require_root("too_long_ifname_is_code_4_and_changes_nothing") {
        return;
    }
    let ns = TestNetns::new("lo-long");
    let out = call(&ns, "ADD", "1.0.0").ifname("abcdefghijklmnop").run();
    assert_error(&out, 4, "interface name is too long");
    assert_lo_down(&ns);
}
