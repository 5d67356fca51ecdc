//! Root tests of the test kit itself: the guards must really remove what
//! they promise, and the kernel readers must see what `ip` set up.

use std::time::Duration;

use integration::reference::{Impl, REFERENCE_DIR};
use integration::{
    Cleanup, IpFamily, TestNetns, TestNetwork, cmd, kernel, plugin_dir, require_root,
    unique_ifname, wait_until,
};

#[test]
fn netns_is_created_fresh_and_deleted_on_drop() {
    if !require_root("netns_is_created_fresh_and_deleted_on_drop") {
        return;
    }
    let ns = TestNetns::new("kit-ns");
    let name = ns.name().to_string();
    assert!(ns.path().exists());
    assert_eq!(ns.path_str(), format!("/run/netns/{name}"));
    let links = kernel::links(Some(&name));
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(!kernel::link_is_up(Some(&name), "lo"));
    assert_eq!(ns.exec_ok(&["echo", "hi"]), "hi\n");
    drop(ns);
    assert!(!std::path::Path::new(&format!("/run/netns/{name}")).exists());
}

#[test]
fn netns_is_deleted_when_a_test_panics() {
    if !require_root("netns_is_deleted_when_a_test_panics") {
        return;
    }
    let name = std::thread::spawn(|| {
        let ns = TestNetns::new("kit-panic");
        let name = ns.name().to_string();
        std::panic::panic_any(name);
    })
    .join()
    .expect_err("thread must panic");
    let name = name.downcast::<String>().unwrap();
    assert!(!std::path::Path::new(&format!("/run/netns/{name}")).exists());
}

