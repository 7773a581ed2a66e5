//! The delivery pipeline: batches taken from recent commits instead of store loads, the
//! next batch prepared while one is on the wire, deletes that wait for the next request,
//! and the fallbacks to loading whenever what the store holds is uncertain.

use std::io::Read;

use trailhound_core::engine::Transmit;
use trailhound_core::store::{conformance, execute, MemoryStore};
use trailhound_core::testing::*;
use trailhound_core::*;

/// 2025-06-15T15:06:40Z.
const T0: i64 = 1_750_000_000_000;

fn track_n<S: QueueStore>(h: &mut Harness<S>, n: usize) -> Vec<String> {
    (0..n).map(|i| h.track(&format!("Event {i}"))).collect()
}

fn loads<S: QueueStore>(h: &Harness<S>) -> usize {
    h.store_calls.iter().filter(|c| c.op == "load").count()
}

fn each_delivered_once<S: QueueStore>(h: &Harness<S>, ids: &[String]) {
    for id in ids {
        assert_eq!(h.delivery_count(id), 1, "{id} delivered exactly once");
    }
}

/// A runtime like the native worker, on a virtual clock, that logs every store operation,
/// request and answer in the order they happen: after each input it runs the store
/// operations, then sends, then runs the store operations again.
struct Driver<S: QueueStore> {
    engine: Engine,
    store: S,
    now: i64,
    log: Vec<String>,
    wire: Vec<Transmit>,
    /// Whether requests are sent (a client dropped without `shutdown` sends none).
    sending: bool,
}

impl<S: QueueStore> Driver<S> {
    fn new(mut store: S, policy: Policy) -> Self {
        let snapshot = store.snapshot().unwrap();
        let mut engine = Engine::new(policy, 1, snapshot, identity(1), T0);
        engine.handle_conditions(wifi_charging(), T0);
        let mut d = Driver {
            engine,
            store,
            now: T0,
            log: Vec::new(),
            wire: Vec::new(),
            sending: true,
        };
        d.drive();
        d.log.clear();
        d
    }

    fn store_ops(&mut self) {
        while let Some(op) = self.engine.poll_store(self.now).cloned() {
            let result = execute(&mut self.store, &op);
            let n = match (&op, &result) {
                (StoreOp::Insert(evs), _) => evs.len(),
                (StoreOp::Delete(seqs), _) => seqs.len(),
                (_, Ok(store::StoreOutcome::Loaded(evs))) => evs.len(),
                _ => 0,
            };
            self.log.push(format!("{} {n}", op.name()));
            self.engine.handle_store(result, self.now);
        }
    }

    fn drive(&mut self) {
        self.store_ops();
        if self.sending {
            if let Some(t) = self.engine.poll_transmit(self.now) {
                self.log.push(format!("send {}", t.events));
                self.wire.push(t);
            }
        }
        self.store_ops();
        while self.engine.poll_notification().is_some() {}
    }

    fn track(&mut self, n: usize) {
        for _ in 0..n {
            let ev = conformance::event(0, self.now, 300);
            self.engine.handle_event(ev, self.now);
        }
        self.drive();
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        self.engine.handle_timeout(self.now);
        self.drive();
    }

    /// The server answers the oldest request not answered yet.
    fn answer(&mut self, result: UploadResult) {
        let t = self.wire.remove(0);
        self.log.push("answer".into());
        self.engine.handle_upload(t.id, result, self.now);
        self.drive();
    }
}

/// The plain JSON of a request's body (compressed unless the `gzip` feature is off).
fn plain_body(t: &Transmit) -> Vec<u8> {
    if !t.gzipped {
        return t.body.clone();
    }
    let body = &t.body[..];
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

/// Events delivered while tracking goes on are taken from the engine's recent commits: no
/// store load at all, each event once.
#[test]
fn a_steady_flow_is_delivered_without_loads() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(50);
    let mut ids = Vec::new();
    for _ in 0..600 {
        ids.extend(track_n(&mut h, 5));
        h.advance(25);
    }
    h.flush();
    h.advance(MINUTE);
    each_delivered_once(&h, &ids);
    assert!(h.requests.len() > 1);
    assert_eq!(loads(&h), 0, "every batch came from memory");
    assert!(h.engine().is_settled());
}

