//! Go programs of the tests (`integration/clients/<name>`), built offline
//! with Debian's `golang-go` in GOPATH mode against Debian's libcni source
//! (`golang-github-appc-cni-dev`): no module download is needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::ms;

/// Where Debian's `golang-github-appc-cni-dev` puts the libcni source.
pub const GOPATH: &str = "/usr/share/gocode";

/// Builds `integration/clients/<name>` into `out_dir/<name>` and returns
/// the binary. Built under a per-process name, then renamed: atomic when
/// two test processes build at once.
///
/// # Panics
///
/// When Go or the libcni source is missing, or the build fails.
pub fn build(name: &str, out_dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name);
    std::fs::create_dir_all(out_dir)
        .unwrap_or_else(|e| panic!("create {}: {e}", out_dir.display()));
    let libcni = Path::new(GOPATH).join("src/github.com/containernetworking/cni/libcni");
    assert!(
        libcni.is_dir(),
        "{} is missing: apt-get install golang-github-appc-cni-dev",
        libcni.display()
    );
    let staged = out_dir.join(format!("{name}.{}", std::process::id()));
    let start = Instant::now();
    let out = Command::new("go")
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", out_dir.join("go-build"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .args(["build", "-o"])
        .arg(&staged)
        .arg(".")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go` ({e}): apt-get install golang-go"));
    assert!(
        out.status.success(),
        "building {} failed\nstdout: {}\nstderr: {}",
        source.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let binary = out_dir.join(name);
    std::fs::rename(&staged, &binary)
        .unwrap_or_else(|e| panic!("move {} into place: {e}", binary.display()));
    println!(
        "built {} in {:.0} ms",
        binary.display(),
        ms(start.elapsed())
    );
    binary
}
