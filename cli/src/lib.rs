//! The `trailhound` command-line tools, as a library so that the demo and the tests can
//! start the collector in-process.
//!
//! # Layout
//!
//! - [`collect`]: the local validating collector (HTTP server, validation, SQLite, live page).
//! - [`queue`]: inspect, export, import and replay a device's queue.
//! - [`demo`]: the README's first command: the SDK through an app session, and a report.
//! - [`plan`]: tracking plans: lint, check exported events, diff, import, codegen.
#![deny(missing_docs)]

pub mod collect;
pub mod demo;
pub mod plan;
pub mod queue;
