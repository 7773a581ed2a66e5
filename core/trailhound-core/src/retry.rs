//! Retry timing: exponential backoff with jitter, bounded by the policy, and parsing of
//! `Retry-After`. How each response is classified lives with the code that applies it,
//! [`crate::Engine::handle_upload`].
//!
//! A small policy of our own rather than a crate: the engine needs the delay as a number
//! it can persist and replay under a virtual clock, with its own seeded randomness; the
//! `backoff` crate is unmaintained (RUSTSEC-2025-0012) and `backon` drives async sleeps,
//! which a sans-IO engine must not do.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// The retry state of the upload queue, persisted so that a restart does not hammer a
/// server that asked for time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    /// Consecutive failed attempts since the last success.
    pub attempts: u32,
    /// No upload before this time (ms since the epoch).
    pub next_attempt_ms: Option<i64>,
    /// Whether the wait was asked for by the server (`Retry-After`); an explicit `flush()`
    /// overrides our own backoff but not the server's.
    pub server_directed: bool,
    /// Uploads are paused by a 401 or 403 until this time.
    pub auth_paused_until_ms: Option<i64>,
    /// The status that paused uploads.
    pub auth_status: Option<u16>,
}

/// A small deterministic generator (SplitMix64) for jitter. The runtime seeds it from the
/// OS; simulations seed it with a constant so that runs repeat exactly.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Jitter(seed)
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The delay before retry number `attempts` (1 for the first retry): `base * 2^(attempts-1)`
/// capped at `backoff_max`, with "equal jitter" (a uniform draw from its upper half), so that
/// a fleet of devices that failed together does not come back together, while each still
/// waits at least half the nominal delay.
pub fn backoff(attempts: u32, policy: &Policy, jitter: &mut Jitter) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let nominal = policy
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(policy.backoff_max);
    let half = nominal / 2;
    half + half.mul_f64(jitter.next_f64())
}

/// Parses a `Retry-After` header value: delta-seconds or an HTTP-date in any of the three
/// forms RFC 9110 (section 5.6.7) requires recipients to accept: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and C's asctime form (`Sun Nov  6 08:49:37 1994`).
///
/// Returns the wait from `now_ms`, capped at `backoff_max`: zero for a date already past;
/// `None` for anything else (negative numbers, garbage). The caller never waits less than
/// its own backoff ([`crate::Engine::handle_upload`]), so a zero here is no tight loop.
pub fn parse_retry_after(value: &str, now_ms: i64, policy: &Policy) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = crate::datetime::parse_http_date(value, now_ms)?;
        Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64)
    };
    Some(wait.min(policy.backoff_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double from the base, stay within [half, full] of nominal, and stop at the cap.
    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = Policy::default();
        let mut j = Jitter::new(42);
        for attempt in 1..=20u32 {
            let nominal = (p.backoff_base * 2u32.pow((attempt - 1).min(20))).min(p.backoff_max);
            for _ in 0..50 {
                let d = backoff(attempt, &p, &mut j);
                assert!(
                    d >= nominal / 2 && d <= nominal,
                    "attempt {attempt}: {d:?} vs {nominal:?}"
                );
            }
        }
        assert!(backoff(1000, &p, &mut j) <= p.backoff_max);
    }

    /// Two generators with different seeds spread their retries.
    #[test]
    fn jitter_differs_by_seed() {
        let p = Policy::default();
        let a = backoff(5, &p, &mut Jitter::new(1));
        let b = backoff(5, &p, &mut Jitter::new(2));
        assert_ne!(a, b);
    }

    /// Retry-After as seconds and as an HTTP date; garbage is ignored; huge waits are capped.
    #[test]
    fn retry_after_forms() {
        let p = Policy::default();
        assert_eq!(
            parse_retry_after("120", 0, &p),
            Some(Duration::from_secs(120))
        );
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, &p),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", 0, &p), None);
        assert_eq!(parse_retry_after("999999", 0, &p), Some(p.backoff_max));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now + 3_600_000, &p),
            Some(Duration::ZERO)
        );
    }

    /// All three HTTP-date forms of RFC 9110 give the same instant; negative values,
    /// signs and overflowing numbers are handled without a panic (issue 9, defect 5).
    #[test]
    fn retry_after_all_date_forms_and_hostile_values() {
        let p = Policy::default();
        let now = chrono::DateTime::parse_from_rfc3339("1994-11-06T08:48:37Z")
            .unwrap()
            .timestamp_millis();
        let minute = Some(Duration::from_secs(60));
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(form, now, &p), minute, "{form}");
        }
        assert_eq!(parse_retry_after("-5", now, &p), None);
        assert_eq!(parse_retry_after("+5", now, &p), None);
        assert_eq!(parse_retry_after("", now, &p), None);
        assert_eq!(parse_retry_after("1.5", now, &p), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999999", now, &p),
            Some(p.backoff_max)
        );
        assert_eq!(parse_retry_after("0", now, &p), Some(Duration::ZERO));
        for now in [i64::MIN, i64::MAX, 0] {
            let _ = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now, &p);
        }
    }
}
