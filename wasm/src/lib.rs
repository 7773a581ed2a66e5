//! Trailhound for web pages: the `trailhound-core` engine driven by the browser's event
//! loop, with its queue in IndexedDB and uploads through `fetch`.
//!
//! # Layout
//!
//! - this file: the JS API ([`Trailhound`]) and the driver, the browser's counterpart of the
//!   native worker thread: feed the engine, run its store operations one at a time, send its
//!   uploads, pass notifications on, and set a timer for `poll_timeout`.
//! - [`idb`]: the IndexedDB queue (passes the core's conformance suite).
//! - [`plan`]: tracking plans, with `pattern` keywords compiled by the browser's `RegExp`.
//! - [`queue`]: IndexedDB, or memory where it is unavailable.
//! - [`platform`]: bindings to browser APIs and the promise adapters in `js/platform.js`.
//!
//! # Several tabs
//!
//! Tabs of one site share the IndexedDB queue. Every tab commits its own events (with seqs
//! allocated inside the inserting transaction, so they never collide); only the tab holding
//! the Web Lock `trailhound-uploader:<db>` uploads, so an event is never sent by two tabs at
//! once. Tabs tell each other of changes on a `BroadcastChannel`, and each re-reads the
//! queue's counts from the store before its next operation. State saves merge instead of
//! overwriting, so that no tab undoes another's opt-out or reset, and a tab adopts the
//! other tabs' choices before its next operation (see [`idb`]).
//!
//! # Several endpoints, and ad blockers
//!
//! `load` takes the `endpoint` and, optionally, `fallbackEndpoints`: the engine keeps a
//! circuit breaker per endpoint (`trailhound_core::breaker`) and says in each
//! [`Transmit`] which endpoint it goes to. A `fetch` that fails with a `TypeError` within
//! `Policy::blocked_within` while the browser says it is online, and after which a
//! same-origin request (`blockCheckUrl`, default the page's origin `/`) gets an answer,
//! was blocked on the device (an ad blocker): the engine hears `UploadResult::Blocked`,
//! and that endpoint waits `backoff_max` instead of being retried every few seconds.
//!
//! # Redirects and timeouts
//!
//! No fetch follows a redirect (`redirect: "manual"`; a 3xx pauses uploads, see
//! `js/platform.js`), and a fetch has no timer of its own: the engine abandons a request
//! after `upload_timeout` and the driver aborts it.
#![deny(missing_docs)]

