//! A hostile HTTP server on loopback, written on raw TCP so that it can misbehave in ways a
//! real HTTP library will not: any status line, bodies shorter or far longer than
//! declared, connections reset (RST) in the middle of a request or of a response, answers
//! that trickle in a byte at a time, and TLS with a certificate nobody trusts.
//!
//! It records every request it reads (request line, headers, the `messageId`s of a gzip
//! batch) and what it answered, so that tests can check what the client really sent, that
//! a redirect's `Location` was never requested, and which events the server really stored.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (more are closed at once),
//! every socket has a read timeout, trickles and streamed bodies stop when the client
//! hangs up or the server is dropped.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Most connections served at once; the rest are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 32;

/// Longest a connection waits for the client to send something.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head or body read; a client sending more is cut off.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its position among all requests the server read, from 0.
    pub index: usize,
    /// When its head was read.
    pub at: Instant,
    /// The client's address: requests over one kept-alive connection share it.
    pub peer: SocketAddr,
    /// `POST`, `GET`, …
    pub method: String,
    /// The request target, e.g. `/v1/batch`.
    pub path: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as sent (still gzip-compressed); empty when only the head was read.
    pub body: Vec<u8>,
    /// The batch's events, if the body was a (gzip) Segment batch.
    pub events: Vec<Value>,
    /// Their `messageId`s, in order.
    pub message_ids: Vec<String>,
    /// The status the server answered with, if it sent a complete head.
    pub answered: Option<u16>,
}

impl Request {
    /// The value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the batch holds an event whose `properties.tag` is `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.events
            .iter()
            .any(|e| e["properties"]["tag"].as_str() == Some(tag))
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete answer: `HTTP/1.1 {status} {reason}`, the headers, a `Content-Length`
    /// and the body. The connection stays open for the next request.
    Full {
        /// The status code, written as is (600 or 999 too).
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// Exactly these bytes, then what `then` says.
    Raw {
        /// What to send.
        bytes: Vec<u8>,
        /// The final status these bytes carry, if they hold a complete head (for the log).
        status: Option<u16>,
        /// What becomes of the connection afterwards.
        then: Then,
    },
    /// A head declaring `declared` body bytes, then only `body`, then a clean close.
    Truncated {
        /// The status code.
        status: u16,
        /// The declared `Content-Length`.
        declared: usize,
        /// What is really sent of the body.
        body: Vec<u8>,
    },
    /// A head declaring `len` body bytes, then all of them, streamed in 64 KiB chunks
    /// (until the client hangs up). With `len == None`, no `Content-Length`: the body runs
    /// until the connection closes, which the server does after `cap` bytes.
    Oversized {
        /// The status code.
        status: u16,
        /// The declared and sent length, or `None` for a close-delimited body.
        len: Option<usize>,
        /// Most bytes sent of a close-delimited body.
        cap: usize,
    },
    /// Resets the connection (`SO_LINGER` 0, then close) without answering.
    Reset,
    /// `prefix` at once, then `bytes` one every `interval`, then a clean close; stops when
    /// the client hangs up or the server is dropped.
    Trickle {
        /// Sent at once (e.g. a complete head before a trickled body).
        prefix: Vec<u8>,
        /// The status `prefix` carries, if it holds a complete head (for the log).
        status: Option<u16>,
        /// Sent a byte at a time.
        bytes: Vec<u8>,
        /// The pause before each byte.
        interval: Duration,
    },
    /// No answer at all: the connection is held open, silent, for `hold` (or until the
    /// client hangs up or the server is dropped), then closed.
    Silence {
        /// How long to hold it.
        hold: Duration,
    },
}

/// What becomes of a connection after a [`Reply::Raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// A clean close (FIN).
    Close,
    /// A TCP reset (`SO_LINGER` 0, then close).
    Reset,
    /// Open, read the next request from it: whatever the bytes held beyond one answer is
    /// left for the client to take as the answer to its next request.
    KeepOpen,
}

impl Reply {
    /// A bare status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A status with one extra header.
    pub fn with_header(status: u16, name: &str, value: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![(name.to_owned(), value.to_owned())],
            body: Vec::new(),
        }
    }

    /// The status code the reply's head carries, if it sends a complete head.
    fn status_code(&self) -> Option<u16> {
        match self {
            Reply::Full { status, .. }
            | Reply::Truncated { status, .. }
            | Reply::Oversized { status, .. } => Some(*status),
            Reply::Raw { status, .. } | Reply::Trickle { status, .. } => *status,
            Reply::Reset | Reply::Silence { .. } => None,
        }
    }
}

/// Decides the answers. `on_head` runs once a request's head is read, before its body:
/// returning `Some` answers at once without reading the body (a reset in the middle of the
/// request). `on_request` runs once the whole request is read.
pub trait Script: Send + Sync + 'static {
    /// An answer before the body is read, if any.
    fn on_head(&self, _head: &Request) -> Option<Reply> {
        None
    }
    /// The answer to a complete request.
    fn on_request(&self, request: &Request) -> Reply;
}

