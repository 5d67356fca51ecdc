//! The plugin entry point: reads the `CNI_*` environment and stdin, checks
//! what each command needs, answers VERSION, checks `cniVersion`, calls the
//! plugin and prints its result or error as the spec (and the reference
//! plugins) do. [`dispatch`] is a pure function of its inputs; [`run`] binds
//! it to the real process.

use crate::args::CniArgs;
use crate::config::{Attachment, NetConf};
use crate::env::CniEnv;
use crate::error::{CniError, ErrorCode};
use crate::result::{self, Result as CniResult};
use crate::trace::{self, CallTrace};
use crate::version::{CniVersion, SemVer, parse_semver};
use serde::de::DeserializeOwned;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

/// Stdin larger than this is refused rather than read into memory.
pub const MAX_STDIN_BYTES: u64 = 16 * 1024 * 1024;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach a container.
    Del,
    /// Verify an attachment (0.4.0+).
    Check,
    /// Report supported versions.
    Version,
    /// Report readiness (1.1.0+).
    Status,
    /// Remove resources of attachments no longer valid (1.1.0+).
    Gc,
}

impl Command {
    /// Parses `CNI_COMMAND`.
    pub fn parse(text: &str) -> Option<Command> {
        match text {
            "ADD" => Some(Command::Add),
            "DEL" => Some(Command::Del),
            "CHECK" => Some(Command::Check),
            "VERSION" => Some(Command::Version),
            "STATUS" => Some(Command::Status),
            "GC" => Some(Command::Gc),
            _ => None,
        }
    }

    /// The `CNI_COMMAND` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// Whether the command addresses one attachment (and so needs a
    /// container ID and an interface name).
    fn is_per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    /// The environment variables this command requires, in libcni's order.
    fn required_vars(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => {
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
            }
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Command::Status | Command::Gc => &["CNI_PATH"],
            Command::Version => &[],
        }
    }

    /// The oldest config version that allows the command.
    fn minimum_version(self) -> Option<CniVersion> {
        match self {
            Command::Check => Some(CniVersion::V0_4_0),
            Command::Status | Command::Gc => Some(CniVersion::V1_1_0),
            Command::Add | Command::Del | Command::Version => None,
        }
    }
}

/// One validated call, handed to the plugin.
#[derive(Debug)]
pub struct Request<'a> {
    /// The command being run.
    pub command: Command,
    /// The call's environment.
    pub env: &'a CniEnv,
    /// Stdin exactly as received (forwarded verbatim to IPAM plugins).
    pub stdin: &'a [u8],
    /// The common config keys.
    pub config: NetConf,
    /// The config's `cniVersion`, already checked to be supported.
    pub version: CniVersion,
}

impl Request<'_> {
    /// Reads the plugin's own config struct from stdin. Unknown keys are
    /// ignored.
    ///
    /// # Errors
    /// Code 7 when a field has the wrong type or shape.
    pub fn parse_config<T: DeserializeOwned>(&self) -> Result<T, CniError> {
        crate::json::from_slice(self.stdin)
            .map_err(|err| CniError::invalid_config(format!("failed to load netconf: {err}")))
    }

    /// The config's `prevResult` converted to the current result, if any.
    ///
    /// # Errors
    /// Code 6 for a malformed `prevResult`, code 1 for an unknown version.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        match &self.config.prev_result {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => Ok(Some(result::decode(value, self.version)?.0)),
        }
    }

    /// Parses `CNI_ARGS`, accepting the keys in `known`.
    ///
    /// # Errors
    /// Code 4 for malformed pairs, or unknown keys without `IgnoreUnknown`.
    pub fn args(&self, known: &[&str]) -> Result<CniArgs, CniError> {
        Ok(CniArgs::parse_known(&self.env.args, known)?)
    }

    /// The attachments a GC request names as still valid (empty when absent).
    pub fn valid_attachments(&self) -> &[Attachment] {
        self.config.valid_attachments.as_deref().unwrap_or_default()
    }
}

