//! Test kit for the root integration tests.
//!
//! Every root test follows the same shape: check for root, create a private
//! network namespace, exec a real plugin binary exactly as a runtime does, and
//! read the kernel's state back through iproute2 (an observer independent of
//! the plugins' own netlink code). Namespaces and any other state a test
//! creates are removed on `Drop`, so a failing test leaks nothing.
//!
//! ```no_run
//! use integration::{PluginCall, TestNetns, kernel, require_root};
//!
//! if !require_root("doc_example") {
//!     return;
//! }
//! let ns = TestNetns::new("doc");
//! let out = PluginCall::new("loopback")
//!     .command("ADD")
//!     .container_id(ns.name())
//!     .netns(ns.path())
//!     .ifname("lo")
//!     .stdin(r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#)
//!     .run()
//!     .expect_success();
//! assert_eq!(out.json()["interfaces"][0]["name"], "lo");
//! assert!(kernel::link_is_up(Some(ns.name()), "lo"));
//! ```

pub mod cleanup;
pub mod cmd;
pub mod containerd;
pub mod docker;
pub mod go;
pub mod host;
pub mod kernel;
pub mod names;
pub mod netns;
pub mod network;
pub mod plugin;
pub mod reference;
pub mod root;
pub mod timing;
pub mod two_nodes;

pub use cleanup::Cleanup;
pub use containerd::PrivateContainerd;
pub use docker::PrivateDocker;
pub use host::PrivateHost;
pub use kernel::IpFamily;
pub use names::{unique_ifname, unique_name};
pub use netns::TestNetns;
pub use network::{TestNetwork, crio_settings};
pub use plugin::{PluginCall, PluginOutput, plugin_dir, plugin_path};
pub use root::require_root;
pub use timing::{ms, wait_until};
