//! Sessions: a run of activity with no gap longer than [`crate::Policy::session_timeout`].
//!
//! The session id is the session's start time in milliseconds, as Amplitude and others do,
//! so that it sorts and needs no extra randomness.

/// The current session, advanced by every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    id: Option<i64>,
    last_activity_ms: i64,
}

impl Session {
    /// No session yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records activity at `now_ms` and returns the session id, and whether a new session
    /// started (the first event, or after `timeout_ms` of inactivity, or a clock that went
    /// back past the session's start).
    pub fn touch(&mut self, now_ms: i64, timeout_ms: i64) -> (i64, bool) {
        let expired = match self.id {
            None => true,
            Some(start) => {
                now_ms.saturating_sub(self.last_activity_ms) > timeout_ms || now_ms < start
            }
        };
        if expired {
            self.id = Some(now_ms);
        }
        self.last_activity_ms = now_ms;
        (self.id.unwrap_or(now_ms), expired)
    }

    /// The current session id, if one started.
    pub fn id(&self) -> Option<i64> {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Activity within the timeout keeps the session; a longer gap starts a new one.
    #[test]
    fn timeout_starts_new_session() {
        let mut s = Session::new();
        assert_eq!(s.touch(1_000, 100), (1_000, true));
        assert_eq!(s.touch(1_090, 100), (1_000, false));
        assert_eq!(s.touch(1_180, 100), (1_000, false));
        assert_eq!(s.touch(1_281, 100), (1_281, true));
        assert_eq!(
            s.touch(500, 100),
            (500, true),
            "clock went back before the start"
        );
    }
}