/// What a plugin does. Each command gets a validated [`Request`]; errors
/// are printed by the dispatcher.
pub trait Plugin {
    /// ADD: attach and return the result in the current shape.
    ///
    /// # Errors
    /// Any [`CniError`]; it is printed as the call's error.
    fn add(&self, req: &Request<'_>) -> Result<CniResult, CniError>;

    /// DEL: detach; must succeed when there is nothing left to remove.
    ///
    /// # Errors
    /// Any [`CniError`].
    fn del(&self, req: &Request<'_>) -> Result<(), CniError>;

    /// CHECK: verify the attachment.
    ///
    /// # Errors
    /// Any [`CniError`] describing what does not match.
    fn check(&self, req: &Request<'_>) -> Result<(), CniError>;

    /// STATUS: whether the plugin can service ADD. Succeeds by default.
    ///
    /// # Errors
    /// Code 50 or 51 when not ready.
    fn status(&self, _req: &Request<'_>) -> Result<(), CniError> {
        Ok(())
    }

    /// GC: release whatever belongs to attachments not in
    /// [`Request::valid_attachments`]. A no-op by default.
    ///
    /// # Errors
    /// Any [`CniError`].
    fn gc(&self, _req: &Request<'_>) -> Result<(), CniError> {
        Ok(())
    }
}

/// What a call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes for stdout: a result, an error object, or nothing.
    pub stdout: Vec<u8>,
    /// Bytes for stderr (the about text when `CNI_COMMAND` is missing).
    pub stderr: Vec<u8>,
    /// Whether the process exits 0.
    pub success: bool,
    /// Stdin as it was read (empty when it was not needed).
    pub input: Vec<u8>,
}

/// Runs one call: validates `env` and the config from `read_stdin`, calls
/// `plugin` and renders the outcome. `read_stdin` is only called when the
/// command needs stdin.
pub fn dispatch(
    plugin: &dyn Plugin,
    about: &str,
    env: &CniEnv,
    read_stdin: &mut dyn FnMut() -> io::Result<Vec<u8>>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut reply_version = CniVersion::LATEST.as_str().to_owned();
    let result = run_command(
        plugin,
        about,
        env,
        read_stdin,
        &mut outcome,
        &mut reply_version,
    );
    match result {
        Ok(stdout) => {
            outcome.stdout = stdout;
            outcome.success = true;
        }
        Err(err) => {
            outcome.stdout = err.to_json(&reply_version);
            outcome.success = false;
        }
    }
    outcome
}

/// The dispatcher's steps; returns the bytes for stdout on success.
fn run_command(
    plugin: &dyn Plugin,
    about: &str,
    env: &CniEnv,
    read_stdin: &mut dyn FnMut() -> io::Result<Vec<u8>>,
    outcome: &mut Outcome,
    reply_version: &mut String,
) -> Result<Vec<u8>, CniError> {
    if env.command.is_empty() {
        outcome.stderr = about_text(about).into_bytes();
        return Ok(Vec::new());
    }
    let command = Command::parse(&env.command);
    check_required_vars(env, command)?;
    if command == Some(Command::Version) {
        return Ok(version_reply());
    }

    outcome.input = read_limited(read_stdin)?;
    let config_value = parse_config_object(&outcome.input)?;
    if let Some(version) = config_value
        .get("cniVersion")
        .and_then(serde_json::Value::as_str)
    {
        *reply_version = if version.is_empty() {
            CniVersion::V0_1_0.as_str()
        } else {
            version
        }
        .to_owned();
    }
    validate_network_name(&config_value)?;
    let Some(command) = command else {
        return Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("unknown CNI_COMMAND: {}", env.command),
        ));
    };
    if command.is_per_attachment() {
        validate_container_id(&env.container_id)?;
        validate_ifname(&env.ifname)?;
    }
    let version = check_version(command, &config_value)?;
    let config: NetConf = crate::json::from_value(config_value)
        .map_err(|err| CniError::invalid_config(format!("failed to load netconf: {err}")))?;
    let request = Request {
        command,
        env,
        stdin: &outcome.input,
        config,
        version,
    };
    match command {
        Command::Add => {
            let added = plugin.add(&request)?;
            Ok(result::encode(&added, version)?)
        }
        Command::Del => plugin.del(&request).map(|()| Vec::new()),
        Command::Check => plugin.check(&request).map(|()| Vec::new()),
        Command::Status => plugin.status(&request).map(|()| Vec::new()),
        // A runtime skips GC for a list with `disableGC`; a plugin config
        // that still carries it (a .conf turned into a list) is honoured too.
        Command::Gc if request.config.disable_gc => Ok(Vec::new()),
        Command::Gc => plugin.gc(&request).map(|()| Vec::new()),
        Command::Version => Ok(version_reply()),
    }
}

