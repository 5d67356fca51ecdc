//! `CNI_TRACE=1`: a built-in replacement for the wrapper script operators put
//! in place of a plugin to log its calls.
//!
//! With `CNI_TRACE=1` in its environment, every call appends one record to
//! `<dir>/<binary name>`, where `<dir>` is `CNI_TRACE_DIR` when set and not
//! empty, else `/tmp/log`. The record has the wrapper's layout:
//!
//! ```text
//! Fri Aug 27 07:55:52 EDT 2021
//! =================================================================
//! CNI params:
//! <every NAME=value line of the environment containing "CNI">
//! env:
//! <the whole environment, one NAME=value a line>
//! INPUT:
//! <stdin exactly as received>
//! OUTPUT:
//! <stdout exactly as written: result, error object or nothing>
//! Returned at: Fri Aug 27 07:55:53 EDT 2021
//! =================================================================
//!
//!
//! ```
//!
//! Times are printed as `date` prints them in the C locale and the local time
//! zone (`TZ`, else `/etc/localtime`). `CNI params:` lists the lines `env |
//! grep CNI` would, so a variable whose value contains `CNI` is listed too.
//! VERSION calls, and runs without `CNI_COMMAND`, do not read stdin, so their
//! `INPUT:` is empty: reading stdin just for the trace could block the call.
//!
//! Unlike the wrapper, a record reaches the file in one write under an
//! exclusive `flock`, so parallel calls never interleave; the directory is
//! created 0700 and the file 0600, and a directory or file that is a
//! symbolic link, not owned by the effective user, or writable by group or
//! others is refused (nothing is followed: the directory is opened with
//! `O_NOFOLLOW` and the file with `openat(O_NOFOLLOW)` inside it). A refused
//! or failing trace prints one warning to stderr and never changes the
//! call's output or exit code. Without `CNI_TRACE=1` the cost is one lookup
//! in the environment already read.

use crate::env::CniEnv;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, civil::DateTime};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable that turns the trace on when it is exactly `1`.
pub const TRACE_VAR: &str = "CNI_TRACE";

/// The variable naming the trace directory.
pub const TRACE_DIR_VAR: &str = "CNI_TRACE_DIR";

/// The trace directory when `CNI_TRACE_DIR` is unset or empty (the
/// wrapper's `LOG_DIR`).
pub const DEFAULT_DIR: &str = "/tmp/log";

/// The separator line of a record: 65 `=`.
pub const RULE: &str = "=================================================================";

/// Permission bits that let group or others write.
const GROUP_OTHER_WRITE: u32 = 0o022;

/// Why a trace was not written.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The directory was missing and could not be created.
    #[error("create trace directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What `mkdir` said.
        #[source]
        source: io::Error,
    },
    /// The directory could not be opened.
    #[error("open trace directory {path}: {source}")]
    OpenDir {
        /// The directory.
        path: PathBuf,
        /// What `open` said.
        #[source]
        source: io::Error,
    },
    /// The file could not be opened or created.
    #[error("open trace file {path}: {source}")]
    OpenFile {
        /// The file.
        path: PathBuf,
        /// What `openat` said.
        #[source]
        source: io::Error,
    },
    /// The directory or file is unsafe to write to.
    #[error("refusing {path}: {reason}")]
    Refused {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: Refusal,
    },
    /// The exclusive lock could not be taken.
    #[error("lock trace file {path}: {source}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// What `flock` said.
        #[source]
        source: io::Error,
    },
    /// The record could not be written.
    #[error("write trace file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What `write` said.
        #[source]
        source: io::Error,
    },
    /// Neither `argv[0]` nor the executable's path has a file name to name
    /// the trace file after.
    #[error("no program name to name the trace file after")]
    NoProgramName,
}

/// What makes a trace directory or file unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It is a symbolic link.
    #[error("it is a symbolic link")]
    Symlink,
    /// The directory path names something else.
    #[error("it is not a directory")]
    NotDirectory,
    /// The file is a FIFO, device, directory or socket.
    #[error("it is not a regular file")]
    NotRegularFile,
    /// Someone else owns it.
    #[error("it is owned by uid {found}, not {expected}")]
    Owner {
        /// Its owner.
        found: u32,
        /// The effective uid of the plugin.
        expected: u32,
    },
    /// Group or others may write to it.
    #[error("it is writable by group or others (mode {mode:04o})")]
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// The file has other names, which a safe directory cannot explain.
    #[error("it has {links} hard links")]
    HardLinks {
        /// Its link count.
        links: u64,
    },
}

