//! The HTTP side: routing, CORS, auth, body decoding, fault injection and the log lines.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};

use super::store::{Outcome, Query, Store};
use super::validate::{self, limits};
use super::Faults;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");

/// `/api/events` answers at most this many events unless asked for more, so that a long
/// session does not send megabytes to every poll; `total` tells how many matched.
const DEFAULT_EVENTS_LIMIT: usize = 1000;

/// What the server threads share with the [`super::Collector`] handle.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    pub rng: Mutex<Jitter>,
    pub write_key: Option<String>,
    pub quiet: bool,
    pub request_times: Mutex<Vec<SystemTime>>,
    pub stop: AtomicBool,
    pub stopped: (Mutex<bool>, Condvar),
}

/// Locks, going on after a panic in another server thread: the data behind each lock is
/// updated in one step, so it is never left half-written.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The seeded generator for `--fail-rate` (reproducible runs): the engine's jitter source.
pub(crate) use trailhound::core::retry::Jitter;

/// A response before the CORS headers are added.
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
}

/// Serves requests until the stop flag is set.
pub(crate) fn serve(server: &tiny_http::Server, shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(req)) => handle(req, shared),
            Ok(None) => {}
            // A failed accept concerns one client only.
            Err(_) => {}
        }
    }
}

fn header(req: &tiny_http::Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_owned())
}

fn handle(mut req: tiny_http::Request, shared: &Shared) {
    let url = req.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let path = path.to_owned();
    let method = req.method().clone();
    let answer = match (&method, path.as_str()) {
        (tiny_http::Method::Options, _) => Answer {
            status: 204,
            content_type: "text/plain",
            body: Vec::new(),
            headers: vec![("Access-Control-Max-Age", "86400".into())],
        },
        (tiny_http::Method::Post, p) if ingest_type(p).is_some() => {
            let path_type = ingest_type(p).flatten();
            ingest(&mut req, &path, path_type, shared)
        }
        (tiny_http::Method::Get, "/" | "/index.html") => {
            Answer::text("text/html; charset=utf-8", INDEX_HTML)
        }
        (tiny_http::Method::Get, "/assets/app.js") => {
            Answer::text("text/javascript; charset=utf-8", APP_JS)
        }
        (tiny_http::Method::Get, "/assets/style.css") => {
            Answer::text("text/css; charset=utf-8", STYLE_CSS)
        }
        (tiny_http::Method::Get, "/api/events") => api_events(query, shared),
        (tiny_http::Method::Get, "/api/stats") => {
            let stats = lock(&shared.store).stats();
            Answer::json(200, &serde_json::to_value(stats).unwrap_or_default())
        }
        (_, p) if ingest_type(p).is_some() => Answer::error(405, "use POST"),
        (_, "/" | "/api/events" | "/api/stats") => Answer::error(405, "use GET"),
        _ => Answer::error(404, format!("no such endpoint: {path}")),
    };
    let origin = header(&req, "origin");
    let _ = req.respond(with_cors(answer, origin));
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

/// Every answer carries CORS headers: the app under test is often a page on another
/// port, posting with `fetch` (preflighted, for the Authorization header) or
/// `sendBeacon` (sent with credentials, so `*` is not enough and the Origin is echoed).
fn with_cors(a: Answer, origin: Option<String>) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let h = |name: &str, value: &str| tiny_http::Header::from_bytes(name, value).ok();
    let mut headers: Vec<tiny_http::Header> = Vec::new();
    headers.extend(h("Content-Type", a.content_type));
    match origin
        .as_deref()
        .and_then(|o| h("Access-Control-Allow-Origin", o))
    {
        Some(echo) => {
            headers.push(echo);
            headers.extend(h("Access-Control-Allow-Credentials", "true"));
            headers.extend(h("Vary", "Origin"));
        }
        None => headers.extend(h("Access-Control-Allow-Origin", "*")),
    }
    headers.extend(h(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, Content-Encoding",
    ));
    headers.extend(h("Access-Control-Allow-Methods", "POST, GET, OPTIONS"));
    headers.extend(h("Cache-Control", "no-store"));
    for (name, value) in &a.headers {
        headers.extend(h(name, value));
    }
    let mut resp = tiny_http::Response::from_data(a.body).with_status_code(a.status);
    for header in headers {
        resp.add_header(header);
    }
    resp
}

/// Why a tracking request was refused, as status and message.
type Refusal = (u16, String);