pub mod idb;
pub mod journal;
pub mod plan;
mod platform;
pub mod queue;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Function;
use serde_json::Value;
use trailhound_core::breaker::OpenReason;
use trailhound_core::context::{AppInfo, ContextInfo};
use trailhound_core::message::{self, Properties};
use trailhound_core::plan::Verdict;
use trailhound_core::store::StoreOp;
use trailhound_core::tracker::{IdentityChange, Tracker};
use trailhound_core::{
    endpoint, Call, DeviceConditions, DropReason, Engine, Identity, Lifecycle, Message, Network,
    Notification, Policy, QueuedEvent, StoreSnapshot, Transmit, UploadResult,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::idb::{merge, Privacy};
use crate::platform::{get, now_ms};
use crate::queue::Queue;

/// The JS API: `const th = await Trailhound.load({ writeKey, endpoint })`.
#[wasm_bindgen]
pub struct Trailhound {
    sh: Shared,
}

type Shared = Rc<RefCell<Inner>>;

struct Inner {
    engine: Engine,
    queue: Rc<Queue>,
    /// The deletes owed the IndexedDB queue, kept where they survive the page; `None` for
    /// a memory queue.
    journal: Option<journal::Journal>,
    policy: Policy,
    tracker: Tracker,
    plugins: Vec<Function>,
    /// The tracking plan and its mode, when `load` was given one.
    plan: Option<Rc<plan::Gate>>,
    /// Events the plan dropped (`enforce` modes): the engine never sees them.
    plan_dropped: u64,
    listeners: Vec<(String, Function)>,
    /// The endpoints, in the engine's order ([`Transmit::endpoint`] indexes them).
    targets: Vec<Target>,
    /// What a fast failure is checked against before it counts as blocked (see
    /// [`failure`]); `None` where the page has no http(s) origin to ask.
    block_check: Option<String>,
    auth: String,
    write_key: String,
    /// A drive is under way; `again`: something happened meanwhile, drive once more.
    driving: bool,
    again: bool,
    timer: Option<(i64, JsValue)>,
    wake: Option<Closure<dyn FnMut()>>,
    /// This tab holds the uploader lock (see the crate docs).
    leader: bool,
    release_lead: Option<Function>,
    /// Another tab changed the queue: re-read its counts before the next operation.
    resync: bool,
    /// Uploads in flight, with the AbortController that cancels each.
    in_flight: Vec<(u64, JsValue)>,
    channel: Option<web_sys::BroadcastChannel>,
    /// The device's conditions as observed; the engine sees the network as offline while
    /// another tab is the uploader.
    conditions: DeviceConditions,
    /// Events this page accepted that are held only in its memory (the newest, within the
    /// keepalive budget): not yet committed to IndexedDB (a memory queue: not yet delivered
    /// or dropped). What a page hide sends at once, since the commit may not happen before
    /// the page is gone. Committed events are not: the next page of the site (a reload, a
    /// link) sends them, once; a keepalive copy as well would be delivered twice, since no
    /// page is left to hear its answer.
    volatile: std::collections::VecDeque<QueuedEvent>,
    volatile_bytes: usize,
    invalid: u64,
    plugin_dropped: u64,
    opted_out_calls: u64,
    backpressure_calls: u64,
    beacons: u64,
    /// Between `pagehide` and `pageshow`: the page is going away (or into the back/forward
    /// cache), so no upload starts. One started now could reach the server after the page
    /// that would hear its answer is gone, and the next page would send its events again;
    /// they are committed, so the next page sends them, once (what is not committed yet
    /// goes in the page hide's keepalive request, see `send_volatile`).
    hidden: bool,
    closed: bool,
    keep: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// One configured endpoint.
struct Target {
    /// Where its batches go.
    batch_url: String,
    /// It answered a fetch with a 2xx, and no redirect since: only then may a page hide
    /// fall back to `sendBeacon` to it, which follows redirects (see `send_volatile`).
    ok: bool,
}

fn js_err(msg: impl std::fmt::Display) -> JsError {
    JsError::new(&msg.to_string())
}

/// Turns a JS value (`undefined`/`null`: empty) into properties, refusing what JSON
/// cannot carry (BigInt, NaN, functions, cycles) with an error naming it.
fn to_properties(value: &JsValue, what: &str) -> Result<Properties, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(Properties::new());
    }
    let json = match platform::json(value) {
        Some(json) => json,
        None => platform::stringify(value, what).map_err(|e| {
            js_err(format!(
                "{what} cannot be sent: {}",
                platform::error_text(&e)
            ))
        })?,
    };
    match serde_json::from_str::<Value>(&json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(js_err(format!(
            "{what} must be an object, got {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(js_err(format!("{what} cannot be sent: {e}"))),
    }
}

fn opt_string(v: &JsValue, what: &str) -> Result<Option<String>, JsError> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| js_err(format!("{what} must be a string")))
}

fn to_js(v: &impl serde::Serialize) -> JsValue {
    serde_json::to_string(v)
        .ok()
        .and_then(|s| js_sys::JSON::parse(&s).ok())
        .unwrap_or(JsValue::NULL)
}

/// A breaker's reason as JS reads it: `"network"`, `"status"`, `"paused"` or `"blocked"`,
/// with the HTTP status behind a `status` or `paused` reason apart (as the native bindings
/// have them).
fn reason_parts(reason: Option<OpenReason>) -> (Option<&'static str>, Option<u16>) {
    let status = match reason {
        Some(OpenReason::Status { status } | OpenReason::Paused { status }) => Some(status),
        _ => None,
    };
    (reason.map(OpenReason::as_str), status)
}

/// A notification as listeners get it: the core's JSON, with an endpoint's reason flat.
fn notification_js(n: &Notification) -> JsValue {
    let v = to_js(n);
    if let Notification::EndpointOpened { reason, .. } = n {
        let (reason, status) = reason_parts(Some(*reason));
        let _ = js_sys::Reflect::set(&v, &"reason".into(), &reason.into());
        let _ = js_sys::Reflect::set(&v, &"status".into(), &status.into());
    }
    v
}

/// Reads the browser's view of the device: `navigator.onLine`, `navigator.connection`.
fn observe_network(cond: &mut DeviceConditions) {
    let nav = get(&platform::global(), "navigator");
    let online = get(&nav, "onLine");
    let conn = get(&nav, "connection");
    cond.network = if online.as_bool() == Some(false) {
        Network::Offline
    } else {
        match get(&conn, "type").as_string().as_deref() {
            Some("wifi") => Network::Wifi,
            Some("cellular") => Network::Cellular,
            Some("ethernet") => Network::Ethernet,
            _ => Network::Unknown,
        }
    };
    let save_data = get(&conn, "saveData").as_bool() == Some(true);
    let slow = matches!(
        get(&conn, "effectiveType").as_string().as_deref(),
        Some("slow-2g" | "2g")
    );
    // The user asked to save data, or the link is too slow to spend it freely.
    cond.metered = save_data || slow;
    cond.low_power_mode = save_data;
}

fn context_info(app: Option<AppInfo>) -> ContextInfo {
    let g = platform::global();
    let nav = get(&g, "navigator");
    let screen = get(&g, "screen");
    ContextInfo {
        app,
        locale: get(&nav, "language").as_string(),
        timezone: platform::time_zone(),
        user_agent: get(&nav, "userAgent").as_string(),
        screen_width: get(&screen, "width").as_f64().map(|v| v as u32),
        screen_height: get(&screen, "height").as_f64().map(|v| v as u32),
        screen_density: get(&g, "devicePixelRatio").as_f64(),
        os_name: None,
        ..ContextInfo::default()
    }
}

fn policy_from(opts: &JsValue) -> Result<Policy, JsError> {
    let mut p = Policy::browser();
    let o = get(opts, "policy");
    let ms = |k: &str| {
        get(&o, k)
            .as_f64()
            .map(|v| std::time::Duration::from_millis(v as u64))
    };
    let n = |k: &str| get(&o, k).as_f64();
    if let Some(v) = n("flushAt") {
        p.flush_at = v as u64;
    }
    if let Some(v) = ms("promptDelayMs") {
        p.prompt_delay = v;
    }
    if let Some(v) = ms("commitIntervalMs") {
        p.commit_interval = v;
    }
    if let Some(v) = ms("backoffBaseMs") {
        p.backoff_base = v;
    }
    if let Some(v) = ms("backoffMaxMs") {
        p.backoff_max = v;
    }
    if let Some(v) = ms("requestTimeoutMs") {
        p.request_timeout = v;
    }
    if let Some(v) = ms("blockedWithinMs") {
        p.blocked_within = v;
    }
    // A fetch has no timeout of its own: the engine's is the only clock. It abandons a
    // request after `upload_timeout`, and the driver aborts that fetch.
    p.upload_timeout = ms("uploadTimeoutMs").unwrap_or(p.request_timeout);
    if let Some(v) = n("maxQueueEvents") {
        p.max_queue_events = v as u64;
    }
    if let Some(v) = n("maxQueueBytes") {
        p.max_queue_bytes = v as u64;
    }
    if let Some(v) = n("maxEventBytes") {
        p.max_event_bytes = v as usize;
    }
    if let Some(v) = n("maxBatchEvents") {
        p.max_batch_events = v as usize;
    }
    if let Some(v) = n("maxUncommittedEvents") {
        p.max_uncommitted_events = v as usize;
    }
    if let Some(v) = n("maxUncommittedBytes") {
        p.max_uncommitted_bytes = v as usize;
    }
    p.validate().map_err(js_err)?;
    Ok(p)
}

/// Parses the endpoint with the browser's own URL parser (`new URL()`) and applies the
/// core's rules to what it parsed (see `trailhound_core::endpoint`).
fn check_endpoint(endpoint: &str) -> Result<endpoint::Endpoint, String> {
    let parts = platform::parse_url(endpoint).map_err(|e| {
        format!(
            "endpoint `{endpoint}` is not a URL: {}",
            platform::error_text(&e)
        )
    })?;
    let text = |k: &str| get(&parts, k).as_string();
    let (scheme, username, password, host, path, query, fragment) = (
        text("scheme").unwrap_or_default(),
        text("username").unwrap_or_default(),
        text("password"),
        text("host").unwrap_or_default(),
        text("path").unwrap_or_default(),
        text("query"),
        text("fragment"),
    );
    let parsed = endpoint::UrlParts {
        scheme: &scheme,
        username: &username,
        password: password.as_deref(),
        host: &host,
        port: get(&parts, "port").as_f64().map(|p| p as u16),
        path: &path,
        query: query.as_deref(),
        fragment: fragment.as_deref(),
    };
    endpoint::check(endpoint, &parsed).map_err(|e| e.to_string())
}

/// The endpoints, in order of preference: `endpoint`, then `fallbackEndpoints` (an array),
/// each checked with [`check_endpoint`]; a repeated one, or more than
/// [`Policy::max_endpoints`] in all, is refused.
fn endpoints_from(opts: &JsValue, policy: &Policy) -> Result<Vec<endpoint::Endpoint>, JsError> {
    let first = opt_string(&get(opts, "endpoint"), "endpoint")?
        .ok_or_else(|| js_err("endpoint is required"))?;
    let mut all = vec![check_endpoint(&first).map_err(js_err)?];
    let more = get(opts, "fallbackEndpoints");
    if more.is_undefined() || more.is_null() {
        return Ok(all);
    }
    if !js_sys::Array::is_array(&more) {
        return Err(js_err("fallbackEndpoints must be an array of URLs"));
    }
    let more = js_sys::Array::from(&more);
    let count = more.length() as usize + 1;
    if count > policy.max_endpoints {
        return Err(js_err(format!(
            "at most {} endpoints (endpoint and fallbackEndpoints); got {count}",
            policy.max_endpoints
        )));
    }
    for (n, v) in more.iter().enumerate() {
        let what = format!("fallbackEndpoints[{n}]");
        let text = v
            .as_string()
            .ok_or_else(|| js_err(format!("{what} must be a string")))?;
        let e = check_endpoint(&text).map_err(|e| js_err(format!("{what}: {e}")))?;
        if let Some(same) = all.iter().find(|a| a.base() == e.base()) {
            return Err(js_err(format!(
                "{what} `{text}` is the same endpoint as `{}`",
                same.base()
            )));
        }
        all.push(e);
    }
    Ok(all)
}

/// The URL a fast failure is checked against (see [`failure`]): `blockCheckUrl`, resolved
/// against the page's address, or else the page's own origin `/`; `None` where the page
/// has no http(s) origin (a `file:` page, Node).
fn block_check_from(opts: &JsValue) -> Result<Option<String>, JsError> {
    let given = opt_string(&get(opts, "blockCheckUrl"), "blockCheckUrl")?;
    platform::check_url(given.as_deref()).map_err(|e| {
        js_err(format!(
            "blockCheckUrl `{}`: {}",
            given.unwrap_or_default(),
            platform::error_text(&e)
        ))
    })
}

/// Runs the engine until it has nothing to do now, then sets the timer.
fn kick(sh: &Shared) {
    {
        let mut i = sh.borrow_mut();
        if i.closed {
            return;
        }
        if i.driving {
            i.again = true;
            return;
        }
        i.driving = true;
    }
    let sh = sh.clone();
    spawn_local(async move {
        loop {
            drive(&sh).await;
            let mut i = sh.borrow_mut();
            if i.again && !i.closed {
                i.again = false;
                continue;
            }
            i.driving = false;
            break;
        }
        arm_timer(&sh);
    });
}

/// What the other tabs must hear of: everything but a load (a state save too, so that
/// they learn of an opt-out or reset at once).
fn is_write(op: &StoreOp) -> bool {
    !matches!(op, StoreOp::Load { .. })
}

/// Applies the privacy choices another tab stored (an opt-out, a reset, an identify) to
/// this tab's engine and tracker, keeping what this tab changed since (see
/// [`idb::merge`]). A tab that learns of an opt-out purges and stops like the one that
/// opted out; its next state save writes the merged choices.
fn adopt_other_tabs(sh: &Shared) {
    let mut i = sh.borrow_mut();
    let i = &mut *i;
    let Some(seen) = i.queue.take_seen() else {
        return;
    };
    let mine = Privacy {
        identity: i.tracker.identity().clone(),
        opted_out: i.engine.opted_out(),
    };
    let merged = merge(&seen.ours, &mine, &seen.store);
    let now = now_ms();
    if merged.opted_out != mine.opted_out {
        if merged.opted_out {
            i.volatile.clear();
            i.volatile_bytes = 0;
        }
        i.engine.handle_opt_out(merged.opted_out, now);
    }
    if merged.identity != mine.identity {
        let identity = i.tracker.adopt(merged.identity).clone();
        i.engine.handle_identity(identity);
    }
}

/// Cancels the fetches the engine gave up on (no answer within `upload_timeout`): their
/// answers would be ignored, and a hung keepalive request holds the page's budget.
fn abort_abandoned(sh: &Shared) {
    let mut i = sh.borrow_mut();
    while let Some(id) = i.engine.poll_abandoned() {
        if let Some(pos) = i.in_flight.iter().position(|(t, _)| *t == id) {
            let (_, controller) = i.in_flight.swap_remove(pos);
            platform::abort(
                &controller,
                "abandoned: no answer within the upload timeout",
            );
        }
    }
}

/// One pass of the driver: store operations one at a time, then uploads, then listeners.
async fn drive(sh: &Shared) {
    sh.borrow_mut().engine.handle_timeout(now_ms());
    loop {
        let (resync, queue) = {
            let mut i = sh.borrow_mut();
            (std::mem::take(&mut i.resync), i.queue.clone())
        };
        if resync {
            // Between two of our operations: the store's counts include everything ours
            // did, and what the other tabs did.
            if let Ok(snap) = queue.snapshot().await {
                sh.borrow_mut().engine.handle_store_resync(&snap, now_ms());
            }
            adopt_other_tabs(sh);
        }
        let op = {
            let mut i = sh.borrow_mut();
            i.engine.poll_store(now_ms()).cloned()
        };
        if let Some(op) = op {
            let result = queue.execute(&op).await;
            let ok = result.is_ok();
            {
                let mut i = sh.borrow_mut();
                if let (true, StoreOp::Insert(events), Queue::Idb(_)) = (ok, &op, &*i.queue) {
                    // Durable now: the next page sends them (see `Inner::volatile`).
                    let ids: Vec<String> = events.iter().map(|e| e.message_id.clone()).collect();
                    i.forget_volatile(&ids);
                }
                i.engine.handle_store(result, now_ms());
                i.keep_owed();
                if ok && is_write(&op) {
                    if let Some(ch) = &i.channel {
                        let _ = ch.post_message(&JsValue::from_str("changed"));
                    }
                }
            }
            adopt_other_tabs(sh);
            continue;
        }
        abort_abandoned(sh);
        if sh.borrow().hidden {
            break;
        }
        let transmit = sh.borrow_mut().engine.poll_transmit(now_ms());
        match transmit {
            Some(t) => spawn_local(upload(sh.clone(), t)),
            None => break,
        }
    }
    notify(sh);
}

/// Hands the engine's notifications to the listeners, outside any borrow: a listener may
/// call back into the client.
fn notify(sh: &Shared) {
    let (notes, listeners) = {
        let mut i = sh.borrow_mut();
        let mut notes = Vec::new();
        while let Some(n) = i.engine.poll_notification() {
            if let Notification::Delivered { message_ids }
            | Notification::Dropped { message_ids, .. } = &n
            {
                i.forget_volatile(message_ids);
            }
            notes.push(n);
        }
        if notes.is_empty() {
            return;
        }
        (notes, i.listeners.clone())
    };
    for n in &notes {
        let v = notification_js(n);
        let kind = get(&v, "kind").as_string().unwrap_or_default();
        for (k, f) in &listeners {
            if *k == kind || k == "*" {
                // A throwing listener must not stop delivery.
                let _ = f.call1(&JsValue::NULL, &v);
            }
        }
    }
}

fn arm_timer(sh: &Shared) {
    let mut i = sh.borrow_mut();
    if i.closed {
        return;
    }
    let next = i.engine.poll_timeout();
    if i.timer.as_ref().map(|t| t.0) == next {
        return;
    }
    if let Some((_, h)) = i.timer.take() {
        platform::clear_timeout(&h);
    }
    if let Some(at) = next {
        let Some(wake) = i.wake.as_ref() else { return };
        // setTimeout's delay is a 32-bit signed number of ms; later deadlines wake early
        // and re-arm.
        let ms = (at - now_ms()).clamp(0, i32::MAX as i64) as f64;
        let h = platform::set_timeout(wake.as_ref().unchecked_ref(), ms);
        i.timer = Some((at, h));
    }
}

async fn upload(sh: Shared, t: Transmit) {
    let (url, auth) = {
        let i = sh.borrow();
        let target = i.targets.get(t.endpoint).or(i.targets.first());
        (
            target.map(|x| x.batch_url.clone()).unwrap_or_default(),
            i.auth.clone(),
        )
    };
    let controller = platform::controller();
    sh.borrow_mut().in_flight.push((t.id, controller.clone()));
    let started = now_ms();
    // Always keepalive: a batch fits the budget (Policy::browser), so an upload under way
    // finishes even if the page is closed meanwhile.
    let sent = platform::fetch(&url, &auth, &t.body, true, &controller, !t.gzipped);
    let result = match JsFuture::from(sent).await {
        Ok(v) => {
            let status = js_sys::Reflect::get_u32(&v, 0)
                .ok()
                .and_then(|s| s.as_f64())
                .unwrap_or(0.0) as u16;
            let retry_after = js_sys::Reflect::get_u32(&v, 1)
                .ok()
                .and_then(|s| s.as_string());
            UploadResult::Response {
                status,
                retry_after,
            }
        }
        Err(e) => failure(&sh, &e, started, &controller).await,
    };
    let mut i = sh.borrow_mut();
    i.in_flight.retain(|(id, _)| *id != t.id);
    if let (UploadResult::Response { status, .. }, Some(target)) =
        (&result, i.targets.get_mut(t.endpoint))
    {
        match status {
            200..=299 => target.ok = true,
            300..=399 => target.ok = false,
            _ => {}
        }
    }
    i.engine.handle_upload(t.id, result, now_ms());
    // Before this task ends: the page may be gone before the delete is done.
    i.keep_owed();
    drop(i);
    kick(&sh);
}

/// What a failed `fetch` (`e`, started at `started`) means. Blocked on the device (an ad
/// blocker, a privacy extension, a filtering proxy) when it failed with a `TypeError`
/// within `Policy::blocked_within` while `navigator.onLine` says online, and a request to
/// the block check URL then gets an answer, any answer: the network works, only this
/// endpoint is refused. Chromium fails a blocked request with a `TypeError`
/// (`net::ERR_BLOCKED_BY_CLIENT`) at once, but a network that is down fails as fast, hence
/// the check. Otherwise a network error.
async fn failure(sh: &Shared, e: &JsValue, started: i64, controller: &JsValue) -> UploadResult {
    let text = platform::error_text(e);
    let took = now_ms() - started;
    let (within, check) = {
        let i = sh.borrow();
        (
            trailhound_core::policy::millis(i.policy.blocked_within),
            i.block_check.clone(),
        )
    };
    let online = get(&get(&platform::global(), "navigator"), "onLine").as_bool() == Some(true);
    let type_error = get(e, "name").as_string().as_deref() == Some("TypeError");
    if took >= within || !online || !type_error {
        return UploadResult::NetworkError(text);
    }
    let Some(check) = check else {
        return UploadResult::Blocked(format!("{text} ({took} ms after it started, online)"));
    };
    // The same controller: an upload the engine abandons aborts its check too.
    let answered = JsFuture::from(platform::reachable(&check, controller))
        .await
        .ok()
        .and_then(|v| v.as_bool())
        == Some(true);
    if answered {
        UploadResult::Blocked(format!(
            "{text} ({took} ms after it started, while {check} answered)"
        ))
    } else {
        UploadResult::NetworkError(text)
    }
}

/// Tells the engine what the device looks like; a follower tab's engine sees no network.
fn push_conditions(sh: &Shared) {
    let mut i = sh.borrow_mut();
    let mut seen = i.conditions;
    if !i.leader {
        seen.network = Network::Offline;
    }
    i.engine.handle_conditions(seen, now_ms());
    let network = i.conditions.network;
    i.tracker.set_network(network);
}

fn on_page_event(sh: &Shared, kind: &str) {
    let now = now_ms();
    match kind {
        "online" | "offline" | "change" => {
            let mut c = sh.borrow().conditions;
            observe_network(&mut c);
            sh.borrow_mut().conditions = c;
            push_conditions(sh);
        }
        "visibilitychange" => {
            let hidden = get(&get(&platform::global(), "document"), "visibilityState")
                .as_string()
                .is_some_and(|s| s == "hidden");
            let lc = if hidden {
                Lifecycle::Background
            } else {
                Lifecycle::Foreground
            };
            sh.borrow_mut().engine.handle_lifecycle(lc, now);
        }
        "pagehide" => {
            let mut i = sh.borrow_mut();
            i.hidden = true;
            i.engine.handle_lifecycle(Lifecycle::Background, now);
            drop(i);
            send_volatile(sh);
        }
        "pageshow" => {
            // Back from the back/forward cache (a first load has not installed us yet).
            let mut i = sh.borrow_mut();
            i.hidden = false;
            i.engine.handle_lifecycle(Lifecycle::Foreground, now);
        }
        "message" => sh.borrow_mut().resync = true,
        _ => {}
    }
    kick(sh);
}

/// On page hide, what this page tracked and has not committed yet goes out at once in
/// keepalive requests within the budget (a beacon where fetch refuses), since the page may
/// be gone before the insert completes. If the insert does complete, the next page sends
/// them again with the same messageIds, which collectors deduplicate; what was committed
/// before stays for the next page alone (see `Inner::volatile`).
fn send_volatile(sh: &Shared) {
    let (events, url, beacon_url, auth, write_key, max) = {
        let i = sh.borrow();
        if i.volatile.is_empty() || !i.conditions.network.is_online() || i.engine.opted_out() {
            return;
        }
        let (to, beacon_to) = page_hide_targets(&i.engine.stats().endpoints, &i.targets);
        let Some(to) = to.and_then(|k| i.targets.get(k)) else {
            // Every endpoint is blocked: the events wait in IndexedDB.
            return;
        };
        (
            i.volatile.iter().cloned().collect::<Vec<_>>(),
            to.batch_url.clone(),
            beacon_to.map(|k| i.targets[k].batch_url.clone()),
            i.auth.clone(),
            i.write_key.clone(),
            i.policy.max_batch_bytes - trailhound_core::policy::BATCH_ENVELOPE_BYTES,
        )
    };
    let now = now_ms();
    let mut budget = trailhound_core::policy::KEEPALIVE_BUDGET_BYTES;
    let mut chunk: Vec<QueuedEvent> = Vec::new();
    let mut bytes = 0usize;
    let mut chunks = Vec::new();
    for ev in events {
        if !chunk.is_empty() && bytes + ev.json.len() > max {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += ev.json.len();
        chunk.push(ev);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    let mut sent = 0;
    for chunk in chunks {
        // Plain: compressing is asynchronous, and the page may be gone before it is done.
        let body = trailhound_core::wire::batch_json(&chunk, now);
        if body.len() > budget {
            break;
        }
        budget -= body.len();
        // Fire and forget: nobody will be there to hear the answer.
        let p = platform::fetch(&url, &auth, &body, true, &JsValue::NULL, false);
        sent += 1;
        let Some(beacon_url) = beacon_url.clone() else {
            continue;
        };
        let json = beacon_json(&chunk, &write_key, now);
        let fallback = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
            platform::beacon(&beacon_url, &json);
        });
        let _ = p.catch(&fallback);
        // The page is going away: the closure lives as long as it does.
        fallback.forget();
    }
    sh.borrow_mut().beacons += sent;
}

/// Where a page hide sends (indexes into the endpoints): its keepalive fetch goes to the
/// endpoint the engine would use now (the first not open), or, while every one is open,
/// to the first that is not blocked (a last try, as with one endpoint); none while every
/// one is blocked. A beacon, where the fetch fails, goes to the first endpoint that is
/// closed and has answered this page with a 2xx and no redirect since: a beacon cannot
/// refuse a redirect, and events and the write key must never follow one to wherever it
/// points. Either way the events stay queued until a fetch sees a 2xx.
fn page_hide_targets(
    endpoints: &[trailhound_core::breaker::EndpointStats],
    targets: &[Target],
) -> (Option<usize>, Option<usize>) {
    use trailhound_core::breaker::{BreakerState, OpenReason};
    let fetch_to = endpoints
        .iter()
        .position(|e| e.state != BreakerState::Open)
        .or_else(|| {
            endpoints
                .iter()
                .position(|e| e.reason != Some(OpenReason::Blocked))
        });
    let beacon_to = endpoints
        .iter()
        .zip(targets)
        .position(|(e, t)| e.state == BreakerState::Closed && t.ok);
    (fetch_to, beacon_to)
}

fn beacon_json(events: &[QueuedEvent], write_key: &str, now: i64) -> String {
    let raw = trailhound_core::wire::batch_json(events, now);
    let mut s = String::from_utf8(raw).unwrap_or_default();
    // `{"batch":[…],"sentAt":"…"}` + the write key, which a beacon cannot put in a header.
    s.pop();
    s.push_str(",\"writeKey\":");
    s.push_str(&serde_json::to_string(write_key).unwrap_or_default());
    s.push('}');
    s
}

fn install_listeners(sh: &Shared) {
    let g = platform::global();
    let window = get(&g, "window");
    let document = get(&g, "document");
    let conn = get(&get(&g, "navigator"), "connection");
    let mut keep = Vec::new();
    let mut listen = |target: &JsValue, kind: &'static str| {
        if target.is_undefined() {
            return;
        }
        let weak = Rc::downgrade(sh);
        let cb = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
            if let Some(sh) = weak.upgrade() {
                on_page_event(&sh, kind);
            }
        });
        platform::on(target, kind, cb.as_ref().unchecked_ref());
        keep.push(cb);
    };
    listen(&window, "online");
    listen(&window, "offline");
    listen(&window, "pagehide");
    listen(&window, "pageshow");
    listen(&document, "visibilitychange");
    listen(&conn, "change");
    let channel = sh.borrow().channel.clone();
    if let Some(ch) = channel {
        listen(&ch.into(), "message");
    }
    sh.borrow_mut().keep.extend(keep);
    watch_battery(sh);
}

