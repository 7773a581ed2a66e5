//! A day in the life of a music-app user, replayed on the virtual clock twice: under
//! Trailhound's policy, and under a fixed "flush at 20 events or every 30 s" baseline.
//!
//! The day is generated once from a seed ([`typical_day`]) as a list of timed inputs
//! (events, device conditions, lifecycle changes); [`run`] feeds the same list to the
//! engine through [`Harness`] for each [`Variant`], and [`report`] prints the two side by
//! side. Both variants use the same engine, store and server; only the policy and what the
//! engine is told differ:
//!
//! - **Trailhound**: the default [`Policy`], real conditions (network, battery, charging,
//!   low-power mode) and lifecycle changes.
//! - **Baseline**: `Policy { flush_at: 20, prompt_delay: 30 s, .. }`, conditions forced to
//!   the Prompt tier (charging, battery unknown) except that offline stays offline, and no
//!   lifecycle changes. This is what an SDK with a fixed flush policy does.
//!
//! The day can also run through an outage of the collector ([`OUTAGE`]): the primary
//! endpoint refuses connections for two hours, then answers 503 for twenty minutes.
//! [`OutageRun`] runs Trailhound's policy through it with one endpoint and with a
//! fallback, beside the same day without it; [`outage_report`] prints the three.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};
use trailhound_core::retry::Jitter;
use trailhound_core::schedule::Tier;
use trailhound_core::testing::{self, Harness, Request, HOUR, MINUTE, SECOND};
use trailhound_core::{
    Call, DeviceConditions, Lifecycle, Network, Policy, Properties, UploadResult,
};

/// The seed of the day every report and test uses.
pub const SEED: u64 = 20_250_602;

/// Midnight (UTC) starting the simulated day: Monday 2 June 2025.
pub const DAY_START_MS: i64 = 1_748_822_400_000;

/// How long the collector takes to answer a request.
pub const LATENCY_MS: i64 = 300;

/// Requests that start within this long after the previous one ended share one radio
/// wake-up (the radio's tail time).
pub const WAKEUP_GAP_MS: i64 = 10 * SECOND;

/// Where the user is: decides the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Home wifi.
    Home,
    /// Walking: cellular.
    Street,
    /// On the train: cellular.
    Train,
    /// In the tunnel: no network.
    Tunnel,
    /// Office wifi.
    Office,
}

impl Place {
    fn network(self) -> Network {
        match self {
            Place::Home | Place::Office => Network::Wifi,
            Place::Street | Place::Train => Network::Cellular,
            Place::Tunnel => Network::Offline,
        }
    }
}

/// What the app is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Not running anything that tracks (the user sleeps, watches TV).
    Idle,
    /// On screen: an event every 5 to 20 s.
    Foreground,
    /// Background playback: an event every 2 to 4 minutes.
    Background,
}

/// One stretch of the day.
#[derive(Debug, Clone, Copy)]
pub struct Stretch {
    /// Start, in ms since midnight.
    pub from: i64,
    /// End, in ms since midnight.
    pub to: i64,
    /// Where.
    pub place: Place,
    /// Doing what.
    pub activity: Activity,
    /// For the report.
    pub label: &'static str,
}

const fn hm(h: i64, m: i64) -> i64 {
    h * HOUR + m * MINUTE
}

