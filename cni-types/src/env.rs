//! The `CNI_*` environment of one call, built from any lookup so the
//! dispatcher is testable without touching the process environment.

use std::ffi::OsString;
use std::path::PathBuf;

/// The CNI variables of one call, plus the whole environment (which a
/// delegated IPAM plugin inherits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// `CNI_PATH`, unsplit.
    pub path: String,
    /// Every variable of the process, in order.
    pub vars: Vec<(OsString, OsString)>,
}

impl CniEnv {
    /// Builds the environment from `NAME`/value pairs, e.g.
    /// `std::env::vars_os()`. CNI variables that are not valid UTF-8 are
    /// read lossily.
    pub fn from_vars<I, K, V>(vars: I) -> CniEnv
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut env = CniEnv::default();
        for (key, value) in vars {
            let (key, value): (OsString, OsString) = (key.into(), value.into());
            let text = value.to_string_lossy().into_owned();
            match key.to_str() {
                Some("CNI_COMMAND") => env.command = text,
                Some("CNI_CONTAINERID") => env.container_id = text,
                Some("CNI_NETNS") => env.netns = text,
                Some("CNI_IFNAME") => env.ifname = text,
                Some("CNI_ARGS") => env.args = text,
                Some("CNI_PATH") => env.path = text,
                _ => {}
            }
            env.vars.push((key, value));
        }
        env
    }

    /// The directories of `CNI_PATH`, in order, empty entries skipped.
    pub fn path_dirs(&self) -> Vec<PathBuf> {
        std::env::split_paths(&self.path)
            .filter(|dir| !dir.as_os_str().is_empty())
            .collect()
    }

    /// The value of any variable.
    pub fn var(&self, name: &str) -> Option<&OsString> {
        self.vars
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_cni_variables_and_keeps_everything() {
        let env = CniEnv::from_vars([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1"),
            ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
            ("HOME", "/root"),
        ]);
        assert_eq!(env.command, "ADD");
        assert_eq!(env.container_id, "abc");
        assert_eq!(env.netns, "/run/netns/x");
        assert_eq!(env.ifname, "eth0");
        assert_eq!(env.args, "IgnoreUnknown=1");
        assert_eq!(
            env.path_dirs(),
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(env.var("HOME"), Some(&OsString::from("/root")));
        assert_eq!(env.vars.len(), 7);
    }
}
