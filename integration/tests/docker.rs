//! Root tests of the Docker workflow this project started from: a container
//! run with `--net=none`, attached by running every config of a
//! `NETCONFPATH` directory against `/proc/<pid>/ns/net` (our
//! `scripts/docker-run.sh`, and the same steps done by hand), with a
//! private Docker daemon ([`PrivateDocker`]). The plugins run in the host's
//! namespace, as with the seed's scripts, on a bridge and subnets of the
//! test's own.
//!
//! - the script: addresses inside the container, the gateway reached, lo up,
//!   `CNI_TRACE=1` passed through, and nothing left afterwards: leases,
//!   rules, ports, containers; also when a network fails to attach and on
//!   Ctrl-C;
//! - by hand: the result, the host reaching the container, the next
//!   container getting the next address, and DEL after the container has
//!   exited (its `/proc` path gone) still freeing the lease and the
//!   masquerade rules, which the reference leaks.

#![cfg(test)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bridge::masq;
use integration::docker::DOCKER;
use integration::{
    Cleanup, PluginCall, PrivateDocker, TestNetwork, cmd, crio_settings, plugin_dir, require_root,
    unique_name,
};
use serde_json::{Value, json};

integration::test_network! {
    /// One test's network on the host: CRI-O's settings on
    /// `10.<170+k>.0.0/16` and `fd<k>:dc00::/64`.
    Net
}

/// The image every test imports.
const IMAGE: &str = "cni-rs/busybox:test";

impl Net {
    fn new(tag: &str, k: u8, cleanup: &mut Cleanup) -> Net {
        Net(TestNetwork::new("dkr", tag, k, cleanup))
    }

    fn gateway(&self) -> String {
        format!("10.{}.0.1", 170 + u16::from(self.k))
    }

    fn address(&self, host: u8) -> String {
        format!("10.{}.0.{host}", 170 + u16::from(self.k))
    }

    /// The bridge plugin's config at `version`.
    fn bridge_config(&self, version: &str) -> Value {
        let subnets = [
            format!("10.{}.0.0/16", 170 + u16::from(self.k)),
            format!("fd{:02x}:dc00::/64", self.k),
        ];
        let mut conf = self.0.bridge_config(version, &subnets, &[crio_settings()]);
        conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
        conf
    }

    /// Whether container `id`'s masquerade chain exists in either family.
    fn has_rules(&self, id: &str) -> bool {
        masq::exists(&self.name, id).unwrap().any()
    }
}

/// A `NETCONFPATH` directory with `files` (name, JSON), removed by
/// `cleanup`.
fn netconf_dir(cleanup: &mut Cleanup, files: &[(&str, Value)]) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("cni-netconf"));
    std::fs::create_dir_all(&dir).unwrap();
    cleanup.remove_path(&dir);
    for (name, conf) in files {
        std::fs::write(dir.join(name), conf.to_string()).unwrap();
    }
    dir
}

fn loopback() -> Value {
    json!({"cniVersion": "1.0.0", "name": "lo", "type": "loopback"})
}

/// CRI-O's network as a 1.0.0 conflist (so DEL gets prevResult).
fn conflist(net: &Net) -> Value {
    let mut bridge = net.bridge_config("1.0.0");
    let name = bridge["name"].take();
    if let Some(object) = bridge.as_object_mut() {
        object.remove("cniVersion");
    }
    json!({"cniVersion": "1.0.0", "name": name, "plugins": [bridge]})
}

/// `scripts/docker-run.sh` against `docker`, with our plugins.
fn docker_run_sh(docker: &PrivateDocker, netconf: &Path) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/docker-run.sh");
    let mut command = Command::new(script);
    command
        .env("DOCKER", DOCKER)
        .env("DOCKER_HOST", docker.host())
        .env("NETCONFPATH", netconf)
        .env("CNI_PATH", plugin_dir())
        .stdin(Stdio::null());
    command
}

