//! Integers at the edge are signed: `i64` for counts, bytes, milliseconds and seeds, `i32`
//! for HTTP statuses and small values. UniFFI would make unsigned ones Kotlin's `ULong`,
//! `UInt` and `UShort`, inline value classes that Java cannot use: Kotlin name-mangles
//! every member that takes or returns one (`getDelivered-s-VKNKU()`) and hides the
//! constructors that take one. Java, Kotlin and Python then all see plain integers.
//!
//! The core's unsigned values go out through the saturating helpers here, never through
//! `as`; host values come in through [`unsigned`], which refuses a negative one.

use crate::error::TrailhoundError;

/// A core counter, size or duration for the host. Beyond `i64::MAX` (which no counter
/// reaches) it stays at the maximum rather than wrapping to a negative number.
pub(crate) fn out_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A core small value (attempts) for the host, saturating like [`out_i64`].
pub(crate) fn out_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// An HTTP status for the host: every `u16` fits.
pub(crate) fn out_status(v: u16) -> i32 {
    i32::from(v)
}

/// A host value for the setting named `setting` (`policy.flush_at`), which must not be
/// negative: a `Config` error names the setting.
pub(crate) fn unsigned(setting: &str, v: i64) -> Result<u64, TrailhoundError> {
    u64::try_from(v).map_err(|_| TrailhoundError::Config {
        detail: format!("{setting}: {v} is negative; it must be 0 or more"),
    })
}

/// A host's HTTP status as the core's `u16`, or `None` if it cannot be one.
pub(crate) fn in_status(v: i32) -> Option<u16> {
    u16::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values out saturate instead of wrapping; values in refuse negatives, naming the setting.
    #[test]
    fn saturate_out_refuse_negative_in() {
        assert_eq!(out_i64(u64::MAX), i64::MAX);
        assert_eq!(out_i64(7), 7);
        assert_eq!(out_i32(u32::MAX), i32::MAX);
        assert_eq!(out_status(u16::MAX), 65_535);
        assert_eq!(unsigned("policy.flush_at", 0).unwrap(), 0);
        assert_eq!(unsigned("policy.flush_at", i64::MAX).unwrap(), u64::MAX / 2);
        let e = unsigned("policy.flush_at", -1).unwrap_err().to_string();
        assert!(e.contains("policy.flush_at") && e.contains("-1"), "{e}");
        assert_eq!(in_status(-1), None);
        assert_eq!(in_status(65_536), None);
        assert_eq!(in_status(503), Some(503));
    }
}
