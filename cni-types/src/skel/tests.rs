use super::*;
use crate::result::{Interface, IpConfig};
use std::cell::RefCell;

/// A plugin that records which command it saw and returns a fixed result.
#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<Command>>,
    fail_with: Option<CniError>,
}

impl Recorder {
    fn answer(&self, req: &Request<'_>) -> Result<(), CniError> {
        self.calls.borrow_mut().push(req.command);
        match &self.fail_with {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }
}

impl Plugin for Recorder {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        self.answer(req)?;
        Ok(CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                sandbox: req.env.netns.clone(),
                ..Interface::default()
            }],
            ips: vec![IpConfig {
                interface: Some(0),
                address: "10.0.0.2/24".parse().unwrap(),
                gateway: None,
            }],
            ..CniResult::default()
        })
    }
    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        self.answer(req)
    }
    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        self.answer(req)
    }
    fn status(&self, req: &Request<'_>) -> Result<(), CniError> {
        self.answer(req)
    }
    fn gc(&self, req: &Request<'_>) -> Result<(), CniError> {
        self.answer(req)
    }
}

fn full_env(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", "abc123".to_owned()),
        ("CNI_NETNS", "/run/netns/x".to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", "/opt/cni/bin".to_owned()),
    ]
}

fn call_with(plugin: &Recorder, vars: Vec<(&'static str, String)>, stdin: &str) -> Outcome {
    let env = CniEnv::from_vars(vars);
    let bytes = stdin.as_bytes().to_vec();
    dispatch(
        plugin,
        "CNI test plugin v0",
        &env,
        &mut || Ok(bytes.clone()),
    )
}

fn call(command: &str, stdin: &str) -> (Outcome, Vec<Command>) {
    let plugin = Recorder::default();
    let outcome = call_with(&plugin, full_env(command), stdin);
    let calls = plugin.calls.borrow().clone();
    (outcome, calls)
}

fn error_of(outcome: &Outcome) -> (u64, String, String) {
    assert!(
        !outcome.success,
        "expected failure, got {:?}",
        String::from_utf8_lossy(&outcome.stdout)
    );
    let value: serde_json::Value = serde_json::from_slice(&outcome.stdout).unwrap();
    (
        value["code"].as_u64().unwrap(),
        value["msg"].as_str().unwrap().to_owned(),
        value["details"].as_str().unwrap_or("").to_owned(),
    )
}

const CONF_031: &str = r#"{"cniVersion":"0.3.1","name":"crio","type":"test"}"#;
const CONF_100: &str = r#"{"cniVersion":"1.0.0","name":"crio","type":"test"}"#;
const CONF_110: &str = r#"{"cniVersion":"1.1.0","name":"crio","type":"test"}"#;

#[test]
fn version_prints_supported_versions_and_ignores_stdin() {
    let plugin = Recorder::default();
    let env = CniEnv::from_vars([("CNI_COMMAND", "VERSION")]);
    let outcome = dispatch(&plugin, "about", &env, &mut || {
        panic!("VERSION must not read stdin")
    });
    assert!(outcome.success);
    assert_eq!(
        String::from_utf8(outcome.stdout).unwrap(),
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
}

#[test]
fn no_command_prints_about_to_stderr_and_succeeds() {
    let plugin = Recorder::default();
    let env = CniEnv::from_vars(Vec::<(String, String)>::new());
    let outcome = dispatch(&plugin, "CNI test plugin v0", &env, &mut || {
        panic!("must not read stdin")
    });
    assert!(outcome.success);
    assert!(outcome.stdout.is_empty());
    assert_eq!(
        String::from_utf8(outcome.stderr).unwrap(),
        "CNI test plugin v0\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"
    );
}

#[test]
fn missing_variables_are_listed_in_libcni_order() {
    let plugin = Recorder::default();
    let outcome = call_with(&plugin, vec![("CNI_COMMAND", "ADD".into())], CONF_031);
    assert_eq!(
        error_of(&outcome),
        (
            4,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing".into(),
            String::new()
        )
    );
    let mut vars = full_env("DEL");
    vars.retain(|(k, _)| *k != "CNI_PATH" && *k != "CNI_NETNS");
    let outcome = call_with(&plugin, vars, CONF_031);
    assert_eq!(
        error_of(&outcome).1,
        "required env variables [CNI_PATH] missing"
    );
    // An empty variable counts as missing.
    let mut vars = full_env("ADD");
    vars.push(("CNI_NETNS", String::new()));
    let outcome = call_with(&plugin, vars, CONF_031);
    assert_eq!(
        error_of(&outcome).1,
        "required env variables [CNI_NETNS] missing"
    );
    assert!(plugin.calls.borrow().is_empty());
}

#[test]
fn del_without_netns_reaches_the_plugin() {
    let plugin = Recorder::default();
    let mut vars = full_env("DEL");
    vars.retain(|(k, _)| *k != "CNI_NETNS");
    let outcome = call_with(&plugin, vars, CONF_031);
    assert!(outcome.success);
    assert!(outcome.stdout.is_empty());
    assert_eq!(*plugin.calls.borrow(), vec![Command::Del]);
}

#[test]
fn malformed_stdin_is_a_decoding_error() {
    for (stdin, msg) in [
        (
            "",
            "error unmarshall network config: unexpected end of JSON input",
        ),
        (
            "{\"name\":",
            "error unmarshall network config: unexpected end of JSON input",
        ),
        (
            "[1,2]",
            "error unmarshall network config: cannot unmarshal array into a network config object",
        ),
        (
            "{\"name\": 5}",
            "error unmarshall network config: cannot unmarshal number into field name of type string",
        ),
    ] {
        let (outcome, calls) = call("ADD", stdin);
        assert_eq!(
            error_of(&outcome),
            (6, msg.to_owned(), String::new()),
            "{stdin}"
        );
        assert!(calls.is_empty());
    }
    let (outcome, _) = call("ADD", "{\"name\": tru}");
    let (code, msg, _) = error_of(&outcome);
    assert_eq!(code, 6);
    assert!(
        msg.starts_with("error unmarshall network config: "),
        "{msg}"
    );
}

#[test]
fn network_name_is_required_and_validated() {
    let (outcome, _) = call("ADD", r#"{"cniVersion":"0.3.1"}"#);
    assert_eq!(
        error_of(&outcome),
        (7, "missing network name".into(), String::new())
    );
    let (outcome, _) = call("ADD", "null");
    assert_eq!(error_of(&outcome).1, "missing network name");
    for bad in ["../etc", "-net", "a/b", "a b", ".hidden"] {
        let (outcome, calls) = call(
            "ADD",
            &format!(r#"{{"cniVersion":"0.3.1","name":"{bad}"}}"#),
        );
        assert_eq!(
            error_of(&outcome),
            (
                7,
                "invalid characters found in network name".into(),
                bad.to_owned()
            )
        );
        assert!(calls.is_empty());
    }
}

#[test]
fn container_id_and_ifname_rules() {
    let plugin = Recorder::default();
    for (id, expected) in [
        (
            "a/b",
            (
                4,
                "invalid characters in containerID".to_owned(),
                "a/b".to_owned(),
            ),
        ),
        (
            "-ab",
            (
                4,
                "invalid characters in containerID".to_owned(),
                "-ab".to_owned(),
            ),
        ),
    ] {
        let mut vars = full_env("ADD");
        vars.push(("CNI_CONTAINERID", id.into()));
        assert_eq!(error_of(&call_with(&plugin, vars, CONF_031)), expected);
    }
    for (ifname, msg, details) in [
        (
            "a23456789012345x",
            "interface name is too long",
            "interface name should be less than 16 characters",
        ),
        (".", "interface name is . or ..", ""),
        ("..", "interface name is . or ..", ""),
        (
            "eth/0",
            "interface name contains / or : or whitespace characters",
            "",
        ),
        (
            "eth:0",
            "interface name contains / or : or whitespace characters",
            "",
        ),
        (
            "eth 0",
            "interface name contains / or : or whitespace characters",
            "",
        ),
        (
            "eth\u{a0}0",
            "interface name contains / or : or whitespace characters",
            "",
        ),
    ] {
        let mut vars = full_env("ADD");
        vars.push(("CNI_IFNAME", ifname.into()));
        assert_eq!(
            error_of(&call_with(&plugin, vars, CONF_031)),
            (4, msg.into(), details.into()),
            "{ifname:?}"
        );
    }
    // Exactly 15 bytes, dots, dashes and @ are fine.
    for ifname in ["a23456789012345", "eth0.100", "veth-a@b"] {
        let mut vars = full_env("ADD");
        vars.push(("CNI_IFNAME", ifname.into()));
        assert!(call_with(&plugin, vars, CONF_031).success, "{ifname}");
    }
    assert!(plugin.calls.borrow().iter().all(|c| *c == Command::Add));
    assert_eq!(plugin.calls.borrow().len(), 3);
}

#[test]
fn add_prints_the_result_in_the_config_version() {
    let (outcome, calls) = call("ADD", CONF_031);
    assert!(outcome.success);
    assert_eq!(calls, vec![Command::Add]);
    let printed = String::from_utf8(outcome.stdout).unwrap();
    assert!(printed.starts_with("{\n    \"cniVersion\": \"0.3.1\",\n    \"interfaces\": ["));
    assert!(printed.contains("\"version\": \"4\""));
    assert!(printed.ends_with("\"dns\": {}\n}"));
    let (outcome, _) = call("ADD", r#"{"name":"n"}"#);
    let printed = String::from_utf8(outcome.stdout).unwrap();
    assert!(
        printed.contains("\"cniVersion\": \"0.1.0\"") && printed.contains("\"ip4\""),
        "{printed}"
    );
}

#[test]
fn unsupported_versions_are_rejected_with_libcni_details() {
    for version in ["0.3", "2.0.0", "1.0"] {
        let (outcome, calls) = call(
            "ADD",
            &format!(r#"{{"cniVersion":"{version}","name":"n"}}"#),
        );
        assert_eq!(
            error_of(&outcome),
            (
                1,
                "incompatible CNI versions".into(),
                format!(
                    "config is \"{version}\", plugin supports [\"0.1.0\" \"0.2.0\" \"0.3.0\" \"0.3.1\" \"0.4.0\" \"1.0.0\" \"1.1.0\"]"
                )
            )
        );
        assert!(calls.is_empty());
    }
    let (outcome, _) = call("DEL", r#"{"cniVersion":5,"name":"n"}"#);
    assert_eq!(error_of(&outcome).0, 6);
}

#[test]
fn error_objects_carry_the_config_version() {
    let (outcome, _) = call("ADD", r#"{"cniVersion":"0.3.1","name":"a/b"}"#);
    let value: serde_json::Value = serde_json::from_slice(&outcome.stdout).unwrap();
    assert_eq!(value["cniVersion"], "0.3.1");
    let text = String::from_utf8(outcome.stdout).unwrap();
    assert!(
        text.starts_with("{\n    \"cniVersion\": \"0.3.1\",\n    \"code\": 7,"),
        "{text}"
    );
}

#[test]
fn check_needs_0_4_0() {
    let (outcome, calls) = call("CHECK", CONF_031);
    assert_eq!(
        error_of(&outcome),
        (
            1,
            "config version does not allow CHECK".into(),
            String::new()
        )
    );
    assert!(calls.is_empty());
    let (outcome, _) = call("CHECK", r#"{"cniVersion":"x.1","name":"n"}"#);
    assert_eq!(
        error_of(&outcome),
        (6, "failed to convert major version part \"x\": strconv.Atoi: parsing \"x\": invalid syntax".into(), String::new())
    );
    let (outcome, _) = call("CHECK", r#"{"cniVersion":"0.9.0","name":"n"}"#);
    assert_eq!(error_of(&outcome).1, "incompatible CNI versions");
    let (outcome, calls) = call("CHECK", CONF_100);
    assert!(outcome.success && outcome.stdout.is_empty());
    assert_eq!(calls, vec![Command::Check]);
}

#[test]
fn gc_and_status_need_1_1_0_and_only_cni_path() {
    for command in ["GC", "STATUS"] {
        let (outcome, calls) = call(command, CONF_100);
        assert_eq!(
            error_of(&outcome),
            (
                1,
                format!("config version does not allow {command}"),
                String::new()
            )
        );
        assert!(calls.is_empty());
        let plugin = Recorder::default();
        let outcome = call_with(
            &plugin,
            vec![
                ("CNI_COMMAND", command.into()),
                ("CNI_PATH", "/opt/cni/bin".into()),
            ],
            CONF_110,
        );
        assert!(outcome.success && outcome.stdout.is_empty(), "{command}");
        assert_eq!(plugin.calls.borrow().len(), 1);
        let outcome = call_with(&plugin, vec![("CNI_COMMAND", command.into())], CONF_110);
        assert_eq!(
            error_of(&outcome).1,
            "required env variables [CNI_PATH] missing"
        );
    }
}

#[test]
fn unknown_command_is_code_4_after_config_validation() {
    let (outcome, _) = call("FROB", CONF_031);
    assert_eq!(
        error_of(&outcome),
        (4, "unknown CNI_COMMAND: FROB".into(), String::new())
    );
    let (outcome, _) = call("add", "garbage");
    assert_eq!(error_of(&outcome).0, 6);
}

#[test]
fn plugin_errors_are_printed_unchanged() {
    let plugin = Recorder {
        fail_with: Some(CniError::new(ErrorCode::Other(120), "no <ip> & such").with_details("d")),
        ..Recorder::default()
    };
    let outcome = call_with(&plugin, full_env("ADD"), CONF_100);
    let text = String::from_utf8(outcome.stdout.clone()).unwrap();
    assert!(
        text.contains("\"msg\": \"no \\u003cip\\u003e \\u0026 such\""),
        "{text}"
    );
    assert_eq!(
        error_of(&outcome),
        (120, "no <ip> & such".into(), "d".into())
    );
}

#[test]
fn stdin_read_errors_and_oversized_input_are_io_errors() {
    let plugin = Recorder::default();
    let env = CniEnv::from_vars(full_env("ADD"));
    let outcome = dispatch(&plugin, "a", &env, &mut || Err(io::Error::other("boom")));
    assert_eq!(
        error_of(&outcome),
        (5, "error reading from stdin: boom".into(), String::new())
    );
    let big = vec![b' '; (MAX_STDIN_BYTES + 1) as usize];
    let outcome = dispatch(&plugin, "a", &env, &mut || Ok(big.clone()));
    assert_eq!(error_of(&outcome).0, 5);
    assert!(plugin.calls.borrow().is_empty());
}

#[test]
fn request_exposes_prev_result_args_and_attachments() {
    struct Inspect;
    impl Plugin for Inspect {
        fn add(&self, _: &Request<'_>) -> Result<CniResult, CniError> {
            unreachable!()
        }
        fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
            let prev = req.prev_result()?.expect("prevResult");
            assert_eq!(prev.ips[0].address.to_string(), "10.0.0.2/24");
            assert_eq!(req.args(&["IP"])?.get("IP"), Some("10.0.0.9"));
            assert!(req.args(&[]).is_err());
            Ok(())
        }
        fn check(&self, _: &Request<'_>) -> Result<(), CniError> {
            unreachable!()
        }
        fn gc(&self, req: &Request<'_>) -> Result<(), CniError> {
            assert_eq!(req.valid_attachments().len(), 2);
            assert_eq!(req.valid_attachments()[1].ifname, "net1");
            Ok(())
        }
    }
    let mut vars = full_env("DEL");
    vars.push(("CNI_ARGS", "IP=10.0.0.9".into()));
    let env = CniEnv::from_vars(vars);
    let conf = r#"{"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}}"#;
    let outcome = dispatch(&Inspect, "a", &env, &mut || Ok(conf.as_bytes().to_vec()));
    assert!(
        outcome.success,
        "{}",
        String::from_utf8_lossy(&outcome.stdout)
    );
    let env = CniEnv::from_vars(full_env("GC"));
    let conf = r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"net1"}]}"#;
    let outcome = dispatch(&Inspect, "a", &env, &mut || Ok(conf.as_bytes().to_vec()));
    assert!(
        outcome.success,
        "{}",
        String::from_utf8_lossy(&outcome.stdout)
    );
}

#[test]
fn bad_prev_result_is_a_decoding_error() {
    struct UsesPrev;
    impl Plugin for UsesPrev {
        fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
            Ok(req.prev_result()?.unwrap_or_default())
        }
        fn del(&self, _: &Request<'_>) -> Result<(), CniError> {
            Ok(())
        }
        fn check(&self, _: &Request<'_>) -> Result<(), CniError> {
            Ok(())
        }
    }
    let env = CniEnv::from_vars(full_env("ADD"));
    let conf = r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"ips":[{"address":"bogus"}]}}"#;
    let outcome = dispatch(&UsesPrev, "a", &env, &mut || Ok(conf.as_bytes().to_vec()));
    assert_eq!(error_of(&outcome).0, 6);
}
