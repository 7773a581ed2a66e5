//! When to upload: the battery- and network-aware policy.
//!
//! | conditions                                   | tier      | an upload is due when                                  |
//! |----------------------------------------------|-----------|--------------------------------------------------------|
//! | offline                                      | Offline   | never; a flush as soon as the network returns          |
//! | wifi, ethernet or unknown, charging or mains | Prompt    | a full batch is queued, or `flush_at` events are queued and the oldest waited `prompt_gather`, or the oldest waited `prompt_delay` |
//! | wifi, ethernet or unknown, on battery        | Relaxed   | a full batch is queued, or the oldest waited `relaxed_delay` |
//! | cellular or metered                          | Cellular  | a full batch is queued, or the oldest waited `max_delay - upload_margin` |
//! | battery low (not charging), low-power mode, or the app in the background on battery | Hold | the oldest waited `max_delay - upload_margin` |
//! | any online tier                              |           | the queue reaches `near_cap_fraction` of a cap: at once |
//!
//! Independently of the tier: going to the background, an explicit `flush()` and the
//! network coming back each start one flush; a flush sends everything queued, batch after
//! batch, so that the radio wakes once. Backoff and an auth pause defer all of it. On the
//! Prompt tier (mains power: requests cost CPU, not radio wake-ups) a flush ends once the
//! events waiting when it started are sent, and events tracked meanwhile wait for the
//! schedule again: otherwise steady tracking would keep a flush going with a request per
//! round trip. On the other tiers it takes everything, while the radio is awake.
//!
//! Held uploads start `upload_margin` before `max_delay` so that they land within it: with
//! the network up, no event waits longer than `max_delay` for delivery.

use crate::conditions::{DeviceConditions, Network};
use crate::policy::Policy;

/// How eager uploads are under the current conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// No network: nothing is attempted.
    Offline,
    /// Unconstrained: send small batches soon.
    Prompt,
    /// Wi-Fi on battery: gather several minutes into one burst.
    Relaxed,
    /// Cellular or metered: send full batches, or at the maximum delay.
    Cellular,
    /// Low battery or low-power mode: hold until the maximum delay.
    Hold,
}

impl Tier {
    /// The tier for some conditions, with the app in the foreground or not. An app in the
    /// background on battery holds its uploads: the OS penalises background radio use, and
    /// nobody is looking at the data it would send early.
    pub fn of(c: &DeviceConditions, foreground: bool, policy: &Policy) -> Tier {
        if !c.network.is_online() {
            return Tier::Offline;
        }
        let charging = c.charging == Some(true);
        let on_battery = !charging && c.battery_level.is_some();
        let low_battery = !charging
            && c.battery_level
                .is_some_and(|level| level < policy.low_battery_level);
        if c.low_power_mode || low_battery || (!foreground && on_battery) {
            return Tier::Hold;
        }
        if c.network == Network::Cellular || c.metered {
            return Tier::Cellular;
        }
        // No battery reported at all is a plugged-in machine.
        if charging || c.battery_level.is_none() {
            Tier::Prompt
        } else {
            Tier::Relaxed
        }
    }
}

/// What the scheduler needs to know about the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLoad {
    /// Events waiting (stored and not yet stored).
    pub events: u64,
    /// Their serialised bytes.
    pub bytes: u64,
    /// When the oldest waiting event started waiting, on the engine's clock.
    pub oldest_since_ms: Option<i64>,
}

