//! Helper process for the crash test: tracks numbered events offline as fast as it can,
//! printing each number once `track()` has accepted it, until it is killed.

use std::io::Write;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: crash_child DATA_DIR");
    let client = trailhound::Builder::new("k", "http://127.0.0.1:9", dir)
        .conditions(trailhound::DeviceConditions {
            network: trailhound::Network::Offline,
            ..Default::default()
        })
        // Caps far above what 1.5 s of tracking fills: at ~45k events the default 20 MiB
        // bytes cap starts evicting the oldest, which the test would take for lost events.
        .with_policy(|p| {
            p.max_queue_bytes = 1 << 30;
            p.max_queue_events = 10_000_000;
        })
        .build()
        .expect("client");
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        // A call refused with Backpressure was not accepted: try the same number again,
        // so that the accepted numbers stay a gap-free sequence.
        loop {
            match client.track("Crash Test", serde_json::json!({ "i": i })) {
                Ok(()) => break,
                Err(trailhound::Error::Backpressure) => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        // The parent keeps the pipe open until we are killed; if it closes anyway, stop.
        if writeln!(out, "{i}").and_then(|()| out.flush()).is_err() {
            std::process::exit(0);
        }
    }
}