/// A backlog is read two batches per load (the second kept in memory, and sent right
/// after the first), and no event is read twice.
#[test]
fn a_backlog_is_loaded_two_batches_at_a_time() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    h.set_conditions(offline());
    let ids = track_n(&mut h, 5_000);
    h.advance(SECOND);
    h.set_latency(50);
    h.set_conditions(wifi_charging());
    h.advance(MINUTE);
    each_delivered_once(&h, &ids);
    assert_eq!(h.requests.len(), 10);
    assert_eq!(loads(&h), 5, "one load per two batches");
    let read: usize = h
        .store_calls
        .iter()
        .filter(|c| c.op == "load")
        .map(|c| c.events)
        .sum();
    assert!(read <= 5_000, "{read} rows read for 5000 events");
}

/// Turned off (a store shared with other writers), every batch is loaded from the store.
#[test]
fn batches_from_memory_can_be_turned_off() {
    let policy = Policy {
        batches_from_memory: false,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(50);
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.extend(track_n(&mut h, 5));
        h.advance(25);
    }
    h.flush();
    h.advance(MINUTE);
    each_delivered_once(&h, &ids);
    assert!(loads(&h) >= h.requests.len(), "one load per batch at least");
}

/// A store failure between a commit and the upload (here a failing state save) makes the
/// engine forget its recent commits: the batch is loaded, and every event still goes once.
#[test]
fn a_store_failure_falls_back_to_loading() {
    let mut h = Harness::with_store(FlakyStore::default(), Policy::default(), 7, T0);
    h.set_conditions(offline());
    let ids = track_n(&mut h, 30);
    h.advance(SECOND);
    h.store_mut().fail("save_state", FailureKind::Busy, 1);
    let mut identity = h.engine().identity().clone();
    identity.user_id = Some("u1".into());
    h.engine_mut().handle_identity(identity);
    h.advance(5 * SECOND);
    let later = track_n(&mut h, 10);
    h.advance(SECOND);
    h.set_conditions(wifi_charging());
    h.flush();
    h.advance(MINUTE);
    assert_eq!(loads(&h), 1, "after the failure the batch is loaded");
    each_delivered_once(&h, &[ids, later].concat());
    assert_eq!(h.stats().queued_events, 0);
}

/// Without a failure, the same history needs no load.
#[test]
fn without_a_failure_no_load() {
    let mut h = Harness::with_store(FlakyStore::default(), Policy::default(), 7, T0);
    h.set_conditions(offline());
    let ids = track_n(&mut h, 30);
    h.advance(SECOND);
    let mut identity = h.engine().identity().clone();
    identity.user_id = Some("u1".into());
    h.engine_mut().handle_identity(identity);
    h.advance(5 * SECOND);
    let later = track_n(&mut h, 10);
    h.advance(SECOND);
    h.set_conditions(wifi_charging());
    h.flush();
    h.advance(MINUTE);
    assert_eq!(loads(&h), 0);
    each_delivered_once(&h, &[ids, later].concat());
}

