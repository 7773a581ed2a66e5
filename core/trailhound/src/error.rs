//! The runtime's error type.

use std::time::Duration;

use trailhound_core::plan::PlanError;
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
    /// The tracking plan could not be read or is invalid (see `trailhound plan lint`); the
    /// client was not started and nothing was opened.
    #[error("tracking plan {origin}: {error}")]
    Plan {
        /// Where the plan came from: its file's path, or `(JSON text)`.
        origin: String,
        /// Where in the plan (a JSON pointer; `""` for the whole file, or when it could
        /// not be read) and what is wrong there.
        error: PlanError,
    },
    /// A limit in the policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The client was shut down.
    #[error("the Trailhound client is shut down")]
    Closed,
    /// The background thread is far behind (storage stalled): more events or bytes are
    /// waiting for it than the policy's `call_queue_capacity` / `call_queue_bytes` (the
    /// engine stops taking events while `max_uncommitted_events` / `_bytes` wait
    /// uncommitted), or, for control calls (flush, conditions, opt-out), 65 536 of them.
    /// This call was not accepted and changed nothing; try again later.
    #[error("too many calls are waiting for storage; this one was not accepted")]
    Backpressure,
    /// A blocking call did not finish in time; it goes on in the background.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Storage kept failing until `shutdown`'s deadline: accepted events (`events`), and
    /// maybe the state (identity, retry state; `state`) or the opt-out choice (`opt_out`),
    /// could not be saved. The events were reported to the listener as dropped
    /// (`store_failed`); an unsaved opt-out is kept in a marker file beside the database
    /// and applied at the next start.
    #[error("storage kept failing until shutdown: {}", unsaved_text(*.events, *.state, *.opt_out))]
    Unsaved {
        /// Accepted events that were never committed.
        events: u64,
        /// The identity or retry state was not saved.
        state: bool,
        /// Of the state, the opt-out (or opt-in) choice.
        opt_out: bool,
    },
    /// A blocking call (`flush_blocking`, `shutdown`) was made from a listener, which runs
    /// on the background thread it would wait for: the request was made, without waiting.
    #[error("{0} cannot wait when called from a listener (listeners run on the background thread it would wait for); the request was made without waiting")]
    FromListener(&'static str),
}

fn unsaved_text(events: u64, state: bool, opt_out: bool) -> String {
    let mut parts = Vec::new();
    if events > 0 {
        parts.push(format!(
            "{events} accepted events were not saved (reported dropped as store_failed)"
        ));
    }
    if opt_out {
        parts.push("the opt-out choice was not saved in the database".to_owned());
    } else if state {
        parts.push("the identity and retry state were not saved".to_owned());
    }
    if parts.is_empty() {
        parts.push("nothing was lost".to_owned());
    }
    parts.join("; ")
}
