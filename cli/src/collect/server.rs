//! The collector's routes: access rules (Host, Origin, peer), CORS for the tracking
//! endpoints only, auth, fault injection (and `/api/faults`, which changes it), the
//! page's assets and the log lines. The HTTP itself is in `http`.

use std::collections::VecDeque;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};
use trailhound_core::plan::Plan;

use super::http::{Handler, Request, Response};
use super::store::{Outcome, Query, Store};
use super::validate::{self, Refusal};
use super::violations::{self, PlanInfo, PlanViolation};
use super::Faults;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");

/// `/api/events` answers at most this many events unless asked for more, so that a long
/// session does not send megabytes to every poll; `total` tells how many matched.
const DEFAULT_EVENTS_LIMIT: usize = 1000;

/// How long a browser may cache an answered preflight: ten minutes, so that a changed
/// `--allow-origin` is seen soon after a restart.
const PREFLIGHT_MAX_AGE: &str = "600";

/// What the server threads share with the [`super::Collector`] handle.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    pub rng: Mutex<Jitter>,
    pub write_key: Option<String>,
    pub quiet: bool,
    pub access: Access,
    /// Arrival times of the newest tracking requests, at most `max_request_times`.
    pub request_times: Mutex<VecDeque<SystemTime>>,
    pub max_request_times: usize,
    pub stopped: (Mutex<bool>, Condvar),
    /// `--plan`: every event is checked against it.
    pub plan: Option<Arc<Plan>>,
}

/// Who may reach the collector; see the module documentation of `collect`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Access {
    /// `--allow-host`: more names for the `Host` header, lowercase, without port.
    pub hosts: Vec<String>,
    /// `--allow-origin`: more page origins that may send events, lowercase; `*` is any.
    pub origins: Vec<String>,
    /// `--allow-remote-read`: the page and `/api/*` also for clients not on this machine.
    pub remote_read: bool,
}

/// Locks, going on after a panic in another server thread: the data behind each lock is
/// updated in one step, so it is never left half-written.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The seeded generator for `--fail-rate` (reproducible runs): the engine's jitter source.
pub(crate) use trailhound::core::retry::Jitter;

/// An answer being built.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn json(status: u16, v: &Value) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    fn error(status: u16, msg: impl Into<String>) -> Answer {
        Answer::json(status, &json!({"success": false, "error": msg.into()}))
    }

    fn text(content_type: &'static str, body: &str) -> Answer {
        Answer {
            status: 200,
            content_type,
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }

    fn into_response(self) -> Response {
        let mut headers = vec![
            ("Content-Type", self.content_type.to_owned()),
            ("Cache-Control", "no-store".to_owned()),
            // The page and the API are never framed or sniffed by another site.
            ("X-Content-Type-Options", "nosniff".to_owned()),
            ("X-Frame-Options", "DENY".to_owned()),
        ];
        headers.extend(self.headers);
        Response {
            status: self.status,
            headers,
            body: self.body,
        }
    }
}

/// The collector's [`Handler`]: [`reset_after_head`] and [`handle`].
pub(crate) struct Routes(pub Arc<Shared>);

impl Handler for Routes {
    fn reset_after_head(&self, req: &Request) -> bool {
        reset_after_head(req, &self.0)
    }

    fn answer(&self, req: &Request) -> Response {
        handle(req, &self.0)
    }
}

/// Whether to reset the connection rather than answer, decided on the request's head:
/// a tracking request that [`handle`] would pass to [`ingest`] while the fault is
/// [`Faults::NO_ANSWER`]. It is counted and logged as a failed request, after the
/// injected latency.
pub(crate) fn reset_after_head(req: &Request, shared: &Shared) -> bool {
    let path = req.target.split_once('?').map_or(&*req.target, |(p, _)| p);
    let faults = lock(&shared.faults).clone();
    if faults.status != Some(Faults::NO_ANSWER)
        || req.method != "POST"
        || ingest_type(path).is_none()
        || check_host(req, &shared.access).is_err()
        || check_origin(req, &shared.access).is_err()
    {
        return false;
    }
    note_arrival(shared);
    if faults.latency_ms > 0 {
        std::thread::sleep(Duration::from_millis(faults.latency_ms));
    }
    record(
        shared,
        path,
        Faults::NO_ANSWER,
        Vec::new(),
        "no answer, connection reset (injected fault)",
    );
    true
}

