//! Reading kernel state for assertions, through iproute2's JSON output.
//!
//! `ip` is an observer independent of the plugins' own netlink code. Every
//! function takes `netns`: a namespace *name* (`Some(ns.name())`) or `None`
//! for the test's own namespace.

use serde_json::Value;

use crate::cmd;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4 (`ip -4`).
    V4,
    /// IPv6 (`ip -6`).
    V6,
}

impl IpFamily {
    /// [`IpFamily::V6`] when `ipv6`, else [`IpFamily::V4`] (for code that
    /// says `ipv6: bool`, as [`Cleanup::iptables_chain`](crate::Cleanup::iptables_chain) does).
    pub fn from_ipv6(ipv6: bool) -> IpFamily {
        if ipv6 { IpFamily::V6 } else { IpFamily::V4 }
    }

    /// The iptables program of the family: `iptables` or `ip6tables`.
    pub fn iptables(self) -> &'static str {
        match self {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            IpFamily::V4 => "-4",
            IpFamily::V6 => "-6",
        }
    }
}

fn ip_json(netns: Option<&str>, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let out = cmd::ip_ok(netns, &all);
    if out.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(&out) {
        Ok(Value::Array(items)) => items,
        Ok(other) => panic!("`ip {}` printed a non-array: {other}", all.join(" ")),
        Err(e) => panic!("`ip {}` printed invalid JSON ({e}): {out}", all.join(" ")),
    }
}

/// All links with details (`ip -j -d link show`).
///
/// # Panics
///
/// When `ip` fails (for example the namespace does not exist).
pub fn links(netns: Option<&str>) -> Vec<Value> {
    ip_json(netns, &["-d", "link", "show"])
}

/// The link named `ifname` (with details), or `None` if there is none.
///
/// # Panics
///
/// When `ip` fails.
pub fn link(netns: Option<&str>, ifname: &str) -> Option<Value> {
    links(netns)
        .into_iter()
        .find(|l| l["ifname"].as_str() == Some(ifname))
}

/// Whether a link named `ifname` exists.
///
/// # Panics
///
/// When `ip` fails.
pub fn link_exists(netns: Option<&str>, ifname: &str) -> bool {
    link(netns, ifname).is_some()
}

