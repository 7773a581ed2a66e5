//! The live page in headless Chromium: events sent to the collector appear on it, also
//! those that arrive while it is open.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trailhound_cli::collect::{Collector, Config};

/// Chromium's path. There is no skip: `scripts/test.sh` installs Chromium, and a machine
/// without it fails these tests instead of counting them as passed.
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromium is not installed (apt-get install chromium; scripts/test.sh does it)")
}

/// Loads `url` in headless Chromium and returns the DOM after the page's scripts ran for
/// `budget_ms` of virtual time.
fn dump_dom(chromium: &PathBuf, url: &str, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The inner HTML of the first `<tag ...>` whose attributes contain `marker`.
fn section<'a>(dom: &'a str, marker: &str, tag: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page:\n{dom}"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest
        .find(&format!("</{tag}>"))
        .unwrap_or_else(|| panic!("no </{tag}> after {marker}"));
    &rest[open..close]
}

fn post(url: &str, events: Vec<Value>) {
    let body = json!({"batch": events, "sentAt": "2026-11-26T12:00:01.000Z"}).to_string();
    let host = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Authorization: Basic a2V5Og==\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn track(id: &str, name: &str, user: &str) -> Value {
    json!({"type": "track", "event": name, "userId": user, "anonymousId": "phone-1",
           "messageId": id, "originalTimestamp": "2026-11-26T12:00:00.000Z",
           "properties": {"marker": format!("prop-{id}")}})
}

/// A loopback proxy between Chromium and the collector that calls `after_first_poll`
/// once the page's first `/api/events` answer has been fetched and before the page gets
/// it: whatever that hook sends can only reach the page through a later poll.
fn proxy(target: String, after_first_poll: impl Fn() + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fired = Arc::new(AtomicBool::new(false));
    let hook = Arc::new(after_first_poll);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { return };
            let (target, fired, hook) = (target.clone(), Arc::clone(&fired), Arc::clone(&hook));
            std::thread::spawn(move || {
                // The page only sends GETs: a request ends with its headers.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let first_line = head.lines().next().unwrap_or_default().to_owned();
                // One request per connection, so that each answer ends at EOF.
                let head: String = head
                    .split("\r\n")
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .collect::<Vec<_>>()
                    .join("\r\n");
                let head = head.trim_end().to_owned() + "\r\nConnection: close\r\n\r\n";
                let mut upstream =
                    TcpStream::connect(target.trim_start_matches("http://")).unwrap();
                upstream.write_all(head.as_bytes()).unwrap();
                let mut answer = Vec::new();
                upstream.read_to_end(&mut answer).unwrap();
                if first_line.contains("/api/events") && !fired.swap(true, Ordering::SeqCst) {
                    hook();
                }
                let _ = client.write_all(&answer);
            });
        }
    });
    format!("http://{addr}")
}

/// A [`proxy`] to the collector at `collector_url` that posts `late` to it after the
/// page's first poll; the flag says they have been posted.
fn proxy_posting_late(collector_url: String, late: Vec<Value>) -> (String, Arc<AtomicBool>) {
    let late_sent = Arc::new(AtomicBool::new(false));
    let late_flag = Arc::clone(&late_sent);
    let target = collector_url.clone();
    let page_url = proxy(collector_url, move || {
        post(&target, late.clone());
        late_flag.store(true, Ordering::SeqCst);
    });
    (page_url, late_sent)
}

/// Events sent before the page opens and events sent while it is open both appear in
/// the table, with the right totals, top lists and validation results.
#[test]
fn events_appear_live() {
    let chromium = chromium();
    let c = Collector::start(Config::default()).unwrap();
    let mut bad = track("b1", "Broken Event", "ana");
    bad["type"] = json!("click");
    post(
        &c.url(),
        vec![
            track("e1", "Checkout Started", "ana"),
            track("e2", "Song Played", "ben"),
            bad,
        ],
    );
    let (page_url, late_sent) = proxy_posting_late(
        c.url(),
        vec![
            track("e3", "Late Arrival", "cleo"),
            track("e4", "Late Arrival", "cleo"),
        ],
    );

    let dom = dump_dom(&chromium, &format!("{page_url}/"), 5000);
    assert!(
        late_sent.load(Ordering::SeqCst),
        "the page never polled /api/events"
    );
    let rows = section(&dom, "<tbody", "tbody");
    for name in ["Checkout Started", "Song Played", "Late Arrival"] {
        assert!(
            rows.contains(&format!("<td class=\"name\">{name}</td>")),
            "{name} not in the table:\n{rows}"
        );
    }
    assert_eq!(rows.matches("<tr").count(), 5, "{rows}");
    // Newest first: the late events lead.
    assert!(rows.find("Late Arrival").unwrap() < rows.find("Checkout Started").unwrap());
    assert!(rows.contains("unknown `type` \"click\""), "{rows}");
    assert_eq!(rows.matches("class=\"invalid\"").count(), 1, "{rows}");
    assert_eq!(section(&dom, "id=\"stat-accepted\"", "span"), "4");
    assert_eq!(section(&dom, "id=\"stat-invalid\"", "span"), "1");
    let top = section(&dom, "id=\"top-events\"", "ol");
    assert!(
        top.find("Late Arrival").unwrap() < top.find("Checkout Started").unwrap(),
        "{top}"
    );
    assert!(section(&dom, "id=\"top-users\"", "ol").contains("cleo"));
    assert!(section(&dom, "id=\"status\"", "span").contains("live"));
}