/// A tracking request: read, maybe fault, decode, authenticate, check, store.
fn ingest(
    req: &mut tiny_http::Request,
    path: &str,
    path_type: Option<&'static str>,
    shared: &Shared,
) -> Answer {
    lock(&shared.request_times).push(SystemTime::now());
    let received_at = Utc::now();
    let faults = lock(&shared.faults).clone();
    let body = read_body(req);
    if faults.latency_ms > 0 {
        std::thread::sleep(Duration::from_millis(faults.latency_ms));
    }

    let injected = match faults.status {
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

    let events = body.and_then(|raw| decode(req, &raw, path_type, shared, received_at));
    match events {
        Err((code, msg)) => {
            record(shared, path, code, Vec::new(), &msg);
            Answer::error(code, msg)
        }
        Ok(events) => {
            let status = injected.unwrap_or(200);
            let invalid: Vec<String> = events
                .iter()
                .filter(|(c, _)| !c.errors.is_empty())
                .map(|(c, _)| {
                    format!(
                        "{} {}: {}",
                        c.kind.as_deref().unwrap_or("?"),
                        c.message_id.as_deref().unwrap_or("(no messageId)"),
                        c.errors.join("; ")
                    )
                })
                .collect();
            match record(shared, path, status, events, "") {
                Some(o) => {
                    log_invalid(shared, &invalid, o);
                    Answer::json(status, &json!({"success": true}))
                }
                None => Answer::error(500, "cannot write to the database (see the log)"),
            }
        }
    }
}

/// Reads the body, refusing (after draining it, so that the client reads the answer)
/// anything over the request limit.
fn read_body(req: &mut tiny_http::Request) -> Result<Vec<u8>, Refusal> {
    let mut raw = Vec::new();
    let reader = req.as_reader();
    reader
        .take(limits::MAX_RAW_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| (400, format!("cannot read the body: {e}")))?;
    if raw.len() > limits::MAX_RAW_BYTES {
        let _ = std::io::copy(
            &mut reader.take(limits::MAX_DRAIN_BYTES),
            &mut std::io::sink(),
        );
        return Err(too_large());
    }
    Ok(raw)
}

fn too_large() -> Refusal {
    (
        413,
        format!(
            "the request is over {} KB (Segment's limit per request)",
            limits::MAX_REQUEST_BYTES / 1024
        ),
    )
}

/// The write key of a request: Basic auth user, else the body's `writeKey`.
fn header_key(req: &tiny_http::Request) -> Result<Option<String>, Refusal> {
    let Some(value) = header(req, "authorization") else {
        return Ok(None);
    };
    let bad = || {
        (
            401,
            "malformed Authorization header: expected Basic auth".to_owned(),
        )
    };
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
        (None, _) => Err((
            401,
            "no write key: send it as the Basic auth user or as `writeKey` in the body".into(),
        )),
        (Some(k), Some(want)) if k != want => Err((401, "unknown write key".into())),
        _ => Ok(()),
    }
}

/// Decodes and checks the events of an accepted request.
fn decode(
    req: &tiny_http::Request,
    raw: &[u8],
    path_type: Option<&'static str>,
    shared: &Shared,
    received_at: chrono::DateTime<Utc>,
) -> Result<Vec<(validate::Checked, Value)>, Refusal> {
    let from_header = header_key(req)?;
    // A wrong key in the header is refused before the body is even decoded.
    if from_header.is_some() {
        check_key(from_header.as_deref(), shared)?;
    }
    let encoding = header(req, "content-encoding").map(|e| e.trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        // Segment's clients send gzip or nothing; anything else would only fail later
        // as "not valid JSON", which hides the real cause.
        Some(other) => {
            return Err((
                400,
                format!("unsupported Content-Encoding \"{other}\": send gzip or plain JSON"),
            ))
        }
    };
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .take(limits::MAX_REQUEST_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| (400, format!("the body is not valid gzip: {e}")))?;
        out
    } else {
        raw.to_vec()
    };
    if body.len() > limits::MAX_REQUEST_BYTES {
        return Err(too_large());
    }
    let mut parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| (400, format!("the body is not valid JSON: {e}")))?;
    let Some(obj) = parsed.as_object_mut() else {
        return Err((400, "the body must be a JSON object".into()));
    };
    // The body's key exists for sendBeacon, which cannot set headers. It is auth, not
    // part of the event, so it is not kept.
    let body_key = obj
        .remove("writeKey")
        .and_then(|k| k.as_str().map(str::to_owned))
        .filter(|k| !k.is_empty());
    if from_header.is_none() {
        check_key(body_key.as_deref(), shared)?;
    }
    match path_type {
        Some(t) => {
            let checked = validate::check(&parsed, Some(t), None, received_at);
            Ok(vec![(checked, parsed)])
        }
        None => {
            let sent_at = obj.get("sentAt").cloned();
            let batch = match obj.remove("batch") {
                Some(Value::Array(b)) => b,
                Some(_) => return Err((400, "`batch` must be an array of events".into())),
                None => return Err((400, "the body has no `batch` array".into())),
            };
            Ok(batch
                .into_iter()
                .map(|ev| {
                    let checked = validate::check(&ev, None, sent_at.as_ref(), received_at);
                    (checked, ev)
                })
                .collect())
        }
    }
}

/// Stores a request's outcome and logs it. `None` if the database write failed (logged).
fn record(
    shared: &Shared,
    path: &str,
    status: u16,
    events: Vec<(validate::Checked, Value)>,
    why: &str,
) -> Option<Outcome> {
    let n = events.len();
    let result = lock(&shared.store).record_request(status, events);
    let line = match &result {
        Ok(o) if (200..300).contains(&status) => format!(
            "POST {path} {status}: {n} event{} ({} accepted, {} invalid, {} duplicate{})",
            if n == 1 { "" } else { "s" },
            o.accepted,
            o.invalid,
            o.duplicates,
            if o.duplicates == 1 { "" } else { "s" },
        ),
        Ok(_) => format!("POST {path} {status}: {why}"),
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
            "valid" => {
                q.valid = match v.as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    "" => None,
                    _ => return Err(format!("`valid` must be true or false, got \"{v}\"")),
                }
            }
            _ => {}
        }
    }
    Ok(q)
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

    /// Query values decode both escapes; a stray `%` survives.
    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("Song%20Played+x"), "Song Played x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
