//! An app-supplied transport, as the library built without ureq requires (a Rust
//! one here; the Kotlin and Python suites do the same from the host).

use std::collections::HashMap;
use std::sync::Arc;

use trailhound_ffi::*;

mod common;

fn config(dir: &std::path::Path) -> Config {
    common::config("key", dir)
}

/// With one, uploads go through it with the write key and gzip headers.
#[test]
fn uploads_go_through_the_app_transport() {
    let dir = tempfile::tempdir().unwrap();
    let (_client, sent) = common::deliver_one(config(dir.path()));
    assert_eq!(sent[0].url, "https://collector.example.com/v1/batch");
    assert_eq!(
        sent[0].headers.get("Content-Encoding").map(String::as_str),
        Some("gzip")
    );
    assert!(sent[0].headers.contains_key("Authorization"));
}

struct Panicky;
impl HttpTransport for Panicky {
    fn send(&self, _: HttpRequest) -> Result<HttpResponse, TrailhoundError> {
        panic!("transport bug");
    }
}
impl EventPlugin for Panicky {
    fn process(&self, event: Event) -> Result<Option<Event>, TrailhoundError> {
        if event.event.as_deref() == Some("boom") {
            panic!("plugin bug");
        }
        Ok(Some(event))
    }
}

/// Panics in trait implementations stay on the Rust side as error values: a failed,
/// retried upload and a refused event; the client keeps working.
#[test]
fn panics_in_implementations_are_error_values() {
    let dir = tempfile::tempdir().unwrap();
    let client = TrailhoundClient::new(
        config(dir.path()),
        Some(Arc::new(Panicky)),
        vec![Arc::new(Panicky)],
        vec![],
    )
    .unwrap();
    assert!(matches!(
        client.track("boom".into(), HashMap::new()),
        Err(TrailhoundError::Plugin { .. })
    ));
    client.track("fine".into(), HashMap::new()).unwrap();
    let stats = client.flush_blocking(5_000).unwrap();
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.retries, 1);
    assert!(stats.last_error.unwrap().contains("panicked"));
    assert_eq!(stats.queued_events, 1, "the event is kept for a retry");
}