/// A failed insert puts its events back in memory ahead of later ones; the engine forgets
/// its recent commits and loads, so that order and once-only delivery hold.
#[test]
fn a_failed_insert_falls_back_to_loading() {
    let mut h = Harness::with_store(FlakyStore::default(), Policy::default(), 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(100);
    let first = track_n(&mut h, 10);
    h.advance(300);
    h.store_mut().fail("insert", FailureKind::Busy, 2);
    let second = track_n(&mut h, 10);
    h.advance(300);
    let third = track_n(&mut h, 10);
    h.flush();
    h.advance(MINUTE);
    let all: Vec<String> = [first, second, third].concat();
    each_delivered_once(&h, &all);
    let sent: Vec<String> = h
        .requests
        .iter()
        .flat_map(|r| r.message_ids.clone())
        .collect();
    assert_eq!(sent, all, "in order, once");
    assert!(loads(&h) >= 1);
}

/// A corrupt store replaced while a prepared batch waits: the prepared batch was only in
/// the lost store and is counted lost with it, never sent; recent commits are forgotten.
#[test]
fn a_replaced_store_drops_the_prepared_batch() {
    let policy = Policy {
        max_batch_events: 10,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    track_n(&mut h, 25);
    h.advance(SECOND);
    h.set_latency(1_000);
    h.set_conditions(wifi_charging());
    assert_eq!(h.requests.len(), 1, "first batch on the wire");
    h.advance(500);
    h.replace_store(MemoryStore::new(), "database disk image is malformed");
    h.advance(MINUTE);
    let first: Vec<String> = h.requests[0].message_ids.clone();
    each_delivered_once(&h, &first);
    assert_eq!(h.dropped(DropReason::StoreCorrupt), 15);
    let sent: usize = h.requests.iter().map(|r| r.events).sum();
    assert_eq!(sent, 10, "nothing of the lost store was sent");
}

/// With a backlog, a load reads two batches: the second is compressed while the first is
/// on the wire and goes out as soon as its answer comes, before the delivered batch's
/// delete (which waits until it has been handed out).
#[test]
fn the_next_request_goes_out_right_after_the_answer() {
    let mut d = Driver::new(MemoryStore::new(), Policy::default());
    d.engine.handle_conditions(offline(), d.now);
    d.track(2_000);
    d.advance(SECOND);
    d.log.clear();
    d.engine.handle_conditions(wifi_charging(), d.now);
    d.drive();
    for _ in 0..4 {
        d.advance(50);
        d.answer(ok());
    }
    let log = d.log.join(", ");
    // The first batch is what memory kept of the commit; then one load per two batches.
    assert_eq!(
        log,
        "send 500, answer, delete 500, load 1000, send 500, answer, send 500, delete 500, \
         answer, delete 500, load 500, send 500, answer, delete 500",
        "the prepared batches go right after the answer"
    );
    assert!(d.engine.is_settled(), "{log}");
    assert_eq!(d.store.snapshot().unwrap().events, 0, "all deleted: {log}");
}

/// A prepared body is exactly the batch JSON, stamped with the time it is sent, not the
/// time it was prepared.
#[test]
fn a_prepared_body_is_stamped_when_sent() {
    let mut d = Driver::new(MemoryStore::new(), Policy::default());
    d.engine.handle_conditions(offline(), d.now);
    d.track(1_700);
    d.advance(SECOND);
    d.engine.handle_conditions(wifi_charging(), d.now);
    d.drive();
    d.advance(50);
    d.log.clear();
    d.answer(ok());
    assert_eq!(d.log, ["answer", "delete 500", "load 1000", "send 500"]);
    let prepared_at = d.now;
    d.advance(8 * SECOND);
    d.answer(ok());
    assert_eq!(d.wire.len(), 1, "the prepared batch went out");
    assert_eq!(d.log[4..6], ["answer", "send 500"]);
    let sent_at = d.now;
    assert!(sent_at > prepared_at);
    let body = plain_body(&d.wire[0]);
    let stored = d.store.load(usize::MAX, usize::MAX).unwrap();
    assert_eq!(stored.len(), 700);
    assert_eq!(body, wire::batch_json(&stored[..500], sent_at));
    assert_eq!(d.wire[0].raw_bytes, body.len());
}

/// A client dropped without `shutdown` sends nothing more: deletes held for a prepared
/// batch are still made when it commits for the last time.
#[test]
fn held_deletes_run_at_the_last_commit_without_sending() {
    let mut d = Driver::new(MemoryStore::new(), Policy::default());
    d.engine.handle_conditions(offline(), d.now);
    d.track(1_700);
    d.advance(SECOND);
    d.engine.handle_conditions(wifi_charging(), d.now);
    d.drive();
    d.advance(50);
    d.answer(ok());
    d.advance(50);
    d.sending = false;
    d.answer(ok());
    assert_eq!(
        d.store.snapshot().unwrap().events,
        1_200,
        "held while the next waits to be sent"
    );
    d.engine.handle_commit_now(d.now);
    d.drive();
    assert_eq!(d.store.snapshot().unwrap().events, 700);
}

/// A failed request throws the prepared batch away: the failed batch is retried first, and
/// then the rest, each event delivered once and in order.
#[test]
fn a_failure_discards_the_prepared_batch() {
    let policy = Policy {
        max_batch_events: 10,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    let ids = track_n(&mut h, 35);
    h.advance(SECOND);
    h.set_latency(100);
    h.script([ok(), status(503), ok(), status(413), ok(), ok()]);
    h.set_conditions(wifi_charging());
    h.advance(10 * MINUTE);
    each_delivered_once(&h, &ids);
    let delivered: Vec<String> = h
        .requests
        .iter()
        .filter(|r| r.accepted())
        .flat_map(|r| r.message_ids.clone())
        .collect();
    assert_eq!(delivered, ids, "in order");
}

// ----- the schedule on an unconstrained link -----

/// On mains power, a burst of calls goes out as full batches (each as soon as it is
/// queued), the rest after the gathering delay: not a request every `flush_at` events.
#[test]
fn a_burst_on_mains_goes_as_full_batches() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(50);
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.extend(track_n(&mut h, 12));
        h.advance(1);
    }
    h.advance(MINUTE);
    each_delivered_once(&h, &ids);
    let sizes: Vec<usize> = h.requests.iter().map(|r| r.events).collect();
    assert!(sizes.len() <= 4, "{sizes:?}");
    assert_eq!(sizes[..2], [500, 500], "{sizes:?}");
    let gather = h.engine().policy().prompt_gather.as_millis() as i64;
    let last = h.requests.last().unwrap();
    assert!(last.at_ms <= T0 + 100 + gather, "{}", last.at_ms - T0);
}

/// Fewer events than a batch, tracked at once on mains power, go in one request after the
/// gathering delay.
#[test]
fn a_small_burst_on_mains_is_one_request() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(50);
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.extend(track_n(&mut h, 10));
        h.advance(3);
    }
    h.advance(MINUTE);
    each_delivered_once(&h, &ids);
    assert_eq!(h.requests.len(), 1);
    let gather = h.engine().policy().prompt_gather.as_millis() as i64;
    assert_eq!(h.requests[0].at_ms, T0 + gather);
}

