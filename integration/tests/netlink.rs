//! Root tests of `cni-netlink` against the kernel: answers, errors and dumps
//! longer than one datagram. Everything happens inside a fresh namespace,
//! entered by a worker thread (the sockets are opened there), and goes away
//! with it.

#![cfg(test)]

use cni_netlink::addr::{self, AddressRequest};
use cni_netlink::link::{self, Link, LinkRequest};
use cni_netlink::route::{self, RouteEntry, RouteRequest};
use cni_netlink::{Error, Socket};
use cni_types::netns::Netns;
use integration::{TestNetns, require_root};
use ipnetwork::IpNetwork;
use std::os::fd::AsRawFd;

/// Runs `work` on a thread inside a fresh namespace.
fn in_fresh_netns<T: Send>(prefix: &str, work: impl FnOnce(&TestNetns) -> T + Send) -> T {
    let ns = TestNetns::new(prefix);
    match Netns::open(ns.path()).and_then(|netns| netns.run(|| work(&ns))) {
        Ok(value) => value,
        Err(err) => panic!("in {}: {err}", ns.name()),
    }
}

/// The errno of a request that must fail.
fn errno(outcome: Result<impl std::fmt::Debug, Error>) -> Option<i32> {
    match outcome {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(err) => err.errno(),
    }
}

#[test]
fn links_addresses_and_routes() {
    if !require_root("links_addresses_and_routes") {
        return;
    }
    in_fresh_netns("nl-links", |ns| {
        let socket = Socket::open().unwrap();
        let strict = Socket::open_strict().unwrap();

        check_loopback_and_missing_link(&socket);
        let br = create_and_check_bridge(&socket);
        check_veth_enslaved_to_bridge(&socket, ns, &br);
        let net = check_bridge_address_added(&socket, &strict, ns, &br);
        check_gateway_route_added(&socket, ns, &br);

        let delete = AddressRequest::new(br.index, net)
            .local(net.ip())
            .address(net.ip());
        addr::delete(&socket, &delete).unwrap();
        assert_eq!(errno(addr::delete(&socket, &delete)), Some(99));
        link::delete(&socket, &LinkRequest::index(br.index)).unwrap();
        assert_eq!(
            errno(link::delete(&socket, &LinkRequest::index(br.index))),
            Some(19)
        );
    });
}

/// Checks that `lo` is found down at index 1 and that a missing link is ENODEV.
fn check_loopback_and_missing_link(socket: &Socket) {
    let lo = link::get(socket, &LinkRequest::new().name("lo"))
        .unwrap()
        .unwrap();
    assert_eq!((lo.index, lo.name.as_str(), lo.admin_up), (1, "lo", false));
    assert_eq!(
        errno(link::get(socket, &LinkRequest::new().name("nosuch0"))),
        Some(19)
    );
}

