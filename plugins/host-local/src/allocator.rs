//! Pure address allocation over a [`Store`]: requested addresses (`CNI_ARGS`
//! `IP=`, `args.cni.ips`, `runtimeConfig.ips`) first, then round-robin from
//! the address after `last_reserved_ip.<set>`, as the reference allocates.
//!
//! [`allocate`] hands out one address from one range set; [`allocate_all`] does a
//! whole ADD (one address per set, requested IPs matched by [`assign_requested`])
//! and undoes its own reservations on failure. Callers provide locking: with a
//! [`crate::store::DiskStore`], pass the [`crate::store::LockedStore`] guard.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::{IpNetwork, IpNetworkError};

use crate::range::{Range, RangeSet, next_ip};
use crate::store::{Store, StoreError};

/// One allocated address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The address with the prefix length of its range's subnet.
    pub address: IpNetwork,
    /// The gateway of the range the address came from.
    pub gateway: IpAddr,
}

/// Allocation errors; `Display` matches the reference plugin.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// The container already holds an address in this range set (dynamic allocation).
    #[error("{ip} has been allocated to {id}, duplicate allocation is not allowed")]
    Duplicate {
        /// The address already held.
        ip: IpAddr,
        /// The container ID, as given.
        id: String,
    },
    /// A requested IP is its range's gateway.
    #[error("requested ip {0} is subnet's gateway")]
    RequestedGateway(IpAddr),
    /// A requested IP is already leased.
    #[error("requested IP address {ip} is not available in range set {range_set}")]
    RequestedUnavailable {
        /// The requested address.
        ip: IpAddr,
        /// The range set's `start-end,…` form.
        range_set: String,
    },
    /// A requested IP lies outside the range set.
    #[error("{ip} not in range set {range_set}")]
    NotInRangeSet {
        /// The requested address.
        ip: IpAddr,
        /// The range set's `start-end,…` form.
        range_set: String,
    },
    /// Every candidate of the range set is taken.
    #[error("no IP addresses available in range set: {0}")]
    Exhausted(String),
    /// Allocation from range set `index` failed; wraps the cause.
    #[error("failed to allocate for range {index}: {source}")]
    ForRange {
        /// Index of the range set.
        index: usize,
        /// Why it failed.
        source: Box<AllocError>,
    },
    /// Requested IPs that no range set contains (in request order).
    #[error("failed to allocate all requested IPs: {}", SpaceSeparated(.0))]
    RequestedLeftOver(Vec<IpAddr>),
    /// Building the `ip/prefix` result failed (cannot happen for validated ranges).
    #[error("address {ip}/{prefix}: {source}")]
    Address {
        /// The address.
        ip: IpAddr,
        /// The prefix length.
        prefix: u8,
        /// Underlying error.
        source: IpNetworkError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Formats addresses separated by single spaces.
struct SpaceSeparated<'a>(&'a [IpAddr]);

impl fmt::Display for SpaceSeparated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ip) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{ip}")?;
        }
        Ok(())
    }
}

/// Requested IPs matched to range sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedIps {
    /// For each range set (by index), the requested IP it takes, if any.
    pub per_set: Vec<Option<IpAddr>>,
    /// Requested IPs no set took, in request order.
    pub leftover: Vec<IpAddr>,
}

/// Matches requested IPs to range sets, deterministically.
///
/// IPs are canonicalized (IPv4-mapped IPv6 becomes IPv4) and de-duplicated. Each set,
/// in index order, takes the first remaining IP (in request order) it contains.
pub fn assign_requested(sets: &[RangeSet], requested: &[IpAddr]) -> RequestedIps {
    let mut remaining: Vec<IpAddr> = Vec::with_capacity(requested.len());
    for ip in requested.iter().map(|ip| ip.to_canonical()) {
        if !remaining.contains(&ip) {
            remaining.push(ip);
        }
    }
    let per_set = sets
        .iter()
        .map(|set| {
            let pos = remaining.iter().position(|ip| set.contains(*ip))?;
            Some(remaining.remove(pos))
        })
        .collect();
    RequestedIps {
        per_set,
        leftover: remaining,
    }
}

