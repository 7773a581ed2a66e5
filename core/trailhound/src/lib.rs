//! Trailhound for Rust programs, and the native runtime under the mobile bindings.
//!
//! `track()` is instant on the caller's thread: it validates, stamps and serialises the
//! event and hands it to a background thread, which commits it to a SQLite queue within
//! the policy's commit interval and delivers it in gzip batches to a Segment-compatible
//! collector, with retries, backoff and battery-aware scheduling. The decisions are made by
//! the sans-IO engine in [`trailhound_core`]; this crate is its thin native driver.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), trailhound::Error> {
//! let client = trailhound::Builder::new("WRITE_KEY", "https://collector.example.com", "/var/lib/myapp/trailhound")
//!     .build()?;
//! client.identify(Some("user-42"), json!({"plan": "pro"}))?;
//! client.track("Song Played", json!({"title": "Nachtmusik", "seconds": 215}))?;
//! client.shutdown(Duration::from_secs(2))?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`client`]: the [`Builder`] and the [`Client`] API; plugins, listeners and the
//!   tracking plan ([`PlanSource`], applied by [`trailhound_core::plan::PlanGate`]).
//! - `worker`: the engine thread (engine + store) and the upload thread.
//! - [`store`]: the SQLite queue: schema and migrations, locking, corruption recovery.
//! - [`transport`]: the [`Transport`] trait and the default ureq transport.
//! - [`error`]: the [`Error`] type.
#![deny(missing_docs)]

pub mod client;
pub mod error;
pub mod store;
pub mod transport;
mod worker;

pub use client::{Builder, Client, Listener, PlanSource, Plugin};
pub use error::Error;
pub use trailhound_core::plan::PlanMode;
#[cfg(feature = "ureq")]
pub use transport::UreqTransport;
pub use transport::{HttpRequest, Transport};

pub use trailhound_core::{
    self as core, context::AppInfo, context::ContextInfo, Call, DeviceConditions, DropReason,
    Message, MessageType, Network, Notification, Policy, Properties, Stats, UploadResult,
};