/// The Battery Status API, where present (Chromium), feeds the device conditions.
fn watch_battery(sh: &Shared) {
    let nav = get(&platform::global(), "navigator");
    let Some(get_battery) = get(&nav, "getBattery").dyn_into::<Function>().ok() else {
        return;
    };
    let Ok(p) = get_battery.call0(&nav) else {
        return;
    };
    let Ok(p) = p.dyn_into::<js_sys::Promise>() else {
        return;
    };
    let weak = Rc::downgrade(sh);
    spawn_local(async move {
        let Ok(battery) = JsFuture::from(p).await else {
            return;
        };
        let read = {
            let battery = battery.clone();
            move |weak: &std::rc::Weak<RefCell<Inner>>| {
                let Some(sh) = weak.upgrade() else { return };
                {
                    let mut i = sh.borrow_mut();
                    i.conditions.battery_level = get(&battery, "level").as_f64().map(|v| v as f32);
                    i.conditions.charging = get(&battery, "charging").as_bool();
                }
                push_conditions(&sh);
                kick(&sh);
            }
        };
        read(&weak);
        let mut keep = Vec::new();
        for kind in ["levelchange", "chargingchange"] {
            let weak = weak.clone();
            let read = read.clone();
            let cb = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| read(&weak));
            platform::on(&battery, kind, cb.as_ref().unchecked_ref());
            keep.push(cb);
        }
        if let Some(sh) = weak.upgrade() {
            sh.borrow_mut().keep.extend(keep);
        }
    });
}

