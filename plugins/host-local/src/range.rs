//! Address ranges and range sets: validation, defaults (gateway and
//! `rangeStart` the network + 1, `rangeEnd` the broadcast − 1 for IPv4 and
//! the subnet's last address for IPv6), containment.
//!
//! A [`Range`] is one `{subnet, rangeStart, rangeEnd, gateway}` entry after the
//! reference plugin's `Canonicalize` step. A [`RangeSet`] is a non-empty list of
//! non-overlapping ranges of one address family; each set yields one address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// Errors from range and range-set validation; `Display` matches the reference plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The prefix leaves fewer than two host bits (/31, /32, /127, /128).
    #[error("Network {0} too small to allocate from")]
    TooSmall(IpNetwork),
    /// The subnet address has bits set beyond the prefix.
    #[error(
        "Network has host bits set. For a subnet mask of length {prefix} the network address is {network}"
    )]
    HostBitsSet {
        /// Prefix length of the subnet.
        prefix: u8,
        /// The subnet address with host bits cleared.
        network: IpAddr,
    },
    /// `rangeStart` lies outside the subnet (or is of the other family).
    #[error("RangeStart {ip} not in network {subnet}")]
    StartNotInNetwork {
        /// The offending address.
        ip: IpAddr,
        /// The range's subnet.
        subnet: IpNetwork,
    },
    /// `rangeEnd` lies outside the subnet (or is of the other family).
    #[error("RangeEnd {ip} not in network {subnet}")]
    EndNotInNetwork {
        /// The offending address.
        ip: IpAddr,
        /// The range's subnet.
        subnet: IpNetwork,
    },
    /// `rangeStart` is greater than `rangeEnd` (not checked this way by the reference).
    #[error("RangeStart {start} is after RangeEnd {end}")]
    StartAfterEnd {
        /// The range start.
        start: IpAddr,
        /// The range end.
        end: IpAddr,
    },
    /// `gateway` is of the other address family (not checked by the reference).
    #[error("Gateway {ip} is not in the address family of network {subnet}")]
    GatewayFamily {
        /// The offending gateway.
        ip: IpAddr,
        /// The range's subnet.
        subnet: IpNetwork,
    },
    /// A range set without ranges.
    #[error("empty range set")]
    EmptySet,
    /// A range set mixing IPv4 and IPv6 ranges.
    #[error("mixed address families")]
    MixedFamilies,
    /// Two ranges of one set overlap; fields are the ranges' `start-end` forms.
    #[error("subnets {0} and {1} overlap")]
    RangesOverlap(String, String),
    /// A range set failed validation; wraps the cause.
    #[error("invalid range set {index}: {source}")]
    InvalidSet {
        /// Index of the range set.
        index: usize,
        /// Why the set is invalid.
        source: Box<RangeError>,
    },
    /// More than one set per family with a pre-0.3.0 CNI version.
    #[error("CNI version {0} does not support more than 1 address per family")]
    TooManyPerFamily(String),
    /// Two range sets overlap.
    #[error("range set {0} overlaps with {1}")]
    SetsOverlap(usize, usize),
}

/// One canonical range: all of `range_start..=range_end` lie in `subnet`, same family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    subnet: IpNetwork,
    range_start: IpAddr,
    range_end: IpAddr,
    gateway: IpAddr,
}

/// Unvalidated range fields as read from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSpec {
    /// `subnet` (required).
    pub subnet: IpNetwork,
    /// `rangeStart`, if given.
    pub range_start: Option<IpAddr>,
    /// `rangeEnd`, if given.
    pub range_end: Option<IpAddr>,
    /// `gateway`, if given.
    pub gateway: Option<IpAddr>,
}

