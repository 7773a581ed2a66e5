//! The README's first command: a music app tracks through an offline stretch and a flaky
//! server against an embedded loopback receiver, restarts, and prints what was delivered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use trailhound::{Builder, DeviceConditions, Network, Notification};
use trailhound_tests::collector::{Collector, Reply};

/// identify + screen + 10 songs online + 25 events offline.
const TRACKED: usize = 2 + 10 + 25;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let collector = Collector::start();
    let dir = tempfile::tempdir()?;
    let notes: Arc<Mutex<Vec<String>>> = Arc::default();
    let wifi = DeviceConditions {
        network: Network::Wifi,
        battery_level: Some(0.8),
        charging: Some(true),
        ..DeviceConditions::default()
    };
    let offline = DeviceConditions {
        network: Network::Offline,
        ..wifi
    };
    let start = Instant::now();
    let build = |notes: Arc<Mutex<Vec<String>>>, conditions: DeviceConditions| {
        Builder::new("demo-write-key", collector.url(), dir.path())
            .conditions(conditions)
            .with_policy(|p| {
                p.backoff_base = Duration::from_millis(200);
            })
            .listener(move |n: &Notification| {
                let line = match n {
                    Notification::Delivered { message_ids } => {
                        format!("delivered {} events", message_ids.len())
                    }
                    Notification::UploadFailed {
                        error, retry_in_ms, ..
                    } => {
                        format!("upload failed ({error}); retry in {retry_in_ms} ms")
                    }
                    other => format!("{other:?}"),
                };
                notes
                    .lock()
                    .unwrap()
                    .push(format!("{:>6} ms  {line}", start.elapsed().as_millis()));
            })
            .build()
    };

    let client = build(Arc::clone(&notes), wifi)?;
    println!("Trailhound demo — receiver at {}", collector.url());
    println!("device id {}", client.anonymous_id());
    client.identify(Some("listener-42"), json!({"plan": "family"}))?;
    client.screen("Library", json!({}))?;

    println!("\n1. Online: 10 songs on wifi, flushed.");
    for i in 0..10 {
        client.track("Song Played", json!({"track": i, "seconds": 180 + i}))?;
    }
    client.flush_blocking(Duration::from_secs(10))?;

    println!("2. Offline: 25 events in a tunnel; nothing is attempted.");
    client.set_device_conditions(offline)?;
    for i in 0..25 {
        client.track("Song Skipped", json!({"track": i}))?;
    }
    std::thread::sleep(Duration::from_millis(400));
    println!("   queued while offline: {}", client.stats().queued_events);

    println!("3. The app is closed while offline, and restarted (still offline).");
    client.shutdown(Duration::from_secs(2))?;
    let client = build(Arc::clone(&notes), offline)?;
    println!(
        "   after restart, still queued: {}",
        client.stats().queued_events
    );

    println!("4. The network returns, but the server answers 503 twice (Retry-After: 1).");
    collector.script([Reply::retry_after(503, "1"), Reply::status(503)]);
    client.set_device_conditions(wifi)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while collector.events().len() < TRACKED && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = client.flush_blocking(Duration::from_secs(10))?;
    client.shutdown(Duration::from_secs(2))?;

    println!("\nListener:");
    for line in notes.lock().unwrap().iter() {
        println!("  {line}");
    }
    let requests = collector.requests();
    println!("\nReport");
    println!("  tracked                {TRACKED}");
    println!("  delivered (collector)  {}", collector.events().len());
    println!("  duplicates at server   {}", collector.duplicates());
    println!(
        "  requests               {} ({} failed)",
        requests.len(),
        requests.iter().filter(|r| r.status != 200).count()
    );
    println!(
        "  bytes on the wire      {}",
        requests.iter().map(|r| r.body_bytes).sum::<usize>()
    );
    println!("  still queued           {}", stats.queued_events);
    println!("  dropped                {}", stats.dropped.total());
    let ok = collector.events().len() == TRACKED
        && collector.duplicates() == 0
        && stats.queued_events == 0;
    println!(
        "\n{}",
        if ok {
            "every event delivered exactly once"
        } else {
            "NOT every event was delivered"
        }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