fn become_leader(sh: &Shared) {
    {
        let mut i = sh.borrow_mut();
        i.leader = true;
        i.resync = true;
    }
    push_conditions(sh);
    kick(sh);
}

#[wasm_bindgen]
impl Trailhound {
    /// Opens the queue (IndexedDB, or memory where unavailable) and starts delivery.
    ///
    /// Options: `writeKey`, `endpoint` (required); `fallbackEndpoints` (more endpoints, in
    /// order of preference, each checked like `endpoint`; at most `Policy::max_endpoints`
    /// in all); `blockCheckUrl` (what a fast failure is checked against before it counts
    /// as blocked; default the page's origin `/`); `dbName` (default `"trailhound"`);
    /// `storage: "memory"` to skip IndexedDB; `app: {name, version, build, namespace}`;
    /// `policy: {flushAt, promptDelayMs, commitIntervalMs, backoffBaseMs, backoffMaxMs,
    /// requestTimeoutMs, uploadTimeoutMs, blockedWithinMs, maxQueueEvents, maxQueueBytes,
    /// maxEventBytes, maxBatchEvents, maxUncommittedEvents, maxUncommittedBytes}`; `plan`
    /// (a tracking plan: its JSON text or the object) and `planMode` (`"off"`, `"report"`
    /// (default), `"enforce"`, `"enforce_strip"`); an invalid plan rejects, naming the place.
    pub async fn load(opts: JsValue) -> Result<Trailhound, JsError> {
        let write_key = opt_string(&get(&opts, "writeKey"), "writeKey")?
            .filter(|k| !k.is_empty())
            .ok_or_else(|| js_err("writeKey is required"))?;
        let mut policy = policy_from(&opts)?;
        let endpoints = endpoints_from(&opts, &policy)?;
        let block_check = block_check_from(&opts)?;
        let db_name =
            opt_string(&get(&opts, "dbName"), "dbName")?.unwrap_or_else(|| "trailhound".into());
        let plan = plan::gate_from(&opts, &mut policy).map_err(js_err)?;
        let app = get(&opts, "app");
        let app = if app.is_object() {
            let s = |k: &str| get(&app, k).as_string().unwrap_or_default();
            Some(AppInfo {
                name: s("name"),
                version: s("version"),
                build: s("build"),
                namespace: s("namespace"),
            })
        } else {
            None
        };
        let (queue, snapshot) = if get(&opts, "storage").as_string().as_deref() == Some("memory") {
            (
                Queue::memory("storage: \"memory\" was asked for".into()),
                StoreSnapshot::default(),
            )
        } else {
            Queue::open(&db_name).await
        };
        // What an earlier page owed this queue is deleted before anything else; the journal
        // keeps it until then.
        let (owed, journal) = match &queue {
            Queue::Idb(_) => {
                let owed = journal::take(&db_name, snapshot.max_seq);
                (owed.clone(), Some(journal::Journal::new(&db_name, owed)))
            }
            Queue::Memory { .. } => (Vec::new(), None),
        };
        let now = now_ms();
        let seed = u64::from_le_bytes(platform::random_bytes()[..8].try_into().unwrap_or_default());
        let mut engine = Engine::new(
            policy.clone(),
            seed,
            snapshot,
            Identity::new(platform::uuid_v4()),
            now,
        );
        engine.handle_owed_deletes(owed);
        let bases: Vec<String> = endpoints.iter().map(|e| e.base().to_owned()).collect();
        engine.set_endpoints(&bases);
        let mut conditions = DeviceConditions::default();
        observe_network(&mut conditions);
        // Until this tab holds the uploader lock, its engine sees no network.
        engine.handle_conditions(
            DeviceConditions {
                network: Network::Offline,
                ..conditions
            },
            now,
        );
        let tracker = Tracker::new(
            engine.identity().clone(),
            context_info(app),
            conditions.network,
        );
        queue.share_state(Privacy {
            identity: engine.identity().clone(),
            opted_out: engine.opted_out(),
        });
        let channel = if matches!(queue, Queue::Idb(_)) {
            web_sys::BroadcastChannel::new(&format!("trailhound:{db_name}")).ok()
        } else {
            None
        };
        let sh: Shared = Rc::new(RefCell::new(Inner {
            engine,
            queue: Rc::new(queue),
            journal,
            policy,
            tracker,
            plugins: Vec::new(),
            plan: plan.map(Rc::new),
            plan_dropped: 0,
            listeners: Vec::new(),
            targets: endpoints
                .iter()
                .map(|e| Target {
                    batch_url: e.batch_url(),
                    ok: false,
                })
                .collect(),
            block_check,
            auth: trailhound_core::wire::basic_auth(&write_key),
            write_key,
            driving: false,
            again: false,
            timer: None,
            wake: None,
            leader: false,
            release_lead: None,
            resync: false,
            in_flight: Vec::new(),
            channel,
            conditions,
            volatile: Default::default(),
            volatile_bytes: 0,
            invalid: 0,
            plugin_dropped: 0,
            opted_out_calls: 0,
            backpressure_calls: 0,
            beacons: 0,
            hidden: false,
            closed: false,
            keep: Vec::new(),
        }));
        let weak = Rc::downgrade(&sh);
        let wake = Closure::<dyn FnMut()>::new(move || {
            if let Some(sh) = weak.upgrade() {
                sh.borrow_mut().timer = None;
                kick(&sh);
            }
        });
        sh.borrow_mut().wake = Some(wake);
        install_listeners(&sh);
        if matches!(*sh.borrow().queue, Queue::Idb(_)) {
            let weak = Rc::downgrade(&sh);
            let granted = Closure::once_into_js(move || {
                if let Some(sh) = weak.upgrade() {
                    if !sh.borrow().closed {
                        become_leader(&sh);
                    }
                }
            });
            let release = platform::lead(
                &format!("trailhound-uploader:{db_name}"),
                granted.unchecked_ref(),
            );
            sh.borrow_mut().release_lead = Some(release);
        } else {
            // A queue in memory is this page's alone: it uploads it.
            become_leader(&sh);
        }
        kick(&sh);
        Ok(Trailhound { sh })
    }

