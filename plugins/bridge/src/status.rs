//! STATUS (spec 1.1.0): can this plugin service ADD right now? It needs
//! netlink, the iptables-restore tools when `ipMasq` is set, `nft` when
//! `macspoofchk` is set, and a ready IPAM plugin (whose STATUS answer is
//! passed on unchanged).

use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::netlink::Kernel;
use cni_types::ipam;
use cni_types::skel::Request;

/// Runs STATUS.
///
/// # Errors
/// [`BridgeError::Unavailable`] (code 50), or the IPAM plugin's error.
pub fn status(req: &Request<'_>) -> Result<(), BridgeError> {
    let conf = BridgeConfig::from_json(req.stdin, "")?;
    Kernel::connect()
        .and_then(|kernel| kernel.link_by_name("lo"))
        .map_err(|err| BridgeError::Unavailable(format!("netlink is not usable: {err}")))?;
    if conf.ip_masq {
        for tool in ["iptables-restore", "ip6tables-restore"] {
            if !on_path(tool) {
                return Err(BridgeError::Unavailable(format!(
                    "ipMasq is set but {tool} is not in PATH"
                )));
            }
        }
    }
    if conf.macspoofchk && !on_path("nft") {
        return Err(BridgeError::Unavailable(
            "macspoofchk is set but nft is not in PATH".to_owned(),
        ));
    }
    if let Some(ipam_type) = conf.ipam_type.as_deref() {
        // Without its IPAM plugin bridge cannot service ADD: code 50, not 999.
        ipam::find_plugin(ipam_type, &req.env.path_dirs())
            .map_err(|err| BridgeError::Unavailable(err.msg))?;
        ipam::exec_status(req.env, ipam_type, req.stdin).map_err(BridgeError::Ipam)?;
    }
    Ok(())
}

/// Whether an executable named `tool` is in `PATH`.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}
