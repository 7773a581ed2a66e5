//! Browser tests, run in headless Chromium by `wasm-bindgen-test-runner`
//! (scripts/test-wasm.sh): the IndexedDB queue against the core's conformance suite, and
//! the client's persistence, offline handling and retries with faults injected through a
//! scripted `fetch` and the browser's own `offline`/`online` events.
#![cfg(target_arch = "wasm32")]

use std::future::Future;

use trailhound_core::plan::{PatternEngine, Plan};
use trailhound_core::store::conformance::{self, Backend};
use trailhound_core::store::{StoreOp, StoreOutcome};
use trailhound_core::{Identity, PersistedState, StoreFailure, StoreResult, StoreSnapshot};
use trailhound_wasm::idb::{IdbStore, Privacy};
use trailhound_wasm::journal;
use trailhound_wasm::plan::JsEngine;
use trailhound_wasm::Trailhound;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
// A scripted server behind window.fetch: answers with the queued statuses (then 200),
// records each request's decoded batch, and fails like a dropped connection while the
// page is "offline". The status "opaqueredirect" answers as a browser does for a redirect
// under `redirect: "manual"`; `hang` requests never get an answer (and ignore their
// signal, like a fetch wrapper that drops it), and `aborts` records why a signal fired.
// Requests to a host in `blocked` fail at once as a blocker fails them (counted in
// `blockedHits`); HEAD requests (the block check) are answered 200 unless the page is
// "offline" or `checkFails`, and recorded in `checks`.
export function installFakeServer() {
  const server = { requests: [], statuses: [], retryAfter: [], offline: false };
  globalThis.__thServer = server;
  server.started = 0;
  server.refuse = false;
  server.beacons = [];
  server.hang = 0;
  server.aborts = [];
  server.blocked = [];
  server.blockedHits = [];
  server.checks = [];
  server.checkFails = false;
  navigator.sendBeacon = (url, blob) => { server.beacons.push(blob.text().then((t) => ({ url, body: JSON.parse(t) }))); return true; };
  globalThis.fetch = (url, init) => {
    // Counted before anything asynchronous: a request started in an event handler counts.
    server.started++;
    return respond(url, init);
  };
  const respond = async (url, init) => {
    if (init.method === "HEAD") {
      server.checks.push(url);
      if (server.offline || server.checkFails) throw new TypeError("Failed to fetch");
      return new Response(null, { status: 200 });
    }
    if (server.blocked.includes(new URL(url).host)) {
      server.blockedHits.push(url);
      throw new TypeError("Failed to fetch");
    }
    if (server.offline) throw new TypeError("Failed to fetch");
    if (server.refuse) throw new TypeError("keepalive budget exceeded");
    const encoding = init.headers["Content-Encoding"] || null;
    let stream = new Blob([init.body]).stream();
    if (encoding === "gzip") stream = stream.pipeThrough(new DecompressionStream("gzip"));
    const body = JSON.parse(await new Response(stream).text());
    server.requests.push({ url, at: Date.now(), auth: init.headers["Authorization"], encoding, keepalive: init.keepalive, redirect: init.redirect, ids: body.batch.map((e) => e.messageId), body });
    if (init.signal) init.signal.addEventListener("abort", () => server.aborts.push(String(init.signal.reason && init.signal.reason.message)));
    if (server.hang > 0) { server.hang--; return new Promise(() => {}); }
    if (server.gate) await server.gate;
    const status = server.statuses.length ? server.statuses.shift() : 200;
    if (status === "opaqueredirect") return { type: "opaqueredirect", status: 0, headers: new Headers() };
    const ra = server.retryAfter.length ? server.retryAfter.shift() : null;
    return new Response("{}", { status, headers: ra ? { "Retry-After": ra } : {} });
  };
  return server;
}
// What navigator.onLine says, and the event the browser fires when it changes.
export function setOnline(online) {
  globalThis.__thServer.offline = !online;
  Object.defineProperty(navigator, "onLine", { configurable: true, get: () => online });
  window.dispatchEvent(new Event(online ? "online" : "offline"));
}
export function pageHide() { window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: false })); }
// Back from the back/forward cache.
export function pageShow() { window.dispatchEvent(new PageTransitionEvent("pageshow", { persisted: true })); }
export async function beacons() { return Promise.all(globalThis.__thServer.beacons); }
export function uniqueName(prefix) { return prefix + "-" + Math.random().toString(36).slice(2); }
export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
export function opts(db, policy) {
  return { writeKey: "test-key", endpoint: "http://127.0.0.1:1", dbName: db, policy: Object.assign({ commitIntervalMs: 10, flushAt: 1, promptDelayMs: 20 }, policy || {}) };
}
// Holds the answers until openGate(): a request under way, its answer not yet back.
export function closeGate() { const s = globalThis.__thServer; s.gate = new Promise((r) => { s.openGate = r; }); }
export function openGate() { const s = globalThis.__thServer; s.gate = null; s.openGate(); }
// A readwrite transaction on database `name` kept alive until release() is called: every
// other readwrite transaction on it (the queue's deletes) waits behind it.
export function holdDb(name) {
  return new Promise((resolve) => {
    const r = indexedDB.open(name);
    r.onsuccess = () => {
      const db = r.result;
      const meta = db.transaction(["events", "meta"], "readwrite").objectStore("meta");
      let held = true;
      const spin = () => { if (held) meta.get("nextSeq").onsuccess = spin; };
      spin();
      resolve(() => { held = false; db.close(); });
    };
  });
}
// Counts queueMicrotask calls (the tasks the client starts) until unwrapped.
export function countMicrotasks() {
  const original = globalThis.queueMicrotask;
  const counter = { n: 0, stop: () => { globalThis.queueMicrotask = original; } };
  globalThis.queueMicrotask = (f) => { counter.n++; original(f); };
  return counter;
}
export function kept(key) { return localStorage.getItem(key); }
export function setKept(key, value) { localStorage.setItem(key, value); }
export function deleteDb(name) {
  return new Promise((res) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = () => res(); });
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = installFakeServer)]
    fn install_fake_server() -> JsValue;
    #[wasm_bindgen(js_name = setOnline)]
    fn set_online(online: bool);
    #[wasm_bindgen(js_name = pageShow)]
    fn page_show();
    #[wasm_bindgen(js_name = pageHide)]
    fn page_hide();
    fn beacons() -> js_sys::Promise;
    #[wasm_bindgen(js_name = uniqueName)]
    fn unique_name(prefix: &str) -> String;
    fn sleep(ms: f64) -> js_sys::Promise;
    fn opts(db: &str, policy: JsValue) -> JsValue;
    #[wasm_bindgen(js_name = deleteDb)]
    fn delete_db(name: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = closeGate)]
    fn close_gate();
    #[wasm_bindgen(js_name = openGate)]
    fn open_gate();
    #[wasm_bindgen(js_name = holdDb)]
    fn hold_db(name: &str) -> js_sys::Promise;
    fn kept(key: &str) -> Option<String>;
    #[wasm_bindgen(js_name = countMicrotasks)]
    fn count_microtasks() -> JsValue;
    #[wasm_bindgen(js_name = setKept)]
    fn set_kept(key: &str, value: &str);
}

fn get(v: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(v, &k.into()).unwrap()
}

fn num(v: &JsValue, k: &str) -> f64 {
    get(v, k).as_f64().unwrap_or(-1.0)
}

async fn wait_ms(ms: f64) {
    JsFuture::from(sleep(ms)).await.unwrap();
}

/// Waits until `cond` holds, failing after `ms`.
async fn until(what: &str, ms: f64, mut cond: impl FnMut() -> bool) {
    let start = js_sys::Date::now();
    while !cond() {
        assert!(
            js_sys::Date::now() - start < ms,
            "timed out waiting for {what}"
        );
        wait_ms(10.0).await;
    }
}

async fn load(db: &str, policy: JsValue) -> Trailhound {
    let th = Trailhound::load(opts(db, policy))
        .await
        .map_err(JsValue::from)
        .expect("load");
    until("the uploader lock", 2_000.0, || {
        get(&th.stats(), "leader").as_bool() == Some(true)
    })
    .await;
    th
}

fn requests(server: &JsValue) -> Vec<JsValue> {
    js_sys::Array::from(&get(server, "requests"))
        .iter()
        .collect()
}

