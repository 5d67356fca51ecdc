//! The 0.3.0/0.3.1/0.4.0 result shape: like 1.0.0 plus `ips[].version`.

use super::v1::{Dns, Interface, IpConfig, Result as Current, Route};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A 0.3.x/0.4.0 result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Result {
    /// Interfaces (`name`, `mac`, `sandbox`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface04>,
    /// Addresses, each with its family as `version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig04>,
    /// Routes (`dst`, `gw`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route04>,
    /// DNS settings, always printed.
    #[serde(default)]
    pub dns: Dns,
}

/// An interface as 0.3.x/0.4.0 knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface04 {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Netns path for container-side interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address with its family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig04 {
    /// `"4"` or `"6"`.
    #[serde(default)]
    pub version: String,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Address with prefix.
    pub address: IpNetwork,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A route as 0.x knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route04 {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

impl Result {
    /// Converts the current result down: each IP gets its family as
    /// `version`, and 1.1.0-only fields are dropped.
    pub fn from_current(current: &Current) -> Result {
        Result {
            interfaces: current
                .interfaces
                .iter()
                .map(|i| Interface04 {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                })
                .collect(),
            ips: current
                .ips
                .iter()
                .map(|ip| IpConfig04 {
                    version: if ip.address.is_ipv4() { "4" } else { "6" }.to_owned(),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: current
                .routes
                .iter()
                .map(|r| Route04 {
                    dst: r.dst,
                    gw: r.gw,
                })
                .collect(),
            dns: current.dns.clone(),
        }
    }

    /// Converts up to the current result: `version` is dropped.
    pub fn to_current(&self) -> Current {
        Current {
            interfaces: self
                .interfaces
                .iter()
                .map(|i| Interface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                    ..Interface::default()
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| IpConfig {
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| Route::new(r.dst, r.gw))
                .collect(),
            dns: self.dns.clone(),
        }
    }
}

/// The document printed for 0.3.x/0.4.0.
#[derive(Serialize)]
pub(crate) struct Wire<'a> {
    #[serde(rename = "cniVersion")]
    pub cni_version: &'a str,
    #[serde(flatten)]
    pub result: &'a Result,
}
