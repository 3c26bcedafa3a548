//! When to try again: the backoff, `Retry-After`, and how a wait is told.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Default base of the exponential backoff.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);

/// Longest wait between two attempts computed by the backoff itself.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Longest `Retry-After` honoured on a 5xx answer, which counts against
/// `max_attempts`; a 429's `Retry-After` is bounded by `retry_budget` instead.
pub const SERVER_ERROR_RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// The backoff base: `MEMBERCTL_BACKOFF_MS` when set to a number, else
/// [`DEFAULT_BACKOFF`]. Read once per process.
#[must_use]
pub fn default_backoff() -> Duration {
    static BASE: OnceLock<Duration> = OnceLock::new();
    *BASE.get_or_init(|| {
        std::env::var("MEMBERCTL_BACKOFF_MS")
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map_or(DEFAULT_BACKOFF, Duration::from_millis)
    })
}

/// A duration without its fraction of a second, rounded up, for messages.
pub(super) fn whole_seconds(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs() + u64::from(duration.subsec_nanos() > 0))
}

/// `at`, rounded up to the minute, as `10:45 UTC`, with the date in front
/// (`2026-12-02 10:45 UTC`) when it is not on the same UTC day as `now`;
/// `None` past the year 9999, which RFC 3339 cannot write.
pub(super) fn utc_minute_after(at: SystemTime, now: SystemTime) -> Option<String> {
    const LAST_MINUTE_OF_9999: u64 = 253_402_300_740;
    let seconds = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()).div_ceil(60) * 60;
    if seconds > LAST_MINUTE_OF_9999 {
        return None;
    }
    // `2026-12-01T10:45:00Z`: the date is [..10], the time of day [11..16].
    let stamp = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)).to_string();
    let today = humantime::format_rfc3339_seconds(now).to_string();
    Some(if stamp[..10] == today[..10] {
        format!("{} UTC", &stamp[11..16])
    } else {
        format!("{} {} UTC", &stamp[..10], &stamp[11..16])
    })
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date in any of
/// the three forms RFC 9110 lists (a date in the past means "now").
#[must_use]
pub fn parse_retry_after(text: &str, now: SystemTime) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