/// The time at which an upload becomes due, ignoring backoff (the engine applies that):
/// `None` when nothing is due (offline, or an empty queue).
pub fn due_at(tier: Tier, load: QueueLoad, now_ms: i64, policy: &Policy) -> Option<i64> {
    let since = load.oldest_since_ms?;
    if load.events == 0 {
        return None;
    }
    let near_cap = load.events as f64 >= policy.max_queue_events as f64 * policy.near_cap_fraction
        || load.bytes as f64 >= policy.max_queue_bytes as f64 * policy.near_cap_fraction;
    let full_batch = load.events >= policy.max_batch_events as u64
        || load.bytes >= (policy.max_batch_bytes / 2) as u64;
    let after = |d: std::time::Duration| since.saturating_add(crate::policy::millis(d));
    let due = match tier {
        Tier::Offline => return None,
        _ if near_cap => now_ms,
        Tier::Prompt if full_batch => now_ms,
        Tier::Prompt if load.events >= policy.flush_at => {
            after(policy.prompt_gather.min(policy.prompt_delay))
        }
        Tier::Prompt => after(policy.prompt_delay),
        Tier::Relaxed | Tier::Cellular if full_batch => now_ms,
        Tier::Relaxed => after(policy.relaxed_delay),
        Tier::Cellular | Tier::Hold => after(policy.max_delay.saturating_sub(policy.upload_margin)),
    };
    Some(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(
        network: Network,
        level: Option<f32>,
        charging: Option<bool>,
        low_power: bool,
    ) -> DeviceConditions {
        DeviceConditions {
            battery_level: level,
            charging,
            low_power_mode: low_power,
            network,
            metered: false,
        }
    }

    impl Tier {
        fn of_fg(c: &DeviceConditions, p: &Policy) -> Tier {
            Tier::of(c, true, p)
        }
    }

    /// Each row of the table in the module doc maps to its tier.
    #[test]
    fn tiers() {
        let p = Policy::default();
        assert_eq!(
            Tier::of_fg(&cond(Network::Offline, None, None, false), &p),
            Tier::Offline
        );
        assert_eq!(
            Tier::of_fg(&cond(Network::Wifi, Some(0.5), Some(true), false), &p),
            Tier::Prompt
        );
        assert_eq!(
            Tier::of_fg(&cond(Network::Unknown, None, None, false), &p),
            Tier::Prompt
        );
        assert_eq!(
            Tier::of_fg(&cond(Network::Wifi, Some(0.5), Some(false), false), &p),
            Tier::Relaxed
        );
        assert_eq!(
            Tier::of_fg(&cond(Network::Cellular, Some(0.9), Some(false), false), &p),
            Tier::Cellular
        );
        let metered = DeviceConditions {
            metered: true,
            ..cond(Network::Wifi, Some(0.9), Some(true), false)
        };
        assert_eq!(Tier::of(&metered, true, &p), Tier::Cellular);
        assert_eq!(
            Tier::of_fg(&cond(Network::Wifi, Some(0.1), Some(false), false), &p),
            Tier::Hold
        );
        assert_eq!(
            Tier::of_fg(&cond(Network::Wifi, Some(0.1), Some(true), false), &p),
            Tier::Prompt
        );
        assert_eq!(
            Tier::of_fg(&cond(Network::Ethernet, Some(0.9), Some(true), true), &p),
            Tier::Hold
        );
        let battery = cond(Network::Wifi, Some(0.9), Some(false), false);
        assert_eq!(
            Tier::of(&battery, false, &p),
            Tier::Hold,
            "background on battery"
        );
        let mains = cond(Network::Wifi, Some(0.9), Some(true), false);
        assert_eq!(
            Tier::of(&mains, false, &p),
            Tier::Prompt,
            "background while charging"
        );
        let server = cond(Network::Unknown, None, None, false);
        assert_eq!(
            Tier::of(&server, false, &p),
            Tier::Prompt,
            "no battery at all"
        );
    }

    /// Due times follow the tier's delay, and nearing a cap overrides holding.
    #[test]
    fn due_times() {
        let p = Policy::default();
        let load = |events| QueueLoad {
            events,
            bytes: events * 300,
            oldest_since_ms: Some(1_000),
        };
        let ms = |d: std::time::Duration| crate::policy::millis(d);
        assert_eq!(
            due_at(Tier::Prompt, load(1), 2_000, &p),
            Some(1_000 + ms(p.prompt_delay))
        );
        assert_eq!(
            due_at(Tier::Prompt, load(p.flush_at), 2_000, &p),
            Some(1_000 + ms(p.prompt_gather)),
            "flush_at events: gathered for prompt_gather after the oldest"
        );
        assert_eq!(
            due_at(Tier::Prompt, load(p.max_batch_events as u64), 2_000, &p),
            Some(2_000),
            "a full batch goes at once"
        );
        let no_gather = Policy {
            prompt_delay: std::time::Duration::ZERO,
            ..Policy::default()
        };
        assert_eq!(
            due_at(Tier::Prompt, load(no_gather.flush_at), 2_000, &no_gather),
            Some(1_000),
            "gathering is cut to prompt_delay"
        );
        assert_eq!(
            due_at(Tier::Relaxed, load(p.flush_at), 2_000, &p),
            Some(1_000 + ms(p.relaxed_delay))
        );
        let held = ms(p.max_delay) - ms(p.upload_margin);
        assert_eq!(
            due_at(Tier::Cellular, load(50), 2_000, &p),
            Some(1_000 + held)
        );
        assert_eq!(
            due_at(Tier::Cellular, load(p.max_batch_events as u64), 2_000, &p),
            Some(2_000)
        );
        assert_eq!(
            due_at(Tier::Hold, load(p.max_batch_events as u64), 2_000, &p),
            Some(1_000 + held)
        );
        let near = (p.max_queue_events as f64 * p.near_cap_fraction) as u64;
        assert_eq!(due_at(Tier::Hold, load(near), 2_000, &p), Some(2_000));
        assert_eq!(due_at(Tier::Offline, load(near), 2_000, &p), None);
        assert_eq!(
            due_at(
                Tier::Prompt,
                QueueLoad {
                    events: 0,
                    bytes: 0,
                    oldest_since_ms: None
                },
                0,
                &p
            ),
            None
        );
    }
}
