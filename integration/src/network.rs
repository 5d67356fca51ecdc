//! A test's private bridge network and the host-local lease files it leaves.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::names::{unique_ifname, unique_name};
use crate::{Cleanup, kernel};

/// The settings of CRI-O's `100-crio-bridge.conf` besides its names and
/// addresses: the gateway on the bridge, masquerade and hairpin.
pub fn crio_settings() -> Value {
    json!({"isGateway": true, "ipMasq": true, "hairpinMode": true})
}

/// One test's private network: a bridge name, a network name, a subnet index
/// and a host-local `dataDir`, all unique, so tests run in parallel.
///
/// The subnets and configs are each test file's own; files wrap this in
/// their `Net` and derive them from [`TestNetwork::k`].
#[derive(Debug)]
pub struct TestNetwork {
    /// The bridge (`unique_ifname(bridge_prefix)`).
    pub bridge: String,
    /// The network name (`unique_name(tag)`), also the lease directory's name.
    pub name: String,
    /// Picks the test's subnets; unique per network within a test file.
    pub k: u8,
    /// The host-local `dataDir`, under the temporary directory.
    pub data_dir: PathBuf,
}

impl TestNetwork {
    /// A fresh network with its own `dataDir` (`cni-<bridge_prefix>-data-…`);
    /// the bridge and the `dataDir` are removed by `cleanup`.
    pub fn new(bridge_prefix: &str, tag: &str, k: u8, cleanup: &mut Cleanup) -> TestNetwork {
        let data_dir = std::env::temp_dir().join(unique_name(&format!("cni-{bridge_prefix}-data")));
        let net = TestNetwork::sharing_data_dir(bridge_prefix, tag, k, data_dir);
        cleanup.link_del(None, &net.bridge);
        cleanup.remove_path(&net.data_dir);
        net
    }

    /// A network whose leases live in `data_dir`; nothing is registered for
    /// clean-up (the caller owns the directory and removes the bridge).
    pub fn sharing_data_dir(
        bridge_prefix: &str,
        tag: &str,
        k: u8,
        data_dir: PathBuf,
    ) -> TestNetwork {
        TestNetwork {
            bridge: unique_ifname(bridge_prefix),
            name: unique_name(tag),
            k,
            data_dir,
        }
    }

    /// A `bridge` config of this network at `version`, leasing with
    /// host-local from `subnets` (one range set each) in the `dataDir`, with
    /// the top-level keys of each of `settings` set over it in order (a
    /// `null` value removes the key).
    pub fn bridge_config(&self, version: &str, subnets: &[String], settings: &[Value]) -> Value {
        let ranges: Vec<Value> = subnets.iter().map(|s| json!([{"subnet": s}])).collect();
        let mut conf = json!({
            "cniVersion": version,
            "name": self.name,
            "type": "bridge",
            "bridge": self.bridge,
            "ipam": {"type": "host-local", "dataDir": self.data_dir, "ranges": ranges},
        });
        if let Some(object) = conf.as_object_mut() {
            for (key, value) in settings.iter().filter_map(Value::as_object).flatten() {
                if value.is_null() {
                    object.remove(key);
                } else {
                    object.insert(key.clone(), value.clone());
                }
            }
        }
        conf
    }

    /// The network's host-local directory, `<dataDir>/<name>`.
    pub fn lease_dir(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }

    /// Every file of the lease directory with its bytes; empty when the
    /// directory does not exist.
    ///
    /// # Panics
    ///
    /// When the directory or one of its files cannot be read.
    pub fn store_bytes(&self) -> BTreeMap<String, Vec<u8>> {
        let dir = self.lease_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return BTreeMap::new();
        };
        entries
            .map(|e| {
                e.unwrap_or_else(|e| panic!("cannot read an entry of {}: {e}", dir.display()))
                    .path()
            })
            .map(|path| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let content = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                (name, content)
            })
            .collect()
    }

    /// [`TestNetwork::store_bytes`] as text.
    ///
    /// # Panics
    ///
    /// Also when a file is not UTF-8.
    pub fn store(&self) -> BTreeMap<String, String> {
        self.store_bytes()
            .into_iter()
            .map(|(name, content)| {
                let text = String::from_utf8(content)
                    .unwrap_or_else(|e| panic!("lease file {name} is not UTF-8: {e}"));
                (name, text)
            })
            .collect()
    }

    /// The reservation files of [`TestNetwork::store`] (not `lock`, not
    /// `last_reserved_ip.*`) with their content.
    pub fn leases(&self) -> BTreeMap<String, String> {
        self.store()
            .into_iter()
            .filter(|(name, _)| !is_bookkeeping(name))
            .collect()
    }

    /// Host links enslaved to the bridge.
    ///
    /// # Panics
    ///
    /// When `ip` fails.
    pub fn ports(&self) -> Vec<String> {
        kernel::links(None)
            .into_iter()
            .filter(|l| l["master"].as_str() == Some(self.bridge.as_str()))
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }
}

/// Whether `name` is one of host-local's own files in a lease directory
/// (`lock`, `last_reserved_ip.<N>`) rather than a reservation.
pub fn is_bookkeeping(name: &str) -> bool {
    name == "lock" || name.starts_with("last_reserved_ip.")
}

/// Declares a test file's network type: a newtype around [`TestNetwork`]
/// that derefs to it, so the file adds its own subnets and configs in an
/// `impl` block of its own.
///
/// ```no_run
/// integration::test_network! {
///     /// This file's network.
///     Net
/// }
///
/// impl Net {
///     fn new(tag: &str, k: u8, cleanup: &mut integration::Cleanup) -> Net {
///         Net(integration::TestNetwork::new("docbr", tag, k, cleanup))
///     }
///
///     fn subnet4(&self) -> String {
///         format!("198.18.{}.0/24", self.k)
///     }
/// }
/// ```
#[macro_export]
macro_rules! test_network {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        struct $name($crate::TestNetwork);

        impl ::std::ops::Deref for $name {
            type Target = $crate::TestNetwork;

            fn deref(&self) -> &$crate::TestNetwork {
                &self.0
            }
        }
    };
}
