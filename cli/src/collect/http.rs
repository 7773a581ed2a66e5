//! A small HTTP/1.1 server with every resource bounded: one thread per connection (at
//! most [`MAX_CONNECTIONS`]), a timeout on every read and write, a deadline for a whole
//! request, and bodies read only up to a limit.
//!
//! Not tiny_http, which the collector used before: it reads request bodies in the
//! caller's threads without any timeout (eight clients that stop mid-body stalled every
//! worker), and on dropping a request it drains the rest of the body into
//! `vec![0; content_length]`, so a single `Content-Length: 1000000000000` aborted the
//! process.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Open connections at most: a thread each. Past it a new connection is answered 503 at
/// once, so that slow clients cannot use up threads and file descriptors.
pub(crate) const MAX_CONNECTIONS: usize = 128;
/// Request line and headers at most: browsers send a few KB.
pub(crate) const MAX_HEAD_BYTES: usize = 32 * 1024;
/// A whole request (head and body) must arrive within this many read timeouts of its
/// first byte, so that a client trickling a byte at a time cannot hold a thread forever.
const REQUEST_DEADLINE_FACTOR: u32 = 3;
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// What the connection threads need to know.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// The longest wait for a client's next byte, also between keep-alive requests, and
    /// for a client to take the answer.
    pub read_timeout: Duration,
    /// Bodies over this are not kept: the handler sees [`Request::body`] = `Err(TooLarge)`.
    pub max_body: usize,
    /// An oversized body is read and dropped up to this many bytes, so that the client
    /// reads the answer instead of a reset connection; past it the connection is closed.
    pub max_drain: u64,
}

/// A request with its whole body read.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Result<Vec<u8>, TooLarge>,
    pub peer: SocketAddr,
}

/// The body was over [`Limits::max_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What the server calls for each request, from the connection's thread. A closure
/// `Fn(&Request) -> Response` is a handler that answers every request.
pub(crate) trait Handler: Send + Sync {
    /// Called once a request's head is read, before its body (`req.body` is still
    /// empty): `true` resets the connection (a TCP RST) instead of reading on and
    /// answering, as a dead or blocked endpoint does.
    fn reset_after_head(&self, _req: &Request) -> bool {
        false
    }

    /// The answer to a request whose body is read.
    fn answer(&self, req: &Request) -> Response;
}

impl<F: Fn(&Request) -> Response + Send + Sync> Handler for F {
    fn answer(&self, req: &Request) -> Response {
        self(req)
    }
}