/// Whether a `CNI_TRACE` value turns the trace on: only `1` does.
pub fn is_enabled(value: Option<&OsStr>) -> bool {
    value.is_some_and(|value| value == "1")
}

/// The local time zone as `date` resolves it.
#[derive(Debug, Clone)]
pub enum LocalZone {
    /// A zone from `TZ` or `/etc/localtime` (UTC when neither gives one).
    Known(TimeZone),
    /// `TZ` is set to something no zone can be made of. glibc then uses UTC
    /// and prints what it could read of the value as the abbreviation.
    Unknown {
        /// The abbreviation `date` prints.
        abbreviation: String,
    },
}

impl LocalZone {
    /// The process's local zone; `tz` is its `TZ` value, used only to
    /// reproduce glibc when the value is invalid.
    pub fn system(tz: Option<&OsStr>) -> LocalZone {
        match TimeZone::try_system() {
            Ok(zone) => LocalZone::Known(zone),
            Err(_) => match tz {
                Some(value) if !value.is_empty() => LocalZone::Unknown {
                    abbreviation: glibc_fallback_abbreviation(&value.to_string_lossy()),
                },
                _ => LocalZone::Known(TimeZone::UTC),
            },
        }
    }

    /// `at` as `date` prints it: `%a %b %e %H:%M:%S %Z %Y` in the C locale,
    /// e.g. `Fri Aug 27 07:55:52 EDT 2021`.
    pub fn format(&self, at: Timestamp) -> String {
        let (time, abbreviation) = match self {
            LocalZone::Known(zone) => (
                zone.to_datetime(at),
                zone.to_offset_info(at).abbreviation().to_owned(),
            ),
            LocalZone::Unknown { abbreviation } => {
                (TimeZone::UTC.to_datetime(at), abbreviation.clone())
            }
        };
        format_civil(time, &abbreviation)
    }
}

/// The civil time with an abbreviation in `date`'s default format. The
/// abbreviation keeps its case (jiff's `%Z` would upper-case it).
fn format_civil(time: DateTime, abbreviation: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = match time.weekday() {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    };
    let month = usize::try_from(time.month() - 1)
        .ok()
        .and_then(|index| MONTHS.get(index))
        .copied()
        .unwrap_or("???");
    format!(
        "{weekday} {month} {:>2} {:02}:{:02}:{:02} {abbreviation} {}",
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.year()
    )
}

/// What glibc prints as the zone of an invalid `TZ`: the leading letters
/// (after an optional `:`) when there are at least three, else nothing.
/// `Foo/Bar` gives `Foo`, `X` gives the empty string.
pub fn glibc_fallback_abbreviation(tz: &str) -> String {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    let letters: String = name.chars().take_while(char::is_ascii_alphabetic).collect();
    if letters.len() >= 3 {
        letters
    } else {
        String::new()
    }
}

/// One call's record, from values.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// When the call started, formatted (see [`LocalZone::format`]).
    pub start: &'a str,
    /// When it returned, formatted.
    pub end: &'a str,
    /// The whole environment, in order.
    pub vars: &'a [(OsString, OsString)],
    /// Stdin as read.
    pub input: &'a [u8],
    /// Stdout as written.
    pub output: &'a [u8],
}

impl Record<'_> {
    /// The record's bytes, ready to append.
    pub fn to_bytes(&self) -> Vec<u8> {
        let env = env_lines(self.vars);
        let mut out = Vec::with_capacity(
            env.len() * 2 + self.input.len() + self.output.len() + 4 * RULE.len(),
        );
        let mut line = |text: &[u8]| {
            out.extend_from_slice(text);
            out.push(b'\n');
        };
        line(self.start.as_bytes());
        line(RULE.as_bytes());
        line(b"CNI params:");
        for env_line in env.split(|&b| b == b'\n').filter(|l| contains(l, b"CNI")) {
            line(env_line);
        }
        line(b"env:");
        for env_line in env.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            line(env_line);
        }
        line(b"INPUT:");
        line(self.input);
        line(b"OUTPUT:");
        line(self.output);
        line(format!("Returned at: {}", self.end).as_bytes());
        line(RULE.as_bytes());
        line(b"");
        line(b"");
        out
    }
}