impl<F> Script for F
where
    F: Fn(&Request) -> Reply + Send + Sync + 'static,
{
    fn on_request(&self, request: &Request) -> Reply {
        self(request)
    }
}

/// Reads the head and half the body of every request, then resets the connection.
pub struct ResetMidRequest;

impl Script for ResetMidRequest {
    fn on_head(&self, _head: &Request) -> Option<Reply> {
        Some(Reply::Reset)
    }
    fn on_request(&self, _request: &Request) -> Reply {
        Reply::Reset
    }
}

struct Shared {
    script: Box<dyn Script>,
    tls: Option<Arc<rustls::ServerConfig>>,
    log: Mutex<Vec<Request>>,
    next_index: AtomicUsize,
    connections: AtomicUsize,
    accepted: AtomicUsize,
    stop: AtomicBool,
}

/// The server. Stops when dropped.
pub struct HostileServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl HostileServer {
    /// Starts a plain HTTP server on a free port of 127.0.0.1.
    pub fn start(script: impl Script) -> HostileServer {
        Self::spawn(Box::new(script), None)
    }

    /// Starts an HTTPS server on a free port of 127.0.0.1, with this TLS configuration
    /// (tests give it a self-signed certificate).
    pub fn start_tls(tls: Arc<rustls::ServerConfig>, script: impl Script) -> HostileServer {
        Self::spawn(Box::new(script), Some(tls))
    }

    fn spawn(script: Box<dyn Script>, tls: Option<Arc<rustls::ServerConfig>>) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            script,
            tls,
            log: Mutex::new(Vec::new()),
            next_index: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("hostile-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn acceptor");
        HostileServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://…` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request read so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Connections accepted so far (a TLS client that refuses the certificate connects
    /// without ever sending a request).
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// `messageId`s of requests the server answered with a 2xx head: the events it
    /// really stored.
    pub fn stored_ids(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
            .flat_map(|r| r.message_ids)
            .collect()
    }

    /// Waits until `n` requests have been read, at most `timeout`; returns whether they were.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.requests().len() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the acceptor.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(stream) = stream else { continue };
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        if shared.connections.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let s = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("hostile-conn".into())
            .spawn(move || {
                let _ = serve(stream, &s);
                s.connections.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A plain or TLS connection, with what resets need of the socket underneath.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let conn = match &shared.tls {
        None => Conn::Plain(stream),
        Some(config) => {
            let tls =
                rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
            Conn::Tls(Box::new(rustls::StreamOwned::new(tls, stream)))
        }
    };
    let mut reader = BufReader::new(conn);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(mut request) = read_head(&mut reader, peer)? else {
            return Ok(()); // the client closed the connection between requests
        };
        let early = shared.script.on_head(&request);
        if early.is_some() {
            // Read about half the body, so that the reset lands in the middle of it.
            let half = content_length(&request).unwrap_or(0) / 2;
            let mut part = vec![0; half.min(MAX_REQUEST_BYTES)];
            let _ = reader.read_exact(&mut part);
            request.body = part;
        } else {
            request.body = read_body(&mut reader, &request)?;
            decode_batch(&mut request);
        }
        request.index = shared.next_index.fetch_add(1, Ordering::AcqRel);
        let answered_early = early.is_some();
        let reply = early.unwrap_or_else(|| shared.script.on_request(&request));
        request.answered = reply.status_code();
        shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
        // After an early answer the rest of the body is still unread: never reuse it.
        if !answer(reader.get_mut(), reply, shared)? || answered_early {
            close(reader.get_mut());
            return Ok(());
        }
    }
}

/// Sends a reply; returns whether the connection can carry another request.
fn answer(conn: &mut Conn, reply: Reply, shared: &Shared) -> io::Result<bool> {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = status_line(status);
            for (n, v) in &headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            conn.write_all(head.as_bytes())?;
            conn.write_all(&body)?;
            conn.flush()?;
            Ok(true)
        }
        Reply::Raw { bytes, then, .. } => {
            conn.write_all(&bytes)?;
            conn.flush()?;
            match then {
                Then::Close => close(conn),
                Then::Reset => reset_now(conn),
                Then::KeepOpen => return Ok(true),
            }
            Ok(false)
        }
        Reply::Truncated {
            status,
            declared,
            body,
        } => {
            let head = format!("{}Content-Length: {declared}\r\n\r\n", status_line(status));
            conn.write_all(head.as_bytes())?;
            conn.write_all(&body)?;
            conn.flush()?;
            close(conn);
            Ok(false)
        }
        Reply::Oversized { status, len, cap } => {
            let mut head = status_line(status);
            match len {
                Some(n) => head.push_str(&format!("Content-Length: {n}\r\n\r\n")),
                None => head.push_str("Connection: close\r\n\r\n"),
            }
            conn.write_all(head.as_bytes())?;
            let total = len.unwrap_or(cap);
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < total && !shared.stop.load(Ordering::Acquire) {
                let n = chunk.len().min(total - sent);
                if conn.write_all(&chunk[..n]).is_err() {
                    return Ok(false); // the client stopped reading and hung up
                }
                sent += n;
            }
            conn.flush()?;
            Ok(len.is_some() && sent == total)
        }
        Reply::Reset => {
            reset_now(conn);
            Ok(false)
        }
        Reply::Trickle {
            prefix,
            bytes,
            interval,
            ..
        } => {
            conn.write_all(&prefix)?;
            conn.flush()?;
            for b in bytes {
                if !pause(interval, conn, shared) {
                    return Ok(false);
                }
                if conn.write_all(&[b]).and_then(|()| conn.flush()).is_err() {
                    return Ok(false);
                }
            }
            close(conn);
            Ok(false)
        }
        Reply::Silence { hold } => {
            pause(hold, conn, shared);
            close(conn);
            Ok(false)
        }
    }
}

