//! The Trailhound engine: everything a client-side tracking SDK decides, as a deterministic
//! state machine with no I/O.
//!
//! This crate has no clock, file, socket or thread inside. Runtimes drive it: the native
//! runtime (`trailhound`: a thread with SQLite and HTTP), the browser package (IndexedDB and
//! `fetch` on the event loop), and simulations on a virtual clock. They feed it inputs with
//! `handle_*` calls, take work from `poll_*` calls, and sleep until `poll_timeout`; see
//! [`Engine`] for the loop. Every limit is in [`policy`], with its reason.
//!
//! # Layout
//!
//! - [`policy`]: every limit and delay, with why it has its value.
//! - [`message`]: Segment messages: validation, stamping, serialisation.
//! - [`engine`]: the state machine: group commits, caps, batching, the response table.
//! - [`schedule`]: the battery- and network-aware upload policy.
//! - [`retry`]: backoff with jitter and `Retry-After`.
//! - [`datetime`]: RFC 3339 timestamps and HTTP-dates, without a date-time library.
//! - [`breaker`]: several endpoints, a circuit breaker each.
//! - [`store`]: storage operations, the `QueueStore` trait, a memory store, the
//!   conformance suite every backend passes.
//! - [`wire`]: batch bodies, gzip, Basic auth.
//! - [`endpoint`]: the endpoint rules (HTTPS, loopback HTTP, no userinfo or query), for
//!   every platform's URL parser.
//! - [`plan`]: tracking plans: the plan file, the one validator, the device modes.
//! - [`context`]: the `context` object sent with every event.
//! - [`tracker`]: caller-side state (identity, session, context) that calls are stamped with.
//! - [`conditions`], [`session`], [`report`]: device conditions, sessions, stats and
//!   listener notifications.
#![deny(missing_docs)]

pub mod breaker;
pub mod buffers;
pub mod conditions;
pub mod context;
pub mod datetime;
pub mod endpoint;
pub mod engine;
pub mod message;
pub mod plan;
pub mod policy;
pub mod report;
pub mod retry;
pub mod schedule;
pub mod session;
pub mod store;
pub mod testing;
pub mod tracker;
pub mod wire;

pub use conditions::{DeviceConditions, Network};
pub use engine::{Engine, Lifecycle, Transmit, UploadResult};
pub use message::{Call, Identity, Message, MessageType, Properties, QueuedEvent, ValidationError};
pub use policy::Policy;
pub use report::{DropReason, Dropped, Notification, Stats};
pub use store::{
    FailureKind, MemoryStore, PersistedState, QueueStore, StoreFailure, StoreOp, StoreResult,
    StoreSnapshot,
};

/// The library's version, sent as `context.library.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The library's name, sent as `context.library.name`.
pub const LIBRARY_NAME: &str = "trailhound";