/// Allocates one address from range set `set_index` for `id`/`ifname`.
///
/// With `requested`, reserves exactly that address (no duplicate check, as in the
/// reference). Otherwise fails if the container already holds an address in this
/// set, then walks the set round-robin from after `last_reserved_ip.<set_index>`,
/// skipping gateways, until a reservation succeeds or a full cycle is done. Every
/// successful reservation updates `last_reserved_ip.<set_index>` (done by the store).
///
/// # Errors
///
/// The unwrapped [`AllocError`] variants (callers add `failed to allocate for range`).
pub fn allocate<S: Store + ?Sized>(
    store: &mut S,
    set_index: usize,
    range_set: &RangeSet,
    id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> Result<Allocation, AllocError> {
    match requested {
        Some(ip) => allocate_requested(store, set_index, range_set, id, ifname, ip),
        None => allocate_dynamic(store, set_index, range_set, id, ifname),
    }
}

/// Allocates one address per range set, as one ADD does.
///
/// On any failure, the addresses reserved by this call (and only those) are released
/// again, best-effort; `last_reserved_ip` is not rewound. Unlike the reference, which
/// locks per set, the caller's lock (if any) covers the whole call.
///
/// # Errors
///
/// [`AllocError::ForRange`] wrapping the first set's failure, or
/// [`AllocError::RequestedLeftOver`] if some requested IP fits no set.
pub fn allocate_all<S: Store + ?Sized>(
    store: &mut S,
    sets: &[RangeSet],
    id: &str,
    ifname: &str,
    requested: &[IpAddr],
) -> Result<Vec<Allocation>, AllocError> {
    let plan = assign_requested(sets, requested);
    let mut done = Vec::with_capacity(sets.len());
    for (index, (set, req)) in sets.iter().zip(&plan.per_set).enumerate() {
        match allocate(store, index, set, id, ifname, *req) {
            Ok(allocation) => done.push(allocation),
            Err(e) => {
                roll_back(store, &done);
                return Err(AllocError::ForRange {
                    index,
                    source: Box::new(e),
                });
            }
        }
    }
    if !plan.leftover.is_empty() {
        roll_back(store, &done);
        return Err(AllocError::RequestedLeftOver(plan.leftover));
    }
    Ok(done)
}

/// Releases the given allocations, ignoring errors (a later DEL cleans up by ID).
fn roll_back<S: Store + ?Sized>(store: &mut S, done: &[Allocation]) {
    for allocation in done {
        let _ = store.release_ip(allocation.address.ip());
    }
}

fn allocate_requested<S: Store + ?Sized>(
    store: &mut S,
    set_index: usize,
    range_set: &RangeSet,
    id: &str,
    ifname: &str,
    ip: IpAddr,
) -> Result<Allocation, AllocError> {
    let ip = ip.to_canonical();
    let range = range_set
        .range_for(ip)
        .ok_or_else(|| AllocError::NotInRangeSet {
            ip,
            range_set: range_set.to_string(),
        })?;
    if ip == range.gateway() {
        return Err(AllocError::RequestedGateway(ip));
    }
    if !store.reserve(id, ifname, ip, set_index)? {
        return Err(AllocError::RequestedUnavailable {
            ip,
            range_set: range_set.to_string(),
        });
    }
    allocation(ip, range)
}

fn allocate_dynamic<S: Store + ?Sized>(
    store: &mut S,
    set_index: usize,
    range_set: &RangeSet,
    id: &str,
    ifname: &str,
) -> Result<Allocation, AllocError> {
    let held = store.find_by_id(id, ifname)?;
    if let Some(ip) = held.into_iter().find(|ip| range_set.contains(*ip)) {
        return Err(AllocError::Duplicate {
            ip,
            id: id.to_string(),
        });
    }
    let last = store.last_reserved_ip(set_index)?;
    for (ip, range) in Candidates::new(range_set, last) {
        if store.reserve(id, ifname, ip, set_index)? {
            return allocation(ip, range);
        }
    }
    Err(AllocError::Exhausted(range_set.to_string()))
}

/// Builds the result for `ip` taken from `range`.
fn allocation(ip: IpAddr, range: &Range) -> Result<Allocation, AllocError> {
    let prefix = range.subnet().prefix();
    let address =
        IpNetwork::new(ip, prefix).map_err(|source| AllocError::Address { ip, prefix, source })?;
    Ok(Allocation {
        address,
        gateway: range.gateway(),
    })
}

/// Round-robin candidates of a range set, mirroring the reference `RangeIter`.
///
/// Starts after `last` if a range contains it (so `last` is the final candidate),
/// else at the first range's start; wraps from each `rangeEnd` to the next range's
/// start; skips gateways; ends after one full cycle.
struct Candidates<'a> {
    ranges: &'a [Range],
    index: usize,
    cur: Option<IpAddr>,
    first: Option<IpAddr>,
    done: bool,
}

