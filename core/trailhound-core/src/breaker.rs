//! Endpoints and their circuit breakers: which endpoint the next batch goes to, and how
//! long a failing one is left alone.
//!
//! The app configures an ordered list of endpoints (its own first-party proxy first, say,
//! then the vendor's regional host). Each has a breaker:
//!
//! | state | what it means | what moves it |
//! |---|---|---|
//! | closed | in use; the first closed endpoint takes every batch | a failure opens it |
//! | open | left alone until its wait is over; batches go to the next usable endpoint | the wait ends: half-open |
//! | half-open | the next request to it is a probe (with several endpoints, one small batch, [`Policy::breaker_probe_events`]) | a delivery closes it; a failure opens it again, for longer |
//!
//! What opens a breaker, and for how long:
//!
//! | answer | open for | reason |
//! |---|---|---|
//! | network error, timeout, 408, 429, 5xx but 501/505 | our backoff (exponential with jitter, [`Policy::backoff_base`] doubling to [`Policy::backoff_max`]), or the endpoint's `Retry-After` if longer | `network` / `status` |
//! | 401, 403, 3xx, 404 and every other answer that says the endpoint or key is wrong | [`Policy::auth_pause`] | `paused` |
//! | blocked (the browser package saw a request fail at once while online: an ad blocker) | [`Policy::backoff_max`], the longest wait | `blocked` |
//!
//! The first failure opens the breaker: its open time is the backoff, which starts at
//! [`Policy::backoff_base`] (two seconds), so a transient error costs the endpoint seconds;
//! waiting for several failures first would send several batches into a dead host, each
//! costing a timeout before it moves on. Answers about the data (400, 413, 422) say the
//! endpoint works: they close it, and the split and isolation rules of
//! [`crate::Engine::handle_upload`] stay as they are, on that endpoint.
//!
//! A `Retry-After` binds only the endpoint that sent it. An explicit `flush()` goes to the
//! first usable endpoint; only when every endpoint is open does it end the waits of our
//! own backoff and the pauses (one probe each), and never a server's `Retry-After` nor a
//! `blocked` wait: an app that flushes on every screen must not hammer a host that is
//! down or blocked.
//!
//! With one endpoint (the default) this is the retry behaviour the engine always had: the
//! breaker's wait is the backoff, and the probe is an ordinary batch.
//!
//! Breaker state is persisted with the rest of the state (per endpoint URL, so that a
//! reordered or changed list starts the new endpoints closed), so a restart honours it.

use serde::{Deserialize, Serialize};

use crate::policy::{millis, Policy};
use crate::report::Notification;
use crate::retry::{self, Jitter, RetryState};

/// A breaker's state, as [`crate::Stats`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// In use.
    Closed,
    /// Left alone until its wait is over.
    Open,
    /// Its wait is over; the next request to it is a probe.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Why a breaker opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum OpenReason {
    /// No answer: DNS, connect, TLS, reset, timeout.
    Network,
    /// A transient status: 408, 429, 5xx.
    Status {
        /// The status.
        status: u16,
    },
    /// The endpoint refused the write key (401, 403) or looks misconfigured (3xx, 404, …).
    Paused {
        /// The status.
        status: u16,
    },
    /// Requests to it fail at once while the device is online: an ad blocker or a
    /// firewall (told by the browser package).
    Blocked,
}

impl OpenReason {
    /// `network`, `status`, `paused` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenReason::Network => "network",
            OpenReason::Status { .. } => "status",
            OpenReason::Paused { .. } => "paused",
            OpenReason::Blocked => "blocked",
        }
    }
}

/// What survives a restart of one endpoint's breaker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// The endpoint this is about (its base URL); state saved for a URL no longer
    /// configured is forgotten.
    pub url: String,
    /// Its backoff, `Retry-After` wait and pause.
    #[serde(flatten)]
    pub retry: RetryState,
    /// Why it is open (or was, if half-open), `None` when closed.
    #[serde(default)]
    pub reason: Option<OpenReason>,
}

