//! Messages in the Segment tracking format: building, validating and serialising them.
//!
//! A call such as `track("Song Played", props)` becomes a [`Message`] here: validated,
//! stamped with its `messageId` and timestamp, enriched with the context, shown to the
//! plugins, then serialised once into a [`QueuedEvent`], the form that is stored, batched
//! and sent. Serialising at the call site is what lets the 32 KB limit be an error the
//! caller sees instead of a drop they never hear about.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::buffers::{Shelf, EVENT_BUFFERS};
use crate::policy::{Policy, MAX_MESSAGE_ID_LEN};

/// Properties of an event, or traits of a user or group: a JSON object.
pub type Properties = Map<String, Value>;

/// The kinds of message of the Segment tracking spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// A user action (`track`).
    Track,
    /// Who the user is (`identify`).
    Identify,
    /// A screen of a mobile app was shown (`screen`).
    Screen,
    /// A web page was shown (`page`).
    Page,
    /// The user belongs to a group, account or organisation (`group`).
    Group,
    /// Two user ids are the same person (`alias`).
    Alias,
}

impl MessageType {
    /// The wire name (`"track"`, `"identify"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Track => "track",
            MessageType::Identify => "identify",
            MessageType::Screen => "screen",
            MessageType::Page => "page",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "track" => MessageType::Track,
            "identify" => MessageType::Identify,
            "screen" => MessageType::Screen,
            "page" => MessageType::Page,
            "group" => MessageType::Group,
            "alias" => MessageType::Alias,
            _ => return None,
        })
    }
}

/// What the app asked to record, before it is stamped.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `track(event, properties)`.
    Track {
        /// The event name, such as `"Song Played"`. Must not be empty.
        event: String,
        /// Free-form properties.
        properties: Properties,
    },
    /// `identify(user_id, traits)`; a `None` user id only records traits.
    Identify {
        /// The app's id for the user.
        user_id: Option<String>,
        /// Traits of the user, merged into the stored traits.
        traits: Properties,
    },
    /// `screen(name, properties)`.
    Screen {
        /// The screen's name.
        name: String,
        /// Free-form properties.
        properties: Properties,
    },
    /// `page(name, properties)`.
    Page {
        /// The page's name.
        name: String,
        /// Free-form properties (url, path, referrer, title, search…).
        properties: Properties,
    },
    /// `group(group_id, traits)`.
    Group {
        /// The group's id. Must not be empty.
        group_id: String,
        /// Traits of the group.
        traits: Properties,
    },
    /// `alias(new_user_id)`: links the current identity to a new user id.
    Alias {
        /// The new user id. Must not be empty.
        user_id: String,
    },
}

/// Why a call was refused. Nothing is queued for a refused call, and nothing else is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A required name or id is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A number is NaN or infinite; JSON cannot carry it.
    #[error("value at {path} is not a finite number")]
    NotFinite {
        /// Where the value is, such as `properties.duration`.
        path: String,
    },
    /// Objects and arrays nest deeper than the policy allows.
    #[error("{path} nests deeper than {max} levels")]
    TooDeep {
        /// The first path that is too deep.
        path: String,
        /// The limit.
        max: usize,
    },
    /// The serialised event is over the per-event limit.
    #[error("event is {bytes} bytes once serialised; the limit is {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A value that has no JSON form (from a binding: a date, a custom object…).
    #[error("value at {path} is not JSON: {detail}")]
    Unsupported {
        /// Where the value is.
        path: String,
        /// What it was.
        detail: String,
    },
    /// The message id is empty or longer than collectors accept.
    #[error("messageId must be 1 to {MAX_MESSAGE_ID_LEN} characters")]
    BadMessageId,
}

/// Converts a float to JSON, refusing NaN and infinities (bindings call this for every
/// number they convert, so that a non-finite value is an error and not a silent `null`).
pub fn number(value: f64, path: &str) -> Result<Value, ValidationError> {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| ValidationError::NotFinite {
            path: path.to_owned(),
        })
}

/// The stable identity of the device and its user, persisted across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The anonymous device id (a UUID), created once; `reset()` makes a new one.
    pub anonymous_id: String,
    /// The app's user id, from `identify` or `alias`.
    pub user_id: Option<String>,
    /// The user's traits, merged over successive `identify` calls.
    pub traits: Properties,
}

impl Identity {
    /// A new anonymous identity.
    pub fn new(anonymous_id: uuid::Uuid) -> Self {
        Identity {
            anonymous_id: anonymous_id.hyphenated().to_string(),
            user_id: None,
            traits: Properties::new(),
        }
    }
}

/// The `context` of messages: built once, shared by every event until it changes, and
/// serialised once. A plugin that changes it (through [`Context::make_mut`]) gets its own
/// copy, serialised with its event.
#[derive(Clone)]
pub struct Context {
    map: Arc<Properties>,
    json: Option<Arc<RawValue>>,
    /// One entry added after the plugins ran (`context.plan`), written after the shared
    /// fields: annotating an event must not copy and re-serialise the whole context.
    annex: Option<Arc<Annex>>,
}

/// An entry for events' contexts, serialised once ([`Context::set_annex`]); cheap to
/// clone. Events given the same annex over the same shared context share one serialised
/// context (one allocation, and one row of a store's contexts table).
#[derive(Clone, Debug)]
pub struct ContextAnnex(Arc<Annex>);