/// The day, stretch by stretch.
pub const STRETCHES: &[Stretch] = &[
    st(
        hm(0, 0),
        hm(7, 0),
        Place::Home,
        Activity::Idle,
        "asleep, charging",
    ),
    st(
        hm(7, 0),
        hm(7, 25),
        Place::Home,
        Activity::Foreground,
        "breakfast, picks a playlist",
    ),
    st(
        hm(7, 25),
        hm(7, 35),
        Place::Street,
        Activity::Background,
        "walk to the station",
    ),
    st(
        hm(7, 35),
        hm(7, 50),
        Place::Train,
        Activity::Foreground,
        "commute",
    ),
    st(
        hm(7, 50),
        hm(8, 10),
        Place::Tunnel,
        Activity::Foreground,
        "commute, tunnel",
    ),
    st(
        hm(8, 10),
        hm(8, 15),
        Place::Train,
        Activity::Foreground,
        "commute",
    ),
    st(
        hm(8, 15),
        hm(8, 30),
        Place::Street,
        Activity::Background,
        "walk to the office",
    ),
    st(
        hm(8, 30),
        hm(10, 30),
        Place::Office,
        Activity::Background,
        "music at the desk",
    ),
    st(
        hm(10, 30),
        hm(10, 45),
        Place::Office,
        Activity::Foreground,
        "coffee break",
    ),
    st(
        hm(10, 45),
        hm(12, 30),
        Place::Office,
        Activity::Background,
        "music at the desk",
    ),
    st(
        hm(12, 30),
        hm(13, 15),
        Place::Office,
        Activity::Foreground,
        "lunch",
    ),
    st(
        hm(13, 15),
        hm(15, 30),
        Place::Office,
        Activity::Background,
        "music at the desk",
    ),
    st(
        hm(15, 30),
        hm(15, 45),
        Place::Office,
        Activity::Foreground,
        "afternoon break",
    ),
    st(
        hm(15, 45),
        hm(17, 30),
        Place::Office,
        Activity::Background,
        "music at the desk",
    ),
    st(
        hm(17, 30),
        hm(18, 15),
        Place::Street,
        Activity::Background,
        "commute home",
    ),
    st(
        hm(18, 15),
        hm(19, 30),
        Place::Home,
        Activity::Background,
        "cooking",
    ),
    st(
        hm(19, 30),
        hm(20, 30),
        Place::Home,
        Activity::Foreground,
        "on the sofa",
    ),
    st(hm(20, 30), hm(22, 30), Place::Home, Activity::Idle, "TV"),
    st(
        hm(22, 30),
        hm(22, 50),
        Place::Home,
        Activity::Foreground,
        "in bed, charging",
    ),
    st(
        hm(22, 50),
        hm(23, 30),
        Place::Home,
        Activity::Background,
        "sleep timer, charging",
    ),
    st(
        hm(23, 30),
        hm(24, 0),
        Place::Home,
        Activity::Idle,
        "asleep, charging",
    ),
];

const fn st(from: i64, to: i64, place: Place, activity: Activity, label: &'static str) -> Stretch {
    Stretch {
        from,
        to,
        place,
        activity,
        label,
    }
}

/// Plugged in overnight, and again from bedtime.
const CHARGING: &[(i64, i64)] = &[(hm(0, 0), hm(7, 0)), (hm(22, 30), hm(24, 0))];

/// Low-power mode, switched on after the 20% warning.
const LOW_POWER: (i64, i64) = (hm(16, 45), hm(19, 30));

/// Battery level through the day, linear between these points: full at 7:00, under 20%
/// at 16:15, 6% at bedtime, then charging.
const BATTERY: &[(i64, f32)] = &[
    (hm(0, 0), 0.70),
    (hm(3, 0), 1.00),
    (hm(7, 0), 1.00),
    (hm(16, 15), 0.20),
    (hm(22, 30), 0.06),
    (hm(24, 0), 0.60),
];

/// The stretch at `t` (ms since midnight).
pub fn stretch_at(t: i64) -> &'static Stretch {
    STRETCHES
        .iter()
        .find(|s| s.from <= t && t < s.to)
        .unwrap_or(&STRETCHES[STRETCHES.len() - 1])
}

/// The device's conditions at `t` (ms since midnight), battery in whole percent as
/// platforms report it.
pub fn conditions_at(t: i64) -> DeviceConditions {
    let i = BATTERY
        .windows(2)
        .position(|w| t < w[1].0)
        .unwrap_or(BATTERY.len() - 2);
    let ((t0, l0), (t1, l1)) = (BATTERY[i], BATTERY[i + 1]);
    let level = l0 + (l1 - l0) * ((t - t0) as f32 / (t1 - t0) as f32);
    DeviceConditions {
        battery_level: Some((level * 100.0).round() / 100.0),
        charging: Some(CHARGING.iter().any(|&(a, b)| a <= t && t < b)),
        low_power_mode: LOW_POWER.0 <= t && t < LOW_POWER.1,
        network: stretch_at(t).place.network(),
        metered: false,
    }
}

/// One input of the day.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The app tracks something.
    Track(Call),
    /// The platform reports new conditions.
    Conditions(DeviceConditions),
    /// The app changes lifecycle state.
    Lifecycle(Lifecycle),
}

