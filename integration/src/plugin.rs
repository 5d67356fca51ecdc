//! Finding the built plugin binaries and executing them as a runtime does.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable naming the directory that holds the plugin binaries,
/// overriding the default (the cargo target directory of the test binary).
pub const PLUGIN_DIR_ENV: &str = "CNI_RS_PLUGIN_DIR";

/// `PATH` given to plugins when the test process has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long [`PluginCall::run`] waits before killing the plugin.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory holding the built plugins.
///
/// `$CNI_RS_PLUGIN_DIR` if set and non-empty; otherwise the directory of the
/// running test executable, one level up when that is cargo's `deps/`
/// (`target/debug/deps/loopback-<hash>` → `target/debug`).
///
/// # Panics
///
/// When the path of the running executable cannot be determined.
pub fn plugin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(PLUGIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot find the test executable's path: {e}"));
    let mut dir = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("test executable {} has no parent dir", exe.display()));
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// The path of the built plugin binary `name` (`loopback`, `host-local`,
/// `bridge`) in [`plugin_dir`].
///
/// # Panics
///
/// When the file does not exist. `cargo test` does not build the plugin
/// binaries for this package (it does not depend on them), so they must have
/// been built first with `cargo build --workspace`.
pub fn plugin_path(name: &str) -> PathBuf {
    let path = plugin_dir().join(name);
    if !path.is_file() {
        panic!(
            "plugin binary {} not found: run `cargo build --workspace` first \
             (`cargo test` does not build the plugins for the integration tests), \
             or point {PLUGIN_DIR_ENV} at the directory holding them",
            path.display()
        );
    }
    path
}

/// One execution of a plugin binary, built up like a runtime's call.
///
/// The child gets a cleared environment holding only the variables set here:
/// `CNI_PATH` (default: [`plugin_dir`]), `PATH` (the test's own, so the plugin
/// finds `iptables`; default [`DEFAULT_PATH`]), and whatever `CNI_*` variables
/// the builder sets. The config goes on stdin. Nothing else is inherited.
///
/// ```no_run
/// use integration::PluginCall;
/// let err = PluginCall::new("loopback")
///     .command("ADD")
///     .container_id("c1")
///     .ifname("lo")
///     .stdin(r#"{"cniVersion":"1.0.0","name":"n","type":"loopback"}"#)
///     .run()
///     .expect_error(4);
/// assert_eq!(err["msg"], "required env variables [CNI_NETNS] missing");
/// ```
#[derive(Debug, Clone)]
pub struct PluginCall {
    binary: PathBuf,
    env: BTreeMap<String, OsString>,
    stdin: Vec<u8>,
    timeout: Duration,
}

impl PluginCall {
    /// A call of the built plugin `name` (see [`plugin_path`]), with only
    /// `CNI_PATH` and `PATH` set and empty stdin.
    ///
    /// # Panics
    ///
    /// When the binary is missing.
    pub fn new(name: &str) -> PluginCall {
        PluginCall::with_binary(plugin_path(name))
    }

    /// A call of the binary at `binary` (for example a reference plugin in
    /// `/usr/lib/cni`), with only `CNI_PATH` and `PATH` set and empty stdin.
    pub fn with_binary(binary: impl Into<PathBuf>) -> PluginCall {
        let mut env = BTreeMap::new();
        env.insert("CNI_PATH".to_string(), plugin_dir().into_os_string());
        let path = std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.into());
        env.insert("PATH".to_string(), path);
        PluginCall {
            binary: binary.into(),
            env,
            stdin: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets `CNI_COMMAND` (`ADD`, `DEL`, `CHECK`, `VERSION`, `GC`, `STATUS`, ...).
    pub fn command(self, command: &str) -> PluginCall {
        self.env("CNI_COMMAND", command)
    }

    /// Sets `CNI_CONTAINERID`.
    pub fn container_id(self, id: &str) -> PluginCall {
        self.env("CNI_CONTAINERID", id)
    }

    /// Sets `CNI_NETNS`.
    pub fn netns(self, path: impl AsRef<Path>) -> PluginCall {
        self.env("CNI_NETNS", path.as_ref())
    }

    /// Sets `CNI_IFNAME`.
    pub fn ifname(self, ifname: &str) -> PluginCall {
        self.env("CNI_IFNAME", ifname)
    }

    /// Sets `CNI_ARGS` (`K=V;K=V`).
    pub fn args(self, args: &str) -> PluginCall {
        self.env("CNI_ARGS", args)
    }

    /// Sets `CNI_PATH`, replacing the default.
    pub fn cni_path(self, path: impl Into<OsString>) -> PluginCall {
        self.env("CNI_PATH", path)
    }

    /// Sets any environment variable (also overrides `PATH` or a `CNI_*` one).
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> PluginCall {
        self.env.insert(key.to_string(), value.into());
        self
    }

    /// Removes a variable set earlier, including the defaults `CNI_PATH` and `PATH`.
    pub fn unset(mut self, key: &str) -> PluginCall {
        self.env.remove(key);
        self
    }

    /// Sets stdin (the network config).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> PluginCall {
        self.stdin = bytes.into();
        self
    }

