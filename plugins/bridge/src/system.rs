//! The node as the shipped plugin changes it: netlink and `/proc/sys` in the
//! host's and the pod's namespaces, the firewall helpers, and the IPAM plugin
//! run by exec. [`System`] owns one of each for a call and lends them to the
//! steps as a [`Node`].

use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::firewall::backends::Masquerade;
use crate::firewall::macspoof::Nft;
use crate::netlink::{Kernel, Link, NetlinkError, RouteEntry};
use crate::node::{HostNet, Ipam, Links, Namespaces, Node, PodNet, PortFlags, VethSpec};
use crate::pending::Pending;
use crate::sysctl::{NetSysctls, SysctlError};
use cni_types::ipam;
use cni_types::netns::Netns;
use cni_types::result::Result as CniResult;
use cni_types::skel::Request;
use cni_types::{CniEnv, CniError, CniVersion};
use ipnetwork::IpNetwork;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

/// The shipped implementation of every part of the [`Node`].
pub struct System<'r> {
    host: HostKernel,
    namespaces: NetnsOpener,
    masquerade: Masquerade,
    spoof_check: Nft,
    ipam: ExecIpam<'r>,
}

impl<'r> System<'r> {
    /// Opens the host's netlink connection for a call with `conf`;
    /// everything else is opened when a step needs it.
    ///
    /// # Errors
    /// [`BridgeError::Netlink`] when no netlink socket can be opened.
    pub fn connect(req: &'r Request<'_>, conf: &BridgeConfig) -> Result<System<'r>, BridgeError> {
        Ok(System {
            host: HostKernel {
                kernel: Kernel::connect()?,
                sysctls: NetSysctls::host(),
            },
            namespaces: NetnsOpener,
            masquerade: Masquerade::new(conf.ip_masq_backend),
            spoof_check: Nft,
            ipam: ExecIpam {
                env: req.env,
                stdin: req.stdin,
                version: req.version,
            },
        })
    }

    /// The parts, as the steps take them.
    pub fn node(&self) -> Node<'_> {
        Node {
            host: &self.host,
            namespaces: &self.namespaces,
            masquerade: &self.masquerade,
            spoof_check: &self.spoof_check,
            ipam: &self.ipam,
        }
    }
}

/// The host's namespace: the calling thread's.
struct HostKernel {
    kernel: Kernel,
    sysctls: NetSysctls,
}

/// A pod's namespace, with a netlink connection and its sysctl directories
/// opened inside it: nothing needs to enter it afterwards.
struct PodKernel {
    netns: Netns,
    kernel: Kernel,
    sysctls: NetSysctls,
}

/// [`Links`] for a type by its `kernel` and `sysctls` fields.
macro_rules! links_through_kernel {
    ($type:ty) => {
        impl Links for $type {
            fn link_by_name(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
                self.kernel.link_by_name(name)
            }

            fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
                self.kernel.link_by_index(index)
            }

            fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
                self.kernel.set_up(index, name)
            }

            fn addresses(&self, index: u32) -> Result<Vec<IpNetwork>, NetlinkError> {
                self.kernel.addresses(index)
            }

            fn add_address(
                &self,
                index: u32,
                name: &str,
                address: IpNetwork,
                skip_dad: bool,
            ) -> Result<(), NetlinkError> {
                self.kernel.add_address(index, name, address, skip_dad)
            }

            fn del_link(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
                self.kernel.del_link(index, name)
            }

            fn sysctl(&self, key: &str, value: &str) -> Result<(), SysctlError> {
                self.sysctls.ensure(key, value)
            }
        }
    };
}

links_through_kernel!(HostKernel);
links_through_kernel!(PodKernel);

impl HostNet for HostKernel {
    fn create_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetlinkError> {
        self.kernel.create_bridge(name, mtu, vlan_filtering)
    }

    fn create_veth(&self, veth: &VethSpec<'_>, pod: &dyn PodNet) -> Result<(), NetlinkError> {
        self.kernel.create_veth(veth, Some(pod.netns_fd()))
    }

    fn create_host_veth(&self, veth: &VethSpec<'_>) -> Result<(), NetlinkError> {
        self.kernel.create_veth(veth, None)
    }