/// The text printed to stderr when the binary is run without a command.
fn about_text(about: &str) -> String {
    let versions: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
    format!(
        "{about}\nCNI protocol versions supported: {}\n",
        versions.join(", ")
    )
}

/// The VERSION answer, compact with a newline as libcni's encoder prints it.
pub fn version_reply() -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct VersionInfo {
        #[serde(rename = "cniVersion")]
        cni_version: &'static str,
        #[serde(rename = "supportedVersions")]
        supported_versions: Vec<&'static str>,
    }
    let info = VersionInfo {
        cni_version: CniVersion::LATEST.as_str(),
        supported_versions: CniVersion::ALL.iter().map(|v| v.as_str()).collect(),
    };
    crate::json::to_go_line(&info).unwrap_or_default()
}

/// Code 4 naming every required variable that is empty, in libcni's order.
fn check_required_vars(env: &CniEnv, command: Option<Command>) -> Result<(), CniError> {
    let required = command.map(Command::required_vars).unwrap_or_default();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| {
            let value = match *name {
                "CNI_CONTAINERID" => &env.container_id,
                "CNI_NETNS" => &env.netns,
                "CNI_IFNAME" => &env.ifname,
                _ => &env.path,
            };
            value.is_empty()
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("required env variables [{}] missing", missing.join(",")),
        ))
    }
}

/// Reads stdin, refusing more than [`MAX_STDIN_BYTES`].
fn read_limited(read_stdin: &mut dyn FnMut() -> io::Result<Vec<u8>>) -> Result<Vec<u8>, CniError> {
    let input = read_stdin()
        .map_err(|err| CniError::new(ErrorCode::Io, format!("error reading from stdin: {err}")))?;
    if input.len() as u64 > MAX_STDIN_BYTES {
        return Err(CniError::new(
            ErrorCode::Io,
            format!("error reading from stdin: input exceeds {MAX_STDIN_BYTES} bytes"),
        ));
    }
    Ok(input)
}

/// Code 6 unless stdin is a JSON object.
fn parse_config_object(input: &[u8]) -> Result<serde_json::Value, CniError> {
    let decode_error = |reason: String| {
        CniError::new(
            ErrorCode::Decoding,
            format!("error unmarshall network config: {reason}"),
        )
    };
    let value: serde_json::Value = serde_json::from_slice(input).map_err(|err| {
        decode_error(if err.is_eof() {
            "unexpected end of JSON input".to_owned()
        } else {
            err.to_string()
        })
    })?;
    match value {
        serde_json::Value::Object(_) => Ok(value),
        serde_json::Value::Null => Ok(serde_json::Value::Object(serde_json::Map::new())),
        other => Err(decode_error(format!(
            "cannot unmarshal {} into a network config object",
            json_kind(&other)
        ))),
    }
}

/// Go's name for a JSON value's kind.
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// The network name must be present and match `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
fn validate_network_name(config: &serde_json::Value) -> Result<(), CniError> {
    let name = match config.get("name") {
        None | Some(serde_json::Value::Null) => "",
        Some(serde_json::Value::String(name)) => name.as_str(),
        Some(other) => {
            return Err(CniError::new(
                ErrorCode::Decoding,
                format!(
                    "error unmarshall network config: cannot unmarshal {} into field name of type string",
                    json_kind(other)
                ),
            ));
        }
    };
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !is_cni_identifier(name) {
        return Err(
            CniError::invalid_config("invalid characters found in network name").with_details(name),
        );
    }
    Ok(())
}

/// libcni's identifier rule for network names and container IDs.
pub fn is_cni_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphanumeric() => {
            bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        _ => false,
    }
}

/// Code 3 for an empty container ID, code 4 for forbidden characters.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            "missing containerID",
        ));
    }
    if !is_cni_identifier(id) {
        return Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            "invalid characters in containerID",
        )
        .with_details(id));
    }
    Ok(())
}

