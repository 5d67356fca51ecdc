//! `CNI_TRACE=1` through the built binaries: the records reproduce the
//! wrapper script's log (issue #6), parallel calls never interleave, and an
//! unsafe trace directory or file is refused without changing the call.
//!
//! Every test writes to its own fresh 0700 trace directory and host-local
//! `dataDir`. Only the bridge test needs root; the others run as any user.
//! The binaries must have been built first with `cargo build --workspace`.

#![cfg(test)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use integration::{
    Cleanup, PluginCall, PluginOutput, TestNetns, require_root, unique_ifname, unique_name,
};
use serde_json::{Value, json};

/// The wrapper's separator: 65 `=`.
const RULE: &str = "=================================================================";

/// A fresh private directory (0700) under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_name(prefix));
        fs::DirBuilder::new().mode(0o700).create(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("warning: cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Seconds since the epoch.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// A number in `100..250` that differs between runs, for subnets.
fn random_octet() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    100 + (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % 150
}

/// One record of a trace file, split into its sections.
#[derive(Debug)]
struct Record {
    start: String,
    cni_params: Vec<String>,
    env: Vec<String>,
    input: Vec<u8>,
    output: Vec<u8>,
    end: String,
}

impl Record {
    /// The value of `name` in the `env:` section.
    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
    }
}

/// Splits `rest` at the first `marker`, returning what precedes it.
fn take_until<'a>(rest: &mut &'a [u8], marker: &[u8], what: &str) -> &'a [u8] {
    let at = rest
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap_or_else(|| {
            panic!(
                "{what}: {:?} not found in {:?}",
                String::from_utf8_lossy(marker),
                String::from_utf8_lossy(rest)
            )
        });
    let (head, tail) = rest.split_at(at);
    *rest = &tail[marker.len()..];
    head
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Parses a whole trace file; panics unless it is a sequence of complete
/// records with every section in the wrapper's order.
fn parse_records(file: &[u8]) -> Vec<Record> {
    let mut rest = file;
    let mut records = Vec::new();
    while !rest.is_empty() {
        let start = take_until(&mut rest, b"\n", "start time");
        let head = format!("{RULE}\nCNI params:\n");
        assert!(
            rest.starts_with(head.as_bytes()),
            "record {} does not go on with the rule and CNI params: {:?}",
            records.len(),
            String::from_utf8_lossy(rest)
        );
        rest = &rest[head.len()..];
        let cni_params = take_until(&mut rest, b"env:\n", "env section");
        let env = take_until(&mut rest, b"INPUT:\n", "INPUT section");
        let input = take_until(&mut rest, b"\nOUTPUT:\n", "OUTPUT section");
        let output = take_until(&mut rest, b"\nReturned at: ", "Returned at");
        let end = take_until(&mut rest, b"\n", "end time");
        let tail = format!("{RULE}\n\n\n");
        assert!(
            rest.starts_with(tail.as_bytes()),
            "record {} does not end with the rule and two empty lines: {:?}",
            records.len(),
            String::from_utf8_lossy(rest)
        );
        rest = &rest[tail.len()..];
        records.push(Record {
            start: String::from_utf8(start.to_vec()).unwrap(),
            cni_params: lines(cni_params),
            env: lines(env),
            input: input.to_vec(),
            output: output.to_vec(),
            end: String::from_utf8(end.to_vec()).unwrap(),
        });
    }
    records
}

