//! The bench's error type: a message for the operator, nothing to match on.

/// Any failure of the bench: a plugin call that failed, a command that could
/// not run, an interrupt. Printed once by `main`.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Result alias used throughout the bench.
pub type BenchResult<T> = Result<T, BenchError>;