    /// Records a user action; returns its messageId (`""` when opted out or a plugin dropped it).
    pub fn track(&self, event: String, properties: JsValue) -> Result<String, JsError> {
        let properties = self.check(to_properties(&properties, "properties"))?;
        self.record(Call::Track { event, properties }, None)
    }

    /// `track` with its messageId given: whether the event was queued (`track` returns
    /// `""` when it was not). `index.js` calls it with a UUID it makes: a string handed to
    /// the wasm is copied in, one the wasm returns is decoded by `TextDecoder`, which was a
    /// fifth of a paced call's time (`wasm/bench --profile`).
    #[wasm_bindgen(js_name = trackWithId)]
    pub fn track_with_id(
        &self,
        message_id: String,
        event: String,
        properties: JsValue,
    ) -> Result<bool, JsError> {
        let properties = self.check(to_properties(&properties, "properties"))?;
        self.record(Call::Track { event, properties }, Some(message_id))
            .map(|id| !id.is_empty())
    }

    /// Records who the user is; traits are merged into the stored ones and persisted.
    pub fn identify(&self, user_id: JsValue, traits: JsValue) -> Result<String, JsError> {
        // `identify({plan: "pro"})`: traits only.
        let (user_id, traits) = if user_id.is_object() && traits.is_undefined() {
            (JsValue::UNDEFINED, user_id)
        } else {
            (user_id, traits)
        };
        let user_id = self.check(opt_string(&user_id, "userId"))?;
        let traits = self.check(to_properties(&traits, "traits"))?;
        self.record(Call::Identify { user_id, traits }, None)
    }