/// Answers one request, from a connection's thread.
pub(crate) fn handle(req: &Request, shared: &Shared) -> Response {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let ingest_path = ingest_type(path);
    if let Err(a) = check_host(req, &shared.access) {
        log(
            shared,
            &format!("{} {path} 403: {}", req.method, host_of(req)),
        );
        return a.into_response();
    }
    let answer = match ingest_path {
        Some(path_type) => match check_origin(req, &shared.access) {
            Err(a) => {
                log(
                    shared,
                    &format!(
                        "{} {path} 403: Origin {}",
                        req.method,
                        req.header("origin").unwrap_or("")
                    ),
                );
                a
            }
            Ok(origin) => {
                let mut a = match req.method.as_str() {
                    "OPTIONS" => preflight(),
                    "POST" => ingest(req, path, path_type, shared),
                    _ => Answer::error(405, "use POST"),
                };
                if let Some(origin) = origin {
                    a.headers.push(("Access-Control-Allow-Origin", origin));
                    // sendBeacon with a non-safelisted type, and fetch with
                    // `credentials: "include"`, need these two to read the answer.
                    a.headers
                        .push(("Access-Control-Allow-Credentials", "true".into()));
                    a.headers.push(("Vary", "Origin".into()));
                }
                a
            }
        },
        None => read_route(req, path, query, shared),
    };
    answer.into_response()
}

/// The page, its assets and the read API: same-origin only (no CORS headers at all),
/// and for clients on this machine unless `--allow-remote-read`.
fn read_route(req: &Request, path: &str, query: &str, shared: &Shared) -> Answer {
    let peer = canonical(req.peer.ip());
    if !peer.is_loopback() && !shared.access.remote_read {
        return Answer::error(
            403,
            format!(
                "the page and /api are only for this machine ({peer} is not); \
                 start the collector with --allow-remote-read to show them on the network"
            ),
        );
    }
    match (req.method.as_str(), path) {
        ("GET", "/" | "/index.html") => Answer::text("text/html; charset=utf-8", INDEX_HTML),
        ("GET", "/assets/app.js") => Answer::text("text/javascript; charset=utf-8", APP_JS),
        ("GET", "/assets/style.css") => Answer::text("text/css; charset=utf-8", STYLE_CSS),
        ("GET", "/api/events") => api_events(query, shared),
        ("GET", "/api/violations") => api_violations(query, shared),
        ("GET", "/api/stats") => {
            let stats = lock(&shared.store).stats();
            Answer::json(200, &serde_json::to_value(stats).unwrap_or_default())
        }
        ("GET", "/api/faults") => faults_answer(shared),
        ("POST", "/api/faults") => set_faults(req, shared),
        (_, "/api/faults") => {
            let mut a = Answer::error(405, "use GET, or POST to change the faults");
            a.headers.push(("Allow", "GET, POST".into()));
            a
        }
        (
            _,
            "/" | "/index.html" | "/assets/app.js" | "/assets/style.css" | "/api/events"
            | "/api/stats" | "/api/violations",
        ) => {
            let mut a = Answer::error(405, "use GET (from the collector's own page)");
            a.headers.push(("Allow", "GET".into()));
            a
        }
        _ => Answer::error(404, format!("no such endpoint: {path}")),
    }
}

/// A preflight from an allowed origin: what the SDK's `fetch` sends.
fn preflight() -> Answer {
    Answer {
        status: 204,
        content_type: "text/plain",
        body: Vec::new(),
        headers: vec![
            (
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Content-Encoding".into(),
            ),
            ("Access-Control-Allow-Methods", "POST, OPTIONS".into()),
            ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE.into()),
        ],
    }
}

