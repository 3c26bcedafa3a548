//! The current time, in one place.
//!
//! `MEMBERCTL_NOW` (an RFC 3339 timestamp) pins the clock, so that tests and
//! reproducible pipelines get the same timestamps and resend decisions.

use std::time::SystemTime;

/// Now, or the time pinned by `MEMBERCTL_NOW`.
#[must_use]
pub fn now() -> SystemTime {
    std::env::var("MEMBERCTL_NOW")
        .ok()
        .and_then(|text| humantime::parse_rfc3339_weak(&text).ok())
        .unwrap_or_else(SystemTime::now)
}

/// Now as an RFC 3339 string with second precision (`2026-11-22T10:00:00Z`).
#[must_use]
pub fn now_rfc3339() -> String {
    format_rfc3339(now())
}

/// Formats a time as RFC 3339 with second precision.
#[must_use]
pub fn format_rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Parses an RFC 3339 timestamp written by [`now_rfc3339`].
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}