impl<'a> Candidates<'a> {
    fn new(set: &'a RangeSet, last: Option<IpAddr>) -> Candidates<'a> {
        let ranges = set.ranges();
        let start = last.and_then(|ip| {
            let ip = ip.to_canonical();
            ranges.iter().position(|r| r.contains(ip)).map(|i| (i, ip))
        });
        Candidates {
            ranges,
            index: start.map_or(0, |(i, _)| i),
            cur: start.map(|(_, ip)| ip),
            first: None,
            done: false,
        }
    }

    /// Moves to the next address of the cycle, gateway or not.
    fn step(&mut self) -> Option<(IpAddr, &'a Range)> {
        let mut range = self.ranges.get(self.index)?;
        let ip = match self.cur {
            None => range.range_start(),
            Some(cur) if cur == range.range_end() => {
                self.index = (self.index + 1) % self.ranges.len();
                range = self.ranges.get(self.index)?;
                range.range_start()
            }
            Some(cur) => next_ip(cur),
        };
        match self.first {
            Some(first) if first == ip => return None,
            Some(_) => {}
            None => self.first = Some(ip),
        }
        self.cur = Some(ip);
        Some((ip, range))
    }
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.step() {
                Some((ip, range)) if ip == range.gateway() => {}
                Some(found) => return Some(found),
                None => self.done = true,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_store::MemStore;
    use crate::range::{FamilyLimit, RangeSpec, build_range_sets};
    use crate::store::DiskStore;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn spec(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> RangeSpec {
        RangeSpec {
            subnet: subnet.parse().unwrap(),
            range_start: start.map(ip),
            range_end: end.map(ip),
            gateway: gw.map(ip),
        }
    }

    fn set(specs: &[RangeSpec]) -> RangeSet {
        RangeSet::from_specs(specs).unwrap()
    }

    fn subnet(s: &str) -> RangeSet {
        set(&[spec(s, None, None, None)])
    }

    fn dynamic(store: &mut MemStore, set: &RangeSet, id: &str) -> Result<Allocation, AllocError> {
        allocate(store, 0, set, id, "eth0", None)
    }

    fn next(store: &mut MemStore, set: &RangeSet, id: &str) -> IpAddr {
        dynamic(store, set, id).unwrap().address.ip()
    }

    /// A store that records every reservation attempt.
    #[derive(Default)]
    struct Counting {
        inner: MemStore,
        attempts: Vec<IpAddr>,
    }

    impl Store for Counting {
        fn reserve(
            &mut self,
            id: &str,
            ifname: &str,
            ip: IpAddr,
            set_index: usize,
        ) -> Result<bool, StoreError> {
            self.attempts.push(ip);
            self.inner.reserve(id, ifname, ip, set_index)
        }
        fn last_reserved_ip(&self, set_index: usize) -> Result<Option<IpAddr>, StoreError> {
            self.inner.last_reserved_ip(set_index)
        }
        fn find_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
            self.inner.find_by_id(id, ifname)
        }
        fn release_by_id(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
            self.inner.release_by_id(id, ifname)
        }
        fn release_ip(&mut self, ip: IpAddr) -> Result<bool, StoreError> {
            self.inner.release_ip(ip)
        }
    }

    #[test]
    fn first_allocation_skips_gateway() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        let a = dynamic(&mut store, &s, "abc123").unwrap();
        assert_eq!(a.address, "10.85.0.2/16".parse::<IpNetwork>().unwrap());
        assert_eq!(a.gateway, ip("10.85.0.1"));
        assert_eq!(store.content(ip("10.85.0.2")), Some("abc123\r\neth0"));
        assert_eq!(store.last_reserved_ip(0).unwrap(), Some(ip("10.85.0.2")));
    }

    #[test]
    fn round_robin_continues_after_release() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        assert_eq!(next(&mut store, &s, "a"), ip("10.85.0.2"));
        assert_eq!(next(&mut store, &s, "b"), ip("10.85.0.3"));
        assert_eq!(store.release_by_id("b", "eth0").unwrap(), [ip("10.85.0.3")]);
        assert_eq!(next(&mut store, &s, "c"), ip("10.85.0.4"));
    }

