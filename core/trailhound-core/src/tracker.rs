//! Caller-side state: what calls are stamped with before they reach the engine.
//!
//! Every platform driver (the native client, the browser package) keeps one [`Tracker`]:
//! the identity, the session and the serialised context that `track()` and friends stamp
//! events with. It lives here, not in each driver, so that when a session rolls over, or
//! what an `identify` changes, cannot drift between platforms.

use crate::context::{self, ContextInfo};
use crate::message::{self, Call, Context, Identity, Message, MessageType, Properties};
use crate::policy::Policy;
use crate::session::Session;
use crate::{Network, ValidationError};

/// The identity, session and context that calls are stamped with.
#[derive(Debug)]
pub struct Tracker {
    identity: Identity,
    info: ContextInfo,
    network: Network,
    session: Session,
    context: Context,
}

/// What an accepted `identify` or `alias` changes about who later events are from.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityChange {
    user_id: Option<String>,
    traits: Option<Properties>,
}

impl IdentityChange {
    /// The change a stamped message makes once it is accepted, if any. Taken before the
    /// message is sealed and applied only after it is queued, so that a refused call
    /// changes nothing.
    pub fn of(msg: &Message) -> Option<IdentityChange> {
        match msg.kind {
            MessageType::Identify => Some(IdentityChange {
                user_id: msg.user_id.clone(),
                traits: msg.traits.clone(),
            }),
            MessageType::Alias => Some(IdentityChange {
                user_id: msg.user_id.clone(),
                traits: None,
            }),
            _ => None,
        }
    }
}

impl Tracker {
    /// A tracker for `identity` on a device described by `info`, in a new session.
    pub fn new(identity: Identity, info: ContextInfo, network: Network) -> Tracker {
        let mut t = Tracker {
            identity,
            info,
            network,
            session: Session::new(),
            context: Context::new(Properties::new()),
        };
        t.rebuild_context();
        t
    }

    /// The current identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Records the network, which the context reports.
    pub fn set_network(&mut self, network: Network) {
        if self.network != network {
            self.network = network;
            self.rebuild_context();
        }
    }

    /// `reset()`: a new anonymous identity and a new session.
    pub fn reset(&mut self, identity: Identity) -> &Identity {
        self.identity = identity;
        self.session = Session::new();
        self.rebuild_context();
        &self.identity
    }

    /// Takes an identity another writer of the shared store chose (a second browser tab):
    /// a new anonymous id is that tab's `reset()`, and starts a new session here too; a
    /// changed user id or traits keep the session.
    pub fn adopt(&mut self, identity: Identity) -> &Identity {
        if identity.anonymous_id != self.identity.anonymous_id {
            return self.reset(identity);
        }
        self.identity = identity;
        &self.identity
    }

    /// Stamps a call: touches the session (a new one after `policy.session_timeout` of
    /// inactivity), then builds the message with the identity and context.
    pub fn stamp(
        &mut self,
        call: Call,
        message_id: String,
        now_ms: i64,
        policy: &Policy,
    ) -> Result<Message, ValidationError> {
        let timeout = crate::policy::millis(policy.session_timeout);
        if self.session.touch(now_ms, timeout).1 {
            self.rebuild_context();
        }
        message::stamp(
            call,
            &self.identity,
            &self.context,
            message_id,
            now_ms,
            policy,
        )
    }

    /// Applies an accepted identity change; returns the identity to persist.
    pub fn apply(&mut self, change: IdentityChange) -> &Identity {
        self.identity.user_id = change.user_id;
        self.identity
            .traits
            .extend(change.traits.unwrap_or_default());
        &self.identity
    }

    /// The context is serialised once per change, not once per call.
    fn rebuild_context(&mut self) {
        self.context = Context::new(context::build(
            &self.info,
            &self.identity.anonymous_id,
            self.network,
            self.session.id(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn track(name: &str) -> Call {
        Call::Track {
            event: name.into(),
            properties: Properties::new(),
        }
    }

    /// A session rolls over after the timeout, and the context says so.
    #[test]
    fn session_rolls_over_after_inactivity() {
        let policy = Policy::default();
        let mut t = Tracker::new(
            Identity::new(uuid::Uuid::from_u128(1)),
            ContextInfo::default(),
            Network::Wifi,
        );
        let session =
            |m: &Message| serde_json::to_value(m).unwrap()["context"]["sessionId"].clone();
        let a = t.stamp(track("a"), "m1".into(), 1_000, &policy).unwrap();
        let b = t.stamp(track("b"), "m2".into(), 2_000, &policy).unwrap();
        let late = 2_000 + crate::policy::millis(policy.session_timeout) + 1;
        let c = t.stamp(track("c"), "m3".into(), late, &policy).unwrap();
        assert_eq!(session(&a), session(&b));
        assert_ne!(session(&b), session(&c));
    }

    /// identify sets the user and merges traits; alias sets the user only; track changes
    /// nothing.
    #[test]
    fn identity_changes() {
        let policy = Policy::default();
        let mut t = Tracker::new(
            Identity::new(uuid::Uuid::from_u128(2)),
            ContextInfo::default(),
            Network::Wifi,
        );
        let traits = |v: serde_json::Value| match v {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => unreachable!(),
        };
        let id = Call::Identify {
            user_id: Some("u1".into()),
            traits: traits(json!({"plan": "pro"})),
        };
        let msg = t.stamp(id, "m1".into(), 1, &policy).unwrap();
        t.apply(IdentityChange::of(&msg).unwrap());
        assert_eq!(t.identity().user_id.as_deref(), Some("u1"));
        let alias = Call::Alias {
            user_id: "u2".into(),
        };
        let msg = t.stamp(alias, "m2".into(), 2, &policy).unwrap();
        t.apply(IdentityChange::of(&msg).unwrap());
        assert_eq!(t.identity().user_id.as_deref(), Some("u2"));
        assert_eq!(t.identity().traits.get("plan"), Some(&json!("pro")));
        let msg = t.stamp(track("x"), "m3".into(), 3, &policy).unwrap();
        assert_eq!(IdentityChange::of(&msg), None);
        let before = t.identity().anonymous_id.clone();
        t.reset(Identity::new(uuid::Uuid::from_u128(3)));
        assert_ne!(t.identity().anonymous_id, before);
        assert_eq!(t.identity().user_id, None);
    }
}