/// `Some(None)` for `/v1/batch`, `Some(Some(type))` for a single-event endpoint.
fn ingest_type(path: &str) -> Option<Option<&'static str>> {
    let rest = path.strip_prefix("/v1/")?.trim_end_matches('/');
    if rest == "batch" {
        return Some(None);
    }
    validate::TYPES
        .iter()
        .find(|t| **t == rest)
        .map(|t| Some(*t))
}

/// An IPv4 address in IPv6 clothes (`::ffff:127.0.0.1`, from a `[::]` listener) is the
/// IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn host_of(req: &Request) -> String {
    req.header("host").unwrap_or("").to_owned()
}

/// `example.com:80` → `example.com`, `[::1]:80` → `::1`; lowercase.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or_default()
    } else {
        host
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Names that only ever mean this machine: DNS rebinding cannot use them, because the
/// attacker's page would need a name of theirs that resolves here.
fn is_local_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// The `Host` header names this machine directly: `localhost`, an IP address (a
/// rebinding page's requests carry the attacker's DNS name, never an address) or a name
/// given with `--allow-host`. A request without `Host` (HTTP/1.0 tools) passes: every
/// browser sends one.
fn check_host(req: &Request, access: &Access) -> Result<(), Answer> {
    let Some(host) = req.header("host") else {
        return Ok(());
    };
    let name = host_name(host);
    if is_local_name(&name) || name.parse::<IpAddr>().is_ok() || access.hosts.contains(&name) {
        return Ok(());
    }
    Err(Answer::error(
        403,
        format!(
            "Host \"{host}\" is not this machine's address (a DNS rebinding attempt?); \
             use an IP address or localhost, or start the collector with --allow-host {name}"
        ),
    ))
}

/// An origin on this machine: `http(s)://localhost`, `*.localhost`, `127.x.x.x` or
/// `[::1]`, any port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if rest.contains('/') || rest.contains('@') {
        return false;
    }
    let name = host_name(rest);
    is_local_name(&name)
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| canonical(ip).is_loopback())
}

/// Whether a page of this `Origin` may send events. `Ok(Some(origin))`: answer with CORS
/// headers for it; `Ok(None)`: not a cross-origin browser request (no `Origin`).
fn check_origin(req: &Request, access: &Access) -> Result<Option<String>, Answer> {
    let Some(origin) = req.header("origin") else {
        return Ok(None);
    };
    let lower = origin.trim().to_ascii_lowercase();
    if is_loopback_origin(&lower) || access.origins.iter().any(|o| o == "*" || *o == lower) {
        return Ok(Some(origin.trim().to_owned()));
    }
    Err(Answer::error(
        403,
        format!(
            "pages of {origin} may not send events here; only pages on this machine may, \
             unless the collector is started with --allow-origin {origin}"
        ),
    ))
}

/// The faults now in effect, as `POST /api/faults` takes them.
fn faults_answer(shared: &Shared) -> Answer {
    let faults = lock(&shared.faults).clone();
    Answer::json(200, &serde_json::to_value(faults).unwrap_or_default())
}

