//! An in-memory [`Store`] for the allocator's tests.

use crate::store::{Store, StoreError, is_stale, lease_content, select_any, select_for_release};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// An in-memory [`Store`] with the same matching rules as the disk store.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    leases: BTreeMap<IpAddr, String>,
    last_reserved: BTreeMap<usize, IpAddr>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Stores raw lease content for `ip` (e.g. a legacy `<id>` or a blank stale lease).
    pub fn insert_raw(&mut self, ip: IpAddr, content: &str) {
        self.leases.insert(ip, content.to_string());
    }

    /// Raw lease content for `ip`, if leased.
    pub fn content(&self, ip: IpAddr) -> Option<&str> {
        self.leases.get(&ip).map(String::as_str)
    }

    /// Sets the recorded last reserved IP of range set `set_index`.
    pub fn set_last_reserved(&mut self, set_index: usize, ip: IpAddr) {
        self.last_reserved.insert(set_index, ip);
    }

    /// All leased IPs (stale ones included), in address order.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.leases.keys().copied().collect()
    }

    fn entries(&self) -> impl Iterator<Item = (IpAddr, &str)> + Clone {
        self.leases.iter().map(|(ip, c)| (*ip, c.as_str()))
    }
}

impl Store for MemStore {
    fn reserve(
        &mut self,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        set_index: usize,
    ) -> Result<bool, StoreError> {
        let ip = ip.to_canonical();
        if self
            .leases
            .get(&ip)
            .is_some_and(|c| !is_stale(c.as_bytes()))
        {
            return Ok(false);
        }
        self.leases.insert(ip, lease_content(id, ifname));
        self.last_reserved.insert(set_index, ip);
        Ok(true)
    }

    fn last_reserved_ip(&self, set_index: usize) -> Result<Option<IpAddr>, StoreError> {
        Ok(self.last_reserved.get(&set_index).copied())
    }

    fn find_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        Ok(select_any(self.entries(), id, ifname))
    }

    fn release_by_id(&mut self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, StoreError> {
        let ips = select_for_release(self.entries(), id, ifname);
        for ip in &ips {
            self.leases.remove(ip);
        }
        Ok(ips)
    }

    fn release_ip(&mut self, ip: IpAddr) -> Result<bool, StoreError> {
        Ok(self.leases.remove(&ip.to_canonical()).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mem_store_matches_disk_semantics() {
        let mut m = MemStore::new();
        assert!(m.reserve(" abc ", "eth0", ip("10.0.0.2"), 0).unwrap());
        assert!(!m.reserve("x", "eth0", ip("10.0.0.2"), 0).unwrap());
        assert_eq!(m.content(ip("10.0.0.2")), Some("abc\r\neth0"));
        assert_eq!(m.last_reserved_ip(0).unwrap(), Some(ip("10.0.0.2")));
        m.insert_raw(ip("10.0.0.3"), "abc");
        m.insert_raw(ip("10.0.0.4"), "");
        assert!(
            m.reserve("y", "eth0", ip("10.0.0.4"), 0).unwrap(),
            "stale reclaimed"
        );
        assert_eq!(
            m.find_by_id("abc", "eth0").unwrap(),
            [ip("10.0.0.2"), ip("10.0.0.3")]
        );
        assert_eq!(m.release_by_id("abc", "eth0").unwrap(), [ip("10.0.0.2")]);
        assert_eq!(m.release_by_id("abc", "eth0").unwrap(), [ip("10.0.0.3")]);
        assert!(m.release_ip(ip("10.0.0.4")).unwrap());
        assert!(m.ips().is_empty());
    }
}
