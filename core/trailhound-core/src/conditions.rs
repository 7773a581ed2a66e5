//! What the device reports about itself: network, battery and power mode.
//!
//! The platform layer (Android, iOS, the browser) observes these and forwards every change;
//! the scheduler in [`crate::schedule`] decides what they mean for uploads.

use serde::{Deserialize, Serialize};

/// The kind of network the device is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No connectivity: no upload is attempted.
    Offline,
    /// Wi-Fi.
    Wifi,
    /// A cellular data connection.
    Cellular,
    /// A wired connection.
    Ethernet,
    /// The platform did not say (servers, desktop programs); treated as a fast link.
    #[default]
    Unknown,
}

impl Network {
    /// Whether an upload can be attempted at all.
    pub fn is_online(self) -> bool {
        self != Network::Offline
    }

    /// The wire name, as put into `context.network`.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Offline => "offline",
            Network::Wifi => "wifi",
            Network::Cellular => "cellular",
            Network::Ethernet => "ethernet",
            Network::Unknown => "unknown",
        }
    }
}

/// Device conditions that affect when uploads happen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeviceConditions {
    /// Battery charge from 0.0 to 1.0, if the platform knows it.
    pub battery_level: Option<f32>,
    /// Whether the device is charging, if the platform knows it.
    pub charging: Option<bool>,
    /// Low-power (iOS) or battery-saver (Android) mode.
    pub low_power_mode: bool,
    /// The current network.
    pub network: Network,
    /// Whether the network is metered (a hotspot, a capped plan).
    pub metered: bool,
}

impl Default for DeviceConditions {
    /// A device that reported nothing: online, on an unknown (assumed fast) network, with
    /// no battery. This is what servers and desktop programs look like.
    fn default() -> Self {
        DeviceConditions {
            battery_level: None,
            charging: None,
            low_power_mode: false,
            network: Network::Unknown,
            metered: false,
        }
    }
}
