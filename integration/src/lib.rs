//! Integration test kit.
