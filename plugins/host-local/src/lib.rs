//! The `host-local` CNI plugin: IPAM that leases addresses from configured ranges
//! and records them as one file per IP under `<dataDir>/<network>`.
//! The on-disk store is byte-compatible with the reference plugin's, so either
//! implementation can release what the other leased.

pub mod allocator;
pub mod cache;
pub mod config;
pub mod dns;
mod files;
pub mod gc;
#[cfg(test)]
mod mem_store;
pub mod range;
pub mod status;
pub mod store;

use allocator::{AllocError, allocate_all};
use cni_types::result::{Dns, IpConfig, Result as CniResult};
use cni_types::skel::{Plugin, Request};
use cni_types::{CniError, ErrorCode};
use config::{ConfigError, IpamConfig, StoreLocation};
use store::{DiskStore, Store, StoreError};

/// What `host-local` prints when run without `CNI_COMMAND`.
pub const ABOUT: &str = concat!(
    "CNI host-local plugin v",
    env!("CARGO_PKG_VERSION"),
    " (cni-rs)"
);

/// Why a host-local call failed.
#[derive(Debug, thiserror::Error)]
pub enum HostLocalError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lease store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No address could be allocated.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// `resolvConf` could not be read (Go's wording: `open <path>: <errno text>`).
    #[error("open {path}: {reason}")]
    ResolvConf {
        /// The configured path.
        path: String,
        /// The system error as Go prints it.
        reason: String,
    },
    /// CHECK found no lease for the attachment.
    #[error("host-local: Failed to find address added by container {0}")]
    NoLease(String),
}

impl From<HostLocalError> for CniError {
    fn from(err: HostLocalError) -> CniError {
        match err {
            HostLocalError::Config(config) => config.into(),
            HostLocalError::Store(StoreError::InvalidNetworkName { .. }) => {
                CniError::new(ErrorCode::InvalidNetworkConfig, err.to_string())
            }
            HostLocalError::Alloc(AllocError::Store(_))
            | HostLocalError::Store(_)
            | HostLocalError::ResolvConf { .. } => CniError::new(ErrorCode::Io, err.to_string()),
            // The reference reports allocation failures as unstructured errors.
            HostLocalError::Alloc(_) | HostLocalError::NoLease(_) => CniError::internal(err),
        }
    }
}

/// The host-local plugin.
#[derive(Debug, Default)]
pub struct HostLocal;

impl Plugin for HostLocal {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        Ok(add(req)?)
    }

    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        Ok(del(req)?)
    }

    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        Ok(check(req)?)
    }

    fn status(&self, req: &Request<'_>) -> Result<(), CniError> {
        let conf = IpamConfig::load(req).map_err(HostLocalError::from)?;
        status::check(&conf)
            .map_err(|err| CniError::new(ErrorCode::PluginNotAvailable, err.to_string()))
    }

    fn gc(&self, req: &Request<'_>) -> Result<(), CniError> {
        let Some(valid) = req.config.valid_attachments.as_deref() else {
            return Ok(());
        };
        let location = StoreLocation::from_json(req.stdin).map_err(HostLocalError::from)?;
        gc::collect(&location, valid).map_err(HostLocalError::from)?;
        Ok(())
    }
}

/// Leases one address per range set, all under one lock: either every set
/// gets an address or nothing is kept.
fn add(req: &Request<'_>) -> Result<CniResult, HostLocalError> {
    let conf = IpamConfig::load(req)?;
    let dns = read_dns(&conf)?;
    let mut store = DiskStore::open(&conf.data_dir, &conf.name)?;
    let mut locked = store.lock()?;
    let allocations = allocate_all(
        &mut locked,
        &conf.range_sets,
        &req.env.container_id,
        &req.env.ifname,
        &conf.requested,
    )?;
    Ok(CniResult {
        interfaces: Vec::new(),
        ips: allocations
            .into_iter()
            .map(|a| IpConfig {
                interface: None,
                address: a.address,
                gateway: Some(a.gateway),
            })
            .collect(),
        routes: conf.routes,
        dns,
    })
}

/// Releases every lease of this container ID and interface. Only the network
/// name and `dataDir` are read, so a config that has since become invalid
/// (or a stale `CNI_ARGS`) never blocks the release. Without a store there is
/// nothing to release, and none is created.
fn del(req: &Request<'_>) -> Result<(), HostLocalError> {
    let location = StoreLocation::from_json(req.stdin)?;
    let Some(mut store) = DiskStore::open_existing(&location.data_dir, &location.name)? else {
        return Ok(());
    };
    let mut locked = store.lock()?;
    locked.release_by_id(&req.env.container_id, &req.env.ifname)?;
    Ok(())
}

/// Succeeds when the attachment holds at least one lease.
fn check(req: &Request<'_>) -> Result<(), HostLocalError> {
    let conf = IpamConfig::load(req)?;
    let mut store = DiskStore::open(&conf.data_dir, &conf.name)?;
    let locked = store.lock()?;
    if locked
        .find_by_id(&req.env.container_id, &req.env.ifname)?
        .is_empty()
    {
        return Err(HostLocalError::NoLease(req.env.container_id.clone()));
    }
    Ok(())
}

/// The result's `dns`, from `resolvConf` when configured.
fn read_dns(conf: &IpamConfig) -> Result<Dns, HostLocalError> {
    let Some(path) = &conf.resolv_conf else {
        return Ok(Dns::default());
    };
    let text = std::fs::read_to_string(path).map_err(|err| HostLocalError::ResolvConf {
        path: path.display().to_string(),
        reason: cni_types::error::go_errno_text(&err),
    })?;
    Ok(dns::parse_resolv_conf(&text))
}