fn read_records(path: &Path) -> Vec<Record> {
    parse_records(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Whether `time` matches `^(Mon|...|Sun) (Jan|...|Dec) [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [A-Za-z0-9+-]+ [0-9]{4}$`.
fn looks_like_date(time: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = time.as_bytes();
    let digit = |i: usize, max: u8| b.get(i).is_some_and(|c| c.is_ascii_digit() && *c <= max);
    if b.len() < 26 || !DAYS.contains(&&time[0..3]) || !MONTHS.contains(&&time[4..7]) {
        return false;
    }
    let fixed = b[3] == b' '
        && b[7] == b' '
        && (b[8] == b' ' || digit(8, b'3'))
        && digit(9, b'9')
        && b[10] == b' '
        && digit(11, b'2')
        && digit(12, b'9')
        && b[13] == b':'
        && digit(14, b'5')
        && digit(15, b'9')
        && b[16] == b':'
        && digit(17, b'6')
        && digit(18, b'9')
        && b[19] == b' ';
    let Some((zone, year)) = time[20..].rsplit_once(' ') else {
        return false;
    };
    fixed
        && !zone.is_empty()
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
        && year.len() == 4
        && year.chars().all(|c| c.is_ascii_digit())
}

/// Runs `date` in the C locale with only `TZ` (when given) in its environment.
fn date(tz: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("date");
    cmd.env_clear().env("LC_ALL", "C").args(args);
    if let Some(tz) = tz {
        cmd.env("TZ", tz);
    }
    let out = cmd.output().expect("run date");
    assert!(out.status.success(), "date {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

/// Checks a record time: `date`'s shape, printed by `date` itself for a
/// second within `[from, to]`, and parsed back by `date -d` to that second.
/// Returns the second.
fn check_time(time: &str, tz: Option<&str>, from: i64, to: i64) -> i64 {
    assert!(looks_like_date(time), "not in date's format: {time:?}");
    let second = (from..=to)
        .find(|s| date(tz, &["-d", &format!("@{s}")]) == time)
        .unwrap_or_else(|| {
            panic!(
                "{time:?} is not `date` (TZ={tz:?}) of any second in {from}..={to} ({:?}..{:?})",
                date(tz, &["-d", &format!("@{from}")]),
                date(tz, &["-d", &format!("@{to}")])
            )
        });
    let parsed: i64 = date(tz, &["-d", time, "+%s"]).parse().unwrap();
    assert_eq!(parsed, second, "date -d {time:?}");
    second
}

/// The call's environment as `env` lines, sorted.
fn env_lines(call: &PluginCall) -> BTreeSet<String> {
    call.environment()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
        .collect()
}

/// Checks everything a record of `call` must hold: the whole environment,
/// `CNI params` as `env | grep CNI` would list them, stdin and stdout.
fn check_record(record: &Record, call: &PluginCall, stdin: &[u8], out: &PluginOutput) {
    let env = env_lines(call);
    assert_eq!(
        record.env.iter().cloned().collect::<BTreeSet<_>>(),
        env,
        "env section"
    );
    assert_eq!(record.env.len(), env.len(), "env lines: {:?}", record.env);
    let grep: Vec<&String> = record.env.iter().filter(|l| l.contains("CNI")).collect();
    assert_eq!(
        record.cni_params.iter().collect::<Vec<_>>(),
        grep,
        "CNI params"
    );
    assert_eq!(
        String::from_utf8_lossy(&record.input),
        String::from_utf8_lossy(stdin),
        "INPUT"
    );
    assert_eq!(
        String::from_utf8_lossy(&record.output),
        out.stdout_str(),
        "OUTPUT"
    );
}

/// A host-local ADD config with its own `dataDir`.
fn host_local_config(data_dir: &Path, octet: u32) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": "trace-hl",
        "type": "host-local",
        "ipam": {
            "type": "host-local",
            "dataDir": data_dir,
            "ranges": [[{"subnet": format!("10.{octet}.0.0/16")}]]
        }
    })
    .to_string()
}

/// A host-local ADD for container `id`; host-local never enters the netns.
fn host_local_add(id: &str, config: &str) -> PluginCall {
    PluginCall::new("host-local")
        .command("ADD")
        .container_id(id)
        .netns("/run/netns/trace-unused")
        .ifname("eth0")
        .stdin(config)
}

fn traced(call: PluginCall, dir: &Path) -> PluginCall {
    call.env("CNI_TRACE", "1").env("CNI_TRACE_DIR", dir)
}

#[test]
fn bridge_add_and_del_are_traced_like_the_wrapper() {
    if !require_root("bridge_add_and_del_are_traced_like_the_wrapper") {
        return;
    }
    let ns = TestNetns::new("trace-br");
    let bridge = unique_ifname("trbr");
    let octet = random_octet();
    let traces = TempDir::new("trace-br-log");
    let data = TempDir::new("trace-br-data");
    let mut cleanup = Cleanup::new();
    cleanup.link_del(None, &bridge);

    let config = crio_bridge_config(&bridge, data.path(), octet);
    let call = |command: &str| {
        traced(PluginCall::new("bridge"), traces.path())
            .command(command)
            .container_id(ns.name())
            .netns(ns.path())
            .ifname("eth0")
            .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=trace;K8S_POD_NAME=trace-pod")
            .stdin(config.clone())
    };

    let from = now();
    let add_call = call("ADD");
    let add = add_call.run().expect_success();
    let del_call = call("DEL");
    let del = del_call.run().expect_success();
    let to = now();
    assert!(del.stdout.is_empty(), "{}", del.describe());

    let bridge_records = read_records(&traces.join("bridge"));
    assert_eq!(bridge_records.len(), 2, "{bridge_records:?}");
    for (record, (call, out, command)) in bridge_records
        .iter()
        .zip([(&add_call, &add, "ADD"), (&del_call, &del, "DEL")])
    {
        check_record(record, call, config.as_bytes(), out);
        assert_eq!(record.var("CNI_COMMAND"), Some(command));
        let start = check_time(&record.start, None, from, to);
        let end = check_time(&record.end, None, from, to);
        assert!(start <= end, "{record:?}");
    }

    // The delegated IPAM calls inherit the environment, as with the wrappers.
    let ipam_records = read_records(&traces.join("host-local"));
    check_delegated_ipam_records(&ipam_records, &add_call, config.as_bytes(), from, to);
    // host-local's lease is what bridge reported.
    check_lease_is_bridge_result(&ipam_records, &add);
}

/// CRI-O's 100-crio-bridge.conf with our own bridge, subnets and dataDir.
fn crio_bridge_config(bridge: &str, data_dir: &Path, octet: u32) -> String {
    json!({
        "cniVersion": "0.3.1",
        "name": "crio",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "dataDir": data_dir,
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            "ranges": [
                [{"subnet": format!("10.{octet}.0.0/16")}],
                [{"subnet": format!("fd00:{octet:x}::/64")}]
            ]
        }
    })
    .to_string()
}

