//! A loopback Segment-compatible receiver for tests and the demo: it decodes gzip batches,
//! records every event and request, deduplicates by `messageId`, and answers with scripted
//! faults (a status, `Retry-After`, a rejected `messageId`, a maximum batch size).

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` header value.
    pub retry_after: Option<String>,
    /// `Location` header value (a redirect).
    pub location: Option<String>,
}

impl Reply {
    /// A bare status.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            retry_after: None,
            location: None,
        }
    }

    /// A status with `Retry-After`.
    pub fn retry_after(status: u16, value: &str) -> Self {
        Reply {
            status,
            retry_after: Some(value.to_owned()),
            location: None,
        }
    }

    /// A redirect: `status` (301, 302, 303, 307, 308) with `Location: location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Reply {
            status,
            retry_after: None,
            location: Some(location.to_owned()),
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// The status answered.
    pub status: u16,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// `Content-Encoding` header.
    pub content_encoding: Option<String>,
    /// Compressed body size.
    pub body_bytes: usize,
    /// `sentAt` of the batch.
    pub sent_at: Option<String>,
    /// The client's address: requests over one kept-alive connection share it.
    pub peer: Option<std::net::SocketAddr>,
    /// `messageId`s in the batch, in order.
    pub message_ids: Vec<String>,
    /// The method (`POST`, or `GET` from a client that followed a redirect).
    pub method: String,
    /// The path asked for (`/v1/batch`, or another path a redirect pointed to).
    pub path: String,
}

/// Decides which events the collector refuses with a 400.
type Rejector = Box<dyn Fn(&Value) -> bool + Send>;

#[derive(Default)]
struct State {
    events: Vec<Value>,
    seen: HashSet<String>,
    duplicates: u64,
    requests: Vec<Received>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
    reject: Option<Rejector>,
    max_batch: Option<usize>,
    /// Other paths (a redirect's target) and the status they answer with.
    pages: Vec<(String, u16)>,
}

/// The receiver. Stops when dropped.
pub struct Collector {
    url: String,
    state: Arc<(Mutex<State>, Condvar)>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Starts on a free loopback port.
    pub fn start() -> Collector {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let (s2, st2) = (Arc::clone(&server), Arc::clone(&state));
        let thread = std::thread::spawn(move || {
            for req in s2.incoming_requests() {
                handle(req, &st2);
            }
        });
        Collector {
            url: format!("http://127.0.0.1:{port}"),
            state,
            server,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint to configure.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.0.lock().unwrap())
    }

    /// Answers the next requests with these replies, in order, before the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.with(|s| s.script.extend(replies));
    }

    /// Answers every unscripted request with this reply (`None`: accept).
    pub fn set_default(&self, reply: Option<Reply>) {
        self.with(|s| s.default = reply);
    }

    /// Answers 400 to any batch holding an event for which `bad` is true.
    pub fn reject_if(&self, bad: impl Fn(&Value) -> bool + Send + 'static) {
        self.with(|s| s.reject = Some(Box::new(bad)));
    }

    /// Answers 413 to batches of more than `n` events.
    pub fn set_max_batch(&self, n: Option<usize>) {
        self.with(|s| s.max_batch = n);
    }

    /// Answers any request to `path` (not the batch path: a redirect's target, say) with
    /// `status`, recording it but taking no events from it.
    pub fn serve_path(&self, path: &str, status: u16) {
        self.with(|s| s.pages.push((path.to_owned(), status)));
    }

    /// Distinct events accepted, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.with(|s| s.events.clone())
    }

    /// `messageId`s of the distinct events accepted.
    pub fn message_ids(&self) -> Vec<String> {
        self.with(|s| {
            s.events
                .iter()
                .map(|e| e["messageId"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
    }

    /// Events received again after being accepted once.
    pub fn duplicates(&self) -> u64 {
        self.with(|s| s.duplicates)
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.with(|s| s.requests.clone())
    }

    /// Waits until at least `n` distinct events arrived; false on timeout.
    pub fn wait_for_events(&self, n: usize, timeout: Duration) -> bool {
        let (lock, cvar) = &*self.state;
        let guard = lock.lock().unwrap();
        let (guard, _) = cvar
            .wait_timeout_while(guard, timeout, |s| s.events.len() < n)
            .unwrap();
        guard.events.len() >= n
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(req: &tiny_http::Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_owned())
}

fn handle(mut req: tiny_http::Request, state: &(Mutex<State>, Condvar)) {
    let mut raw = Vec::new();
    let _ = req.as_reader().read_to_end(&mut raw);
    let encoding = header(&req, "content-encoding");
    let body = if encoding.as_deref() == Some("gzip") {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out) {
            Ok(_) => out,
            Err(_) => Vec::new(),
        }
    } else {
        raw.clone()
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let batch: Vec<Value> = parsed
        .as_ref()
        .and_then(|v| v["batch"].as_array().cloned())
        .unwrap_or_default();
    let ids: Vec<String> = batch
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (lock, cvar) = state;
    let mut s = lock.lock().unwrap();
    let path = req.url().split('?').next().unwrap_or_default().to_owned();
    let page = s.pages.iter().find(|(p, _)| *p == path).map(|(_, st)| *st);
    let reply = if let Some(status) = page {
        Reply::status(status)
    } else if parsed.is_none() {
        Reply::status(400)
    } else if let Some(r) = s.script.pop_front() {
        r
    } else if s.max_batch.is_some_and(|m| batch.len() > m) {
        Reply::status(413)
    } else if s.reject.as_ref().is_some_and(|bad| batch.iter().any(bad)) {
        Reply::status(400)
    } else {
        s.default.clone().unwrap_or(Reply::status(200))
    };
    if page.is_none() && (200..300).contains(&reply.status) {
        for ev in batch {
            let id = ev["messageId"].as_str().unwrap_or_default().to_owned();
            if s.seen.insert(id) {
                s.events.push(ev);
            } else {
                s.duplicates += 1;
            }
        }
    }
    s.requests.push(Received {
        at: Instant::now(),
        status: reply.status,
        authorization: header(&req, "authorization"),
        content_encoding: encoding,
        body_bytes: raw.len(),
        peer: req.remote_addr().copied(),
        sent_at: parsed
            .as_ref()
            .and_then(|v| v["sentAt"].as_str().map(str::to_owned)),
        message_ids: ids,
        method: req.method().as_str().to_owned(),
        path,
    });
    drop(s);
    cvar.notify_all();
    let mut resp =
        tiny_http::Response::from_string("{\"success\":true}").with_status_code(reply.status);
    if let Some(ra) = reply.retry_after {
        if let Ok(h) = tiny_http::Header::from_bytes("Retry-After", ra.as_bytes()) {
            resp.add_header(h);
        }
    }
    if let Some(location) = reply.location {
        if let Ok(h) = tiny_http::Header::from_bytes("Location", location.as_bytes()) {
            resp.add_header(h);
        }
    }
    let _ = req.respond(resp);
}
