//! host-local's configuration: range sets (the `ranges` list, the legacy
//! flat `subnet` form, or `runtimeConfig.ipRanges`), routes, the data
//! directory, `resolvConf`, and the addresses a caller requests through
//! `CNI_ARGS`, `args.cni.ips` and `runtimeConfig.ips`.

use crate::range::{FamilyLimit, RangeError, RangeSet, RangeSpec, build_range_sets};
use cni_types::result::Route;
use cni_types::skel::Request;
use cni_types::version::parse_semver;
use cni_types::{CniError, CniVersion, ErrorCode};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Component, PathBuf};

/// Where leases live unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The `CNI_ARGS` keys host-local understands.
pub const KNOWN_ARGS: &[&str] = &["IP"];

/// A validated host-local configuration.
#[derive(Debug, Clone)]
pub struct IpamConfig {
    /// The network name (names the store directory).
    pub name: String,
    /// One address is allocated from each set, in order.
    pub range_sets: Vec<RangeSet>,
    /// Routes copied verbatim into the result.
    pub routes: Vec<Route>,
    /// The store's parent directory.
    pub data_dir: PathBuf,
    /// A resolv.conf-format file that fills the result's `dns`.
    pub resolv_conf: Option<PathBuf>,
    /// Requested addresses, de-duplicated, in request order.
    pub requested: Vec<IpAddr>,
}

/// Why the configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON does not have the expected shape.
    #[error("failed to load netconf: {0}")]
    Shape(#[from] serde_json::Error),
    /// There is no `ipam` object.
    #[error("IPAM config missing 'ipam' key")]
    MissingIpam,
    /// No range set in any of the three places.
    #[error("no IP ranges specified")]
    NoRanges,
    /// A range without `subnet` (the reference's message names Go's nil IP).
    #[error("invalid range set {0}: IP <nil> not v4 nor v6")]
    MissingSubnet(usize),
    /// A subnet that is not `address/prefix`.
    #[error("invalid CIDR address: {0}")]
    BadCidr(String),
    /// An address that does not parse.
    #[error("invalid IP address: {0}")]
    BadIp(String),
    /// A range set that fails validation.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// A `dataDir` that is empty, contains NUL or a `..` component.
    #[error("invalid dataDir \"{0}\": it must not be empty or contain NUL or '..' components")]
    BadDataDir(String),
    /// `CNI_ARGS` is malformed.
    #[error(transparent)]
    Args(#[from] cni_types::args::ArgsError),
}

impl From<ConfigError> for CniError {
    fn from(err: ConfigError) -> CniError {
        match err {
            ConfigError::Args(args) => args.into(),
            other => CniError::new(ErrorCode::InvalidNetworkConfig, other.to_string()),
        }
    }
}

/// The parts of stdin host-local reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNet {
    #[serde(default)]
    name: String,
    #[serde(default)]
    cni_version: String,
    #[serde(default)]
    ipam: Option<RawIpam>,
    #[serde(default)]
    runtime_config: Option<RawRuntimeConfig>,
    #[serde(default)]
    args: Option<RawArgs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(flatten)]
    legacy: RawRange,
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    resolv_conf: Option<String>,
    #[serde(default)]
    ranges: Option<Vec<Option<Vec<RawRange>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRange {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    range_start: Option<String>,
    #[serde(default)]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRuntimeConfig {
    #[serde(default)]
    ip_ranges: Option<Vec<Option<Vec<RawRange>>>>,
    #[serde(default)]
    ips: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawArgs {
    #[serde(default)]
    cni: Option<RawCniArgs>,
}

#[derive(Debug, Default, Deserialize)]
struct RawCniArgs {
    #[serde(default)]
    ips: Option<Vec<String>>,
}

/// Where a network's leases live: all DEL needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// The network name.
    pub name: String,
    /// The store's parent directory.
    pub data_dir: PathBuf,
}

impl StoreLocation {
    /// Reads only the network name and `ipam.dataDir`.
    ///
    /// # Errors
    /// [`ConfigError`] when `ipam` is missing or `dataDir` is unsafe.
    pub fn from_json(stdin: &[u8]) -> Result<StoreLocation, ConfigError> {
        #[derive(Deserialize)]
        struct Minimal {
            #[serde(default)]
            name: String,
            #[serde(default)]
            ipam: Option<MinimalIpam>,
        }
        #[derive(Deserialize)]
        struct MinimalIpam {
            #[serde(default, rename = "dataDir")]
            data_dir: Option<String>,
        }
        let raw: Minimal = cni_types::json::from_slice(stdin)?;
        let ipam = raw.ipam.ok_or(ConfigError::MissingIpam)?;
        Ok(StoreLocation {
            name: raw.name,
            data_dir: data_dir(ipam.data_dir.as_deref())?,
        })
    }
}

impl IpamConfig {
    /// Reads and validates the configuration of one call.
    ///
    /// # Errors
    /// [`ConfigError`]: code 7 for the config, code 4 for `CNI_ARGS`.
    pub fn load(req: &Request<'_>) -> Result<IpamConfig, ConfigError> {
        let args = cni_types::CniArgs::parse_known(&req.env.args, KNOWN_ARGS)?;
        IpamConfig::from_json(req.stdin, args.get("IP"))
    }

