//! GC (spec 1.1.0): releases every lease of this network whose container ID
//! and interface are not in `cni.dev/valid-attachments`. A legacy lease
//! (container ID only) stays while any valid attachment has its ID. Without
//! a valid-attachments list nothing is released.

use crate::config::StoreLocation;
use crate::store::{DiskStore, Lease, Store, StoreError};
use cni_types::config::Attachment;
use std::net::IpAddr;

/// Releases the stale leases under the store lock and returns them.
///
/// # Errors
/// [`StoreError`]; every stale lease is still tried before the first error
/// is returned.
pub fn collect(location: &StoreLocation, valid: &[Attachment]) -> Result<Vec<IpAddr>, StoreError> {
    let mut store = DiskStore::open(&location.data_dir, &location.name)?;
    let mut locked = store.lock()?;
    let stale: Vec<IpAddr> = locked
        .leases()?
        .iter()
        .filter(|lease| !is_valid(lease, valid))
        .map(|lease| lease.ip)
        .collect();
    let mut first_error = None;
    for ip in &stale {
        if let Err(err) = locked.release_ip(*ip) {
            first_error.get_or_insert(err);
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(stale),
    }
}

/// Whether a lease belongs to a valid attachment.
fn is_valid(lease: &Lease, valid: &[Attachment]) -> bool {
    valid.iter().any(|attachment| {
        attachment.container_id == lease.id
            && lease
                .ifname
                .as_deref()
                .is_none_or(|ifname| ifname == attachment.ifname)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: id.to_owned(),
            ifname: ifname.to_owned(),
        }
    }

    fn write(dir: &std::path::Path, name: &str, content: &str) {
        std::fs::write(dir.join(name), content).unwrap();
    }

    #[test]
    fn releases_exactly_the_leases_of_invalid_attachments() {
        let data = tempfile::tempdir().unwrap();
        let location = StoreLocation {
            name: "net".into(),
            data_dir: data.path().to_path_buf(),
        };
        let dir = data.path().join("net");
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "10.0.0.2", "keep\r\neth0");
        write(&dir, "10.0.0.3", "keep\r\nnet1");
        write(&dir, "10.0.0.4", "gone\r\neth0");
        write(&dir, "10.0.0.5", "legacy-kept");
        write(&dir, "10.0.0.6", "legacy-gone");
        write(&dir, "last_reserved_ip.0", "10.0.0.6");
        let valid = vec![
            attachment("keep", "eth0"),
            attachment("legacy-kept", "eth0"),
        ];
        let mut released = collect(&location, &valid).unwrap();
        released.sort();
        let expected: Vec<IpAddr> = ["10.0.0.3", "10.0.0.4", "10.0.0.6"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(released, expected);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec!["10.0.0.2", "10.0.0.5", "last_reserved_ip.0", "lock"]
        );
        // Idempotent.
        assert!(collect(&location, &valid).unwrap().is_empty());
    }

    #[test]
    fn another_network_is_never_touched() {
        let data = tempfile::tempdir().unwrap();
        let other = data.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        write(&other, "10.0.0.9", "gone\r\neth0");
        let location = StoreLocation {
            name: "net".into(),
            data_dir: data.path().to_path_buf(),
        };
        assert!(collect(&location, &[]).unwrap().is_empty());
        assert!(other.join("10.0.0.9").exists());
    }
}