/// Waits `d` in small steps; `false` as soon as the server is dropped or the client hung
/// up (seen without consuming anything it sent).
fn pause(d: Duration, conn: &Conn, shared: &Shared) -> bool {
    let until = Instant::now() + d;
    let tcp = conn.tcp();
    let _ = tcp.set_nonblocking(true);
    let mut alive = true;
    while Instant::now() < until {
        if shared.stop.load(Ordering::Acquire) {
            alive = false;
            break;
        }
        let mut probe = [0u8; 1];
        match tcp.peek(&mut probe) {
            Ok(0) => {
                alive = false;
                break;
            }
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                alive = false;
                break;
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = tcp.set_nonblocking(false);
    alive
}

fn status_line(status: u16) -> String {
    let reason = match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        418 => "I'm a teapot",
        _ => "Hostile",
    };
    format!("HTTP/1.1 {status} {reason}\r\n")
}

/// Closes with a TCP reset: `SO_LINGER` 0, then close.
fn reset_now(conn: &mut Conn) {
    let sock = socket2::SockRef::from(conn.tcp());
    let _ = sock.set_linger(Some(Duration::ZERO));
    let _ = conn.tcp().shutdown(Shutdown::Both);
}

/// Closes cleanly: what was sent arrives, then EOF.
fn close(conn: &mut Conn) {
    if let Conn::Tls(s) = conn {
        s.conn.send_close_notify();
        let _ = s.flush();
    }
    let _ = conn.tcp().shutdown(Shutdown::Write);
}

/// Reads a request head; `None` on a clean EOF before any byte of it.
fn read_head(reader: &mut BufReader<Conn>, peer: SocketAddr) -> io::Result<Option<Request>> {
    let mut line = String::new();
    let mut total = 0;
    let mut lines = Vec::new();
    loop {
        line.clear();
        let n = match reader.read_line(&mut line) {
            Ok(n) => n,
            Err(e) if lines.is_empty() && is_disconnect(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "head cut short",
            ));
        }
        total += n;
        if total > MAX_REQUEST_BYTES {
            return Err(io::Error::other("request head too large"));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            if lines.is_empty() {
                continue; // tolerate a stray CRLF between requests
            }
            break;
        }
        lines.push(trimmed.to_owned());
    }
    let mut parts = lines[0].split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let headers = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Some(Request {
        index: 0,
        at: Instant::now(),
        peer,
        method,
        path,
        headers,
        body: Vec::new(),
        events: Vec::new(),
        message_ids: Vec::new(),
        answered: None,
    }))
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
    )
}

fn content_length(request: &Request) -> Option<usize> {
    request.header("content-length")?.parse().ok()
}

fn read_body(reader: &mut BufReader<Conn>, request: &Request) -> io::Result<Vec<u8>> {
    if let Some(len) = content_length(request) {
        if len > MAX_REQUEST_BYTES {
            return Err(io::Error::other("request body too large"));
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        return Ok(body);
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if !chunked {
        return Ok(Vec::new());
    }
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(io::Error::other)?;
        if body.len() + size > MAX_REQUEST_BYTES {
            return Err(io::Error::other("request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
        if size == 0 {
            return Ok(body);
        }
    }
}

/// Fills `events` and `message_ids` from a gzip (or plain) Segment batch body.
fn decode_batch(request: &mut Request) {
    let gzip = request
        .header("content-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let raw = if gzip {
        let mut out = Vec::new();
        let decoded = flate2::read::GzDecoder::new(&request.body[..])
            .take(MAX_REQUEST_BYTES as u64)
            .read_to_end(&mut out);
        if decoded.is_err() {
            return;
        }
        out
    } else {
        request.body.clone()
    };
    let Ok(value) = serde_json::from_slice::<Value>(&raw) else {
        return;
    };
    if let Some(batch) = value["batch"].as_array() {
        request.message_ids = batch
            .iter()
            .filter_map(|e| e["messageId"].as_str().map(str::to_owned))
            .collect();
        request.events = batch.clone();
    }
}