impl Range {
    /// Validates a range and fills in defaults, in the reference plugin's order.
    ///
    /// Defaults: gateway and `rangeStart` are network + 1; `rangeEnd` is broadcast − 1
    /// for IPv4 and the last subnet address for IPv6. A given gateway need not lie in
    /// the subnet (as in the reference) but must be of the subnet's family.
    ///
    /// # Errors
    ///
    /// Any of the per-range [`RangeError`] variants.
    pub fn new(
        subnet: IpNetwork,
        range_start: Option<IpAddr>,
        range_end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range, RangeError> {
        let bits = if subnet.is_ipv4() { 32 } else { 128 };
        if subnet.prefix() > bits - 2 {
            return Err(RangeError::TooSmall(subnet));
        }
        let network = subnet.network();
        if subnet.ip() != network {
            return Err(RangeError::HostBitsSet {
                prefix: subnet.prefix(),
                network,
            });
        }
        let first = next_ip(network);
        let gateway = match gateway.map(|ip| ip.to_canonical()) {
            Some(ip) if ip.is_ipv4() != subnet.is_ipv4() => {
                return Err(RangeError::GatewayFamily { ip, subnet });
            }
            Some(ip) => ip,
            None => first,
        };
        let range_start = match range_start.map(|ip| ip.to_canonical()) {
            Some(ip) if !subnet.contains(ip) => {
                return Err(RangeError::StartNotInNetwork { ip, subnet });
            }
            Some(ip) => ip,
            None => first,
        };
        let range_end = match range_end.map(|ip| ip.to_canonical()) {
            Some(ip) if !subnet.contains(ip) => {
                return Err(RangeError::EndNotInNetwork { ip, subnet });
            }
            Some(ip) => ip,
            None => default_end(subnet),
        };
        if ip_to_u128(range_start) > ip_to_u128(range_end) {
            return Err(RangeError::StartAfterEnd {
                start: range_start,
                end: range_end,
            });
        }
        Ok(Range {
            subnet,
            range_start,
            range_end,
            gateway,
        })
    }

    /// Builds a range from a [`RangeSpec`]; see [`Range::new`].
    ///
    /// # Errors
    ///
    /// As [`Range::new`].
    pub fn from_spec(spec: &RangeSpec) -> Result<Range, RangeError> {
        Range::new(spec.subnet, spec.range_start, spec.range_end, spec.gateway)
    }

    /// The subnet; its prefix is the prefix of every address handed out.
    pub fn subnet(&self) -> IpNetwork {
        self.subnet
    }

    /// First allocatable address (inclusive).
    pub fn range_start(&self) -> IpAddr {
        self.range_start
    }

    /// Last allocatable address (inclusive).
    pub fn range_end(&self) -> IpAddr {
        self.range_end
    }

    /// The gateway; never handed out by dynamic allocation.
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// Whether this is an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        self.subnet.is_ipv4()
    }

    /// Whether `ip` lies in the subnet and within `range_start..=range_end`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.subnet.contains(ip)
            && ip_to_u128(ip) >= ip_to_u128(self.range_start)
            && ip_to_u128(ip) <= ip_to_u128(self.range_end)
    }

    /// Whether the two ranges (judged on start–end) overlap; false across families.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && (self.contains(other.range_start)
                || self.contains(other.range_end)
                || other.contains(self.range_start)
                || other.contains(self.range_end))
    }
}

impl fmt::Display for Range {
    /// Formats as `start-end`, e.g. `10.85.0.1-10.85.255.254`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// A validated, non-empty set of non-overlapping ranges of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(Vec<Range>);

impl RangeSet {
    /// Validates already-built ranges: non-empty, one family, no overlaps.
    ///
    /// # Errors
    ///
    /// [`RangeError::EmptySet`], [`RangeError::MixedFamilies`] or
    /// [`RangeError::RangesOverlap`] (not wrapped in `InvalidSet`).
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet, RangeError> {
        let first = ranges.first().ok_or(RangeError::EmptySet)?;
        if ranges.iter().any(|r| r.is_ipv4() != first.is_ipv4()) {
            return Err(RangeError::MixedFamilies);
        }
        for (i, r1) in ranges.iter().enumerate() {
            if let Some(r2) = ranges.iter().skip(i + 1).find(|r2| r1.overlaps(r2)) {
                return Err(RangeError::RangesOverlap(r1.to_string(), r2.to_string()));
            }
        }
        Ok(RangeSet(ranges))
    }