/// Steady tracking on mains power is not a request per round trip: a flush ends once the
/// events it was for are sent, and later ones are gathered again.
#[test]
fn steady_tracking_on_mains_is_not_chatty() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(50);
    let mut ids = Vec::new();
    for _ in 0..60_000 / 5 {
        ids.push(h.track("e"));
        h.advance(5);
    }
    h.advance(MINUTE);
    each_delivered_once(&h, &ids);
    let per_1000 = h.requests.len() as f64 * 1000.0 / ids.len() as f64;
    assert!(
        per_1000 <= 5.0,
        "{} requests for {} events",
        h.requests.len(),
        ids.len()
    );
    let gather = h.engine().policy().prompt_gather.as_millis() as i64;
    for id in &ids {
        let tracked = h
            .tracked
            .iter()
            .find(|t| &t.message_id == id)
            .unwrap()
            .at_ms;
        let waited = h.delivered_at(id).unwrap() - tracked;
        assert!(
            waited <= 2 * gather + 500,
            "{id} waited {waited} ms for delivery"
        );
    }
}

/// An explicit flush while tracking goes on ends once the events accepted before it are
/// delivered.
#[test]
fn a_flush_on_mains_ends_at_its_target() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(50);
    let before = track_n(&mut h, 5);
    h.flush();
    assert!(h.engine().is_flushing());
    for _ in 0..4 {
        h.advance(20);
        h.track("during");
    }
    h.advance(100);
    assert!(before.iter().all(|id| h.delivery_count(id) == 1));
    assert!(!h.engine().is_flushing(), "the flush is over");
    assert_eq!(h.requests.len(), 1, "later events wait for the schedule");
}

// ----- stats -----

/// `stats_version()` changes whenever `stats()` does, through commits, uploads, failures,
/// drops, opt-outs and restarts of uploads.
#[test]
fn stats_version_changes_with_the_stats() {
    let mut h = Harness::with_store(FlakyStore::default(), Policy::default(), 7, T0);
    h.set_latency(100);
    h.script([status(503), ok(), status(401)]);
    let mut last = (h.stats(), h.engine().stats_version());
    let mut check = |h: &Harness<FlakyStore>| {
        let now = (h.stats(), h.engine().stats_version());
        if now.0 != last.0 {
            assert_ne!(now.1, last.1, "stats changed to {:?}", now.0);
        }
        last = now;
    };
    for round in 0..40 {
        h.track("e");
        check(&h);
        match round % 8 {
            0 => h.set_conditions(offline()),
            1 => h.set_conditions(wifi_charging()),
            2 => h.store_mut().fail("insert", FailureKind::Busy, 1),
            3 => h.flush(),
            4 => h.opt_out(round % 16 == 4),
            5 => h.store_mut().fail("insert", FailureKind::Full, 1),
            6 => h.set_conditions(cellular(0.5)),
            _ => h.advance(3 * SECOND),
        }
        check(&h);
        h.advance(700);
        check(&h);
    }
    // A runtime giving up on a failing store at shutdown.
    h.opt_out(false);
    check(&h);
    h.store_mut().fail("insert", FailureKind::Busy, 100);
    h.track("never saved");
    check(&h);
    let now = h.now();
    h.engine_mut().handle_give_up(now);
    check(&h);
}
