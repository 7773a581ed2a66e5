//! `trailhound demo`: the real SDK through a simulated app session against the local
//! collector, then a delivery report.
//!
//! Time is compressed: the demo's policy waits seconds where the default waits minutes
//! (printed at the start), so that the whole session takes about half a minute. Every
//! other rule (commits, batching, tiers, backoff, `Retry-After`, request timeouts) is
//! the SDK's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde_json::json;
use trailhound::{Builder, Client, DeviceConditions, Network, Notification, Policy};

use crate::collect::{Collector, Config, Faults};

/// `trailhound demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Print the report and exit instead of leaving the live page up.
    #[arg(long)]
    pub no_serve: bool,
    /// Where the collector listens (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

/// The demo runs about 200 times faster than life (10 minutes of relaxed delay become
/// 3 s), and the radio tail scales with it.
const COMPRESSION: u32 = 200;

/// The music app's tracking plan (examples/music/plan.json, through the link
/// cli/assets/music-plan.json so that the published package carries it): the SDK reports
/// what breaks it and the collector checks the same events with the same validator.
const MUSIC_PLAN: &str = include_str!("../assets/music-plan.json");

/// Requests closer together than this belong to one radio wake-up: a phone's cellular
/// radio stays in its high-power state for about 10 s after a transfer (the "tail"), so
/// requests inside it cost little extra. Scaled like the rest of the demo.
const RADIO_TAIL: Duration = Duration::from_millis(10_000 / COMPRESSION as u64);

/// The demo's time-compressed policy: seconds where the defaults say minutes.
fn demo_policy() -> Policy {
    Policy {
        prompt_delay: Duration::from_secs(1),
        relaxed_delay: Duration::from_secs(3),
        max_delay: Duration::from_secs(6),
        upload_margin: Duration::from_millis(500),
        backoff_base: Duration::from_millis(300),
        backoff_max: Duration::from_secs(3),
        request_timeout: Duration::from_millis(800),
        ..Policy::default()
    }
}

fn on_battery(network: Network) -> DeviceConditions {
    DeviceConditions {
        network,
        battery_level: Some(0.7),
        charging: Some(false),
        ..DeviceConditions::default()
    }
}

/// What the demo counts on the SDK side, across the restart.
#[derive(Default)]
struct Counters {
    tracked: AtomicU64,
    upload_failures: AtomicU64,
    /// Events the SDK found breaking the plan (told to the listener).
    plan_violating: AtomicU64,
}

/// The report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Events the app tracked (all accepted by the SDK).
    pub tracked: u64,
    /// Distinct events the collector accepted.
    pub delivered: u64,
    /// Events the collector refused as invalid.
    pub invalid: u64,
    /// Copies the collector recognised by `messageId` and dropped.
    pub duplicates_removed: u64,
    /// Upload attempts that failed and were retried.
    pub retries: u64,
    /// Upload requests that reached the collector.
    pub requests: u64,
    /// Radio wake-ups: groups of requests closer than the radio's tail.
    pub radio_wakeups: u64,
    /// Wake-ups an SDK that sent every event at once would have cost.
    pub naive_wakeups: u64,
    /// Median delay from tracking to arrival, in milliseconds.
    pub p50_delay_ms: i64,
    /// 95th percentile.
    pub p95_delay_ms: i64,
    /// The longest.
    pub max_delay_ms: i64,
    /// Events the SDK found breaking the tracking plan (sent, marked in `context.plan`).
    pub plan_violating_sdk: u64,
    /// Events the collector found breaking the same plan.
    pub plan_violating_collector: u64,
    /// The collector's violations by rule, most first.
    pub plan_rules: Vec<(String, u64)>,
    /// Events not in the plan, as the collector saw them, most first.
    pub unplanned: Vec<(String, u64)>,
}