/// A running server: [`Server::stop`] (or dropping it) closes every connection and
/// joins every thread.
pub(crate) struct Server {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Conns>>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Conns {
    next: u64,
    open: HashMap<u64, (TcpStream, JoinHandle<()>)>,
}

impl Server {
    /// Serves `listener` until stopped.
    pub fn start(
        listener: TcpListener,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        // Non-blocking accept: the loop sees the stop flag without a wake-up connection.
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Conns::default()));
        let accept = {
            let (stop, conns) = (Arc::clone(&stop), Arc::clone(&conns));
            std::thread::Builder::new()
                .name("collect-accept".into())
                .spawn(move || accept_loop(&listener, &limits, &handler, &stop, &conns))?
        };
        Ok(Server {
            stop,
            conns,
            accept: Some(accept),
        })
    }

    /// Open connections now.
    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.conns).open.len()
    }

    /// Stops accepting, closes every connection and waits for their threads. A request
    /// being handled is answered first (its thread is joined, not killed).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let open: Vec<_> = lock(&self.conns).open.drain().collect();
        for (_, (stream, _)) in &open {
            // Wakes a thread blocked reading; one that is handling a request finishes it.
            let _ = stream.shutdown(Shutdown::Read);
        }
        for (_, (_, t)) in open {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(
    listener: &TcpListener,
    limits: &Limits,
    handler: &Arc<dyn Handler>,
    stop: &Arc<AtomicBool>,
    conns: &Arc<Mutex<Conns>>,
) {
    while !stop.load(Ordering::Acquire) {
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            // A failed accept (a client gone before it was accepted, no file descriptor
            // left for now) concerns that client only.
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err()
            || stream.set_write_timeout(Some(limits.read_timeout)).is_err()
        {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let Ok(watch) = stream.try_clone() else {
            continue;
        };
        // The lock is held across the spawn, so that a thread that ends at once finds its
        // entry to remove.
        let mut guard = lock(conns);
        if guard.open.len() >= MAX_CONNECTIONS {
            drop(guard);
            refuse_busy(stream);
            continue;
        }
        let id = guard.next;
        guard.next += 1;
        let (limits, handler, stop, conns2) = (
            limits.clone(),
            Arc::clone(handler),
            Arc::clone(stop),
            Arc::clone(conns),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("collect-conn-{id}"))
            .spawn(move || {
                serve_connection(stream, peer, &limits, &*handler, &stop);
                // Detaches this thread: nobody needs to join it any more.
                lock(&conns2).open.remove(&id);
            });
        if let Ok(t) = spawned {
            guard.open.insert(id, (watch, t));
        }
    }
}

/// Too many connections: a short answer, written without waiting (the socket's buffer is
/// empty), then closed.
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let body = "{\"success\":false,\"error\":\"too many open connections, retry shortly\"}";
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Retry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.shutdown(Shutdown::Both);
}

/// Why a connection stops reading requests.
enum ReadError {
    /// The client closed it, or stayed idle between requests past the timeout: no answer.
    Closed,
    /// Answer this status (and close).
    Answer(u16, &'static str),
    /// The handler wants no answer: reset the connection.
    Reset,
}

/// Reads from the socket with a per-read timeout and an optional deadline.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    read_timeout: Duration,
    deadline: Option<Instant>,
}

impl Conn {
    /// Appends what the socket has to `buf`; `Ok(0)` at the end of the stream.
    fn fill(&mut self) -> io::Result<usize> {
        let mut wait = self.read_timeout;
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            wait = wait.min(left);
        }
        self.stream.set_read_timeout(Some(wait))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            // Linux says WouldBlock when SO_RCVTIMEO runs out.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::TimedOut.into()),
            Err(e) => Err(e),
        }
    }

    /// Takes `n` bytes from the front of `buf`, reading more as needed.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            self.more()?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Drops `n` bytes from the front, reading them as needed, without keeping them.
    fn skip(&mut self, mut n: u64) -> Result<(), ReadError> {
        loop {
            let have = (self.buf.len() as u64).min(n);
            self.buf.drain(..have as usize);
            n -= have;
            if n == 0 {
                return Ok(());
            }
            self.more()?;
        }
    }

    /// One line (without CRLF), at most `max` bytes.
    fn line(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut line = self.take(i + 2)?;
                line.truncate(i);
                return Ok(line);
            }
            if self.buf.len() > max {
                return Err(ReadError::Answer(400, "line too long"));
            }
            self.more()?;
        }
    }

    /// Reads more in the middle of a request: the end of the stream or a timeout there
    /// is the client's fault.
    fn more(&mut self) -> Result<(), ReadError> {
        match self.fill() {
            Ok(0) => Err(ReadError::Closed),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(ReadError::Answer(
                408,
                "the request took too long to arrive",
            )),
            Err(_) => Err(ReadError::Closed),
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    limits: &Limits,
    handler: &dyn Handler,
    stop: &AtomicBool,
) {
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut writer = io::BufWriter::new(writer);
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        read_timeout: limits.read_timeout,
        deadline: None,
    };
    while !stop.load(Ordering::Acquire) {
        let (req, keep_alive) = match read_request(&mut conn, peer, limits, handler, &mut writer) {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(ReadError::Reset) => return reset(&conn.stream),
            Err(ReadError::Answer(status, why)) => {
                let body = format!("{{\"success\":false,\"error\":\"{why}\"}}");
                let resp = Response {
                    status,
                    headers: vec![("Content-Type", "application/json".into())],
                    body: body.into_bytes(),
                };
                let _ = write_response(&mut writer, &resp, false);
                return;
            }
        };
        let resp = handler.answer(&req);
        let keep_alive = keep_alive && !stop.load(Ordering::Acquire);
        if write_response(&mut writer, &resp, keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

/// Makes the socket's close a TCP reset (`SO_LINGER` 0) rather than an orderly FIN: the
/// RST goes out when its last handle (this one, the writer's and the server's `watch`)
/// is dropped, as the connection's thread ends. std's `set_linger` is still unstable.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Reads one request. `keep_alive`: whether another may follow on this connection.
fn read_request(
    conn: &mut Conn,
    peer: SocketAddr,
    limits: &Limits,
    handler: &dyn Handler,
    writer: &mut impl Write,
) -> Result<(Request, bool), ReadError> {
    conn.deadline = None;
    // Waiting for the first byte: idle between requests, closed without an answer when
    // the wait runs out.
    while conn.buf.is_empty() {
        match conn.fill() {
            Ok(0) | Err(_) => return Err(ReadError::Closed),
            Ok(_) => {}
        }
        // Empty lines before a request line are allowed (RFC 9112 §2.2).
        while conn.buf.starts_with(b"\r\n") {
            conn.buf.drain(..2);
        }
    }
    conn.deadline = Some(Instant::now() + limits.read_timeout * REQUEST_DEADLINE_FACTOR);

    let end = loop {
        if let Some(i) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if conn.buf.len() > MAX_HEAD_BYTES {
            return Err(ReadError::Answer(431, "the request head is too large"));
        }
        conn.more()?;
    };
    if end > MAX_HEAD_BYTES {
        return Err(ReadError::Answer(431, "the request head is too large"));
    }
    let head = conn.take(end + 4)?;
    let head = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let bad = ReadError::Answer(400, "malformed request");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(ReadError::Answer(
                505,
                "only HTTP/1.0 and 1.1 are spoken here",
            ))
        }
    };
    if method.is_empty() || !target.starts_with('/') {
        return Err(bad);
    }
    let mut headers = Vec::new();
    for line in lines {
        // A folded line (obsolete) or a name with spaces is refused (RFC 9112 §5).
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad);
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut req = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body: Ok(Vec::new()),
        peer,
    };
    if handler.reset_after_head(&req) {
        return Err(ReadError::Reset);
    }

    let connection = req.header("connection").map(str::to_ascii_lowercase);
    let mut keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => !http10,
    };

    let chunked = match req.header("transfer-encoding") {
        None => false,
        Some(te) if te.to_ascii_lowercase().trim_end().ends_with("chunked") => {
            // With a Content-Length as well, the message is suspect (request smuggling):
            // read by the chunks, then close (RFC 9112 §6.3).
            if req.header("content-length").is_some() {
                keep_alive = false;
            }
            true
        }
        Some(_) => return Err(ReadError::Answer(400, "unsupported Transfer-Encoding")),
    };
    let length = if chunked {
        None
    } else {
        let mut values = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.any(|v| Some(v) != first) {
            return Err(ReadError::Answer(400, "conflicting Content-Length headers"));
        }
        match first {
            None => Some(0),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                Some(v.parse::<u64>().unwrap_or(u64::MAX))
            }
            Some(_) => return Err(ReadError::Answer(400, "malformed Content-Length")),
        }
    };

    let expects_continue = req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    if expects_continue && !http10 && length.is_none_or(|n| n <= limits.max_body as u64) {
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| writer.flush())
            .map_err(|_| ReadError::Closed)?;
    }

    match length {
        Some(n) if n <= limits.max_body as u64 => req.body = Ok(conn.take(n as usize)?),
        Some(n) => {
            req.body = Err(TooLarge);
            if n <= limits.max_drain && !expects_continue {
                conn.skip(n)?;
            } else {
                keep_alive = false;
            }
        }
        None => {
            let (body, complete) = read_chunked(conn, limits)?;
            req.body = body;
            keep_alive &= complete;
        }
    }
    Ok((req, keep_alive))
}

