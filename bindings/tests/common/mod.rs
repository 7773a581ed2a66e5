//! What the FFI test files share: a config on a fake endpoint and an app transport that
//! records every request and answers 200.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use trailhound_ffi::*;

/// A config with `write_key`, sending to `https://collector.example.com`, its data in
/// `dir`, everything else left out.
pub fn config(write_key: &str, dir: &std::path::Path) -> Config {
    Config {
        write_key: write_key.into(),
        endpoint: "https://collector.example.com".into(),
        data_dir: dir.to_string_lossy().into_owned(),
        policy: None,
        context: None,
        conditions: None,
        jitter_seed: None,
        plan_json: None,
        plan_file: None,
        plan_mode: None,
        fallback_endpoints: vec![],
    }
}

/// An app transport that keeps every request it is given and answers 200.
pub struct Recorder(pub Mutex<Vec<HttpRequest>>);

impl HttpTransport for Recorder {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TrailhoundError> {
        self.0.lock().unwrap().push(request);
        Ok(HttpResponse {
            status: 200,
            retry_after: None,
        })
    }
}

/// A client on `config` sending through a [`Recorder`], after it tracked one event and
/// flushed it (asserted delivered); and the requests the recorder got.
pub fn deliver_one(config: Config) -> (Arc<TrailhoundClient>, Vec<HttpRequest>) {
    let rec = Arc::new(Recorder(Mutex::new(vec![])));
    let client = TrailhoundClient::new(config, Some(rec.clone()), vec![], vec![]).unwrap();
    client.track("a".into(), HashMap::new()).unwrap();
    assert_eq!(client.flush_blocking(5_000).unwrap().delivered, 1);
    let sent = rec.0.lock().unwrap().clone();
    (client, sent)
}
