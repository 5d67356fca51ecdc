//! The spec's error object: a well-known code, a short message and details.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An error code from the CNI spec (or libcni's additions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid or missing environment variables.
    InvalidEnvironment,
    /// 5: I/O failure.
    Io,
    /// 6: failed to decode content.
    Decoding,
    /// 7: invalid network configuration.
    InvalidNetworkConfig,
    /// 8: libcni's invalid-netns code.
    InvalidNetns,
    /// 11: try again later.
    TryAgainLater,
    /// 50: STATUS, the plugin cannot service ADD.
    PluginNotAvailable,
    /// 51: STATUS, not available and existing attachments may be degraded.
    PluginNotAvailableLimitedConnectivity,
    /// 999: libcni's catch-all for unstructured plugin errors.
    Internal,
    /// Any other code, e.g. plugin-specific 100+ codes from a delegate.
    Other(u32),
}

impl ErrorCode {
    /// The numeric code.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decoding => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::InvalidNetns => 8,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::PluginNotAvailableLimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Other(code) => code,
        }
    }

    /// The code for a number, named where the spec names it.
    pub fn from_u32(code: u32) -> ErrorCode {
        match code {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decoding,
            7 => ErrorCode::InvalidNetworkConfig,
            8 => ErrorCode::InvalidNetns,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::PluginNotAvailable,
            51 => ErrorCode::PluginNotAvailableLimitedConnectivity,
            999 => ErrorCode::Internal,
            other => ErrorCode::Other(other),
        }
    }
}

/// A CNI error as a plugin reports it on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The error code.
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// Longer details; left out of the JSON when empty.
    pub details: String,
}

impl CniError {
    /// An error with a code and message and no details.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// A code-999 error carrying `err`'s message, as libcni reports any
    /// error that is not a structured CNI error.
    pub fn internal(err: impl fmt::Display) -> CniError {
        CniError::new(ErrorCode::Internal, err.to_string())
    }

    /// Code 7, invalid network configuration.
    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidNetworkConfig, msg)
    }

    /// The JSON document printed on stdout: `cniVersion`, `code`, `msg` and
    /// `details` (left out when empty), indented as Go does.
    pub fn to_json(&self, cni_version: &str) -> Vec<u8> {
        let wire = WireError {
            cni_version: cni_version.to_owned(),
            code: self.code.as_u32(),
            msg: self.msg.clone(),
            details: self.details.clone(),
        };
        // Serializing plain strings and integers cannot fail.
        crate::json::to_go_pretty(&wire).unwrap_or_default()
    }

    /// Parses an error object printed by another plugin, keeping its code.
    ///
    /// # Errors
    /// The JSON error when `bytes` is not an error object.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<CniError> {
        let wire: WireError = serde_json::from_slice(bytes)?;
        Ok(CniError {
            code: ErrorCode::from_u32(wire.code),
            msg: wire.msg,
            details: wire.details,
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

/// An I/O error as Go prints a syscall error, so messages match the
/// reference plugins': the errno text in lower case without Rust's
/// ` (os error N)` suffix (`open /x: no such file or directory`).
pub fn go_errno_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The error object as it is serialized.
#[derive(Serialize, Deserialize)]
struct WireError {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_go() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(go_errno_text(&err), "no such file or directory");
        assert_eq!(
            go_errno_text(&std::io::Error::from_raw_os_error(95)),
            "operation not supported"
        );
        assert_eq!(go_errno_text(&std::io::Error::other("Custom")), "custom");
    }

    #[test]
    fn codes_round_trip() {
        for code in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 100, 120, 999] {
            assert_eq!(ErrorCode::from_u32(code).as_u32(), code);
        }
    }

    #[test]
    fn json_has_spec_keys_in_order_and_omits_empty_details() {
        let err = CniError::new(
            ErrorCode::InvalidEnvironment,
            "required env variables [CNI_PATH] missing",
        );
        assert_eq!(
            String::from_utf8(err.to_json("1.0.0")).unwrap(),
            "{\n    \"cniVersion\": \"1.0.0\",\n    \"code\": 4,\n    \"msg\": \"required env variables [CNI_PATH] missing\"\n}"
        );
        let err = CniError::new(ErrorCode::InvalidEnvironment, "interface name is too long")
            .with_details("interface name should be less than 16 characters");
        let text = String::from_utf8(err.to_json("0.3.1")).unwrap();
        assert!(
            text.ends_with("\"details\": \"interface name should be less than 16 characters\"\n}")
        );
    }

    #[test]
    fn parses_delegate_errors_with_or_without_version() {
        let err =
            CniError::from_json(b"{\"code\": 7, \"msg\": \"m\", \"details\": \"d\"}").unwrap();
        assert_eq!(
            err,
            CniError::new(ErrorCode::InvalidNetworkConfig, "m").with_details("d")
        );
        let err =
            CniError::from_json(b"{\"cniVersion\":\"1.1.0\",\"code\": 123,\"msg\":\"x\"}").unwrap();
        assert_eq!(err.code, ErrorCode::Other(123));
        assert!(CniError::from_json(b"not json").is_err());
    }
}
