//! Debian's reference plugins, run side by side with ours.

use std::path::Path;

use crate::PluginCall;

/// Where Debian's `containernetworking-plugins` installs the reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Which implementation of a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// The built plugin of this workspace, with `CNI_PATH` = our plugin directory.
    Ours,
    /// The plugin in [`REFERENCE_DIR`], with `CNI_PATH` = [`REFERENCE_DIR`] (so
    /// it delegates to the reference `host-local`).
    Reference,
}

impl Impl {
    /// A call of `plugin` (`bridge`, `host-local`, `loopback`) of this
    /// implementation, with only `CNI_PATH` and `PATH` set.
    ///
    /// # Panics
    ///
    /// When the binary is missing; for [`Impl::Reference`] also when the
    /// reference `host-local` it delegates IPAM to is.
    pub fn call(self, plugin: &str) -> PluginCall {
        match self {
            Impl::Ours => PluginCall::new(plugin),
            Impl::Reference => {
                let dir = Path::new(REFERENCE_DIR);
                assert!(
                    dir.join(plugin).is_file() && dir.join("host-local").is_file(),
                    "the reference plugins are missing from {REFERENCE_DIR}: \
                     apt-get install containernetworking-plugins"
                );
                PluginCall::with_binary(dir.join(plugin)).cni_path(REFERENCE_DIR)
            }
        }
    }
}
