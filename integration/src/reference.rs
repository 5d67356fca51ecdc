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

    /// A `bridge` call of this implementation for the attachment
    /// `container_id`/`eth0` in the namespace at `netns`, as a runtime makes it.
    ///
    /// # Panics
    ///
    /// As [`Impl::call`].
    pub fn bridge_call(
        self,
        command: &str,
        container_id: &str,
        netns: impl AsRef<Path>,
        conf: &serde_json::Value,
    ) -> PluginCall {
        self.call("bridge")
            .command(command)
            .container_id(container_id)
            .netns(netns)
            .ifname("eth0")
            .config(conf)
    }
}