    fn set_no_ipv6_link_local(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.kernel.set_no_ipv6_link_local(index, name)
    }

    fn set_promisc(&self, index: u32, name: &str, on: bool) -> Result<(), NetlinkError> {
        self.kernel.set_promisc(index, name, on)
    }

    fn enslave(&self, index: u32, name: &str, master: u32) -> Result<(), NetlinkError> {
        self.kernel.enslave(index, name, master)
    }

    fn set_mac(&self, index: u32, name: &str, mac: &[u8]) -> Result<(), NetlinkError> {
        self.kernel.set_mac(index, name, mac)
    }

    fn set_port_flags(&self, index: u32, name: &str, flags: PortFlags) -> Result<(), NetlinkError> {
        self.kernel.set_port_flags(index, name, flags)
    }

    fn add_port_vlan(
        &self,
        index: u32,
        name: &str,
        vid: u16,
        access: bool,
    ) -> Result<(), NetlinkError> {
        self.kernel.add_port_vlan(index, name, vid, access)
    }

    fn del_port_vlan(&self, index: u32, name: &str, vid: u16) -> Result<(), NetlinkError> {
        self.kernel.del_port_vlan(index, name, vid)
    }

    fn del_address(&self, index: u32, name: &str, address: IpNetwork) -> Result<(), NetlinkError> {
        self.kernel.del_address(index, name, address)
    }
}

impl PodNet for PodKernel {
    fn netns_fd(&self) -> RawFd {
        self.netns.as_raw_fd()
    }

    fn set_arp_notify(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.kernel.set_arp_notify(index, name)
    }

    fn add_route(
        &self,
        dst: IpNetwork,
        gw: Option<IpAddr>,
        index: u32,
    ) -> Result<(), NetlinkError> {
        self.kernel.add_route(dst, gw, index)
    }

    fn routes(&self, ipv4: bool) -> Result<Vec<RouteEntry>, NetlinkError> {
        self.kernel.routes(ipv4)
    }
}

/// Opens namespace files and connects inside them.
struct NetnsOpener;

impl Namespaces for NetnsOpener {
    fn open(&self, path: &str) -> Result<Option<Box<dyn PodNet + '_>>, BridgeError> {
        let netns = match Netns::open(path) {
            Ok(netns) => netns,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(BridgeError::netns(path, err)),
        };
        // A netlink socket and a /proc/sys directory stay bound to the
        // namespace they were opened in.
        let (kernel, sysctls) = {
            let _inside = netns.enter().map_err(|e| BridgeError::netns(path, e))?;
            (Kernel::connect()?, NetSysctls::pod_here())
        };
        Ok(Some(Box::new(PodKernel {
            netns,
            kernel,
            sysctls,
        })))
    }
}

/// The IPAM plugin, found in `CNI_PATH` and run with the request's
/// environment and exact stdin.
struct ExecIpam<'r> {
    env: &'r CniEnv,
    stdin: &'r [u8],
    version: CniVersion,
}

impl Ipam for ExecIpam<'_> {
    fn start_add(&self, plugin: &str) -> Pending<'_, Result<CniResult, CniError>> {
        let (env, plugin, stdin) = (self.env.clone(), plugin.to_owned(), self.stdin.to_vec());
        let version = self.version;
        Pending::on_thread(move || ipam::exec_add(&env, &plugin, &stdin, version))
    }

    fn start_del(&self, plugin: &str) -> Pending<'_, Result<(), CniError>> {
        let (env, plugin, stdin) = (self.env.clone(), plugin.to_owned(), self.stdin.to_vec());
        Pending::on_thread(move || ipam::exec_del(&env, &plugin, &stdin))
    }

    fn check(&self, plugin: &str) -> Result<(), CniError> {
        ipam::exec_check(self.env, plugin, self.stdin)
    }

    fn gc(&self, plugin: &str) -> Result<(), CniError> {
        ipam::exec_gc(self.env, plugin, self.stdin)
    }

    fn installed(&self, plugin: &str) -> Result<(), CniError> {
        ipam::find_plugin(plugin, &self.env.path_dirs()).map(drop)
    }

    fn status(&self, plugin: &str) -> Result<(), CniError> {
        ipam::exec_status(self.env, plugin, self.stdin)
    }
}
