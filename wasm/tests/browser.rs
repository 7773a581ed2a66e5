//! Browser tests, run in headless Chromium by `wasm-bindgen-test-runner`
//! (scripts/test-wasm.sh): the IndexedDB queue against the core's conformance suite, and
//! the client's persistence, offline handling and retries with faults injected through a
//! scripted `fetch` and the browser's own `offline`/`online` events.
#![cfg(target_arch = "wasm32")]

use std::future::Future;

use trailhound_core::store::conformance::{self, Backend};
use trailhound_core::store::{StoreOp, StoreOutcome};
use trailhound_core::{Identity, PersistedState, StoreFailure, StoreResult, StoreSnapshot};
use trailhound_wasm::idb::{IdbStore, Privacy};
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
export function installFakeServer() {
  const server = { requests: [], statuses: [], retryAfter: [], offline: false };
  globalThis.__thServer = server;
  server.started = 0;
  server.refuse = false;
  server.beacons = [];
  server.hang = 0;
  server.aborts = [];
  navigator.sendBeacon = (url, blob) => { server.beacons.push(blob.text().then((t) => ({ url, body: JSON.parse(t) }))); return true; };
  globalThis.fetch = (url, init) => {
    // Counted before anything asynchronous: a request started in an event handler counts.
    server.started++;
    return respond(url, init);
  };
  const respond = async (url, init) => {
    if (server.offline) throw new TypeError("Failed to fetch");
    if (server.refuse) throw new TypeError("keepalive budget exceeded");
    const stream = new Blob([init.body]).stream().pipeThrough(new DecompressionStream("gzip"));
    const body = JSON.parse(await new Response(stream).text());
    server.requests.push({ url, at: Date.now(), auth: init.headers["Authorization"], keepalive: init.keepalive, redirect: init.redirect, ids: body.batch.map((e) => e.messageId), body });
    if (init.signal) init.signal.addEventListener("abort", () => server.aborts.push(String(init.signal.reason && init.signal.reason.message)));
    if (server.hang > 0) { server.hang--; return new Promise(() => {}); }
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
export async function beacons() { return Promise.all(globalThis.__thServer.beacons); }
export function uniqueName(prefix) { return prefix + "-" + Math.random().toString(36).slice(2); }
export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
export function opts(db, policy) {
  return { writeKey: "test-key", endpoint: "http://127.0.0.1:1", dbName: db, policy: Object.assign({ commitIntervalMs: 10, flushAt: 1, promptDelayMs: 20 }, policy || {}) };
}
export function deleteDb(name) {
  return new Promise((res) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = () => res(); });
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = installFakeServer)]
    fn install_fake_server() -> JsValue;
    #[wasm_bindgen(js_name = setOnline)]
    fn set_online(online: bool);
    #[wasm_bindgen(js_name = pageHide)]
    fn page_hide();
    fn beacons() -> js_sys::Promise;
    #[wasm_bindgen(js_name = uniqueName)]
    fn unique_name(prefix: &str) -> String;
    fn sleep(ms: f64) -> js_sys::Promise;
    fn opts(db: &str, policy: JsValue) -> JsValue;
    #[wasm_bindgen(js_name = deleteDb)]
    fn delete_db(name: &str) -> js_sys::Promise;
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

/// A 503 is retried after a backoff, a 429's Retry-After is honoured, and the same events
/// (same messageIds) go out again until accepted; listeners hear each step.
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
        heard.length() == 3
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
    let kinds: Vec<String> = heard.iter().map(|k| k.as_string().unwrap()).collect();
    assert_eq!(kinds, ["upload_failed", "upload_failed", "delivered"]);
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

    // The engine's own upload of the event: the endpoint has answered with a 2xx, so a
    // beacon (which cannot refuse a redirect) may be the fallback.
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

    // fetch refused on page hide: no beacon to an endpoint that redirects.
    set(&server, "refuse", true);
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
        retry: Default::default(),
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