/// One endpoint's figures in [`crate::Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    /// The endpoint's base URL.
    pub url: String,
    /// Its breaker.
    pub state: BreakerState,
    /// Why it is open or half-open.
    pub reason: Option<OpenReason>,
    /// Requests sent to it since start.
    pub requests: u64,
    /// Of those, how many failed (no answer, a transient status, a pause, blocked).
    pub failures: u64,
    /// Its latest failure.
    pub last_error: Option<String>,
    /// When it may be tried again, if it is open.
    pub retry_at_ms: Option<i64>,
}

/// A failed request, as the breaker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer (or no answer in time).
    Network,
    /// A transient status, with its `Retry-After` header if any.
    Status {
        /// The status.
        status: u16,
        /// `Retry-After`, verbatim.
        retry_after: Option<String>,
    },
    /// Blocked by the client (ad blocker).
    Blocked,
}

/// What a failure did to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Consecutive failures of the endpoint.
    pub attempts: u32,
    /// How long it stays open.
    pub wait_ms: i64,
}

#[derive(Debug, Clone)]
struct Breaker {
    state: EndpointState,
    requests: u64,
    failures: u64,
    last_error: Option<String>,
}

impl Breaker {
    /// No request before this time.
    fn open_until(&self) -> Option<i64> {
        let r = &self.state.retry;
        r.next_attempt_ms
            .into_iter()
            .chain(r.auth_paused_until_ms)
            .max()
    }

    fn state(&self, now_ms: i64) -> BreakerState {
        if self.open_until().is_some_and(|t| now_ms < t) {
            BreakerState::Open
        } else if self.state.reason.is_some() || self.state.retry.attempts > 0 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        }
    }
}

/// The breakers of every configured endpoint, in the configured order.
#[derive(Debug, Clone)]
pub struct Breakers {
    breakers: Vec<Breaker>,
}