    /// Builds and validates a set from specs, stopping at the first error like the
    /// reference (a range's own error can win over a later "mixed address families").
    ///
    /// # Errors
    ///
    /// Any unwrapped [`RangeError`] of the ranges or the set.
    pub fn from_specs(specs: &[RangeSpec]) -> Result<RangeSet, RangeError> {
        let mut ranges: Vec<Range> = Vec::with_capacity(specs.len());
        for spec in specs {
            let range = Range::from_spec(spec)?;
            if ranges
                .first()
                .is_some_and(|f| f.is_ipv4() != range.is_ipv4())
            {
                return Err(RangeError::MixedFamilies);
            }
            ranges.push(range);
        }
        RangeSet::new(ranges)
    }

    /// The ranges, in configuration order (never empty).
    pub fn ranges(&self) -> &[Range] {
        &self.0
    }

    /// Whether this set holds IPv4 ranges.
    pub fn is_ipv4(&self) -> bool {
        self.0.first().is_some_and(Range::is_ipv4)
    }

    /// Whether any range of the set contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// The range containing `ip`, if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    /// Whether any range of this set overlaps any range of `other`.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0
            .iter()
            .any(|r1| other.0.iter().any(|r2| r1.overlaps(r2)))
    }
}

impl fmt::Display for RangeSet {
    /// Formats each range as `start-end`, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// How many range sets per address family the CNI version allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyLimit<'a> {
    /// CNI ≥ 0.3.0: any number of sets per family.
    Unlimited,
    /// CNI < 0.3.0 (or empty): at most one set per family; the version text is
    /// used in the error message.
    OnePerFamily {
        /// The configuration's `cniVersion`, verbatim.
        cni_version: &'a str,
    },
}

/// Builds and validates all range sets of a configuration.
///
/// Order of checks as in the reference: each set (`invalid range set <i>: …`), then
/// the per-family limit, then overlaps between sets. An empty list is accepted;
/// reporting `no IP ranges specified` is the config parser's job.
///
/// # Errors
///
/// [`RangeError::InvalidSet`], [`RangeError::TooManyPerFamily`] or
/// [`RangeError::SetsOverlap`].
pub fn build_range_sets(
    specs: &[Vec<RangeSpec>],
    limit: FamilyLimit<'_>,
) -> Result<Vec<RangeSet>, RangeError> {
    let sets = specs
        .iter()
        .enumerate()
        .map(|(index, set)| {
            RangeSet::from_specs(set).map_err(|e| RangeError::InvalidSet {
                index,
                source: Box::new(e),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    validate_range_sets(&sets, limit)?;
    Ok(sets)
}

/// Checks already-validated sets against each other: per-family limit, then overlaps.
///
/// # Errors
///
/// [`RangeError::TooManyPerFamily`] or [`RangeError::SetsOverlap`].
pub fn validate_range_sets(sets: &[RangeSet], limit: FamilyLimit<'_>) -> Result<(), RangeError> {
    if let FamilyLimit::OnePerFamily { cni_version } = limit {
        let v4 = sets.iter().filter(|s| s.is_ipv4()).count();
        if v4 > 1 || sets.len() - v4 > 1 {
            return Err(RangeError::TooManyPerFamily(cni_version.to_string()));
        }
    }
    for (i, s1) in sets.iter().enumerate() {
        for (j, s2) in sets.iter().enumerate().skip(i + 1) {
            if s1.overlaps(s2) {
                return Err(RangeError::SetsOverlap(i, j));
            }
        }
    }
    Ok(())
}

/// Default `rangeEnd`: broadcast − 1 for IPv4, the last subnet address for IPv6.
fn default_end(subnet: IpNetwork) -> IpAddr {
    match subnet {
        IpNetwork::V4(n) => prev_ip(IpAddr::V4(n.broadcast())),
        IpNetwork::V6(n) => IpAddr::V6(n.broadcast()),
    }
}

/// The address after `ip` (wrapping at the top of the family's space).
pub(crate) fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    }
}

/// The address before `ip` (wrapping at zero).
pub(crate) fn prev_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_sub(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_sub(1))),
    }
}

