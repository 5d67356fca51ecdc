//! The release archive and its installer, in a scratch prefix: the archive
//! holds the plugins, `install.sh` and `INSTALL` with a checksum; a
//! tampered archive is refused before anything changes; an install backs
//! up the binaries it replaces and puts ours in place; they work; a second
//! install keeps the first backup; uninstall restores the prefix exactly.
//! The archive is packed from the debug binaries the other tests use (the
//! packing is what is tested, not the release build).

#![cfg(test)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use integration::{Cleanup, PluginCall, TestNetns, plugin_dir, unique_name};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `command`; its stdout, and whether it succeeded.
fn run(command: &mut Command) -> (String, bool) {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (stdout, out.status.success())
}

/// Every file below `dir` with its bytes (hidden ones included).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Packs the archive into `dist`; its path and its checksum line.
fn pack(dist: &Path) -> (PathBuf, String) {
    let (archive, packed) = run(Command::new(script("release.sh"))
        .arg("--bin")
        .arg(plugin_dir())
        .arg("--out")
        .arg(dist));
    assert!(packed);
    let archive = PathBuf::from(archive);
    let (listing, _) = run(Command::new("tar").arg("-tzf").arg(&archive));
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["INSTALL", "bridge", "host-local", "install.sh", "loopback"]
    );
    let sha = std::fs::read_to_string(archive.with_extension("tgz.sha256")).unwrap();
    assert!(sha.ends_with(&format!(
        "  {}\n",
        archive.file_name().unwrap().to_string_lossy()
    )));
    (archive, sha)
}

/// A copy of `archive` in `dir` with its last byte changed, next to the
/// original's checksum `sha`.
fn tampered_copy(archive: &Path, sha: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tampered = dir.join(archive.file_name().unwrap());
    let mut bytes = std::fs::read(archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&tampered, bytes).unwrap();
    std::fs::write(tampered.with_extension("tgz.sha256"), sha).unwrap();
    tampered
}

/// Runs the installed plugins: VERSION, and as root a loopback ADD and DEL.
fn use_installed(prefix: &Path) {
    let version = PluginCall::with_binary(prefix.join("bridge"))
        .command("VERSION")
        .stdin("{}")
        .run()
        .expect_success()
        .json();
    assert_eq!(version["cniVersion"], "1.1.0");
    if nix::unistd::geteuid().is_root() {
        let ns = TestNetns::new("rel");
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "lo", "type": "loopback"});
        let call = |command: &str| {
            PluginCall::with_binary(prefix.join("loopback"))
                .cni_path(prefix)
                .command(command)
                .container_id("rel")
                .netns(ns.path())
                .ifname("lo")
                .config(&conf)
        };
        call("ADD").run().expect_success();
        call("DEL").run().expect_success();
    }
}

#[test]
fn the_archive_installs_works_and_uninstalls_to_what_was_there() {
    let mut cleanup = Cleanup::new();
    let root = std::env::temp_dir().join(unique_name("cni-release"));
    cleanup.remove_path(&root);
    let (dist, prefix) = (root.join("dist"), root.join("opt-cni-bin"));

    let (archive, sha) = pack(&dist);

    // A node with two reference plugins (stand-ins) and no loopback.
    std::fs::create_dir_all(&prefix).unwrap();
    for plugin in ["bridge", "host-local"] {
        std::fs::write(
            prefix.join(plugin),
            format!("#!/bin/sh\necho reference {plugin}\n"),
        )
        .unwrap();
    }
    let before = tree(&prefix);
    let install = |archive: &Path| {
        run(Command::new(script("install.sh"))
            .arg("--archive")
            .arg(archive)
            .arg("--prefix")
            .arg(&prefix))
        .1
    };

    // A tampered archive, or one without its checksum, is refused, and
    // nothing changes.
    let tampered = tampered_copy(&archive, &sha, &root.join("tampered"));
    assert!(!install(&tampered));
    assert_eq!(tree(&prefix), before);
    std::fs::remove_file(tampered.with_extension("tgz.sha256")).unwrap();
    assert!(!install(&tampered));
    assert_eq!(tree(&prefix), before);

    assert!(install(&archive));
    let installed = tree(&prefix);
    for plugin in ["bridge", "host-local", "loopback"] {
        let ours = std::fs::read(plugin_dir().join(plugin)).unwrap();
        assert!(installed[plugin] == ours, "{plugin} is not ours");
    }
    assert_eq!(installed[".cni-rs-backup/bridge"], before["bridge"]);
    assert_eq!(installed[".cni-rs-backup/absent"], b"loopback\n");
    assert!(
        !installed
            .keys()
            .any(|k| k.contains("staged") || k.contains("unpacked"))
    );

    // They work from there.
    use_installed(&prefix);

    // A second install keeps the first backup: the reference's.
    assert!(install(&archive));
    assert_eq!(tree(&prefix)[".cni-rs-backup/bridge"], before["bridge"]);

    let (_, uninstalled) = run(Command::new(script("install.sh"))
        .arg("--uninstall")
        .arg("--prefix")
        .arg(&prefix));
    assert!(uninstalled);
    assert_eq!(tree(&prefix), before);
}
