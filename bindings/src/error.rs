//! The one error type at the FFI edge, mapped from the core's errors in one place.

/// What went wrong, with the core's detail text. Each variant says what was lost: nothing,
/// except the one call that returned it.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum TrailhoundError {
    /// The call's input is invalid (empty name, non-finite number, too deep, too large,
    /// unsupported value); nothing was queued.
    #[error("invalid call: {detail}")]
    Invalid {
        /// Why, with the path of the bad value.
        detail: String,
    },
    /// A plugin failed on this event; it was not queued.
    #[error("plugin failed: {detail}")]
    Plugin {
        /// The plugin's exception or panic.
        detail: String,
    },
    /// A setting is invalid (endpoint, policy, missing transport).
    #[error("invalid configuration: {detail}")]
    Config {
        /// Which setting and why.
        detail: String,
    },
    /// The tracking plan could not be read or is invalid; the client was not started.
    #[error("{detail}")]
    Plan {
        /// Which plan, where in it and what is wrong there.
        detail: String,
        /// A JSON pointer into the plan file, such as `/events/0/schema/minimum` (empty
        /// for the whole file, or when it could not be read).
        at: String,
    },
    /// The data directory could not be opened (locked by another client, unreadable).
    #[error("storage: {detail}")]
    Storage {
        /// The failure.
        detail: String,
    },
    /// The client was shut down.
    #[error("the Trailhound client is shut down")]
    Closed,
    /// Storage is stalled and too many calls are waiting; this one was not accepted.
    #[error("too many calls are waiting for storage; this one was not accepted")]
    Backpressure,
    /// A blocking call did not finish in time; it goes on in the background.
    #[error("timed out after {timeout_ms} ms")]
    Timeout {
        /// The timeout that passed.
        timeout_ms: i64,
    },
    /// Storage kept failing until `shutdown`'s deadline: accepted events (reported to the
    /// listener as dropped, `StoreFailed`) and maybe the identity or opt-out choice were
    /// not saved; the detail says which.
    #[error("{detail}")]
    Unsaved {
        /// What was not saved.
        detail: String,
        /// Accepted events that were never committed.
        events: i64,
    },
    /// `flush_blocking` or `shutdown` was called from a listener, which runs on the
    /// background thread it would wait for: the request was made, without waiting.
    #[error("{detail}")]
    FromListener {
        /// Which call.
        detail: String,
    },
    /// A host implementation of a foreign trait (transport, plugin, listener) threw.
    #[error("callback failed: {detail}")]
    Callback {
        /// The host exception's text.
        detail: String,
    },
}

impl From<trailhound::Error> for TrailhoundError {
    fn from(e: trailhound::Error) -> Self {
        use trailhound::Error as E;
        let detail = e.to_string();
        match e {
            E::Invalid(_) => TrailhoundError::Invalid { detail },
            E::Plugin(_) => TrailhoundError::Plugin {
                // The core only knows that the plugin unwound; the foreign adapter kept
                // the host's exception text for this thread.
                detail: crate::foreign::take_plugin_failure().unwrap_or(detail),
            },
            E::Config(_) | E::Policy(_) => TrailhoundError::Config { detail },
            E::Plan { error, .. } => TrailhoundError::Plan {
                detail,
                at: error.at,
            },
            E::Open(_) => TrailhoundError::Storage { detail },
            E::Closed => TrailhoundError::Closed,
            E::Backpressure => TrailhoundError::Backpressure,
            E::Timeout(t) => TrailhoundError::Timeout {
                timeout_ms: i64::try_from(t.as_millis()).unwrap_or(i64::MAX),
            },
            E::Unsaved { events, .. } => TrailhoundError::Unsaved {
                detail,
                events: crate::int::out_i64(events),
            },
            E::FromListener(_) => TrailhoundError::FromListener { detail },
        }
    }
}

/// An exception of a type UniFFI does not know, thrown by a host implementation.
impl From<uniffi::UnexpectedUniFFICallbackError> for TrailhoundError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TrailhoundError::Callback { detail: e.reason }
    }
}