/// The environment as `env` prints it: `NAME=value` and a newline each. A
/// value holding a newline spans several lines, as with `env`.
fn env_lines(vars: &[(OsString, OsString)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in vars {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Where and how one process writes its records.
#[derive(Debug, Clone)]
pub struct Tracer {
    dir: PathBuf,
    file_name: OsString,
    zone: LocalZone,
    start: Timestamp,
    owner: u32,
}

impl Tracer {
    /// A tracer writing to `dir/file_name`, for a call that started at
    /// `start`, accepting only a directory and file owned by `owner`.
    pub fn new(
        dir: impl Into<PathBuf>,
        file_name: impl Into<OsString>,
        zone: LocalZone,
        start: Timestamp,
        owner: u32,
    ) -> Tracer {
        Tracer {
            dir: dir.into(),
            file_name: file_name.into(),
            zone,
            start,
            owner,
        }
    }

    /// `None` unless `env` has `CNI_TRACE=1`; else the tracer of this
    /// process: `CNI_TRACE_DIR` or [`DEFAULT_DIR`], the binary's file name,
    /// the local zone, now, and the effective uid.
    ///
    /// # Errors
    /// [`TraceError::NoProgramName`] when the binary has no file name.
    pub fn from_env(env: &CniEnv) -> Option<Result<Tracer, TraceError>> {
        if !is_enabled(env.var(TRACE_VAR).map(OsString::as_os_str)) {
            return None;
        }
        let start = Timestamp::now();
        let dir = env
            .var(TRACE_DIR_VAR)
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
        let Some(file_name) = program_name() else {
            return Some(Err(TraceError::NoProgramName));
        };
        let zone = LocalZone::system(env.var("TZ").map(OsString::as_os_str));
        let owner = nix::unistd::geteuid().as_raw();
        Some(Ok(Tracer::new(dir, file_name, zone, start, owner)))
    }

    /// The file records are appended to.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.file_name)
    }

    /// The record of a call that returned at `end`.
    pub fn record(
        &self,
        vars: &[(OsString, OsString)],
        input: &[u8],
        output: &[u8],
        end: Timestamp,
    ) -> Vec<u8> {
        let start = self.zone.format(self.start);
        let end = self.zone.format(end);
        Record {
            start: &start,
            end: &end,
            vars,
            input,
            output,
        }
        .to_bytes()
    }

    /// Appends `record` in one write under an exclusive `flock`, creating
    /// the directory (0700) and the file (0600) when missing. Returns the
    /// file's path.
    ///
    /// # Errors
    /// A [`TraceError`] when the directory or file is unsafe (see the module
    /// docs) or any step fails; nothing is written then.
    pub fn append(&self, record: &[u8]) -> Result<PathBuf, TraceError> {
        let dir = open_dir(&self.dir, self.owner)?;
        let path = self.path();
        let mut file = open_file(&dir, &path, &self.file_name, self.owner)?;
        file.lock().map_err(|source| TraceError::Lock {
            path: path.clone(),
            source,
        })?;
        file.write_all(record).map_err(|source| TraceError::Write {
            path: path.clone(),
            source,
        })?;
        // Closing the file releases the lock.
        Ok(path)
    }
}

/// The file name of `argv[0]`, else of the running executable.
fn program_name() -> Option<OsString> {
    let from_argv = std::env::args_os()
        .next()
        .and_then(|arg0| Path::new(&arg0).file_name().map(OsStr::to_os_string));
    from_argv.or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_name().map(OsStr::to_os_string))
    })
}

/// Opens the trace directory without following a symbolic link, creating
/// it (0700, parents too) when missing, and checks it.
fn open_dir(dir: &Path, owner: u32) -> Result<File, TraceError> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
            .open(dir)
    };
    let opened = match open() {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| TraceError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
            open()
        }
        other => other,
    };
    let file = opened.map_err(|source| match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => refused(dir, Refusal::Symlink),
        Ok(meta) if !meta.is_dir() => refused(dir, Refusal::NotDirectory),
        _ => TraceError::OpenDir {
            path: dir.to_path_buf(),
            source,
        },
    })?;
    check(dir, &file, owner, Kind::Directory)?;
    Ok(file)
}

/// Opens (or creates, 0600) `name` in `dir` for appending without following
/// a symbolic link, and checks it. `O_NONBLOCK` keeps a FIFO from blocking
/// the open; the check then refuses it.
fn open_file(dir: &File, path: &Path, name: &OsStr, owner: u32) -> Result<File, TraceError> {
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY
        | OFlag::O_NONBLOCK;
    let mode = Mode::S_IRUSR | Mode::S_IWUSR;
    let fd = openat(dir, name, flags, mode).map_err(|errno| {
        if errno == Errno::ELOOP {
            refused(path, Refusal::Symlink)
        } else {
            TraceError::OpenFile {
                path: path.to_path_buf(),
                source: io::Error::from(errno),
            }
        }
    })?;
    let file = File::from(fd);
    check(path, &file, owner, Kind::File)?;
    Ok(file)
}