/// A generated day: every input with its time (ms since the epoch), in order.
#[derive(Debug, Clone)]
pub struct Day {
    /// Midnight.
    pub start_ms: i64,
    /// The next midnight.
    pub end_ms: i64,
    /// The inputs, in time order.
    pub inputs: Vec<(i64, Input)>,
}

impl Day {
    /// Events tracked.
    pub fn events(&self) -> usize {
        self.inputs
            .iter()
            .filter(|(_, i)| matches!(i, Input::Track(_)))
            .count()
    }
}

struct Rng(Jitter);

impl Rng {
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.0.next_f64() * (hi - lo) as f64) as i64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.between(0, items.len() as i64) as usize]
    }
}

fn props(v: Value) -> Properties {
    match v {
        Value::Object(map) => map,
        _ => Properties::new(),
    }
}

const SONGS: &[&str] = &[
    "Nocturne in E-flat major",
    "Gymnopédie No. 1",
    "Clair de lune",
    "Spiegel im Spiegel",
    "Avril 14th",
    "Experience",
    "Una mattina",
    "River Flows in You",
];
const ARTISTS: &[&str] = &[
    "Chopin",
    "Satie",
    "Debussy",
    "Pärt",
    "Aphex Twin",
    "Einaudi",
    "Yiruma",
];
const SCREENS: &[&str] = &[
    "Home",
    "Search",
    "Library",
    "Now Playing",
    "Playlist",
    "Artist",
    "Settings",
];
const SOURCES: &[&str] = &["playlist", "album", "radio", "search", "daily mix"];

fn song_played(rng: &mut Rng, background: bool) -> Call {
    Call::Track {
        event: "Song Played".into(),
        properties: props(json!({
            "song_id": format!("s{}", rng.between(10_000, 99_999)),
            "title": rng.pick(SONGS),
            "artist": rng.pick(ARTISTS),
            "duration_ms": rng.between(120_000, 420_000),
            "source": rng.pick(SOURCES),
            "background": background,
        })),
    }
}

fn foreground_call(rng: &mut Rng) -> Call {
    match rng.between(0, 100) {
        0..=39 => song_played(rng, false),
        40..=59 => Call::Track {
            event: "Song Skipped".into(),
            properties: props(json!({
                "song_id": format!("s{}", rng.between(10_000, 99_999)),
                "position_ms": rng.between(1_000, 60_000),
            })),
        },
        60..=84 => Call::Screen {
            name: rng.pick(SCREENS).into(),
            properties: Properties::new(),
        },
        85..=94 => Call::Track {
            event: "Search Performed".into(),
            properties: props(
                json!({"query_length": rng.between(2, 24), "results": rng.between(0, 50)}),
            ),
        },
        _ => Call::Track {
            event: "Song Liked".into(),
            properties: props(json!({"song_id": format!("s{}", rng.between(10_000, 99_999))})),
        },
    }
}

/// Generates the day from a seed: the same seed gives the same day.
pub fn typical_day(seed: u64) -> Day {
    let mut rng = Rng(Jitter::new(seed));
    let mut inputs: Vec<(i64, Input)> = Vec::new();

    // Conditions: at every change of stretch, and every 5 minutes (battery updates);
    // only actual changes are reported, as platforms do.
    let mut last: Option<DeviceConditions> = None;
    let mut times: Vec<i64> = (0..24 * 12).map(|i| i * 5 * MINUTE).collect();
    times.extend(STRETCHES.iter().map(|s| s.from));
    times.extend([LOW_POWER.0, LOW_POWER.1]);
    times.extend(CHARGING.iter().flat_map(|&(a, b)| [a, b]));
    times.sort_unstable();
    times.dedup();
    for t in times.into_iter().filter(|&t| t < 24 * HOUR) {
        let c = conditions_at(t);
        if last != Some(c) {
            inputs.push((t, Input::Conditions(c)));
            last = Some(c);
        }
    }

    // Lifecycle and events, stretch by stretch.
    let mut previous = Activity::Idle;
    let mut next_event = 0;
    for s in STRETCHES {
        if s.activity != previous {
            if s.activity == Activity::Foreground {
                inputs.push((s.from, Input::Lifecycle(Lifecycle::Foreground)));
            } else if previous == Activity::Foreground {
                inputs.push((s.from, Input::Lifecycle(Lifecycle::Background)));
            }
        }
        let gap = |rng: &mut Rng| match s.activity {
            Activity::Foreground => rng.between(5 * SECOND, 20 * SECOND),
            Activity::Background => rng.between(2 * MINUTE, 4 * MINUTE),
            Activity::Idle => 0,
        };
        if s.activity == Activity::Idle {
            previous = s.activity;
            continue;
        }
        if s.activity != previous {
            next_event = s.from + gap(&mut rng);
        }
        while next_event < s.to {
            let call = match s.activity {
                Activity::Foreground => foreground_call(&mut rng),
                _ => song_played(&mut rng, true),
            };
            inputs.push((next_event, Input::Track(call)));
            next_event += gap(&mut rng);
        }
        previous = s.activity;
    }

    // Conditions before lifecycle before events at the same instant.
    inputs.sort_by_key(|(t, i)| {
        let rank = match i {
            Input::Conditions(_) => 0,
            Input::Lifecycle(_) => 1,
            Input::Track(_) => 2,
        };
        (*t, rank)
    });
    for (t, _) in &mut inputs {
        *t += DAY_START_MS;
    }
    Day {
        start_ms: DAY_START_MS,
        end_ms: DAY_START_MS + 24 * HOUR,
        inputs,
    }
}

