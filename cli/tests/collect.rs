//! `trailhound collect` end to end: the binary and the in-process collector, over real
//! HTTP, with hand-written requests (so the tests control every header and byte).

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trailhound_cli::collect::{Collector, Config, Faults};

mod common;
use common::{message_ids, Bin};

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client.

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn request(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    // A test may send its own Host (a DNS rebinding page's).
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    head.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    ));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[end + 2..end + 2 + size]);
        b = &b[end + 4 + size..];
    }
}

fn basic(key: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Posts a JSON body with Basic auth for `key`.
fn post(base: &str, path: &str, key: &str, body: &Value) -> Resp {
    let auth = basic(key);
    request(
        base,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

fn get(base: &str, path: &str) -> Value {
    let r = request(base, "GET", path, &[], b"");
    assert_eq!(
        r.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// Polls until `f` gives `Some`, failing after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn track(id: &str, name: &str) -> Value {
    json!({"type": "track", "event": name, "anonymousId": "dev-1", "messageId": id,
           "originalTimestamp": "2026-11-26T12:00:00.000Z", "properties": {"case": id}})
}

fn batch(events: Vec<Value>) -> Value {
    json!({"batch": events, "sentAt": "2026-11-26T12:00:01.000Z"})
}

// ---------------------------------------------------------------------------
// The binary.

fn collector(write_key: Option<&str>) -> Collector {
    Collector::start(Config {
        write_key: write_key.map(str::to_owned),
        ..Config::default()
    })
    .expect("start the collector")
}

// ---------------------------------------------------------------------------

/// Every kind of good and bad payload gets Segment's answer, and each bad event is kept
/// with a reason naming what is wrong.
#[test]
fn payload_table() {
    let c = collector(None);
    let url = c.url();
    let with = |id: &str, change: &dyn Fn(&mut Value)| {
        let mut e = track(id, "Song Played");
        change(&mut e);
        e
    };
    // (case, path, body, expected status, expected stored event: (valid, reason part))
    type Case = (
        &'static str,
        &'static str,
        Value,
        u16,
        Option<(bool, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "good",
            "/v1/batch",
            batch(vec![track("good", "Song Played")]),
            200,
            Some((true, "")),
        ),
        (
            "no-ids",
            "/v1/batch",
            batch(vec![with("no-ids", &|e| {
                e.as_object_mut().unwrap().remove("anonymousId");
            })]),
            200,
            Some((false, "neither `userId` nor `anonymousId`")),
        ),
        (
            "no-message-id",
            "/v1/batch",
            batch(vec![with("no-message-id", &|e| {
                e.as_object_mut().unwrap().remove("messageId");
            })]),
            200,
            Some((false, "`messageId` is missing")),
        ),
        (
            "long-message-id",
            "/v1/batch",
            batch(vec![with("long-message-id", &|e| {
                e["messageId"] = json!("x".repeat(101))
            })]),
            200,
            Some((false, "101 characters")),
        ),
        (
            "bad-timestamp",
            "/v1/batch",
            batch(vec![with("bad-timestamp", &|e| {
                e["timestamp"] = json!("last tuesday")
            })]),
            200,
            Some((false, "`timestamp` \"last tuesday\" is not an ISO-8601")),
        ),
        (
            "unknown-type",
            "/v1/batch",
            batch(vec![with("unknown-type", &|e| e["type"] = json!("click"))]),
            200,
            Some((false, "unknown `type` \"click\"")),
        ),
        (
            "track-no-event",
            "/v1/batch",
            batch(vec![with("track-no-event", &|e| {
                e.as_object_mut().unwrap().remove("event");
            })]),
            200,
            Some((false, "track: `event`")),
        ),
        (
            "group-no-group-id",
            "/v1/batch",
            batch(vec![with("group-no-group-id", &|e| {
                e["type"] = json!("group")
            })]),
            200,
            Some((false, "group: `groupId`")),
        ),
        (
            "alias-no-previous",
            "/v1/batch",
            batch(vec![with("alias-no-previous", &|e| {
                e["type"] = json!("alias");
                e["userId"] = json!("u1");
            })]),
            200,
            Some((false, "alias: `previousId`")),
        ),
        (
            "event-over-32k",
            "/v1/batch",
            batch(vec![with("event-over-32k", &|e| {
                e["properties"]["blob"] = json!("y".repeat(33 * 1024))
            })]),
            200,
            Some((false, "more than the 32 KB limit")),
        ),
        (
            "single-track",
            "/v1/track",
            with("single-track", &|e| {
                e.as_object_mut().unwrap().remove("type");
            }),
            200,
            Some((true, "")),
        ),
        (
            "single-wrong-type",
            "/v1/screen",
            track("single-wrong-type", "Song Played"),
            200,
            Some((false, "sent to the /v1/screen endpoint")),
        ),
        (
            "body-over-500k",
            "/v1/batch",
            batch(
                (0..20)
                    .map(|i| {
                        let mut e = track(&format!("big-{i}"), "Big");
                        e["properties"]["blob"] = json!("z".repeat(30 * 1024));
                        e
                    })
                    .collect(),
            ),
            413,
            None,
        ),
        (
            "batch-not-array",
            "/v1/batch",
            json!({"batch": {}}),
            400,
            None,
        ),
    ];
    let mut failed = 0;
    for (case, path, body, status, _) in &cases {
        let r = post(&url, path, "key", body);
        assert_eq!(
            r.status,
            *status,
            "{case}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let answer = r.json();
        if *status == 200 {
            assert_eq!(answer, json!({"success": true}), "{case}");
        } else {
            failed += 1;
            assert!(
                answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{case}: {answer}"
            );
        }
    }
    let events = get(&url, "/api/events")["events"]
        .as_array()
        .unwrap()
        .clone();
    for (case, _, _, _, expect) in &cases {
        let stored: Vec<&Value> = events
            .iter()
            .filter(|e| e["json"]["properties"]["case"] == *case)
            .collect();
        match expect {
            None => assert!(stored.is_empty(), "{case}: stored {stored:?}"),
            Some((valid, reason)) => {
                assert_eq!(stored.len(), 1, "{case}");
                let e = stored[0];
                assert_eq!(e["valid"], *valid, "{case}: {e}");
                if *valid {
                    assert!(e["error"].is_null(), "{case}: {e}");
                } else {
                    let error = e["error"].as_str().unwrap_or_default();
                    assert!(error.contains(reason), "{case}: {error:?} lacks {reason:?}");
                }
            }
        }
    }
    // Nothing of the refused big body was stored, not even its first events.
    assert!(!events.iter().any(|e| e["name"] == "Big"));
    let stats = get(&url, "/api/stats");
    assert_eq!(stats["accepted"], 2);
    assert_eq!(stats["invalid"], 10);
    assert_eq!(stats["requests"], cases.len());
    assert_eq!(stats["failed_requests"], failed);
}

/// Bodies that cannot be read as JSON get a 400 with a JSON error; a gzip body is read.
#[test]
fn encodings() {
    let c = collector(None);
    let url = c.url();
    let auth = basic("key");
    let gz = ("Content-Encoding", "gzip");
    let ok = batch(vec![track("gz", "Zipped")]).to_string();
    // (case, headers, body, expected status, error part)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("gzip", vec![gz], gzip(ok.as_bytes()), 200, ""),
        (
            "bad gzip",
            vec![gz],
            b"not gzip at all".to_vec(),
            400,
            "not valid gzip",
        ),
        (
            "bad JSON",
            vec![],
            b"{\"batch\": [".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "gzip of bad JSON",
            vec![gz],
            gzip(b"nope"),
            400,
            "not valid JSON",
        ),
        (
            "not an object",
            vec![],
            b"[1,2]".to_vec(),
            400,
            "JSON object",
        ),
        (
            "deflate",
            vec![("Content-Encoding", "deflate")],
            ok.clone().into_bytes(),
            400,
            "unsupported Content-Encoding",
        ),
    ];
    for (case, mut headers, body, status, reason) in cases {
        headers.push(("Authorization", &auth));
        let r = request(&url, "POST", "/v1/batch", &headers, &body);
        assert_eq!(r.status, status, "{case}");
        if status != 200 {
            let err = r.json()["error"].as_str().unwrap_or_default().to_owned();
            assert!(err.contains(reason), "{case}: {err}");
        }
    }
    let events = c.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name.as_deref(), Some("Zipped"));
    assert!(events[0].valid);
}

/// Without `--write-key` any key is accepted but a missing one is 401; with it, only
/// that key passes, from the header or from the body's `writeKey` (sendBeacon).
#[test]
fn write_keys() {
    let any = collector(None);
    let url = any.url();
    let body = batch(vec![track("k1", "Keyed")]);
    assert_eq!(post(&url, "/v1/batch", "whatever", &body).status, 200);
    let no_auth = request(&url, "POST", "/v1/batch", &[], body.to_string().as_bytes());
    assert_eq!(no_auth.status, 401);
    assert!(no_auth.json()["error"]
        .as_str()
        .unwrap()
        .contains("no write key"));
    let garbage = request(
        &url,
        "POST",
        "/v1/batch",
        &[("Authorization", "Bearer abc")],
        body.to_string().as_bytes(),
    );
    assert_eq!(garbage.status, 401);

    let strict = collector(Some("right"));
    let url = strict.url();
    assert_eq!(post(&url, "/v1/batch", "wrong", &body).status, 401);
    let mut in_body = batch(vec![track("k2", "Beacon")]);
    in_body["writeKey"] = json!("wrong");
    let r = request(
        &url,
        "POST",
        "/v1/batch",
        &[],
        in_body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 401);
    in_body["writeKey"] = json!("right");
    let r = request(
        &url,
        "POST",
        "/v1/batch",
        &[("Content-Type", "text/plain;charset=UTF-8")],
        in_body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    let single = json!({"event": "Single", "userId": "u", "messageId": "k3", "writeKey": "right"});
    let r = request(
        &url,
        "POST",
        "/v1/track",
        &[],
        single.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(post(&url, "/v1/batch", "right", &body).status, 200);

    let names: Vec<_> = strict
        .events()
        .iter()
        .map(|e| e.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["Beacon", "Single", "Keyed"]);
    // The key is auth, not part of the event: it is not kept.
    assert!(strict.events()[1].json.get("writeKey").is_none());
    assert_eq!(strict.stats().failed_requests, 2);
}

/// A browser page on another origin can post: the preflight is answered and every
/// answer carries the CORS headers.
#[test]
fn cors() {
    let c = collector(None);
    let url = c.url();
    let origin = ("Origin", "http://localhost:3000");
    let pre = request(
        &url,
        "OPTIONS",
        "/v1/batch",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    );
    assert!((200..300).contains(&pre.status), "{}", pre.status);
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some("http://localhost:3000")
    );
    let allow = pre
        .header("Access-Control-Allow-Headers")
        .unwrap()
        .to_lowercase();
    for h in ["authorization", "content-type", "content-encoding"] {
        assert!(allow.contains(h), "{allow}");
    }
    assert!(pre
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("POST"));

    let auth = basic("k");
    let body = batch(vec![track("c1", "Cors")]).to_string();
    let r = request(
        &url,
        "POST",
        "/v1/batch",
        &[origin, ("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://localhost:3000")
    );
    // Errors too, or the page could not read why it was refused.
    let r = request(&url, "POST", "/v1/batch", &[origin], body.as_bytes());
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    // The read API is same-origin only.
    let r = request(&url, "GET", "/api/stats", &[], b"");
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

/// A repeated `messageId` is stored once and counted as a duplicate, also across
/// requests and within one batch.
#[test]
fn duplicates() {
    let c = collector(None);
    let url = c.url();
    let b = batch(vec![track("d1", "A"), track("d2", "B"), track("d1", "A")]);
    assert_eq!(post(&url, "/v1/batch", "k", &b).status, 200);
    assert_eq!(post(&url, "/v1/batch", "k", &b).status, 200);
    let stats = get(&url, "/api/stats");
    assert_eq!(stats["accepted"], 2);
    assert_eq!(stats["duplicates"], 4);
    assert_eq!(get(&url, "/api/events")["total"], 2);
}

/// The corrected timestamp is receivedAt minus the device's own send delay, and every
/// original value is kept.
#[test]
fn clock_skew() {
    let c = collector(None);
    let url = c.url();
    // A device whose clock is years ahead, which sent the event 10 s after recording it.
    let mut e = track("skew", "Skewed");
    e["originalTimestamp"] = json!("2031-05-01T08:00:00.000Z");
    let b = json!({"batch": [e], "sentAt": "2031-05-01T08:00:10.250Z"});
    let before = chrono::Utc::now();
    assert_eq!(post(&url, "/v1/batch", "k", &b).status, 200);
    let after = chrono::Utc::now();
    let ev = get(&url, "/api/events")["events"][0].clone();
    let t = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(ev[k].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    assert_eq!(ev["originalTimestamp"], "2031-05-01T08:00:00.000Z");
    assert_eq!(ev["sentAt"], "2031-05-01T08:00:10.250Z");
    assert_eq!(
        (t("receivedAt") - t("timestamp")).num_milliseconds(),
        10_250
    );
    assert!(t("receivedAt") >= before - chrono::Duration::milliseconds(1));
    assert!(t("receivedAt") <= after);
    // The typed API says the same.
    let typed = &c.events()[0];
    assert_eq!(
        typed.received_at - typed.timestamp,
        chrono::Duration::milliseconds(10_250)
    );

    // Without sentAt the event's own timestamp stands.
    let mut e = track("no-sent", "Plain");
    e["timestamp"] = json!("2026-01-02T03:04:05.000Z");
    assert_eq!(
        post(&url, "/v1/batch", "k", &json!({"batch": [e]})).status,
        200
    );
    let ev = &get(&url, "/api/events?event=Plain")["events"][0];
    assert_eq!(ev["timestamp"], "2026-01-02T03:04:05.000Z");
}

/// `--status 503 --retry-after 7` answers every batch with 503 and `Retry-After: 7`,
/// stores nothing, and counts the failures.
#[test]
fn injected_status() {
    let bin = Bin::spawn(&[
        "--memory",
        "--quiet",
        "--status",
        "503",
        "--retry-after",
        "7",
    ]);
    for i in 0..3 {
        let r = post(
            &bin.url,
            "/v1/batch",
            "k",
            &batch(vec![track(&format!("f{i}"), "F")]),
        );
        assert_eq!(r.status, 503);
        assert_eq!(r.header("Retry-After"), Some("7"));
    }
    let single = post(&bin.url, "/v1/track", "k", &track("f9", "F"));
    assert_eq!(single.status, 503);
    assert_eq!(get(&bin.url, "/api/events")["total"], 0);
    let stats = get(&bin.url, "/api/stats");
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["failed_requests"], 4);
    assert_eq!(stats["accepted"], 0);
}

/// `--fail-rate 0.5` fails some requests but not all, stores exactly the events of the
/// answered ones, and faults can be switched off at runtime.
#[test]
fn fail_rate() {
    let c = Collector::start(Config {
        faults: Faults {
            fail_rate: 0.5,
            ..Faults::default()
        },
        ..Config::default()
    })
    .unwrap();
    let url = c.url();
    let mut ok = Vec::new();
    for i in 0..40 {
        let id = format!("r{i}");
        match post(&url, "/v1/batch", "k", &batch(vec![track(&id, "R")])).status {
            200 => ok.push(id),
            503 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    assert!((5..=35).contains(&ok.len()), "{} of 40 succeeded", ok.len());
    let stored: Vec<String> = c
        .events()
        .into_iter()
        .filter_map(|e| e.message_id)
        .collect();
    assert_eq!(stored, ok);
    let stats = c.stats();
    assert_eq!(stats.requests, 40);
    assert_eq!(stats.failed_requests as usize, 40 - ok.len());
    assert_eq!(c.request_times().len(), 40);

    c.set_faults(Faults::default()).unwrap();
    for i in 0..5 {
        let r = post(
            &url,
            "/v1/batch",
            "k",
            &batch(vec![track(&format!("s{i}"), "S")]),
        );
        assert_eq!(r.status, 200);
    }
}

/// The `--fail-rate` flag reaches the collector: some of 40 requests fail, not all.
#[test]
fn fail_rate_flag() {
    let bin = Bin::spawn(&[
        "--memory",
        "--quiet",
        "--fail-rate",
        "0.5",
        "--retry-after",
        "2",
    ]);
    let mut failed = 0;
    for i in 0..40 {
        let r = post(
            &bin.url,
            "/v1/batch",
            "k",
            &batch(vec![track(&format!("b{i}"), "B")]),
        );
        if r.status == 503 {
            assert_eq!(r.header("Retry-After"), Some("2"));
            failed += 1;
        } else {
            assert_eq!(r.status, 200);
            assert!(r.header("Retry-After").is_none());
        }
    }
    assert!((5..=35).contains(&failed), "{failed} of 40 failed");
    let stats = get(&bin.url, "/api/stats");
    assert_eq!(stats["failed_requests"], failed);
    assert_eq!(stats["accepted"], 40 - failed);
}

/// `--latency` holds every answer to a tracking request for at least that long.
#[test]
fn latency() {
    let c = Collector::start(Config {
        faults: Faults {
            latency_ms: 300,
            ..Faults::default()
        },
        ..Config::default()
    })
    .unwrap();
    let start = Instant::now();
    let r = post(
        &c.url(),
        "/v1/batch",
        "k",
        &batch(vec![track("l1", "Slow")]),
    );
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

/// With `--db`, events (valid and invalid), dedup and counters survive a restart of the
/// collector process, even a kill.
#[test]
fn persistence_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qa.db");
    let db = db.to_str().unwrap();
    let first = Bin::spawn(&["--db", db, "--quiet"]);
    let mut bad = track("p2", "Broken");
    bad["type"] = json!("nope");
    let b = batch(vec![track("p1", "Kept"), bad, track("p1", "Kept")]);
    assert_eq!(post(&first.url, "/v1/batch", "k", &b).status, 200);
    let no_key = request(
        &first.url,
        "POST",
        "/v1/batch",
        &[],
        b.to_string().as_bytes(),
    );
    assert_eq!(no_key.status, 401);
    let events_before = get(&first.url, "/api/events");
    let stats_before = get(&first.url, "/api/stats");
    drop(first);

    let second = Bin::spawn(&["--db", db, "--quiet"]);
    assert_eq!(get(&second.url, "/api/events"), events_before);
    assert_eq!(get(&second.url, "/api/stats"), stats_before);
    assert_eq!(stats_before["accepted"], 1);
    assert_eq!(stats_before["invalid"], 1);
    assert_eq!(stats_before["duplicates"], 1);
    assert_eq!(stats_before["failed_requests"], 1);
    // Dedup remembers what was stored before the restart; ids keep increasing.
    let b = batch(vec![track("p1", "Kept"), track("p3", "New")]);
    assert_eq!(post(&second.url, "/v1/batch", "k", &b).status, 200);
    let after = get(&second.url, "/api/events");
    assert_eq!(after["total"], 3);
    assert_eq!(after["events"][0]["id"], 3);
    assert_eq!(get(&second.url, "/api/stats")["duplicates"], 2);
}

/// The first stdout line is exactly the URL line, and a line per request follows.
#[test]
fn first_line_and_log() {
    let mut bin = Bin::spawn(&["--memory"]);
    let port: u16 = bin
        .url
        .strip_prefix("http://127.0.0.1:")
        .expect("loopback URL")
        .parse()
        .expect("a port");
    assert_ne!(port, 0);
    let mut bad = track("log2", "Bad");
    bad["type"] = json!("nope");
    let b = batch(vec![track("log1", "Logged"), bad]);
    assert_eq!(post(&bin.url, "/v1/batch", "k", &b).status, 200);
    let mut line = String::new();
    bin.stdout.read_line(&mut line).unwrap();
    assert!(line.contains("POST /v1/batch 200"), "{line}");
    assert!(line.contains("1 accepted, 1 invalid"), "{line}");
    line.clear();
    bin.stdout.read_line(&mut line).unwrap();
    assert!(line.contains("invalid") && line.contains("log2"), "{line}");
}

/// A bad command line is refused with a clear error, not half-started.
#[test]
fn bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["collect", "--memory", "--fail-rate", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 1"));
    assert!(out.stdout.is_empty());
}

/// `/api/events` filters by type, name, validity and id, newest first, with `total`.
#[test]
fn api_filters() {
    let c = collector(None);
    let url = c.url();
    let mut screen = track("a3", "");
    screen["type"] = json!("screen");
    screen["name"] = json!("Home");
    screen.as_object_mut().unwrap().remove("event");
    let mut bad = track("a4", "Song Played");
    bad.as_object_mut().unwrap().remove("anonymousId");
    let b = batch(vec![
        track("a1", "Song Played"),
        track("a2", "Song Paused"),
        screen,
        bad,
    ]);
    assert_eq!(post(&url, "/v1/batch", "k", &b).status, 200);
    let ids = |q: &str| -> Vec<String> { message_ids(&get(&url, &format!("/api/events{q}"))) };
    assert_eq!(ids(""), ["a4", "a3", "a2", "a1"]);
    assert_eq!(ids("?type=screen"), ["a3"]);
    assert_eq!(ids("?event=Song%20Played"), ["a4", "a1"]);
    assert_eq!(ids("?event=Song+Played&valid=true"), ["a1"]);
    assert_eq!(ids("?valid=false"), ["a4"]);
    assert_eq!(ids("?since_id=2"), ["a4", "a3"]);
    let limited = get(&url, "/api/events?limit=1");
    assert_eq!(limited["total"], 4);
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
    let e = &get(&url, "/api/events?type=screen")["events"][0];
    assert_eq!(e["name"], "Home");
    assert_eq!(e["anonymousId"], "dev-1");
    assert!(e["userId"].is_null());
    assert_eq!(e["json"]["properties"]["case"], "a3");
    assert_eq!(
        request(&url, "GET", "/api/events?limit=many", &[], b"").status,
        400
    );
    assert_eq!(request(&url, "GET", "/nope", &[], b"").status, 404);

    let stats = c.stats();
    assert_eq!(stats.top_events[0].name, "Song Paused");
    assert_eq!(stats.top_screens[0].name, "Home");
    assert_eq!(stats.top_devices[0].count, 3);
    assert_eq!(stats.per_minute.iter().map(|m| m.count).sum::<u64>(), 3);
}

/// The real SDK's gzip batches with Basic auth are accepted and every event is valid.
#[test]
fn real_sdk() {
    let c = collector(Some("sdk-key"));
    let dir = tempfile::tempdir().unwrap();
    let client = trailhound::Builder::new("sdk-key", c.url(), dir.path().join("q"))
        .build()
        .expect("build the client");
    client
        .identify(Some("user-7"), json!({"plan": "pro"}))
        .unwrap();
    client
        .track("Song Played", json!({"title": "Nachtmusik"}))
        .unwrap();
    client.screen("Library", json!({})).unwrap();
    client.group("band-1", json!({})).unwrap();
    client.track("Song Paused", json!({})).unwrap();
    let events = wait_for("the SDK's events", Duration::from_secs(30), || {
        let _ = client.flush();
        let v = get(&c.url(), "/api/events?limit=100");
        (v["total"].as_u64() >= Some(5)).then_some(v)
    });
    client.shutdown(Duration::from_secs(5)).unwrap();
    for e in events["events"].as_array().unwrap() {
        assert_eq!(e["valid"], true, "{e}");
        assert_eq!(e["userId"], "user-7");
    }
    let names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for n in ["Song Played", "Song Paused", "Library"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert_eq!(c.stats().failed_requests, 0);
}

// ---------------------------------------------------------------------------
// Who may talk to the collector (issue 9, item 12).

const CORS_HEADERS: [&str; 4] = [
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
];

fn no_cors(r: &Resp, what: &str) {
    for h in CORS_HEADERS {
        assert_eq!(r.header(h), None, "{what}: {h}");
    }
}

/// The page and the read API answer no CORS headers to any origin, a foreign one
/// included, and a preflight for them is not granted: another site cannot read a
/// session's user ids.
#[test]
fn read_api_has_no_cors() {
    let c = collector(None);
    let url = c.url();
    post(&url, "/v1/batch", "k", &batch(vec![track("r1", "Secret")]));
    for origin in ["https://evil.example", "http://localhost:3000", "null"] {
        for path in ["/api/events", "/api/stats", "/", "/assets/app.js"] {
            let r = request(&url, "GET", path, &[("Origin", origin)], b"");
            assert_eq!(r.status, 200, "{origin} {path}");
            no_cors(&r, &format!("GET {path} from {origin}"));
        }
        let pre = request(
            &url,
            "OPTIONS",
            "/api/events",
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
            b"",
        );
        assert!(!(200..300).contains(&pre.status), "{}", pre.status);
        no_cors(&pre, &format!("preflight from {origin}"));
    }
}

/// A page of a foreign origin cannot send events (403, no CORS headers, nothing stored,
/// not counted); pages on this machine can, with their origin echoed and credentials
/// allowed (what sendBeacon needs).
#[test]
fn only_local_pages_send_events() {
    let c = collector(None);
    let url = c.url();
    let auth = basic("k");
    for (i, origin) in ["https://evil.example", "http://192.168.1.5:3000", "null"]
        .into_iter()
        .enumerate()
    {
        let body = batch(vec![track(&format!("evil{i}"), "Evil")]).to_string();
        let r = request(
            &url,
            "POST",
            "/v1/batch",
            &[("Origin", origin), ("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 403, "{origin}");
        no_cors(&r, origin);
        let pre = request(
            &url,
            "OPTIONS",
            "/v1/batch",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        );
        assert_eq!(pre.status, 403, "preflight from {origin}");
        no_cors(&pre, origin);
    }
    assert_eq!(c.stats().requests, 0);
    assert!(c.events().is_empty());
    for (i, origin) in [
        "http://127.0.0.1:5173",
        "http://localhost:3000",
        "https://app.localhost",
        "http://[::1]:8080",
    ]
    .into_iter()
    .enumerate()
    {
        // sendBeacon's shape: the key in the body, text/plain.
        let mut body = batch(vec![track(&format!("ok{i}"), "Local")]);
        body["writeKey"] = json!("k");
        let r = request(
            &url,
            "POST",
            "/v1/batch",
            &[("Origin", origin), ("Content-Type", "text/plain")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{origin}");
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some(origin));
        assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    }
    assert_eq!(c.stats().accepted, 4);
}

/// `--allow-origin` lets one more origin send events (never read them); others stay
/// refused.
#[test]
fn allow_origin_flag() {
    let bin = Bin::spawn(&[
        "--memory",
        "--quiet",
        "--allow-origin",
        "http://192.168.1.5:3000",
    ]);
    let auth = basic("k");
    let send = |origin: &str, id: &str| {
        let body = batch(vec![track(id, "Lan")]).to_string();
        request(
            &bin.url,
            "POST",
            "/v1/batch",
            &[("Origin", origin), ("Authorization", &auth)],
            body.as_bytes(),
        )
    };
    let r = send("http://192.168.1.5:3000", "lan1");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://192.168.1.5:3000")
    );
    assert_eq!(send("http://192.168.1.6:3000", "lan2").status, 403);
    let r = request(
        &bin.url,
        "GET",
        "/api/events",
        &[("Origin", "http://192.168.1.5:3000")],
        b"",
    );
    no_cors(&r, "allowed origin reading");
    assert_eq!(r.json()["total"], 1);
}

/// A request whose Host is not this machine (a DNS rebinding page's) is refused on
/// every route; localhost and IP addresses pass.
#[test]
fn dns_rebinding_host_refused() {
    let c = collector(None);
    let url = c.url();
    let port = url.rsplit(':').next().unwrap().to_owned();
    let body = batch(vec![track("h1", "Host")]).to_string();
    let auth = basic("k");
    let routes: [(&str, &str); 6] = [
        ("GET", "/"),
        ("GET", "/assets/app.js"),
        ("GET", "/api/events"),
        ("GET", "/api/stats"),
        ("POST", "/v1/batch"),
        ("OPTIONS", "/v1/batch"),
    ];
    for host in ["evil.example", "attacker.test", "127.0.0.1.evil.example"] {
        let host = format!("{host}:{port}");
        for (method, path) in routes {
            let r = request(
                &url,
                method,
                path,
                &[("Host", &host), ("Authorization", &auth)],
                body.as_bytes(),
            );
            assert_eq!(r.status, 403, "{method} {path} Host {host}");
            no_cors(&r, &host);
        }
    }
    assert_eq!(c.stats().requests, 0);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "app.localhost".to_owned(),
    ] {
        let r = request(&url, "GET", "/api/stats", &[("Host", &host)], b"");
        assert_eq!(r.status, 200, "Host {host}");
    }
}

/// `--allow-host` admits one more name (any case, any port), and `--help` says what is
/// allowed.
#[test]
fn allow_host_flag() {
    let bin = Bin::spawn(&["--memory", "--quiet", "--allow-host", "mymac.local"]);
    let port = bin.url.rsplit(':').next().unwrap().to_owned();
    for (host, status) in [
        (format!("MyMac.local:{port}"), 200),
        ("mymac.local".to_owned(), 200),
        (format!("other.local:{port}"), 403),
    ] {
        let r = request(&bin.url, "GET", "/api/stats", &[("Host", &host)], b"");
        assert_eq!(r.status, status, "Host {host}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["collect", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--allow-host",
        "--allow-origin",
        "--allow-remote-read",
        "--max-events",
        "rebinding",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

/// Writes `raw` and keeps the connection open without finishing the request.
fn stall(url: &str, raw: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.write_all(raw).unwrap();
    s
}

/// Sixteen clients that send half a request and stop do not stall the collector: a
/// normal request is still answered.
#[test]
fn slow_clients_do_not_stall() {
    let c = collector(None);
    let url = c.url();
    let host = url.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for i in 0..16 {
        // More clients stuck mid-body than the old collector had worker threads (8).
        let raw = if i % 4 == 0 {
            // Half the head.
            format!("POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nContent-Le")
        } else {
            // The whole head and half the body.
            format!(
                "POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\n\
                 Content-Length: 4000\r\n\r\n{{\"batch\": [",
                basic("k")
            )
        };
        stalled.push(stall(&url, raw.as_bytes()));
    }
    // Give the collector time to take them all up.
    std::thread::sleep(Duration::from_millis(300));
    let (tx, rx) = std::sync::mpsc::channel();
    let url2 = url.clone();
    std::thread::spawn(move || {
        let r = request(&url2, "GET", "/api/stats", &[], b"");
        let _ = tx.send(r.status);
    });
    let status = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no answer within 10 s while 16 clients stall");
    assert_eq!(status, 200);
    // The tracking endpoint too.
    let r = post(&url, "/v1/batch", "k", &batch(vec![track("s1", "Still")]));
    assert_eq!(r.status, 200);
    drop(stalled);
}

/// A client that stops mid-request gets a 408 and its connection closed once the read
/// timeout runs out; one that sends nothing is closed.
#[test]
fn stalled_connection_is_closed() {
    let c = Collector::start(Config {
        read_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .unwrap();
    let url = c.url();
    let host = url.trim_start_matches("http://").to_owned();
    let head =
        format!("POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\n{{\"ba");
    let mut half = stall(&url, head.as_bytes());
    let mut silent = stall(&url, b"");
    // A byte every 300 ms is under the read timeout but not under the request deadline.
    let mut trickle = stall(&url, b"G");
    for s in [&half, &silent, &trickle] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    let trickler = std::thread::spawn(move || {
        for b in b"ET /api/stats HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain([b'x'; 200].iter())
        {
            std::thread::sleep(Duration::from_millis(300));
            if trickle.write_all(&[*b]).is_err() {
                break;
            }
        }
        let mut out = Vec::new();
        let _ = trickle.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let mut out = Vec::new();
    half.read_to_end(&mut out).expect("the server closes it");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    let mut out = Vec::new();
    silent.read_to_end(&mut out).expect("the server closes it");
    assert!(out.is_empty());
    let out = trickler.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
}

/// A request claiming an enormous body is refused without reading or allocating it, and
/// the collector goes on serving.
#[test]
fn huge_content_length() {
    let bin = Bin::spawn(&["--memory", "--quiet"]);
    let host = bin.url.trim_start_matches("http://").to_owned();
    for length in ["1000000000000", "18446744073709551615"] {
        let mut s = TcpStream::connect(&host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let raw = format!(
            "POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\n\
             Content-Length: {length}\r\n\r\n{{}}",
            basic("k")
        );
        s.write_all(raw.as_bytes()).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 413"), "{length}: {out}");
    }
    assert_eq!(get(&bin.url, "/api/stats")["failed_requests"], 2);
}

/// `--max-events` bounds the events in memory (the oldest go first) while the totals
/// count every event, and the dashboard numbers equal a recomputation over the events
/// kept.
#[test]
fn max_events_bounds_memory() {
    let bin = Bin::spawn(&["--memory", "--quiet", "--max-events", "50"]);
    let mut n = 0;
    for round in 0..10 {
        let events: Vec<Value> = (0..25)
            .map(|i| {
                n += 1;
                let mut e = track(&format!("m{n}"), &format!("E{}", i % 6));
                e["userId"] = json!(format!("u{}", (i + round) % 4));
                if i % 8 == 7 {
                    e["type"] = json!("nope");
                }
                e
            })
            .collect();
        assert_eq!(post(&bin.url, "/v1/batch", "k", &batch(events)).status, 200);
    }
    let all = get(&bin.url, "/api/events?limit=1000");
    assert_eq!(all["total"], 50);
    let ids: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (201..=250).rev().collect::<Vec<u64>>());
    let stats = get(&bin.url, "/api/stats");
    let invalid = 10 * 3; // i = 7, 15, 23 in each round
    assert_eq!(stats["accepted"], 250 - invalid);
    assert_eq!(stats["invalid"], invalid);
    // The top lists from scratch over the 50 events the API gives.
    let mut events: std::collections::BTreeMap<String, u64> = Default::default();
    let mut users: std::collections::BTreeMap<String, u64> = Default::default();
    for e in all["events"].as_array().unwrap() {
        if e["valid"] == true {
            *events
                .entry(e["name"].as_str().unwrap().into())
                .or_default() += 1;
            *users
                .entry(e["userId"].as_str().unwrap().into())
                .or_default() += 1;
        }
    }
    let top = |m: std::collections::BTreeMap<String, u64>| {
        let mut v: Vec<Value> = m
            .into_iter()
            .map(|(name, count)| json!({"name": name, "count": count}))
            .collect();
        v.sort_by(|a, b| b["count"].as_u64().cmp(&a["count"].as_u64()));
        Value::Array(v)
    };
    assert_eq!(stats["top_events"], top(events));
    assert_eq!(stats["top_users"], top(users));
    assert_eq!(stats["top_devices"][0]["count"], 50 - 6);
}

/// After many events over HTTP and eviction, the collector's stats equal a
/// recomputation from scratch over the events it keeps.
#[test]
fn stats_match_recomputation() {
    use trailhound_cli::collect::store::recompute;
    let c = Collector::start(Config {
        max_events: 300,
        ..Config::default()
    })
    .unwrap();
    for round in 0..8 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                let mut e = track(&format!("x{round}-{i}"), &format!("N{}", (i * 7) % 17));
                e["anonymousId"] = json!(format!("d{}", i % 9));
                if i % 4 == 0 {
                    e["type"] = json!("screen");
                    e["name"] = json!(format!("S{}", i % 5));
                }
                e
            })
            .collect();
        assert_eq!(post(&c.url(), "/v1/batch", "k", &batch(events)).status, 200);
        let stats = c.stats();
        let kept = c.events();
        assert!(kept.len() <= 300);
        let again = recompute(&kept);
        assert_eq!(stats.top_events, again.top_events, "round {round}");
        assert_eq!(stats.top_screens, again.top_screens);
        assert_eq!(stats.top_devices, again.top_devices);
        assert_eq!(stats.per_minute, again.per_minute);
        assert_eq!(stats.accepted, (round + 1) * 100);
    }
}

/// `stop` closes idle keep-alive connections and the listener at once (no thread is left
/// waiting out its read timeout), and `wait` returns.
#[test]
fn stop_closes_everything() {
    let c = Collector::start(Config {
        read_timeout: Duration::from_secs(120),
        ..Config::default()
    })
    .unwrap();
    let addr = c.url().trim_start_matches("http://").to_owned();
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // One request with keep-alive, then nothing.
    write!(idle, "GET /api/stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    assert!(idle.read(&mut buf).unwrap() > 0);
    let started = Instant::now();
    c.stop();
    c.wait();
    // Well under the 10 s read timeout the idle connection would otherwise wait out.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0);
    assert!(TcpStream::connect(&addr).is_err());
}
