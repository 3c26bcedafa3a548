//! Failpoints: named places where a test build can be told to crash, so an
//! integration test can stop the real binary at exactly the moment a
//! crash-safety guarantee is about (between two file operations, inside a
//! batch) instead of hoping a kill lands there.
//!
//! Only debug builds, which `cargo test` makes, read `MEMBERCTL_FAILPOINT`;
//! in a release build [`armed`] is `false` and the failpoints compile away.

/// The env var naming the failpoint to trigger.
#[cfg(debug_assertions)]
const VAR: &str = "MEMBERCTL_FAILPOINT";

/// Whether the failpoint `name` is armed for this process.
#[cfg(debug_assertions)]
pub(crate) fn armed(name: &str) -> bool {
    std::env::var_os(VAR).is_some_and(|value| value == name)
}

/// Whether the failpoint `name` is armed: never, in a release build.
#[cfg(not(debug_assertions))]
pub(crate) fn armed(_name: &str) -> bool {
    false
}
