//! A guard that undoes what a test set up, in reverse order, on `Drop`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::cmd;

type Action = Box<dyn FnOnce() -> Result<(), String>>;

/// Registered clean-up actions, run last-registered-first when the guard is
/// dropped, including when the test panics.
///
/// Failures are printed to stderr (shown by the test harness for failing
/// tests) and never panic, and every action runs even if an earlier one
/// failed. Actions should be safe when there is nothing to undo: the plugin
/// under test may already have removed the link or chain, which is expected.
///
/// Declare the guard *after* the [`TestNetns`](crate::TestNetns) it refers to,
/// so it drops first while the namespace still exists.
///
/// ```no_run
/// let mut cleanup = integration::Cleanup::new();
/// cleanup.link_del(None, "cnitest0");
/// cleanup.iptables_chain(false, "nat", "CNI-abc");
/// cleanup.remove_path("/tmp/some-data-dir");
/// ```
#[derive(Default)]
pub struct Cleanup {
    actions: Vec<(String, Action)>,
}

impl fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.actions.iter().map(|(d, _)| d.as_str()).collect();
        f.debug_struct("Cleanup").field("actions", &names).finish()
    }
}

impl Cleanup {
    /// An empty guard.
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    /// Registers a closure; `description` names it in failure messages.
    pub fn push(
        &mut self,
        description: impl Into<String>,
        action: impl FnOnce() -> Result<(), String> + 'static,
    ) -> &mut Cleanup {
        self.actions.push((description.into(), Box::new(action)));
        self
    }

    /// Registers a command; a non-zero exit is reported, not fatal.
    pub fn command(&mut self, program: &str, args: &[&str]) -> &mut Cleanup {
        let program = program.to_string();
        let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
        let line = cmd::command_line(&program, &args);
        self.push(line, move || run_checked(&program, &args))
    }

    /// Registers `ip [-n netns] link del <ifname>`, run only if the link still
    /// exists then.
    pub fn link_del(&mut self, netns: Option<&str>, ifname: &str) -> &mut Cleanup {
        let netns = netns.map(str::to_string);
        let ifname = ifname.to_string();
        let desc = format!("delete link {ifname} (netns {netns:?})");
        self.push(desc, move || {
            let mut base: Vec<String> = Vec::new();
            if let Some(ns) = &netns {
                base.extend(["-n".to_string(), ns.clone()]);
            }
            let mut show = base.clone();
            show.extend(["link".into(), "show".into(), "dev".into(), ifname.clone()]);
            let exists = cmd::try_run("ip", &show)
                .map(|o| o.status.success())
                .map_err(|e| e.to_string())?;
            if !exists {
                return Ok(());
            }
            base.extend(["link".into(), "del".into(), "dev".into(), ifname]);
            run_checked("ip", &base)
        })
    }

    /// Registers removal of an iptables chain: every rule in `table` that
    /// jumps to it is deleted, then the chain is flushed and deleted. Uses
    /// `ip6tables` when `ipv6`. Nothing happens if the chain is gone.
    pub fn iptables_chain(&mut self, ipv6: bool, table: &str, chain: &str) -> &mut Cleanup {
        let table = table.to_string();
        let chain = chain.to_string();
        let program = if ipv6 { "ip6tables" } else { "iptables" };
        let desc = format!("remove {program} chain {table}/{chain}");
        self.push(desc, move || remove_chain(program, &table, &chain))
    }

    /// Registers removal of a file or directory tree; a missing path is fine.
    pub fn remove_path(&mut self, path: impl AsRef<Path>) -> &mut Cleanup {
        let path: PathBuf = path.as_ref().to_path_buf();
        let desc = format!("remove {}", path.display());
        self.push(desc, move || {
            let result = match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            }
        })
    }

    /// Number of registered actions not yet run.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether no action is registered.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Runs all actions now (last registered first) and empties the guard.
    /// Returns the failures as `"<description>: <error>"`.
    pub fn run_now(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((desc, action)) = self.actions.pop() {
            if let Err(e) = action() {
                failures.push(format!("{desc}: {e}"));
            }
        }
        failures
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for failure in self.run_now() {
            eprintln!("warning: cleanup step failed: {failure}");
        }
    }
}

fn run_checked(program: &str, args: &[String]) -> Result<(), String> {
    let out = cmd::try_run(program, args).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` exited with {}: {}",
            cmd::command_line(program, args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn remove_chain(program: &str, table: &str, chain: &str) -> Result<(), String> {
    let listing = cmd::try_run(program, &["-w", "-t", table, "-S"]).map_err(|e| e.to_string())?;
    if !listing.status.success() {
        return Err(String::from_utf8_lossy(&listing.stderr).trim().to_string());
    }
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let chain_exists = listing.lines().any(|l| l == format!("-N {chain}"));
    // Rules jumping to the chain, printed by `-S` as shell-quoted `-A ...` lines.
    for line in listing.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let jumps =
            rule.ends_with(&format!("-j {chain}")) || rule.contains(&format!("-j {chain} "));
        if jumps {
            let script = format!("{program} -w -t {table} -D {rule}");
            run_checked("sh", &["-c".to_string(), script])?;
        }
    }
    if chain_exists {
        run_checked(
            program,
            &[
                "-w".into(),
                "-t".into(),
                table.into(),
                "-F".into(),
                chain.into(),
            ],
        )?;
        run_checked(
            program,
            &[
                "-w".into(),
                "-t".into(),
                table.into(),
                "-X".into(),
                chain.into(),
            ],
        )?;
    }
    Ok(())
}
