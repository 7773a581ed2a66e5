//! Shared helpers for the integration tests, the simulation and the demo.
//!
//! - [`collector`]: a loopback Segment-compatible receiver with scripted faults.
//! - [`sim`]: the day-long scheduling simulation: Trailhound's policy against a fixed baseline.

pub mod collector;
pub mod sim;