#[derive(Debug)]
struct Annex {
    key: String,
    value: Box<RawValue>,
    /// The shared context this entry was last spliced into, and the result.
    spliced: std::sync::Mutex<Option<(Arc<RawValue>, Arc<RawValue>)>>,
}

impl PartialEq for Annex {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.value.get() == other.value.get()
    }
}

impl ContextAnnex {
    /// `key` with `value`, serialised now.
    pub fn new(key: &str, value: &impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self::from_raw(key, serde_json::value::to_raw_value(value)?))
    }

    pub(crate) fn from_raw(key: &str, value: Box<RawValue>) -> Self {
        ContextAnnex(Arc::new(Annex {
            key: key.to_owned(),
            value,
            spliced: std::sync::Mutex::new(None),
        }))
    }

    /// The entry's key.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The entry's value, serialised.
    pub fn value(&self) -> &str {
        self.0.value.get()
    }
}

impl Context {
    /// A context, serialised now so that events can share the text.
    pub fn new(map: Properties) -> Self {
        let json = serde_json::value::to_raw_value(&map).ok().map(Arc::from);
        Context {
            map: Arc::new(map),
            json,
            annex: None,
        }
    }

    /// The context's fields, for changing: this event then carries its own copy (with any
    /// annexed entry among them).
    pub fn make_mut(&mut self) -> &mut Properties {
        self.json = None;
        let map = Arc::make_mut(&mut self.map);
        if let Some(annex) = self.annex.take() {
            if let Ok(value) = serde_json::from_str(annex.value.get()) {
                map.insert(annex.key.clone(), value);
            }
        }
        map
    }

    /// Adds `key` to this event's context without copying the shared fields: the entry is
    /// written after them when the event is serialised (replacing an earlier annex). The
    /// fields read through `Deref` do not include it. A key the context already has is
    /// replaced the slow way, through [`Context::make_mut`].
    pub fn annex(&mut self, key: &str, value: &impl Serialize) -> Result<(), serde_json::Error> {
        self.set_annex(ContextAnnex::new(key, value)?)
    }

    /// [`Context::annex`] with an entry serialised once for many events.
    pub fn set_annex(&mut self, annex: ContextAnnex) -> Result<(), serde_json::Error> {
        if self.map.contains_key(annex.key()) {
            let value = serde_json::from_str(annex.value())?;
            self.make_mut().insert(annex.key().to_owned(), value);
            return Ok(());
        }
        self.annex = Some(annex.0);
        Ok(())
    }

    /// The serialised context this event carries, when it is serialised text (shared, or
    /// shared plus an annex spliced in after its fields, once per shared context).
    fn text(&self) -> Option<Arc<RawValue>> {
        let json = self.json.as_ref()?;
        let Some(annex) = &self.annex else {
            return Some(Arc::clone(json));
        };
        let mut last = annex.spliced.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((base, spliced)) = &*last {
            if Arc::ptr_eq(base, json) {
                return Some(Arc::clone(spliced));
            }
        }
        let head = json.get().trim_end();
        let head = head.strip_suffix('}')?;
        let key = serde_json::to_string(&annex.key).ok()?;
        let mut text = String::with_capacity(head.len() + key.len() + annex.value.get().len() + 3);
        text.push_str(head);
        if head.trim_end() != "{" {
            text.push(',');
        }
        text.push_str(&key);
        text.push(':');
        text.push_str(annex.value.get());
        text.push('}');
        let spliced: Arc<RawValue> = RawValue::from_string(text).ok()?.into();
        *last = Some((Arc::clone(json), Arc::clone(&spliced)));
        Some(spliced)
    }
}

impl From<Properties> for Context {
    fn from(map: Properties) -> Self {
        Context::new(map)
    }
}

impl std::ops::Deref for Context {
    type Target = Properties;
    fn deref(&self) -> &Properties {
        &self.map
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map && self.annex == other.annex
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

impl Serialize for Context {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match (&self.annex, self.text()) {
            (_, Some(json)) => json.serialize(s),
            (None, None) => self.map.serialize(s),
            (Some(annex), None) => {
                let mut m = s.serialize_map(Some(self.map.len() + 1))?;
                for (k, v) in self.map.iter() {
                    m.serialize_entry(k, v)?;
                }
                m.serialize_entry(&annex.key, &annex.value)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Context {
            map: Arc::new(Properties::deserialize(d)?),
            json: None,
            annex: None,
        })
    }
}

/// One event as plugins see it: the Segment message, fully stamped and enriched.
///
/// Plugins may change any field; see [`Context::make_mut`] for the context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The kind of message.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// Unique per event, fixed at track time, the same on every retry: servers dedupe on it.
    pub message_id: String,
    /// When the event happened (ISO-8601, UTC, milliseconds).
    pub timestamp: String,
    /// The anonymous device id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// The user id, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The event name (`track`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The screen or page name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The group id (`group`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The previous id (`alias`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
    /// Properties (`track`, `screen`, `page`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<Properties>,
    /// Traits (`identify`, `group`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traits: Option<Properties>,
    /// Library, app, device, os, locale, timezone, screen, network, session.
    pub context: Context,
}

/// A validated, serialised event: what the queue stores and batches carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    /// Queue position, assigned by the engine; strictly increasing, oldest first.
    pub seq: u64,
    /// The message's `messageId`.
    pub message_id: String,
    /// The message's type.
    pub kind: MessageType,
    /// The event or screen/page name, kept beside the JSON for inspection tools.
    pub name: Option<String>,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The message, serialised exactly as it will be sent.
    pub json: EventJson,
}