    #[test]
    fn slash_30_has_one_dynamic_address() {
        // network .0, gateway .1, range .1-.2, broadcast .3: only .2 is handed out.
        let mut store = Counting::default();
        let s = subnet("10.0.0.0/30");
        let a = allocate(&mut store, 0, &s, "a", "eth0", None).unwrap();
        assert_eq!(a.address.to_string(), "10.0.0.2/30");
        let e = allocate(&mut store, 0, &s, "b", "eth0", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no IP addresses available in range set: 10.0.0.1-10.0.0.2"
        );
        assert_eq!(store.attempts, [ip("10.0.0.2"), ip("10.0.0.2")]);
    }

    #[test]
    fn full_cycle_tries_each_candidate_once() {
        let mut store = Counting::default();
        let s = subnet("10.0.0.0/29");
        store.inner.set_last_reserved(0, ip("10.0.0.4"));
        for n in 2..=6 {
            store.inner.insert_raw(ip(&format!("10.0.0.{n}")), "x");
        }
        let e = allocate(&mut store, 0, &s, "a", "eth0", None).unwrap_err();
        assert!(matches!(e, AllocError::Exhausted(_)));
        let expect: Vec<IpAddr> = ["5", "6", "2", "3", "4"]
            .iter()
            .map(|n| ip(&format!("10.0.0.{n}")))
            .collect();
        assert_eq!(store.attempts, expect);
    }

    #[test]
    fn last_reserved_is_the_last_candidate() {
        let mut store = MemStore::new();
        let s = set(&[spec(
            "10.0.0.0/24",
            Some("10.0.0.10"),
            Some("10.0.0.12"),
            None,
        )]);
        store.set_last_reserved(0, ip("10.0.0.11"));
        store.insert_raw(ip("10.0.0.12"), "x");
        store.insert_raw(ip("10.0.0.10"), "y");
        assert_eq!(next(&mut store, &s, "a"), ip("10.0.0.11"));
    }

    #[test]
    fn last_reserved_outside_set_restarts_at_range_start() {
        let mut store = MemStore::new();
        let s = set(&[spec(
            "10.0.0.0/24",
            Some("10.0.0.10"),
            Some("10.0.0.20"),
            None,
        )]);
        store.set_last_reserved(0, ip("10.0.0.50"));
        assert_eq!(next(&mut store, &s, "a"), ip("10.0.0.10"));
        store.set_last_reserved(0, ip("fd00::1"));
        assert_eq!(next(&mut store, &s, "b"), ip("10.0.0.11"));
    }