/// Creates and checks the bridge `nlbr0` (up, MTU 1400; EEXIST twice), returned as read back.
fn create_and_check_bridge(socket: &Socket) -> Link {
    let bridge = LinkRequest::new()
        .up()
        .name("nlbr0")
        .mtu(1400)
        .bridge(false);
    link::create(socket, &bridge).unwrap();
    assert_eq!(errno(link::create(socket, &bridge)), Some(17));
    let br = link::get(socket, &LinkRequest::new().name("nlbr0"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (br.kind.as_str(), br.mtu, br.admin_up),
        ("bridge", 1400, true)
    );
    assert_eq!(br.mac.len(), 6);
    br
}

/// Creates a veth pair and checks it, enslaved to `br` as a hairpin, isolated port.
fn check_veth_enslaved_to_bridge(socket: &Socket, ns: &TestNetns, br: &Link) {
    // A veth pair whose peer is created in this same namespace by fd.
    let here = std::fs::File::open(ns.path()).unwrap();
    let peer = LinkRequest::new()
        .name("nlpeer0")
        .netns_fd(here.as_raw_fd())
        .mac(&[2, 0, 0, 0, 0, 7]);
    link::create(socket, &LinkRequest::new().name("nlveth0").veth(&peer)).unwrap();
    let veth = link::get(socket, &LinkRequest::new().name("nlveth0"))
        .unwrap()
        .unwrap();
    let peer = link::get(socket, &LinkRequest::new().name("nlpeer0"))
        .unwrap()
        .unwrap();
    assert_eq!(veth.kind, "veth");
    assert_eq!(veth.peer_index, Some(peer.index));
    assert_eq!(peer.mac, [2, 0, 0, 0, 0, 7]);

    link::set(
        socket,
        &LinkRequest::index(veth.index).master(br.index).up(),
    )
    .unwrap();
    link::set(
        socket,
        &LinkRequest::index(veth.index).bridge_port(true, true),
    )
    .unwrap();
    let veth = link::get(socket, &LinkRequest::index(veth.index))
        .unwrap()
        .unwrap();
    assert_eq!((veth.master, veth.admin_up), (Some(br.index), true));
    let details = ns.ip(&["-d", "link", "show", "nlveth0"]);
    assert!(details.contains("hairpin on"), "{details}");
    assert!(details.contains("isolated on"), "{details}");
}

/// Adds 10.77.0.1/24 to `br`, checks it in both sockets' dumps and `ip addr`, returns it.
fn check_bridge_address_added(
    socket: &Socket,
    strict: &Socket,
    ns: &TestNetns,
    br: &Link,
) -> IpNetwork {
    let net: IpNetwork = "10.77.0.1/24".parse().unwrap();
    let add = AddressRequest::new(br.index, net)
        .address(net.ip())
        .local(net.ip())
        .broadcast("10.77.0.255".parse().unwrap());
    addr::add(socket, &add).unwrap();
    assert_eq!(errno(addr::add(socket, &add)), Some(17));
    // The bridge is up, so it has an IPv6 link-local address too.
    let ipv4 = |socket: &Socket| -> Vec<IpNetwork> {
        let mut found = addr::dump(socket, br.index).unwrap();
        found.retain(IpNetwork::is_ipv4);
        found
    };
    assert_eq!(ipv4(strict), [net]);
    assert_eq!(ipv4(socket), [net]);
    assert!(
        ns.ip(&["addr", "show", "nlbr0"])
            .contains("brd 10.77.0.255")
    );
    net
}

/// Adds a boot-protocol route to 10.88.0.0/16 via 10.77.0.9 on `br` and checks it.
fn check_gateway_route_added(socket: &Socket, ns: &TestNetns, br: &Link) {
    let dst: IpNetwork = "10.88.0.0/16".parse().unwrap();
    let gw = "10.77.0.9".parse().unwrap();
    let request = RouteRequest::new(true)
        .protocol_boot()
        .destination(dst)
        .output_interface(br.index)
        .gateway(gw);
    route::add(socket, &request).unwrap();
    assert_eq!(errno(route::add(socket, &request)), Some(17));
    let routes = route::dump(socket, true).unwrap();
    assert!(
        routes.contains(&RouteEntry {
            dst,
            gw: Some(gw),
            oif: Some(br.index)
        }),
        "{routes:?}"
    );
    assert!(
        ns.ip(&["-d", "route", "show", "10.88.0.0/16"])
            .contains("proto boot")
    );
}

#[test]
fn dumps_longer_than_one_datagram() {
    if !require_root("dumps_longer_than_one_datagram") {
        return;
    }
    in_fresh_netns("nl-dumps", |_| {
        let socket = Socket::open().unwrap();
        let strict = Socket::open_strict().unwrap();
        link::create(
            &socket,
            &LinkRequest::new().up().name("nlbr1").bridge(false),
        )
        .unwrap();
        let br = link::get(&socket, &LinkRequest::new().name("nlbr1"))
            .unwrap()
            .unwrap();
        // About 80 bytes per address message: 1200 take three 32 KiB datagrams.
        let added: Vec<IpNetwork> = (0..1200u32)
            .map(|i| IpNetwork::new([10, 99, (i / 250) as u8, (i % 250 + 1) as u8].into(), 32))
            .collect::<Result<_, _>>()
            .unwrap();
        for net in &added {
            let request = AddressRequest::new(br.index, *net)
                .address(net.ip())
                .local(net.ip());
            addr::add(&socket, &request).unwrap();
        }
        let mut dumped = addr::dump(&strict, br.index).unwrap();
        dumped.retain(IpNetwork::is_ipv4);
        dumped.sort();
        let mut expected = added.clone();
        expected.sort();
        assert_eq!(dumped, expected);
        assert_eq!(
            addr::dump(&socket, br.index)
                .unwrap()
                .into_iter()
                .filter(IpNetwork::is_ipv4)
                .count(),
            1200
        );
        // Each address adds a route in the local table.
        assert!(route::dump(&socket, true).unwrap().len() >= 1200);
        // The socket is in step after all that.
        assert!(
            link::get(&socket, &LinkRequest::index(br.index))
                .unwrap()
                .is_some()
        );
    });
}