impl QueuedEvent {
    /// Size of the serialised event in bytes: its wire form, what caps and batch limits
    /// count.
    pub fn bytes(&self) -> u64 {
        self.json.len() as u64
    }

    /// Bytes the event itself takes in the queue, in memory and on disk: its body, without
    /// the context it shares with the other events tracked under it (kept once). The
    /// queue's caps ([`Policy::max_queue_bytes`]) and memory bounds count this; batch
    /// limits count [`QueuedEvent::bytes`], what is sent.
    pub fn stored_bytes(&self) -> u64 {
        self.json.body().len() as u64
    }

    /// Rebuilds a queued event from one line of JSON, as exported by a queue (the
    /// `trailhound queue import` path). The message is validated like a tracked one.
    pub fn from_json(json: &str, policy: &Policy) -> Result<Self, ValidationError> {
        let msg: Message =
            serde_json::from_str(json).map_err(|e| ValidationError::Unsupported {
                path: "$".into(),
                detail: e.to_string(),
            })?;
        let created_ms = crate::datetime::parse_rfc3339(&msg.timestamp).ok_or_else(|| {
            ValidationError::Unsupported {
                path: "timestamp".into(),
                detail: format!(
                    "`{}` is not an RFC 3339 date-time (2026-12-02T16:14:42.123Z)",
                    msg.timestamp
                ),
            }
        })?;
        seal(msg, created_ms, policy)
    }
}

/// A context serialised once and shared, unchanged, by the events that carry it: in
/// memory, by every event tracked until it changes; in the SQLite queue, one row of its
/// `contexts` table.
pub type SharedContext = Arc<RawValue>;

/// The key the context has on the wire, between the rest of the message and it.
const CONTEXT_KEY: &str = ",\"context\":";

/// An event's JSON, exactly as it is sent, but held without a copy of the context most
/// events share.
///
/// The context (app, device, os, library, locale, timezone, screen, network, session) is
/// most of a typical event's bytes and changes rarely, so an event keeps its message
/// without the context (the *body*) and a [`SharedContext`]. `Message` serialises
/// `context` last, so the wire form is the body without its closing `}`, then
/// `,"context":`, the context and `}`: byte for byte what serialising the message gives.
/// An event without a shared context (imported, or whose context a plugin changed) keeps
/// its whole JSON as the body.
///
/// Equality is equality of the wire forms.
#[derive(Clone)]
pub struct EventJson {
    body: String,
    context: Option<SharedContext>,
}

impl EventJson {
    /// A whole message's JSON, context included (or none).
    pub fn full(json: String) -> Self {
        EventJson {
            body: json,
            context: None,
        }
    }

    /// A message's JSON without its context, `body` (a JSON object), and the context that
    /// goes last in it. A body that is not an object (`{…}`), which only a damaged store
    /// could give, cannot take the context: it is kept whole, without it.
    pub fn with_context(body: String, context: SharedContext) -> Self {
        let context =
            (body.len() >= 2 && body.starts_with('{') && body.ends_with('}')).then_some(context);
        EventJson { body, context }
    }

    /// The JSON without the shared context, or the whole JSON when there is none.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The shared context, when the body lacks it.
    pub fn context(&self) -> Option<&SharedContext> {
        self.context.as_ref()
    }

    /// The body without its closing `}` and the separator before the context, when there
    /// is a shared context: the wire form is `head`, the context and `}`.
    fn head_and_separator(&self) -> Option<(&str, &'static str, &str)> {
        let context = self.context.as_ref()?;
        let head = &self.body[..self.body.len() - 1];
        // An empty object takes no comma: `{"context":…}`.
        let separator = if head == "{" {
            &CONTEXT_KEY[1..]
        } else {
            CONTEXT_KEY
        };
        Some((head, separator, context.get()))
    }

    /// The size of the wire form in bytes.
    pub fn len(&self) -> usize {
        match self.head_and_separator() {
            Some((head, sep, ctx)) => head.len() + sep.len() + ctx.len() + 1,
            None => self.body.len(),
        }
    }

    /// Whether the wire form is empty (only an event built from an empty string).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the wire form to `out`, without building it first.
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        match self.head_and_separator() {
            Some((head, sep, ctx)) => {
                out.reserve(head.len() + sep.len() + ctx.len() + 1);
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(sep.as_bytes());
                out.extend_from_slice(ctx.as_bytes());
                out.push(b'}');
            }
            None => out.extend_from_slice(self.body.as_bytes()),
        }
    }

    /// The wire form: borrowed when the body is the whole JSON, built otherwise.
    pub fn wire(&self) -> Cow<'_, str> {
        match self.head_and_separator() {
            Some((head, sep, ctx)) => {
                let mut s = String::with_capacity(head.len() + sep.len() + ctx.len() + 1);
                s.push_str(head);
                s.push_str(sep);
                s.push_str(ctx);
                s.push('}');
                Cow::Owned(s)
            }
            None => Cow::Borrowed(&self.body),
        }
    }

    /// The wire form, owned.
    pub fn into_wire(mut self) -> String {
        match self.wire() {
            Cow::Owned(s) => s,
            Cow::Borrowed(_) => std::mem::take(&mut self.body),
        }
    }
}

/// The body's buffer goes back to the shelf, for the next event serialised
/// ([`crate::buffers`]).
impl Drop for EventJson {
    fn drop(&mut self) {
        EVENT_BUFFERS.give(std::mem::take(&mut self.body).into_bytes());
    }
}