    #[test]
    fn last_reserved_is_per_set_index() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        store.set_last_reserved(1, ip("10.85.0.100"));
        assert_eq!(next(&mut store, &s, "a"), ip("10.85.0.2"));
        assert_eq!(
            allocate(&mut store, 1, &s, "b", "eth0", None)
                .unwrap()
                .address
                .ip(),
            ip("10.85.0.101")
        );
    }

    #[test]
    fn gateway_inside_range_is_skipped() {
        let mut store = MemStore::new();
        let s = set(&[spec(
            "10.0.0.0/24",
            Some("10.0.0.10"),
            Some("10.0.0.12"),
            Some("10.0.0.11"),
        )]);
        assert_eq!(next(&mut store, &s, "a"), ip("10.0.0.10"));
        assert_eq!(next(&mut store, &s, "b"), ip("10.0.0.12"));
        assert!(matches!(
            dynamic(&mut store, &s, "c"),
            Err(AllocError::Exhausted(_))
        ));
    }

    #[test]
    fn last_reserved_before_gateway() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        store.set_last_reserved(0, ip("10.85.255.254"));
        assert_eq!(
            next(&mut store, &s, "a"),
            ip("10.85.0.2"),
            "wraps, skips .1"
        );
    }

    #[test]
    fn multiple_ranges_wrap_around() {
        let mut store = MemStore::new();
        let s = set(&[
            spec("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.11"), None),
            spec("10.0.1.0/24", Some("10.0.1.10"), Some("10.0.1.11"), None),
        ]);
        let got: Vec<Allocation> = ["a", "b", "c"]
            .iter()
            .map(|id| dynamic(&mut store, &s, id).unwrap())
            .collect();
        assert_eq!(got[0].address.to_string(), "10.0.0.10/24");
        assert_eq!(got[1].address.to_string(), "10.0.0.11/24");
        assert_eq!(got[2].address.to_string(), "10.0.1.10/24");
        assert_eq!(got[2].gateway, ip("10.0.1.1"));
        store.release_by_id("a", "eth0").unwrap();
        assert_eq!(next(&mut store, &s, "d"), ip("10.0.1.11"));
        assert_eq!(
            next(&mut store, &s, "e"),
            ip("10.0.0.10"),
            "wrapped to first range"
        );
        let e = dynamic(&mut store, &s, "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no IP addresses available in range set: 10.0.0.10-10.0.0.11,10.0.1.10-10.0.1.11"
        );
    }

    #[test]
    fn ipv6_allocation() {
        let mut store = MemStore::new();
        let s = subnet("1100:200::/24");
        let a = dynamic(&mut store, &s, "abc").unwrap();
        assert_eq!(a.address.to_string(), "1100:200::2/24");
        assert_eq!(a.gateway, ip("1100:200::1"));
        let s = subnet("fd00::/126");
        assert_eq!(next(&mut store, &s, "a"), ip("fd00::2"));
        assert_eq!(
            next(&mut store, &s, "b"),
            ip("fd00::3"),
            "last address allocatable"
        );
        assert_eq!(
            dynamic(&mut store, &s, "c").unwrap_err().to_string(),
            "no IP addresses available in range set: fd00::1-fd00::3"
        );
    }

    #[test]
    fn duplicate_allocation_rejected() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        next(&mut store, &s, "abc123");
        let e = dynamic(&mut store, &s, "abc123").unwrap_err();
        assert_eq!(
            e.to_string(),
            "10.85.0.2 has been allocated to abc123, duplicate allocation is not allowed"
        );
        assert_eq!(next(&mut store, &s, "abc123x"), ip("10.85.0.3"));
        assert!(allocate(&mut store, 0, &s, "abc123", "eth1", None).is_ok());
    }

    #[test]
    fn duplicate_check_counts_legacy_leases_and_ignores_other_sets() {
        let mut store = MemStore::new();
        let v4 = subnet("10.85.0.0/16");
        let v6 = subnet("1100:200::/24");
        store.insert_raw(ip("1100:200::9"), "abc\r\neth0");
        assert_eq!(next(&mut store, &v4, "abc"), ip("10.85.0.2"));
        let mut store = MemStore::new();
        store.insert_raw(ip("10.85.0.7"), "abc");
        let e = dynamic(&mut store, &v4, "abc").unwrap_err();
        assert!(matches!(e, AllocError::Duplicate { ip: i, .. } if i == ip("10.85.0.7")));
        assert!(allocate(&mut store, 1, &v6, "abc", "eth0", None).is_ok());
    }

    #[test]
    fn requested_ip() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        let a = allocate(&mut store, 0, &s, "abc", "eth0", Some(ip("10.85.3.4"))).unwrap();
        assert_eq!(a.address.to_string(), "10.85.3.4/16");
        assert_eq!(store.last_reserved_ip(0).unwrap(), Some(ip("10.85.3.4")));
        // no duplicate check for requested IPs
        assert!(allocate(&mut store, 0, &s, "abc", "eth0", Some(ip("10.85.3.5"))).is_ok());
        assert_eq!(next(&mut store, &s, "def"), ip("10.85.3.6"));
    }

    #[test]
    fn requested_ip_errors() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        let req = |store: &mut MemStore, r: &str| {
            allocate(store, 0, &s, "x", "eth0", Some(ip(r)))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            req(&mut store, "10.85.0.1"),
            "requested ip 10.85.0.1 is subnet's gateway"
        );
        store.insert_raw(ip("10.85.0.5"), "other\r\neth0");
        assert_eq!(
            req(&mut store, "10.85.0.5"),
            "requested IP address 10.85.0.5 is not available in range set 10.85.0.1-10.85.255.254"
        );
        assert_eq!(
            req(&mut store, "10.99.3.4"),
            "10.99.3.4 not in range set 10.85.0.1-10.85.255.254"
        );
        assert_eq!(
            req(&mut store, "10.85.255.255"),
            "10.85.255.255 not in range set 10.85.0.1-10.85.255.254"
        );
    }

    #[test]
    fn requested_ip_is_canonicalized() {
        let mut store = MemStore::new();
        let s = subnet("10.85.0.0/16");
        let a = allocate(&mut store, 0, &s, "x", "eth0", Some(ip("::ffff:10.85.0.9"))).unwrap();
        assert_eq!(a.address.to_string(), "10.85.0.9/16");
        assert_eq!(store.ips(), [ip("10.85.0.9")]);
    }

    #[test]
    fn assign_requested_is_deterministic() {
        let sets = [subnet("10.85.0.0/16"), subnet("1100:200::/24")];
        let r = assign_requested(
            &sets,
            &[
                ip("10.85.0.9"),
                ip("1100:200::5"),
                ip("10.85.0.8"),
                ip("::ffff:10.85.0.9"),
                ip("10.99.0.1"),
            ],
        );
        assert_eq!(r.per_set, [Some(ip("10.85.0.9")), Some(ip("1100:200::5"))]);
        assert_eq!(r.leftover, [ip("10.85.0.8"), ip("10.99.0.1")]);
        let r = assign_requested(&sets, &[]);
        assert_eq!(r.per_set, [None, None]);
        assert!(r.leftover.is_empty());
    }

    #[test]
    fn allocate_all_dual_stack() {
        let mut store = MemStore::new();
        let sets = [subnet("10.85.0.0/16"), subnet("1100:200::/24")];
        let got = allocate_all(&mut store, &sets, "abc", "eth0", &[ip("1100:200::7")]).unwrap();
        assert_eq!(got[0].address.to_string(), "10.85.0.2/16");
        assert_eq!(got[1].address.to_string(), "1100:200::7/24");
        assert_eq!(store.last_reserved_ip(1).unwrap(), Some(ip("1100:200::7")));
    }

    #[test]
    fn allocate_all_leftover_rolls_back() {
        let mut store = MemStore::new();
        let sets = [subnet("10.85.0.0/16"), subnet("1100:200::/24")];
        let e = allocate_all(
            &mut store,
            &sets,
            "abc",
            "eth0",
            &[ip("10.99.3.4"), ip("10.85.0.20"), ip("10.85.0.21")],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to allocate all requested IPs: 10.99.3.4 10.85.0.21"
        );
        assert!(store.ips().is_empty());
        assert_eq!(
            store.last_reserved_ip(1).unwrap(),
            Some(ip("1100:200::2")),
            "not rewound"
        );
    }

    #[test]
    fn allocate_all_failure_in_later_set_rolls_back_only_own_leases() {
        let mut store = MemStore::new();
        store.insert_raw(ip("10.85.0.50"), "abc\r\neth0");
        let sets = [subnet("10.85.0.0/16"), subnet("10.0.0.0/30")];
        store.insert_raw(ip("10.0.0.2"), "other\r\neth0");
        let e = allocate_all(&mut store, &sets, "abc", "eth0", &[ip("10.85.0.60")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to allocate for range 1: no IP addresses available in range set: 10.0.0.1-10.0.0.2"
        );
        assert_eq!(store.ips(), [ip("10.0.0.2"), ip("10.85.0.50")]);
    }

    #[test]
    fn allocate_all_wraps_duplicate() {
        let mut store = MemStore::new();
        let sets = [subnet("10.85.0.0/16")];
        allocate_all(&mut store, &sets, "abc123", "eth0", &[]).unwrap();
        let e = allocate_all(&mut store, &sets, "abc123", "eth0", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to allocate for range 0: 10.85.0.2 has been allocated to abc123, duplicate allocation is not allowed"
        );
    }

    #[test]
    fn concurrent_disk_allocations_are_unique() {
        let tmp = tempfile::tempdir().unwrap();
        let sets = [subnet("10.85.0.0/24")];
        let mut all: Vec<IpAddr> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (path, sets) = (tmp.path(), &sets);
                    scope.spawn(move || {
                        let mut disk = DiskStore::open(path, "net").unwrap();
                        (0..20)
                            .map(|n| {
                                let mut locked = disk.lock().unwrap();
                                let id = format!("c{t}-{n}");
                                allocate_all(&mut locked, sets, &id, "eth0", &[]).unwrap()[0]
                                    .address
                                    .ip()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 160);
        let files = std::fs::read_dir(tmp.path().join("net")).unwrap().count();
        assert_eq!(files, 162, "160 leases + lock + last_reserved_ip.0");
    }

    #[test]
    fn disk_store_end_to_end() {
        let tmp = tempfile::tempdir().unwrap();
        let sets = build_range_sets(
            &[
                vec![spec("10.85.0.0/16", None, None, None)],
                vec![spec("1100:200::/24", None, None, None)],
            ],
            FamilyLimit::Unlimited,
        )
        .unwrap();
        let mut disk = DiskStore::open(tmp.path(), "crio").unwrap();
        let dir = disk.dir().to_path_buf();
        {
            let mut locked = disk.lock().unwrap();
            let got = allocate_all(&mut locked, &sets, "abc123", "eth0", &[]).unwrap();
            assert_eq!(got[0].address.to_string(), "10.85.0.2/16");
            assert_eq!(got[1].address.to_string(), "1100:200::2/24");
            let b = allocate_all(&mut locked, &sets, "def", "eth0", &[]).unwrap();
            assert_eq!(b[0].address.to_string(), "10.85.0.3/16");
            locked.release_by_id("def", "eth0").unwrap();
        }
        assert_eq!(
            std::fs::read(dir.join("10.85.0.2")).unwrap(),
            b"abc123\r\neth0"
        );
        assert_eq!(
            std::fs::read(dir.join("1100:200::2")).unwrap(),
            b"abc123\r\neth0"
        );
        assert_eq!(
            std::fs::read(dir.join("last_reserved_ip.0")).unwrap(),
            b"10.85.0.3"
        );
        assert_eq!(
            std::fs::read(dir.join("last_reserved_ip.1")).unwrap(),
            b"1100:200::3"
        );
        let mut locked = disk.lock().unwrap();
        let c = allocate_all(&mut locked, &sets, "ghi", "eth0", &[]).unwrap();
        assert_eq!(c[0].address.to_string(), "10.85.0.4/16");
        assert_eq!(c[1].address.to_string(), "1100:200::4/24");
    }
}