    /// Sets stdin to `config` serialized compactly.
    pub fn config(self, config: &serde_json::Value) -> PluginCall {
        self.stdin(config.to_string())
    }

    /// Kills the plugin if it runs longer than `timeout` (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> PluginCall {
        self.timeout = timeout;
        self
    }

    /// The bytes the child will get on stdin.
    pub fn stdin_bytes(&self) -> &[u8] {
        &self.stdin
    }

    /// The environment the child will get.
    pub fn environment(&self) -> &BTreeMap<String, OsString> {
        &self.env
    }

    /// Executes the plugin and collects its output.
    ///
    /// # Errors
    ///
    /// When the binary cannot be started, its pipes fail, or it runs past the
    /// timeout (it is then killed).
    pub fn try_run(&self) -> io::Result<PluginOutput> {
        let mut child = Command::new(&self.binary)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let input = self.stdin.clone();
        // A plugin may exit without reading stdin (VERSION): ignore EPIPE.
        let writer = thread::spawn(move || {
            if let Some(mut pipe) = stdin {
                let _ = pipe.write_all(&input);
            }
        });
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);

        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let stuck = where_stuck(child.id());
                let _ = child.kill();
                let _ = child.wait();
                let stderr = collect(stderr).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} ran longer than {:?}; killed. Its threads and children were in:\n{stuck}\nstderr:\n{}",
                        self.binary.display(),
                        self.timeout,
                        String::from_utf8_lossy(&stderr)
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(5));
        };
        let _ = writer.join();
        Ok(PluginOutput {
            stdout: collect(stdout)?,
            stderr: collect(stderr)?,
            status,
        })
    }

    /// Executes the plugin and collects its output.
    ///
    /// # Panics
    ///
    /// When [`PluginCall::try_run`] fails.
    pub fn run(&self) -> PluginOutput {
        self.try_run()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.binary.display()))
    }
}

/// Where process `pid`, its threads and its descendants wait, from
/// `/proc`: one line per thread with its name, kernel wait channel and
/// syscall (number and arguments), for a plugin that hangs.
fn where_stuck(pid: u32) -> String {
    let mut lines = Vec::new();
    let mut pending = vec![pid.to_string()];
    while let Some(pid) = pending.pop() {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
        for task in tasks.into_iter().flatten().flatten() {
            let dir = task.path();
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map(|text| text.trim().to_owned())
                    .unwrap_or_default()
            };
            lines.push(format!(
                "  {pid}/{}: {} wchan={} syscall={}",
                task.file_name().to_string_lossy(),
                read("comm"),
                read("wchan"),
                read("syscall")
            ));
            pending.extend(read("children").split_whitespace().map(str::to_owned));
        }
    }
    lines.join("\n")
}

type Reader = thread::JoinHandle<io::Result<Vec<u8>>>;

fn reader(mut pipe: impl Read + Send + 'static) -> Reader {
    thread::spawn(move || {
        let mut buf = Vec::new();
        pipe.read_to_end(&mut buf)?;
        Ok(buf)
    })
}

fn collect(handle: Option<Reader>) -> io::Result<Vec<u8>> {
    match handle {
        None => Ok(Vec::new()),
        Some(h) => h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("output reader thread panicked"))),
    }
}

/// What a plugin run produced.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    /// Everything written to stdout, byte for byte.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// The exit status.
    pub status: ExitStatus,
}

impl PluginOutput {
    /// The exit code, or `None` if the plugin was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether the exit status is 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (lossy).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Stdout parsed as JSON.
    ///
    /// # Panics
    ///
    /// When stdout is not JSON; the message shows both streams.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("plugin stdout is not JSON ({e})\n{}", self.describe()))
    }

    /// Requires exit status 0 and returns `self` for chaining.
    ///
    /// # Panics
    ///
    /// On any other status; the message shows stdout and stderr.
    pub fn expect_success(self) -> PluginOutput {
        if !self.success() {
            panic!("plugin failed\n{}", self.describe());
        }
        self
    }

    /// Requires a non-zero exit and an error object on stdout with `code`;
    /// returns the error object.
    ///
    /// # Panics
    ///
    /// When the plugin succeeded, was killed, printed no JSON object, or the
    /// error has another code.
    pub fn expect_error(&self, code: u64) -> serde_json::Value {
        if self.success() || self.code().is_none() {
            panic!("expected an error with code {code}\n{}", self.describe());
        }
        let err = self.json();
        if err["code"].as_u64() != Some(code) {
            panic!("expected error code {code}\n{}", self.describe());
        }
        if !err["msg"].is_string() {
            panic!("error object has no msg\n{}", self.describe());
        }
        err
    }

    /// Status, stdout and stderr, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout_str(),
            self.stderr_str()
        )
    }
}