#[test]
fn kernel_readers_see_addresses_routes_and_sysctls() {
    if !require_root("kernel_readers_see_addresses_routes_and_sysctls") {
        return;
    }
    let ns = TestNetns::new("kit-read");
    let n = Some(ns.name());
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d0p"]);
    ns.ip(&["link", "set", "d0p", "up"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns.ip(&["addr", "add", "198.18.0.2/24", "dev", "d0"]);
    ns.ip(&["addr", "add", "2001:db8::2/64", "dev", "d0", "nodad"]);
    ns.ip(&["route", "add", "198.19.0.0/16", "via", "198.18.0.1"]);

    assert!(kernel::link_exists(n, "d0"));
    assert!(kernel::link_is_up(n, "d0"));
    assert_eq!(
        kernel::link(n, "d0").unwrap()["linkinfo"]["info_kind"],
        "veth"
    );
    assert!(kernel::has_addr(n, "d0", "198.18.0.2/24"));
    assert!(kernel::has_addr(n, "d0", "2001:db8::2/64"));
    assert!(!kernel::has_addr(n, "d0", "198.18.0.3/24"));
    let v4 = kernel::routes(n, IpFamily::V4);
    assert!(
        v4.iter()
            .any(|r| r["dst"] == "198.19.0.0/16" && r["gateway"] == "198.18.0.1"),
        "{v4:?}"
    );
    let v6 = kernel::routes(n, IpFamily::V6);
    assert!(v6.iter().any(|r| r["dst"] == "2001:db8::/64"), "{v6:?}");

    // Each namespace has its own value: set ours to the opposite of another's.
    let other = TestNetns::new("kit-read2");
    let theirs = kernel::sysctl(Some(other.name()), "net.ipv4.ip_forward");
    let ours = if theirs == "1" { "0" } else { "1" };
    ns.exec_ok(&[
        "sh",
        "-c",
        &format!("echo {ours} > /proc/sys/net/ipv4/ip_forward"),
    ]);
    assert_eq!(kernel::sysctl(n, "net.ipv4.ip_forward"), ours);
    assert_eq!(kernel::sysctl(n, "net/ipv4/conf/d0/forwarding"), ours);
    assert_eq!(
        kernel::sysctl(Some(other.name()), "net.ipv4.ip_forward"),
        theirs
    );
}

#[test]
fn cleanup_removes_links_chains_and_paths_in_reverse_order() {
    if !require_root("cleanup_removes_links_chains_and_paths_in_reverse_order") {
        return;
    }
    let ns = TestNetns::new("kit-clean");
    let host_if = unique_ifname("kit");
    let chain = format!("CNI-{}", unique_ifname("k").to_uppercase());
    let dir = std::env::temp_dir().join(integration::unique_name("kit-dir"));
    let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    {
        let mut cleanup = Cleanup::new();
        let peer_if = unique_ifname("kitp");
        cmd::ip_ok(
            None,
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
            ],
        );
        cleanup.link_del(None, &host_if);
        ns.ip(&["link", "add", "d1", "type", "veth", "peer", "name", "d1p"]);
        cleanup.link_del(Some(ns.name()), "d1");
        // Already gone by the time the guard runs: must be quiet and fine.
        cleanup.link_del(Some(ns.name()), "never-existed");

        cmd::run_ok("iptables", &["-w", "-t", "nat", "-N", &chain]);
        cmd::run_ok(
            "iptables",
            &[
                "-w",
                "-t",
                "nat",
                "-A",
                &chain,
                "-d",
                "198.18.0.0/15",
                "-j",
                "ACCEPT",
            ],
        );
        cmd::run_ok(
            "iptables",
            &[
                "-w",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                "198.18.7.7/32",
                "-m",
                "comment",
                "--comment",
                "kit test rule",
                "-j",
                &chain,
            ],
        );
        cleanup.iptables_chain(false, "nat", &chain);

        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/file"), b"x").unwrap();
        cleanup.remove_path(&dir);

        for i in 0..3 {
            let order = order.clone();
            cleanup.push(format!("record {i}"), move || {
                order.borrow_mut().push(i);
                Ok(())
            });
        }
        assert_eq!(cleanup.len(), 8);
    }
    assert_eq!(*order.borrow(), vec![2, 1, 0]);
    assert!(!kernel::link_exists(None, &host_if));
    assert!(!kernel::link_exists(Some(ns.name()), "d1p"));
    assert!(!kernel::link_exists(Some(ns.name()), "d1"));
    let rules = kernel::nat_rules(IpFamily::V4, &chain);
    assert_eq!(rules, Vec::<String>::new());
    assert!(!dir.exists());
}

#[test]
fn cleanup_reports_failures_and_keeps_going() {
    let ran = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut cleanup = Cleanup::new();
    let flag = ran.clone();
    cleanup.push("first", move || {
        flag.set(true);
        Ok(())
    });
    cleanup.push("second", || Err("boom".to_string()));
    assert_eq!(cleanup.run_now(), vec!["second: boom".to_string()]);
    assert!(ran.get());
    assert!(cleanup.is_empty());
}

#[test]
fn network_store_ports_ping_and_implementations() {
    if !require_root("network_store_ports_ping_and_implementations") {
        return;
    }
    let ns = TestNetns::new("kit-net");
    let (bridge, data_dir) = {
        let mut cleanup = Cleanup::new();
        let net = TestNetwork::new("kitbr", "kit-net", 1, &mut cleanup);
        assert_eq!(net.k, 1);
        assert_eq!(net.lease_dir(), net.data_dir.join(&net.name));
        assert!(net.store().is_empty(), "no lease dir yet");
        std::fs::create_dir_all(net.lease_dir()).unwrap();
        for (file, content) in [
            ("lock", ""),
            ("last_reserved_ip.0", "198.18.0.2"),
            ("198.18.0.2", "ctr\r\neth0"),
        ] {
            std::fs::write(net.lease_dir().join(file), content).unwrap();
        }
        assert_eq!(net.store().len(), 3);
        assert_eq!(
            net.leases().into_iter().collect::<Vec<_>>(),
            [("198.18.0.2".to_string(), "ctr\r\neth0".to_string())]
        );

        let port = unique_ifname("kitp");
        cmd::ip_ok(None, &["link", "add", &net.bridge, "type", "bridge"]);
        cmd::ip_ok(
            None,
            &[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "p0",
                "netns",
                ns.name(),
            ],
        );
        cleanup.link_del(None, &port);
        cmd::ip_ok(None, &["link", "set", &port, "master", &net.bridge]);
        assert_eq!(net.ports(), [port]);
        (net.bridge.clone(), net.data_dir.clone())
    };
    assert!(!kernel::link_exists(None, &bridge), "bridge left");
    assert!(!data_dir.exists(), "dataDir left");

    ns.ip(&["link", "set", "lo", "up"]);
    assert!(ns.ping("127.0.0.1", 1));
    assert!(!ns.ping("198.18.0.9", 1), "no route, no reply");
    wait_until("lo to be up", Duration::from_secs(1), || {
        kernel::link_is_up(Some(ns.name()), "lo")
    });

    let ours = Impl::Ours.call("loopback");
    assert_eq!(
        ours.environment()["CNI_PATH"],
        plugin_dir().into_os_string()
    );
    if std::path::Path::new(REFERENCE_DIR)
        .join("host-local")
        .is_file()
    {
        let reference = Impl::Reference.call("loopback");
        assert_eq!(reference.environment()["CNI_PATH"], REFERENCE_DIR);
    }
}

#[test]
fn a_plugin_that_hangs_is_killed_and_shows_where_it_waited() {
    let dir = std::env::temp_dir().join(integration::unique_name("kit-hang"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("hangs");
    std::fs::write(
        &script,
        "#!/bin/sh\necho about to wait >&2\nexec sleep 30\n",
    )
    .unwrap();
    cmd::run_ok("chmod", &["755", &script.display().to_string()]);
    let started = std::time::Instant::now();
    let err = integration::PluginCall::with_binary(&script)
        .timeout(Duration::from_secs(1))
        .try_run()
        .unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(started.elapsed() < Duration::from_secs(20));
    let text = err.to_string();
    assert!(text.contains("ran longer than 1s; killed"), "{text}");
    assert!(text.contains(": sleep wchan="), "{text}");
    assert!(text.contains("about to wait"), "{text}");
}
