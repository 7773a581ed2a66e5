//! Fallback endpoints through the FFI: `Config.fallback_endpoints` reaches the runtime,
//! its errors are `Config` errors, and the stats and notifications say which endpoint is
//! open.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use trailhound_ffi::*;
use trailhound_tests::collector::Collector;

/// A loopback URL with nothing listening (connection refused).
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

struct Notes(Mutex<Vec<Notification>>);

impl DeliveryListener for Notes {
    fn on_notification(&self, n: Notification) -> Result<(), TrailhoundError> {
        self.0.lock().unwrap().push(n);
        Ok(())
    }
}

/// A dead primary and a live fallback: the events arrive at the fallback once, the
/// primary's breaker is `open` for `network`, and the listener heard it open.
#[test]
fn dead_primary_delivers_through_the_fallback() {
    let collector = Collector::start();
    let dead = dead_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        endpoint: dead.clone(),
        fallback_endpoints: vec![collector.url().to_owned()],
        policy: Some(PolicyOverrides {
            // Open far longer than the test: flush_blocking's probe of the primary is the
            // only request it gets.
            backoff_base_ms: Some(600_000),
            ..PolicyOverrides::default()
        }),
        ..common::config("key", dir.path())
    };
    let notes = Arc::new(Notes(Mutex::new(vec![])));
    let client = TrailhoundClient::new(cfg, None, vec![], vec![notes.clone()]).unwrap();
    for i in 0..5 {
        let props = HashMap::from([("i".to_owned(), Value::Int { v: i })]);
        client.track("Failover".into(), props).unwrap();
    }
    let stats = client.flush_blocking(20_000).unwrap();
    assert_eq!(stats.delivered, 5);
    assert!(collector.wait_for_events(5, std::time::Duration::from_secs(5)));
    assert_eq!(collector.duplicates(), 0);
    let [primary, fallback] = &stats.endpoints[..] else {
        panic!("{:?}", stats.endpoints);
    };
    assert_eq!(primary.url, dead);
    assert_eq!(primary.state, "open");
    assert_eq!(primary.reason.as_deref(), Some("network"));
    assert_eq!(primary.status, None);
    assert!(primary.retry_at_ms.is_some());
    assert_eq!((primary.requests, primary.failures), (1, 1));
    assert_eq!(fallback.url, collector.url());
    assert_eq!(fallback.state, "closed");
    let heard = notes.0.lock().unwrap().clone();
    assert!(
        heard.iter().any(|n| matches!(n,
            Notification::EndpointOpened { url, reason, status: None, .. }
                if *url == dead && reason == "network")),
        "{heard:?}"
    );
    client.shutdown(5_000).unwrap();
}

/// A bad fallback, a duplicate, or too many endpoints: a `Config` error naming the
/// problem, and nothing opened.
#[test]
fn bad_fallbacks_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases: [(&[&str], Option<i32>, &str); 4] = [
        (&["http://example.com"], None, "fallback endpoint 1"),
        (
            &["https://b.example", "https://COLLECTOR.example.com/"],
            None,
            "same endpoint as the primary",
        ),
        (
            &[
                "https://b.example",
                "https://c.example",
                "https://d.example",
                "https://e.example",
            ],
            None,
            "max_endpoints = 4",
        ),
        (&["https://b.example"], Some(1), "max_endpoints = 1"),
    ];
    for (fallbacks, max, expected) in cases {
        let cfg = Config {
            fallback_endpoints: fallbacks.iter().map(|s| s.to_string()).collect(),
            policy: Some(PolicyOverrides {
                max_endpoints: max,
                ..PolicyOverrides::default()
            }),
            ..common::config("key", &data)
        };
        let err = TrailhoundClient::new(cfg, None, vec![], vec![]).unwrap_err();
        let TrailhoundError::Config { detail } = &err else {
            panic!("{err}");
        };
        assert!(detail.contains(expected), "{detail}");
        assert!(!data.exists(), "the data directory was created");
    }
}

/// Without fallbacks there is one endpoint, as before.
#[test]
fn one_endpoint_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (client, sent) = common::deliver_one(common::config("key", dir.path()));
    assert_eq!(sent.len(), 1);
    let stats = client.stats();
    assert_eq!(stats.endpoints.len(), 1);
    assert_eq!(stats.endpoints[0].url, "https://collector.example.com");
    assert_eq!(stats.endpoints[0].state, "closed");
}
