//! The firewall rules of an attachment: masquerade ([`masq`], the
//! reference's iptables rules, written over netlink by [`iptables_nft`] on
//! an iptables-nft node and by one `iptables-restore` batch per family
//! elsewhere; or [`nft_masq`], one nf_tables netlink transaction;
//! [`backends`] chooses) and the MAC spoof check
//! ([`macspoof`], one nf_tables netlink transaction). Both sit behind one trait, [`Firewall`]:
//! program the rules of this attachment, remove them, check them, list
//! whose are there. They share the [`Family`] type and one way to run a
//! helper program ([`helper`]).

pub mod backends;
pub mod helper;
pub mod iptables_nft;
pub mod macspoof;
pub mod masq;
pub mod nft_masq;

use crate::pending::Pending;
use cni_types::CniEnv;
use cni_types::config::Attachment;
use ipnetwork::IpNetwork;
use std::fmt;
use std::io;

/// An IP family. Each family has its own helper binaries and its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4, handled by `iptables` / `iptables-restore`.
    V4,
    /// IPv6, handled by `ip6tables` / `ip6tables-restore`.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    #[must_use]
    pub fn of(addr: &IpNetwork) -> Self {
        match addr {
            IpNetwork::V4(_) => Family::V4,
            IpNetwork::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// ` (IPv4)`, ` (IPv6)` or nothing: how an error names the family a helper
/// served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFamily(pub Option<Family>);

impl fmt::Display for InFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(family) => write!(f, " ({family})"),
            None => Ok(()),
        }
    }
}

/// Why programming, removing or reading firewall rules failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The helper binary is not in `PATH`.
    #[error("{program}{family} not found in PATH")]
    NotFound {
        /// The binary, e.g. `ip6tables-restore`.
        program: &'static str,
        /// The family it serves, if any.
        family: InFamily,
    },
    /// The helper could not be started or talked to.
    #[error("run {command}{family}: {source}")]
    Io {
        /// The command, e.g. `iptables-restore` or `iptables -t nat -S`.
        command: String,
        /// The family it serves, if any.
        family: InFamily,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The helper ran and failed.
    #[error("{command}{family} failed: {status}: {stderr}")]
    Failed {
        /// The command, e.g. `iptables-restore` or `iptables -t nat -S`.
        command: String,
        /// The family it serves, if any.
        family: InFamily,
        /// How it ended, e.g. `exit status 1`.
        status: String,
        /// Its stderr, on one line.
        stderr: String,
    },
    /// Both families failed: the IPv4 error first.
    #[error("{first}; also {second}")]
    BothFamilies {
        /// The IPv4 error.
        first: Box<FirewallError>,
        /// The IPv6 error.
        second: Box<FirewallError>,
    },
    /// nf_tables netlink refused or failed.
    #[error("nf_tables: {0}")]
    Netlink(String),
    /// CHECK: the attachment's rules are not (all) there.
    #[error("{0}")]
    Missing(String),
}

impl FirewallError {
    /// Whether the error is a missing helper binary.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FirewallError::NotFound { .. })
    }

    /// Reduces per-family results: the first error wins, with the other one
    /// in its message.
    ///
    /// # Errors
    /// The first error of `results`.
    pub fn combine(results: Vec<Result<(), FirewallError>>) -> Result<(), FirewallError> {
        let mut errors = results.into_iter().filter_map(Result::err);
        match (errors.next(), errors.next()) {
            (None, _) => Ok(()),
            (Some(first), None) => Err(first),
            (Some(first), Some(second)) => Err(FirewallError::BothFamilies {
                first: Box::new(first),
                second: Box::new(second),
            }),
        }
    }
}

/// What a firewall backend needs to know of an attachment. Each backend
/// reads its own part: masquerade the network, container ID and addresses;
/// the spoof check the container ID, interface, host veth and MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The network name.
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The container's addresses (empty when unknown).
    pub addresses: Vec<IpNetwork>,
    /// The host end of the veth pair (empty when unknown).
    pub host_veth: String,
    /// The container interface's MAC as `aa:bb:…` (empty when unknown).
    pub mac: String,
}

impl Target {
    /// The attachment `env` names on `network`, with nothing else known.
    pub fn for_attachment(network: &str, env: &CniEnv) -> Target {
        Target {
            network: network.to_owned(),
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            ..Target::default()
        }
    }
}

/// A pending firewall change.
pub type PendingChange<'a> = Pending<'a, Result<(), FirewallError>>;

/// One kind of rules programmed for each attachment.
pub trait Firewall {
    /// Gets ready for a setup of `target`'s attachment with addresses in
    /// `families`, before the addresses are known (e.g. starts the helpers,
    /// or reads what is there). Changes nothing.
    fn prepare(&self, _target: &Target, _families: &[Family]) {}

    /// Starts programming `target`'s rules; the result comes with
    /// [`Pending::finish`]. A repeated setup replaces the attachment's rules.
    /// A failure may leave part of the rules (one family's, say): undo with
    /// [`Firewall::start_teardown`], which is safe to run at any point.
    fn start_setup(&self, target: &Target) -> PendingChange<'_>;

    /// Starts removing every rule of `target`'s attachment, whichever
    /// implementation created them. Idempotent: nothing there is success.
    fn start_teardown(&self, target: &Target) -> PendingChange<'_>;

    /// Whether `target`'s rules are in place.
    ///
    /// # Errors
    /// [`FirewallError::Missing`] naming what is missing, or why the rules
    /// could not be read.
    fn check(&self, target: &Target) -> Result<(), FirewallError>;

    /// Removes the rules of `network` whose attachment is not in `valid`
    /// (GC); another network's rules are never touched.
    ///
    /// # Errors
    /// When the rules cannot be read or removed (the first failure).
    fn collect(&self, network: &str, valid: &[Attachment]) -> Result<(), FirewallError>;

    /// Whether the helpers a setup needs are installed (for STATUS).
    ///
    /// # Errors
    /// Why a setup cannot work.
    fn available(&self) -> Result<(), String>;
}
