//! STATUS (spec 1.1.0): whether ADD can succeed: the lease store must be
//! usable (directory and lock) and every range set must have a free address.

use crate::config::IpamConfig;
use crate::range::RangeSet;
use crate::store::DiskStore;
use std::net::IpAddr;

/// Why host-local cannot service ADD.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The store cannot be opened or locked.
    #[error("lease store {dir} is not usable: {reason}")]
    Store {
        /// `<dataDir>/<network>`.
        dir: String,
        /// Why.
        reason: String,
    },
    /// A range set has no free address.
    #[error("no IP addresses available in range set: {0}")]
    Exhausted(String),
}

/// Checks the store and counts free addresses per range set.
///
/// # Errors
/// [`Unavailable`].
pub fn check(conf: &IpamConfig) -> Result<(), Unavailable> {
    let dir = conf.data_dir.join(&conf.name).display().to_string();
    let unusable = |reason: String| Unavailable::Store {
        dir: dir.clone(),
        reason,
    };
    let mut store =
        DiskStore::open(&conf.data_dir, &conf.name).map_err(|e| unusable(e.to_string()))?;
    let locked = store.lock().map_err(|e| unusable(e.to_string()))?;
    let leased: Vec<IpAddr> = locked
        .leases()
        .map_err(|e| unusable(e.to_string()))?
        .iter()
        .map(|l| l.ip)
        .collect();
    for set in &conf.range_sets {
        let used = leased.iter().filter(|ip| set.contains(**ip)).count();
        if (used as u128) >= capacity(set) {
            return Err(Unavailable::Exhausted(set.to_string()));
        }
    }
    drop(locked);
    Ok(())
}

/// How many addresses a set can hand out: every range's start..=end minus
/// its gateway when the gateway lies inside.
fn capacity(set: &RangeSet) -> u128 {
    set.ranges()
        .iter()
        .map(|range| {
            let span = as_u128(range.range_end())
                .saturating_sub(as_u128(range.range_start()))
                .saturating_add(1);
            if range.contains(range.gateway()) {
                span.saturating_sub(1)
            } else {
                span
            }
        })
        .fold(0u128, u128::saturating_add)
}

fn as_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(data_dir: &std::path::Path, subnet: &str) -> IpamConfig {
        let json = format!(
            r#"{{"cniVersion":"1.1.0","name":"net","ipam":{{"ranges":[[{{"subnet":"{subnet}"}}]],"dataDir":"{}"}}}}"#,
            data_dir.display()
        );
        IpamConfig::from_json(json.as_bytes(), None).unwrap()
    }

    #[test]
    fn healthy_then_exhausted_then_healthy_again() {
        let data = tempfile::tempdir().unwrap();
        let conf = conf(data.path(), "10.10.0.0/30");
        check(&conf).unwrap();
        let dir = data.path().join("net");
        std::fs::write(dir.join("10.10.0.2"), "c1\r\neth0").unwrap();
        let err = check(&conf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no IP addresses available in range set: 10.10.0.1-10.10.0.2"
        );
        std::fs::remove_file(dir.join("10.10.0.2")).unwrap();
        check(&conf).unwrap();
    }

    #[test]
    fn huge_ipv6_ranges_do_not_overflow() {
        let data = tempfile::tempdir().unwrap();
        check(&conf(data.path(), "1100:200::/24")).unwrap();
    }

    #[test]
    fn unusable_store_is_reported() {
        let data = tempfile::tempdir().unwrap();
        let file = data.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = check(&conf(&file, "10.10.0.0/24")).unwrap_err();
        assert!(matches!(err, Unavailable::Store { .. }), "{err}");
    }
}
