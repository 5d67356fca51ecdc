//! A private Docker daemon for tests: Debian's `dockerd` with its own data
//! root, exec root, socket and pidfile under a temporary directory, and
//! none of its own networking (no iptables rules, no `docker0`, no
//! forwarding or masquerade changes), so it leaves the host alone. Dropping
//! it removes every container, stops the daemon by the PID in its pidfile
//! (and with it the containerd it started), and removes its directory and
//! the empty `/run/docker` and `/run/containerd` it leaves behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::{cmd, unique_name};

/// Debian's `docker.io` client (the machine may have another `docker`
/// first on `PATH`).
pub const DOCKER: &str = "/usr/bin/docker";
/// Debian's daemon.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// Directories the daemon creates outside its own, removed when empty.
const RUN_DIRS: [&str; 2] = ["/run/docker", "/run/containerd"];

/// A running private daemon.
#[derive(Debug)]
pub struct PrivateDocker {
    /// Everything of the daemon: `data`, `exec`, `docker.sock`, `docker.pid`, `dockerd.log`.
    pub dir: PathBuf,
    /// Which of [`RUN_DIRS`] did not exist before the daemon started.
    created_run_dirs: Vec<&'static str>,
    /// The daemon.
    daemon: Child,
}

impl PrivateDocker {
    /// Starts a daemon and waits until it answers; `None` (with a note on
    /// stderr) when Debian's `dockerd` is not installed.
    ///
    /// # Panics
    ///
    /// When the daemon does not come up within 60 s (its log is shown), or
    /// `dockerd` is missing under CI (`CI` set).
    pub fn start(test: &str) -> Option<PrivateDocker> {
        if !Path::new(DOCKERD).is_file() || !Path::new(DOCKER).is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: scripts/test.sh installs docker.io; {DOCKERD} is missing under CI"
            );
            eprintln!("SKIPPED {test}: needs Debian's docker.io ({DOCKERD}, {DOCKER})");
            return None;
        }
        let dir = std::env::temp_dir().join(unique_name("cni-docker"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let created_run_dirs = RUN_DIRS
            .into_iter()
            .filter(|d| !Path::new(d).exists())
            .collect();
        let log = std::fs::File::create(dir.join("dockerd.log"))
            .unwrap_or_else(|e| panic!("create the log: {e}"));
        let err_log = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone the log: {e}"));
        let path = |name: &str| dir.join(name).display().to_string();
        let socket = format!("unix://{}", path("docker.sock"));
        let daemon = Command::new(DOCKERD)
            .args(["--data-root", &path("data"), "--exec-root", &path("exec")])
            .args(["--host", &socket, "--pidfile", &path("docker.pid")])
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--ip-forward=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {DOCKERD}: {e}"));
        let docker = PrivateDocker {
            dir,
            created_run_dirs,
            daemon,
        };
        let start = Instant::now();
        while !docker.docker(&["version"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd did not answer within 60 s\n{}",
                std::fs::read_to_string(docker.dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(docker)
    }

    /// The daemon's address, `unix://<dir>/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// `docker -H <host> <args>`, whatever its status.
    pub fn docker(&self, args: &[&str]) -> Output {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        cmd::run(DOCKER, &all)
    }

    /// `docker -H <host> <args>`; its stdout, trimmed.
    ///
    /// # Panics
    ///
    /// When it fails.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Imports a busybox-static root file system (`sh`, `sleep`, `ip`,
    /// `ping`, `cat`) as image `name` (no registry is needed).
    ///
    /// # Panics
    ///
    /// When busybox-static is missing or the import fails.
    pub fn import_busybox(&self, name: &str) {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.is_file(), "apt-get install busybox-static");
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin"))
            .unwrap_or_else(|e| panic!("create the root file system: {e}"));
        std::fs::copy(busybox, root.join("bin/busybox"))
            .unwrap_or_else(|e| panic!("copy busybox: {e}"));
        for applet in ["sh", "sleep", "ip", "ping", "cat", "ls"] {
            let link = root.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link)
                    .unwrap_or_else(|e| panic!("link an applet: {e}"));
            }
        }
        let tar = self.dir.join("rootfs.tar");
        let root_str = root.display().to_string();
        cmd::run_ok(
            "tar",
            &["-C", &root_str, "-cf", &tar.display().to_string(), "."],
        );
        self.docker_ok(&["import", &tar.display().to_string(), name]);
    }

    /// The PID of a running container's first process.
    pub fn pid(&self, container: &str) -> u32 {
        let pid = self.docker_ok(&["inspect", "-f", "{{.State.Pid}}", container]);
        pid.parse()
            .unwrap_or_else(|e| panic!("pid {pid:?} of {container}: {e}"))
    }

    /// The daemon's PID, from its pidfile.
    fn daemon_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("docker.pid")).ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for PrivateDocker {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            self.docker(&["rm", "-f", id]);
        }
        // The pidfile names the daemon we started; stop it gracefully so
        // that it stops its containerd too.
        let pid = self
            .daemon_pid()
            .unwrap_or(i32::try_from(self.daemon.id()).unwrap_or(0));
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        let start = Instant::now();
        while matches!(self.daemon.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.daemon.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for dir in &self.created_run_dirs {
            remove_if_empty(Path::new(dir));
        }
    }
}

/// Removes `dir` if it holds nothing but empty directories (another daemon
/// may have started meanwhile and be using it).
fn remove_if_empty(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(entry.path());
    }
    let _ = std::fs::remove_dir(dir);
}