impl PartialEq for EventJson {
    fn eq(&self, other: &Self) -> bool {
        match (&self.context, &other.context) {
            (None, None) => self.body == other.body,
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) || a.get() == b.get() => {
                self.body == other.body
            }
            _ => self.len() == other.len() && self.wire() == other.wire(),
        }
    }
}

impl Eq for EventJson {}

impl std::fmt::Debug for EventJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.wire(), f)
    }
}

impl std::fmt::Display for EventJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.wire())
    }
}

impl From<String> for EventJson {
    fn from(json: String) -> Self {
        EventJson::full(json)
    }
}

/// A message's fields but the context, serialised exactly as [`Message`] serialises them:
/// the body of an [`EventJson`] with a shared context. The test
/// `wire_form_is_the_message_serialised` holds the two to the same bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithoutContext<'a> {
    #[serde(rename = "type")]
    kind: MessageType,
    message_id: &'a str,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    anonymous_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: &'a Option<Properties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traits: &'a Option<Properties>,
}

impl<'a> WithoutContext<'a> {
    fn of(msg: &'a Message) -> Self {
        // No `..`: a field added to `Message` must be added here too.
        let Message {
            kind,
            message_id,
            timestamp,
            anonymous_id,
            user_id,
            event,
            name,
            group_id,
            previous_id,
            properties,
            traits,
            context: _,
        } = msg;
        WithoutContext {
            kind: *kind,
            message_id,
            timestamp,
            anonymous_id,
            user_id,
            event,
            name,
            group_id,
            previous_id,
            properties,
            traits,
        }
    }
}

pub use crate::datetime::iso8601;