/// Counts wake-ups: arrivals more than `tail` after the previous one.
pub fn wakeups(times: &[SystemTime], tail: Duration) -> u64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut n = 0;
    let mut last: Option<SystemTime> = None;
    for t in sorted {
        if last.is_none_or(|l| t.duration_since(l).unwrap_or_default() > tail) {
            n += 1;
        }
        last = Some(t);
    }
    n
}

/// The `q` quantile (0..=1) of `values`, which it sorts; 0 for none.
pub fn quantile(values: &mut [i64], q: f64) -> i64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i]
}

struct Session {
    collector: Collector,
    dir: tempfile::TempDir,
    counters: Arc<Counters>,
    started: Instant,
    track_times: Vec<SystemTime>,
}

impl Session {
    fn say(&self, what: &str) {
        println!("[{:>5.1} s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn client(&self, conditions: DeviceConditions) -> anyhow::Result<Client> {
        let counters = Arc::clone(&self.counters);
        let started = self.started;
        Builder::new("demo-write-key", self.collector.url(), self.dir.path())
            .policy(demo_policy())
            .plan_json(MUSIC_PLAN)
            .conditions(conditions)
            .listener(move |n: &Notification| match n {
                Notification::PlanViolation { .. } => {
                    counters.plan_violating.fetch_add(1, Ordering::Relaxed);
                }
                Notification::UploadFailed {
                    status,
                    error,
                    retry_in_ms,
                    ..
                } => {
                    counters.upload_failures.fetch_add(1, Ordering::Relaxed);
                    let what = match status {
                        Some(s) => format!("HTTP {s}"),
                        None if error.contains("timed out") => "timed out".into(),
                        None => error.clone(),
                    };
                    println!(
                        "[{:>5.1} s]   upload failed ({what}); the SDK retries in {:.1} s",
                        started.elapsed().as_secs_f64(),
                        *retry_in_ms as f64 / 1000.0
                    );
                }
                Notification::Delivered { message_ids } => println!(
                    "[{:>5.1} s]   delivered a batch of {}",
                    started.elapsed().as_secs_f64(),
                    message_ids.len()
                ),
                _ => {}
            })
            .build()
            .context("starting the SDK")
    }

    /// Tracks `n` app events, `gap` apart. The events follow the music app's plan, but
    /// for the Search and Library screens, which the app shipped before the plan listed
    /// them: the SDK and the collector both report them as `unplanned_event`.
    fn play(&mut self, client: &Client, n: usize, gap: Duration) -> anyhow::Result<()> {
        for i in 0..n {
            let k = self.counters.tracked.load(Ordering::Relaxed) as usize;
            let song = format!("song-{}", k % 50);
            if k % 7 == 3 {
                match k % 3 {
                    0 => client.screen("Player", json!({"song_id": song, "view": "full"}))?,
                    1 => client.screen("Search", json!({}))?,
                    _ => client.screen("Library", json!({}))?,
                }
            } else {
                match (k + i) % 4 {
                    0 | 1 => {
                        let source = ["library", "playlist", "search"][k % 3];
                        client.track(
                        "Song Played",
                        json!({
                            "song_id": song,
                            "title": format!("Song {k}"),
                            "position_ms": 0,
                            "duration_ms": (120 + (k * 37) % 200) * 1000,
                            "source": source,
                        }),
                    )?
                    }
                    2 => client.track(
                        "Song Skipped",
                        json!({"song_id": song, "position_ms": (k * 911) % 60_000, "direction": "next"}),
                    )?,
                    _ => client.track("Song Liked", json!({"song_id": song}))?,
                }
            }
            self.counters.tracked.fetch_add(1, Ordering::Relaxed);
            self.track_times.push(SystemTime::now());
            std::thread::sleep(gap);
        }
        Ok(())
    }
}

/// Runs the demo session and returns the report and the collector (still serving).
pub fn run_session(listen: &str) -> anyhow::Result<(Report, Collector)> {
    let plan = trailhound::core::plan::Plan::parse(MUSIC_PLAN)
        .context("the music app's plan (examples/music/plan.json)")?;
    let collector = Collector::start(Config {
        listen: listen.to_owned(),
        plan: Some(Arc::new(plan)),
        ..Config::default()
    })?;
    let mut s = Session {
        collector,
        dir: tempfile::tempdir().context("creating the demo's data directory")?,
        counters: Arc::default(),
        started: Instant::now(),
        track_times: Vec::new(),
    };
    println!("Trailhound demo: a music app on a phone, against a local collector");
    println!("  collector and live page  {}/", s.collector.url());
    println!("  device data directory    {}", s.dir.path().display());
    println!(
        "  time runs about {COMPRESSION}x faster than life: the SDK waits seconds where it \
         would wait minutes\n  (relaxed delay 3 s instead of 10 min, max delay 6 s instead \
         of 15 min); the app does something every 120 ms (~25 s of real use)\n"
    );
    let tick = Duration::from_millis(120);

    s.say("1. Online on Wi-Fi, on battery: the user signs in and plays music.");
    let client = s.client(on_battery(Network::Wifi))?;
    client.identify(
        Some("listener-42"),
        json!({"plan": "family", "country": "AT"}),
    )?;
    s.counters.tracked.fetch_add(1, Ordering::Relaxed);
    s.track_times.push(SystemTime::now());
    s.play(&client, 40, tick)?;

    s.say("2. A tunnel: offline. Events queue on the device; nothing is attempted.");
    client.set_device_conditions(on_battery(Network::Offline))?;
    s.play(&client, 25, tick)?;
    s.say(&format!(
        "   queued on the device: {}",
        client.stats().queued_events
    ));

    s.say("3. The app is killed and restarted, still offline.");
    client.shutdown(Duration::from_secs(3))?;
    let client = s.client(on_battery(Network::Offline))?;
    s.say(&format!(
        "   after the restart, still queued: {}",
        client.stats().queued_events
    ));
    s.play(&client, 10, tick)?;

    s.say("4. Online again, charging in the car, and the server is flaky: half the requests get 503 with Retry-After: 1.");
    s.collector.set_faults(Faults {
        fail_rate: 0.5,
        retry_after: Some(1),
        ..Faults::default()
    })?;
    client.set_device_conditions(DeviceConditions {
        charging: Some(true),
        ..on_battery(Network::Wifi)
    })?;
    s.play(&client, 40, tick)?;

    s.say("5. A congested cellular network: answers take longer than the SDK's timeout, so batches the server already stored are sent again.");
    client.set_device_conditions(on_battery(Network::Cellular))?;
    s.collector.set_faults(Faults {
        latency_ms: 1200,
        ..Faults::default()
    })?;
    client.flush()?;
    s.play(&client, 15, tick)?;
    s.collector.set_faults(Faults::default())?;

    s.say("6. Back on Wi-Fi; the user leaves the app (background: commit and one flush).");
    client.set_device_conditions(on_battery(Network::Wifi))?;
    s.play(&client, 10, tick)?;
    client.app_backgrounded()?;
    let tracked = s.counters.tracked.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.collector.stats().accepted < tracked && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    client.shutdown(Duration::from_secs(3))?;
    s.say("   done.");

    let stats = s.collector.stats();
    let events = s.collector.events();
    // The device's clock is this machine's, so the event's own `timestamp` is when it
    // was tracked.
    let tracked_at = |e: &crate::collect::StoredEvent| {
        e.original_timestamp.or_else(|| {
            e.json["timestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc())
        })
    };
    let delay = |e: &crate::collect::StoredEvent| {
        tracked_at(e).map(|t| (e.received_at - t).num_milliseconds().max(0))
    };
    let mut all: Vec<i64> = events.iter().filter_map(delay).collect();
    let requests = s.collector.request_times();
    let violations = s.collector.violations(&Default::default());
    let report = Report {
        tracked,
        delivered: stats.accepted,
        invalid: stats.invalid,
        duplicates_removed: stats.duplicates,
        retries: s.counters.upload_failures.load(Ordering::Relaxed),
        requests: requests.len() as u64,
        radio_wakeups: wakeups(&requests, RADIO_TAIL),
        naive_wakeups: wakeups(&s.track_times, RADIO_TAIL),
        p50_delay_ms: quantile(&mut all, 0.5),
        p95_delay_ms: quantile(&mut all, 0.95),
        max_delay_ms: all.iter().copied().max().unwrap_or(0),
        plan_violating_sdk: s.counters.plan_violating.load(Ordering::Relaxed),
        plan_violating_collector: violations.violating_total,
        plan_rules: violations
            .by_rule
            .iter()
            .map(|r| (r.rule.clone(), r.count))
            .collect(),
        unplanned: violations
            .unplanned
            .iter()
            .map(|u| (u.name.clone(), u.count))
            .collect(),
    };
    Ok((report, s.collector))
}

fn print_report(r: &Report) {
    let secs = |ms: i64| format!("{:.1} s", ms as f64 / 1000.0);
    println!("\nDelivery report");
    println!("  tracked                     {}", r.tracked);
    println!("  delivered (distinct)        {}", r.delivered);
    println!("  invalid at the collector    {}", r.invalid);
    println!(
        "  duplicates removed          {} (same messageId sent again after a lost answer)",
        r.duplicates_removed
    );
    println!("  retries                     {}", r.retries);
    println!("  upload requests             {}", r.requests);
    println!(
        "  radio wake-ups              {} (sending each event at once: {})",
        r.radio_wakeups, r.naive_wakeups
    );
    println!(
        "  delivery delay              p50 {}, p95 {}, max {} (demo time; offline events included)",
        secs(r.p50_delay_ms),
        secs(r.p95_delay_ms),
        secs(r.max_delay_ms)
    );
    let list = |items: &[(String, u64)]| {
        items
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  breaking the plan           {} on the device, {} at the collector (rules: {}; not in the plan: {})",
        r.plan_violating_sdk,
        r.plan_violating_collector,
        list(&r.plan_rules),
        list(&r.unplanned)
    );
}

/// Runs `trailhound demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let (report, collector) = run_session(&args.listen)?;
    print_report(&report);
    let ok = report.delivered == report.tracked && report.invalid == 0;
    if ok {
        println!("\nEvery tracked event arrived exactly once.");
    } else {
        println!("\nNOT every tracked event arrived.");
    }
    let same_verdict = report.plan_violating_sdk == report.plan_violating_collector;
    if same_verdict {
        println!(
            "The device and the collector found the same {} events breaking the plan.",
            report.plan_violating_sdk
        );
    } else {
        println!("The device and the collector DISAGREE on which events break the plan.");
    }
    if !args.no_serve {
        println!(
            "\nThe live page is at {}/ — press Ctrl-C to stop.",
            collector.url()
        );
        collector.wait();
    }
    anyhow::ensure!(
        ok,
        "{} of {} events delivered",
        report.delivered,
        report.tracked
    );
    anyhow::ensure!(
        same_verdict,
        "the device found {} events breaking the plan, the collector {}",
        report.plan_violating_sdk,
        report.plan_violating_collector
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests inside the radio's tail count as one wake-up.
    #[test]
    fn wakeups_group_by_tail() {
        let t0 = SystemTime::UNIX_EPOCH;
        let at = |ms| t0 + Duration::from_millis(ms);
        let times = [at(0), at(500), at(1900), at(5000), at(5100), at(9000)];
        assert_eq!(wakeups(&times, Duration::from_millis(1500)), 3);
        assert_eq!(wakeups(&times, Duration::from_millis(100)), 5);
        assert_eq!(wakeups(&[], Duration::from_secs(1)), 0);
    }

    /// Quantiles pick the nearest rank.
    #[test]
    fn quantiles() {
        let mut v: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), 51);
        assert_eq!(quantile(&mut v, 0.95), 95);
        assert_eq!(quantile(&mut [], 0.95), 0);
    }
}
