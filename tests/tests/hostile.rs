//! A hostile server matrix against the real native runtime and its default transport
//! (`UreqTransport`: ureq 3 + rustls), on loopback: every status class, each redirect,
//! cut and endless bodies, resets mid-request and mid-response, a trickled answer,
//! `Retry-After` in every form and a TLS endpoint with a self-signed certificate.
//!
//! Each case asserts what the README's response table says happens, and the ledger:
//! every tracked event is exactly one of delivered, dropped (with its reason) or still
//! queued after shutdown; delivered only if the server answered its batch with a 2xx.
//!
//! Cases of one kind run in parallel threads inside one test (most of their time is
//! spent waiting on the network or a backoff); each prints its line of the matrix, and a
//! test fails listing every case that did not behave.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use trailhound::{Builder, Client, DropReason, Error, Notification, Policy, Stats};
use trailhound_tests::hostile::{HostileServer, Reply, Request, ResetMidRequest, Script, Then};
use trailhound_tests::util::wifi;

/// Events tracked per case.
const N: usize = 8;
/// Longest wait for a flush or a shutdown.
const WAIT: Duration = Duration::from_secs(20);
/// Where redirects point: the client must never go there.
const ELSEWHERE: &str = "/elsewhere/v1/batch";

/// `Ok` carries what the client reported, for the matrix printed with `--nocapture`.
type Outcome = Result<String, String>;
/// A case of the matrix: its body, run on its own thread.
type CaseFn = Box<dyn FnOnce() -> Outcome + Send>;
/// A named case.
type Case = (String, CaseFn);

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Backoff of 1 s (so that a tight loop shows as hundreds of requests against a handful),
/// a short request timeout, and an auth pause no test outlives.
fn base_policy(p: &mut Policy) {
    p.backoff_base = Duration::from_secs(1);
    p.backoff_max = Duration::from_secs(4);
    p.auth_pause = Duration::from_secs(3600);
    p.request_timeout = Duration::from_secs(5);
}

/// The least the client's own backoff waits before retry number `attempts`: half the
/// nominal delay (equal jitter).
fn own_backoff_min(attempts: u32, p: &Policy) -> Duration {
    let nominal = p
        .backoff_base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(p.backoff_max);
    nominal / 2
}

/// What the README's table says becomes of the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Deleted from the queue, reported delivered.
    Delivered,
    /// Kept, `UploadFailed` with this status (`None`: a network error), retried later.
    Retried(Option<u16>),
    /// Kept, `Paused` with this status; one request, never another until a flush or the
    /// pause ends, and never a request anywhere else.
    Paused(u16),
    /// Split down to the event tagged `poison`, which alone is dropped for this reason;
    /// the others are delivered.
    Isolated(DropReason),
}

/// A client started against a hostile server, with everything it reported.
struct Live {
    /// The endpoint the client sends to.
    url: String,
    server: HostileServer,
    /// `None` only in the middle of a restart.
    client: Option<Client>,
    dir: tempfile::TempDir,
    policy: Policy,
    ids: Ids,
    notes: Notes,
    flush: Result<Stats, Error>,
}

/// What was left once the client shut down.
struct Done {
    server: HostileServer,
    policy: Policy,
    /// `(messageId, tag)` of every tracked event, in order.
    tracked: Vec<(String, String)>,
    notes: Vec<Notification>,
    stats: Stats,
    /// `messageId`s still in the queue, read from the database after shutdown.
    queued: Vec<String>,
}

type Ids = Arc<Mutex<Vec<(String, String)>>>;
type Notes = Arc<Mutex<Vec<Notification>>>;

/// A client on `server` with the test's plugin (recording each event's `messageId` and
/// `tag`) and listener (recording every notification).
fn build_client(
    url: &str,
    dir: &std::path::Path,
    policy: &Policy,
    ids: &Ids,
    notes: &Notes,
) -> Client {
    let (i, n) = (Arc::clone(ids), Arc::clone(notes));
    Builder::new("hostile-key", url, dir)
        .conditions(wifi())
        .jitter_seed(7)
        .policy(policy.clone())
        .plugin(move |m: trailhound::Message| {
            let tag = m
                .properties
                .as_ref()
                .and_then(|p| p.get("tag"))
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_owned();
            i.lock().unwrap().push((m.message_id.clone(), tag));
            Some(m)
        })
        .listener(move |note: &Notification| n.lock().unwrap().push(note.clone()))
        .build()
        .expect("client starts")
}

impl Live {
    /// Starts a client on `server`, tracks one event per tag and flushes.
    fn start(server: HostileServer, tags: &[&str], policy: fn(&mut Policy)) -> Live {
        let mut live = Live::open(server, policy);
        live.track_and_flush(tags);
        live
    }

    /// Starts a client on `server`, with the base policy changed by `policy`.
    fn open(server: HostileServer, policy: fn(&mut Policy)) -> Live {
        let url = server.url();
        Live::open_at(server, url, policy)
    }

    /// Starts a client sending to `url` (where `server`, or nothing, listens).
    fn open_at(server: HostileServer, url: String, policy: fn(&mut Policy)) -> Live {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = Arc::new(Mutex::new(Vec::new()));
        let notes = Arc::new(Mutex::new(Vec::new()));
        let mut p = Policy::default();
        base_policy(&mut p);
        policy(&mut p);
        let client = Some(build_client(&url, dir.path(), &p, &ids, &notes));
        Live {
            url,
            server,
            client,
            dir,
            policy: p,
            ids,
            notes,
            flush: Ok(Stats::default()),
        }
    }

    /// Shuts the client down and starts a new one on the same data directory, as an app
    /// restart does. Only for cases where nothing was delivered or dropped before (the
    /// counters start again from zero).
    fn restart(&mut self) -> Result<(), String> {
        self.client()
            .shutdown(Duration::from_secs(3))
            .map_err(|e| format!("shutdown before the restart failed: {e}"))?;
        let before = self.client().stats();
        ensure!(
            before.delivered == 0 && before.dropped.total() == 0,
            "restart() is for cases with nothing delivered or dropped yet: {before:?}"
        );
        // Dropped first: the old client must let go of the data directory before the new
        // one opens it.
        drop(self.client.take());
        self.client = Some(build_client(
            &self.url,
            self.dir.path(),
            &self.policy,
            &self.ids,
            &self.notes,
        ));
        Ok(())
    }