/// `#event=ID` opens that event's full JSON, as a click on its row does.
#[test]
fn event_detail_link() {
    let chromium = chromium();
    let c = Collector::start(Config::default()).unwrap();
    post(
        &c.url(),
        vec![track("d1", "First", "ana"), track("d2", "Second", "ana")],
    );
    let id = c.events()[1].id;
    let dom = dump_dom(&chromium, &format!("{}/#event={id}", c.url()), 3000);
    let detail = section(&dom, "id=\"detail\"", "aside");
    assert!(
        !dom.contains("id=\"detail\" class=\"detail\" hidden"),
        "{detail}"
    );
    let pretty = section(&dom, "id=\"detail-json\"", "pre");
    assert!(pretty.contains("\"marker\": \"prop-d2\""), "{pretty}");
    assert!(!pretty.contains("prop-d1"), "{pretty}");
    assert!(dom.contains("<tr class=\"valid selected\""), "{dom}");
}

/// A plan for the panel: one strict track event and one screen.
fn panel_plan() -> trailhound_core::plan::Plan {
    let plan = json!({
        "plan": "page-test", "version": "2-0-1",
        "events": [
            {"type": "track", "name": "Song Played",
             "schema": {"type": "object", "required": ["song_id"],
                        "properties": {"song_id": {"type": "string"},
                                       "seconds": {"type": "integer", "minimum": 0}}}},
            {"type": "screen", "name": "Player", "schema": {"type": "object"}}
        ]
    });
    trailhound_core::plan::Plan::parse(&plan.to_string()).expect("the test plan passes lint")
}

fn played(id: &str, props: Value) -> Value {
    let mut e = track(id, "Song Played", "ana");
    e["properties"] = props;
    e
}

/// With `--plan`, the violations panel shows the plan, the most violated rules and the
/// events not in the plan, each violating event's row shows its violations, the detail
/// of one lists them, and violations arriving while the page is open appear too.
#[test]
fn violations_panel() {
    let chromium = chromium();
    let c = Collector::start(Config {
        plan: Some(std::sync::Arc::new(panel_plan())),
        ..Config::default()
    })
    .unwrap();
    post(
        &c.url(),
        vec![
            played("p1", json!({"song_id": "s1", "seconds": 3})),
            played("p2", json!({"song_id": "s2", "seconds": "12"})),
            track("p3", "Song Skipped", "ana"),
        ],
    );
    let violating_id = c.events()[1].id;
    let (page_url, late_sent) = proxy_posting_late(
        c.url(),
        vec![
            played("p4", json!({"seconds": -5})),
            played("p5", json!({"song_id": "s5", "seconds": 1.5})),
            track("p6", "Song Skipped", "ben"),
            track("p7", "Volume Changed", "ben"),
        ],
    );

    let dom = dump_dom(
        &chromium,
        &format!("{page_url}/#event={violating_id}"),
        5000,
    );
    assert!(
        late_sent.load(Ordering::SeqCst),
        "the page never polled /api/events"
    );
    assert!(section(&dom, "id=\"plan-name\"", "small").contains("page-test 2-0-1"));
    // p2, p3, p4 (two rules), p5, p6, p7.
    assert_eq!(section(&dom, "id=\"stat-violating\"", "span"), "6");
    let rules = section(&dom, "id=\"top-rules\"", "ol");
    let first = rules.find("unplanned_event").expect(rules);
    assert!(
        rules.contains("<span class=\"item-count\">3</span>"),
        "{rules}"
    );
    assert!(first < rules.find(">type<").expect(rules), "{rules}");
    assert!(
        rules.contains(">type</span><span class=\"item-count\">2<"),
        "{rules}"
    );
    for rule in ["required", "minimum"] {
        assert!(
            rules.contains(&format!(">{rule}</span>")),
            "{rule}: {rules}"
        );
    }
    let unplanned = section(&dom, "id=\"unplanned\"", "ol");
    assert!(
        unplanned.find("Song Skipped").expect(unplanned)
            < unplanned.find("Volume Changed").expect(unplanned),
        "{unplanned}"
    );
    assert!(unplanned.contains(">Song Skipped</span><span class=\"item-count\">2<"));
    assert!(section(&dom, "id=\"top-event-rules\"", "ol").contains("Song Played · type"));

    let rows = section(&dom, "<tbody", "tbody");
    assert_eq!(rows.matches("<tr").count(), 7, "{rows}");
    assert_eq!(rows.matches("violating").count(), 6, "{rows}");
    // The late event's row shows both its violations, with the event.
    let late = &rows[rows.find("data-id=\"4\"").expect(rows)..];
    let late = &late[..late.find("</tr>").unwrap()];
    assert!(late.contains("2 plan violations"), "{late}");
    assert!(
        late.contains("<code class=\"rule\">required</code> <code class=\"pointer\">/properties/song_id</code>"),
        "{late}"
    );
    assert!(
        late.contains("<code class=\"rule\">minimum</code>"),
        "{late}"
    );
    let good = &rows[rows.find("data-id=\"1\"").expect(rows)..];
    let good = &good[..good.find("</tr>").unwrap()];
    assert!(!good.contains("plan violation"), "{good}");

    // The detail of p2, opened by its link, lists its violation.
    let detail = section(&dom, "id=\"detail-violations\"", "ul");
    assert!(
        detail.contains("<code class=\"rule\">type</code> <code class=\"pointer\">/properties/seconds</code>: expected "),
        "{detail}"
    );
    assert!(!dom.contains("id=\"detail-violations\" class=\"violations\" hidden"));
}