/// The daemon and its image, or `None` when the test cannot run here.
fn daemon(test: &str) -> Option<PrivateDocker> {
    if !require_root(test) {
        return None;
    }
    let docker = PrivateDocker::start(test)?;
    docker.import_busybox(IMAGE);
    Some(docker)
}

#[test]
fn docker_run_sh_attaches_every_network_and_leaves_nothing() {
    let test = "docker_run_sh_attaches_every_network_and_leaves_nothing";
    let Some(docker) = daemon(test) else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 1, &mut cleanup);
    let netconf = netconf_dir(
        &mut cleanup,
        &[
            ("10-crio.conflist", conflist(&net)),
            ("99-loopback.conf", loopback()),
        ],
    );
    let trace = std::env::temp_dir().join(unique_name("cni-docker-trace"));
    cleanup.remove_path(&trace);
    let script = format!(
        "ip -o addr show eth0; ip -o addr show lo; ping -c1 -W2 {}",
        net.gateway()
    );
    let out = docker_run_sh(&docker, &netconf)
        .env("CNI_TRACE", "1")
        .env("CNI_TRACE_DIR", &trace)
        .args([IMAGE, "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("inet {}/16", net.address(2))),
        "{stdout}"
    );
    assert!(stdout.contains("inet 127.0.0.1/8"), "{stdout}");
    assert!(stdout.contains("1 packets received"), "{stdout}");
    // The ADD results went to stderr.
    assert!(stderr.contains("\"sandbox\": \"/proc/"), "{stderr}");

    // The trace recorded both commands of both plugins.
    let bridge_trace = std::fs::read_to_string(trace.join("bridge")).unwrap_or_default();
    assert!(
        bridge_trace.contains("ADD") && bridge_trace.contains("DEL"),
        "{bridge_trace}"
    );
    assert!(trace.join("loopback").is_file());

    assert!(net.leases().is_empty(), "{:?}", net.leases());
    assert_eq!(net.ports().len(), 0);
    assert_eq!(docker.docker_ok(&["ps", "-aq"]), "", "containers left");
    let rules = cmd::run_ok("iptables", &["-t", "nat", "-S"]);
    assert!(!rules.contains(&net.name), "{rules}");
}

#[test]
fn docker_run_sh_cleans_up_when_a_network_fails_and_on_ctrl_c() {
    let test = "docker_run_sh_cleans_up_when_a_network_fails_and_on_ctrl_c";
    let Some(docker) = daemon(test) else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 2, &mut cleanup);

    // The second network names a plugin that does not exist: the first is
    // detached again and the holder removed.
    let mut broken = loopback();
    broken["type"] = json!("no-such-plugin");
    let netconf = netconf_dir(
        &mut cleanup,
        &[
            ("10-crio.conf", net.bridge_config("0.3.1")),
            ("20-broken.conf", broken),
        ],
    );
    let out = docker_run_sh(&docker, &netconf)
        .args([IMAGE, "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-plugin not found"), "{stderr}");
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    assert_eq!(net.ports().len(), 0);
    assert_eq!(docker.docker_ok(&["ps", "-aq"]), "");

    // Ctrl-C reaches the script's whole process group, as from a terminal.
    let netconf = netconf_dir(
        &mut cleanup,
        &[("10-crio.conf", net.bridge_config("0.3.1"))],
    );
    let mut script = Interruptible(
        docker_run_sh(&docker, &netconf)
            .args([IMAGE, "sh", "-c", "trap 'exit 3' INT; sleep 60 & wait"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    integration::wait_until("the command's container", Duration::from_secs(60), || {
        net.leases().len() == 2 && docker.docker_ok(&["ps", "-q"]).lines().count() == 2
    });
    assert_eq!(script.interrupt(), Some(130));
    assert!(net.leases().is_empty(), "{:?}", net.leases());
    assert_eq!(net.ports().len(), 0);
    assert_eq!(docker.docker_ok(&["ps", "-aq"]), "");
}

/// The script running in a process group of its own; interrupted like
/// Ctrl-C in a terminal does it, also when the test fails first (so that
/// it still cleans up).
struct Interruptible(Child);

impl Interruptible {
    /// SIGINT to the whole group; the script's exit code.
    fn interrupt(&mut self) -> Option<i32> {
        let group = nix::unistd::Pid::from_raw(-i32::try_from(self.0.id()).ok()?);
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGINT);
        self.0.wait().ok()?.code()
    }
}

impl Drop for Interruptible {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.interrupt();
        }
    }
}

