//! The parts of a network configuration every plugin shares. Plugins read
//! their own fields from the same stdin with their own structs; unknown
//! keys are always tolerated, as runtimes forward keys they do not know.

use crate::result::Dns;
use serde::Deserialize;
use serde_json::Value;

/// The spec's common network configuration keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// The config's spec version; empty means 0.1.0.
    #[serde(default)]
    pub cni_version: String,
    /// Versions a conflist declares (1.1.0); the runtime picks one.
    #[serde(default)]
    pub cni_versions: Vec<String>,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Plugin type (the binary name).
    #[serde(default, rename = "type")]
    pub plugin_type: String,
    /// Conventional `args` (e.g. `args.cni.ips`), kept raw.
    #[serde(default)]
    pub args: Option<Value>,
    /// Whether to set up IP masquerade.
    #[serde(default)]
    pub ip_masq: bool,
    /// The IPAM section, when present.
    #[serde(default)]
    pub ipam: Option<IpamRef>,
    /// DNS settings from the config.
    #[serde(default)]
    pub dns: Dns,
    /// Capabilities the runtime supplies (`ips`, `mac`, `ipRanges`, ...).
    #[serde(default)]
    pub runtime_config: Option<Value>,
    /// The previous plugin's result, in whatever version it came.
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// Conflist: skip CHECK.
    #[serde(default)]
    pub disable_check: bool,
    /// Conflist: skip GC (1.1.0).
    #[serde(default, rename = "disableGC")]
    pub disable_gc: bool,
    /// GC: the attachments the runtime still uses (1.1.0).
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The `ipam` section as the delegating plugin sees it: just the type.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamRef {
    /// The IPAM plugin to exec; empty means no IPAM (L2 only).
    #[serde(default, rename = "type")]
    pub plugin_type: String,
}

/// One attachment named in a GC request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    /// The container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name inside the container.
    pub ifname: String,
}

impl NetConf {
    /// The IPAM plugin type, or `None` when there is no IPAM (L2 mode).
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()
            .map(|ipam| ipam.plugin_type.as_str())
            .filter(|t| !t.is_empty())
    }

    /// A `runtimeConfig` capability by key.
    pub fn runtime_capability(&self, key: &str) -> Option<&Value> {
        self.runtime_config.as_ref().and_then(|rc| rc.get(key))
    }

    /// An `args.cni` key (the spec's conventional args, e.g. `ips`, `mac`).
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        self.args
            .as_ref()
            .and_then(|args| args.get("cni"))
            .and_then(|cni| cni.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crio_config_parses_and_unknown_keys_are_tolerated() {
        let conf: NetConf =
            serde_json::from_str(include_str!("../tests/fixtures/100-crio-bridge.conf")).unwrap();
        assert_eq!(conf.cni_version, "0.3.1");
        assert_eq!(conf.name, "crio");
        assert_eq!(conf.plugin_type, "bridge");
        assert!(conf.ip_masq);
        assert_eq!(conf.ipam_type(), Some("host-local"));
    }

    #[test]
    fn empty_ipam_type_means_no_ipam() {
        let conf: NetConf = serde_json::from_str(r#"{"name":"n","ipam":{}}"#).unwrap();
        assert_eq!(conf.ipam_type(), None);
        let conf: NetConf = serde_json::from_str(r#"{"name":"n"}"#).unwrap();
        assert_eq!(conf.ipam_type(), None);
    }

    #[test]
    fn runtime_config_args_and_attachments() {
        let conf: NetConf = serde_json::from_str(
            r#"{"name":"n","runtimeConfig":{"mac":"aa:bb:cc:dd:ee:ff"},"args":{"cni":{"ips":["10.0.0.2"]}},
                "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"disableGC":true}"#,
        )
        .unwrap();
        assert_eq!(
            conf.runtime_capability("mac").and_then(Value::as_str),
            Some("aa:bb:cc:dd:ee:ff")
        );
        assert_eq!(
            conf.cni_arg("ips")
                .and_then(|v| v.get(0))
                .and_then(Value::as_str),
            Some("10.0.0.2")
        );
        assert_eq!(
            conf.valid_attachments,
            Some(vec![Attachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            }])
        );
        assert!(conf.disable_gc);
    }
}
