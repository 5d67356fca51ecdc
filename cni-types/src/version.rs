//! CNI spec versions: the exact strings a plugin accepts, and the loose
//! `major.minor.patch` parsing libcni uses for ordering checks.

use std::fmt;

/// A CNI spec version this implementation supports.
///
/// The order of the variants is the order of the spec's history, so `<`
/// compares versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.1.0: `ip4`/`ip6` results.
    V0_1_0,
    /// 0.2.0: adds VERSION.
    V0_2_0,
    /// 0.3.0: `interfaces`/`ips`/`routes` results.
    V0_3_0,
    /// 0.3.1: typo fixes only.
    V0_3_1,
    /// 0.4.0: adds CHECK.
    V0_4_0,
    /// 1.0.0: drops `ips[].version`.
    V1_0_0,
    /// 1.1.0: adds GC and STATUS.
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const ALL: [CniVersion; 7] = [
        CniVersion::V0_1_0,
        CniVersion::V0_2_0,
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest supported version, the one VERSION reports as its own.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The version string as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Looks up a version by exact string, as libcni's version check does:
    /// `"0.3"` or `"1.0"` are not supported versions. An empty string means
    /// 0.1.0, as the spec's first version had no `cniVersion` key.
    pub fn from_exact(text: &str) -> Option<CniVersion> {
        if text.is_empty() {
            return Some(CniVersion::V0_1_0);
        }
        CniVersion::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// The numeric triple of this version.
    pub fn triple(self) -> SemVer {
        // The strings above are well formed; the fallback is unreachable.
        parse_semver(self.as_str()).unwrap_or(SemVer(0, 1, 0))
    }

    /// The quoted list libcni prints in version errors:
    /// `["0.1.0" "0.2.0" ...]`.
    pub fn supported_list_quoted() -> String {
        let quoted: Vec<String> = CniVersion::ALL
            .iter()
            .map(|v| format!("\"{}\"", v.as_str()))
            .collect();
        format!("[{}]", quoted.join(" "))
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `major.minor.patch` triple, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SemVer(pub u64, pub u64, pub u64);

/// Why a version string could not be parsed; the messages are libcni's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionParseError {
    /// More than three dot-separated parts.
    #[error("invalid version \"{0}\": too many parts")]
    TooManyParts(String),
    /// A part that is not a decimal number.
    #[error(
        "failed to convert {part} version part \"{text}\": strconv.Atoi: parsing \"{text}\": invalid syntax"
    )]
    BadPart {
        /// `major`, `minor` or `micro`.
        part: &'static str,
        /// The offending text.
        text: String,
    },
}

/// Parses a version the way libcni's `ParseVersion` does: an empty string is
/// 0.1.0, missing minor or patch parts are 0.
///
/// # Errors
/// [`VersionParseError`] for more than three parts or a non-numeric part.
pub fn parse_semver(text: &str) -> Result<SemVer, VersionParseError> {
    if text.is_empty() {
        return Ok(SemVer(0, 1, 0));
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 3 {
        return Err(VersionParseError::TooManyParts(text.to_owned()));
    }
    let names = ["major", "minor", "micro"];
    let mut numbers = [0u64; 3];
    for (index, part) in parts.iter().enumerate() {
        numbers[index] = parse_decimal(part).ok_or_else(|| VersionParseError::BadPart {
            part: names[index],
            text: (*part).to_owned(),
        })?;
    }
    Ok(SemVer(numbers[0], numbers[1], numbers[2]))
}

/// Parses like Go's `strconv.Atoi` for non-negative values: an optional `+`
/// and at least one ASCII digit.
fn parse_decimal(text: &str) -> Option<u64> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_lookup_accepts_only_listed_strings() {
        assert_eq!(CniVersion::from_exact("0.3.1"), Some(CniVersion::V0_3_1));
        assert_eq!(CniVersion::from_exact("1.1.0"), Some(CniVersion::V1_1_0));
        assert_eq!(CniVersion::from_exact(""), Some(CniVersion::V0_1_0));
        assert_eq!(CniVersion::from_exact("0.3"), None);
        assert_eq!(CniVersion::from_exact("1.0"), None);
        assert_eq!(CniVersion::from_exact("2.0.0"), None);
    }

    #[test]
    fn versions_are_ordered_by_history() {
        assert!(CniVersion::V0_2_0 < CniVersion::V0_3_0);
        assert!(CniVersion::V1_0_0 < CniVersion::V1_1_0);
        let triples: Vec<SemVer> = CniVersion::ALL.iter().map(|v| v.triple()).collect();
        assert!(triples.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn semver_parsing_matches_libcni() {
        assert_eq!(parse_semver(""), Ok(SemVer(0, 1, 0)));
        assert_eq!(parse_semver("0.4"), Ok(SemVer(0, 4, 0)));
        assert_eq!(parse_semver("1"), Ok(SemVer(1, 0, 0)));
        assert_eq!(
            parse_semver("x.1.0").unwrap_err().to_string(),
            "failed to convert major version part \"x\": strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse_semver("0.y").unwrap_err().to_string(),
            "failed to convert minor version part \"y\": strconv.Atoi: parsing \"y\": invalid syntax"
        );
        assert_eq!(
            parse_semver("1.2.3.4").unwrap_err().to_string(),
            "invalid version \"1.2.3.4\": too many parts"
        );
    }

    #[test]
    fn quoted_list_is_go_percent_q() {
        assert_eq!(
            CniVersion::supported_list_quoted(),
            "[\"0.1.0\" \"0.2.0\" \"0.3.0\" \"0.3.1\" \"0.4.0\" \"1.0.0\" \"1.1.0\"]"
        );
    }
}