/// Which upload policy drives the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The default policy, with real conditions and lifecycle.
    Trailhound,
    /// Flush at 20 events or every 30 s when online; no battery or lifecycle awareness.
    Baseline,
}

impl Variant {
    /// How this variant drives the engine.
    pub fn setup(self) -> Setup {
        match self {
            Variant::Trailhound => Setup {
                name: "Trailhound",
                policy: Policy::default(),
                conditions: |real, _| real,
                lifecycle: true,
                endpoints: 1,
                outage: None,
            },
            Variant::Baseline => Setup {
                name: "baseline 20/30s",
                policy: Policy {
                    flush_at: 20,
                    prompt_delay: Duration::from_secs(30),
                    ..Policy::default()
                },
                // Always the Prompt tier (charging, battery unknown); offline stays offline.
                conditions: |real, _| DeviceConditions {
                    battery_level: None,
                    charging: Some(true),
                    low_power_mode: false,
                    network: if real.network.is_online() {
                        Network::Wifi
                    } else {
                        Network::Offline
                    },
                    metered: false,
                },
                lifecycle: false,
                endpoints: 1,
                outage: None,
            },
        }
    }
}

/// The primary endpoint's outage, in ms since midnight: from the late morning at the
/// office to after lunch (foreground events included), on wifi throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// The host goes down: connections are refused.
    pub from: i64,
    /// It comes back overloaded: 503 (no `Retry-After`).
    pub refused_until: i64,
    /// It answers again.
    pub until: i64,
}

/// Two hours of connection refused, then twenty minutes of 503.
pub const OUTAGE: Outage = Outage {
    from: hm(11, 30),
    refused_until: hm(13, 30),
    until: hm(13, 50),
};

impl Outage {
    /// Whether `t` (ms since midnight) is inside the outage.
    pub fn contains(&self, t: i64) -> bool {
        self.from <= t && t < self.until
    }

    /// What the primary endpoint answers a request sent at `t` (ms since midnight).
    pub fn answer(&self, t: i64) -> UploadResult {
        if self.from <= t && t < self.refused_until {
            UploadResult::NetworkError("connection refused".to_owned())
        } else if self.contains(t) {
            testing::status(503)
        } else {
            testing::ok()
        }
    }
}

/// The endpoints of the outage runs: the vendor's host, then a fallback (another region,
/// or the app's own proxy) that stays up.
pub const ENDPOINTS: [&str; 2] = [
    "https://collect.example.com",
    "https://collect-fallback.example.net",
];

/// Trailhound's policy through the day with or without [`OUTAGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageRun {
    /// No outage: what the other two are measured against.
    NoOutage,
    /// The outage, one endpoint: events wait for it to end.
    OneEndpoint,
    /// The outage, with a fallback endpoint.
    WithFallback,
}

impl OutageRun {
    /// How this run drives the engine.
    pub fn setup(self) -> Setup {
        let base = Variant::Trailhound.setup();
        match self {
            OutageRun::NoOutage => Setup {
                name: "no outage",
                ..base
            },
            OutageRun::OneEndpoint => Setup {
                name: "outage, one endpoint",
                outage: Some(OUTAGE),
                ..base
            },
            OutageRun::WithFallback => Setup {
                name: "outage, with fallback",
                endpoints: 2,
                outage: Some(OUTAGE),
                ..base
            },
        }
    }
}