/// `POST /api/faults`: replaces every fault with the JSON body's (a field left out is no
/// fault). The JSON content type keeps other sites' pages out: they cannot send it
/// without a preflight, which `/api` never answers. A refused body changes nothing.
fn set_faults(req: &Request, shared: &Shared) -> Answer {
    if let Some(origin) = req.header("origin") {
        let own = format!("http://{}", host_of(req));
        if !origin.trim().eq_ignore_ascii_case(&own) {
            return Answer::error(
                403,
                format!("only the collector's own page may change the faults, not {origin}"),
            );
        }
    }
    let json_type = req.header("content-type").is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_type {
        return Answer::error(
            415,
            "send the faults as JSON, with Content-Type: application/json",
        );
    }
    let Ok(body) = &req.body else {
        return Answer::error(413, "the body is too large for a few faults");
    };
    // Through a Value: serde would take a struct from an array too.
    let parsed = serde_json::from_slice::<Value>(body).and_then(|v| match v {
        Value::Object(_) => serde_json::from_value::<Faults>(v),
        other => Err(serde::de::Error::custom(format!(
            "found {}",
            validate::json_kind(&other)
        ))),
    });
    let faults = match parsed {
        Ok(f) => f,
        Err(e) => {
            return Answer::error(
                400,
                format!(
                    "expected {{\"status\": 0|100..599|null, \"fail_rate\": 0..1, \
                     \"retry_after\": S|null, \"latency_ms\": MS}}: {e}"
                ),
            )
        }
    };
    if let Err(e) = faults.check() {
        return Answer::error(400, e);
    }
    let answer = Answer::json(200, &serde_json::to_value(&faults).unwrap_or_default());
    log(
        shared,
        &format!(
            "POST /api/faults 200: now {}",
            String::from_utf8_lossy(&answer.body)
        ),
    );
    *lock(&shared.faults) = faults;
    answer
}

/// Keeps a tracking request's arrival time for [`super::Collector::request_times`].
fn note_arrival(shared: &Shared) {
    let mut times = lock(&shared.request_times);
    times.push_back(SystemTime::now());
    while times.len() > shared.max_request_times {
        times.pop_front();
    }
}

/// A tracking request: maybe fault, decode, authenticate, check, store.
fn ingest(req: &Request, path: &str, path_type: Option<&'static str>, shared: &Shared) -> Answer {
    note_arrival(shared);
    let received_at = Utc::now();
    let faults = lock(&shared.faults).clone();
    if faults.latency_ms > 0 {
        std::thread::sleep(Duration::from_millis(faults.latency_ms));
    }

    // No answer is decided on the head (`reset_after_head`): a request whose head came
    // before the switch to it is answered as if the switch came after it.
    let injected = match faults.status.filter(|&c| c != Faults::NO_ANSWER) {
        Some(code) => Some(code),
        None if faults.fail_rate > 0.0 && lock(&shared.rng).next_f64() < faults.fail_rate => {
            Some(503)
        }
        None => None,
    };
    // A 2xx --status is not a failure: the events are stored and answered with it.
    if let Some(code) = injected.filter(|c| !(200..300).contains(c)) {
        let mut a = Answer::error(code, format!("injected fault: {code}"));
        if let Some(s) = faults.retry_after {
            a.headers.push(("Retry-After", s.to_string()));
        }
        record(shared, path, code, Vec::new(), "injected fault");
        return a;
    }

    match decode(req, path_type, shared, received_at) {
        Err(r) => {
            record(shared, path, r.status, Vec::new(), &r.message);
            Answer::error(r.status, r.message)
        }
        Ok(events) => {
            let status = injected.unwrap_or(200);
            // Checked before the store's lock is taken: the page's reads never wait
            // for the validator.
            let events: Vec<_> = events
                .into_iter()
                .map(|(checked, json)| {
                    let v = match &shared.plan {
                        Some(plan) => violations::check(plan, &checked, &json),
                        None => Vec::new(),
                    };
                    (checked, json, v)
                })
                .collect();
            let invalid: Vec<String> = events
                .iter()
                .filter(|(c, _, _)| !c.errors.is_empty())
                .map(|(c, _, _)| format!("{}: {}", describe(c), c.errors.join("; ")))
                .collect();
            let violating: Vec<String> = events
                .iter()
                .filter(|(_, _, v)| !v.is_empty())
                .map(|(c, _, v)| format!("{}: {}", describe(c), describe_violations(v)))
                .collect();
            match record(shared, path, status, events, "") {
                Some(o) => {
                    log_invalid(shared, &invalid, o);
                    log_violating(shared, &violating, o);
                    Answer::json(status, &json!({"success": true}))
                }
                None => Answer::error(500, "cannot write to the database (see the log)"),
            }
        }
    }
}

