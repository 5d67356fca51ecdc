//! Results for every spec version and the conversions between them. This is
//! the only module that knows how the versions' result shapes differ:
//! plugins build a [`v1::Result`] and [`encode`] prints it in the requested
//! version; [`decode`] reads a result (a `prevResult` or a delegate's
//! output) in whatever version it came and upgrades it.

pub mod v020;
pub mod v04;
pub mod v1;

pub use v1::{Dns, Interface, IpConfig, Result, Route};

use crate::error::{CniError, ErrorCode};
use crate::json;
use crate::version::CniVersion;

/// Why a result could not be converted or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// A 0.1.0/0.2.0 result needs at least one address.
    #[error("cannot convert: no valid IP addresses")]
    NoIpAddresses,
    /// The result names a version this implementation does not know.
    #[error("unsupported CNI result version \"{0}\"")]
    UnknownVersion(String),
    /// The result does not have the shape its version requires.
    #[error("failed to decode {version} result: {reason}")]
    Malformed {
        /// The version whose shape was expected.
        version: String,
        /// What did not fit.
        reason: String,
    },
}

impl From<ConversionError> for CniError {
    fn from(err: ConversionError) -> CniError {
        let code = match err {
            ConversionError::NoIpAddresses | ConversionError::UnknownVersion(_) => {
                ErrorCode::IncompatibleVersion
            }
            ConversionError::Malformed { .. } => ErrorCode::Decoding,
        };
        CniError::new(code, err.to_string())
    }
}

/// Prints `result` converted to `version`, byte-compatible with the
/// reference plugins: Go's field order, 4-space indentation, no trailing
/// newline. Fields a version lacks are dropped.
///
/// # Errors
/// [`ConversionError::NoIpAddresses`] for 0.1.0/0.2.0 when the result has no
/// address.
pub fn encode(
    result: &Result,
    version: CniVersion,
) -> std::result::Result<Vec<u8>, ConversionError> {
    let name = version.as_str();
    let printed = match version {
        CniVersion::V0_1_0 | CniVersion::V0_2_0 => {
            let converted = v020::Result::from_current(result)?;
            json::to_go_pretty(&v020::Wire {
                cni_version: name,
                result: &converted,
            })
        }
        CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => {
            let converted = v04::Result::from_current(result);
            json::to_go_pretty(&v04::Wire {
                cni_version: name,
                result: &converted,
            })
        }
        CniVersion::V1_0_0 => {
            let converted = without_v1_1_fields(result);
            json::to_go_pretty(&v1::Wire {
                cni_version: name,
                result: &converted,
            })
        }
        CniVersion::V1_1_0 => json::to_go_pretty(&v1::Wire {
            cni_version: name,
            result,
        }),
    };
    // Serializing these plain structs into a Vec cannot fail.
    Ok(printed.unwrap_or_default())
}

/// Reads a result in any supported version and upgrades it. The result's own
/// `cniVersion` decides its shape; when it has none, `fallback` does (libcni
/// inserts the config's version into a delegate's result the same way).
///
/// # Errors
/// [`ConversionError`] for an unknown version or a document that does not
/// fit its version's shape.
pub fn decode(
    value: &serde_json::Value,
    fallback: CniVersion,
) -> std::result::Result<(Result, CniVersion), ConversionError> {
    let declared = value
        .get("cniVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let version = if declared.is_empty() {
        fallback
    } else {
        CniVersion::from_exact(declared)
            .ok_or_else(|| ConversionError::UnknownVersion(declared.to_owned()))?
    };
    let malformed = |err: serde_json::Error| ConversionError::Malformed {
        version: version.to_string(),
        reason: err.to_string(),
    };
    let current = match version {
        CniVersion::V0_1_0 | CniVersion::V0_2_0 => v020::Result::deserialize_from(value)
            .map_err(malformed)?
            .to_current(),
        CniVersion::V0_3_0 | CniVersion::V0_3_1 | CniVersion::V0_4_0 => {
            v04::Result::deserialize_from(value)
                .map_err(malformed)?
                .to_current()
        }
        CniVersion::V1_0_0 | CniVersion::V1_1_0 => {
            Result::deserialize_from(value).map_err(malformed)?
        }
    };
    Ok((current, version))
}

/// Reads a result from raw bytes; see [`decode`].
///
/// # Errors
/// [`ConversionError::Malformed`] when `bytes` is not JSON, else as [`decode`].
pub fn decode_bytes(
    bytes: &[u8],
    fallback: CniVersion,
) -> std::result::Result<(Result, CniVersion), ConversionError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| ConversionError::Malformed {
            version: fallback.to_string(),
            reason: err.to_string(),
        })?;
    decode(&value, fallback)
}

/// The result without the interface and route fields that 1.1.0 added.
fn without_v1_1_fields(result: &Result) -> Result {
    Result {
        interfaces: result
            .interfaces
            .iter()
            .map(|i| Interface {
                name: i.name.clone(),
                mac: i.mac.clone(),
                sandbox: i.sandbox.clone(),
                ..Interface::default()
            })
            .collect(),
        ips: result.ips.clone(),
        routes: result
            .routes
            .iter()
            .map(Route::without_v1_1_fields)
            .collect(),
        dns: result.dns.clone(),
    }
}

/// Deserializing a result shape from an already-parsed JSON value.
trait DeserializeFrom: Sized {
    fn deserialize_from(value: &serde_json::Value) -> serde_json::Result<Self>;
}

impl<T: serde::de::DeserializeOwned> DeserializeFrom for T {
    fn deserialize_from(value: &serde_json::Value) -> serde_json::Result<Self> {
        T::deserialize(value)
    }
}

#[cfg(test)]
mod tests;