    /// Reads the configuration from stdin bytes and the `CNI_ARGS` `IP`
    /// value, if any.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn from_json(stdin: &[u8], cni_args_ip: Option<&str>) -> Result<IpamConfig, ConfigError> {
        let raw: RawNet = cni_types::json::from_slice(stdin)?;
        let ipam = raw.ipam.ok_or(ConfigError::MissingIpam)?;
        let specs = range_specs(&ipam, raw.runtime_config.as_ref())?;
        if specs.is_empty() {
            return Err(ConfigError::NoRanges);
        }
        let limit = if allows_many_per_family(&raw.cni_version) {
            FamilyLimit::Unlimited
        } else {
            FamilyLimit::OnePerFamily {
                cni_version: &raw.cni_version,
            }
        };
        let range_sets = build_range_sets(&specs, limit)?;
        let requested = requested_ips(
            cni_args_ip,
            raw.args
                .as_ref()
                .and_then(|a| a.cni.as_ref())
                .and_then(|c| c.ips.as_deref()),
            raw.runtime_config.as_ref().and_then(|rc| rc.ips.as_deref()),
        )?;
        Ok(IpamConfig {
            name: raw.name,
            range_sets,
            routes: ipam.routes.unwrap_or_default(),
            data_dir: data_dir(ipam.data_dir.as_deref())?,
            resolv_conf: ipam
                .resolv_conf
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            requested,
        })
    }
}

/// Range sets from `runtimeConfig.ipRanges` when given (they override the
/// config), else the legacy flat range followed by `ranges`.
fn range_specs(
    ipam: &RawIpam,
    runtime: Option<&RawRuntimeConfig>,
) -> Result<Vec<Vec<RangeSpec>>, ConfigError> {
    let runtime_sets = runtime
        .and_then(|rc| rc.ip_ranges.as_ref())
        .filter(|sets| !sets.is_empty());
    let mut raw_sets: Vec<Vec<&RawRange>> = Vec::new();
    if let Some(sets) = runtime_sets {
        raw_sets.extend(sets.iter().map(|set| set.iter().flatten().collect()));
    } else {
        if ipam.legacy.subnet.is_some() {
            raw_sets.push(vec![&ipam.legacy]);
        }
        if let Some(sets) = &ipam.ranges {
            raw_sets.extend(sets.iter().map(|set| set.iter().flatten().collect()));
        }
    }
    raw_sets
        .into_iter()
        .enumerate()
        .map(|(index, set)| {
            set.into_iter()
                .map(|raw| range_spec(raw, index))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect()
}

/// One range's fields, parsed but not yet validated.
fn range_spec(raw: &RawRange, set_index: usize) -> Result<RangeSpec, ConfigError> {
    let subnet = match raw.subnet.as_deref() {
        Some(text) if !text.is_empty() => parse_cidr(text)?,
        _ => return Err(ConfigError::MissingSubnet(set_index)),
    };
    Ok(RangeSpec {
        subnet,
        range_start: parse_optional_ip(raw.range_start.as_deref())?,
        range_end: parse_optional_ip(raw.range_end.as_deref())?,
        gateway: parse_optional_ip(raw.gateway.as_deref())?,
    })
}

/// `address/prefix`, with the prefix required as Go's `ParseCIDR` does.
fn parse_cidr(text: &str) -> Result<IpNetwork, ConfigError> {
    if !text.contains('/') {
        return Err(ConfigError::BadCidr(text.to_owned()));
    }
    text.parse()
        .map_err(|_| ConfigError::BadCidr(text.to_owned()))
}

/// An optional address; an empty string counts as absent.
fn parse_optional_ip(text: Option<&str>) -> Result<Option<IpAddr>, ConfigError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::BadIp(text.to_owned())),
    }
}

/// An address that may carry a `/prefix`, which is ignored.
fn parse_requested(text: &str) -> Result<IpAddr, ConfigError> {
    let address = text.split_once('/').map_or(text, |(address, _)| address);
    address
        .parse()
        .map_err(|_| ConfigError::BadIp(text.to_owned()))
}

/// Requested addresses from `CNI_ARGS`, then `args.cni.ips`, then
/// `runtimeConfig.ips`, merged and de-duplicated in that order.
fn requested_ips(
    cni_args_ip: Option<&str>,
    args_ips: Option<&[String]>,
    runtime_ips: Option<&[String]>,
) -> Result<Vec<IpAddr>, ConfigError> {
    let texts = cni_args_ip
        .into_iter()
        .chain(args_ips.unwrap_or_default().iter().map(String::as_str))
        .chain(runtime_ips.unwrap_or_default().iter().map(String::as_str));
    let mut requested: Vec<IpAddr> = Vec::new();
    for text in texts {
        let ip = parse_requested(text)?;
        if !requested.contains(&ip) {
            requested.push(ip);
        }
    }
    Ok(requested)
}

/// Whether the config's version allows several sets of one family (≥ 0.3.0).
fn allows_many_per_family(cni_version: &str) -> bool {
    parse_semver(cni_version).is_ok_and(|v| v >= CniVersion::V0_3_0.triple())
}

/// The data directory, refusing paths that could escape the store.
fn data_dir(configured: Option<&str>) -> Result<PathBuf, ConfigError> {
    let text = match configured {
        None | Some("") => return Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(text) => text,
    };
    let path = PathBuf::from(text);
    if text.contains('\0') || path.components().any(|c| c == Component::ParentDir) {
        return Err(ConfigError::BadDataDir(text.to_owned()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests;
