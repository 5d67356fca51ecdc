//! The `loopback` CNI plugin: brings `lo` up inside the container's network
//! namespace on ADD, down on DEL, and checks that it is up on CHECK.

mod lo;

use cni_types::CniError;
use cni_types::netns::{Netns, NetnsError};
use cni_types::result::{Interface, IpConfig, Result as CniResult};
use cni_types::skel::{Plugin, Request};
use ipnetwork::IpNetwork;

/// What `loopback` prints when run without `CNI_COMMAND`.
pub const ABOUT: &str = concat!(
    "CNI loopback plugin v",
    env!("CARGO_PKG_VERSION"),
    " (cni-rs)"
);

/// Why a loopback call failed.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// The namespace could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error("{action}: {reason}")]
    Netlink {
        /// What was being done.
        action: &'static str,
        /// The kernel's or the library's answer.
        reason: String,
    },
    /// `lo` carries an address that is not a loopback address.
    #[error("loopback interface found with non-loopback address \"{0}\"")]
    NonLoopbackAddress(std::net::IpAddr),
    /// CHECK found `lo` down.
    #[error("loopback interface is down")]
    Down,
}

impl From<LoopbackError> for CniError {
    fn from(err: LoopbackError) -> CniError {
        // The reference reports all of these as unstructured (code 999) errors.
        CniError::internal(err)
    }
}

/// The loopback plugin.
#[derive(Debug, Default)]
pub struct Loopback;

impl Plugin for Loopback {
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError> {
        let netns = Netns::open(&req.env.netns).map_err(LoopbackError::from)?;
        let addresses = netns.run(lo::bring_up).map_err(LoopbackError::from)??;
        if let Some(foreign) = addresses.iter().find(|net| !net.ip().is_loopback()) {
            return Err(LoopbackError::NonLoopbackAddress(foreign.ip()).into());
        }
        if let Some(previous) = req.prev_result()? {
            return Ok(previous);
        }
        Ok(result_for(&req.env.netns, &addresses))
    }

    fn del(&self, req: &Request<'_>) -> Result<(), CniError> {
        if req.env.netns.is_empty() {
            return Ok(());
        }
        let netns = match Netns::open(&req.env.netns) {
            Ok(netns) => netns,
            Err(err) if err.is_not_found() => return Ok(()),
            Err(err) => return Err(LoopbackError::from(err).into()),
        };
        netns.run(lo::set_down).map_err(LoopbackError::from)??;
        Ok(())
    }

    fn check(&self, req: &Request<'_>) -> Result<(), CniError> {
        let netns = Netns::open(&req.env.netns).map_err(LoopbackError::from)?;
        if netns.run(lo::is_up).map_err(LoopbackError::from)?? {
            Ok(())
        } else {
            Err(LoopbackError::Down.into())
        }
    }
}

/// The ADD result: `lo` in the sandbox, with its first IPv4 and first IPv6
/// address.
fn result_for(sandbox: &str, addresses: &[IpNetwork]) -> CniResult {
    let first = |v4: bool| addresses.iter().find(|net| net.is_ipv4() == v4);
    CniResult {
        interfaces: vec![Interface {
            name: "lo".to_owned(),
            mac: "00:00:00:00:00:00".to_owned(),
            sandbox: sandbox.to_owned(),
            ..Interface::default()
        }],
        ips: [first(true), first(false)]
            .into_iter()
            .flatten()
            .map(|address| IpConfig {
                interface: Some(0),
                address: *address,
                gateway: None,
            })
            .collect(),
        ..CniResult::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_types::CniVersion;
    use cni_types::result::encode;

    #[test]
    fn result_matches_the_reference_at_1_0_0() {
        let addresses: Vec<IpNetwork> = vec![
            "127.0.0.1/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
            "127.0.0.2/8".parse().unwrap(),
        ];
        let printed = encode(
            &result_for("/run/netns/hns-lo", &addresses),
            CniVersion::V1_0_0,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(printed).unwrap(),
            include_str!("../../../cni-types/tests/fixtures/reference-loopback-ADD-1.0.0.json")
        );
    }

    #[test]
    fn ipv6_disabled_gives_only_ipv4() {
        let result = result_for("/x", &["127.0.0.1/8".parse().unwrap()]);
        assert_eq!(result.ips.len(), 1);
        let printed = encode(&result, CniVersion::V0_2_0).unwrap();
        assert_eq!(
            String::from_utf8(printed).unwrap(),
            "{\n    \"cniVersion\": \"0.2.0\",\n    \"ip4\": {\n        \"ip\": \"127.0.0.1/8\"\n    },\n    \"dns\": {}\n}"
        );
    }

    #[test]
    fn errors_are_code_999_with_reference_messages() {
        let err: CniError = LoopbackError::NonLoopbackAddress("10.0.0.1".parse().unwrap()).into();
        assert_eq!(err.code.as_u32(), 999);
        assert_eq!(
            err.msg,
            "loopback interface found with non-loopback address \"10.0.0.1\""
        );
        assert_eq!(
            CniError::from(LoopbackError::Down).msg,
            "loopback interface is down"
        );
    }
}
