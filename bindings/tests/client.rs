//! The FFI layer driven from Rust: the same paths the hosts take, without a host.
//! Uses the built-in transport; see `app_transport.rs` for an app-supplied one.
#![cfg(feature = "ureq")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use trailhound_ffi::*;
use trailhound_tests::collector::Collector;

fn config(url: &str, dir: &std::path::Path) -> Config {
    Config {
        write_key: "key".into(),
        endpoint: url.into(),
        data_dir: dir.to_string_lossy().into_owned(),
        policy: Some(PolicyOverrides {
            backoff_base_ms: Some(10),
            ..PolicyOverrides::default()
        }),
        context: None,
        conditions: None,
        jitter_seed: Some(1),
        plan_json: None,
        plan_file: None,
        plan_mode: None,
        fallback_endpoints: vec![],
    }
}

fn text(s: &str) -> Value {
    Value::Text { v: s.into() }
}

/// A value map goes through the real core and arrives intact at the collector.
#[test]
fn track_is_delivered_with_its_values() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client =
        TrailhoundClient::new(config(collector.url(), dir.path()), None, vec![], vec![]).unwrap();
    let props: HashMap<String, Value> = [
        ("title".to_owned(), text("Nachtmusik")),
        ("seconds".to_owned(), Value::Int { v: 215 }),
        ("ratio".to_owned(), Value::Double { v: 0.25 }),
    ]
    .into();
    client.track("Song Played".into(), props).unwrap();
    let stats = client.flush_blocking(5_000).unwrap();
    assert_eq!(stats.delivered, 1);
    let events = collector.events();
    assert_eq!(events[0]["properties"]["seconds"], 215);
    assert_eq!(events[0]["properties"]["ratio"], 0.25);
    assert_eq!(events[0]["properties"]["title"], "Nachtmusik");
}

struct FailingPlugin;
impl EventPlugin for FailingPlugin {
    fn process(&self, event: Event) -> Result<Option<Event>, TrailhoundError> {
        if event.event.as_deref() == Some("bad") {
            return Err(TrailhoundError::Callback {
                detail: "boom in plugin".into(),
            });
        }
        Ok(Some(event))
    }
}

/// A failing plugin refuses its event with the plugin's own text; the next call works.
#[test]
fn plugin_failure_is_an_error_with_detail() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = TrailhoundClient::new(
        config(collector.url(), dir.path()),
        None,
        vec![Arc::new(FailingPlugin)],
        vec![],
    )
    .unwrap();
    match client.track("bad".into(), HashMap::new()) {
        Err(TrailhoundError::Plugin { detail }) => assert!(detail.contains("boom in plugin")),
        other => panic!("expected a plugin error, got {other:?}"),
    }
    client.track("good".into(), HashMap::new()).unwrap();
    assert_eq!(client.flush_blocking(5_000).unwrap().delivered, 1);
    assert_eq!(collector.events().len(), 1);
}

struct FlakyTransport {
    calls: AtomicU32,
    inner: Arc<dyn trailhound::Transport>,
    seen: Mutex<Vec<String>>,
}
impl HttpTransport for FlakyTransport {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TrailhoundError> {
        self.seen.lock().unwrap().push(request.url.clone());
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(TrailhoundError::Callback {
                detail: "socket closed".into(),
            });
        }
        let req = trailhound::HttpRequest {
            url: request.url,
            headers: request.headers.into_iter().collect(),
            body: request.body,
        };
        match self.inner.send(&req) {
            trailhound::UploadResult::Response {
                status,
                retry_after,
            } => Ok(HttpResponse {
                status: status.into(),
                retry_after,
            }),
            trailhound::UploadResult::NetworkError(e) | trailhound::UploadResult::Blocked(e) => {
                Err(TrailhoundError::Callback { detail: e })
            }
        }
    }
}

/// A transport error is a retried network error, not a lost event.
#[test]
fn foreign_transport_error_is_retried() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(FlakyTransport {
        calls: AtomicU32::new(0),
        inner: Arc::new(trailhound::UreqTransport::new(std::time::Duration::from_secs(5)).unwrap()),
        seen: Mutex::new(vec![]),
    });
    let client = TrailhoundClient::new(
        config(collector.url(), dir.path()),
        Some(transport.clone()),
        vec![],
        vec![],
    )
    .unwrap();
    client.track("a".into(), HashMap::new()).unwrap();
    let first = client.flush_blocking(5_000).unwrap();
    assert_eq!(first.delivered, 0);
    assert!(first.last_error.unwrap().contains("socket closed"));
    let second = client.flush_blocking(5_000).unwrap();
    assert_eq!(second.delivered, 1);
    assert_eq!(transport.seen.lock().unwrap().len(), 2);
}