/// How a run drives the engine: its policy, what it tells the engine of the device
/// (given the real conditions and what the app is doing), and whether it reports
/// lifecycle changes.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The column title.
    pub name: &'static str,
    /// The engine's policy.
    pub policy: Policy,
    /// The conditions the engine is told, from the real ones and the app's activity.
    pub conditions: fn(DeviceConditions, Activity) -> DeviceConditions,
    /// Whether lifecycle changes reach the engine.
    pub lifecycle: bool,
    /// How many of [`ENDPOINTS`] the engine is given (one: the engine's default).
    pub endpoints: usize,
    /// The primary endpoint's outage, if any; other endpoints always answer 200.
    pub outage: Option<Outage>,
}

/// One event's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// When it was tracked (ms since the epoch).
    pub tracked_ms: i64,
    /// Whether the network was up then.
    pub online: bool,
    /// When the engine heard it acknowledged, the first time.
    pub delivered_ms: Option<i64>,
    /// How many times it was acknowledged.
    pub deliveries: usize,
}

/// What a run of the day produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The setup's name.
    pub name: &'static str,
    /// The policy's `max_delay`, in ms.
    pub max_delay_ms: i64,
    /// Every request, in order.
    pub requests: Vec<Request>,
    /// Every event, in tracking order.
    pub events: Vec<Fate>,
    /// Midnight starting the day.
    pub day_start_ms: i64,
}

impl Outcome {
    /// Start times of the requests that woke the radio: the first, and each that started
    /// more than [`WAKEUP_GAP_MS`] after the previous request ended.
    pub fn wakeups(&self) -> Vec<i64> {
        let mut out = Vec::new();
        let mut radio_idle_from = i64::MIN;
        for r in &self.requests {
            if r.at_ms > radio_idle_from.saturating_add(WAKEUP_GAP_MS) {
                out.push(r.at_ms);
            }
            radio_idle_from = radio_idle_from.max(r.done_ms);
        }
        out
    }

    /// Requests sent to endpoint `i`.
    pub fn requests_to(&self, i: usize) -> usize {
        self.requests.iter().filter(|r| r.endpoint == i).count()
    }

    /// Requests that were not acknowledged (no answer, or not 2xx).
    pub fn failed_requests(&self) -> usize {
        self.requests.iter().filter(|r| !r.accepted()).count()
    }

    /// The events tracked online inside `outage`.
    pub fn tracked_online_during(&self, outage: &Outage) -> Vec<Fate> {
        self.events
            .iter()
            .filter(|e| e.online && outage.contains(e.tracked_ms - self.day_start_ms))
            .copied()
            .collect()
    }

    /// Compressed bytes sent.
    pub fn compressed_bytes(&self) -> u64 {
        self.requests
            .iter()
            .map(|r| r.compressed_bytes as u64)
            .sum()
    }

    /// Events acknowledged at least once.
    pub fn delivered(&self) -> usize {
        self.events.iter().filter(|e| e.deliveries > 0).count()
    }

    /// Events acknowledged exactly once.
    pub fn delivered_once(&self) -> usize {
        self.events.iter().filter(|e| e.deliveries == 1).count()
    }

    /// Delivery delays (ms) of the delivered events, or only of those tracked online.
    pub fn delays(&self, online_only: bool) -> Vec<i64> {
        let mut d: Vec<i64> = self
            .events
            .iter()
            .filter(|e| e.online || !online_only)
            .filter_map(|e| e.delivered_ms.map(|t| t - e.tracked_ms))
            .collect();
        d.sort_unstable();
        d
    }
}

/// The `q` quantile (0 to 1) of sorted values, nearest rank; 0 for none.
pub fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Replays the day under a variant.
pub fn run(day: &Day, variant: Variant) -> Outcome {
    run_setup(day, &variant.setup())
}

