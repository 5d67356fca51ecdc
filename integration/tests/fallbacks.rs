//! What `bridge` does where the kernel (older than the ones the kernel
//! matrix boots) or a policy refuses something it uses, proven by making the
//! syscall fail with `strace --inject`: it must degrade to what works, as
//! documented, and never half-configure.
//!
//! - `fsopen`/`fsmount` (Linux 5.2; refused by some seccomp policies): the
//!   pod's `/proc/sys/net` directories are then opened through the host's
//!   `/proc` from inside the pod's namespace, and the pod's sysctls are set
//!   all the same.
//!
//! The plugin runs in a namespace of the test's own making standing for the
//! host (see `PrivateHost`), so the tests leave the machine alone.

#![cfg(test)]

use integration::{
    Cleanup, PluginCall, PrivateHost, TestNetns, TestNetwork, kernel, plugin_dir, require_root,
    unique_name,
};
use serde_json::{Value, json};

/// A dual-stack network on `10.92.<k>.0/24` and `fd92:0:0:<k>::/64` with
/// the gateway on the bridge.
fn config(net: &TestNetwork) -> Value {
    let subnets = [
        format!("10.92.{}.0/24", net.k),
        format!("fd92:0:0:{}::/64", net.k),
    ];
    net.bridge_config("1.0.0", &subnets, &[json!({"isGateway": true})])
}

#[test]
fn without_fsopen_the_pods_sysctls_are_set_through_proc() {
    if !require_root("without_fsopen_the_pods_sysctls_are_set_through_proc") {
        return;
    }
    for (k, errno) in [(1, "ENOSYS"), (2, "EPERM")] {
        let mut cleanup = Cleanup::new();
        let host = PrivateHost::new(&mut cleanup);
        let net = TestNetwork::new("fbr", "fallback", k, &mut cleanup);
        let pod = TestNetns::new("fb");
        let id = unique_name("fb");
        let log = host.dir.join("strace.log");
        let strace = format!(
            "strace -f -qq -o {} -e trace=fsopen -e inject=fsopen:error={errno}",
            log.display()
        );
        let call = |command: &str| {
            PluginCall::with_binary(host.wrapper(&format!("no-fsopen-{errno}"), &strace))
                .cni_path(plugin_dir())
                .command(command)
                .container_id(&id)
                .netns(pod.path())
                .ifname("eth0")
                .config(&config(&net))
                .run()
        };
        let result = call("ADD").expect_success().json();
        let traced = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            traced.contains("fsopen(\"proc\"") && traced.contains("(INJECTED)"),
            "{errno}: the plugin did not meet the refusal: {traced}"
        );
        let ns = Some(pod.name());
        for key in [
            "net/ipv6/conf/eth0/accept_dad",
            "net/ipv6/conf/eth0/disable_ipv6",
        ] {
            assert_eq!(kernel::sysctl(ns, key), "0", "{errno}: {key}");
        }
        let addresses = kernel::addrs(ns, "eth0");
        let v6 = addresses
            .iter()
            .find(|a| a["family"] == "inet6" && a["scope"] == "global");
        let v6 = v6.unwrap_or_else(|| panic!("{errno}: no IPv6 address: {addresses:?}"));
        assert!(v6.get("tentative").is_none(), "{errno}: DAD ran: {v6}");
        assert_eq!(result["ips"].as_array().map(Vec::len), Some(2));
        call("DEL").expect_success();
        assert!(net.leases().is_empty(), "{errno}: {:?}", net.leases());
        let ports: Vec<Value> = kernel::links(Some(host.ns.name()))
            .into_iter()
            .filter(|l| l["master"].as_str() == Some(net.bridge.as_str()))
            .collect();
        assert!(ports.is_empty(), "{errno}: port left: {ports:?}");
    }
}
