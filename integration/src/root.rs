//! Gate for tests that need root.

/// Decides whether a root test can run.
///
/// Returns `true` when the effective uid is 0. Otherwise, when the `CI`
/// environment variable is set (to anything), it panics: CI must never report
/// a root test as passed without running it. Outside CI it prints one line to
/// stderr saying the test is skipped because it needs root, and returns
/// `false`.
///
/// Every root test starts with:
///
/// ```no_run
/// # fn t() {
/// if !integration::require_root("loopback_add") {
///     return;
/// }
/// # }
/// ```
///
/// # Panics
///
/// When not running as root and `CI` is set.
pub fn require_root(test_name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test_name}: root tests must run under CI as root (CI is set but euid is {})",
            nix::unistd::geteuid()
        );
    }
    eprintln!(
        "SKIPPED {test_name}: needs root (network namespaces and interfaces); run the tests as root to include it"
    );
    false
}
