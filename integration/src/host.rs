//! A network namespace standing for the host: the plugin under test runs
//! inside it, so the bridge, the firewall tables and their rules it makes
//! live there and go with it. Tests that change node-wide state (a table
//! every attachment shares, say) stay out of each other's way and leave the
//! machine's own tables alone.

use std::path::{Path, PathBuf};

use crate::reference::REFERENCE_DIR;
use crate::{Cleanup, PluginCall, TestNetns, cmd, plugin_dir, plugin_path, unique_name};

/// The namespace, and a directory for the scripts that run plugins in it.
#[derive(Debug)]
pub struct PrivateHost {
    /// The namespace.
    pub ns: TestNetns,
    /// Scripts and logs; removed by the clean-up guard.
    pub dir: PathBuf,
}

impl PrivateHost {
    /// A fresh namespace; its script directory is removed by `cleanup`.
    ///
    /// # Panics
    ///
    /// When the directory cannot be created.
    pub fn new(cleanup: &mut Cleanup) -> PrivateHost {
        let dir = std::env::temp_dir().join(unique_name("cni-private-host"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        cleanup.remove_path(&dir);
        let host = PrivateHost {
            ns: TestNetns::new("host"),
            dir,
        };
        // Written once: rewriting a script while another thread execs it
        // fails that exec with ETXTBSY.
        host.wrapper("bridge", "");
        host
    }

    /// Writes a script named `name` that runs `<command> <our bridge> "$@"`
    /// inside the namespace (`command` may be empty, or `strace …`); call it
    /// before any call runs the script.
    ///
    /// # Panics
    ///
    /// When the script cannot be written.
    pub fn wrapper(&self, name: &str, command: &str) -> PathBuf {
        self.script(name, command, &plugin_path("bridge"))
    }

    /// Writes a script named `name` that runs `<command> <binary> "$@"`
    /// inside the namespace.
    ///
    /// # Panics
    ///
    /// When the script cannot be written.
    pub fn script(&self, name: &str, command: &str, binary: &Path) -> PathBuf {
        let path = self.dir.join(name);
        let script = format!(
            "#!/bin/sh\nexec ip netns exec {} {command} {} \"$@\"\n",
            self.ns.name(),
            binary.display()
        );
        std::fs::write(&path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        cmd::run_ok("chmod", &["755", &path.display().to_string()]);
        path
    }

    /// A call of the reference `bridge` (Debian's, in [`REFERENCE_DIR`])
    /// inside the namespace, with the reference plugins as `CNI_PATH`.
    pub fn reference_bridge(&self) -> PluginCall {
        let binary = Path::new(REFERENCE_DIR).join("bridge");
        PluginCall::with_binary(self.script("reference-bridge", "", &binary))
            .cni_path(REFERENCE_DIR)
    }

    /// A call of our `bridge` inside the namespace, with our plugins as
    /// `CNI_PATH`.
    pub fn bridge(&self) -> PluginCall {
        PluginCall::with_binary(self.dir.join("bridge")).cni_path(plugin_dir())
    }

    /// `nft <args>` inside the namespace; its stdout, whatever its status.
    pub fn nft(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.ns.name(), "nft"];
        all.extend_from_slice(args);
        let out = cmd::run("ip", &all);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