/// Replays the day under any setup (for what-if comparisons).
pub fn run_setup(day: &Day, setup: &Setup) -> Outcome {
    let max_delay_ms = setup.policy.max_delay.as_millis() as i64;
    let mut h = Harness::new(setup.policy.clone(), SEED, day.start_ms);
    h.set_latency(LATENCY_MS);
    h.set_context_info(trailhound_core::testing::phone_context());
    if setup.endpoints > 1 {
        h.set_endpoints(&ENDPOINTS[..setup.endpoints.min(ENDPOINTS.len())]);
    }
    if let Some(outage) = setup.outage {
        let start = day.start_ms;
        h.respond_with(move |r| match r.endpoint {
            0 => outage.answer(r.at_ms - start),
            _ => testing::ok(),
        });
    }
    let mut real = DeviceConditions::default();
    let mut activity = Activity::Idle;
    for (t, input) in &day.inputs {
        h.run_until(*t);
        match input {
            Input::Track(call) => {
                h.call(call.clone());
            }
            Input::Conditions(c) => {
                real = *c;
                h.set_conditions((setup.conditions)(real, activity));
            }
            Input::Lifecycle(l) => {
                activity = stretch_at(t - day.start_ms).activity;
                h.set_conditions((setup.conditions)(real, activity));
                if setup.lifecycle {
                    h.lifecycle(*l);
                }
            }
        }
    }
    h.run_until(day.end_ms);
    let events = h
        .tracked
        .iter()
        .map(|t| Fate {
            tracked_ms: t.at_ms,
            online: t.online,
            delivered_ms: h.delivered_at(&t.message_id),
            deliveries: h.delivery_count(&t.message_id),
        })
        .collect();
    Outcome {
        name: setup.name,
        max_delay_ms,
        requests: h.requests.clone(),
        events,
        day_start_ms: day.start_ms,
    }
}

/// A duration for people: `850 ms`, `42.0 s`, `14 min 05.3 s`, `1 h 03 min`.
pub fn duration(ms: i64) -> String {
    let s = ms / SECOND;
    match ms {
        _ if ms < SECOND => format!("{ms} ms"),
        _ if ms < MINUTE => format!("{:.1} s", ms as f64 / SECOND as f64),
        _ if ms < HOUR => format!(
            "{} min {:04.1} s",
            s / 60,
            (ms % MINUTE) as f64 / SECOND as f64
        ),
        _ => format!("{} h {:02} min", s / 3600, (s / 60) % 60),
    }
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Offline => "Offline",
        Tier::Prompt => "Prompt",
        Tier::Relaxed => "Relaxed",
        Tier::Cellular => "Cellular",
        Tier::Hold => "Hold",
    }
}

/// The side-by-side report: the headline table, then where the wake-ups happen (by the
/// tier Trailhound's policy gives the real conditions, and by what the app was doing).
pub fn report(day: &Day, a: &Outcome, b: &Outcome) -> String {
    let mut out = String::new();
    let row = |name: &str, f: &dyn Fn(&Outcome) -> String| vec![name.to_owned(), f(a), f(b)];
    let rows = vec![
        row("requests", &|o| o.requests.len().to_string()),
        row("radio wake-ups", &|o| o.wakeups().len().to_string()),
        row("compressed bytes", &|o| {
            format!("{:.1} KiB", o.compressed_bytes() as f64 / 1024.0)
        }),
        row("events tracked", &|o| o.events.len().to_string()),
        row("events delivered", &|o| o.delivered().to_string()),
        row("  of which exactly once", &|o| {
            o.delivered_once().to_string()
        }),
        row("delay p50", &|o| {
            duration(percentile(&o.delays(false), 0.50))
        }),
        row("delay p95", &|o| {
            duration(percentile(&o.delays(false), 0.95))
        }),
        row("delay max", &|o| {
            duration(percentile(&o.delays(false), 1.0))
        }),
        row("delay p95, tracked online", &|o| {
            duration(percentile(&o.delays(true), 0.95))
        }),
        row("delay max, tracked online", &|o| {
            duration(percentile(&o.delays(true), 1.0))
        }),
        row("max_delay (policy)", &|o| duration(o.max_delay_ms)),
    ];
    let _ = writeln!(
        out,
        "One simulated day (seed {SEED}, {} events, {LATENCY_MS} ms server latency)\n",
        day.events()
    );
    table(&mut out, &["", a.name, b.name], &rows);
    let ratio = b.wakeups().len() as f64 / a.wakeups().len().max(1) as f64;
    let _ = writeln!(out, "\nwake-ups: baseline / Trailhound = {ratio:.2}x\n");

    // Where the wake-ups are.
    let policy = Policy::default();
    let key = |t: i64| {
        let since_midnight = t - day.start_ms;
        let stretch = stretch_at(since_midnight);
        let foreground = stretch.activity == Activity::Foreground;
        let tier = Tier::of(&conditions_at(since_midnight), foreground, &policy);
        let activity = match stretch.activity {
            Activity::Foreground => "foreground",
            Activity::Background => "background",
            Activity::Idle => "idle",
        };
        format!("{} / {}", tier_name(tier), activity)
    };
    let mut by: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for (i, o) in [a, b].into_iter().enumerate() {
        for t in o.wakeups() {
            by.entry(key(t)).or_default()[i] += 1;
        }
    }
    for e in &a.events {
        by.entry(key(e.tracked_ms)).or_default()[2] += 1;
    }
    let rows: Vec<Vec<String>> = by
        .into_iter()
        .map(|(k, [x, y, n])| vec![k, n.to_string(), x.to_string(), y.to_string()])
        .collect();
    let _ = writeln!(
        out,
        "Wake-ups by the tier Trailhound's policy gives the real conditions, and app state:\n"
    );
    table(&mut out, &["tier / app", "events", a.name, b.name], &rows);
    out
}