    /// Records a page view, filling `url`, `path`, `referrer`, `title` and `search` from the
    /// page unless given.
    pub fn page(&self, name: JsValue, properties: JsValue) -> Result<String, JsError> {
        let (name, properties) = if name.is_object() && properties.is_undefined() {
            (JsValue::UNDEFINED, name)
        } else {
            (name, properties)
        };
        let name = self.check(opt_string(&name, "name"))?.unwrap_or_default();
        let mut properties = self.check(to_properties(&properties, "properties"))?;
        let g = platform::global();
        let loc = get(&g, "location");
        let doc = get(&g, "document");
        for (key, v) in [
            ("url", get(&loc, "href")),
            ("path", get(&loc, "pathname")),
            ("search", get(&loc, "search")),
            ("referrer", get(&doc, "referrer")),
            ("title", get(&doc, "title")),
        ] {
            if let Some(s) = v.as_string() {
                properties.entry(key).or_insert(Value::String(s));
            }
        }
        self.record(Call::Page { name, properties }, None)
    }

    /// Records that a screen was shown.
    pub fn screen(&self, name: String, properties: JsValue) -> Result<String, JsError> {
        let properties = self.check(to_properties(&properties, "properties"))?;
        self.record(Call::Screen { name, properties }, None)
    }

    /// Records that the user belongs to a group.
    pub fn group(&self, group_id: String, traits: JsValue) -> Result<String, JsError> {
        let traits = self.check(to_properties(&traits, "traits"))?;
        self.record(Call::Group { group_id, traits }, None)
    }