/// Numeric value of an address, for ordering within one family.
fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>) -> Range {
        Range::new(net(subnet), start.map(ip), end.map(ip), None).unwrap()
    }

    fn spec(subnet: &str) -> RangeSpec {
        RangeSpec {
            subnet: net(subnet),
            range_start: None,
            range_end: None,
            gateway: None,
        }
    }

    fn spec_se(subnet: &str, start: &str, end: &str) -> RangeSpec {
        RangeSpec {
            range_start: Some(ip(start)),
            range_end: Some(ip(end)),
            ..spec(subnet)
        }
    }

    fn err(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> String {
        Range::new(net(subnet), start.map(ip), end.map(ip), gw.map(ip))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn ipv4_defaults() {
        let r = range("10.85.0.0/16", None, None);
        assert_eq!(r.gateway(), ip("10.85.0.1"));
        assert_eq!(r.range_start(), ip("10.85.0.1"));
        assert_eq!(r.range_end(), ip("10.85.255.254"));
        assert_eq!(r.subnet(), net("10.85.0.0/16"));
        assert_eq!(r.to_string(), "10.85.0.1-10.85.255.254");
    }

    #[test]
    fn ipv6_defaults() {
        let r = range("1100:200::/24", None, None);
        assert_eq!(r.gateway(), ip("1100:200::1"));
        assert_eq!(r.range_start(), ip("1100:200::1"));
        assert_eq!(r.range_end(), ip("1100:2ff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(
            r.to_string(),
            "1100:200::1-1100:2ff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
    }

    #[test]
    fn explicit_values_kept() {
        let r = Range::new(
            net("192.168.1.0/24"),
            Some(ip("192.168.1.10")),
            Some(ip("192.168.1.20")),
            Some(ip("192.168.1.254")),
        )
        .unwrap();
        assert_eq!(r.range_start(), ip("192.168.1.10"));
        assert_eq!(r.range_end(), ip("192.168.1.20"));
        assert_eq!(r.gateway(), ip("192.168.1.254"));
    }

    #[test]
    fn gateway_outside_subnet_is_accepted_like_reference() {
        let r = Range::new(net("10.0.0.0/24"), None, None, Some(ip("10.1.0.1"))).unwrap();
        assert_eq!(r.gateway(), ip("10.1.0.1"));
    }

    #[test]
    fn smallest_subnets() {
        let r = range("10.0.0.0/30", None, None);
        assert_eq!(r.to_string(), "10.0.0.1-10.0.0.2");
        let r = range("fd00::/126", None, None);
        assert_eq!(r.to_string(), "fd00::1-fd00::3");
    }

    #[test]
    fn too_small() {
        for (cidr, msg) in [
            (
                "10.0.0.0/31",
                "Network 10.0.0.0/31 too small to allocate from",
            ),
            (
                "10.0.0.1/32",
                "Network 10.0.0.1/32 too small to allocate from",
            ),
            (
                "fd00::/127",
                "Network fd00::/127 too small to allocate from",
            ),
            (
                "fd00::1/128",
                "Network fd00::1/128 too small to allocate from",
            ),
        ] {
            assert_eq!(err(cidr, None, None, None), msg);
        }
    }

    #[test]
    fn too_small_checked_before_host_bits() {
        assert_eq!(
            err("10.0.0.1/31", None, None, None),
            "Network 10.0.0.1/31 too small to allocate from"
        );
    }

    #[test]
    fn host_bits_set() {
        assert_eq!(
            err("10.85.0.1/16", None, None, None),
            "Network has host bits set. For a subnet mask of length 16 the network address is 10.85.0.0"
        );
        assert_eq!(
            err("1100:200::1/24", None, None, None),
            "Network has host bits set. For a subnet mask of length 24 the network address is 1100:200::"
        );
    }

    #[test]
    fn start_and_end_outside_network() {
        assert_eq!(
            err("10.85.0.0/16", Some("10.86.0.1"), None, None),
            "RangeStart 10.86.0.1 not in network 10.85.0.0/16"
        );
        assert_eq!(
            err("10.85.0.0/16", None, Some("10.86.0.1"), None),
            "RangeEnd 10.86.0.1 not in network 10.85.0.0/16"
        );
        assert_eq!(
            err("1100:200::/24", Some("1100:300::1"), None, None),
            "RangeStart 1100:300::1 not in network 1100:200::/24"
        );
    }

    #[test]
    fn wrong_family() {
        assert_eq!(
            err("10.85.0.0/16", Some("fd00::1"), None, None),
            "RangeStart fd00::1 not in network 10.85.0.0/16"
        );
        assert_eq!(
            err("fd00::/64", None, Some("10.0.0.1"), None),
            "RangeEnd 10.0.0.1 not in network fd00::/64"
        );
        assert_eq!(
            err("10.85.0.0/16", None, None, Some("fd00::1")),
            "Gateway fd00::1 is not in the address family of network 10.85.0.0/16"
        );
    }

    #[test]
    fn v4_mapped_inputs_are_canonicalized() {
        let r = Range::new(
            net("10.85.0.0/16"),
            Some(ip("::ffff:10.85.0.10")),
            None,
            Some(ip("::ffff:10.85.0.1")),
        )
        .unwrap();
        assert_eq!(r.range_start(), ip("10.85.0.10"));
        assert_eq!(r.gateway(), ip("10.85.0.1"));
        assert!(r.contains(ip("::ffff:10.85.0.11")));
    }

    #[test]
    fn start_after_end() {
        assert_eq!(
            err("10.85.0.0/16", Some("10.85.0.20"), Some("10.85.0.10"), None),
            "RangeStart 10.85.0.20 is after RangeEnd 10.85.0.10"
        );
        assert_eq!(
            err("10.85.0.0/24", Some("10.85.0.255"), None, None),
            "RangeStart 10.85.0.255 is after RangeEnd 10.85.0.254"
        );
    }

    #[test]
    fn contains_uses_start_and_end() {
        let r = range("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.20"));
        assert!(!r.contains(ip("10.0.0.9")));
        assert!(r.contains(ip("10.0.0.10")));
        assert!(r.contains(ip("10.0.0.20")));
        assert!(!r.contains(ip("10.0.0.21")));
        assert!(!r.contains(ip("fd00::1")));
    }

    #[test]
    fn overlap_is_judged_on_start_end() {
        let a = range("10.0.0.0/24", Some("10.0.0.1"), Some("10.0.0.100"));
        let b = range("10.0.0.0/24", Some("10.0.0.101"), Some("10.0.0.200"));
        let c = range("10.0.0.0/24", Some("10.0.0.50"), Some("10.0.0.150"));
        let inner = range("10.0.0.0/24", Some("10.0.0.20"), Some("10.0.0.30"));
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&c) && c.overlaps(&b));
        assert!(a.overlaps(&inner) && inner.overlaps(&a));
        assert!(!a.overlaps(&range("fd00::/64", None, None)));
    }

    #[test]
    fn range_set_errors() {
        assert_eq!(
            RangeSet::new(vec![]).unwrap_err().to_string(),
            "empty range set"
        );
        let mixed = vec![
            range("10.0.0.0/24", None, None),
            range("fd00::/64", None, None),
        ];
        assert_eq!(
            RangeSet::new(mixed).unwrap_err().to_string(),
            "mixed address families"
        );
        let overlapping = vec![
            range("10.0.0.0/24", None, None),
            range("10.0.0.0/16", Some("10.0.0.200"), Some("10.0.1.5")),
        ];
        assert_eq!(
            RangeSet::new(overlapping).unwrap_err().to_string(),
            "subnets 10.0.0.1-10.0.0.254 and 10.0.0.200-10.0.1.5 overlap"
        );
    }

    #[test]
    fn range_set_from_specs_stops_at_first_error() {
        let specs = [spec("10.0.0.0/24"), spec("fd00::/64"), spec("10.1.0.1/24")];
        assert_eq!(
            RangeSet::from_specs(&specs).unwrap_err(),
            RangeError::MixedFamilies
        );
        let specs = [spec("10.0.0.0/24"), spec("fd00::1/64")];
        assert!(matches!(
            RangeSet::from_specs(&specs).unwrap_err(),
            RangeError::HostBitsSet { .. }
        ));
    }

    #[test]
    fn range_set_display_contains_and_range_for() {
        let set = RangeSet::from_specs(&[
            spec_se("10.0.0.0/24", "10.0.0.10", "10.0.0.20"),
            spec("10.1.0.0/16"),
        ])
        .unwrap();
        assert_eq!(set.to_string(), "10.0.0.10-10.0.0.20,10.1.0.1-10.1.255.254");
        assert!(set.is_ipv4());
        assert!(set.contains(ip("10.1.2.3")));
        assert!(!set.contains(ip("10.0.0.21")));
        assert_eq!(set.range_for(ip("10.0.0.15")), set.ranges().first());
        assert_eq!(set.ranges().len(), 2);
    }

    #[test]
    fn sets_overlap() {
        let a = RangeSet::from_specs(&[spec("10.0.0.0/24"), spec("10.2.0.0/24")]).unwrap();
        let b = RangeSet::from_specs(&[spec("10.1.0.0/24"), spec("10.2.0.0/25")]).unwrap();
        let c = RangeSet::from_specs(&[spec("10.3.0.0/24")]).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn build_sets_ok() {
        let sets = build_range_sets(
            &[vec![spec("10.85.0.0/16")], vec![spec("1100:200::/24")]],
            FamilyLimit::OnePerFamily {
                cni_version: "0.2.0",
            },
        )
        .unwrap();
        assert_eq!(sets.len(), 2);
        assert!(
            build_range_sets(&[], FamilyLimit::Unlimited)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn build_sets_wraps_invalid_set() {
        let e = build_range_sets(
            &[vec![spec("10.85.0.0/16")], vec![]],
            FamilyLimit::Unlimited,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid range set 1: empty range set");
        let e =
            build_range_sets(&[vec![spec("10.85.0.1/16")]], FamilyLimit::Unlimited).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid range set 0: Network has host bits set. For a subnet mask of length 16 the network address is 10.85.0.0"
        );
    }

    #[test]
    fn build_sets_family_limit() {
        let specs = [vec![spec("10.1.0.0/16")], vec![spec("10.2.0.0/16")]];
        let e = build_range_sets(
            &specs,
            FamilyLimit::OnePerFamily {
                cni_version: "0.2.0",
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CNI version 0.2.0 does not support more than 1 address per family"
        );
        let e = build_range_sets(
            &[vec![spec("fd00::/64")], vec![spec("fd01::/64")]],
            FamilyLimit::OnePerFamily { cni_version: "" },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CNI version  does not support more than 1 address per family"
        );
        assert_eq!(
            build_range_sets(&specs, FamilyLimit::Unlimited)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn build_sets_overlap() {
        let specs = [
            vec![spec("10.1.0.0/16")],
            vec![spec("fd00::/64")],
            vec![spec_se("10.1.0.0/16", "10.1.5.0", "10.1.6.0")],
        ];
        let e = build_range_sets(&specs, FamilyLimit::Unlimited).unwrap_err();
        assert_eq!(e.to_string(), "range set 0 overlaps with 2");
    }

    #[test]
    fn family_limit_checked_before_overlap() {
        let specs = [vec![spec("10.1.0.0/16")], vec![spec("10.1.0.0/16")]];
        let e = build_range_sets(
            &specs,
            FamilyLimit::OnePerFamily {
                cni_version: "0.1.0",
            },
        )
        .unwrap_err();
        assert_eq!(e, RangeError::TooManyPerFamily("0.1.0".into()));
    }

    #[test]
    fn ip_arithmetic() {
        assert_eq!(next_ip(ip("10.0.0.255")), ip("10.0.1.0"));
        assert_eq!(prev_ip(ip("10.0.1.0")), ip("10.0.0.255"));
        assert_eq!(next_ip(ip("255.255.255.255")), ip("0.0.0.0"));
        assert_eq!(next_ip(ip("fd00::ffff")), ip("fd00::1:0"));
        assert_eq!(prev_ip(ip("fd00::1:0")), ip("fd00::ffff"));
    }
}