/// A chunked body: kept up to `max_body`, then dropped up to `max_drain`. `complete`:
/// whether the connection is at the end of it.
fn read_chunked(
    conn: &mut Conn,
    limits: &Limits,
) -> Result<(Result<Vec<u8>, TooLarge>, bool), ReadError> {
    let mut body = Vec::new();
    let mut total: u64 = 0;
    loop {
        let line = conn.line(1024)?;
        let line = String::from_utf8_lossy(&line);
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(hex, 16)
            .map_err(|_| ReadError::Answer(400, "malformed chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !conn.line(MAX_HEAD_BYTES)?.is_empty() {}
            let body = if total > limits.max_body as u64 {
                Err(TooLarge)
            } else {
                Ok(body)
            };
            return Ok((body, true));
        }
        total = total.saturating_add(size);
        if total > limits.max_drain {
            return Ok((Err(TooLarge), false));
        }
        if total <= limits.max_body as u64 {
            body.extend_from_slice(&conn.take(size as usize)?);
        } else {
            body = Vec::new();
            conn.skip(size)?;
        }
        if !conn.take(2)?.eq(b"\r\n") {
            return Err(ReadError::Answer(400, "malformed chunk"));
        }
    }
}

fn write_response(w: &mut impl Write, r: &Response, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        // Header values come from our own code, but a CR or LF would split the answer.
        if !v.contains(['\r', '\n']) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: {}\r\n\r\n",
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    w.write_all(head.as_bytes())?;
    w.write_all(&r.body)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server(read_timeout: Duration) -> (Server, SocketAddr) {
        let handler: Arc<dyn Handler> = Arc::new(|r: &Request| Response {
            status: if r.body.is_ok() { 200 } else { 413 },
            headers: Vec::new(),
            body: match &r.body {
                Ok(b) => b.clone(),
                Err(_) => b"too large".to_vec(),
            },
        });
        serve(read_timeout, handler)
    }

    fn serve(read_timeout: Duration, handler: Arc<dyn Handler>) -> (Server, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            read_timeout,
            max_body: 16,
            max_drain: 64,
        };
        (Server::start(listener, limits, handler).unwrap(), addr)
    }

    /// Resets requests to `/dead` once their head is read; answers the others 200.
    struct DeadPath;

    impl Handler for DeadPath {
        fn reset_after_head(&self, req: &Request) -> bool {
            req.target == "/dead"
        }

        fn answer(&self, _req: &Request) -> Response {
            Response {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
    }

    fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Keep-alive, chunked bodies, Expect: 100-continue and oversized bodies are framed
    /// right: every answer comes, in order, on one connection where it may.
    #[test]
    fn framing() {
        let (_server, addr) = echo_server(Duration::from_secs(10));
        let out = exchange(
            addr,
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
              POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1;x=y\r\nf\r\n0\r\n\r\n\
              POST /c HTTP/1.1\r\nContent-Length: 20\r\n\r\n01234567890123456789\
              POST /d HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz",
        );
        let statuses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|r| &r[..3]).collect();
        assert_eq!(statuses, ["200", "200", "413", "200"], "{out}");
        assert!(out.contains("\r\n\r\nabc"), "{out}");
        assert!(out.contains("\r\n\r\ndef"), "{out}");
        assert!(out.ends_with("\r\n\r\nz"), "{out}");

        let out = exchange(
            addr,
            b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        );
        assert!(
            out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"),
            "{out}"
        );
    }

    /// A huge Content-Length is answered (413) and the connection closed, without
    /// reading or allocating it.
    #[test]
    fn huge_content_length() {
        let (_server, addr) = echo_server(Duration::from_secs(10));
        let out = exchange(
            addr,
            b"POST /a HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nabc",
        );
        assert!(out.starts_with("HTTP/1.1 413"), "{out}");
        assert!(out.contains("Connection: close"), "{out}");
    }

    /// Malformed heads get a 400 and the connection is closed.
    #[test]
    fn malformed() {
        let (_server, addr) = echo_server(Duration::from_secs(10));
        for raw in [
            &b"NONSENSE\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let out = exchange(addr, raw);
            assert!(out.starts_with("HTTP/1.1 400"), "{:?}: {out}", raw);
        }
    }

    /// A handler's reset reaches the client as a TCP reset, not an answer nor a clean
    /// EOF, even with the body still unread, on a keep-alive connection that had been
    /// answered before; its thread is gone afterwards.
    #[test]
    fn reset_after_head() {
        let (server, addr) = serve(Duration::from_secs(10), Arc::new(DeadPath));
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /alive HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = [0u8; 12];
        s.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        s.write_all(b"POST /dead HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789")
            .unwrap();
        let mut rest = Vec::new();
        let err = s.read_to_end(&mut rest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        for _ in 0..200 {
            if server.open() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{} connections still open", server.open());
    }

    /// A client that stops mid-request gets a 408 once the timeout runs out, and its
    /// thread is gone afterwards.
    #[test]
    fn stalled_client_times_out() {
        let (server, addr) = echo_server(Duration::from_millis(300));
        let out = exchange(addr, b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        for _ in 0..200 {
            if server.open() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{} connections still open", server.open());
    }
}