    /// Links the current user (or anonymous id) to a new user id.
    pub fn alias(&self, user_id: String) -> Result<String, JsError> {
        self.record(Call::Alias { user_id }, None)
    }

    /// Forgets the user: new anonymous id, no user id or traits, a new session.
    pub fn reset(&self) -> Result<(), JsError> {
        self.live()?;
        {
            let mut i = self.sh.borrow_mut();
            let id = i.tracker.reset(Identity::new(platform::uuid_v4())).clone();
            i.engine.handle_identity(id);
        }
        kick(&self.sh);
        Ok(())
    }

    /// Stops collection and purges the queue; persisted.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) -> Result<(), JsError> {
        self.live()?;
        {
            let mut i = self.sh.borrow_mut();
            i.volatile.clear();
            i.volatile_bytes = 0;
            i.engine.handle_opt_out(true, now_ms());
        }
        kick(&self.sh);
        Ok(())
    }

    /// Resumes collection; persisted.
    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) -> Result<(), JsError> {
        self.live()?;
        self.sh.borrow_mut().engine.handle_opt_out(false, now_ms());
        kick(&self.sh);
        Ok(())
    }

    /// Whether the user opted out.
    #[wasm_bindgen(js_name = isOptedOut)]
    pub fn is_opted_out(&self) -> bool {
        self.sh.borrow().engine.opted_out()
    }

    /// The anonymous id.
    #[wasm_bindgen(getter, js_name = anonymousId)]
    pub fn anonymous_id(&self) -> String {
        self.sh.borrow().tracker.identity().anonymous_id.clone()
    }

    /// The user id, if known.
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> Option<String> {
        self.sh.borrow().tracker.identity().user_id.clone()
    }

    /// Sends everything queued now; resolves with the stats when the flush is over
    /// (delivered, or stopped by the network, backoff or an error), or after `timeoutMs`
    /// (default: the request timeout plus 5 s).
    pub async fn flush(&self, timeout_ms: Option<f64>) -> Result<JsValue, JsError> {
        self.live()?;
        let timeout = {
            let mut i = self.sh.borrow_mut();
            i.engine.handle_flush(now_ms());
            timeout_ms.unwrap_or(i.policy.request_timeout.as_millis() as f64 + 5_000.0)
        };
        kick(&self.sh);
        let deadline = now_ms() + timeout as i64;
        while now_ms() < deadline {
            platform::sleep(10.0).await;
            let i = self.sh.borrow();
            if !i.driving && !i.engine.is_flushing() && i.engine.stats().uncommitted_events == 0 {
                break;
            }
        }
        Ok(self.stats())
    }

    /// Counters: accepted, queued, delivered, dropped by reason, retry state, network,
    /// each endpoint's breaker (`endpoints`: `url`, `state`, `reason` (`"blocked"`, …),
    /// `status`, `requests`, `failures`, `last_error`, `retry_at_ms`),
    /// tracking-plan violations by event and rule (`plan_violations`),
    /// plus `storage` (`"indexeddb"` or `"memory"`), `storageFallbackReason`, `leader`
    /// (this tab uploads), `invalidCalls`, `pluginDropped`, `beacons`.
    pub fn stats(&self) -> JsValue {
        let i = self.sh.borrow();
        let mut s = i.engine.stats();
        s.network = i.conditions.network;
        if let Some(gate) = &i.plan {
            s.plan_violations = gate.counts();
            s.dropped.plan_violation = i.plan_dropped;
        }
        let reasons: Vec<Option<OpenReason>> = s.endpoints.iter().map(|e| e.reason).collect();
        let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            if let Some(Value::Array(list)) = m.get_mut("endpoints") {
                for (e, reason) in list.iter_mut().zip(reasons) {
                    if let Value::Object(e) = e {
                        let (reason, status) = reason_parts(reason);
                        e.insert("reason".into(), reason.into());
                        e.insert("status".into(), status.into());
                    }
                }
            }
            m.insert("storage".into(), i.queue.kind().into());
            m.insert(
                "storageFallbackReason".into(),
                i.queue
                    .fallback_reason()
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            );
            m.insert("leader".into(), i.leader.into());
            m.insert("invalidCalls".into(), i.invalid.into());
            m.insert("pluginDropped".into(), i.plugin_dropped.into());
            m.insert("optedOutCalls".into(), i.opted_out_calls.into());
            m.insert("backpressureCalls".into(), i.backpressure_calls.into());
            m.insert("beacons".into(), i.beacons.into());
        }
        to_js(&v)
    }

    /// Listens to notifications: `"delivered"`, `"dropped"`, `"upload_failed"`,
    /// `"paused"`, `"plan_violation"`, `"endpoint_opened"` (an endpoint's breaker opened:
    /// `url`, `reason` (`"blocked"`, …), `status`, `retry_in_ms`), `"endpoint_closed"`
    /// (`url`), `"store_error"`, or `"*"` for all.
    pub fn on(&self, kind: String, listener: Function) -> Result<(), JsError> {
        const KINDS: [&str; 9] = [
            "delivered",
            "dropped",
            "upload_failed",
            "paused",
            "plan_violation",
            "endpoint_opened",
            "endpoint_closed",
            "store_error",
            "*",
        ];
        if !KINDS.contains(&kind.as_str()) {
            return Err(js_err(format!(
                "unknown notification `{kind}`; one of {KINDS:?}"
            )));
        }
        self.sh.borrow_mut().listeners.push((kind, listener));
        Ok(())
    }

    /// Adds a plugin: `fn(message) => message | null`. It sees every event (as the Segment
    /// JSON), may change it, or drop it by returning `null`/`undefined`.
    #[wasm_bindgen(js_name = addPlugin)]
    pub fn add_plugin(&self, plugin: Function) {
        self.sh.borrow_mut().plugins.push(plugin);
    }

    /// Every queued event, one JSON per line, as sent: what `trailhound queue import` reads.
    #[wasm_bindgen(js_name = exportQueue)]
    pub async fn export_queue(&self) -> Result<String, JsError> {
        self.live()?;
        self.sh.borrow_mut().engine.handle_commit_now(now_ms());
        kick(&self.sh);
        // Wait for the commit (a drive in progress finishes it).
        for _ in 0..500 {
            platform::sleep(5.0).await;
            let i = self.sh.borrow();
            if !i.driving && i.engine.stats().uncommitted_events == 0 {
                break;
            }
        }
        let queue = self.sh.borrow().queue.clone();
        let loaded = queue
            .execute(&StoreOp::Load {
                max_events: usize::MAX,
                max_bytes: usize::MAX,
            })
            .await
            .map_err(js_err)?;
        let mut out = String::new();
        if let trailhound_core::store::StoreOutcome::Loaded(evs) = loaded {
            for ev in evs {
                out.push_str(&ev.json.wire());
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Stops timers and listeners' effects, gives up the uploader lock and closes the
    /// database. Queued events stay for the next load.
    pub async fn close(&self) -> Result<(), JsError> {
        if self.sh.borrow().closed {
            return Ok(());
        }
        self.sh.borrow_mut().engine.handle_commit_now(now_ms());
        kick(&self.sh);
        for _ in 0..500 {
            if !self.sh.borrow().driving {
                break;
            }
            platform::sleep(5.0).await;
        }
        {
            let mut i = self.sh.borrow_mut();
            if !i.driving && i.engine.stats().uncommitted_events > 0 {
                // Storage kept failing: these events will never be committed. Counted and
                // reported as dropped (store_failed), never lost silently.
                i.engine.handle_give_up(now_ms());
            }
        }
        notify(&self.sh);
        let mut i = self.sh.borrow_mut();
        i.closed = true;
        if let Some((_, h)) = i.timer.take() {
            platform::clear_timeout(&h);
        }
        if let Some(release) = i.release_lead.take() {
            let _ = release.call0(&JsValue::NULL);
        }
        if let Some(ch) = i.channel.take() {
            ch.close();
        }
        i.queue.close();
        Ok(())
    }
}

impl Inner {
    /// Whether the engine has nothing to do before the timer already set (a later
    /// deadline than now): then nothing needs the driver until it fires.
    fn timed(&self, now: i64) -> bool {
        let armed = self.timer.as_ref().map(|t| t.0);
        self.engine.waits_for_timeout()
            && armed.is_some_and(|at| at > now)
            && self.engine.poll_timeout() == armed
    }

    /// Keeps the deletes the queue is owed where they survive the page (see `journal`):
    /// after every answer and every store operation.
    fn keep_owed(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.keep(self.engine.deletes_owed());
        }
    }

    fn remember_volatile(&mut self, ev: QueuedEvent) {
        self.volatile_bytes += ev.json.len();
        self.volatile.push_back(ev);
        // Older ones are in IndexedDB and go out on the next visit.
        while self.volatile_bytes > trailhound_core::policy::KEEPALIVE_BUDGET_BYTES {
            match self.volatile.pop_front() {
                Some(old) => self.volatile_bytes -= old.json.len(),
                None => break,
            }
        }
    }

    fn forget_volatile(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.volatile
            .retain(|e| !ids.contains(e.message_id.as_str()));
        self.volatile_bytes = self.volatile.iter().map(|e| e.json.len()).sum();
    }
}

impl Trailhound {
    fn live(&self) -> Result<(), JsError> {
        if self.sh.borrow().closed {
            Err(js_err("this Trailhound client was closed"))
        } else {
            Ok(())
        }
    }

    fn check<T>(&self, r: Result<T, JsError>) -> Result<T, JsError> {
        if r.is_err() {
            self.sh.borrow_mut().invalid += 1;
        }
        r
    }

    /// The common path of every call: stamp, plugins, seal, hand to the engine.
    /// Records a call with `message_id`, or a new one.
    fn record(&self, call: Call, message_id: Option<String>) -> Result<String, JsError> {
        self.live()?;
        let now = now_ms();
        let (msg, plugins) = {
            let mut i = self.sh.borrow_mut();
            if i.engine.opted_out() {
                i.opted_out_calls += 1;
                return Ok(String::new());
            }
            if !i.engine.accepting() {
                // Storage is failing or far behind: memory must not grow without bound.
                i.backpressure_calls += 1;
                return Err(js_err(
                    "too many events are waiting for storage (IndexedDB failing or behind); \
                     this one was not accepted",
                ));
            }
            let i = &mut *i;
            let msg = i.tracker.stamp(
                call,
                message_id.unwrap_or_else(|| {
                    // Without the formatting machinery: a fifth of the id's cost.
                    platform::uuid_v4()
                        .hyphenated()
                        .encode_lower(&mut [0; 36])
                        .to_owned()
                }),
                now,
                &i.policy,
            );
            (msg, i.plugins.clone())
        };
        let mut msg = self.check(msg.map_err(js_err))?;
        // Plugins run outside any borrow: they may call back into the client.
        for plugin in &plugins {
            let out = plugin.call1(&JsValue::NULL, &to_js(&msg)).map_err(|e| {
                js_err(format!(
                    "a plugin threw; the event was not queued: {}",
                    platform::error_text(&e)
                ))
            });
            let out = self.check(out)?;
            if out.is_undefined() || out.is_null() {
                let mut i = self.sh.borrow_mut();
                i.plugin_dropped += 1;
                drop(i);
                self.emit(&Notification::Dropped {
                    reason: DropReason::Plugin,
                    count: 1,
                    message_ids: vec![msg.message_id.clone()],
                });
                return Ok(String::new());
            }
            let json = self.check(
                platform::stringify(&out, "the plugin's message")
                    .map_err(|e| js_err(platform::error_text(&e))),
            )?;
            msg = self.check(
                serde_json::from_str::<Message>(&json)
                    .map_err(|e| js_err(format!("a plugin returned an invalid message: {e}"))),
            )?;
        }
        // The plan checks what is actually sent: after the plugins, before sealing.
        let Some(told) = self.apply_plan(&mut msg) else {
            return Ok(String::new());
        };
        let identity_change = IdentityChange::of(&msg);
        let policy = self.sh.borrow().policy.clone();
        let event = self.check(message::seal(msg, now, &policy).map_err(js_err))?;
        // Told and counted only once accepted: a call refused here and retried is one event.
        if let Some((gate, verdict)) = told {
            for notice in gate.settle(verdict, &event.message_id) {
                self.emit(&notice);
            }
        }
        let id = event.message_id.clone();
        let timed = {
            let mut i = self.sh.borrow_mut();
            i.remember_volatile(event.clone());
            i.engine.handle_event(event, now);
            if let Some(change) = identity_change {
                let identity = i.tracker.apply(change).clone();
                i.engine.handle_identity(identity);
            }
            i.timed(now)
        };
        // Within a commit interval an event only joins the commit the timer will run: no
        // task for it (queueMicrotask was 6 % of a paced call's time, wasm/bench).
        if !timed {
            kick(&self.sh);
        }
        Ok(id)
    }

    /// Applies the tracking plan, if any, to `msg`. `None` if the plan drops it (counted
    /// in `dropped.plan_violation` and told now, like a plugin's drop: the engine never
    /// sees it); otherwise the verdict to settle once the event is accepted.
    fn apply_plan(&self, msg: &mut Message) -> Option<Option<(Rc<plan::Gate>, Verdict)>> {
        let Some(gate) = self.sh.borrow().plan.clone() else {
            return Some(None);
        };
        let verdict = gate.judge(msg);
        match verdict {
            Verdict::Pass => Some(None),
            Verdict::Dropped(_) => {
                self.sh.borrow_mut().plan_dropped += 1;
                for notice in gate.settle(verdict, &msg.message_id) {
                    self.emit(&notice);
                }
                None
            }
            _ => Some(Some((gate, verdict))),
        }
    }

    fn emit(&self, n: &Notification) {
        let listeners = self.sh.borrow().listeners.clone();
        let v = notification_js(n);
        let kind = get(&v, "kind").as_string().unwrap_or_default();
        for (k, f) in &listeners {
            if *k == kind || k == "*" {
                let _ = f.call1(&JsValue::NULL, &v);
            }
        }
    }
}
