//! A lean loopback collector for the benchmarks: HTTP/1.1 with keep-alive, one thread per
//! connection; it gunzips each batch, collects the `"messageId"` values it holds and
//! answers `200` at once.
//!
//! It shares the machine's two cores with the SDK under measurement, so it does the least
//! a collector can: no JSON parsing, no copies of the events. The test collector
//! (`trailhound_tests::collector`) validates and keeps every event, which is right for
//! tests and too slow for a throughput figure.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

const ID_KEY: &[u8] = b"\"messageId\":\"";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
Content-Length: 16\r\n\r\n{\"success\":true}";

#[derive(Default)]
struct Counts {
    ids: HashSet<String>,
    /// `messageId`s received, duplicates included.
    events: u64,
    requests: u64,
    /// Bytes of request bodies, as sent (gzip).
    body_bytes: u64,
    /// Requests that could not be read or decoded.
    bad: u64,
    /// When the last new `messageId` arrived (the wall clock, comparable across processes).
    last_new: Option<SystemTime>,
}

struct Shared {
    counts: Mutex<Counts>,
    changed: Condvar,
    stop: AtomicBool,
    connections: AtomicU64,
    /// CPU time of the connection threads, up to their last request.
    cpu_ns: AtomicU64,
}

/// The collector; it stops accepting when dropped.
pub struct LeanCollector {
    url: String,
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl LeanCollector {
    /// Listens on a free loopback port.
    pub fn start() -> LeanCollector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    accept_shared.connections.fetch_add(1, Ordering::Relaxed);
                    let conn_shared = Arc::clone(&accept_shared);
                    let _ = std::thread::Builder::new()
                        .name("collector-conn".into())
                        .spawn(move || serve(stream, &conn_shared));
                }
            })
            .expect("spawn the collector");
        LeanCollector {
            url: format!("http://{addr}"),
            addr,
            shared,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Distinct `messageId`s received so far.
    pub fn distinct(&self) -> u64 {
        self.lock().ids.len() as u64
    }

    /// `messageId`s received more than once (each extra copy counts).
    pub fn duplicates(&self) -> u64 {
        let c = self.lock();
        c.events - c.ids.len() as u64
    }

    /// Requests answered.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Gzip bytes received.
    pub fn body_bytes(&self) -> u64 {
        self.lock().body_bytes
    }

    /// Requests that could not be read or gunzipped.
    pub fn bad_requests(&self) -> u64 {
        self.lock().bad
    }

    /// When the newest distinct `messageId` arrived.
    pub fn last_new(&self) -> Option<SystemTime> {
        self.lock().last_new
    }

    /// CPU time the collector spent serving requests (its connection threads).
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.shared.cpu_ns.load(Ordering::Relaxed))
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Waits until `n` distinct events arrived, at most `timeout`.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = self.lock();
        while (c.ids.len() as u64) < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            c = self
                .shared
                .changed
                .wait_timeout(c, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Forgets what was received (between scenarios).
    pub fn reset(&self) {
        *self.lock() = Counts::default();
        self.shared.cpu_ns.store(0, Ordering::Relaxed);
        self.shared.connections.store(0, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.shared.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for LeanCollector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Serves one connection until the client closes it.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut plain = Vec::new();
    let mut cpu = super::sys::thread_cpu_time();
    loop {
        // Request line; EOF ends the connection.
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut content_length = None;
        let mut chunked = false;
        let mut gzip = false;
        let mut close = false;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("content-encoding") {
                gzip = value.eq_ignore_ascii_case("gzip");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        body.clear();
        let read = if chunked {
            read_chunked(&mut reader, &mut body)
        } else {
            let n = content_length.unwrap_or(0);
            body.resize(n, 0);
            reader.read_exact(&mut body)
        };
        if read.is_err() {
            return;
        }
        plain.clear();
        let decoded = if gzip {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .is_ok()
        } else {
            plain.extend_from_slice(&body);
            true
        };
        {
            let mut c = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.requests += 1;
            c.body_bytes += body.len() as u64;
            if decoded {
                let distinct = c.ids.len();
                for id in message_ids(&plain) {
                    c.events += 1;
                    if !c.ids.contains(id) {
                        c.ids.insert(id.to_owned());
                    }
                }
                if c.ids.len() > distinct {
                    c.last_new = Some(SystemTime::now());
                }
            } else {
                c.bad += 1;
            }
        }
        shared.changed.notify_all();
        let write = out.write_all(RESPONSE);
        let now = super::sys::thread_cpu_time();
        if let (Some(before), Some(now)) = (cpu, now) {
            let spent = now.saturating_sub(before).as_nanos() as u64;
            shared.cpu_ns.fetch_add(spent, Ordering::Relaxed);
        }
        cpu = now;
        if write.is_err() {
            return;
        }
        if close {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn read_chunked(reader: &mut impl BufRead, body: &mut Vec<u8>) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

/// The `messageId` values in a batch body, in order, found by their key (the SDK writes
/// compact JSON, and a `messageId` value never holds a quote).
fn message_ids(json: &[u8]) -> impl Iterator<Item = &str> {
    let mut rest = json;
    std::iter::from_fn(move || {
        let at = find(rest, ID_KEY)?;
        let value = &rest[at + ID_KEY.len()..];
        let end = value.iter().position(|&b| b == b'"')?;
        rest = &value[end..];
        std::str::from_utf8(&value[..end]).ok()
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = haystack[from..].iter().position(|&b| b == needle[0]) {
        let at = from + p;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}
