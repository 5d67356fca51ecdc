//! How long after ADD returns the pod's IPv6 address is usable.
//!
//! From the moment the ADD process is reaped, a thread inside the pod's
//! namespace polls every 0.25 ms (up to 5 s):
//!
//! 1. `/proc/thread-self/net/if_inet6` until `eth0` has a global address
//!    that is neither tentative nor dadfailed;
//! 2. then sends an ICMPv6 echo request to the bridge's gateway address every
//!    millisecond from a raw socket in the namespace, until a reply arrives.
//!
//! The address check is what `ip -6 addr` shows; the echo is `ping6` without
//! starting a process per attempt (which would cost milliseconds each).

use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use cni_types::netns::Netns;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn6, recvfrom, sendto,
    socket,
};

use crate::ctx::Ctx;
use crate::error::BenchResult;
use crate::host;
use crate::impls::Impl;
use crate::pod::{self, Pod};

/// Give up after this long.
pub const LIMIT: Duration = Duration::from_secs(5);

/// Poll period.
const TICK: Duration = Duration::from_micros(250);

/// Echo request period once the address is usable.
const ECHO_EVERY: Duration = Duration::from_millis(1);

/// `IFA_F_DADFAILED`.
const DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE`.
const TENTATIVE: u32 = 0x40;

/// When the address and the path to the gateway became usable, counted
/// from the moment ADD returned.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// The ADD itself.
    pub add: Duration,
    /// The global address on `eth0` is no longer tentative.
    pub address: Duration,
    /// An echo reply from the gateway arrived.
    pub usable: Duration,
}

/// The state of the bridge when the measured pod is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The bridge is deleted before every ADD, so the ADD creates it and
    /// adds the gateway address (the first pod on a node).
    NewBridge,
    /// The bridge exists but has no other pod (as in the cold runs).
    Alone,
    /// One more pod stays attached to the bridge throughout.
    BridgeBusy,
}

/// Readiness per implementation; `None` for a pod not usable within [`LIMIT`].
pub type ReadinessSamples = Vec<Vec<Option<Readiness>>>;

/// `opts.ipv6_runs` pods per implementation, interleaved: ADD, wait until
/// usable, DEL.
///
/// # Errors
///
/// When a plugin or the polling fails, or Ctrl-C.
pub fn measure(ctx: &Ctx<'_>, scenario: Scenario) -> BenchResult<ReadinessSamples> {
    let mut anchors = Vec::new();
    match scenario {
        Scenario::NewBridge => ctx.phase("IPv6 readiness, new bridge"),
        Scenario::Alone => ctx.phase("IPv6 readiness, empty bridge"),
        Scenario::BridgeBusy => {
            ctx.phase("IPv6 readiness, bridge has a pod");
            for imp in ctx.impls {
                let anchor = Pod::create(imp)?;
                pod::add(imp, &anchor)?;
                anchors.push((imp, anchor));
            }
        }
    }
    let mut samples = ctx.per_impl();
    for i in 0..ctx.opts.ipv6_runs {
        for (idx, imp) in ctx.rotation(i) {
            ctx.check()?;
            if scenario == Scenario::NewBridge {
                host::link_del(imp.bridge())?;
            }
            samples[idx].push(one(imp)?);
        }
        ctx.step();
    }
    for (imp, anchor) in anchors {
        pod::del(imp, &anchor)?;
        anchor.remove()?;
    }
    Ok(samples)
}

fn one(imp: &Impl) -> BenchResult<Option<Readiness>> {
    let pod = Pod::create(imp)?;
    let added = pod::add(imp, &pod)?;
    let ns = Netns::open(pod.path())?;
    let gateway = imp.gateway6;
    let ready = ns.run(move || poll(gateway, added.ended))??;
    let ready = ready.map(|r| Readiness {
        add: added.elapsed,
        ..r
    });
    pod::del(imp, &pod)?;
    pod.remove()?;
    Ok(ready)
}

/// Runs inside the pod's namespace; see the module docs.
fn poll(gateway: Ipv6Addr, since: Instant) -> BenchResult<Option<Readiness>> {
    let sock = socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::IcmpV6,
    )?;
    let fd = sock.as_raw_fd();
    let dest = SockaddrIn6::from(SocketAddrV6::new(gateway, 0, 0, 0));
    let id = (std::process::id() & 0xffff) as u16;
    let mut seq: u16 = 0;
    let mut address_at = None;
    let mut last_echo: Option<Instant> = None;
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now.duration_since(since) > LIMIT {
            return Ok(None);
        }
        if address_at.is_none() && address_ready()? {
            address_at = Some(now.duration_since(since));
        }
        if let Some(address) = address_at {
            if last_echo.is_none_or(|t| now.duration_since(t) >= ECHO_EVERY) {
                seq = seq.wrapping_add(1);
                // Fails (EADDRNOTAVAIL, ...) while there is no usable route
                // or source: just not ready yet.
                let _ = sendto(fd, &echo_request(id, seq), &dest, MsgFlags::empty());
                last_echo = Some(now);
            }
            loop {
                match recvfrom::<SockaddrIn6>(fd, &mut buf) {
                    Ok((n, from)) => {
                        let from_gateway = from.is_some_and(|a| a.ip() == gateway);
                        if from_gateway && is_echo_reply(buf.get(..n).unwrap_or_default(), id) {
                            return Ok(Some(Readiness {
                                add: Duration::ZERO,
                                address,
                                usable: since.elapsed(),
                            }));
                        }
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        std::thread::sleep(TICK);
    }
}

/// Whether `eth0` has a global IPv6 address that is neither tentative nor
/// dadfailed, per `/proc/thread-self/net/if_inet6` (this thread's namespace).
fn address_ready() -> BenchResult<bool> {
    let table = std::fs::read_to_string("/proc/thread-self/net/if_inet6")?;
    Ok(usable_global_address(&table, "eth0"))
}

/// Parses `if_inet6` lines: `<addr hex> <ifindex> <plen> <scope> <flags> <name>`.
fn usable_global_address(table: &str, ifname: &str) -> bool {
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, _, _, scope, flags, name] = fields.as_slice() else {
            return false;
        };
        let flags = u32::from_str_radix(flags, 16).unwrap_or(TENTATIVE);
        *name == ifname && *scope == "00" && flags & (TENTATIVE | DADFAILED) == 0
    })
}

/// ICMPv6 echo request; the kernel fills in the checksum on raw ICMPv6 sockets.
fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[0] = 128;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(b"cnirsb\0\0");
    packet
}

fn is_echo_reply(packet: &[u8], id: u16) -> bool {
    packet.len() >= 8 && packet[0] == 129 && packet[4..6] == id.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_if_inet6_flags() {
        let tentative = "fd120000000000000000000000000002 02 40 00 c0 eth0\n\
                         fe800000000000000000000000000001 02 40 20 80 eth0\n";
        assert!(!usable_global_address(tentative, "eth0"));
        let settled = "fd120000000000000000000000000002 02 40 00 80 eth0\n";
        assert!(usable_global_address(settled, "eth0"));
        assert!(!usable_global_address(settled, "eth1"));
        let failed = "fd120000000000000000000000000002 02 40 00 88 eth0\n";
        assert!(!usable_global_address(failed, "eth0"));
        let link_only = "fe800000000000000000000000000001 02 40 20 80 eth0\n";
        assert!(!usable_global_address(link_only, "eth0"));
    }

    #[test]
    fn echo_round_trip_shape() {
        let request = echo_request(0x1234, 7);
        assert_eq!(request[0], 128);
        let mut reply = request;
        reply[0] = 129;
        assert!(is_echo_reply(&reply, 0x1234));
        assert!(!is_echo_reply(&reply, 0x1235));
        assert!(!is_echo_reply(&request, 0x1234));
    }
}
