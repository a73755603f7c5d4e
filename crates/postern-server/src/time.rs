//! Wall-clock formatting for API responses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_core::UnixNanos;

/// RFC 3339 with millisecond precision, UTC.
pub(crate) fn rfc3339(at: UnixNanos) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(at)).to_string()
}

pub(crate) fn system_now() -> UnixNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