/// The write key of a request: Basic auth user, else the body's `writeKey`.
fn header_key(req: &Request) -> Result<Option<String>, Refusal> {
    let Some(value) = req.header("authorization") else {
        return Ok(None);
    };
    let bad = || Refusal::new(401, "malformed Authorization header: expected Basic auth");
    let (scheme, creds) = value.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let user = decoded.split_once(':').map_or(&decoded[..], |(u, _)| u);
    Ok(Some(user.to_owned()).filter(|u| !u.is_empty()))
}

fn check_key(key: Option<&str>, shared: &Shared) -> Result<(), Refusal> {
    match (key, &shared.write_key) {
        (None, _) => Err(Refusal::new(
            401,
            "no write key: send it as the Basic auth user or as `writeKey` in the body",
        )),
        (Some(k), Some(want)) if k != want => Err(Refusal::new(401, "unknown write key")),
        _ => Ok(()),
    }
}

/// Authenticates and decodes the events of a request that was not faulted.
fn decode(
    req: &Request,
    path_type: Option<&'static str>,
    shared: &Shared,
    received_at: chrono::DateTime<Utc>,
) -> Result<Vec<(validate::Checked, Value)>, Refusal> {
    let from_header = header_key(req)?;
    // A wrong key in the header is refused before the body is even decoded.
    if from_header.is_some() {
        check_key(from_header.as_deref(), shared)?;
    }
    let raw = req.body.as_ref().map_err(|_| {
        Refusal::new(
            413,
            format!(
                "the request is over {} KB (Segment's limit per request)",
                validate::limits::MAX_REQUEST_BYTES / 1024
            ),
        )
    })?;
    let decoded =
        validate::decode_request(raw, req.header("content-encoding"), path_type, received_at)?;
    if from_header.is_none() {
        check_key(decoded.write_key.as_deref(), shared)?;
    }
    Ok(decoded.events)
}

/// Stores a request's outcome and logs it. `None` if the database write failed (logged).
fn record(
    shared: &Shared,
    path: &str,
    status: u16,
    events: Vec<(validate::Checked, Value, Vec<PlanViolation>)>,
    why: &str,
) -> Option<Outcome> {
    let n = events.len();
    let result = lock(&shared.store).record_checked(status, events);
    let line = match &result {
        Ok(o) if (200..300).contains(&status) => format!(
            "POST {path} {status}: {n} event{} ({} accepted, {} invalid, {} duplicate{}{})",
            if n == 1 { "" } else { "s" },
            o.accepted,
            o.invalid,
            o.duplicates,
            if o.duplicates == 1 { "" } else { "s" },
            if shared.plan.is_some() {
                format!(", {} breaking the plan", o.violating)
            } else {
                String::new()
            },
        ),
        // Three digits, as curl writes them: 000 is no answer.
        Ok(_) => format!("POST {path} {status:03}: {why}"),
        Err(e) => format!("POST {path}: cannot store the events: {e:#}"),
    };
    if result.is_err() {
        eprintln!("trailhound collect: {line}");
    }
    log(shared, &line);
    result.ok()
}

/// Invalid events are spelled out: they are what a developer runs the collector to see.
fn log_invalid(shared: &Shared, invalid: &[String], outcome: Outcome) {
    if outcome.invalid == 0 {
        return;
    }
    for line in invalid.iter().take(5) {
        log(shared, &format!("  invalid {line}"));
    }
    if invalid.len() > 5 {
        log(shared, &format!("  … and {} more", invalid.len() - 5));
    }
}

/// `track m-12` (the type and messageId) for the log.
fn describe(c: &validate::Checked) -> String {
    format!(
        "{} {}",
        c.kind.as_deref().unwrap_or("?"),
        c.message_id.as_deref().unwrap_or("(no messageId)")
    )
}