/// A `docker run -d --net=none` container: its ID and network namespace path.
fn holder(docker: &PrivateDocker) -> (String, String) {
    let id = docker.docker_ok(&["run", "-d", "--net=none", IMAGE, "sleep", "600"]);
    let netns = format!("/proc/{}/ns/net", docker.pid(&id));
    (id, netns)
}

/// `command` of our `plugin` for container `id` in `netns`.
fn call(
    plugin: &str,
    command: &str,
    id: &str,
    netns: &str,
    ifname: &str,
    conf: &Value,
) -> PluginCall {
    PluginCall::new(plugin)
        .command(command)
        .container_id(id)
        .netns(netns)
        .ifname(ifname)
        .config(conf)
}

#[test]
fn a_container_attached_by_hand_is_reachable_and_del_after_it_exited_frees_everything() {
    let test = "a_container_attached_by_hand_is_reachable_and_del_after_it_exited_frees_everything";
    let Some(docker) = daemon(test) else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let net = Net::new(test, 3, &mut cleanup);
    let conf = net.bridge_config("0.3.1");
    let lo = loopback();

    let (first, first_ns) = holder(&docker);
    let result = call("bridge", "ADD", &first, &first_ns, "eth0", &conf)
        .run()
        .expect_success()
        .json();
    call("loopback", "ADD", &first, &first_ns, "lo", &lo)
        .run()
        .expect_success();
    assert_eq!(
        result["ips"][0]["address"],
        format!("{}/16", net.address(2))
    );
    assert_eq!(result["interfaces"][2]["sandbox"], first_ns);
    let inside = cmd::run_ok(
        "nsenter",
        &[&format!("--net={first_ns}"), "ip", "-o", "addr"],
    );
    assert!(
        inside.contains(&format!("inet {}/16", net.address(2))),
        "{inside}"
    );
    assert!(inside.contains("inet 127.0.0.1/8"), "{inside}");
    let ping = cmd::run("ping", &["-c1", "-W2", &net.address(2)]);
    assert!(ping.status.success(), "the host cannot reach the container");
    assert!(net.has_rules(&first));

    // The next container gets the next address.
    let (second, second_ns) = holder(&docker);
    let result = call("bridge", "ADD", &second, &second_ns, "eth0", &conf)
        .run()
        .expect_success()
        .json();
    assert_eq!(
        result["ips"][0]["address"],
        format!("{}/16", net.address(3))
    );

    // The first exits: its /proc path is gone, DEL still frees everything
    // of it, and only of it.
    docker.docker_ok(&["rm", "-f", &first]);
    assert!(!Path::new(&first_ns).exists());
    call("loopback", "DEL", &first, &first_ns, "lo", &lo)
        .run()
        .expect_success();
    call("bridge", "DEL", &first, &first_ns, "eth0", &conf)
        .run()
        .expect_success();
    assert!(!net.has_rules(&first));
    assert_eq!(
        net.leases().len(),
        2,
        "only the second's: {:?}",
        net.leases()
    );
    assert!(net.has_rules(&second));
    assert_eq!(net.ports().len(), 1);

    docker.docker_ok(&["rm", "-f", &second]);
    call("bridge", "DEL", &second, &second_ns, "eth0", &conf)
        .run()
        .expect_success();
    assert!(net.leases().is_empty());
    assert!(!net.has_rules(&second));
}
