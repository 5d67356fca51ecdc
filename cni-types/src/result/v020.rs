//! The 0.1.0/0.2.0 result shape: one `ip4` and one `ip6` block.

use super::ConversionError;
use super::v1::{Dns, IpConfig, Result as Current, Route};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A 0.1.0/0.2.0 result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Result {
    /// The IPv4 configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip4: Option<IpBlock>,
    /// The IPv6 configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<IpBlock>,
    /// DNS settings, always printed.
    #[serde(default)]
    pub dns: Dns,
}

/// One family's address, gateway and routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpBlock {
    /// Address with prefix.
    pub ip: IpNetwork,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Routes of this family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteBlock>,
}

/// A route inside an `ip4`/`ip6` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBlock {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

impl Result {
    /// Converts the current result down: the first IPv4 and the first IPv6
    /// address survive, routes go to the block of their family (and are
    /// dropped when that family has no address), interfaces are dropped.
    ///
    /// # Errors
    /// [`ConversionError::NoIpAddresses`] when the result has no address.
    pub fn from_current(current: &Current) -> std::result::Result<Result, ConversionError> {
        let block = |v4: bool| {
            current
                .ips
                .iter()
                .find(|ip| ip.address.is_ipv4() == v4)
                .map(|ip| IpBlock {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: current
                        .routes
                        .iter()
                        .filter(|r| r.dst.is_ipv4() == v4)
                        .map(|r| RouteBlock {
                            dst: r.dst,
                            gw: r.gw,
                        })
                        .collect(),
                })
        };
        let converted = Result {
            ip4: block(true),
            ip6: block(false),
            dns: current.dns.clone(),
        };
        if converted.ip4.is_none() && converted.ip6.is_none() {
            return Err(ConversionError::NoIpAddresses);
        }
        Ok(converted)
    }

    /// Converts up: `ip4` then `ip6` become `ips` (no interface index), and
    /// their routes move to the top-level `routes`.
    pub fn to_current(&self) -> Current {
        let blocks = [&self.ip4, &self.ip6];
        let blocks = blocks.iter().filter_map(|b| b.as_ref());
        Current {
            interfaces: Vec::new(),
            ips: blocks
                .clone()
                .map(|b| IpConfig {
                    interface: None,
                    address: b.ip,
                    gateway: b.gateway,
                })
                .collect(),
            routes: blocks
                .flat_map(|b| b.routes.iter().map(|r| Route::new(r.dst, r.gw)))
                .collect(),
            dns: self.dns.clone(),
        }
    }
}

/// The document printed for 0.1.0/0.2.0.
#[derive(Serialize)]
pub(crate) struct Wire<'a> {
    #[serde(rename = "cniVersion")]
    pub cni_version: &'a str,
    #[serde(flatten)]
    pub result: &'a Result,
}