/// `type /properties/price (expected integer, found string "12"); …`
fn describe_violations(v: &[PlanViolation]) -> String {
    v.iter()
        .map(|v| {
            format!(
                "{} {} (expected {}, found {})",
                v.rule, v.pointer, v.expected, v.found
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Events breaking the plan are spelled out too, after the invalid ones.
fn log_violating(shared: &Shared, violating: &[String], outcome: Outcome) {
    if outcome.violating == 0 {
        return;
    }
    for line in violating.iter().take(5) {
        log(shared, &format!("  plan: {line}"));
    }
    if violating.len() > 5 {
        log(shared, &format!("  … and {} more", violating.len() - 5));
    }
}

fn log(shared: &Shared, line: &str) {
    if shared.quiet {
        return;
    }
    // Not println!: a closed stdout (piped into `head`) must not stop the collector.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{} {line}", Utc::now().format("%H:%M:%S"));
    let _ = out.flush();
}

fn api_events(query: &str, shared: &Shared) -> Answer {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(msg) => return Answer::error(400, msg),
    };
    let store = lock(&shared.store);
    let (events, total) = store.query(&q);
    Answer::json(200, &json!({"events": events, "total": total}))
}

/// `/api/violations`: the filters of `/api/events` choose the events summed up; `limit`
/// is how many recent violating events come with the numbers.
fn api_violations(query: &str, shared: &Shared) -> Answer {
    let mut q = match parse_query(query) {
        Ok(q) => q,
        Err(msg) => return Answer::error(400, msg),
    };
    if !query_has(query, "limit") {
        q.limit = Some(violations::DEFAULT_RECENT);
    }
    let mut report = lock(&shared.store).violations(&q);
    report.plan = shared.plan.as_ref().map(PlanInfo::of);
    Answer::json(200, &serde_json::to_value(report).unwrap_or_default())
}

/// Whether the query string sets `key`.
fn query_has(query: &str, key: &str) -> bool {
    query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == key)
}

fn parse_query(query: &str) -> Result<Query, String> {
    let mut q = Query {
        limit: Some(DEFAULT_EVENTS_LIMIT),
        ..Query::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        let number = |what: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("`{what}` must be a non-negative integer, got \"{v}\""))
        };
        match k {
            "limit" => q.limit = Some(number("limit")? as usize),
            "since_id" => q.since_id = Some(number("since_id")?),
            "type" => q.kind = Some(v).filter(|v| !v.is_empty()),
            "event" => q.name = Some(v).filter(|v| !v.is_empty()),
            "valid" => q.valid = boolean("valid", &v)?,
            "violations" => q.violating = boolean("violations", &v)?,
            _ => {}
        }
    }
    Ok(q)
}

/// `true`, `false`, or empty for no filter.
fn boolean(what: &str, v: &str) -> Result<Option<bool>, String> {
    match v {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        "" => Ok(None),
        _ => Err(format!("`{what}` must be true or false, got \"{v}\"")),
    }
}