impl Breakers {
    /// Breakers for `urls` (at least one), restoring what `saved` holds for each URL, with
    /// deadlines brought within what could have been set at `now_ms` (a wait saved while
    /// the wall clock was far ahead would otherwise stall uploads as long as the clock was
    /// wrong). State saved without a URL (one endpoint, before there were several) belongs
    /// to the first endpoint. Returns whether the state changed (to be saved).
    pub fn new(
        urls: &[String],
        saved: &[EndpointState],
        policy: &Policy,
        now_ms: i64,
    ) -> (Breakers, bool) {
        let mut changed = false;
        let mut breakers: Vec<Breaker> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let restored = saved
                    .iter()
                    .find(|s| s.url == *url)
                    .or_else(|| saved.iter().find(|s| i == 0 && s.url.is_empty()));
                let mut state = restored.cloned().unwrap_or_default();
                if state.url != *url {
                    state.url.clone_from(url);
                    changed = true;
                }
                Breaker {
                    state,
                    requests: 0,
                    failures: 0,
                    last_error: None,
                }
            })
            .collect();
        if breakers.is_empty() {
            breakers.push(Breaker {
                state: EndpointState::default(),
                requests: 0,
                failures: 0,
                last_error: None,
            });
        }
        // Saved state of an endpoint no longer configured is dropped with the next save.
        changed |= saved.len() != breakers.len();
        for b in &mut breakers {
            changed |= clamp_deadlines(&mut b.state.retry, policy, now_ms);
        }
        (Breakers { breakers }, changed)
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.breakers.len()
    }

    /// Always false: there is at least one endpoint.
    pub fn is_empty(&self) -> bool {
        self.breakers.is_empty()
    }

    /// Endpoint `i`'s URL.
    pub fn url(&self, i: usize) -> &str {
        &self.breakers[i].state.url
    }

    /// The endpoint the next batch goes to: the first that is not open. `None` while every
    /// one is open ([`Breakers::ready_at`] says until when).
    pub fn pick(&self, now_ms: i64) -> Option<usize> {
        self.breakers
            .iter()
            .position(|b| b.state(now_ms) != BreakerState::Open)
    }

    /// Whether endpoint `i` is open now (left alone).
    pub fn is_open(&self, i: usize, now_ms: i64) -> bool {
        self.breakers[i].state(now_ms) == BreakerState::Open
    }

    /// When an endpoint is next usable: `None` if one is now (or has no wait at all).
    pub fn ready_at(&self, now_ms: i64) -> Option<i64> {
        let mut earliest = None::<i64>;
        for b in &self.breakers {
            match b.open_until() {
                Some(t) if t > now_ms => earliest = Some(earliest.map_or(t, |e| e.min(t))),
                _ => return None,
            }
        }
        earliest
    }

    /// Whether a request to endpoint `i` now is a probe that should carry only a small
    /// batch: it is half-open and another endpoint could take the rest.
    pub fn is_probe(&self, i: usize, now_ms: i64) -> bool {
        self.breakers.len() > 1 && self.breakers[i].state(now_ms) == BreakerState::HalfOpen
    }

    /// A request was sent to endpoint `i`.
    pub fn note_sent(&mut self, i: usize) {
        self.breakers[i].requests += 1;
    }

    /// Endpoint `i` answered (a delivery, or an answer about the data): it closes. Returns
    /// the notification if it was open or half-open, and whether its state changed.
    pub fn succeeded(&mut self, i: usize) -> (Option<Notification>, bool) {
        let b = &mut self.breakers[i];
        let s = &mut b.state;
        let was_open = s.reason.is_some() || s.retry.attempts > 0;
        let changed = was_open || s.retry != RetryState::default();
        s.retry = RetryState::default();
        s.reason = None;
        let note = was_open.then(|| Notification::EndpointClosed { url: s.url.clone() });
        (note, changed)
    }

    /// Endpoint `i` failed: it opens for our backoff, its `Retry-After` if longer, or the
    /// longest wait when it is blocked. A `Retry-After` of 0, negative, unreadable or a
    /// date already past never shortens our own backoff.
    pub fn failed(
        &mut self,
        i: usize,
        failure: &Failure,
        error: &str,
        now_ms: i64,
        policy: &Policy,
        jitter: &mut Jitter,
    ) -> (Opened, Option<Notification>) {
        let b = &mut self.breakers[i];
        b.failures += 1;
        b.last_error = Some(error.to_owned());
        let s = &mut b.state;
        let newly = s.reason.is_none() && s.retry.attempts == 0;
        s.retry.attempts = s.retry.attempts.saturating_add(1);
        let own = retry::backoff(s.retry.attempts, policy, jitter);
        let (reason, wait, server) = match failure {
            Failure::Network => (OpenReason::Network, own, false),
            Failure::Status {
                status,
                retry_after,
            } => {
                let server_wait = retry_after
                    .as_deref()
                    .and_then(|v| retry::parse_retry_after(v, now_ms, policy));
                let wait = server_wait.map_or(own, |w| w.max(own));
                let server = server_wait.is_some_and(|w| w >= own);
                (OpenReason::Status { status: *status }, wait, server)
            }
            Failure::Blocked => (OpenReason::Blocked, policy.backoff_max, false),
        };
        let wait_ms = millis(wait);
        s.retry.next_attempt_ms = Some(now_ms.saturating_add(wait_ms));
        s.retry.server_directed = server;
        s.reason = Some(reason);
        let opened = Opened {
            attempts: s.retry.attempts,
            wait_ms,
        };
        let note = (newly || reason == OpenReason::Blocked).then(|| Notification::EndpointOpened {
            url: s.url.clone(),
            reason,
            retry_in_ms: wait_ms as u64,
        });
        (opened, note)
    }

    /// Endpoint `i` refused the write key or looks misconfigured: paused for
    /// [`Policy::auth_pause`] (or until `flush()`).
    pub fn paused(
        &mut self,
        i: usize,
        status: u16,
        error: &str,
        now_ms: i64,
        policy: &Policy,
    ) -> Option<Notification> {
        let b = &mut self.breakers[i];
        b.failures += 1;
        b.last_error = Some(error.to_owned());
        let s = &mut b.state;
        let newly = s.reason.is_none() && s.retry.attempts == 0;
        let pause = millis(policy.auth_pause);
        s.retry.auth_paused_until_ms = Some(now_ms.saturating_add(pause));
        s.retry.auth_status = Some(status);
        s.reason = Some(OpenReason::Paused { status });
        newly.then(|| Notification::EndpointOpened {
            url: s.url.clone(),
            reason: OpenReason::Paused { status },
            retry_in_ms: pause as u64,
        })
    }

    /// An explicit `flush()` while every endpoint is open: waits of our own backoff and
    /// pauses end (the next request to each is a probe); a server's `Retry-After` and a
    /// `blocked` wait stay. While an endpoint is usable, nothing changes: the flush goes
    /// there at once, and probing an open one first would cost each flush a request (up to
    /// a timeout, for a host that swallows packets) before the batch moves on. Returns
    /// whether anything changed.
    pub fn flush(&mut self, now_ms: i64) -> bool {
        if self.pick(now_ms).is_some() {
            return false;
        }
        let mut changed = self.clear_backoff();
        for b in &mut self.breakers {
            let r = &mut b.state.retry;
            if r.auth_paused_until_ms.take().is_some() {
                r.auth_status = None;
                changed = true;
            }
        }
        changed
    }

    /// Ends the waits of our own backoff (the device came back online: most failures
    /// before were the network's); a server's `Retry-After`, a `blocked` wait and pauses
    /// stay. Returns whether anything changed.
    pub fn clear_backoff(&mut self) -> bool {
        let mut changed = false;
        for b in &mut self.breakers {
            let s = &mut b.state;
            if s.reason != Some(OpenReason::Blocked)
                && s.retry.next_attempt_ms.is_some()
                && !s.retry.server_directed
            {
                s.retry.next_attempt_ms = None;
                changed = true;
            }
        }
        changed
    }

    /// Ends the pauses whose time is over (the next request is a probe). Returns whether
    /// anything changed.
    pub fn expire(&mut self, now_ms: i64) -> bool {
        let mut changed = false;
        for b in &mut self.breakers {
            let r = &mut b.state.retry;
            if r.auth_paused_until_ms.is_some_and(|t| now_ms >= t) {
                r.auth_paused_until_ms = None;
                r.auth_status = None;
                changed = true;
            }
        }
        changed
    }

    /// The wall clock went back by `-delta` ms: deadlines move back with it.
    pub fn shift(&mut self, delta: i64) {
        for b in &mut self.breakers {
            let r = &mut b.state.retry;
            for t in [&mut r.next_attempt_ms, &mut r.auth_paused_until_ms]
                .into_iter()
                .flatten()
            {
                *t = t.saturating_add(delta);
            }
        }
    }

    /// What to persist.
    pub fn persisted(&self) -> Vec<EndpointState> {
        self.breakers.iter().map(|b| b.state.clone()).collect()
    }

    /// The retry state that holds up the next upload: that of the endpoint it goes to, or,
    /// while every endpoint is open, of the one that reopens first. With one endpoint, its
    /// own.
    pub fn gate(&self, now_ms: i64) -> RetryState {
        let i = self.pick(now_ms).unwrap_or_else(|| {
            (0..self.breakers.len())
                .min_by_key(|&i| self.breakers[i].open_until().unwrap_or(i64::MIN))
                .unwrap_or(0)
        });
        self.breakers[i].state.retry.clone()
    }

    /// Whether every endpoint is open and blocked.
    pub fn all_blocked(&self, now_ms: i64) -> bool {
        self.breakers.iter().all(|b| {
            b.state.reason == Some(OpenReason::Blocked) && b.state(now_ms) == BreakerState::Open
        })
    }

    /// Each endpoint's figures.
    pub fn stats(&self, now_ms: i64) -> Vec<EndpointStats> {
        self.breakers
            .iter()
            .map(|b| {
                let state = b.state(now_ms);
                EndpointStats {
                    url: b.state.url.clone(),
                    state,
                    reason: b.state.reason,
                    requests: b.requests,
                    failures: b.failures,
                    last_error: b.last_error.clone(),
                    retry_at_ms: if state == BreakerState::Open {
                        b.open_until()
                    } else {
                        None
                    },
                }
            })
            .collect()
    }
}

