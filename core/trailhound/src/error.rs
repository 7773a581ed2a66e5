//! The runtime's error type.

use std::time::Duration;

use trailhound_core::policy::PolicyError;
use trailhound_core::ValidationError;

use crate::store::OpenError;

/// What can go wrong in the Rust API. Each variant says what was lost: nothing, except
/// the one call that returned it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The call's input is invalid; nothing was queued.
    #[error("invalid call: {0}")]
    Invalid(#[from] ValidationError),
    /// A plugin failed (panicked) on this event; it was not queued.
    #[error("{0}")]
    Plugin(String),
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A limit in the policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The client was shut down.
    #[error("the Trailhound client is shut down")]
    Closed,
    /// The background thread is far behind (storage stalled): more calls or bytes are
    /// waiting for it than the policy's `call_queue_capacity` / `call_queue_bytes`. This
    /// call was not accepted; try again later.
    #[error("too many calls are waiting for storage; this one was not accepted")]
    Backpressure,
    /// A blocking call did not finish in time; it goes on in the background.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}
