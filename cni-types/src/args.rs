//! `CNI_ARGS`: `K=V;K=V` pairs, parsed with libcni's rules. Unknown keys are
//! an error unless `IgnoreUnknown` is true; a key given twice keeps its last
//! value.

use crate::error::{CniError, ErrorCode};

/// Why `CNI_ARGS` was rejected; the messages are libcni's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A piece that is not exactly `K=V`.
    #[error("ARGS: invalid pair \"{0}\"")]
    InvalidPair(String),
    /// A known key whose value does not parse.
    #[error("ARGS: error parsing value of pair \"{pair}\": {reason}")]
    BadValue {
        /// The `K=V` text.
        pair: String,
        /// Why the value is wrong.
        reason: String,
    },
    /// Keys this plugin does not know, without `IgnoreUnknown`.
    #[error("ARGS: unknown args [{}]", .0.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(" "))]
    Unknown(Vec<String>),
}

impl From<ArgsError> for CniError {
    fn from(err: ArgsError) -> CniError {
        CniError::new(ErrorCode::InvalidEnvironment, err.to_string())
    }
}

/// Parsed `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Splits `text` into pairs. An empty string has none.
    ///
    /// # Errors
    /// [`ArgsError::InvalidPair`] for a piece without exactly one `=`,
    /// including the empty piece of a trailing `;`.
    pub fn parse(text: &str) -> Result<CniArgs, ArgsError> {
        if text.is_empty() {
            return Ok(CniArgs::default());
        }
        let pairs = text
            .split(';')
            .map(|piece| {
                let mut parts = piece.split('=');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(key), Some(value), None) => Ok((key.to_owned(), value.to_owned())),
                    _ => Err(ArgsError::InvalidPair(piece.to_owned())),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(CniArgs { pairs })
    }

    /// Parses `text` and checks every key against `known` (case-sensitive),
    /// the way a plugin's typed args struct does. `IgnoreUnknown` is always
    /// known, and its value must be a boolean.
    ///
    /// # Errors
    /// As [`CniArgs::parse`], plus [`ArgsError::BadValue`] for a bad
    /// `IgnoreUnknown` and [`ArgsError::Unknown`] for unknown keys when
    /// `IgnoreUnknown` is not true.
    pub fn parse_known(text: &str, known: &[&str]) -> Result<CniArgs, ArgsError> {
        let args = CniArgs::parse(text)?;
        let ignore_unknown = match args.get("IgnoreUnknown") {
            Some(value) => parse_bool(value).map_err(|reason| ArgsError::BadValue {
                pair: format!("IgnoreUnknown={value}"),
                reason,
            })?,
            None => false,
        };
        let unknown: Vec<String> = args
            .pairs
            .iter()
            .filter(|(key, _)| key != "IgnoreUnknown" && !known.contains(&key.as_str()))
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        if !unknown.is_empty() && !ignore_unknown {
            return Err(ArgsError::Unknown(unknown));
        }
        Ok(args)
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// libcni's `UnmarshallableBool`: `1`/`true` and `0`/`false`, any case.
fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => Err(format!("boolean unmarshal error: invalid input {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_args() {
        let args = CniArgs::parse_known(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns;IP=10.85.0.9",
            &["IP"],
        )
        .unwrap();
        assert_eq!(args.get("IP"), Some("10.85.0.9"));
        assert_eq!(args.get("K8S_POD_NAME"), Some("coredns"));
        assert_eq!(args.pairs().len(), 4);
    }

    #[test]
    fn empty_means_nothing() {
        assert_eq!(
            CniArgs::parse_known("", &["IP"]).unwrap(),
            CniArgs::default()
        );
    }

    #[test]
    fn invalid_pairs_fail_whatever_ignore_unknown_says() {
        for (text, piece) in [
            ("IgnoreUnknown=1;", ""),
            ("A=1;;B=2", ""),
            ("A=b=c", "A=b=c"),
            ("novalue", "novalue"),
        ] {
            let err = CniArgs::parse_known(text, &[]).unwrap_err();
            assert_eq!(err, ArgsError::InvalidPair(piece.to_owned()), "{text}");
        }
        assert_eq!(
            CniArgs::parse("A=b=c").unwrap_err().to_string(),
            "ARGS: invalid pair \"A=b=c\""
        );
    }

    #[test]
    fn unknown_keys_are_case_sensitive_and_listed() {
        let err = CniArgs::parse_known("ip=10.0.0.1;FOO=bar", &["IP"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ARGS: unknown args [\"ip=10.0.0.1\" \"FOO=bar\"]"
        );
        let err = CniArgs::parse_known("ignoreunknown=1", &[]).unwrap_err();
        assert_eq!(err.to_string(), "ARGS: unknown args [\"ignoreunknown=1\"]");
        assert!(CniArgs::parse_known("FOO=bar;IgnoreUnknown=TRUE", &[]).is_ok());
        assert!(CniArgs::parse_known("IgnoreUnknown=0;FOO=bar", &[]).is_err());
    }

    #[test]
    fn bad_boolean_is_reported_with_the_pair() {
        let err = CniArgs::parse_known("IgnoreUnknown=Yes", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ARGS: error parsing value of pair \"IgnoreUnknown=Yes\": boolean unmarshal error: invalid input yes"
        );
        assert_eq!(CniError::from(err).code, ErrorCode::InvalidEnvironment);
    }

    #[test]
    fn last_value_wins() {
        let args = CniArgs::parse("IP=10.0.0.1;IP=10.0.0.2").unwrap();
        assert_eq!(args.get("IP"), Some("10.0.0.2"));
    }
}
