//! Wall-clock formatting for API responses.

use std::time::{Duration, UNIX_EPOCH};

use postern_core::UnixNanos;

/// RFC 3339 with millisecond precision, UTC.
pub(crate) fn rfc3339(at: UnixNanos) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(at)).to_string()
}

pub(crate) fn system_now() -> UnixNanos {
    postern_cache::unix_now()
}
