//! A private containerd with its CRI plugin, for the Kubernetes node path:
//! Debian's `containerd` with its own config, root, state dir and sockets
//! under a temporary directory, our plugins (or any) in its CNI `bin_dir`,
//! and a pause image built locally (busybox-static's `sleep`; no registry
//! is reachable). A CRI client (`integration/clients/cri.py`, kubelet's
//! side of runtime.v1 over Debian's python3-grpcio) drives it.
//!
//! Dropping it stops and removes every sandbox it still knows (so CNI DEL
//! runs), stops the daemon by PID, kills the shims it left, unmounts what
//! is left under its directory and removes it, and removes the shims'
//! socket directory `/run/containerd/s` when empty.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use crate::{cmd, unique_name};

/// Debian's daemon and client.
pub const CONTAINERD: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";
/// The image every sandbox runs.
pub const PAUSE_IMAGE: &str = "localhost/cni-rs/pause:test";

/// How to run a private containerd beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct Setup {
    /// The CRI plugin's `conf_template`: a network config template that
    /// containerd renders into its `conf_dir` when kubelet hands it a pod
    /// CIDR (UpdateRuntimeConfig).
    pub conf_template: Option<PathBuf>,
    /// A network namespace to run it in, as a node of its own (entered with
    /// `nsenter --net`, which, unlike `ip netns exec`, leaves `/sys` as it
    /// is for runc).
    pub netns: Option<PathBuf>,
}

/// A running private containerd.
#[derive(Debug)]
pub struct PrivateContainerd {
    /// Everything of it: `config.toml`, `root`, `state`, sockets, `net.d`, `cni-bin`.
    pub dir: PathBuf,
    /// Where it runs.
    netns: Option<PathBuf>,
    daemon: Mutex<Option<Child>>,
    /// Sandboxes run and not yet removed, for the clean-up.
    sandboxes: Mutex<Vec<String>>,
}

/// The value behind `mutex`, also after a panic elsewhere.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One CRI call's outcome.
#[derive(Debug)]
pub struct CriReply {
    /// What it printed (a sandbox ID, status JSON, nothing).
    pub stdout: String,
    /// How long the call took, as the client measured it.
    pub seconds: f64,
}