/// The link's `flags` (`UP`, `LOOPBACK`, `LOWER_UP`, ...).
///
/// # Panics
///
/// When `ip` fails or the link does not exist.
pub fn link_flags(netns: Option<&str>, ifname: &str) -> Vec<String> {
    let link = link(netns, ifname).unwrap_or_else(|| panic!("no link {ifname} in netns {netns:?}"));
    link["flags"]
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the link is administratively up (has the `UP` flag). `lo` reports
/// operstate `UNKNOWN`, so the flag is what counts.
///
/// # Panics
///
/// When `ip` fails or the link does not exist.
pub fn link_is_up(netns: Option<&str>, ifname: &str) -> bool {
    link_flags(netns, ifname).iter().any(|f| f == "UP")
}

/// The `addr_info` entries of `ifname` (`ip -j addr show dev <ifname>`); each
/// has `family`, `local`, `prefixlen`, `scope`, ...
///
/// # Panics
///
/// When `ip` fails, for example because the link does not exist.
pub fn addrs(netns: Option<&str>, ifname: &str) -> Vec<Value> {
    ip_json(netns, &["addr", "show", "dev", ifname])
        .into_iter()
        .flat_map(|link| match link.get("addr_info") {
            Some(Value::Array(infos)) => infos.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// The addresses of `ifname` as `"<ip>/<prefixlen>"` strings, in kernel order.
///
/// # Panics
///
/// When `ip` fails.
pub fn addr_cidrs(netns: Option<&str>, ifname: &str) -> Vec<String> {
    addrs(netns, ifname)
        .iter()
        .filter_map(|a| {
            Some(format!(
                "{}/{}",
                a["local"].as_str()?,
                a["prefixlen"].as_u64()?
            ))
        })
        .collect()
}

/// Whether `ifname` carries `cidr` (`"127.0.0.1/8"`, `"::1/128"`), written as
/// `ip` prints it.
///
/// # Panics
///
/// When `ip` fails.
pub fn has_addr(netns: Option<&str>, ifname: &str, cidr: &str) -> bool {
    addr_cidrs(netns, ifname).iter().any(|a| a == cidr)
}

/// The main routing table for `family` (`ip -j -4|-6 route show`); each route
/// has `dst`, and `gateway`, `dev`, `protocol`, `scope`, ... where present.
///
/// # Panics
///
/// When `ip` fails.
pub fn routes(netns: Option<&str>, family: IpFamily) -> Vec<Value> {
    ip_json(netns, &[family.flag(), "route", "show"])
}

/// Reads a sysctl inside `netns` and returns its value trimmed.
///
/// `key` is dotted (`net.ipv4.ip_forward`) or a path under `/proc/sys`
/// (`net/ipv4/conf/eth0.100/forwarding`, for names containing dots). It is
/// read with `ip netns exec <netns> cat /proc/sys/...` so the value is the
/// namespace's own.
///
/// # Panics
///
/// When the key does not exist or the read fails.
pub fn sysctl(netns: Option<&str>, key: &str) -> String {
    let rel = if key.contains('/') {
        key.trim_start_matches('/').to_string()
    } else {
        key.replace('.', "/")
    };
    let path = format!("/proc/sys/{rel}");
    let value = match netns {
        Some(ns) => cmd::run_ok("ip", &["netns", "exec", ns, "cat", path.as_str()]),
        None => {
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
        }
    };
    value.trim().to_string()
}

/// The lines of the nat table (`iptables -w -t nat -S`, `ip6tables` for
/// [`IpFamily::V6`]) of the test's own namespace that contain `needle` (a
/// chain name, a rule comment), in listing order.
///
/// # Panics
///
/// When the program cannot be run or fails.
pub fn nat_rules(family: IpFamily, needle: &str) -> Vec<String> {
    cmd::run_ok(family.iptables(), &["-w", "-t", "nat", "-S"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The host veth name our `bridge` tries first for an attachment: `veth` +
/// the first 8 hex characters of sha512(`network/id/ifname`), computed with
/// coreutils, independently of the plugin's code.
///
/// # Panics
///
/// When `sha512sum` cannot be run.
pub fn derived_veth_name(network: &str, id: &str, ifname: &str) -> String {
    let key = format!("{network}/{id}/{ifname}");
    let digest = cmd::run_with_stdin("sha512sum", &[] as &[&str], key.as_bytes());
    format!("veth{}", &digest[..8])
}

/// `nft list table bridge nat`, or `""` when the table does not exist.
pub fn nft_bridge_nat() -> String {
    let out = cmd::run("nft", &["list", "table", "bridge", "nat"]);
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::new()
    }
}

/// Removes one attachment's `macspoofchk` objects with `nft`, independently
/// of the plugins: its base-chain rules (by comment) and both chains.
/// Nothing there is fine.
///
/// # Errors
///
/// When `nft` fails.
pub fn remove_spoof_check(id: &str, ifname: &str) -> Result<(), String> {
    let comment = format!("comment \"macspoofchk-{id}-{ifname}\"");
    let iface = format!("cni-br-iface-{id}-{ifname}");
    let listing = cmd::try_run(
        "nft",
        &["-a", "list", "chain", "bridge", "nat", "PREROUTING"],
    )
    .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&listing.stdout).into_owned();
    for line in text.lines().filter(|l| l.contains(&comment)) {
        if let Some(handle) = line.rsplit("# handle ").next() {
            let handle = handle.trim();
            run_nft(&[
                "delete",
                "rule",
                "bridge",
                "nat",
                "PREROUTING",
                "handle",
                handle,
            ])?;
        }
    }
    let table = nft_bridge_nat();
    for chain in [iface.clone(), format!("{iface}-mac")] {
        if table.contains(&format!("\tchain {chain} {{")) {
            run_nft(&["delete", "chain", "bridge", "nat", &chain])?;
        }
    }
    Ok(())
}

fn run_nft(args: &[&str]) -> Result<(), String> {
    let out = cmd::try_run("nft", args).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this kernel can create a VLAN-filtering bridge
/// (`CONFIG_BRIDGE_VLAN_FILTERING`): probed with a throwaway bridge.
///
/// # Panics
///
/// When `ip` cannot be started.
pub fn bridge_vlan_filtering() -> bool {
    let probe = crate::unique_ifname("vfp");
    let args = ["link", "add", probe.as_str(), "type", "bridge"];
    let created = crate::cmd::try_run("ip", &[&args[..], &["vlan_filtering", "1"]].concat())
        .is_ok_and(|out| out.status.success());
    if created {
        let _ = crate::cmd::try_run("ip", &["link", "del", probe.as_str()]);
    }
    created
}

/// The VLANs of a bridge port (or of the bridge itself) as `bridge -j vlan
/// show dev <ifname>` gives them: each VLAN ID with its flags (`PVID`,
/// `Egress Untagged`), ranges expanded.
///
/// # Panics
///
/// When `bridge` fails or prints something else than JSON.
pub fn port_vlans(ifname: &str) -> Vec<(u64, Vec<String>)> {
    let out = crate::cmd::run_ok("bridge", &["-j", "vlan", "show", "dev", ifname]);
    let shown: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bridge -j vlan show dev {ifname}: {e}: {out}"));
    let mut vlans = Vec::new();
    for entry in shown.as_array().into_iter().flatten() {
        for vlan in entry["vlans"].as_array().into_iter().flatten() {
            let flags: Vec<String> = vlan["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            let first = vlan["vlan"].as_u64().unwrap_or_default();
            let last = vlan["vlanEnd"].as_u64().unwrap_or(first);
            vlans.extend((first..=last).map(|vid| (vid, flags.clone())));
        }
    }
    vlans
}