/// Checks the host-local records (ADD, DEL) of bridge's delegated IPAM calls.
fn check_delegated_ipam_records(
    ipam_records: &[Record],
    add_call: &PluginCall,
    config: &[u8],
    from: i64,
    to: i64,
) {
    assert_eq!(ipam_records.len(), 2, "{ipam_records:?}");
    for (record, command) in ipam_records.iter().zip(["ADD", "DEL"]) {
        let mut expected = env_lines(add_call);
        expected.remove("CNI_COMMAND=ADD");
        expected.insert(format!("CNI_COMMAND={command}"));
        assert_eq!(
            record.env.iter().cloned().collect::<BTreeSet<_>>(),
            expected
        );
        let grep: Vec<&String> = record.env.iter().filter(|l| l.contains("CNI")).collect();
        assert_eq!(record.cni_params.iter().collect::<Vec<_>>(), grep);
        assert_eq!(record.input, config, "host-local INPUT");
        let start = check_time(&record.start, None, from, to);
        let end = check_time(&record.end, None, from, to);
        assert!(start <= end, "{record:?}");
    }
}

/// Checks host-local's ADD output has the two addresses bridge reported and DEL printed nothing.
fn check_lease_is_bridge_result(ipam_records: &[Record], add: &PluginOutput) {
    let lease: Value = serde_json::from_slice(&ipam_records[0].output).unwrap();
    let result = add.json();
    let addresses = |v: &Value| -> Vec<String> {
        v["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ip| ip["address"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(addresses(&lease), addresses(&result));
    assert_eq!(addresses(&result).len(), 2, "{result}");
    assert!(ipam_records[1].output.is_empty());
}

#[test]
fn parallel_calls_leave_whole_records() {
    const CALLS: usize = 20;
    let traces = TempDir::new("trace-par-log");
    let data = TempDir::new("trace-par-data");
    let config = host_local_config(data.path(), random_octet());
    let ids: Vec<String> = (0..CALLS).map(|i| format!("trace-par-{i}")).collect();

    let (adds, versions): (Vec<_>, Vec<_>) = std::thread::scope(|scope| {
        let adds: Vec<_> = ids
            .iter()
            .map(|id| {
                let call = traced(host_local_add(id, &config), traces.path());
                scope.spawn(move || (call.run(), call))
            })
            .collect();
        let versions: Vec<_> = (0..CALLS)
            .map(|_| {
                let call = traced(
                    PluginCall::new("loopback").command("VERSION"),
                    traces.path(),
                );
                scope.spawn(move || (call.run(), call))
            })
            .collect();
        (
            adds.into_iter().map(|h| h.join().unwrap()).collect(),
            versions.into_iter().map(|h| h.join().unwrap()).collect(),
        )
    });

    let records = read_records(&traces.join("host-local"));
    assert_eq!(records.len(), CALLS);
    let mut addresses = BTreeSet::new();
    for (out, call) in &adds {
        assert!(out.success(), "{}", out.describe());
        let id = call.environment()["CNI_CONTAINERID"].to_string_lossy();
        let matching: Vec<&Record> = records
            .iter()
            .filter(|r| r.var("CNI_CONTAINERID") == Some(&*id))
            .collect();
        assert_eq!(matching.len(), 1, "records of {id}");
        check_record(matching[0], call, config.as_bytes(), out);
        addresses.insert(out.json()["ips"][0]["address"].to_string());
    }
    assert_eq!(addresses.len(), CALLS, "{addresses:?}");

    let records = read_records(&traces.join("loopback"));
    assert_eq!(records.len(), CALLS);
    for (record, (out, call)) in records.iter().zip(&versions) {
        // VERSION does not read stdin: INPUT is empty.
        check_record(record, call, b"", out);
    }
}

#[test]
fn errors_are_traced_with_the_error_object() {
    let traces = TempDir::new("trace-err-log");
    let config = r#"{"cniVersion":"1.0.0","name":"trace-err","type":"host-local""#;
    let call = traced(host_local_add("trace-err", config), traces.path());
    let out = call.run();
    assert_eq!(out.expect_error(6)["code"], 6);
    let records = read_records(&traces.join("host-local"));
    assert_eq!(records.len(), 1);
    check_record(&records[0], &call, config.as_bytes(), &out);
    assert!(!records[0].output.is_empty());
}

#[test]
fn times_follow_tz_like_date() {
    let traces = TempDir::new("trace-tz-log");
    for tz in [None, Some("UTC"), Some("America/New_York")] {
        let mut call = traced(
            PluginCall::new("loopback").command("VERSION"),
            traces.path(),
        );
        if let Some(tz) = tz {
            call = call.env("TZ", tz);
        }
        let from = now();
        call.run().expect_success();
        let to = now();
        let records = read_records(&traces.join("loopback"));
        let record = records.last().unwrap();
        check_time(&record.start, tz, from, to);
        check_time(&record.end, tz, from, to);
    }
    assert_eq!(read_records(&traces.join("loopback")).len(), 3);
}

#[test]
fn untraced_calls_touch_no_file() {
    let parent = TempDir::new("trace-off");
    let dir = parent.join("log");
    for value in [None, Some("0"), Some(""), Some("true")] {
        let mut call = PluginCall::new("loopback")
            .command("VERSION")
            .env("CNI_TRACE_DIR", &dir);
        if let Some(value) = value {
            call = call.env("CNI_TRACE", value);
        }
        let out = call.run().expect_success();
        assert!(out.stderr.is_empty(), "{}", out.describe());
    }
    assert!(!dir.exists());
}

/// Runs the same host-local ADD untraced and traced into `trace_dir` (each
/// against a fresh `dataDir`), and checks the trace changed nothing but one
/// warning on stderr.
fn assert_refused_without_effect(trace_dir: &Path) {
    let untraced_data = TempDir::new("trace-ref-data");
    let traced_data = TempDir::new("trace-ref-data");
    let octet = random_octet();
    let plain = host_local_add("trace-ref", &host_local_config(untraced_data.path(), octet))
        .run()
        .expect_success();
    let out = traced(
        host_local_add("trace-ref", &host_local_config(traced_data.path(), octet)),
        trace_dir,
    )
    .run();
    assert_eq!(out.code(), plain.code(), "{}", out.describe());
    assert_eq!(out.stdout_str(), plain.stdout_str());
    let stderr = out.stderr_str();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("warning: CNI_TRACE: refusing "),
        "{stderr}"
    );
}

#[test]
fn symlinked_trace_directory_is_refused() {
    let tmp = TempDir::new("trace-symdir");
    let target = tmp.join("target");
    fs::create_dir(&target).unwrap();
    let link = tmp.join("log");
    symlink(&target, &link).unwrap();
    assert_refused_without_effect(&link);
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn world_writable_trace_directory_is_refused() {
    let tmp = TempDir::new("trace-wwdir");
    let dir = tmp.join("log");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    assert_refused_without_effect(&dir);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn symlinked_log_file_is_refused() {
    let tmp = TempDir::new("trace-symfile");
    let victim = tmp.join("victim");
    fs::write(&victim, b"keep").unwrap();
    let dir = tmp.join("log");
    fs::create_dir(&dir).unwrap();
    symlink(&victim, dir.join("host-local")).unwrap();
    assert_refused_without_effect(&dir);
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
}

#[test]
fn missing_trace_directory_is_created_private() {
    let tmp = TempDir::new("trace-new");
    let dir = tmp.join("a").join("log");
    let out = traced(PluginCall::new("loopback").command("VERSION"), &dir)
        .run()
        .expect_success();
    assert!(out.stderr.is_empty(), "{}", out.describe());
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("loopback")), 0o600);
}

#[test]
fn record_layout_matches_the_wrapper_example() {
    // The shape of the wrapper's example record, checked by the same parser.
    let example = format!(
        "Fri Aug 27 07:55:52 EDT 2021\n{RULE}\nCNI params:\nCNI_COMMAND=ADD\nenv:\n\
         CNI_COMMAND=ADD\nPATH=/usr/bin\nINPUT:\n{{}}\nOUTPUT:\n{{\n}}\n\
         Returned at: Fri Aug 27 07:55:53 EDT 2021\n{RULE}\n\n\n"
    );
    let records = parse_records(example.as_bytes());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].cni_params, ["CNI_COMMAND=ADD"]);
    assert_eq!(records[0].env, ["CNI_COMMAND=ADD", "PATH=/usr/bin"]);
    assert_eq!(records[0].input, b"{}");
    assert_eq!(records[0].output, b"{\n}");
    assert!(looks_like_date(&records[0].start));
    assert!(looks_like_date("Fri Jan  1 11:00:00 AEDT 2021"));
    assert!(looks_like_date("Fri Aug 27 15:55:52 +04 2021"));
    assert!(!looks_like_date("2021-08-27T07:55:52-04:00"));
    assert!(!looks_like_date("Fri Aug 27 7:55:52 EDT 2021"));
    assert_eq!(
        date(Some("America/New_York"), &["-d", "@1630065352"]),
        "Fri Aug 27 07:55:52 EDT 2021"
    );
}
