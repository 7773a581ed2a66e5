//! Trailhound for Kotlin (Android), Swift (iOS) and Python, through UniFFI.
//!
//! This crate is only the FFI edge: every decision stays in the `trailhound` runtime and
//! its sans-IO engine, so the platforms cannot drift apart. The generated code is wrapped
//! by a thin hand-written layer per language (`kotlin/`, `swift/`, `python/`) that turns
//! the host's maps into [`Value`]s and gives the API its native shape.
//!
//! # Layout
//!
//! - [`client`]: [`TrailhoundClient`], its [`Config`] and the policy overrides.
//! - [`value`]: [`Value`], the JSON-like value that properties and traits cross in.
//! - [`types`]: records and enums mirroring the core's (stats, notifications, device
//!   conditions, events), built with `From`/`TryFrom`.
//! - [`foreign`]: traits the app implements: [`HttpTransport`], [`EventPlugin`],
//!   [`DeliveryListener`], and their adapters to the core's traits.
//! - [`error`]: [`TrailhoundError`], the one error at the edge, mapped from the core's.
//! - `int`: integers cross signed (`i64`, `i32`, usable from Java); the core's unsigned
//!   values go out saturated, host values come in refused if negative.
//!
//! # Panics and exceptions
//!
//! Every exported function runs inside UniFFI's `catch_unwind`: a Rust panic reaches the
//! host as an exception (Kotlin `InternalException`, Python `InternalError`), never an
//! abort; this needs `panic = "unwind"`, which every profile here keeps. An exception
//! thrown by a host implementation of a foreign trait comes back as
//! [`TrailhoundError::Callback`] and is handled where it happened (a failed upload, a
//! refused event, an ignored notification).
#![deny(missing_docs)]

pub mod client;
pub mod error;
pub mod foreign;
mod int;
pub mod types;
pub mod value;

pub use client::{Config, PolicyOverrides, TrailhoundClient};
pub use error::TrailhoundError;
pub use foreign::{DeliveryListener, EventPlugin, HttpRequest, HttpResponse, HttpTransport};
pub use types::*;
pub use value::Value;

uniffi::setup_scaffolding!();
