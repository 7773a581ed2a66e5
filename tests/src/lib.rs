//! Shared helpers for the integration tests, the simulation and the demo.
//!
//! - [`collector`]: a loopback Segment-compatible receiver with scripted faults.

pub mod collector;