/// Checks nesting depth below `value`, reporting the first path that is too deep.
fn check_depth(
    value: &Value,
    depth: usize,
    max: usize,
    path: &mut String,
) -> Result<(), ValidationError> {
    let too_deep = |path: &String| ValidationError::TooDeep {
        path: path.clone(),
        max,
    };
    match value {
        Value::Object(map) => {
            if depth >= max {
                return Err(too_deep(path));
            }
            for (k, v) in map {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                check_depth(v, depth + 1, max, path)?;
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            if depth >= max {
                return Err(too_deep(path));
            }
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_depth(v, depth + 1, max, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether some container below `value` (at `depth`) is at `max` or deeper: the check of
/// [`check_depth`] without the path, which only an error needs.
fn too_deep(value: &Value, depth: usize, max: usize) -> bool {
    match value {
        Value::Object(map) => depth >= max || map.values().any(|v| too_deep(v, depth + 1, max)),
        Value::Array(items) => depth >= max || items.iter().any(|v| too_deep(v, depth + 1, max)),
        _ => false,
    }
}

fn check_properties(
    props: &Properties,
    field: &str,
    policy: &Policy,
) -> Result<(), ValidationError> {
    let max = policy.max_nesting_depth;
    if !props.values().any(|v| too_deep(v, 1, max)) {
        // No allocation on the way of every valid call: the path is built for an error.
        return Ok(());
    }
    let mut path = field.to_owned();
    for (k, v) in props {
        path.truncate(field.len());
        path.push('.');
        path.push_str(k);
        check_depth(v, 1, policy.max_nesting_depth, &mut path)?;
    }
    Ok(())
}

fn non_empty(s: String, what: &'static str) -> Result<String, ValidationError> {
    if s.trim().is_empty() {
        Err(ValidationError::Empty(what))
    } else {
        Ok(s)
    }
}

/// Validates a call and stamps it into a message.
///
/// `message_id` must be unique (the runtime passes a random UUID); `now_ms` is the wall
/// clock at the call. The identity and context are the caller's current ones.
pub fn stamp(
    call: Call,
    identity: &Identity,
    context: &Context,
    message_id: String,
    now_ms: i64,
    policy: &Policy,
) -> Result<Message, ValidationError> {
    if message_id.is_empty() || message_id.len() > MAX_MESSAGE_ID_LEN {
        return Err(ValidationError::BadMessageId);
    }
    let kind = match &call {
        Call::Page { .. } => MessageType::Page,
        _ => MessageType::Screen,
    };
    let mut msg = Message {
        kind: MessageType::Track,
        message_id,
        timestamp: iso8601(now_ms),
        anonymous_id: Some(identity.anonymous_id.clone()),
        user_id: identity.user_id.clone(),
        event: None,
        name: None,
        group_id: None,
        previous_id: None,
        properties: None,
        traits: None,
        context: context.clone(),
    };
    match call {
        Call::Track { event, properties } => {
            msg.event = Some(non_empty(event, "event name")?);
            check_properties(&properties, "properties", policy)?;
            msg.properties = Some(properties);
        }
        Call::Identify { user_id, traits } => {
            msg.kind = MessageType::Identify;
            if let Some(id) = user_id {
                msg.user_id = Some(non_empty(id, "user id")?);
            }
            check_properties(&traits, "traits", policy)?;
            msg.traits = Some(traits);
        }
        Call::Screen { name, properties } | Call::Page { name, properties } => {
            msg.kind = kind;
            check_properties(&properties, "properties", policy)?;
            msg.name = (!name.trim().is_empty()).then_some(name);
            msg.properties = Some(properties);
        }
        Call::Group { group_id, traits } => {
            msg.kind = MessageType::Group;
            msg.group_id = Some(non_empty(group_id, "group id")?);
            check_properties(&traits, "traits", policy)?;
            msg.traits = Some(traits);
        }
        Call::Alias { user_id } => {
            msg.kind = MessageType::Alias;
            msg.previous_id = Some(
                identity
                    .user_id
                    .clone()
                    .unwrap_or_else(|| identity.anonymous_id.clone()),
            );
            msg.user_id = Some(non_empty(user_id, "user id")?);
        }
    }
    Ok(msg)
}

thread_local! {
    /// The size of the last event [`to_json_sized`] serialised on this thread.
    static LAST_JSON: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Room [`to_json_sized`] leaves beyond the last event's size: events of one app differ by
/// a few bytes (a number's digits, a name).
const JSON_SLACK: usize = 64;

/// `value` as JSON, in a buffer sized from the last event serialised on this thread: one
/// allocation per event, where `serde_json::to_string` grew its buffer two or three times
/// (128, 256, 512 bytes: a `realloc` each, counted with a counting allocator) and the event
/// then kept the slack for as long as it waited in memory. On the caller's thread, every
/// allocation that misses the allocator's thread cache takes an arena lock that the
/// background thread, freeing the events it committed, contends for. (A buffer kept per
/// thread and copied out at the exact size did as well in a burst, but cost the paced
/// calls' p99 about 6 us: the report's (f), 12 alternating rounds.)
///
/// The buffer is one an event dropped earlier gave back ([`crate::buffers`]) when there is
/// one of about that size.
fn to_json_sized<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    to_json_from(value, &EVENT_BUFFERS)
}

fn to_json_from<T: Serialize>(value: &T, shelf: &Shelf) -> Result<String, serde_json::Error> {
    let hint = LAST_JSON.with(std::cell::Cell::get).clamp(128, 64 * 1024) + JSON_SLACK;
    let mut buf = shelf.take(hint);
    serde_json::to_writer(&mut buf, value)?;
    LAST_JSON.with(|last| last.set(buf.len()));
    Ok(String::from_utf8(buf).expect("serde_json writes UTF-8"))
}

/// Serialises a message (after the plugins have seen it) into the queued form, enforcing
/// the per-event size limit. `created_ms` is the time the message was stamped with.
pub fn seal(
    msg: Message,
    created_ms: i64,
    policy: &Policy,
) -> Result<QueuedEvent, ValidationError> {
    if msg.message_id.is_empty() || msg.message_id.len() > MAX_MESSAGE_ID_LEN {
        return Err(ValidationError::BadMessageId);
    }
    let unsupported = |e: serde_json::Error| ValidationError::Unsupported {
        path: "$".into(),
        detail: e.to_string(),
    };
    // A shared context stays shared: the event keeps its body and a reference to it.
    let json = match msg.context.text() {
        Some(context) => EventJson::with_context(
            to_json_sized(&WithoutContext::of(&msg)).map_err(unsupported)?,
            context,
        ),
        None => EventJson::full(to_json_sized(&msg).map_err(unsupported)?),
    };
    if json.len() > policy.max_event_bytes {
        return Err(ValidationError::TooLarge {
            bytes: json.len(),
            max: policy.max_event_bytes,
        });
    }
    let name = match msg.kind {
        MessageType::Track => msg.event,
        MessageType::Screen | MessageType::Page => msg.name,
        MessageType::Group => msg.group_id,
        MessageType::Identify | MessageType::Alias => msg.user_id,
    };
    Ok(QueuedEvent {
        seq: 0,
        message_id: msg.message_id,
        kind: msg.kind,
        name,
        created_ms,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        Context::new(
            json!({"library": {"name": "trailhound", "version": "0"}})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    fn props(v: Value) -> Properties {
        v.as_object().unwrap().clone()
    }

    fn id() -> Identity {
        Identity::new(uuid::Uuid::from_u128(7))
    }

    /// A track call becomes a Segment message with every required field.
    #[test]
    fn track_has_segment_fields() {
        let call = Call::Track {
            event: "Song Played".into(),
            properties: props(json!({"title": "Nachtmusik", "seconds": 215})),
        };
        let msg = stamp(
            call,
            &id(),
            &ctx(),
            "m-1".into(),
            1_700_000_000_123,
            &Policy::default(),
        )
        .unwrap();
        let ev = seal(msg, 1_700_000_000_123, &Policy::default()).unwrap();
        let v: Value = serde_json::from_str(&ev.json.wire()).unwrap();
        assert_eq!(v["type"], "track");
        assert_eq!(v["event"], "Song Played");
        assert_eq!(v["messageId"], "m-1");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["anonymousId"], id().anonymous_id);
        assert_eq!(v["properties"]["seconds"], 215);
        assert_eq!(v["context"]["library"]["name"], "trailhound");
        assert!(v.get("userId").is_none());
        assert_eq!(ev.name.as_deref(), Some("Song Played"));
    }

    /// Empty names and ids are refused, per call kind.
    #[test]
    fn empty_names_are_refused() {
        let p = Policy::default();
        for (call, what) in [
            (
                Call::Track {
                    event: " ".into(),
                    properties: Properties::new(),
                },
                "event name",
            ),
            (
                Call::Group {
                    group_id: "".into(),
                    traits: Properties::new(),
                },
                "group id",
            ),
            (Call::Alias { user_id: "".into() }, "user id"),
            (
                Call::Identify {
                    user_id: Some("".into()),
                    traits: Properties::new(),
                },
                "user id",
            ),
        ] {
            let err = stamp(call, &id(), &ctx(), "m".into(), 0, &p).unwrap_err();
            assert_eq!(err, ValidationError::Empty(what));
        }
    }

    /// Nesting beyond the limit is refused with the offending path.
    #[test]
    fn deep_nesting_is_refused() {
        let p = Policy {
            max_nesting_depth: 3,
            ..Policy::default()
        };
        let ok = props(json!({"a": {"b": [1]}}));
        stamp(
            Call::Track {
                event: "e".into(),
                properties: ok,
            },
            &id(),
            &ctx(),
            "m".into(),
            0,
            &p,
        )
        .unwrap();
        let deep = props(json!({"a": {"b": [{"c": 1}]}}));
        let err = stamp(
            Call::Track {
                event: "e".into(),
                properties: deep,
            },
            &id(),
            &ctx(),
            "m".into(),
            0,
            &p,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ValidationError::TooDeep {
                path: "properties.a.b[0]".into(),
                max: 3
            }
        );
    }

    /// `to_json_sized` writes what `serde_json::to_string` writes, and sizes its buffer
    /// from the last event: no growth for events of a similar size, little slack.
    #[test]
    fn json_is_serialised_in_a_buffer_sized_from_the_last() {
        for v in [
            json!({"a": [1, 2.5, "x\u{e9}"], "b": {"c": null}}),
            json!("x".repeat(300)),
            json!("y".repeat(310)),
            json!({}),
        ] {
            let s = to_json_from(&v, &Shelf::new()).unwrap();
            assert_eq!(s, serde_json::to_string(&v).unwrap());
            assert_eq!(LAST_JSON.with(std::cell::Cell::get), s.len());
        }
        // An empty shelf of its own: the shared one lends buffers other tests gave back.
        to_json_from(&json!("x".repeat(300)), &Shelf::new()).unwrap();
        let similar = to_json_from(&json!("y".repeat(330)), &Shelf::new()).unwrap();
        assert_eq!(
            similar.capacity(),
            302 + JSON_SLACK,
            "sized from the last, not grown"
        );
    }

    /// The depth check finds what the path-building check finds: a container at the limit,
    /// in an object or an array, anywhere among the properties.
    #[test]
    fn depth_check_agrees_with_the_paths() {
        let cases = [
            json!({"a": 1, "b": [1, 2]}),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": {}}}),
            json!({"a": [[1]]}),
            json!({"a": [[[]]]}),
            json!({"z": 1, "a": [{"b": [1]}]}),
        ];
        for max in 1..5 {
            let p = Policy {
                max_nesting_depth: max,
                ..Policy::default()
            };
            for v in &cases {
                let props = props(v.clone());
                let fast = props.values().any(|v| too_deep(v, 1, max));
                let mut path = "properties".to_owned();
                let slow = props.iter().any(|(k, v)| {
                    path.truncate("properties".len());
                    path.push('.');
                    path.push_str(k);
                    check_depth(v, 1, max, &mut path).is_err()
                });
                assert_eq!(fast, slow, "{v} at max {max}");
                assert_eq!(check_properties(&props, "properties", &p).is_err(), slow);
            }
        }
    }

    /// An event over the size limit is refused, one just under it is accepted.
    #[test]
    fn oversize_is_refused() {
        let p = Policy::default();
        let big = |n: usize| Call::Track {
            event: "e".into(),
            properties: props(json!({"s": "x".repeat(n)})),
        };
        let small = stamp(big(10), &id(), &ctx(), "m".into(), 0, &p).unwrap();
        let overhead = seal(small, 0, &p).unwrap().json.len() - 10;
        let fits = stamp(
            big(p.max_event_bytes - overhead),
            &id(),
            &ctx(),
            "m".into(),
            0,
            &p,
        )
        .unwrap();
        assert_eq!(seal(fits, 0, &p).unwrap().json.len(), p.max_event_bytes);
        let over = stamp(
            big(p.max_event_bytes - overhead + 1),
            &id(),
            &ctx(),
            "m".into(),
            0,
            &p,
        )
        .unwrap();
        assert!(matches!(
            seal(over, 0, &p),
            Err(ValidationError::TooLarge { .. })
        ));
    }

    /// Non-finite numbers are an error, not a silent null.
    #[test]
    fn non_finite_numbers_are_refused() {
        assert_eq!(number(1.5, "x").unwrap(), json!(1.5));
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                number(f, "properties.x"),
                Err(ValidationError::NotFinite { .. })
            ));
        }
    }

    /// Alias carries the previous id; page calls are pages, not screens.
    #[test]
    fn alias_and_page() {
        let p = Policy::default();
        let mut ident = id();
        let a = stamp(
            Call::Alias {
                user_id: "u2".into(),
            },
            &ident,
            &ctx(),
            "m".into(),
            0,
            &p,
        )
        .unwrap();
        assert_eq!(a.previous_id.as_deref(), Some(ident.anonymous_id.as_str()));
        ident.user_id = Some("u1".into());
        let a = stamp(
            Call::Alias {
                user_id: "u2".into(),
            },
            &ident,
            &ctx(),
            "m".into(),
            0,
            &p,
        )
        .unwrap();
        assert_eq!(
            (a.previous_id.as_deref(), a.user_id.as_deref()),
            (Some("u1"), Some("u2"))
        );
        let page = stamp(
            Call::Page {
                name: "Home".into(),
                properties: Properties::new(),
            },
            &ident,
            &ctx(),
            "m".into(),
            0,
            &p,
        )
        .unwrap();
        assert_eq!(page.kind, MessageType::Page);
    }

    /// The shared serialised context gives the same bytes as serialising the map, and a
    /// plugin's change to it is serialised with its event.
    #[test]
    fn shared_context_serialises_like_the_map() {
        let p = Policy::default();
        let call = || Call::Track {
            event: "e".into(),
            properties: Properties::new(),
        };
        let shared = seal(
            stamp(call(), &id(), &ctx(), "m".into(), 0, &p).unwrap(),
            0,
            &p,
        )
        .unwrap();
        let mut msg = stamp(call(), &id(), &ctx(), "m".into(), 0, &p).unwrap();
        msg.context = Context {
            map: Arc::clone(&msg.context.map),
            json: None,
            annex: None,
        };
        assert_eq!(seal(msg, 0, &p).unwrap().json, shared.json);
        let mut msg = stamp(call(), &id(), &ctx(), "m".into(), 0, &p).unwrap();
        msg.context
            .make_mut()
            .insert("experiment".into(), json!("B"));
        let changed: Value = serde_json::from_str(&seal(msg, 0, &p).unwrap().json.wire()).unwrap();
        assert_eq!(changed["context"]["experiment"], "B");
        assert_eq!(
            ctx().get("experiment"),
            None,
            "the shared context is unchanged"
        );
    }

    /// An annexed entry is sent exactly as if a plugin had inserted it, without copying
    /// the shared context; a later change through `make_mut` keeps it; an empty context
    /// and a key the context already has are handled.
    #[test]
    fn annex_serialises_like_an_inserted_entry() {
        let p = Policy::default();
        let call = || Call::Track {
            event: "e".into(),
            properties: Properties::new(),
        };
        let wire = |msg: Message| -> Value {
            serde_json::from_str(&seal(msg, 0, &p).unwrap().json.wire()).unwrap()
        };
        for context in [ctx(), Context::new(Properties::new())] {
            let mut annexed = stamp(call(), &id(), &context, "m".into(), 0, &p).unwrap();
            annexed.context.annex("plan", &json!({"id": "x"})).unwrap();
            let mut inserted = stamp(call(), &id(), &context, "m".into(), 0, &p).unwrap();
            inserted
                .context
                .make_mut()
                .insert("plan".into(), json!({"id": "x"}));
            assert_eq!(
                serde_json::to_value(&annexed).unwrap(),
                serde_json::to_value(&inserted).unwrap()
            );
            let sealed = seal(annexed.clone(), 0, &p).unwrap();
            assert!(
                sealed.json.context().is_some(),
                "still a shared-context event"
            );
            assert_eq!(wire(annexed.clone()), wire(inserted));
            annexed.context.make_mut().insert("b".into(), json!(1));
            let both = wire(annexed);
            assert_eq!(both["context"]["plan"]["id"], "x");
            assert_eq!(both["context"]["b"], 1);
        }
        let mut msg = stamp(call(), &id(), &ctx(), "m".into(), 0, &p).unwrap();
        msg.context.annex("library", &json!("replaced")).unwrap();
        assert_eq!(wire(msg)["context"]["library"], "replaced");
    }

    /// Events given one annex over one shared context share one serialised context; over
    /// another context (a new session), the annex is spliced into that one.
    #[test]
    fn one_annex_one_context_text() {
        let p = Policy::default();
        let annex = ContextAnnex::new("plan", &json!({"id": "x"})).unwrap();
        let sealed = |context: &Context| {
            let call = Call::Track {
                event: "e".into(),
                properties: Properties::new(),
            };
            let mut msg = stamp(call, &id(), context, "m".into(), 0, &p).unwrap();
            msg.context.set_annex(annex.clone()).unwrap();
            seal(msg, 0, &p).unwrap()
        };
        let (one, two) = (ctx(), Context::new(Properties::new()));
        let (a, b, c) = (sealed(&one), sealed(&one), sealed(&two));
        assert!(Arc::ptr_eq(
            a.json.context().unwrap(),
            b.json.context().unwrap()
        ));
        assert_eq!(
            a.json.context().unwrap().get(),
            r#"{"library":{"name":"trailhound","version":"0"},"plan":{"id":"x"}}"#
        );
        assert_eq!(c.json.context().unwrap().get(), r#"{"plan":{"id":"x"}}"#);
    }

    /// An exported line imports back into the same queued event.
    #[test]
    fn json_round_trip() {
        let p = Policy::default();
        let msg = stamp(
            Call::Screen {
                name: "Player".into(),
                properties: Properties::new(),
            },
            &id(),
            &ctx(),
            "m9".into(),
            1_000,
            &p,
        )
        .unwrap();
        let ev = seal(msg, 1_000, &p).unwrap();
        let back = QueuedEvent::from_json(&ev.json.wire(), &p).unwrap();
        assert!(
            back.json.context().is_none(),
            "an imported event carries its context"
        );
        assert_eq!(back, ev);
    }

    /// Every kind of call, with and without the optional fields.
    fn every_kind_of_call() -> Vec<(Call, Option<&'static str>)> {
        let p =
            || props(json!({"title": "Nachtmusik", "n": [1, 2.5, null, {"a": "\"é\u{1F600}"}]}));
        vec![
            (
                Call::Track {
                    event: "Song Played".into(),
                    properties: p(),
                },
                None,
            ),
            (
                Call::Track {
                    event: "e".into(),
                    properties: Properties::new(),
                },
                Some("u1"),
            ),
            (
                Call::Identify {
                    user_id: Some("u1".into()),
                    traits: p(),
                },
                None,
            ),
            (
                Call::Identify {
                    user_id: None,
                    traits: Properties::new(),
                },
                Some("u0"),
            ),
            (
                Call::Screen {
                    name: "Player".into(),
                    properties: p(),
                },
                None,
            ),
            (
                Call::Screen {
                    name: " ".into(),
                    properties: Properties::new(),
                },
                None,
            ),
            (
                Call::Page {
                    name: "Home".into(),
                    properties: p(),
                },
                Some("u1"),
            ),
            (
                Call::Group {
                    group_id: "g1".into(),
                    traits: p(),
                },
                None,
            ),
            (
                Call::Alias {
                    user_id: "u2".into(),
                },
                None,
            ),
            (
                Call::Alias {
                    user_id: "u2".into(),
                },
                Some("u1"),
            ),
        ]
    }

    /// The wire form of a sealed event is byte for byte `serde_json::to_string` of its
    /// message, for every kind of call, whether the context is shared (kept once, beside
    /// the body), changed by a plugin, emptied, or absent from an imported line; and its
    /// size is the wire size.
    #[test]
    fn wire_form_is_the_message_serialised() {
        let p = Policy::default();
        let phone = Context::new(crate::context::build(
            &crate::testing::phone_context(),
            "device-1",
            crate::Network::Cellular,
            Some(1_700_000_000_000),
        ));
        let contexts = [ctx(), phone, Context::new(Properties::new())];
        let mut checked = 0;
        for (i, (call, user)) in every_kind_of_call().into_iter().enumerate() {
            for (c, context) in contexts.iter().enumerate() {
                for plugin in 0..3 {
                    let mut ident = id();
                    ident.user_id = user.map(str::to_owned);
                    let mut msg = stamp(
                        call.clone(),
                        &ident,
                        context,
                        format!("m{i}-{c}-{plugin}"),
                        1_700_000_000_000 + i as i64,
                        &p,
                    )
                    .unwrap();
                    match plugin {
                        // A plugin that changes the context: its own copy.
                        1 => {
                            msg.context
                                .make_mut()
                                .insert("experiment".into(), json!("B"));
                        }
                        // A plugin that changes the message but not the context.
                        2 => msg.user_id = Some("from-plugin".into()),
                        _ => {}
                    }
                    let expected = serde_json::to_string(&msg).unwrap();
                    let shared = plugin != 1;
                    let ev = seal(msg, 1_700_000_000_000 + i as i64, &p).unwrap();
                    assert_eq!(ev.json.context().is_some(), shared, "{expected}");
                    assert_eq!(ev.json.wire(), expected);
                    assert_eq!(ev.json.to_string(), expected);
                    let mut out = b"[".to_vec();
                    ev.json.write_wire(&mut out);
                    assert_eq!(out[1..], *expected.as_bytes());
                    assert_eq!(ev.bytes(), expected.len() as u64);
                    assert_eq!(ev.json.clone().into_wire(), expected);
                    if shared {
                        let body: Value = serde_json::from_str(ev.json.body()).unwrap();
                        assert!(body.get("context").is_none(), "{body}");
                    }
                    let imported = QueuedEvent::from_json(&expected, &p).unwrap();
                    assert_eq!(imported.json.body(), expected);
                    assert_eq!(imported, ev, "equal as they are sent");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 90);
    }

    /// The size limit counts the wire form, context included, when the context is shared.
    #[test]
    fn size_limit_counts_the_shared_context() {
        let big = Context::new(props(json!({"pad": "x".repeat(1000)})));
        let msg = |c: &Context| {
            stamp(
                Call::Track {
                    event: "e".into(),
                    properties: Properties::new(),
                },
                &id(),
                c,
                "m".into(),
                0,
                &Policy::default(),
            )
            .unwrap()
        };
        let wire = seal(msg(&big), 0, &Policy::default()).unwrap().bytes() as usize;
        assert!(wire > 1000);
        let p = Policy {
            max_event_bytes: wire,
            ..Policy::default()
        };
        assert!(seal(msg(&big), 0, &p).is_ok());
        let p = Policy {
            max_event_bytes: wire - 1,
            ..Policy::default()
        };
        assert_eq!(
            seal(msg(&big), 0, &p).unwrap_err(),
            ValidationError::TooLarge {
                bytes: wire,
                max: wire - 1
            }
        );
    }

    /// A body and context from a store put together give the message as it was sent; an
    /// empty object takes the context without a comma, and a body that is no object
    /// (a damaged row) is kept as it is rather than made into invalid JSON.
    #[test]
    fn bodies_from_a_store_splice_safely() {
        let c: SharedContext = Arc::from(RawValue::from_string(r#"{"a":1}"#.into()).unwrap());
        let j = EventJson::with_context(r#"{"type":"track"}"#.into(), Arc::clone(&c));
        assert_eq!(j.wire(), r#"{"type":"track","context":{"a":1}}"#);
        assert_eq!(j.len(), j.wire().len());
        let j = EventJson::with_context("{}".into(), Arc::clone(&c));
        assert_eq!(j.wire(), r#"{"context":{"a":1}}"#);
        assert_eq!(j.len(), j.wire().len());
        for damaged in ["", "}", "not json", "[1]"] {
            let j = EventJson::with_context(damaged.into(), Arc::clone(&c));
            assert_eq!((j.wire().as_ref(), j.len()), (damaged, damaged.len()));
            assert!(j.context().is_none());
        }
        assert!(EventJson::full(String::new()).is_empty());
    }
}
