//! The CNI spec as Rust types: spec versions, network configurations,
//! results in every version with the conversions between them, errors with
//! the spec's codes, `CNI_ARGS`, the plugin dispatcher ([`skel`]) and IPAM
//! delegation ([`ipam`]).
//!
//! A plugin implements [`skel::Plugin`] and hands itself to [`skel::run`]:
//!
//! ```no_run
//! use cni_types::skel::{self, Plugin, Request};
//! use cni_types::{CniError, result::Result};
//!
//! struct Noop;
//!
//! impl Plugin for Noop {
//!     fn add(&self, _req: &Request<'_>) -> std::result::Result<Result, CniError> {
//!         Ok(Result::default())
//!     }
//!     fn del(&self, _req: &Request<'_>) -> std::result::Result<(), CniError> {
//!         Ok(())
//!     }
//!     fn check(&self, _req: &Request<'_>) -> std::result::Result<(), CniError> {
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     skel::run(&Noop, "CNI noop plugin v0.1.0")
//! }
//! ```

pub mod error;
pub mod json;
pub mod result;
pub mod version;

pub use error::{CniError, ErrorCode};
pub use version::CniVersion;
pub mod args;
pub mod config;
pub mod env;
pub mod skel;
pub mod trace;

pub use args::CniArgs;
pub use config::NetConf;
pub use env::CniEnv;
pub mod ipam;
#[cfg(feature = "netns")]
pub mod netns;