/// Brings persisted deadlines within what could have been set at `now_ms`. Returns
/// whether anything changed.
fn clamp_deadlines(retry: &mut RetryState, policy: &Policy, now_ms: i64) -> bool {
    let mut changed = false;
    let mut clamp = |t: &mut Option<i64>, longest: std::time::Duration| {
        let max = now_ms.saturating_add(millis(longest));
        if let Some(at) = t {
            if *at > max {
                *at = max;
                changed = true;
            }
        }
    };
    clamp(&mut retry.next_attempt_ms, policy.backoff_max);
    clamp(&mut retry.auth_paused_until_ms, policy.auth_pause);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("https://e{i}.example")).collect()
    }

    fn two() -> (Breakers, Policy, Jitter) {
        let p = Policy::default();
        let (b, _) = Breakers::new(&urls(2), &[], &p, 0);
        (b, p, Jitter::new(7))
    }

    /// A failure opens the first endpoint for the backoff and the next takes over; when
    /// the wait ends it is half-open (a probe), and a delivery closes it.
    #[test]
    fn closed_open_half_open_closed() {
        let (mut b, p, mut j) = two();
        assert_eq!(b.pick(0), Some(0));
        let (opened, note) = b.failed(0, &Failure::Network, "reset", 0, &p, &mut j);
        assert_eq!(opened.attempts, 1);
        assert!(opened.wait_ms >= millis(p.backoff_base) / 2);
        assert!(matches!(
            note,
            Some(Notification::EndpointOpened {
                reason: OpenReason::Network,
                ..
            })
        ));
        assert_eq!(b.stats(0)[0].state, BreakerState::Open);
        assert_eq!(b.pick(0), Some(1));
        assert!(!b.is_probe(1, 0));
        let later = opened.wait_ms;
        assert_eq!(b.stats(later)[0].state, BreakerState::HalfOpen);
        assert_eq!(b.pick(later), Some(0));
        assert!(b.is_probe(0, later));
        let (note, changed) = b.succeeded(0);
        assert!(changed);
        assert!(matches!(note, Some(Notification::EndpointClosed { .. })));
        assert_eq!(b.stats(later)[0].state, BreakerState::Closed);
        assert!(!b.is_probe(0, later));
    }

    /// A failed probe opens the breaker again for longer, without a second "opened"
    /// notification.
    #[test]
    fn failed_probe_reopens_for_longer() {
        let (mut b, p, mut j) = two();
        let mut now = 0;
        let mut waits = Vec::new();
        for n in 0..6 {
            let (opened, note) = b.failed(0, &Failure::Network, "refused", now, &p, &mut j);
            assert_eq!(note.is_some(), n == 0);
            waits.push(opened.wait_ms);
            now += opened.wait_ms;
        }
        // Equal jitter: each nominal delay doubles, so each wait is at least the previous
        // nominal one, until the cap.
        for w in waits.windows(2) {
            assert!(w[1] >= w[0], "{waits:?}");
        }
        assert!(waits[5] > waits[0] * 4);
    }

    /// A `Retry-After` binds only the endpoint that sent it, and `flush()` does not shorten
    /// it; our own backoff is cleared by `flush()`.
    #[test]
    fn retry_after_binds_its_endpoint_only() {
        let (mut b, p, mut j) = two();
        let f = Failure::Status {
            status: 503,
            retry_after: Some("120".into()),
        };
        let (opened, _) = b.failed(0, &f, "HTTP 503", 0, &p, &mut j);
        assert_eq!(opened.wait_ms, 120_000);
        b.failed(1, &Failure::Network, "reset", 0, &p, &mut j);
        assert_eq!(b.pick(0), None);
        assert!(b.flush(0));
        assert_eq!(b.pick(0), Some(1), "own backoff cleared, Retry-After kept");
        assert_eq!(b.stats(0)[0].retry_at_ms, Some(120_000));
    }

    /// A blocked endpoint waits the longest time, and `flush()` does not end that wait.
    #[test]
    fn blocked_waits_longest_and_survives_flush() {
        let (mut b, p, mut j) = two();
        let (opened, note) = b.failed(0, &Failure::Blocked, "blocked", 0, &p, &mut j);
        assert_eq!(opened.wait_ms, millis(p.backoff_max));
        assert!(matches!(
            note,
            Some(Notification::EndpointOpened {
                reason: OpenReason::Blocked,
                ..
            })
        ));
        assert!(!b.flush(0));
        assert_eq!(b.pick(0), Some(1));
        assert!(!b.all_blocked(0));
        b.failed(1, &Failure::Blocked, "blocked", 0, &p, &mut j);
        assert!(b.all_blocked(0));
        assert!(!b.flush(0), "every endpoint blocked: flush() ends no wait");
        assert_eq!(b.ready_at(0), Some(millis(p.backoff_max)));
    }

    /// A pause (401/403/misconfiguration) opens for `auth_pause`, ends with `flush()` or
    /// when its time is over, and the next request is a probe.
    #[test]
    fn pause_opens_until_flush_or_expiry() {
        let (mut b, p, _) = two();
        let note = b.paused(0, 401, "HTTP 401", 0, &p);
        assert!(note.is_some());
        assert_eq!(b.pick(0), Some(1));
        let end = millis(p.auth_pause);
        assert_eq!(b.ready_at(0), None, "endpoint 1 is usable");
        assert!(!b.expire(end - 1));
        assert!(b.expire(end));
        assert_eq!(b.stats(end)[0].state, BreakerState::HalfOpen);
        b.paused(0, 401, "HTTP 401", end, &p);
        assert!(!b.flush(end), "endpoint 1 takes the flush; 0 stays paused");
        assert_eq!(b.pick(end), Some(1));
        b.paused(1, 403, "HTTP 403", end, &p);
        assert_eq!(b.pick(end), None);
        assert!(b.flush(end));
        assert_eq!(
            b.pick(end),
            Some(0),
            "every endpoint was paused: all probe again"
        );
    }

    /// Saved state follows its URL across a restart: a reordered list keeps each
    /// endpoint's own wait, a new endpoint starts closed, state saved before there were
    /// several endpoints (no URL) belongs to the first, and deadlines from a clock that was
    /// far ahead are clamped.
    #[test]
    fn persisted_state_follows_urls() {
        let p = Policy::default();
        let (mut b, _) = Breakers::new(&urls(2), &[], &p, 0);
        let mut j = Jitter::new(1);
        b.failed(1, &Failure::Blocked, "blocked", 0, &p, &mut j);
        let saved = b.persisted();
        let reordered = vec![urls(2)[1].clone(), urls(2)[0].clone(), "https://new".into()];
        let (r, _) = Breakers::new(&reordered, &saved, &p, 0);
        assert_eq!(r.stats(0)[0].reason, Some(OpenReason::Blocked));
        assert_eq!(r.stats(0)[1].state, BreakerState::Closed);
        assert_eq!(r.stats(0)[2].state, BreakerState::Closed);

        let legacy = [EndpointState {
            url: String::new(),
            retry: RetryState {
                attempts: 2,
                next_attempt_ms: Some(i64::MAX / 2),
                ..Default::default()
            },
            reason: None,
        }];
        let (l, changed) = Breakers::new(&urls(1), &legacy, &p, 1_000);
        assert!(changed);
        assert_eq!(l.url(0), "https://e0.example");
        assert_eq!(
            l.stats(1_000)[0].retry_at_ms,
            Some(1_000 + millis(p.backoff_max))
        );
    }

    /// The wall clock going back moves every deadline back with it.
    #[test]
    fn clock_jump_back_shifts_deadlines() {
        let (mut b, p, mut j) = two();
        let (opened, _) = b.failed(0, &Failure::Network, "x", 10_000, &p, &mut j);
        b.shift(-10_000);
        assert_eq!(b.stats(0)[0].retry_at_ms, Some(opened.wait_ms));
    }

    /// The gating retry state is that of the endpoint the next batch goes to (closed:
    /// nothing waits), and while all are open, that of the one reopening first.
    #[test]
    fn gate_is_the_next_endpoint() {
        let (mut b, p, mut j) = two();
        b.failed(0, &Failure::Network, "x", 0, &p, &mut j);
        assert_eq!(b.gate(0), RetryState::default());
        let f = Failure::Status {
            status: 429,
            retry_after: Some("3600".into()),
        };
        b.failed(1, &f, "HTTP 429", 0, &p, &mut j);
        assert_eq!(b.gate(0).attempts, 1);
        assert!(b.gate(0).next_attempt_ms.unwrap() < 3_600_000);
    }
}