/// The kernel's interface-name rules, with libcni's messages (code 4).
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let invalid = |msg: &str| CniError::new(ErrorCode::InvalidEnvironment, msg);
    if name.is_empty() {
        return Err(invalid("interface name is empty"));
    }
    if name.len() > 15 {
        return Err(invalid("interface name is too long")
            .with_details("interface name should be less than 16 characters"));
    }
    if name == "." || name == ".." {
        return Err(invalid("interface name is . or .."));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(invalid(
            "interface name contains / or : or whitespace characters",
        ));
    }
    Ok(())
}

/// Checks the config's `cniVersion` for `command` with libcni's rules and
/// messages, and returns it.
fn check_version(command: Command, config: &serde_json::Value) -> Result<CniVersion, CniError> {
    let text = match config.get("cniVersion") {
        None | Some(serde_json::Value::Null) => "",
        Some(serde_json::Value::String(text)) => text.as_str(),
        Some(other) => {
            return Err(CniError::new(
                ErrorCode::Decoding,
                format!(
                    "decoding version from network config: cannot unmarshal {} into field cniVersion of type string",
                    json_kind(other)
                ),
            ));
        }
    };
    if let Some(minimum) = command.minimum_version() {
        let decoding = |err: crate::version::VersionParseError| {
            CniError::new(ErrorCode::Decoding, err.to_string())
        };
        let config_version: SemVer = parse_semver(text).map_err(decoding)?;
        if config_version < minimum.triple() {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("config version does not allow {}", command.as_str()),
            ));
        }
    }
    let shown = if text.is_empty() {
        CniVersion::V0_1_0.as_str()
    } else {
        text
    };
    CniVersion::from_exact(text).ok_or_else(|| {
        CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions").with_details(
            format!(
                "config is \"{shown}\", plugin supports {}",
                CniVersion::supported_list_quoted()
            ),
        )
    })
}

/// Runs `plugin` as a process: reads the real environment and stdin, writes
/// stdout (and stderr), and returns the exit code. With `CNI_TRACE=1` the
/// call is also recorded (see [`crate::trace`]), panics included; the trace
/// never changes the output or the exit code.
pub fn run(plugin: &dyn Plugin, about: &str) -> ExitCode {
    let env = CniEnv::from_vars(std::env::vars_os());
    let trace = CallTrace::start(&env).map(Arc::new);
    report_panics_as_errors(trace.clone());
    let mut read_stdin = || {
        let mut input = Vec::new();
        io::stdin()
            .lock()
            .take(MAX_STDIN_BYTES + 1)
            .read_to_end(&mut input)?;
        if let Some(trace) = &trace {
            trace.set_input(&input);
        }
        Ok(input)
    };
    let outcome = trace::record_unwinding_panic(trace.as_deref(), || {
        dispatch(plugin, about, &env, &mut read_stdin)
    });
    let _ = io::stderr().write_all(&outcome.stderr);
    let mut stdout = io::stdout().lock();
    // If stdout is gone there is no one left to tell.
    let _ = stdout
        .write_all(&outcome.stdout)
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Some(trace) = &trace {
        trace.finish(&outcome.stdout);
    }
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// With `panic = "abort"` nothing unwinds back to the dispatcher, so a
/// panic is reported from the hook: the runtime still reads an error object
/// (code 999) on stdout, and the process exits non-zero by aborting. When
/// the call is traced, the hook records it with that error object as its
/// output (and whatever stdin was read by then).
fn report_panics_as_errors(trace: Option<Arc<CallTrace>>) {
    #[cfg(panic = "abort")]
    std::panic::set_hook(Box::new(move |info| {
        let err = CniError::internal(format!("plugin panicked: {info}"));
        let reply = err.to_json(CniVersion::LATEST.as_str());
        let mut stdout = io::stdout().lock();
        let _ = stdout.write_all(&reply).and_then(|()| stdout.flush());
        drop(stdout);
        eprintln!("{info}");
        if let Some(trace) = &trace {
            trace.finish(&reply);
        }
    }));
    // Unwinding builds record a panic in `trace::record_unwinding_panic`.
    #[cfg(not(panic = "abort"))]
    drop(trace);
}

#[cfg(test)]
mod tests;