/// The outage runs side by side ([`OutageRun`], in that order): requests per endpoint,
/// wake-ups, and how long events tracked online waited, all day and inside the outage.
pub fn outage_report(day: &Day, runs: &[Outcome]) -> String {
    let mut out = String::new();
    let o = OUTAGE;
    let clock = |t: i64| format!("{:02}:{:02}", t / HOUR, (t / MINUTE) % 60);
    let _ = writeln!(
        out,
        "The same day through an outage of the primary endpoint: connection refused \
         {}-{}, then 503 until {} (seed {SEED}, {} events)\n",
        clock(o.from),
        clock(o.refused_until),
        clock(o.until),
        day.events()
    );
    type Cell = dyn Fn(&Outcome) -> String;
    let during = |o: &Outcome, q: f64| {
        let mut d: Vec<i64> = o
            .tracked_online_during(&OUTAGE)
            .iter()
            .filter_map(|e| e.delivered_ms.map(|t| t - e.tracked_ms))
            .collect();
        d.sort_unstable();
        duration(percentile(&d, q))
    };
    let cells: Vec<(&str, Box<Cell>)> = vec![
        ("requests", Box::new(|o| o.requests.len().to_string())),
        (
            "  to the primary",
            Box::new(|o| o.requests_to(0).to_string()),
        ),
        (
            "  to the fallback",
            Box::new(|o| o.requests_to(1).to_string()),
        ),
        ("  failed", Box::new(|o| o.failed_requests().to_string())),
        (
            "radio wake-ups",
            Box::new(|o| o.wakeups().len().to_string()),
        ),
        (
            "events delivered exactly once",
            Box::new(|o| format!("{} of {}", o.delivered_once(), o.events.len())),
        ),
        (
            "delay p95, tracked online",
            Box::new(|o| duration(percentile(&o.delays(true), 0.95))),
        ),
        (
            "delay max, tracked online",
            Box::new(|o| duration(percentile(&o.delays(true), 1.0))),
        ),
        (
            "  p95, tracked online in the outage",
            Box::new(move |o| during(o, 0.95)),
        ),
        (
            "  max, tracked online in the outage",
            Box::new(move |o| during(o, 1.0)),
        ),
        ("max_delay (policy)", Box::new(|o| duration(o.max_delay_ms))),
    ];
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|(name, f)| {
            std::iter::once((*name).to_owned())
                .chain(runs.iter().map(&**f))
                .collect()
        })
        .collect();
    let head: Vec<&str> = std::iter::once("")
        .chain(runs.iter().map(|o| o.name))
        .collect();
    table(&mut out, &head, &rows);
    out
}

/// An aligned table: the first column left-aligned, the others right-aligned.
fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let line = |out: &mut String, cells: &[&str]| {
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            let _ = match i {
                0 => write!(out, "{cell}{pad}"),
                _ => write!(out, "  {pad}{cell}"),
            };
        }
        out.push('\n');
    };
    line(out, head);
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rules.iter().map(String::as_str).collect::<Vec<_>>());
    for r in rows {
        line(out, &r.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
