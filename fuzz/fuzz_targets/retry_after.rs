//! `Retry-After` values as a server (or anything between it and the app) may send, at
//! any wall-clock time including the extremes of `i64`, with any cap, through
//! `trailhound_core::retry::parse_retry_after`.
//!
//! Never panics, and the wait is never longer than `backoff_max`.
//!
//! Input layout (so that seeds are readable): `[1 byte: mode][8 bytes LE: now_ms]
//! [8 bytes LE: backoff_max in ms][the header value]`. Mode: low 2 bits pick `now_ms`
//! (0 as given, 1 `i64::MIN`, 2 `i64::MAX`, 3 zero); bit 2 uses the given cap instead of
//! the default (30 minutes).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use trailhound_core::retry::parse_retry_after;
use trailhound_core::Policy;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let mode = data[0];
    let given = i64::from_le_bytes(data[1..9].try_into().unwrap());
    let cap_ms = u64::from_le_bytes(data[9..17].try_into().unwrap());
    // Header values reach the engine as text; the transports drop what is not UTF-8.
    let Ok(value) = std::str::from_utf8(&data[17..]) else {
        return;
    };
    let now_ms = match mode & 3 {
        0 => given,
        1 => i64::MIN,
        2 => i64::MAX,
        _ => 0,
    };
    let mut policy = Policy::default();
    if mode & 4 != 0 {
        policy.backoff_max = Duration::from_millis(cap_ms);
    }
    let wait = parse_retry_after(value, now_ms, &policy);
    if let Some(wait) = wait {
        assert!(
            wait <= policy.backoff_max,
            "{value:?} at {now_ms}: {wait:?} > {:?}",
            policy.backoff_max
        );
    }
    // Delta-seconds mean the same whatever the clock says.
    if value.trim().parse::<u64>().is_ok() {
        assert_eq!(
            wait,
            parse_retry_after(value, 0, &policy),
            "{value:?} at {now_ms}"
        );
    }
});