/// Decodes `%20` and `+` in a query value; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(access: Access) -> Shared {
        Shared {
            store: Mutex::new(Store::memory()),
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(Jitter::new(1)),
            write_key: None,
            quiet: true,
            access,
            request_times: Mutex::new(VecDeque::new()),
            max_request_times: 10,
            stopped: (Mutex::new(false), Condvar::new()),
            plan: None,
        }
    }

    fn req(method: &str, target: &str, peer: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Ok(Vec::new()),
            peer: peer.parse().unwrap(),
        }
    }

    /// Listening on the LAN, a client on another machine can send events but not read
    /// the page or the API, unless `--allow-remote-read`; this machine always can.
    #[test]
    fn remote_peers_cannot_read() {
        let closed = shared(Access::default());
        let open = shared(Access {
            remote_read: true,
            ..Access::default()
        });
        let host = [("Host", "192.168.1.5:8787")];
        for path in [
            "/",
            "/assets/app.js",
            "/api/events",
            "/api/stats",
            "/api/violations",
            "/api/faults",
        ] {
            for peer in [
                "192.168.1.7:5000",
                "[::ffff:10.0.0.2]:5000",
                "[fe80::1]:5000",
            ] {
                let r = handle(&req("GET", path, peer, &host), &closed);
                assert_eq!(r.status, 403, "{path} from {peer}");
                assert_eq!(handle(&req("GET", path, peer, &host), &open).status, 200);
            }
            for peer in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
                let r = handle(&req("GET", path, peer, &host), &closed);
                assert_eq!(r.status, 200, "{path} from {peer}");
            }
        }
        let mut r = req("POST", "/v1/batch", "192.168.1.7:5000", &host);
        r.headers
            .push(("Authorization".into(), "Basic azo=".into()));
        r.body = Ok(br#"{"batch": []}"#.to_vec());
        assert_eq!(handle(&r, &closed).status, 200);

        // Nor change the faults.
        let json = [
            ("Host", "192.168.1.5:8787"),
            ("Content-Type", "application/json"),
        ];
        let mut r = req("POST", "/api/faults", "192.168.1.7:5000", &json);
        r.body = Ok(br#"{"status": 0}"#.to_vec());
        assert_eq!(handle(&r, &closed).status, 403);
        assert_eq!(*lock(&closed.faults), Faults::default());
        r.peer = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(handle(&r, &closed).status, 200);
        assert_eq!(lock(&closed.faults).status, Some(Faults::NO_ANSWER));
    }

    /// No answer is decided on the head of a tracking request only (the page, /api,
    /// preflights and refused origins are answered), counts it as a failed request, and
    /// a request whose head was let through before the switch is answered, never with
    /// status 0.
    #[test]
    fn no_answer_on_the_head() {
        let s = shared(Access::default());
        *lock(&s.faults) = Faults {
            status: Some(Faults::NO_ANSWER),
            ..Faults::default()
        };
        let host = [("Host", "127.0.0.1:8787")];
        assert!(reset_after_head(
            &req("POST", "/v1/batch?x=1", "127.0.0.1:5000", &host),
            &s
        ));
        assert!(reset_after_head(
            &req("POST", "/v1/track", "192.168.1.7:5000", &host),
            &s
        ));
        let evil = [
            ("Host", "127.0.0.1:8787"),
            ("Origin", "http://evil.example"),
        ];
        for (method, path, headers) in [
            ("GET", "/api/stats", &host[..]),
            ("POST", "/api/faults", &host),
            ("GET", "/", &host),
            ("OPTIONS", "/v1/batch", &host),
            ("GET", "/v1/batch", &host),
            ("POST", "/v1/nope", &host),
            ("POST", "/v1/batch", &evil),
            ("POST", "/v1/batch", &[("Host", "evil.example")]),
        ] {
            let r = req(method, path, "127.0.0.1:5000", headers);
            assert!(!reset_after_head(&r, &s), "{method} {path} {headers:?}");
        }
        let stats = lock(&s.store).stats();
        assert_eq!((stats.requests, stats.failed_requests), (2, 2));
        assert_eq!(lock(&s.request_times).len(), 2);

        let mut r = req("POST", "/v1/batch", "127.0.0.1:5000", &host);
        r.headers
            .push(("Authorization".into(), "Basic azo=".into()));
        r.body = Ok(br#"{"batch": []}"#.to_vec());
        assert_eq!(handle(&r, &s).status, 200);
    }

    /// Host names are compared without port, case or trailing dot; loopback origins are
    /// recognised in every spelling and nothing else is.
    #[test]
    fn names_and_origins() {
        assert_eq!(host_name("LocalHost:8787"), "localhost");
        assert_eq!(host_name("[::1]:8787"), "::1");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("::1"), "::1");
        for o in [
            "http://localhost",
            "http://localhost:3000",
            "https://a.localhost:1",
            "http://127.0.0.1:5173",
            "http://127.8.9.10",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback_origin(o), "{o}");
        }
        for o in [
            "null",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://192.168.1.5:3000",
            "file://",
            "http://evil.example/localhost",
            "http://user@localhost",
            "ftp://localhost",
        ] {
            assert!(!is_loopback_origin(o), "{o}");
        }
    }

    /// Query values decode both escapes; a stray `%` survives.
    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("Song%20Played+x"), "Song Played x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