    /// Tracks one event per tag, then flushes and waits for the flush to end. A failed
    /// flush is kept: [`Live::finish`] reports it.
    fn track_and_flush(&mut self, tags: &[&str]) {
        for (k, tag) in tags.iter().enumerate() {
            self.client()
                .track("Hostile Test", json!({"tag": tag, "k": k}))
                .expect("tracked");
        }
        self.flush_again();
    }

    /// Flushes (a paused client probes) and waits for the flush to end.
    fn flush_again(&mut self) {
        let flush = self.client().flush_blocking(WAIT);
        if self.flush.is_ok() {
            self.flush = flush;
        }
    }

    /// Waits until `done` holds of the client's stats, at most [`WAIT`].
    fn wait_until(&self, done: impl Fn(&Stats) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if done(&self.client().stats()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a client outside a restart")
    }

    /// Requests the server has read so far.
    fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// When the server read the first request.
    fn first_request_at(&self) -> Result<Instant, String> {
        self.requests()
            .first()
            .map(|r| r.at)
            .ok_or_else(|| "no request was made".to_owned())
    }

    /// Sleeps until `end` (bounded: one sleep), then counts the requests read before it.
    fn requests_before(&self, end: Instant) -> usize {
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        self.requests().iter().filter(|r| r.at < end).count()
    }

    /// Shuts the client down and reads what stayed queued.
    fn finish(self) -> Result<Done, String> {
        let Live {
            url: _,
            server,
            client,
            dir,
            policy,
            ids,
            notes,
            flush,
        } = self;
        flush.map_err(|e| format!("flush_blocking failed: {e}"))?;
        let client = client.ok_or("no client")?;
        client
            .shutdown(Duration::from_secs(3))
            .map_err(|e| format!("shutdown failed: {e}"))?;
        let stats = client.stats();
        drop(client);
        let opened = trailhound::store::SqliteStore::open(dir.path())
            .map_err(|e| format!("reopening the queue: {e}"))?;
        let mut queued = Vec::new();
        opened
            .store
            .iter_events(|e| {
                queued.push(e.message_id);
                true
            })
            .map_err(|e| format!("reading the queue: {e}"))?;
        let tracked = ids.lock().unwrap().clone();
        let notes = notes.lock().unwrap().clone();
        Ok(Done {
            server,
            policy,
            tracked,
            notes,
            stats,
            queued,
        })
    }
}

impl Done {
    fn delivered_ids(&self) -> Vec<String> {
        self.notes
            .iter()
            .filter_map(|n| match n {
                Notification::Delivered { message_ids } => Some(message_ids.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn drops(&self) -> Vec<(DropReason, u64, Vec<String>)> {
        self.notes
            .iter()
            .filter_map(|n| match n {
                Notification::Dropped {
                    reason,
                    count,
                    message_ids,
                } => Some((*reason, *count, message_ids.clone())),
                _ => None,
            })
            .collect()
    }

    fn failures(&self) -> Vec<(Option<u16>, u32, u64, String)> {
        self.notes
            .iter()
            .filter_map(|n| match n {
                Notification::UploadFailed {
                    status,
                    error,
                    attempts,
                    retry_in_ms,
                } => Some((*status, *attempts, *retry_in_ms, error.clone())),
                _ => None,
            })
            .collect()
    }

    fn pauses(&self) -> Vec<u16> {
        self.notes
            .iter()
            .filter_map(|n| match n {
                Notification::Paused { status, .. } => Some(*status),
                _ => None,
            })
            .collect()
    }

    fn id_of(&self, tag: &str) -> Option<String> {
        self.tracked
            .iter()
            .find(|(_, t)| t == tag)
            .map(|(id, _)| id.clone())
    }

    /// Nothing lost, nothing double counted: every tracked event is exactly one of
    /// delivered, dropped or queued; the counters agree with the notifications; and an
    /// event is delivered only if the server answered a batch holding it with a 2xx.
    fn ledger(&self) -> Result<(), String> {
        let tracked: Vec<&String> = self.tracked.iter().map(|(id, _)| id).collect();
        let tracked_set: HashSet<&String> = tracked.iter().copied().collect();
        ensure!(
            tracked_set.len() == tracked.len(),
            "duplicate messageIds among tracked events"
        );
        let delivered = self.delivered_ids();
        let delivered_set: HashSet<&String> = delivered.iter().collect();
        ensure!(
            delivered_set.len() == delivered.len(),
            "an event was reported delivered twice"
        );
        let drops = self.drops();
        let dropped_count: u64 = drops.iter().map(|(_, c, _)| c).sum();
        let dropped: Vec<String> = drops.iter().flat_map(|(_, _, ids)| ids.clone()).collect();
        let dropped_set: HashSet<&String> = dropped.iter().collect();
        ensure!(
            dropped_set.len() == dropped.len(),
            "an event was reported dropped twice"
        );
        let queued_set: HashSet<&String> = self.queued.iter().collect();
        ensure!(
            queued_set.len() == self.queued.len(),
            "an event is queued twice"
        );
        ensure!(
            self.stats.delivered == delivered.len() as u64,
            "stats.delivered = {} but {} reported delivered",
            self.stats.delivered,
            delivered.len()
        );
        ensure!(
            self.stats.dropped.total() == dropped_count,
            "stats.dropped.total() = {} but {} reported dropped ({:?})",
            self.stats.dropped.total(),
            dropped_count,
            self.stats.dropped
        );
        let accounted = delivered.len() as u64 + dropped_count + self.queued.len() as u64;
        ensure!(
            accounted == tracked.len() as u64,
            "delivered {} + dropped {} + queued {} = {accounted}, tracked {}",
            delivered.len(),
            dropped_count,
            self.queued.len(),
            tracked.len()
        );
        for (what, set) in [
            ("delivered", &delivered_set),
            ("dropped", &dropped_set),
            ("queued", &queued_set),
        ] {
            for id in set.iter() {
                ensure!(tracked_set.contains(id), "{what} {id} was never tracked");
            }
        }
        ensure!(
            delivered_set.is_disjoint(&queued_set),
            "an event is both delivered and still queued"
        );
        ensure!(
            delivered_set.is_disjoint(&dropped_set),
            "an event is both delivered and dropped"
        );
        ensure!(
            dropped_set.is_disjoint(&queued_set),
            "an event is both dropped and still queued"
        );
        let stored_list = self.server.stored_ids();
        let stored: HashSet<String> = stored_list.iter().cloned().collect();
        ensure!(
            stored.len() == stored_list.len(),
            "the server acknowledged an event twice: it was sent again after a 2xx"
        );
        for id in &delivered {
            ensure!(
                stored.contains(id),
                "{id} reported delivered, but the server never answered 2xx to a batch holding it"
            );
        }
        Ok(())
    }

    /// `(delivered, dropped, queued)`.
    fn counts(&self) -> (u64, u64, u64) {
        (
            self.stats.delivered,
            self.stats.dropped.total(),
            self.queued.len() as u64,
        )
    }

    /// The ledger, then `(delivered, dropped, queued)` is `want`; `meant` says what that is.
    fn ledger_and_counts(&self, want: (u64, u64, u64), meant: &str) -> Result<(), String> {
        self.ledger()?;
        let (d, x, q) = self.counts();
        ensure!(
            (d, x, q) == want,
            "expected {meant}; delivered {d}, dropped {x}, queued {q}; notes {:?}",
            self.notes
        );
        Ok(())
    }

    /// Batch requests (POST to `/v1/batch`) the server read.
    fn batch_requests(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/batch")
            .count()
    }

    /// The ledger, then what the README's table says for this case.
    fn expect(&self, expect: Expect) -> Outcome {
        self.ledger()?;
        let n = self.tracked.len() as u64;
        ensure!(n == N as u64, "tracked {n} events, meant {N}");
        let delivered = self.stats.delivered;
        let dropped = self.stats.dropped.total();
        let queued = self.queued.len() as u64;
        let failures = self.failures();
        let pauses = self.pauses();
        let others: Vec<String> = self
            .server
            .requests()
            .iter()
            .filter(|r| r.path != "/v1/batch")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        ensure!(
            others.is_empty(),
            "the client requested other paths: {others:?}"
        );
        match expect {
            Expect::Delivered => {
                ensure!(
                    delivered == n && dropped == 0 && queued == 0,
                    "expected all {n} delivered; delivered {delivered}, dropped {dropped}, queued {queued}; notes {:?}",
                    self.notes
                );
                ensure!(
                    failures.is_empty() && pauses.is_empty(),
                    "a delivered batch also failed or paused: {:?}",
                    self.notes
                );
            }
            Expect::Retried(status) => {
                ensure!(
                    delivered == 0 && dropped == 0 && queued == n,
                    "expected all {n} kept for a retry; delivered {delivered}, dropped {dropped} ({:?}), queued {queued}",
                    self.stats.dropped
                );
                ensure!(
                    pauses.is_empty(),
                    "expected a retry, got a pause: {pauses:?}"
                );
                ensure!(
                    !failures.is_empty(),
                    "no UploadFailed notification; notes {:?}",
                    self.notes
                );
                let got: Vec<Option<u16>> = failures.iter().map(|f| f.0).collect();
                ensure!(
                    got.iter().all(|s| *s == status),
                    "UploadFailed statuses {got:?}, expected {status:?}; errors {:?}",
                    failures.iter().map(|f| &f.3).collect::<Vec<_>>()
                );
            }
            Expect::Paused(status) => {
                ensure!(
                    delivered == 0 && dropped == 0 && queued == n,
                    "expected all {n} kept while paused; delivered {delivered}, dropped {dropped} ({:?}), queued {queued}",
                    self.stats.dropped
                );
                ensure!(
                    pauses == vec![status],
                    "expected one Paused {{ status: {status} }}, got pauses {pauses:?}; notes {:?}",
                    self.notes
                );
                ensure!(
                    failures.is_empty(),
                    "a paused batch was also reported failed: {failures:?}"
                );
                let batches = self.batch_requests();
                ensure!(
                    batches == 1,
                    "expected exactly one request while paused, the server read {batches}"
                );
            }
            Expect::Isolated(reason) => {
                let poison = self.id_of("poison").ok_or("no event tagged poison")?;
                let drops = self.drops();
                ensure!(
                    delivered == n - 1 && dropped == 1 && queued == 0,
                    "expected {} delivered and the poison dropped; delivered {delivered}, dropped {dropped} ({drops:?}), queued {queued}",
                    n - 1
                );
                ensure!(
                    drops.len() == 1 && drops[0].0 == reason && drops[0].2 == vec![poison.clone()],
                    "expected the poison {poison} dropped as {reason:?}, got {drops:?}"
                );
                ensure!(
                    pauses.is_empty(),
                    "a split batch paused uploads: {pauses:?}"
                );
            }
        }
        Ok(self.summary())
    }

    /// What happened, in one line: counts, requests, and the first failure or pause.
    fn summary(&self) -> String {
        let first = self
            .notes
            .iter()
            .find(|n| {
                matches!(
                    n,
                    Notification::UploadFailed { .. } | Notification::Paused { .. }
                )
            })
            .map(|n| match n {
                Notification::UploadFailed {
                    status,
                    error,
                    retry_in_ms,
                    ..
                } => format!("UploadFailed {status:?} retry in {retry_in_ms} ms: {error}"),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        format!(
            "delivered {} dropped {} queued {} requests {} {first}",
            self.stats.delivered,
            self.stats.dropped.total(),
            self.queued.len(),
            self.server.requests().len()
        )
    }
}

/// Runs every case in its own thread and fails listing each case that did not behave.
fn run_matrix(group: &str, cases: Vec<Case>) {
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, case)| {
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(case)
                .expect("spawn case");
            (name, thread)
        })
        .collect();
    let mut failed = Vec::new();
    for (name, thread) in handles {
        let result = thread
            .join()
            .unwrap_or_else(|e| Err(format!("panicked: {}", panic_text(&e))));
        match result {
            Ok(detail) => eprintln!("hostile matrix | {group} | {name} | ok | {detail}"),
            Err(e) => {
                eprintln!("hostile matrix | {group} | {name} | FAILED: {e}");
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{group}: {} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn tags() -> Vec<&'static str> {
    vec!["ok"; N]
}

/// One case: a server with `script`, `N` events, a flush, then the table's verdict.
fn case(name: impl Into<String>, script: impl Script, expect: Expect) -> Case {
    case_with(name, script, |_| {}, expect)
}

/// [`case`] with the base policy changed by `policy`.
fn case_with(
    name: impl Into<String>,
    script: impl Script,
    policy: fn(&mut Policy),
    expect: Expect,
) -> Case {
    let name = name.into();
    let run = move || -> Outcome {
        let started = Instant::now();
        let live = Live::start(HostileServer::start(script), &tags(), policy);
        let flushed_after = started.elapsed();
        let detail = live.finish()?.expect(expect)?;
        Ok(format!("flush ended after {flushed_after:.1?}; {detail}"))
    };
    (name, Box::new(run))
}

fn raw(bytes: &str, status: Option<u16>, then: Then) -> Reply {
    Reply::Raw {
        bytes: bytes.as_bytes().to_vec(),
        status,
        then,
    }
}

/// A script answering request number `index` with `at` and every other with `otherwise`.
fn status_at(index: usize, at: u16, otherwise: u16) -> impl Script {
    move |r: &Request| {
        if r.index == index {
            Reply::status(at)
        } else {
            Reply::status(otherwise)
        }
    }
}

/// One [`case`] a status: a server answering every request with it, and the verdict
/// `expect` gives for it.
fn status_cases(statuses: &[u16], expect: fn(u16) -> Expect) -> Vec<Case> {
    statuses
        .iter()
        .map(|&s| {
            case(
                format!("{s}"),
                move |_: &Request| Reply::status(s),
                expect(s),
            )
        })
        .collect()
}

/// Every 2xx delivers the batch, once; so does a 103 Early Hints followed by a 200.
#[test]
fn success_statuses_are_delivered() {
    let mut cases = status_cases(&[200, 201, 202, 204, 299], |_| Expect::Delivered);
    cases.push(case(
        "103 then 200",
        |_: &Request| {
            raw(
                "HTTP/1.1 103 Early Hints\r\nLink: </x.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Some(200),
                Then::Close,
            )
        },
        Expect::Delivered,
    ));
    cases.push(case(
        "HTTP/1.0 200, close-delimited",
        |_: &Request| {
            raw(
                "HTTP/1.0 200 OK\r\n\r\n{\"success\":true}",
                Some(200),
                Then::Close,
            )
        },
        Expect::Delivered,
    ));
    run_matrix("2xx", cases);
}

/// 408, 429 and 5xx but 501/505 keep the events and report `UploadFailed` with the status.
#[test]
fn retryable_statuses_keep_events() {
    let cases = status_cases(&[408, 429, 500, 502, 503, 504, 511, 599], |s| {
        Expect::Retried(Some(s))
    });
    run_matrix("retryable", cases);
}

/// 400 and 422 split the batch down to the one bad event and drop it as rejected; 413
/// drops it as too large; the other events are delivered.
#[test]
fn split_statuses_isolate_the_bad_event() {
    let cases = [
        (400, DropReason::Rejected { status: 400 }),
        (422, DropReason::Rejected { status: 422 }),
        (413, DropReason::TooLarge),
    ]
    .into_iter()
    .map(|(s, reason)| {
        let name = format!("{s}");
        let run = move || -> Outcome {
            let script = move |r: &Request| {
                if r.has_tag("poison") {
                    Reply::status(s)
                } else {
                    Reply::status(200)
                }
            };
            let mut t = tags();
            t[5] = "poison";
            let live = Live::start(HostileServer::start(script), &t, |_| {});
            live.finish()?.expect(Expect::Isolated(reason))
        };
        (name, Box::new(run) as CaseFn)
    })
    .collect();
    run_matrix("split", cases);
}

/// 401 and 403 pause uploads and keep every event.
#[test]
fn auth_statuses_pause() {
    let cases = status_cases(&[401, 403], Expect::Paused);
    run_matrix("auth", cases);
}

/// Every 3xx means a misconfigured endpoint: paused, events kept, and the `Location`
/// never requested (a redirect must not carry the write key or the events elsewhere).
#[test]
fn redirects_pause_and_are_never_followed() {
    let mut cases: Vec<Case> = [300, 301, 302, 303, 304, 305, 307, 308]
        .into_iter()
        .map(|s| {
            case(
                format!("{s}"),
                move |r: &Request| {
                    if r.path == "/v1/batch" {
                        Reply::with_header(s, "Location", ELSEWHERE)
                    } else {
                        Reply::status(200)
                    }
                },
                Expect::Paused(s),
            )
        })
        .collect();
    for s in [302u16, 307, 308] {
        cases.push((
            format!("{s} to another host"),
            Box::new(move || -> Outcome {
                let other = HostileServer::start(|_: &Request| Reply::status(200));
                let location = format!("{}/v1/batch", other.url());
                let script = move |_: &Request| Reply::with_header(s, "Location", &location);
                let live = Live::start(HostileServer::start(script), &tags(), |_| {});
                let done = live.finish()?;
                ensure!(
                    other.connections() == 0,
                    "the client connected to the redirect's host {} time(s)",
                    other.connections()
                );
                done.expect(Expect::Paused(s))
            }),
        ));
    }
    run_matrix("3xx", cases);
}

/// Every other status (101 as a final answer, other 4xx, 501, 505, 600+) means a
/// misconfigured endpoint: paused, events kept, never delivered, never dropped.
#[test]
fn other_statuses_pause_and_never_drop() {
    let mut cases = status_cases(
        &[402, 404, 405, 409, 410, 418, 451, 501, 505, 600, 999],
        Expect::Paused,
    );
    cases.push(case(
        "101 final",
        |_: &Request| {
            raw(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
                Some(101),
                Then::Close,
            )
        },
        Expect::Paused(101),
    ));
    run_matrix("other", cases);
}

/// Answers that are not HTTP (a status out of range, letters, an SSH banner, a 1xx and
/// then nothing, no answer at all) are network errors: retried, events kept.
#[test]
fn garbage_answers_are_network_errors() {
    let garbage: Vec<(&str, &str)> = vec![
        (
            "status 1000",
            "HTTP/1.1 1000 Big\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "status abc",
            "HTTP/1.1 abc Letters\r\nContent-Length: 0\r\n\r\n",
        ),
        ("status 0", "HTTP/1.1 0 Zero\r\nContent-Length: 0\r\n\r\n"),
        (
            "status 099",
            "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
        ),
        ("ssh banner", "SSH-2.0-OpenSSH_9.6\r\n"),
        (
            "103 then close",
            "HTTP/1.1 103 Early Hints\r\nLink: </x.css>\r\n\r\n",
        ),
        ("empty answer", ""),
    ];
    let cases = garbage
        .into_iter()
        .map(|(name, bytes)| {
            case(
                name,
                move |_: &Request| raw(bytes, None, Then::Close),
                Expect::Retried(None),
            )
        })
        .collect();
    run_matrix("garbage", cases);
}

/// A body cut short (Content-Length larger than what is sent, then close) does not change
/// the verdict the status gave: a 200 is delivered, a 503 retried.
#[test]
fn truncated_bodies_follow_the_status() {
    let cases = [(200, Expect::Delivered), (503, Expect::Retried(Some(503)))]
        .into_iter()
        .map(|(s, expect)| {
            case(
                format!("{s} truncated"),
                move |_: &Request| Reply::Truncated {
                    status: s,
                    declared: 100_000,
                    body: b"{\"success\":".to_vec(),
                },
                expect,
            )
        })
        .collect();
    run_matrix("truncated", cases);
}

/// Answers with bodies of many megabytes, declared or endless, complete (the client reads
/// a bounded part and moves on) and follow the status.
#[test]
fn oversized_bodies_complete() {
    let big = 8 * 1024 * 1024;
    let cases = vec![
        case(
            "200 with 8 MiB",
            move |_: &Request| Reply::Oversized {
                status: 200,
                len: Some(big),
                cap: 0,
            },
            Expect::Delivered,
        ),
        case(
            "200 with an endless body",
            |_: &Request| Reply::Oversized {
                status: 200,
                len: None,
                cap: 256 * 1024 * 1024,
            },
            Expect::Delivered,
        ),
        case(
            "503 with 8 MiB",
            move |_: &Request| Reply::Oversized {
                status: 503,
                len: Some(big),
                cap: 0,
            },
            Expect::Retried(Some(503)),
        ),
        case(
            "200 with 1 MiB of headers",
            |_: &Request| {
                let mut head = String::from("HTTP/1.1 200 OK\r\n");
                for i in 0..16 * 1024 {
                    head.push_str(&format!("X-Filler-{i:05}: {}\r\n", "y".repeat(48)));
                }
                head.push_str("Content-Length: 0\r\n\r\n");
                raw(&head, Some(200), Then::Close)
            },
            Expect::Retried(None),
        ),
    ];
    run_matrix("oversized", cases);
}

/// A connection reset while the request is being read, or in the middle of the answer's
/// head (even after a `200`), is a network error: retried, never delivered.
#[test]
fn resets_are_retried() {
    let cases = vec![
        case("mid-request", ResetMidRequest, Expect::Retried(None)),
        case(
            "mid-status-line",
            |_: &Request| raw("HTTP/1.", None, Then::Reset),
            Expect::Retried(None),
        ),
        case(
            "mid-head after 200",
            |_: &Request| raw("HTTP/1.1 200 OK\r\nContent-Le", None, Then::Reset),
            Expect::Retried(None),
        ),
        case(
            "after the request, no answer",
            |_: &Request| Reply::Reset,
            Expect::Retried(None),
        ),
    ];
    run_matrix("reset", cases);
}

/// With a 2 s request timeout: an answer trickling in one byte a second, or no answer at
/// all, is ended by the timeout (a network error, retried, never delivered, even though
/// the trickle spells a 200); a 200 whose body trickles is delivered, without waiting
/// for the body.
#[test]
fn slow_answers_time_out() {
    fn short(p: &mut Policy) {
        p.request_timeout = Duration::from_secs(2);
    }
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n".to_vec();
    let cases = vec![
        case_with(
            "200 head at one byte a second",
            |_: &Request| Reply::Trickle {
                prefix: Vec::new(),
                status: None,
                bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
                interval: Duration::from_secs(1),
            },
            short,
            Expect::Retried(None),
        ),
        case_with(
            "no answer at all",
            |_: &Request| Reply::Silence {
                hold: Duration::from_secs(30),
            },
            short,
            Expect::Retried(None),
        ),
        case_with(
            "200 then a body at one byte a second",
            move |_: &Request| Reply::Trickle {
                prefix: head.clone(),
                status: Some(200),
                bytes: vec![b'x'; 40],
                interval: Duration::from_secs(1),
            },
            short,
            Expect::Delivered,
        ),
    ];
    run_matrix("slow", cases);
}

/// After an answer followed by a second, unasked-for answer on the same kept-alive
/// connection, the next batch is not taken as delivered by that stale answer: only what
/// the server really acknowledged counts.
#[test]
fn smuggled_answer_is_not_a_delivery() {
    let name = "200 plus a smuggled 200, then 503";
    let run = move || -> Outcome {
        let script = |r: &Request| {
            if r.index == 0 {
                raw(
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                    Some(200),
                    Then::KeepOpen,
                )
            } else {
                Reply::status(503)
            }
        };
        let mut live = Live::start(HostileServer::start(script), &tags(), |_| {});
        live.track_and_flush(&tags());
        let done = live.finish()?;
        done.ledger_and_counts(
            (N as u64, 0, N as u64),
            "the first batch delivered and the second kept",
        )?;
        Ok(done.summary())
    };
    run_matrix("smuggled", vec![(name.to_owned(), Box::new(run))]);
}

/// A server that fails and then recovers gets every event exactly once: a 503 then 200s
/// (the retry delivers); a pause (401, 404, 301) probed by a flush while still broken,
/// then a flush once fixed (delivered then, one request per flush).
#[test]
fn recovery_delivers_exactly_once() {
    let mut cases: Vec<Case> = Vec::new();
    cases.push((
        "503 then 200".to_owned(),
        Box::new(|| -> Outcome {
            let script = status_at(0, 503, 200);
            let live = Live::start(HostileServer::start(script), &tags(), |_| {});
            ensure!(
                live.wait_until(|s| s.delivered >= N as u64),
                "the retry never delivered: {:?}",
                live.client().stats()
            );
            let done = live.finish()?;
            done.ledger_and_counts((N as u64, 0, 0), "all delivered")?;
            ensure!(
                done.batch_requests() == 2,
                "{} requests for one failure and one success",
                done.batch_requests()
            );
            Ok(done.summary())
        }),
    ));
    cases.push((
        "2nd of 3 batches 503".to_owned(),
        Box::new(|| -> Outcome {
            let script = status_at(1, 503, 200);
            let live = Live::start(HostileServer::start(script), &tags(), |p| {
                p.max_batch_events = 3;
            });
            ensure!(
                live.wait_until(|s| s.delivered >= N as u64),
                "the retry never delivered: {:?}",
                live.client().stats()
            );
            let done = live.finish()?;
            done.ledger_and_counts((N as u64, 0, 0), "all delivered")?;
            Ok(done.summary())
        }),
    ));
    cases.push((
        "2nd of 3 batches 401".to_owned(),
        Box::new(|| -> Outcome {
            let script = status_at(0, 200, 401);
            let live = Live::start(HostileServer::start(script), &tags(), |p| {
                p.max_batch_events = 3;
            });
            let done = live.finish()?;
            done.ledger_and_counts(
                (3, 0, N as u64 - 3),
                "the first batch of 3 delivered and the rest kept",
            )?;
            ensure!(
                done.pauses() == vec![401] && done.batch_requests() == 2,
                "pauses {:?} after {} requests, expected one 401 after 2",
                done.pauses(),
                done.batch_requests()
            );
            Ok(done.summary())
        }),
    ));
    for status in [401u16, 404, 301] {
        cases.push((
            format!("{status} probed, then fixed"),
            Box::new(move || -> Outcome {
                let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let f = Arc::clone(&fixed);
                let script = move |_: &Request| {
                    if f.load(std::sync::atomic::Ordering::Acquire) {
                        Reply::status(200)
                    } else {
                        Reply::with_header(status, "Location", ELSEWHERE)
                    }
                };
                let mut live = Live::start(HostileServer::start(script), &tags(), |_| {});
                let after_pause = live.requests().len();
                live.flush_again(); // the probe, still refused
                let after_probe = live.requests().len();
                fixed.store(true, std::sync::atomic::Ordering::Release);
                live.flush_again(); // the probe that finds it fixed
                let done = live.finish()?;
                done.ledger_and_counts((N as u64, 0, 0), "all delivered")?;
                ensure!(
                    (after_pause, after_probe) == (1, 2),
                    "requests after the pause {after_pause}, after the probe {after_probe}: expected 1 then 2"
                );
                ensure!(
                    done.pauses() == vec![status, status],
                    "pauses {:?}, expected two of {status}",
                    done.pauses()
                );
                ensure!(
                    done.batch_requests() == 3,
                    "{} requests, expected 3 (refused, probe refused, probe delivered)",
                    done.batch_requests()
                );
                Ok(done.summary())
            }),
        ));
    }
    run_matrix("recovery", cases);
}

/// A self-signed certificate for 127.0.0.1 and localhost, and a server configuration
/// using it.
fn self_signed() -> (
    rustls::pki_types::CertificateDer<'static>,
    Arc<rustls::ServerConfig>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("self-signed certificate");
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    (cert, Arc::new(config))
}

/// The hostile TLS server works: a client that trusts its certificate gets its 200 (so
/// that the fail-closed test below fails for the certificate, not a broken server).
#[test]
fn tls_server_answers_a_client_that_trusts_it() {
    use std::io::{Read, Write};
    let (cert, config) = self_signed();
    let server = HostileServer::start_tls(config, |_: &Request| Reply::status(200));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let addr = server.url().trim_start_matches("https://").to_owned();
    let tcp = std::net::TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    tls.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert_eq!(server.requests().len(), 1);
}

/// An HTTPS endpoint with a self-signed certificate fails closed: no request is ever
/// sent over it, nothing is delivered, every event is kept for a retry.
#[test]
fn self_signed_tls_fails_closed() {
    let name = "self-signed 200";
    let run = move || -> Outcome {
        let (_, config) = self_signed();
        let server = HostileServer::start_tls(config, |_: &Request| Reply::status(200));
        let live = Live::start(server, &tags(), |_| {});
        let done = live.finish()?;
        ensure!(
            done.server.connections() >= 1,
            "the client never connected: the case proves nothing"
        );
        ensure!(
            done.server.requests().is_empty(),
            "a request went over an untrusted connection: {:?}",
            done.server.requests()
        );
        done.expect(Expect::Retried(None))
    };
    let mut cases: Vec<Case> = vec![(name.to_owned(), Box::new(run))];
    cases.push((
        "https:// to a plain HTTP server".to_owned(),
        Box::new(|| -> Outcome {
            wrong_scheme(
                HostileServer::start(|_: &Request| Reply::status(200)),
                "https",
            )
        }),
    ));
    cases.push((
        "http:// to a TLS server".to_owned(),
        Box::new(|| -> Outcome {
            let (_, config) = self_signed();
            wrong_scheme(
                HostileServer::start_tls(config, |_: &Request| Reply::status(200)),
                "http",
            )
        }),
    ));
    run_matrix("tls", cases);
}

/// A client sending to `scheme://` the address of `server`, which speaks the other
/// scheme, with a 2 s request timeout: a network error, every event kept for a retry.
fn wrong_scheme(server: HostileServer, scheme: &str) -> Outcome {
    let url = format!("{scheme}://{}", server.addr());
    let mut live = Live::open_at(server, url, |p| {
        p.request_timeout = Duration::from_secs(2);
    });
    live.track_and_flush(&tags());
    live.finish()?.expect(Expect::Retried(None))
}

/// `http://localhost:PORT` reaches a server listening on 127.0.0.1 only (the name may
/// resolve to ::1 first).
#[test]
fn localhost_reaches_an_ipv4_only_server() {
    let name = "localhost, 200";
    let run = move || -> Outcome {
        let server = HostileServer::start(|_: &Request| Reply::status(200));
        let url = format!("http://localhost:{}", server.addr().port());
        let mut live = Live::open_at(server, url, |_| {});
        live.track_and_flush(&tags());
        live.finish()?.expect(Expect::Delivered)
    };
    run_matrix("localhost", vec![(name.to_owned(), Box::new(run))]);
}

// ----- Retry-After -----

/// Makes a header value when the server answers (dates are relative to that moment).
type HeaderValue = fn() -> String;

/// An HTTP date `offset_secs` from now in one of its three forms.
fn http_date(form: &str, offset_secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let t = chrono::DateTime::from_timestamp(now + offset_secs, 0).expect("date in range");
    let format = match form {
        "imf" => "%a, %d %b %Y %H:%M:%S GMT",
        "rfc850" => "%A, %d-%b-%y %H:%M:%S GMT",
        "asctime" => "%a %b %e %H:%M:%S %Y",
        _ => unreachable!("no such form {form}"),
    };
    t.format(format).to_string()
}

/// Runs the matrix `group`: one case a `(name, value)`, each tracking against a server
/// answering 503 with `Retry-After: value()` (computed at each request) and watching the
/// requests for `window` after the first, then `check`ing what it saw.
fn retry_after_matrix(
    group: &str,
    values: Vec<(&str, HeaderValue)>,
    policy: fn(&mut Policy),
    window: Duration,
    check: fn(&Done, &[Request], Duration) -> Result<(), String>,
) {
    let cases = values
        .into_iter()
        .map(|(name, value)| {
            retry_after_case(format!("Retry-After: {name}"), value, policy, window, check)
        })
        .collect();
    run_matrix(group, cases);
}

/// One case of [`retry_after_matrix`].
fn retry_after_case(
    name: String,
    value: HeaderValue,
    policy: fn(&mut Policy),
    window: Duration,
    check: fn(&Done, &[Request], Duration) -> Result<(), String>,
) -> Case {
    let run = move || -> Outcome {
        let script = move |_: &Request| Reply::with_header(503, "Retry-After", &value());
        let live = Live::start(HostileServer::start(script), &tags(), policy);
        let first = live.first_request_at()?;
        // Bounded: one sleep to the end of the window.
        std::thread::sleep((first + window).saturating_duration_since(Instant::now()));
        let seen: Vec<Request> = live
            .requests()
            .into_iter()
            .filter(|r| r.at <= first + window)
            .collect();
        let done = live.finish()?;
        let detail = done.expect(Expect::Retried(Some(503)))?;
        check(&done, &seen, window)?;
        Ok(format!("{} requests in {window:?}; {detail}", seen.len()))
    };
    (name, Box::new(run))
}

/// Every retry waited at least the client's own backoff, and only a handful of requests
/// came in the window (a tight loop makes hundreds).
fn never_sooner_than_own_backoff(
    done: &Done,
    seen: &[Request],
    window: Duration,
) -> Result<(), String> {
    for (_, attempts, retry_in_ms, _) in done.failures() {
        let min = own_backoff_min(attempts, &done.policy).as_millis() as u64;
        ensure!(
            retry_in_ms >= min,
            "attempt {attempts} retries in {retry_in_ms} ms, sooner than its own backoff ({min} ms)"
        );
    }
    ensure!(
        seen.len() <= 5,
        "{} requests within {window:?} of the first, with a {:?} backoff base",
        seen.len(),
        done.policy.backoff_base
    );
    Ok(())
}

/// `Retry-After` of 0, negative, fractional, garbage, empty or a date in the past, in
/// each of the three HTTP date forms, never makes the client retry sooner than its own
/// backoff.
#[test]
fn retry_after_never_shortens_own_backoff() {
    let values: Vec<(&str, HeaderValue)> = vec![
        ("0", || "0".into()),
        ("-5", || "-5".into()),
        ("1.5", || "1.5".into()),
        ("garbage", || "soon, promise".into()),
        ("empty", String::new),
        ("past imf-fixdate", || http_date("imf", -3600)),
        ("past rfc850", || http_date("rfc850", -3600)),
        ("past asctime", || http_date("asctime", -3600)),
        ("1994 imf-fixdate", || {
            "Sun, 06 Nov 1994 08:49:37 GMT".into()
        }),
    ];
    retry_after_matrix(
        "retry-after past",
        values,
        |_| {},
        Duration::from_secs(4),
        never_sooner_than_own_backoff,
    );
}

/// The first retry honoured a wait of about 6 s: it was announced as at least 3 s (dates
/// have whole seconds) and at most `backoff_max`, and no retry came before 3 s.
fn honoured(done: &Done, seen: &[Request], window: Duration) -> Result<(), String> {
    let failures = done.failures();
    let (_, attempts, retry_in_ms, _) = failures.first().ok_or("no UploadFailed")?.clone();
    let max = done.policy.backoff_max.as_millis() as u64;
    ensure!(
        attempts == 1 && (3_000..=max).contains(&retry_in_ms),
        "the first retry is due in {retry_in_ms} ms, expected the server's ~6 s (3000..={max})"
    );
    ensure!(
        seen.len() == 1,
        "{} requests within {window:?} of the first, despite Retry-After of ~6 s",
        seen.len()
    );
    Ok(())
}

/// A `Retry-After` in the future, as seconds or in each of the three HTTP date forms, is
/// honoured.
#[test]
fn retry_after_future_is_honoured() {
    let values: Vec<(&str, HeaderValue)> = vec![
        ("6", || "6".into()),
        ("future imf-fixdate", || http_date("imf", 6)),
        ("future rfc850", || http_date("rfc850", 6)),
        ("future asctime", || http_date("asctime", 6)),
    ];
    retry_after_matrix(
        "retry-after future",
        values,
        |p| p.backoff_max = Duration::from_secs(10),
        Duration::from_secs(3),
        honoured,
    );
}

/// Every retry was announced at exactly `backoff_max` (the server asked for longer) and
/// came: a huge `Retry-After` is capped, neither ignored nor obeyed.
fn capped(done: &Done, _seen: &[Request], window: Duration) -> Result<(), String> {
    let max = done.policy.backoff_max.as_millis() as u64;
    for (_, attempts, retry_in_ms, _) in done.failures() {
        ensure!(
            retry_in_ms == max,
            "attempt {attempts} retries in {retry_in_ms} ms, expected backoff_max {max} ms"
        );
    }
    ensure!(
        done.batch_requests() >= 2,
        "no retry within {window:?} though backoff_max is {:?}",
        done.policy.backoff_max
    );
    Ok(())
}

/// A huge `Retry-After` (seconds beyond any sane wait, beyond u64, a date in 2100) is
/// capped at `backoff_max`.
#[test]
fn retry_after_huge_is_capped() {
    let values: Vec<(&str, HeaderValue)> = vec![
        ("99999999999", || "99999999999".into()),
        ("beyond u64", || "99999999999999999999999".into()),
        ("2100 imf-fixdate", || {
            "Fri, 01 Jan 2100 00:00:00 GMT".into()
        }),
    ];
    retry_after_matrix(
        "retry-after huge",
        values,
        |p| p.backoff_max = Duration::from_secs(2),
        Duration::from_secs(8),
        capped,
    );
}

/// Waits stay persisted: a pause (404) and a server's `Retry-After` outlive a restart of
/// the app; the new client sends nothing before they are over.
#[test]
fn waits_survive_a_restart() {
    let mut cases: Vec<Case> = Vec::new();
    cases.push((
        "404 pause".to_owned(),
        Box::new(|| -> Outcome {
            let script = |_: &Request| Reply::status(404);
            let mut live = Live::start(HostileServer::start(script), &tags(), |_| {});
            live.restart()?;
            std::thread::sleep(Duration::from_millis(1500));
            let done = live.finish()?;
            done.ledger_and_counts((0, 0, N as u64), "all kept")?;
            ensure!(
                done.batch_requests() == 1,
                "{} requests: the restarted client forgot the pause",
                done.batch_requests()
            );
            Ok(done.summary())
        }),
    ));
    cases.push((
        "Retry-After: 6".to_owned(),
        Box::new(|| -> Outcome {
            let script = |_: &Request| Reply::with_header(503, "Retry-After", "6");
            let mut live = Live::start(HostileServer::start(script), &tags(), |p| {
                p.backoff_max = Duration::from_secs(10);
            });
            let first = live.first_request_at()?;
            live.restart()?;
            let early = live.requests_before(first + Duration::from_secs(3));
            let done = live.finish()?;
            done.ledger_and_counts((0, 0, N as u64), "all kept")?;
            ensure!(
                early == 1,
                "{early} requests within 3 s of the first: the restarted client forgot Retry-After"
            );
            Ok(done.summary())
        }),
    ));
    run_matrix("restart", cases);
}

/// A server that closes a kept-alive connection after each answer (as servers do with
/// idle connections) costs nothing: the next batch goes out on a fresh connection and is
/// delivered, without a failure or a backoff.
#[test]
fn server_closing_idle_connections_costs_no_retry() {
    let name = "200 then FIN, twice";
    let run = move || -> Outcome {
        let script = |_: &Request| {
            raw(
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Some(200),
                Then::Close,
            )
        };
        let mut live = Live::start(HostileServer::start(script), &tags(), |_| {});
        // Let the FIN arrive before the pooled connection is used again.
        std::thread::sleep(Duration::from_millis(300));
        live.track_and_flush(&tags());
        let done = live.finish()?;
        done.ledger_and_counts((2 * N as u64, 0, 0), "both batches delivered")?;
        ensure!(
            done.failures().is_empty(),
            "a closed idle connection cost a failed upload: {:?}",
            done.failures()
        );
        Ok(done.summary())
    };
    run_matrix("idle close", vec![(name.to_owned(), Box::new(run))]);
}

/// Shutting down while a request hangs (the server never answers, the request timeout is
/// long) returns within its timeout and keeps every event for the next start.
#[test]
fn shutdown_during_a_hung_request_keeps_events() {
    let name = "no answer, shutdown(1 s)";
    let run = move || -> Outcome {
        let script = |_: &Request| Reply::Silence {
            hold: Duration::from_secs(30),
        };
        let live = Live::open(HostileServer::start(script), |p| {
            p.request_timeout = Duration::from_secs(20);
        });
        for k in 0..N {
            live.client()
                .track("Hostile Test", json!({"tag": "ok", "k": k}))
                .map_err(|e| format!("track: {e}"))?;
        }
        live.client().flush().map_err(|e| format!("flush: {e}"))?;
        ensure!(
            live.server.wait_for_requests(1, WAIT),
            "the request never reached the server"
        );
        let started = Instant::now();
        let shut = live.client().shutdown(Duration::from_secs(1));
        let took = started.elapsed();
        shut.map_err(|e| format!("shutdown failed after {took:?}: {e}"))?;
        ensure!(
            took < Duration::from_secs(5),
            "shutdown(1 s) took {took:?} with a request hanging"
        );
        let done = live.finish()?;
        done.ledger_and_counts((0, 0, N as u64), "all kept")?;
        Ok(format!("shutdown took {took:.1?}; {}", done.summary()))
    };
    run_matrix("hung shutdown", vec![(name.to_owned(), Box::new(run))]);
}

/// An explicit `flush()` does not override a server's `Retry-After` (429 or 503, seconds
/// or an HTTP date): nothing is sent before the server's time.
#[test]
fn flush_respects_retry_after() {
    let values: Vec<(&str, u16, HeaderValue)> = vec![
        ("429, 6", 429, || "6".into()),
        ("503, 6", 503, || "6".into()),
        ("429, imf-fixdate +6 s", 429, || http_date("imf", 6)),
    ];
    let cases = values
        .into_iter()
        .map(|(name, status, value)| {
            let run = move || -> Outcome {
                let script = move |_: &Request| Reply::with_header(status, "Retry-After", &value());
                let mut live = Live::start(HostileServer::start(script), &tags(), |p| {
                    p.backoff_max = Duration::from_secs(10);
                });
                let first = live.first_request_at()?;
                live.flush_again();
                live.flush_again();
                let early = live.requests_before(first + Duration::from_secs(3));
                let done = live.finish()?;
                let detail = done.expect(Expect::Retried(Some(status)))?;
                ensure!(
                    early == 1,
                    "{early} requests within 3 s of the first: flush() overrode Retry-After"
                );
                Ok(detail)
            };
            (format!("Retry-After: {name}"), Box::new(run) as CaseFn)
        })
        .collect();
    run_matrix("flush vs retry-after", cases);
}