/// What an opened path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
}

/// Refuses an opened directory or file that is of the wrong kind, owned by
/// someone other than `owner`, writable by group or others, or (a file)
/// hard-linked elsewhere.
fn check(path: &Path, opened: &File, owner: u32, kind: Kind) -> Result<(), TraceError> {
    let meta = opened.metadata().map_err(|source| match kind {
        Kind::Directory => TraceError::OpenDir {
            path: path.to_path_buf(),
            source,
        },
        Kind::File => TraceError::OpenFile {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let reason = match kind {
        Kind::Directory if !meta.is_dir() => Some(Refusal::NotDirectory),
        Kind::File if !meta.is_file() => Some(Refusal::NotRegularFile),
        _ if meta.uid() != owner => Some(Refusal::Owner {
            found: meta.uid(),
            expected: owner,
        }),
        _ if meta.mode() & GROUP_OTHER_WRITE != 0 => Some(Refusal::Writable {
            mode: meta.mode() & 0o7777,
        }),
        Kind::File if meta.nlink() > 1 => Some(Refusal::HardLinks {
            links: meta.nlink(),
        }),
        _ => None,
    };
    match reason {
        Some(reason) => Err(refused(path, reason)),
        None => Ok(()),
    }
}

fn refused(path: &Path, reason: Refusal) -> TraceError {
    TraceError::Refused {
        path: path.to_path_buf(),
        reason,
    }
}

/// One traced call: the tracer, the call's environment and its stdin once
/// read. [`crate::skel::run`] shares it with the panic hook, so a panicking
/// call is recorded too.
#[derive(Debug)]
pub struct CallTrace {
    tracer: Tracer,
    vars: Vec<(OsString, OsString)>,
    input: OnceLock<Vec<u8>>,
    recorded: AtomicBool,
}

impl CallTrace {
    /// A traced call of `tracer` with the environment `vars`.
    pub fn new(tracer: Tracer, vars: Vec<(OsString, OsString)>) -> CallTrace {
        CallTrace {
            tracer,
            vars,
            input: OnceLock::new(),
            recorded: AtomicBool::new(false),
        }
    }

    /// `None` unless `env` has `CNI_TRACE=1`. When the tracer cannot be set
    /// up, prints the warning and returns `None`.
    pub fn start(env: &CniEnv) -> Option<CallTrace> {
        match Tracer::from_env(env)? {
            Ok(tracer) => Some(CallTrace::new(tracer, env.vars.clone())),
            Err(err) => {
                warn(&err);
                None
            }
        }
    }

    /// Keeps `input` as the call's stdin; later calls are ignored.
    pub fn set_input(&self, input: &[u8]) {
        let _ = self.input.set(input.to_vec());
    }

    /// Appends the call's record with `output` as its stdout, once: later
    /// calls do nothing. A failure prints one warning to stderr.
    pub fn finish(&self, output: &[u8]) {
        if let Err(err) = self.finish_at(output, Timestamp::now()) {
            warn(&err);
        }
    }

    /// [`CallTrace::finish`] with the end time given and the error
    /// returned; `Ok(None)` when the call was already recorded.
    ///
    /// # Errors
    /// As [`Tracer::append`].
    pub fn finish_at(&self, output: &[u8], end: Timestamp) -> Result<Option<PathBuf>, TraceError> {
        if self.recorded.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        let input = self.input.get().map(Vec::as_slice).unwrap_or_default();
        let record = self.tracer.record(&self.vars, input, output, end);
        self.tracer.append(&record).map(Some)
    }
}

/// Runs `call`. When it panics and unwinds (builds without `panic =
/// "abort"`), first records the call with no output, as the runtime sees
/// none, then resumes unwinding. With `panic = "abort"` the panic hook
/// records instead.
pub fn record_unwinding_panic<T>(trace: Option<&CallTrace>, call: impl FnOnce() -> T) -> T {
    let Some(trace) = trace else {
        return call();
    };
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => value,
        Err(payload) => {
            trace.finish(b"");
            panic::resume_unwind(payload)
        }
    }
}

/// The one warning of a failed trace.
fn warn(err: &TraceError) {
    let _ = writeln!(
        io::stderr(),
        "warning: {TRACE_VAR}: {err}; this call is not traced"
    );
}

#[cfg(test)]
mod tests;