fn ids(server: &JsValue) -> Vec<String> {
    requests(server)
        .iter()
        .flat_map(|r| {
            js_sys::Array::from(&get(r, "ids"))
                .iter()
                .map(|v| v.as_string().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

struct Conform(IdbStore);

impl Backend for Conform {
    async fn execute(&mut self, op: StoreOp) -> StoreResult {
        self.0.execute(&op).await
    }
    fn snapshot(&mut self) -> impl Future<Output = Result<StoreSnapshot, StoreFailure>> {
        self.0.snapshot()
    }
}

/// The IndexedDB queue passes the conformance suite every backend passes.
#[wasm_bindgen_test]
async fn idb_store_conforms() {
    conformance::run_async(|| async {
        let name = unique_name("conformance");
        JsFuture::from(delete_db(&name)).await.unwrap();
        let mut s = IdbStore::open(&name).await.expect("open");
        // The suite checks that given seqs are kept; the SDK lets the database choose.
        s.allocate_seqs = false;
        Conform(s)
    })
    .await;
}

/// Two connections (two tabs) inserting events with the same engine seqs keep them all:
/// seqs are allocated in the inserting transaction.
#[wasm_bindgen_test]
async fn two_writers_never_collide() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let name = unique_name("two-tabs");
    let a = IdbStore::open(&name).await.unwrap();
    let b = IdbStore::open(&name).await.unwrap();
    let evs: Vec<_> = (1..=3)
        .map(|i| conformance::event(i, i as i64, 50))
        .collect();
    let done: Rc<RefCell<Option<StoreResult>>> = Rc::default();
    let slot = done.clone();
    let op = StoreOp::Insert(evs.clone());
    // Both transactions start before either finishes.
    wasm_bindgen_futures::spawn_local(async move {
        *slot.borrow_mut() = Some(b.execute(&op).await);
        b.close();
    });
    a.execute(&StoreOp::Insert(evs)).await.unwrap();
    until("the second writer", 5_000.0, || done.borrow().is_some()).await;
    done.borrow_mut().take().unwrap().unwrap();
    let snap = a.snapshot().await.unwrap();
    assert_eq!((snap.events, snap.bytes, snap.max_seq), (6, 300, 6));
    a.destroy().await.unwrap();
}

/// Queued events, the anonymous id and the user id survive closing the client and loading
/// a new one on the same database (a reload), and are then delivered once.
#[wasm_bindgen_test]
async fn persists_across_a_new_client() {
    let server = install_fake_server();
    set_online(false);
    let db = unique_name("persist");
    let th = load(&db, JsValue::UNDEFINED).await;
    th.identify("user-7".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..3 {
        let props = js_sys::JSON::parse(&format!("{{\"n\":{i}}}")).unwrap();
        sent.push(
            th.track("Song Played".into(), props)
                .map_err(JsValue::from)
                .unwrap(),
        );
    }
    let anon = th.anonymous_id();
    th.close().await.map_err(JsValue::from).unwrap();
    assert!(requests(&server).is_empty(), "offline: nothing sent");

    let th = load(&db, JsValue::UNDEFINED).await;
    assert_eq!(th.anonymous_id(), anon);
    assert_eq!(th.user_id().as_deref(), Some("user-7"));
    let stats = th.stats();
    assert_eq!(num(&stats, "queued_events"), 4.0, "identify + 3 tracks");
    assert_eq!(
        get(&stats, "storage").as_string().as_deref(),
        Some("indexeddb")
    );
    let ndjson = th.export_queue().await.map_err(JsValue::from).unwrap();
    let lines: Vec<_> = ndjson.lines().collect();
    assert_eq!(lines.len(), 4);
    for (line, id) in lines[1..].iter().zip(&sent) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["messageId"], id.as_str());
        assert_eq!(v["userId"], "user-7");
        // The native SDK's import reads exactly these lines.
        trailhound_core::QueuedEvent::from_json(line, &trailhound_core::Policy::default()).unwrap();
    }
    set_online(true);
    until("delivery", 5_000.0, || num(&th.stats(), "delivered") == 4.0).await;
    let got = ids(&server);
    assert_eq!(got.len(), 4, "each event sent once: {got:?}");
    for id in &sent {
        assert!(got.contains(id));
    }
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// The journal's entries: ranges of seqs and the seq after them; damaged, foreign and
/// oversized entries are refused rather than applied.
#[wasm_bindgen_test]
fn journal_entries_round_trip_and_refuse_damage() {
    let seqs = vec![1, 2, 3, 7, 9, 10];
    let text = journal::encode(&seqs);
    assert_eq!(text, "1 11 1-3,7,9-10");
    assert_eq!(journal::decode(&text), Some((seqs, 11)));
    assert_eq!(journal::decode("1 5 4"), Some((vec![4], 5)));
    for bad in [
        "",
        "1",
        "1 5",
        "2 5 1",
        "1 5 0",
        "1 5 4-2",
        "1 5 5",
        "1 5 1-3 x",
        "1 x 1",
        "1 5 1,,2",
        "1 5 -1",
        "1 0 ",
    ] {
        assert_eq!(journal::decode(bad), None, "{bad:?}");
    }
    let max = journal::MAX_OWED;
    assert!(journal::decode(&format!("1 {} 1-{max}", max + 1)).is_some());
    assert_eq!(
        journal::decode(&format!("1 {} 1-{}", max + 2, max + 1)),
        None,
        "more than MAX_OWED seqs"
    );
    assert_eq!(
        journal::decode("1 18446744073709551615 1-18446744073709551614"),
        None
    );
}

/// Three events queued by a page that is gone; `created` now.
async fn queue_left_by_a_page(db: &str) {
    let store = IdbStore::open(db).await.unwrap();
    let now = js_sys::Date::now() as i64;
    let events = (1..=3).map(|n| conformance::event(n, now, 200)).collect();
    store.execute(&StoreOp::Insert(events)).await.unwrap();
    store.close();
}

fn owed_key(db: &str) -> String {
    format!("trailhound:{db}:owed")
}

/// A page gone before IndexedDB deleted what the collector acknowledged (its journal
/// names events 1 and 2): the next page deletes them before reading the queue, and sends
/// only event 3.
#[wasm_bindgen_test]
async fn deletes_owed_by_a_page_gone_are_done_by_the_next() {
    let server = install_fake_server();
    set_online(false);
    let db = unique_name("owed");
    queue_left_by_a_page(&db).await;
    // What the page kept as it got the answer for events 1 and 2.
    journal::Journal::new(&db, Vec::new()).keep(vec![1, 2]);
    assert_eq!(kept(&owed_key(&db)).as_deref(), Some("1 3 1-2"));
    let th = load(&db, JsValue::UNDEFINED).await;
    until("the owed delete", 5_000.0, || {
        kept(&owed_key(&db)).is_none()
    })
    .await;
    assert_eq!(num(&th.stats(), "queued_events"), 1.0);
    set_online(true);
    until("delivery", 5_000.0, || num(&th.stats(), "delivered") == 1.0).await;
    assert_eq!(
        ids(&server),
        vec!["m3".to_owned()],
        "the acknowledged ones not again"
    );
    until("the delete", 5_000.0, || kept(&owed_key(&db)).is_none()).await;
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// An entry for a database created since (its counter has not reached the entry's seqs:
/// IndexedDB evicted, `localStorage` kept) or a damaged one is dropped, and deletes
/// nothing.
#[wasm_bindgen_test]
async fn a_journal_for_another_database_deletes_nothing() {
    for entry in ["1 9 1-2", "1 3 1-2,x"] {
        let server = install_fake_server();
        set_online(false);
        let db = unique_name("owed-other");
        queue_left_by_a_page(&db).await;
        set_kept(&owed_key(&db), entry);
        let th = load(&db, JsValue::UNDEFINED).await;
        assert_eq!(kept(&owed_key(&db)), None, "{entry}: dropped");
        assert_eq!(num(&th.stats(), "queued_events"), 3.0, "{entry}");
        set_online(true);
        until("delivery", 5_000.0, || num(&th.stats(), "delivered") == 3.0).await;
        let mut got = ids(&server);
        got.sort();
        assert_eq!(got, ["m1", "m2", "m3"], "{entry}");
        th.close().await.map_err(JsValue::from).unwrap();
        JsFuture::from(delete_db(&db)).await.unwrap();
    }
}

/// From the collector's answer until IndexedDB has deleted the events (held up here by
/// another transaction), the journal names them; once deleted, it is empty.
#[wasm_bindgen_test]
async fn acknowledged_events_are_kept_owed_until_deleted() {
    let server = install_fake_server();
    set_online(true);
    let db = unique_name("owed-live");
    let th = load(&db, JsValue::UNDEFINED).await;
    close_gate();
    for i in 0..2 {
        let props = js_sys::JSON::parse(&format!("{{\"n\":{i}}}")).unwrap();
        th.track("Song Played".into(), props)
            .map_err(JsValue::from)
            .unwrap();
    }
    until("the request", 5_000.0, || requests(&server).len() == 1).await;
    assert_eq!(kept(&owed_key(&db)), None, "not acknowledged yet");
    let release: js_sys::Function = JsFuture::from(hold_db(&db)).await.unwrap().into();
    open_gate();
    until("the answer", 5_000.0, || {
        num(&th.stats(), "delivered") == 2.0
    })
    .await;
    let entry = kept(&owed_key(&db)).expect("owed while the delete waits");
    let (seqs, _) = journal::decode(&entry).unwrap();
    assert_eq!(seqs.len(), 2, "{entry}");
    wait_ms(50.0).await;
    assert!(
        kept(&owed_key(&db)).is_some(),
        "the delete is still held up"
    );
    release.call0(&JsValue::NULL).unwrap();
    until("the delete", 5_000.0, || kept(&owed_key(&db)).is_none()).await;
    assert_eq!(num(&th.stats(), "queued_events"), 0.0);
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// The context's time zone comes from `Temporal.Now.timeZoneId()` where the browser has
/// it, and from `Intl.DateTimeFormat` where it has not, it throws or it answers what is no
/// zone's name (not a string, or longer than 64 characters): on a first visit
/// `Intl.DateTimeFormat` loads locale data, 15-39 ms of `load()` (wasm/bench marks),
/// where `Temporal` answers in under 0.1 ms.
#[wasm_bindgen_test]
async fn the_context_names_the_time_zone() {
    let g = js_sys::global();
    let native = get(&g, "Temporal");
    let intl = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    let intl = get(&intl, "timeZone").as_string().unwrap();
    let temporal = |body: &str| {
        let now = js_sys::Object::new();
        set(&now, "timeZoneId", js_sys::Function::new_no_args(body));
        let t = js_sys::Object::new();
        set(&t, "Now", now);
        JsValue::from(t)
    };
    let cases = [
        (temporal("return 'Test/Zone'"), "Test/Zone"),
        (
            temporal("throw new Error('no time zone here')"),
            intl.as_str(),
        ),
        (temporal("return 'x'.repeat(100000)"), intl.as_str()),
        (temporal("return 42"), intl.as_str()),
        (JsValue::UNDEFINED, intl.as_str()),
    ];
    for (with, want) in cases {
        js_sys::Reflect::set(&g, &"Temporal".into(), &with).unwrap();
        let o = opts("tz", JsValue::UNDEFINED);
        set(&o, "storage", "memory");
        let th = load_with(o).await;
        js_sys::Reflect::set(&g, &"Temporal".into(), &native).unwrap();
        let th = th.unwrap();
        let id = th
            .track("Song Played".into(), JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap();
        let queued = exported(&th).await;
        assert_eq!(queued[&id]["context"]["timezone"], want);
        th.close().await.map_err(JsValue::from).unwrap();
    }
}

/// `trackWithId` (what `index.js`'s `track` calls with a UUID it makes) sends the
/// event with that messageId and says whether it was queued; an empty id is refused.
#[wasm_bindgen_test]
async fn track_with_id_sends_that_id() {
    let server = install_fake_server();
    set_online(true);
    let db = unique_name("with-id");
    let th = load(&db, JsValue::UNDEFINED).await;
    let props = || js_sys::JSON::parse(r#"{"n":1}"#).unwrap();
    let id = "0b7e3a52-93c5-4c1e-9d1b-6f0e8f3c2a11";
    assert!(th
        .track_with_id(id.into(), "Song Played".into(), props())
        .map_err(JsValue::from)
        .unwrap());
    assert!(th
        .track_with_id(String::new(), "Song Played".into(), props())
        .is_err());
    until("delivery", 5_000.0, || num(&th.stats(), "delivered") == 1.0).await;
    assert_eq!(ids(&server), vec![id.to_owned()]);
    th.opt_out().map_err(JsValue::from).unwrap();
    assert!(!th
        .track_with_id(
            "1e5a7f00-93c5-4c1e-9d1b-6f0e8f3c2a12".into(),
            "x".into(),
            props()
        )
        .map_err(JsValue::from)
        .unwrap());
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Events within a commit interval start no task of their own: the commit timer already
/// set commits them, together. The first after a quiet spell does start one (it sets the
/// timer), and so does an `identify` (its identity is saved at once).
#[wasm_bindgen_test]
async fn events_within_a_commit_interval_start_no_task() {
    install_fake_server();
    set_online(false);
    let db = unique_name("timed");
    let policy = js_sys::JSON::parse(r#"{"commitIntervalMs":400}"#).unwrap();
    let th = load(&db, policy).await;
    let track = |n: u32| {
        let props = js_sys::JSON::parse(&format!("{{\"n\":{n}}}")).unwrap();
        th.track("Song Played".into(), props)
            .map_err(JsValue::from)
            .unwrap();
    };
    wait_ms(50.0).await;
    let counter = count_microtasks();
    track(0);
    let first = num(&counter, "n");
    assert!(first >= 1.0, "the first event sets the timer: {first}");
    wait_ms(20.0).await;
    let before = num(&counter, "n");
    for n in 1..6 {
        track(n);
    }
    assert_eq!(
        num(&counter, "n"),
        before,
        "no task for events the timer commits"
    );
    th.identify("user-1".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    assert!(num(&counter, "n") > before, "an identify is saved now");
    js_sys::Reflect::get(&counter, &"stop".into())
        .unwrap()
        .unchecked_into::<js_sys::Function>()
        .call0(&counter)
        .unwrap();
    let stats = th.stats();
    assert!(
        num(&stats, "uncommitted_events") > 0.0,
        "the commit waits for its timer"
    );
    until("the commit", 2_000.0, || {
        num(&th.stats(), "uncommitted_events") == 0.0
    })
    .await;
    assert_eq!(num(&th.stats(), "queued_events"), 7.0);
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Offline, nothing is sent and events wait; the browser's `online` event sends them at
/// once, even during a backoff.
#[wasm_bindgen_test]
async fn offline_then_online() {
    let server = install_fake_server();
    set_online(true);
    let db = unique_name("offline");
    let policy =
        js_sys::JSON::parse(r#"{"backoffBaseMs": 600000, "backoffMaxMs": 600000}"#).unwrap();
    let th = load(&db, policy).await;
    // The link drops without the browser noticing: one failure, then a long backoff.
    js_sys::Reflect::set(&server, &"offline".into(), &true.into()).unwrap();
    th.track("Before".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    until("the failed attempt", 3_000.0, || {
        num(&th.stats(), "retries") == 1.0
    })
    .await;
    set_online(false);
    assert_eq!(
        get(&th.stats(), "network").as_string().as_deref(),
        Some("offline")
    );
    th.track("While offline".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let _ = th.flush(Some(300.0)).await;
    assert!(requests(&server).is_empty(), "offline: no request");
    assert_eq!(num(&th.stats(), "queued_events"), 2.0);
    set_online(true);
    until("delivery after online", 3_000.0, || {
        num(&th.stats(), "delivered") == 2.0
    })
    .await;
    assert_eq!(ids(&server).len(), 2);
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// A page hide sends only what is not committed yet: what IndexedDB holds is sent by the
/// next page of the site (a reload, a link), once. Before, a reload sent such events twice:
/// in the old page's keepalive request, which no page is left to hear the answer of, and
/// again from the queue by the new page.
#[wasm_bindgen_test]
async fn page_hide_leaves_committed_events_to_the_next_page() {
    let server = install_fake_server();
    set_online(true);
    let db = unique_name("handoff");
    // Committed at once; nothing uploaded for ten minutes on its own.
    let policy = || {
        js_sys::JSON::parse(r#"{"commitIntervalMs": 1, "flushAt": 1000, "promptDelayMs": 600000}"#)
            .unwrap()
    };
    let th = load(&db, policy()).await;
    let committed = th
        .track("Committed".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    until("the commit", 3_000.0, || {
        let s = th.stats();
        num(&s, "queued_events") == 1.0 && num(&s, "uncommitted_events") == 0.0
    })
    .await;
    page_hide();
    assert_eq!(num(&server, "started"), 0.0, "nothing sent on page hide");
    th.close().await.map_err(JsValue::from).unwrap();

    // The next page sends it.
    let th = load(&db, policy()).await;
    let _ = th.flush(Some(3_000.0)).await;
    until("the delivery", 3_000.0, || {
        num(&th.stats(), "delivered") == 1.0
    })
    .await;
    assert_eq!(ids(&server), vec![committed], "sent once");
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Properties reach the engine as JSON exactly when `JSON.stringify` would keep them as
/// they are: what it would silently change (a nested NaN, a function, a symbol) or cannot
/// write (a BigInt deep inside, a cycle) is refused with its name, while `toJSON` values
/// (a Date) and `undefined` members are written as `JSON.stringify` writes them. Checks
/// the fast path (a walk, then `JSON.stringify` without a replacer) against the slow one.
#[wasm_bindgen_test]
async fn properties_are_json_or_refused() {
    install_fake_server();
    set_online(false);
    let db = unique_name("json");
    let th = load(&db, JsValue::UNDEFINED).await;
    for (props, says) in [
        ("({ a: { b: [1, 2n] } })", "is a BigInt"),
        ("({ a: [{ x: NaN }] })", "not a finite number"),
        ("({ a: { f() {} } })", "is a function"),
        ("({ a: [Symbol('s')] })", "is a symbol"),
        (
            "(() => { const a = { l: [] }; a.l.push(a); return a; })()",
            "",
        ),
    ] {
        let v = js_sys::eval(props).unwrap();
        let e = JsValue::from(th.track("Bad".into(), v).unwrap_err());
        let msg = get(&e, "message").as_string().unwrap();
        assert!(msg.contains(says), "{props}: {msg}");
    }
    let good = js_sys::eval(
        "({ when: new Date(0), gone: undefined, list: [1, 'two', null, true], deep: { a: { b: { c: 1.5 } } } })",
    )
    .unwrap();
    th.track("Good".into(), good)
        .map_err(JsValue::from)
        .unwrap();
    let out = th.export_queue().await.map_err(JsValue::from).unwrap();
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        line["properties"],
        serde_json::json!({"when": "1970-01-01T00:00:00.000Z", "list": [1, "two", null, true], "deep": {"a": {"b": {"c": 1.5}}}})
    );
    assert_eq!(num(&th.stats(), "invalidCalls"), 5.0);
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Where the browser has no `CompressionStream` (older Safari and Firefox), batches go
/// plain, without a `Content-Encoding`, and are delivered like compressed ones.
#[wasm_bindgen_test]
async fn uploads_plain_without_compression_stream() {
    let server = install_fake_server();
    set_online(true);
    let global = js_sys::global();
    let saved = get(&global, "CompressionStream");
    assert!(saved.is_function(), "this browser has CompressionStream");
    js_sys::Reflect::delete_property(&global, &"CompressionStream".into()).unwrap();
    let db = unique_name("plain");
    let th = load(&db, JsValue::UNDEFINED).await;
    let id = th
        .track("Plain".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    until("the delivery", 3_000.0, || {
        num(&th.stats(), "delivered") == 1.0
    })
    .await;
    js_sys::Reflect::set(&global, &"CompressionStream".into(), &saved).unwrap();
    assert_eq!(ids(&server), vec![id]);
    assert!(get(&requests(&server)[0], "encoding").is_null());
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// A 503 is retried after a backoff, a 429's Retry-After is honoured, and the same events
/// (same messageIds) go out again until accepted; listeners hear each step, the endpoint's
/// breaker opening and closing included.
#[wasm_bindgen_test]
async fn retries_503_and_retry_after() {
    let server = install_fake_server();
    set_online(true);
    let statuses = js_sys::Array::of2(&503.into(), &429.into());
    js_sys::Reflect::set(&server, &"statuses".into(), &statuses).unwrap();
    let ra = js_sys::Array::of2(&JsValue::NULL, &"1".into());
    js_sys::Reflect::set(&server, &"retryAfter".into(), &ra).unwrap();
    let db = unique_name("retry");
    let policy = js_sys::JSON::parse(r#"{"backoffBaseMs": 50, "backoffMaxMs": 5000}"#).unwrap();
    let th = load(&db, policy).await;
    let heard = js_sys::Array::new();
    let h = heard.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |n: JsValue| {
        h.push(&get(&n, "kind"));
    });
    th.on(
        "*".into(),
        listener
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    )
    .map_err(JsValue::from)
    .unwrap();
    listener.forget();
    let id = th
        .track("Retry Me".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    // Listeners hear of a delivery once its events are deleted from the queue.
    until("the listener to hear of the delivery", 5_000.0, || {
        heard.length() == 5
    })
    .await;
    let reqs = requests(&server);
    assert_eq!(reqs.len(), 3, "503, 429, 200");
    assert_eq!(ids(&server), vec![id.clone(), id.clone(), id]);
    let gap = num(&reqs[2], "at") - num(&reqs[1], "at");
    assert!(gap >= 900.0, "Retry-After: 1 honoured (waited {gap} ms)");
    assert_eq!(
        get(&reqs[0], "auth").as_string().as_deref(),
        Some("Basic dGVzdC1rZXk6")
    );
    assert_eq!(get(&reqs[0], "keepalive").as_bool(), Some(true));
    // The engine ships no gzip encoder: the browser's CompressionStream compresses.
    for r in &reqs {
        assert_eq!(get(r, "encoding").as_string().as_deref(), Some("gzip"));
    }
    let kinds: Vec<String> = heard.iter().map(|k| k.as_string().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "endpoint_opened",
            "upload_failed",
            "upload_failed",
            "endpoint_closed",
            "delivered"
        ]
    );
    assert_eq!(num(&th.stats(), "retries"), 2.0);
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Bad input throws a clear error and queues nothing; a plugin can change or drop events.
#[wasm_bindgen_test]
async fn bad_input_and_plugins() {
    // Offline, so that the queue keeps what was accepted for the export below.
    install_fake_server();
    set_online(false);
    let db = unique_name("input");
    let th = load(&db, JsValue::UNDEFINED).await;
    let bad = js_sys::eval("({ n: 10n })").unwrap();
    let e = JsValue::from(th.track("X".into(), bad).unwrap_err());
    let msg = get(&e, "message").as_string().unwrap();
    assert!(msg.contains("properties.n is a BigInt"), "{msg}");
    let cyc = js_sys::eval("(() => { const a = {}; a.me = a; return a; })()").unwrap();
    assert!(th.track("X".into(), cyc).is_err());
    let big = js_sys::eval("({ s: 'x'.repeat(40000) })").unwrap();
    let e = JsValue::from(th.track("X".into(), big).unwrap_err());
    assert!(get(&e, "message")
        .as_string()
        .unwrap()
        .contains("limit is 32768"));
    let plugin =
        js_sys::eval("(m) => m.event === 'Drop Me' ? null : (m.properties.scrubbed = true, m)")
            .unwrap();
    th.add_plugin(plugin.unchecked_into());
    assert_eq!(
        th.track("Drop Me".into(), JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap(),
        ""
    );
    th.track("Keep Me".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let out = th.export_queue().await.map_err(JsValue::from).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["properties"]["scrubbed"], true);
    let s = th.stats();
    assert_eq!(
        (num(&s, "invalidCalls"), num(&s, "pluginDropped")),
        (3.0, 1.0)
    );
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Two tabs on one queue: only the lock holder uploads, the other's events are sent by it,
/// each once; when the uploader closes, the other tab takes over.
#[wasm_bindgen_test]
async fn two_tabs_share_one_queue() {
    let server = install_fake_server();
    set_online(true);
    let db = unique_name("tabs");
    let policy = || js_sys::JSON::parse(r#"{"flushAt": 1000, "promptDelayMs": 600000}"#).unwrap();
    let a = load(&db, policy()).await;
    let b = Trailhound::load(opts(&db, policy()))
        .await
        .map_err(JsValue::from)
        .unwrap();
    wait_ms(100.0).await;
    assert_eq!(
        get(&b.stats(), "leader").as_bool(),
        Some(false),
        "one uploader"
    );
    let mut sent = Vec::new();
    for i in 0..3 {
        let tab = if i % 2 == 0 { &a } else { &b };
        sent.push(
            tab.track("From Tab".into(), JsValue::UNDEFINED)
                .map_err(JsValue::from)
                .unwrap(),
        );
    }
    sent.push(
        b.track("From B".into(), JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap(),
    );
    // The follower's flush sends nothing: it is not the uploader.
    let _ = b.flush(Some(300.0)).await;
    assert!(requests(&server).is_empty(), "the follower does not upload");
    until("the leader to see the follower's events", 3_000.0, || {
        num(&a.stats(), "queued_events") == 4.0
    })
    .await;
    let _ = a.flush(Some(3_000.0)).await;
    until("delivery by the leader", 3_000.0, || {
        ids(&server).len() == 4
    })
    .await;
    let mut got = ids(&server);
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "every event once");

    a.close().await.map_err(JsValue::from).unwrap();
    until("the follower to take over", 3_000.0, || {
        get(&b.stats(), "leader").as_bool() == Some(true)
    })
    .await;
    let last = b
        .track("After Handover".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let _ = b.flush(Some(3_000.0)).await;
    until("delivery by the new leader", 3_000.0, || {
        ids(&server).len() == 5
    })
    .await;
    assert_eq!(ids(&server)[4], last);
    b.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// On page hide, what the page tracked and has not seen delivered goes out at once, inside
/// the event handler (before any IndexedDB work could finish), as keepalive requests; when
/// fetch refuses, as a beacon carrying the write key in its body (once the endpoint has
/// answered with a 2xx).
#[wasm_bindgen_test]
async fn page_hide_sends_at_once() {
    let server = install_fake_server();
    set_online(true);
    let db = unique_name("hide");
    // Nothing would be committed or sent for a minute on its own.
    let policy = js_sys::JSON::parse(
        r#"{"commitIntervalMs": 60000, "flushAt": 1000, "promptDelayMs": 600000}"#,
    )
    .unwrap();
    let th = load(&db, policy).await;
    let id = th
        .track("Last Words".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let started = || num(&server, "started");
    assert_eq!(started(), 0.0);
    page_hide();
    assert_eq!(started(), 1.0, "sent within the pagehide handler");
    until("the request to arrive", 3_000.0, || {
        !ids(&server).is_empty()
    })
    .await;
    assert_eq!(ids(&server)[0], id);
    assert_eq!(
        get(&requests(&server)[0], "keepalive").as_bool(),
        Some(true)
    );
    // Plain: compressing is asynchronous, and the page may be gone before it is done.
    assert!(get(&requests(&server)[0], "encoding").is_null());

    // No upload of the engine's own starts while the page is hidden: its answer could come
    // after the page is gone, and the next page would send the event again.
    wait_ms(200.0).await;
    assert_eq!(started(), 1.0, "no upload while hidden");
    // Back from the back/forward cache: the engine's own upload of the event. The endpoint
    // has answered with a 2xx, so a beacon (which cannot refuse a redirect) may be the
    // fallback.
    page_show();
    until("the engine's delivery", 3_000.0, || {
        num(&th.stats(), "delivered") == 1.0
    })
    .await;

    // fetch refuses (the keepalive budget is spent): a beacon goes instead.
    js_sys::Reflect::set(&server, &"refuse".into(), &true.into()).unwrap();
    let id2 = th
        .track("Really Last".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    page_hide();
    until("the beacon", 3_000.0, || {
        js_sys::Array::from(&get(&server, "beacons")).length() > 0
    })
    .await;
    let sent = JsFuture::from(beacons()).await.unwrap();
    let beacon = js_sys::Array::from(&sent).get(0);
    let body = get(&beacon, "body");
    assert_eq!(
        get(&body, "writeKey").as_string().as_deref(),
        Some("test-key")
    );
    let batch = js_sys::Array::from(&get(&body, "batch"));
    let beacon_ids: Vec<String> = batch
        .iter()
        .map(|e| get(&e, "messageId").as_string().unwrap())
        .collect();
    assert!(beacon_ids.contains(&id2), "{beacon_ids:?}");
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Listens to every notification; returns them as they come.
fn listen_all(th: &Trailhound) -> js_sys::Array {
    let heard = js_sys::Array::new();
    let h = heard.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |n: JsValue| {
        h.push(&n);
    });
    th.on(
        "*".into(),
        listener
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    )
    .map_err(JsValue::from)
    .unwrap();
    listener.forget();
    heard
}

fn set(v: &JsValue, k: &str, x: impl Into<JsValue>) {
    js_sys::Reflect::set(v, &k.into(), &x.into()).unwrap();
}

/// Uploads never follow a redirect (`redirect: "manual"`); the redirect a browser hides
/// ("opaqueredirect") is neither a delivery nor a drop: the events stay queued and uploads
/// pause, and a page hide then sends no beacon (a beacon would follow it).
#[wasm_bindgen_test]
async fn redirects_are_not_followed() {
    let server = install_fake_server();
    set_online(true);
    set(
        &server,
        "statuses",
        js_sys::Array::of1(&"opaqueredirect".into()),
    );
    let db = unique_name("redirect");
    let th = load(&db, JsValue::UNDEFINED).await;
    let heard = listen_all(&th);
    let id = th
        .track("Redirected".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    until("the redirect to be heard", 5_000.0, || {
        heard
            .iter()
            .any(|n| get(&n, "kind").as_string().as_deref() == Some("paused"))
    })
    .await;
    let reqs = requests(&server);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        get(&reqs[0], "redirect").as_string().as_deref(),
        Some("manual")
    );
    let paused = heard
        .iter()
        .find(|n| get(n, "kind").as_string().as_deref() == Some("paused"))
        .unwrap();
    assert_eq!(num(&paused, "status"), 300.0);
    let s = th.stats();
    assert_eq!(num(&s, "delivered"), 0.0);
    assert_eq!(num(&s, "queued_events"), 1.0, "the event stays queued");
    let dropped = get(&s, "dropped");
    let total: f64 = js_sys::Object::values(dropped.unchecked_ref())
        .iter()
        .map(|v: JsValue| v.as_f64().unwrap())
        .sum();
    assert_eq!(total, 0.0, "nothing dropped");

    // fetch refused on page hide: no beacon to an endpoint that redirects. (An event
    // tracked just before, not committed yet: what is committed waits for the next page.)
    set(&server, "refuse", true);
    th.track("Just Before".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    page_hide();
    wait_ms(100.0).await;
    assert!(
        num(&server, "started") >= 2.0,
        "the keepalive fetch was tried"
    );
    assert_eq!(
        js_sys::Array::from(&get(&server, "beacons")).length(),
        0,
        "no beacon"
    );
    let out = th.export_queue().await.map_err(JsValue::from).unwrap();
    assert!(out.contains(&id), "still queued: {out}");
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// A fetch that never answers is abandoned by the engine after `uploadTimeoutMs`, and the
/// driver aborts it; the events are retried and delivered once.
#[wasm_bindgen_test]
async fn abandoned_upload_is_aborted() {
    let server = install_fake_server();
    set_online(true);
    set(&server, "hang", 1);
    let db = unique_name("abandon");
    let policy = js_sys::JSON::parse(
        r#"{"requestTimeoutMs": 300, "uploadTimeoutMs": 300, "backoffBaseMs": 50, "backoffMaxMs": 100}"#,
    )
    .unwrap();
    let th = load(&db, policy).await;
    let id = th
        .track("Stuck".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    until("delivery after the abandoned request", 5_000.0, || {
        num(&th.stats(), "delivered") == 1.0
    })
    .await;
    assert_eq!(
        ids(&server),
        vec![id.clone(), id],
        "sent twice, delivered once"
    );
    let aborts: Vec<String> = js_sys::Array::from(&get(&server, "aborts"))
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    assert_eq!(aborts.len(), 1, "{aborts:?}");
    assert!(aborts[0].contains("abandoned"), "{aborts:?}");
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

fn state(anon: u128, user: Option<&str>, opted_out: bool) -> PersistedState {
    let mut identity = Identity::new(uuid::Uuid::from_u128(anon));
    identity.user_id = user.map(str::to_owned);
    PersistedState {
        identity,
        opted_out,
        endpoints: Vec::new(),
    }
}

async fn stored_state(s: &IdbStore) -> PersistedState {
    s.snapshot().await.unwrap().state.unwrap()
}

/// Two connections (tabs) saving their whole state: a tab with a stale view never writes
/// back another tab's opt-out or reset; what it changed itself is kept; it learns of the
/// other's choice, and loads nothing while the store says opted out.
#[wasm_bindgen_test]
async fn state_saves_keep_other_tabs_choices() {
    let name = unique_name("privacy");
    let a = IdbStore::open(&name).await.unwrap();
    let b = IdbStore::open(&name).await.unwrap();
    let s0 = state(1, None, false);
    a.execute(&StoreOp::SaveState(s0.clone())).await.unwrap();
    let base = Privacy {
        identity: s0.identity.clone(),
        opted_out: false,
    };
    a.share_state(base.clone());
    b.share_state(base);

    // A opts out; B, which has not heard, identifies and saves.
    a.execute(&StoreOp::SaveState(state(1, None, true)))
        .await
        .unwrap();
    b.execute(&StoreOp::SaveState(state(1, Some("user-9"), false)))
        .await
        .unwrap();
    let st = stored_state(&a).await;
    assert!(st.opted_out, "the opt-out was not undone");
    assert_eq!(
        st.identity.user_id.as_deref(),
        Some("user-9"),
        "B's change kept"
    );
    let seen = b.take_seen().expect("B learns of the opt-out");
    assert!(seen.store.opted_out && !seen.ours.opted_out);

    // B's events are not loaded for upload while the store says opted out.
    b.execute(&StoreOp::Insert(vec![conformance::event(1, 1, 50)]))
        .await
        .unwrap();
    match b
        .execute(&StoreOp::Load {
            max_events: 10,
            max_bytes: 1 << 20,
        })
        .await
        .unwrap()
    {
        StoreOutcome::Loaded(evs) => assert!(evs.is_empty(), "loaded {evs:?}"),
        other => panic!("{other:?}"),
    }

    // A resets (new anonymous id); B, still on the old one, saves its traits.
    a.execute(&StoreOp::SaveState(state(2, None, true)))
        .await
        .unwrap();
    let mut stale = state(1, Some("user-9"), true);
    stale
        .identity
        .traits
        .insert("plan".into(), serde_json::json!("pro"));
    b.execute(&StoreOp::SaveState(stale)).await.unwrap();
    let st = stored_state(&b).await;
    assert_eq!(
        st.identity,
        state(2, None, true).identity,
        "the reset holds"
    );
    assert_eq!(
        b.take_seen().map(|s| s.store.identity.anonymous_id),
        Some(st.identity.anonymous_id)
    );
    b.close();
    a.destroy().await.unwrap();
}

/// Two tabs: A opts out while B uploads; B then identifies and tracks (saving its state).
/// After both reload, the opt-out holds in both, and nothing B tracked was sent.
#[wasm_bindgen_test]
async fn opt_out_in_one_tab_holds_in_the_other() {
    let server = install_fake_server();
    set_online(true);
    let db = unique_name("optout-tabs");
    let policy = || js_sys::JSON::parse(r#"{"flushAt": 1000, "promptDelayMs": 600000}"#).unwrap();
    let b = load(&db, policy()).await;
    let a = Trailhound::load(opts(&db, policy()))
        .await
        .map_err(JsValue::from)
        .unwrap();
    a.opt_out().map_err(JsValue::from).unwrap();
    let _ = a.flush(Some(1_000.0)).await;
    b.identify("user-9".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let _ = b.track("After".into(), JsValue::UNDEFINED);
    let _ = b.flush(Some(1_000.0)).await;
    until("B to hear of the opt-out", 3_000.0, || b.is_opted_out()).await;
    a.close().await.map_err(JsValue::from).unwrap();
    b.close().await.map_err(JsValue::from).unwrap();

    let b = load(&db, policy()).await;
    let a = Trailhound::load(opts(&db, policy()))
        .await
        .map_err(JsValue::from)
        .unwrap();
    assert!(
        a.is_opted_out() && b.is_opted_out(),
        "opted out after reload"
    );
    assert_eq!(b.export_queue().await.map_err(JsValue::from).unwrap(), "");
    assert!(
        requests(&server).is_empty(),
        "nothing sent: {:?}",
        ids(&server)
    );
    a.close().await.map_err(JsValue::from).unwrap();
    b.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Two tabs: A resets (a new anonymous id) while B identifies; after both reload, both
/// have A's new anonymous id: B's save did not revert it.
#[wasm_bindgen_test]
async fn reset_in_one_tab_holds_in_the_other() {
    install_fake_server();
    set_online(false);
    let db = unique_name("reset-tabs");
    let b = load(&db, JsValue::UNDEFINED).await;
    let a = Trailhound::load(opts(&db, JsValue::UNDEFINED))
        .await
        .map_err(JsValue::from)
        .unwrap();
    let _ = b.flush(Some(300.0)).await;
    let _ = a.flush(Some(300.0)).await;
    let old = b.anonymous_id();
    a.reset().map_err(JsValue::from).unwrap();
    let new = a.anonymous_id();
    assert_ne!(old, new);
    let _ = a.flush(Some(1_000.0)).await;
    b.identify("user-9".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let _ = b.flush(Some(1_000.0)).await;
    until("B to take the new id", 3_000.0, || b.anonymous_id() == new).await;
    a.close().await.map_err(JsValue::from).unwrap();
    b.close().await.map_err(JsValue::from).unwrap();

    for _ in 0..2 {
        let th = load(&db, JsValue::UNDEFINED).await;
        assert_eq!(th.anonymous_id(), new, "the reset holds after reload");
        th.close().await.map_err(JsValue::from).unwrap();
    }
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// While too many events wait uncommitted (here: a burst within one task, before any
/// IndexedDB commit can run), calls throw instead of memory growing; once committed,
/// calls are accepted again.
#[wasm_bindgen_test]
async fn uncommitted_events_are_bounded() {
    install_fake_server();
    set_online(false);
    let db = unique_name("bounded");
    let policy =
        js_sys::JSON::parse(r#"{"commitIntervalMs": 60000, "maxUncommittedEvents": 256}"#).unwrap();
    let th = load(&db, policy).await;
    let mut accepted = 0;
    let mut refused = Vec::new();
    for _ in 0..300 {
        match th.track("Burst".into(), JsValue::UNDEFINED) {
            Ok(_) => accepted += 1,
            Err(e) => refused.push(get(&JsValue::from(e), "message").as_string().unwrap()),
        }
    }
    assert_eq!((accepted, refused.len()), (256, 44));
    assert!(refused[0].contains("not accepted"), "{}", refused[0]);
    assert_eq!(num(&th.stats(), "backpressureCalls"), 44.0);
    until("the commit", 5_000.0, || {
        num(&th.stats(), "uncommitted_events") == 0.0
    })
    .await;
    th.track("After".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

// --- Tracking plans -------------------------------------------------------------------

/// The validator's shared tables (tests/plan/): a plan and events with the violations the
/// native validator finds, as (rule, pointer) lists; the second plan allows unplanned
/// events.
const PLAN_CASES: [(&str, &str); 2] = [
    ("cases.json", include_str!("../../tests/plan/cases.json")),
    (
        "cases-unplanned.json",
        include_str!("../../tests/plan/cases-unplanned.json"),
    ),
];
/// Plans the validator must refuse, with the place (`at`) and words of the message.
const LINT_CASES: &str = include_str!("../../tests/plan/lint-cases.json");

/// A small plan for the mode tests: one planned event with a pattern and no unplanned
/// properties.
const SONG_PLAN: &str = r#"{
  "plan": "web-test", "version": "1-0-0",
  "events": [ { "type": "track", "name": "Song Played",
                "schema": { "type": "object", "required": ["song_id"],
                            "properties": { "song_id": { "type": "string", "pattern": "^s-[0-9]+$" } },
                            "additionalProperties": false } } ]
}"#;

fn js(v: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap()
}

/// `load` options with a plan (JSON text or object) and mode; offline, so that the queue
/// keeps what was accepted for `exportQueue`.
fn plan_opts(db: &str, plan: JsValue, mode: &str) -> JsValue {
    let o = opts(db, JsValue::UNDEFINED);
    set(&o, "plan", plan);
    set(&o, "planMode", mode);
    o
}

async fn load_with(o: JsValue) -> Result<Trailhound, String> {
    Trailhound::load(o)
        .await
        .map_err(|e| get(&JsValue::from(e), "message").as_string().unwrap())
}

/// The queued events, as sent, by messageId.
async fn exported(th: &Trailhound) -> std::collections::HashMap<String, serde_json::Value> {
    let out = th.export_queue().await.map_err(JsValue::from).unwrap();
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| (e["messageId"].as_str().unwrap().to_owned(), e))
        .collect()
}

/// The sorted (rule, pointer) pairs of a list of `{rule, pointer}` objects.
fn rule_pointers(list: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    (
                        v["rule"].as_str().unwrap_or("?").to_owned(),
                        v["pointer"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every case of the shared tables, tracked through the package in `report` mode, is sent
/// with exactly the violations the native validator finds in its `context.plan`, and each
/// is told to the listener and counted.
#[wasm_bindgen_test]
async fn plan_cases_match_native_in_report_mode() {
    for (file, text) in PLAN_CASES {
        run_plan_table(file, text).await;
    }
}

/// Runs one table of cases through a client in `report` mode (see above).
async fn run_plan_table(file: &str, text: &str) {
    install_fake_server();
    set_online(false);
    let table: serde_json::Value = serde_json::from_str(text).unwrap();
    let db = unique_name("plan-cases");
    let th = load_with(plan_opts(&db, js(&table["plan"]), "report"))
        .await
        .unwrap_or_else(|e| panic!("{file}: the plan does not load: {e}"));
    let heard = listen_all(&th);
    // page() fills url, path, … from the page; this puts back exactly the case's
    // properties, so that the table's verdicts apply.
    let plugin = js_sys::eval(
        "(m) => { if (m.type === 'page') m.properties = JSON.parse(globalThis.__thCaseProps); return m; }",
    )
    .unwrap();
    th.add_plugin(plugin.unchecked_into());
    let cases = table["cases"].as_array().expect("cases");
    let mut sent = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        let ev = &case["event"];
        let props = ev
            .get("properties")
            .or_else(|| ev.get("traits"))
            .cloned()
            .unwrap_or(serde_json::json!({}));
        let text = |k: &str| ev[k].as_str().unwrap_or_default().to_owned();
        let id = match ev["type"].as_str() {
            Some("track") => th.track(text("event"), js(&props)),
            Some("screen") => th.screen(text("name"), js(&props)),
            Some("page") => {
                set(&js_sys::global(), "__thCaseProps", props.to_string());
                th.page(text("name").into(), js(&props))
            }
            Some("identify") => th.identify("u1".into(), js(&props)),
            Some("group") => th.group("g1".into(), js(&props)),
            other => panic!("{file}, case {name}: type {other:?} cannot be tracked"),
        };
        let id = id
            .map_err(|e| get(&JsValue::from(e), "message").as_string().unwrap())
            .unwrap_or_else(|e| panic!("{file}, case {name}: the call threw: {e}"));
        assert!(!id.is_empty(), "{file}, case {name}: not queued");
        sent.push((name, id, rule_pointers(&case["violations"])));
    }
    let queued = exported(&th).await;
    let mut wrong = Vec::new();
    let mut total = 0;
    for (name, id, expected) in &sent {
        let got = rule_pointers(&queued[id]["context"]["plan"]["violations"]);
        if !expected.is_empty() {
            assert_eq!(
                queued[id]["context"]["plan"]["action"], "reported",
                "case {name}"
            );
        }
        if got != *expected {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
        total += expected.len();
    }
    assert!(
        wrong.is_empty(),
        "{file}: verdicts differ from native:\n{}",
        wrong.join("\n")
    );
    // Told: one plan_violation notification per violating event, with the same rules.
    let told: Vec<serde_json::Value> = heard
        .iter()
        .map(|n| {
            serde_json::from_str(&js_sys::JSON::stringify(&n).unwrap().as_string().unwrap())
                .unwrap()
        })
        .filter(|n: &serde_json::Value| n["kind"] == "plan_violation")
        .collect();
    let violating: Vec<_> = sent.iter().filter(|(_, _, v)| !v.is_empty()).collect();
    assert_eq!(told.len(), violating.len());
    for ((name, id, expected), n) in violating.iter().zip(&told) {
        assert_eq!(n["message_id"].as_str(), Some(id.as_str()), "case {name}");
        assert_eq!(n["action"], "reported", "case {name}");
        assert_eq!(&rule_pointers(&n["violations"]), expected, "case {name}");
    }
    // Counted, and nothing dropped in report mode.
    let stats: serde_json::Value = serde_json::from_str(
        &js_sys::JSON::stringify(&th.stats())
            .unwrap()
            .as_string()
            .unwrap(),
    )
    .unwrap();
    let counted: u64 = stats["plan_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, total as u64);
    assert_eq!(stats["dropped"]["plan_violation"], 0);
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// Every plan of the lint table is refused by `Plan::parse_with(JsEngine)`, at the same
/// place and with the same words as natively (patterns compiled by the browser's RegExp).
#[wasm_bindgen_test]
fn plan_lint_cases_refused_with_js_patterns() {
    let table: serde_json::Value = serde_json::from_str(LINT_CASES).unwrap();
    let cases = table["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut wrong = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        // A string is the plan's text as written (the "not JSON" case).
        let plan = match &case["plan"] {
            serde_json::Value::String(text) => text.clone(),
            plan => plan.to_string(),
        };
        match Plan::parse_with(&plan, &JsEngine) {
            Ok(_) => wrong.push(format!("{name}: accepted")),
            Err(e) => {
                let words = case["contains"].as_str().unwrap_or_default();
                if e.at != case["at"].as_str().unwrap_or_default() || !e.message.contains(words) {
                    wrong.push(format!(
                        "{name}: got {e}; expected at {} containing {words:?}",
                        case["at"]
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Patterns go through JavaScript's RegExp with flags `su`: `.` matches a newline and a
/// whole astral code point, the match is unanchored, and a bad pattern is an error, not
/// a panic.
#[wasm_bindgen_test]
fn plan_patterns_use_js_regexp() {
    let p = JsEngine.compile("^a.b$").unwrap();
    assert!(p.is_match("a\nb"));
    assert!(p.is_match("a😀b"));
    assert!(!p.is_match("ab"));
    let two = JsEngine.compile("^.{2}$").unwrap();
    assert!(two.is_match("😀😀") && !two.is_match("😀"));
    assert!(JsEngine
        .compile("[0-9]+")
        .unwrap()
        .is_match("track 42 times"));
    let e = JsEngine.compile("(").unwrap_err();
    assert!(e.contains("SyntaxError"), "{e}");
}

/// `enforce` drops violating events (counted as `plan_violation`, told as dropped and as a
/// plan violation) and queues the others untouched; the plan may be given as JSON text.
#[wasm_bindgen_test]
async fn plan_enforce_drops_and_counts() {
    install_fake_server();
    set_online(false);
    let db = unique_name("plan-enforce");
    let th = load_with(plan_opts(&db, SONG_PLAN.into(), "enforce"))
        .await
        .unwrap();
    let heard = listen_all(&th);
    let ok = js(&serde_json::json!({"song_id": "s-1"}));
    let good = th
        .track("Song Played".into(), ok)
        .map_err(JsValue::from)
        .unwrap();
    let typed = js(&serde_json::json!({"song_id": 1}));
    let bad = |r: Result<String, JsError>| r.map_err(JsValue::from).unwrap();
    assert_eq!(bad(th.track("Song Played".into(), typed)), "");
    assert_eq!(bad(th.track("Song Skipped".into(), JsValue::UNDEFINED)), "");
    let queued = exported(&th).await;
    assert_eq!(queued.len(), 1);
    assert!(queued[&good]["context"].get("plan").is_none());
    let s = th.stats();
    assert_eq!(num(&get(&s, "dropped"), "plan_violation"), 2.0);
    let counts: Vec<(String, String, f64)> = js_sys::Array::from(&get(&s, "plan_violations"))
        .iter()
        .map(|c| {
            (
                get(&c, "event").as_string().unwrap(),
                get(&c, "rule").as_string().unwrap(),
                num(&c, "count"),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("Song Played".into(), "type".into(), 1.0),
            ("Song Skipped".into(), "unplanned_event".into(), 1.0)
        ]
    );
    let kinds: Vec<String> = heard
        .iter()
        .map(|n| {
            let k = get(&n, "kind").as_string().unwrap();
            match k.as_str() {
                "dropped" => format!("dropped:{}", get(&n, "reason").as_string().unwrap()),
                "plan_violation" => {
                    format!("plan_violation:{}", get(&n, "action").as_string().unwrap())
                }
                _ => k,
            }
        })
        .filter(|k| k.starts_with("dropped") || k.starts_with("plan_violation"))
        .collect();
    assert_eq!(
        kinds,
        [
            "plan_violation:dropped",
            "dropped:plan_violation",
            "plan_violation:dropped",
            "dropped:plan_violation"
        ]
    );
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// `enforce_strip` removes unplanned properties and sends the event, annotated; `report`
/// sends a pattern mismatch unchanged but for `context.plan`.
#[wasm_bindgen_test]
async fn plan_strip_and_report_modes() {
    install_fake_server();
    set_online(false);
    let db = unique_name("plan-strip");
    let th = load_with(plan_opts(
        &db,
        js_sys::JSON::parse(SONG_PLAN).unwrap(),
        "enforce_strip",
    ))
    .await
    .unwrap();
    let extra = js(&serde_json::json!({"song_id": "s-2", "mood": "calm"}));
    let id = th
        .track("Song Played".into(), extra)
        .map_err(JsValue::from)
        .unwrap();
    let queued = exported(&th).await;
    assert_eq!(
        queued[&id]["properties"],
        serde_json::json!({"song_id": "s-2"})
    );
    assert_eq!(queued[&id]["context"]["plan"]["action"], "stripped");
    assert_eq!(
        rule_pointers(&queued[&id]["context"]["plan"]["violations"]),
        [("additional_properties".into(), "/properties/mood".into())]
    );
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();

    let db = unique_name("plan-report");
    let th = load_with(plan_opts(&db, SONG_PLAN.into(), "report"))
        .await
        .unwrap();
    let odd = js(&serde_json::json!({"song_id": "x-2"}));
    let id = th
        .track("Song Played".into(), odd)
        .map_err(JsValue::from)
        .unwrap();
    let queued = exported(&th).await;
    assert_eq!(
        queued[&id]["properties"],
        serde_json::json!({"song_id": "x-2"})
    );
    assert_eq!(
        rule_pointers(&queued[&id]["context"]["plan"]["violations"]),
        [("pattern".into(), "/properties/song_id".into())]
    );
    assert_eq!(queued[&id]["context"]["plan"]["id"], "web-test");
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// `load` rejects a plan it cannot apply (an unknown keyword) with the validator's error
/// naming the place, a plan that is not JSON, and an unknown mode.
#[wasm_bindgen_test]
async fn plan_invalid_rejected() {
    let db = unique_name("plan-invalid");
    let typo = r#"{"plan": "x", "version": "1-0-0", "events": [
        {"type": "track", "name": "A", "schema": {"type": "object",
         "properties": {"n": {"type": "number", "minimun": 5}}}}]}"#;
    let e = load_with(plan_opts(&db, typo.into(), "report"))
        .await
        .err()
        .expect("refused");
    assert!(
        e.starts_with("plan error at /events/0/schema/properties/n/"),
        "{e}"
    );
    let e = load_with(plan_opts(&db, "{\"plan\": ".into(), "report"))
        .await
        .err()
        .expect("refused");
    assert!(e.starts_with("plan error at "), "{e}");
    let e = load_with(plan_opts(&db, SONG_PLAN.into(), "strict"))
        .await
        .err()
        .expect("refused");
    assert!(e.contains("planMode must be one of"), "{e}");
    let e = load_with(plan_opts(&db, 42.into(), "report"))
        .await
        .err()
        .expect("refused");
    assert!(e.contains("plan must be"), "{e}");
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// `load` options with fallback endpoints: the primary is `http://127.0.0.1:1`.
fn endpoint_opts(db: &str, fallbacks: &[&str], policy: &str) -> JsValue {
    let o = opts(db, js_sys::JSON::parse(policy).unwrap());
    let list = js_sys::Array::new();
    for f in fallbacks {
        list.push(&(*f).into());
    }
    set(&o, "fallbackEndpoints", list);
    o
}

/// The endpoints' figures in `stats()`.
fn endpoint_stats(th: &Trailhound) -> Vec<JsValue> {
    js_sys::Array::from(&get(&th.stats(), "endpoints"))
        .iter()
        .collect()
}

fn text(v: &JsValue, k: &str) -> Option<String> {
    get(v, k).as_string()
}

/// `fallbackEndpoints` is checked like `endpoint`: not an array, a non-string, a URL the
/// endpoint rules refuse (named, with its place in the list), a repeat, or more than
/// `Policy::max_endpoints` in all are refused; a bad `blockCheckUrl` too. A good list is
/// in `stats().endpoints`, in order, every breaker closed.
#[wasm_bindgen_test]
async fn fallback_endpoints_are_checked() {
    let db = unique_name("endpoints-checked");
    let refused = |o: JsValue| async move { load_with(o).await.err().expect("refused") };
    let o = opts(&db, JsValue::UNDEFINED);
    set(&o, "fallbackEndpoints", "https://b.example");
    assert_eq!(
        refused(o).await,
        "fallbackEndpoints must be an array of URLs"
    );
    let o = opts(&db, JsValue::UNDEFINED);
    set(&o, "fallbackEndpoints", js_sys::Array::of1(&7.into()));
    assert_eq!(refused(o).await, "fallbackEndpoints[0] must be a string");
    let e = refused(endpoint_opts(
        &db,
        &["https://b.example", "http://collector.example.com"],
        "{}",
    ))
    .await;
    assert!(
        e.starts_with("fallbackEndpoints[1]: endpoint `http://collector.example.com`: plain http"),
        "{e}"
    );
    let e = refused(endpoint_opts(
        &db,
        &["https://b.example", "not a url"],
        "{}",
    ))
    .await;
    assert!(
        e.starts_with("fallbackEndpoints[1]: endpoint `not a url` is not a URL"),
        "{e}"
    );
    let e = refused(endpoint_opts(&db, &["http://127.0.0.1:1/"], "{}")).await;
    assert!(
        e.contains("is the same endpoint as `http://127.0.0.1:1`"),
        "{e}"
    );
    let max = trailhound_core::Policy::browser().max_endpoints;
    let many: Vec<String> = (0..max).map(|n| format!("https://{n}.example")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = refused(endpoint_opts(&db, &many, "{}")).await;
    assert_eq!(
        e,
        format!(
            "at most {max} endpoints (endpoint and fallbackEndpoints); got {}",
            max + 1
        )
    );
    let o = opts(&db, JsValue::UNDEFINED);
    set(&o, "blockCheckUrl", "ftp://files.example/");
    let e = refused(o).await;
    assert_eq!(
        e,
        "blockCheckUrl `ftp://files.example/`: TypeError: must be an http(s) URL"
    );

    let th = load_with(endpoint_opts(
        &db,
        &many[..max - 1],
        r#"{"flushAt": 1000, "promptDelayMs": 600000}"#,
    ))
    .await
    .expect("a list of max_endpoints loads");
    let list = endpoint_stats(&th);
    let urls: Vec<String> = list.iter().map(|e| text(e, "url").unwrap()).collect();
    let mut expected = vec!["http://127.0.0.1:1".to_owned()];
    expected.extend(many[..max - 1].iter().map(|u| u.to_string()));
    assert_eq!(urls, expected);
    for e in &list {
        assert_eq!(text(e, "state").as_deref(), Some("closed"));
        assert!(get(e, "reason").is_null());
        assert_eq!(num(e, "requests"), 0.0);
    }
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// A fetch that fails at once while the page is online, and after which the page's own
/// origin answers, is blocked: the primary's breaker opens with the reason `blocked` for
/// `backoffMaxMs` (not a backoff), listeners hear `endpoint_opened`, and the batch goes to
/// the fallback at once, delivered once.
#[wasm_bindgen_test]
async fn blocked_endpoint_fails_over() {
    let server = install_fake_server();
    set_online(true);
    set(
        &server,
        "blocked",
        js_sys::Array::of1(&"127.0.0.1:1".into()),
    );
    let db = unique_name("blocked");
    // The blocked wait is ten minutes; a backoff would start at 2 s.
    let o = endpoint_opts(
        &db,
        &["http://127.0.0.1:2"],
        r#"{"backoffMaxMs": 600000, "blockedWithinMs": 5000}"#,
    );
    let th = load_with(o).await.expect("load");
    let heard = listen_all(&th);
    let id = th
        .track("Blocked".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    until("delivery through the fallback", 5_000.0, || {
        num(&th.stats(), "delivered") == 1.0
    })
    .await;
    assert_eq!(ids(&server), vec![id], "delivered once");
    let reqs = requests(&server);
    assert_eq!(
        text(&reqs[0], "url").as_deref(),
        Some("http://127.0.0.1:2/v1/batch")
    );
    assert_eq!(
        js_sys::Array::from(&get(&server, "blockedHits")).length(),
        1
    );
    let checks: Vec<String> = js_sys::Array::from(&get(&server, "checks"))
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    let origin = js_sys::eval("location.origin + '/'")
        .unwrap()
        .as_string()
        .unwrap();
    assert_eq!(checks, vec![origin], "the page's origin was asked");
    let list = endpoint_stats(&th);
    let primary = &list[0];
    assert_eq!(text(primary, "state").as_deref(), Some("open"));
    assert_eq!(text(primary, "reason").as_deref(), Some("blocked"));
    assert!(get(primary, "status").is_null());
    assert_eq!(num(primary, "failures"), 1.0);
    assert!(
        text(primary, "last_error").is_some_and(|e| e.starts_with("blocked: TypeError")),
        "{:?}",
        text(primary, "last_error")
    );
    let wait = num(primary, "retry_at_ms") - js_sys::Date::now();
    assert!(
        wait > 500_000.0,
        "waits backoffMaxMs, not a backoff: {wait} ms"
    );
    assert_eq!(text(&list[1], "state").as_deref(), Some("closed"));
    assert_eq!(num(&list[1], "requests"), 1.0);
    let opened: Vec<JsValue> = heard
        .iter()
        .filter(|n| text(n, "kind").as_deref() == Some("endpoint_opened"))
        .collect();
    assert_eq!(opened.len(), 1, "{:?}", js_sys::JSON::stringify(&heard));
    assert_eq!(
        text(&opened[0], "url").as_deref(),
        Some("http://127.0.0.1:1")
    );
    assert_eq!(text(&opened[0], "reason").as_deref(), Some("blocked"));
    assert_eq!(num(&opened[0], "retry_in_ms"), 600_000.0);

    // A flush does not shorten a blocked wait: the next batch goes straight to the fallback.
    let id2 = th
        .track("Still Blocked".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    let _ = th.flush(Some(3_000.0)).await;
    assert_eq!(num(&th.stats(), "delivered"), 2.0);
    assert_eq!(ids(&server)[1], id2);
    assert_eq!(
        js_sys::Array::from(&get(&server, "blockedHits")).length(),
        1,
        "the blocked endpoint was left alone"
    );
    th.close().await.map_err(JsValue::from).unwrap();

    // The blocked wait is saved with the breaker: a reload leaves the endpoint alone too.
    let th = load_with(endpoint_opts(
        &db,
        &["http://127.0.0.1:2"],
        r#"{"backoffMaxMs": 600000}"#,
    ))
    .await
    .expect("load");
    let primary = &endpoint_stats(&th)[0];
    assert_eq!(text(primary, "state").as_deref(), Some("open"));
    assert_eq!(text(primary, "reason").as_deref(), Some("blocked"));
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}

/// A fast failure is a network error, not blocked, when the check gets no answer either
/// (the network is down though the browser says online), or when it came slower than
/// `blockedWithinMs` (here 0: the detection is off): the breaker opens for a backoff.
#[wasm_bindgen_test]
async fn fast_failure_without_an_answering_origin_is_a_network_error() {
    for (check_fails, within) in [(true, 5_000), (false, 0)] {
        let server = install_fake_server();
        set_online(true);
        set(
            &server,
            "blocked",
            js_sys::Array::of1(&"127.0.0.1:1".into()),
        );
        set(&server, "checkFails", check_fails);
        let db = unique_name("not-blocked");
        let policy = format!(r#"{{"backoffMaxMs": 600000, "blockedWithinMs": {within}}}"#);
        let th = load_with(endpoint_opts(&db, &["http://127.0.0.1:2"], &policy))
            .await
            .expect("load");
        th.track("Down".into(), JsValue::UNDEFINED)
            .map_err(JsValue::from)
            .unwrap();
        until("delivery through the fallback", 5_000.0, || {
            num(&th.stats(), "delivered") == 1.0
        })
        .await;
        let primary = &endpoint_stats(&th)[0];
        assert_eq!(
            text(primary, "reason").as_deref(),
            Some("network"),
            "check fails: {check_fails}, within {within}"
        );
        let wait = num(primary, "retry_at_ms") - js_sys::Date::now();
        assert!(wait < 10_000.0, "a backoff: {wait} ms");
        let checks = js_sys::Array::from(&get(&server, "checks")).length();
        assert_eq!(checks, u32::from(check_fails), "checked only when fast");
        th.close().await.map_err(JsValue::from).unwrap();
        JsFuture::from(delete_db(&db)).await.unwrap();
    }
}

/// With the primary blocked (checked against a relative `blockCheckUrl`), a page hide
/// sends what the page has not seen delivered to the fallback (the endpoint in use), and
/// where fetch refuses, the beacon goes there too (it is closed and has answered this page
/// with a 2xx); nothing goes to the blocked one.
#[wasm_bindgen_test]
async fn page_hide_goes_to_the_endpoint_in_use() {
    let server = install_fake_server();
    set_online(true);
    set(
        &server,
        "blocked",
        js_sys::Array::of1(&"127.0.0.1:1".into()),
    );
    let db = unique_name("hide-fallback");
    let o = endpoint_opts(
        &db,
        &["http://127.0.0.1:2"],
        r#"{"backoffMaxMs": 600000, "blockedWithinMs": 5000}"#,
    );
    set(&o, "blockCheckUrl", "health?probe=1");
    let th = load_with(o).await.expect("load");
    until("the uploader lock", 2_000.0, || {
        get(&th.stats(), "leader").as_bool() == Some(true)
    })
    .await;
    th.track("First".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    until("delivery through the fallback", 5_000.0, || {
        num(&th.stats(), "delivered") == 1.0
    })
    .await;
    let blocked_hits = || js_sys::Array::from(&get(&server, "blockedHits")).length();
    assert_eq!(blocked_hits(), 1);
    let checks = js_sys::Array::from(&get(&server, "checks"));
    let expected = js_sys::eval("new URL('health?probe=1', location.href).href").unwrap();
    assert_eq!(checks.to_vec(), vec![expected]);

    let started = num(&server, "started");
    let id = th
        .track("Hidden".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    page_hide();
    assert_eq!(
        num(&server, "started"),
        started + 1.0,
        "sent within the handler"
    );
    until("the page hide's request", 3_000.0, || {
        ids(&server).contains(&id)
    })
    .await;
    for r in requests(&server) {
        assert_eq!(
            text(&r, "url").as_deref(),
            Some("http://127.0.0.1:2/v1/batch")
        );
    }
    assert_eq!(blocked_hits(), 1, "nothing more to the blocked endpoint");

    // fetch refuses (the keepalive budget is spent): the beacon goes to the fallback.
    set(&server, "refuse", true);
    let id = th
        .track("Last".into(), JsValue::UNDEFINED)
        .map_err(JsValue::from)
        .unwrap();
    page_hide();
    until("the beacon", 3_000.0, || {
        js_sys::Array::from(&get(&server, "beacons")).length() > 0
    })
    .await;
    let sent = JsFuture::from(beacons()).await.unwrap();
    let beacon = js_sys::Array::from(&sent).get(0);
    assert_eq!(
        text(&beacon, "url").as_deref(),
        Some("http://127.0.0.1:2/v1/batch")
    );
    let batch = js_sys::Array::from(&get(&get(&beacon, "body"), "batch"));
    assert!(batch
        .iter()
        .any(|e| text(&e, "messageId").as_deref() == Some(id.as_str())));
    assert_eq!(blocked_hits(), 1, "nothing more to the blocked endpoint");
    th.close().await.map_err(JsValue::from).unwrap();
    JsFuture::from(delete_db(&db)).await.unwrap();
}
