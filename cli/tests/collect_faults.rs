//! `trailhound collect` playing a dead endpoint (`--status 0`: connections reset once
//! the request head is read) and faults switched while it runs, in process
//! (`Collector::set_faults`) and over HTTP (`POST /api/faults`).

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use trailhound_cli::collect::{Collector, Config, Faults};

mod common;
use common::{cli, failed, message_ids, Bin};

/// An answer: status, headers, body.
struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

type Headers<'a> = &'a [(&'a str, &'a str)];

/// One request on its own connection. `Err`: no HTTP answer (a reset, or the connection
/// closed before a whole head arrived).
fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: Headers,
    body: &[u8],
) -> io::Result<Resp> {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    // One write: head and body are in the socket before the collector reads the head.
    s.write_all(&raw)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no answer"))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    Ok(Resp {
        status,
        headers: headers.to_owned(),
        body: answer[split + 4..].to_vec(),
    })
}

/// Posts a batch of one track event with Basic auth.
fn send(base: &str, path: &str, id: &str) -> io::Result<Resp> {
    let event = json!({"type": "track", "event": "Played", "anonymousId": "dev-1",
                       "messageId": id, "originalTimestamp": "2026-11-26T12:00:00.000Z"});
    let body = if path == "/v1/batch" {
        json!({"batch": [event]})
    } else {
        event
    };
    request(
        base,
        "POST",
        path,
        &[
            ("Authorization", "Basic azo="),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// The request got no HTTP answer: the connection was reset.
fn assert_reset(r: io::Result<Resp>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{what}: {e}"),
        Ok(r) => panic!("{what}: answered {} instead of a reset", r.status),
    }
}

/// The request was answered with `status`.
fn answered(r: io::Result<Resp>, status: u16, what: &str) -> Resp {
    let r = r.unwrap_or_else(|e| panic!("{what}: no answer ({e})"));
    assert_eq!(
        r.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r
}

fn get(base: &str, path: &str) -> Value {
    answered(request(base, "GET", path, &[], b""), 200, path).json()
}

/// `POST /api/faults` with a JSON body.
fn post_faults(base: &str, body: &str) -> io::Result<Resp> {
    request(
        base,
        "POST",
        "/api/faults",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

fn start(faults: Faults) -> Collector {
    Collector::start(Config {
        faults,
        ..Config::default()
    })
    .expect("start the collector")
}

fn no_answer() -> Faults {
    Faults {
        status: Some(Faults::NO_ANSWER),
        ..Faults::default()
    }
}

fn stored(c: &Collector) -> Vec<String> {
    c.events()
        .into_iter()
        .filter_map(|e| e.message_id)
        .collect()
}

/// `--status 000` resets every tracking request (batch and single event) instead of
/// answering, stores nothing, counts each as a failed request and logs it, while the
/// page and /api keep answering.
#[test]
fn status_000_resets_tracking_requests() {
    let mut bin = Bin::spawn(&["--memory", "--status", "000", "--retry-after", "5"]);
    assert_reset(send(&bin.url, "/v1/batch", "d1"), "batch");
    assert_reset(send(&bin.url, "/v1/track", "d2"), "track");

    assert_eq!(get(&bin.url, "/api/events")["total"], 0);
    let stats = get(&bin.url, "/api/stats");
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["failed_requests"], 2);
    assert_eq!(stats["accepted"], 0);
    assert_eq!(get(&bin.url, "/api/faults")["status"], 0);
    answered(request(&bin.url, "GET", "/", &[], b""), 200, "the page");

    for path in ["/v1/batch", "/v1/track"] {
        let mut line = String::new();
        bin.stdout.read_line(&mut line).expect("a log line");
        assert!(
            line.contains(&format!("POST {path} 000: no answer, connection reset")),
            "{line:?}"
        );
    }
}

/// `--status 0` is the same fault; a status the collector cannot play is refused
/// before it listens, naming what it takes.
#[test]
fn status_flag_values() {
    let bin = Bin::spawn(&["--memory", "--quiet", "--status", "0"]);
    assert_reset(send(&bin.url, "/v1/batch", "z1"), "--status 0");
    for bad in ["42", "600", "abc", "-1"] {
        let (_, err) = failed(&cli(&["collect", "--memory", &format!("--status={bad}")]));
        assert!(err.contains("--status"), "{bad}: {err}");
        if bad == "42" {
            assert!(
                err.contains("must be 0 (no answer: the connection is reset) or an HTTP status"),
                "{err}"
            );
        }
    }
}

/// A preflight is not a tracking request: a browser's CORS check still passes, and the
/// POST that follows is the one reset.
#[test]
fn preflight_still_answered() {
    let c = start(no_answer());
    let r = request(
        &c.url(),
        "OPTIONS",
        "/v1/batch",
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    let r = answered(r, 204, "preflight");
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(c.stats().requests, 0);
}

/// A dead primary that recovers: `set_faults` switches between no answer, answers and
/// injected statuses, each taking effect on the next request; only answered requests
/// store their events.
#[test]
fn set_faults_switches_on_the_next_request() {
    let c = start(no_answer());
    let url = c.url();
    assert_reset(send(&url, "/v1/batch", "a1"), "dead");

    c.set_faults(Faults::default()).unwrap();
    answered(send(&url, "/v1/batch", "a2"), 200, "recovered");

    c.set_faults(no_answer()).unwrap();
    assert_reset(send(&url, "/v1/batch", "a3"), "dead again");

    c.set_faults(Faults {
        status: Some(503),
        retry_after: Some(3),
        ..Faults::default()
    })
    .unwrap();
    let r = answered(send(&url, "/v1/batch", "a4"), 503, "503");
    assert_eq!(r.header("Retry-After"), Some("3"));

    assert_eq!(stored(&c), ["a2"]);
    let stats = c.stats();
    assert_eq!((stats.requests, stats.failed_requests), (4, 3));
    assert_eq!(c.request_times().len(), 4);
}

/// `set_faults` refuses what the collector cannot play and keeps the faults it had.
#[test]
fn set_faults_refuses_bad_values() {
    let c = start(no_answer());
    for (bad, why) in [
        (
            Faults {
                status: Some(42),
                ..Faults::default()
            },
            "status must be 0",
        ),
        (
            Faults {
                fail_rate: 1.5,
                ..Faults::default()
            },
            "fail_rate must be between 0 and 1",
        ),
        (
            Faults {
                fail_rate: f64::NAN,
                ..Faults::default()
            },
            "fail_rate must be between 0 and 1",
        ),
    ] {
        let err = c.set_faults(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
        assert_eq!(c.faults(), no_answer());
    }
    assert_reset(send(&c.url(), "/v1/batch", "b1"), "still dead");
}

/// `POST /api/faults` switches the faults of a running binary, effective on the next
/// request, and answers the faults now in effect; fields left out are no fault.
#[test]
fn api_faults_switches_on_the_next_request() {
    let bin = Bin::spawn(&["--memory", "--quiet"]);
    let url = &bin.url;
    answered(send(url, "/v1/batch", "c1"), 200, "healthy");

    let r = answered(post_faults(url, r#"{"status": 0}"#), 200, "set dead");
    assert_eq!(
        r.json(),
        json!({"fail_rate": 0.0, "status": 0, "retry_after": null, "latency_ms": 0})
    );
    assert_reset(send(url, "/v1/batch", "c2"), "dead");
    assert_reset(send(url, "/v1/identify", "c3"), "dead");

    answered(post_faults(url, r#"{"status": null}"#), 200, "recover");
    answered(send(url, "/v1/batch", "c4"), 200, "recovered");

    answered(
        post_faults(url, r#"{"status": 503, "retry_after": 5}"#),
        200,
        "set 503",
    );
    let r = answered(send(url, "/v1/batch", "c5"), 503, "503");
    assert_eq!(r.header("Retry-After"), Some("5"));

    answered(
        post_faults(url, r#"{"fail_rate": 1}"#),
        200,
        "set fail rate",
    );
    let r = answered(send(url, "/v1/batch", "c6"), 503, "fail rate 1");
    assert_eq!(r.header("Retry-After"), None);

    answered(post_faults(url, "{}"), 200, "clear");
    answered(send(url, "/v1/batch", "c7"), 200, "clear");
    assert_eq!(get(url, "/api/faults"), json!(Faults::default()));

    let events = get(url, "/api/events");
    let mut ids = message_ids(&events);
    ids.reverse();
    assert_eq!(ids, ["c1", "c4", "c7"]);
    let stats = get(url, "/api/stats");
    assert_eq!(stats["requests"], 7);
    assert_eq!(stats["failed_requests"], 4);
}

/// Bad JSON, unknown fields and values out of range are refused with 400 and a message
/// saying what is wrong; a body that is not JSON-typed with 415, another site's page
/// with 403; every refusal leaves the faults as they were.
#[test]
fn api_faults_refuses_bad_bodies() {
    let mut kept = no_answer();
    kept.latency_ms = 1;
    let c = start(kept.clone());
    let url = c.url();
    let json_type = [("Content-Type", "application/json")];
    // (body, headers, status, part of the error)
    let cases: &[(&str, Headers, u16, &str)] = &[
        ("not json", &json_type, 400, "expected {\"status\""),
        ("", &json_type, 400, "EOF"),
        ("[0]", &json_type, 400, "found an array"),
        (r#"{"status": 42}"#, &json_type, 400, "status must be 0"),
        (r#"{"status": 600}"#, &json_type, 400, "got 600"),
        (r#"{"status": -1}"#, &json_type, 400, "invalid value"),
        (r#"{"status": 70000}"#, &json_type, 400, "invalid value"),
        (r#"{"status": "0"}"#, &json_type, 400, "invalid type"),
        (
            r#"{"fail_rate": 1.5}"#,
            &json_type,
            400,
            "fail_rate must be",
        ),
        (
            r#"{"fail_rate": -0.1}"#,
            &json_type,
            400,
            "fail_rate must be",
        ),
        (r#"{"retry_after": -1}"#, &json_type, 400, "invalid value"),
        (r#"{"fail-rate": 0.5}"#, &json_type, 400, "unknown field"),
        (
            r#"{"status": 0}"#,
            &[],
            415,
            "Content-Type: application/json",
        ),
        (
            r#"{"status": 0}"#,
            &[("Content-Type", "text/plain")],
            415,
            "Content-Type: application/json",
        ),
        (
            r#"{"status": null}"#,
            &[
                ("Content-Type", "application/json"),
                ("Origin", "http://evil.example"),
            ],
            403,
            "only the collector's own page",
        ),
    ];
    for (body, headers, status, why) in cases {
        let r = request(&url, "POST", "/api/faults", headers, body.as_bytes());
        let r = answered(r, *status, body);
        let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(why), "{body}: {error}");
        assert_eq!(c.faults(), kept, "{body}");
    }
    let r = request(&url, "PUT", "/api/faults", &json_type, b"{}");
    assert_eq!(answered(r, 405, "PUT").header("Allow"), Some("GET, POST"));
    assert_reset(send(&url, "/v1/batch", "e1"), "still dead");
    assert!(stored(&c).is_empty());

    // The collector's own page may.
    let own = format!("http://{}", url.trim_start_matches("http://"));
    let r = request(
        &url,
        "POST",
        "/api/faults",
        &[("Content-Type", "application/json"), ("Origin", &own)],
        b"{}",
    );
    answered(r, 200, "own page");
    answered(send(&url, "/v1/batch", "e2"), 200, "cleared");
}
