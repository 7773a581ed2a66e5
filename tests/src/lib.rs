//! Shared helpers for the integration tests, the simulation and the demo.
//!
//! - [`collector`]: a loopback Segment-compatible receiver with scripted faults.
//! - [`hostile`]: a raw-TCP server that misbehaves: any status, cut or endless bodies,
//!   resets, trickles, an untrusted TLS certificate.
//! - [`plan_cases`]: the shared tracking-plan table, as SDK calls.
//! - [`sim`]: the day-long scheduling simulation: Trailhound's policy against a fixed baseline.
//! - [`util`]: device conditions, a recording client builder, a bounded wait on stats,
//!   the monotonic clock and a seeded PRNG, shared by the tests and the crash child.

pub mod collector;
pub mod hostile;
pub mod plan_cases;
pub mod sim;
pub mod util;

/// The repository README's examples, compiled as doctests so that they cannot drift from
/// the API. Here rather than in the `trailhound` crate, whose published package does not
/// carry the repository's README.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