impl PrivateContainerd {
    /// Starts a daemon with CNI `bin_dir` = `cni_bin` and `conf_dir` =
    /// `<dir>/net.d`, as `setup` says, imports the pause
    /// image and waits until the CRI answers; `None` (with a note on
    /// stderr) when containerd or python3-grpcio is not installed.
    ///
    /// # Panics
    ///
    /// When it does not come up within 60 s, or a part is missing under CI.
    pub fn start(test: &str, cni_bin: &Path, setup: &Setup) -> Option<Self> {
        let grpc = cmd::try_run("/usr/bin/python3", &["-c", "import grpc"])
            .is_ok_and(|out| out.status.success());
        if !Path::new(CONTAINERD).is_file() || !grpc {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: scripts/test.sh installs containerd and python3-grpcio"
            );
            eprintln!("SKIPPED {test}: needs containerd and python3-grpcio");
            return None;
        }
        let dir = std::env::temp_dir().join(unique_name("cni-ctrd"));
        std::fs::create_dir_all(dir.join("net.d"))
            .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let containerd = PrivateContainerd {
            dir,
            netns: setup.netns.clone(),
            daemon: Mutex::new(None),
            sandboxes: Mutex::new(Vec::new()),
        };
        containerd.write_config(cni_bin, setup.conf_template.as_deref());
        containerd.start_daemon();
        containerd.import_pause_image();
        Some(containerd)
    }

    /// `config.toml`: CRI with the settings these VMs need.
    fn write_config(&self, cni_bin: &Path, conf_template: Option<&Path>) {
        let d = |name: &str| self.dir.join(name).display().to_string();
        let template = conf_template.map_or(String::new(), |t| {
            format!("    conf_template = \"{}\"\n", t.display())
        });
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = "{socket}.debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
    max_conf_num = 1
{template}  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = "{runc}"
"#,
            root = d("root"),
            state = d("state"),
            socket = d("containerd.sock"),
            opt = d("opt"),
            bin = cni_bin.display(),
            conf = d("net.d"),
            runc = d("runc"),
        );
        std::fs::write(self.dir.join("config.toml"), config)
            .unwrap_or_else(|e| panic!("write config.toml: {e}"));
    }

    /// Starts the daemon (again, after [`PrivateContainerd::kill`]) and
    /// waits for its CRI.
    ///
    /// # Panics
    ///
    /// When it does not answer within 60 s.
    pub fn start_daemon(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap_or_else(|e| panic!("open the log: {e}"));
        let err_log = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone the log: {e}"));
        let config = self.dir.join("config.toml");
        let mut command = match &self.netns {
            Some(netns) => {
                let mut nsenter = Command::new("nsenter");
                nsenter
                    .arg(format!("--net={}", netns.display()))
                    .arg(CONTAINERD);
                nsenter
            }
            None => Command::new(CONTAINERD),
        };
        let child = command
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {CONTAINERD}: {e}"));
        *locked(&self.daemon) = Some(child);
        let start = Instant::now();
        while !self.cri_raw(&["version"]).status.success() {
            let exited = locked(&self.daemon)
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "containerd exited: {exited:?}\n{}",
                self.log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "containerd's CRI did not answer within 60 s\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The CRI socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The daemon's PID.
    pub fn pid(&self) -> Option<u32> {
        locked(&self.daemon).as_ref().map(Child::id)
    }

    /// Kills the daemon with `signal` and reaps it (the shims and the
    /// sandboxes keep running, as when a node's containerd dies).
    pub fn kill(&self, how: Signal) {
        if let Some(mut child) = locked(&self.daemon).take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = signal::kill(Pid::from_raw(pid), how);
            }
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn cri_raw(&self, args: &[&str]) -> Output {
        let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/cri.py");
        let socket = self.socket().display().to_string();
        let mut all = vec![client.display().to_string(), socket];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        cmd::run("/usr/bin/python3", &all)
    }

    /// A CRI call through `cri.py` (see there for `args`).
    ///
    /// # Errors
    ///
    /// The client's stderr when the call fails.
    pub fn cri(&self, args: &[&str]) -> Result<CriReply, String> {
        let out = self.cri_raw(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(stderr);
        }
        Ok(CriReply {
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            seconds: stderr.trim().parse().unwrap_or(0.0),
        })
    }

    /// RunPodSandbox of pod `name`; its ID is remembered for the clean-up.
    ///
    /// # Errors
    ///
    /// The CRI error.
    pub fn run_pod(&self, name: &str) -> Result<CriReply, String> {
        let uid = unique_name("uid");
        let reply = self.cri(&["run", name, &uid, "default"])?;
        locked(&self.sandboxes).push(reply.stdout.clone());
        Ok(reply)
    }

    /// StopPodSandbox then RemovePodSandbox of `id`.
    ///
    /// # Errors
    ///
    /// The first CRI error.
    pub fn stop_and_remove(&self, id: &str) -> Result<(CriReply, CriReply), String> {
        let stopped = self.cri(&["stop", id])?;
        let removed = self.cri(&["remove", id])?;
        locked(&self.sandboxes).retain(|s| s != id);
        Ok((stopped, removed))
    }

    /// PodSandboxStatus of `id` as JSON (`state`, `ip`, `additional_ips`).
    ///
    /// # Panics
    ///
    /// When the call fails.
    pub fn status(&self, id: &str) -> serde_json::Value {
        let reply = self
            .cri(&["status", id])
            .unwrap_or_else(|e| panic!("PodSandboxStatus {id}: {e}"));
        serde_json::from_str(&reply.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// A docker-archive tar of the pause image, imported with `ctr`.
    fn import_pause_image(&self) {
        let build = self.dir.join("pause-image");
        let layer_root = build.join("root");
        std::fs::create_dir_all(layer_root.join("bin"))
            .unwrap_or_else(|e| panic!("create the image dir: {e}"));
        std::fs::copy("/bin/busybox", layer_root.join("bin/busybox"))
            .unwrap_or_else(|e| panic!("copy busybox (apt-get install busybox-static): {e}"));
        let _ = std::os::unix::fs::symlink("busybox", layer_root.join("bin/sleep"));
        let layer = build.join("layer.tar");
        let (root, layer_str) = (
            layer_root.display().to_string(),
            layer.display().to_string(),
        );
        cmd::run_ok("tar", &["-C", &root, "-cf", &layer_str, "bin"]);
        let layer_bytes = std::fs::read(&layer).unwrap_or_default();
        let diff_id = format!("sha256:{:x}", Sha256::digest(&layer_bytes));
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/bin/sleep"], "Cmd": ["2147483647"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        })
        .to_string();
        let config_name = format!("{:x}.json", Sha256::digest(config.as_bytes()));
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(build.join(name), bytes).unwrap_or_else(|e| panic!("write {name}: {e}"));
        };
        write(&config_name, config.as_bytes());
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [PAUSE_IMAGE],
            "Layers": ["layer.tar"],
        }]);
        write("manifest.json", manifest.to_string().as_bytes());
        let archive = self.dir.join("pause.tar");
        let build_str = build.display().to_string();
        let archive_str = archive.display().to_string();
        let files = ["manifest.json", config_name.as_str(), "layer.tar"];
        let mut args = vec!["-C", build_str.as_str(), "-cf", archive_str.as_str()];
        args.extend(files);
        cmd::run_ok("tar", &args);
        let socket = self.socket().display().to_string();
        cmd::run_ok(
            CTR,
            &[
                "--address",
                &socket,
                "-n",
                "k8s.io",
                "images",
                "import",
                &archive_str,
            ],
        );
    }

    /// Mount points under the directory, deepest first.
    fn mounts_below(&self) -> Vec<String> {
        let prefix = self.dir.display().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<String> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts
    }

    /// PIDs of processes whose command line names the directory (shims).
    fn processes_below(&self) -> Vec<i32> {
        let out = cmd::run("pgrep", &["-f", &self.dir.display().to_string()]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        if locked(&self.daemon).is_some() {
            // Every sandbox it knows, not only those a call returned: one
            // whose RunPodSandbox was cut short may hold an attachment.
            let mut ids: Vec<String> = locked(&self.sandboxes).clone();
            if let Ok(listed) = self.cri(&["list"]) {
                ids.extend(listed.stdout.lines().map(str::to_owned));
            }
            ids.sort();
            ids.dedup();
            for id in ids.iter().filter(|id| !id.is_empty()) {
                let _ = self.stop_and_remove(id);
            }
        }
        self.kill(Signal::SIGTERM);
        for pid in self.processes_below() {
            // A shim and the sandbox processes it started.
            let _ = cmd::run("pkill", &["-KILL", "-P", &pid.to_string()]);
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for mount in self.mounts_below() {
            let _ = cmd::run("umount", &["-l", &mount]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let shims = Path::new("/run/containerd/s");
        let _ = std::fs::remove_dir(shims);
        let _ = std::fs::remove_dir(shims.parent().unwrap_or(shims));
    }
}
