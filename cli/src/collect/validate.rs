//! What a real collector checks in every event, and the clock-skew correction. Pure: the
//! receive time comes in as an argument.
//!
//! [`decode_request`] takes a whole tracking request body (gzip or not) to checked
//! events without a server, for tests and fuzzing; [`check`] checks one event.

use std::io::Read as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// The limits, in one place, each with why it has that value.
pub mod limits {
    /// Segment's HTTP Tracking API refuses requests over 500 KB (uncompressed); the SDK's
    /// `Policy::max_batch_bytes` has the same value, so an SDK batch always fits.
    pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
    /// Segment's per-event limit, and the SDK's `Policy::max_event_bytes`.
    pub const MAX_EVENT_BYTES: usize = 32 * 1024;
    /// Segment deduplicates on `messageId` and documents at most 100 characters.
    pub const MAX_MESSAGE_ID_CHARS: usize = 100;
    /// A compressed body is read up to this size before it is refused: gzip shrinks JSON
    /// at most ~1000x, but an SDK never sends more than the uncompressed limit anyway.
    pub const MAX_RAW_BYTES: usize = MAX_REQUEST_BYTES;
    /// An oversized body is still read (and dropped) up to this size, so that the client
    /// gets the 413 instead of a reset connection.
    pub const MAX_DRAIN_BYTES: u64 = 64 * 1024 * 1024;
}

/// The event types of the Segment spec.
pub const TYPES: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];

/// Why a tracking request is refused as a whole: the HTTP status and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 401 or 413.
    pub status: u16,
    /// What is wrong, for the client and the log.
    pub message: String,
}

impl Refusal {
    /// A refusal with this status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    fn too_large() -> Refusal {
        Refusal::new(
            413,
            format!(
                "the request is over {} KB (Segment's limit per request)",
                limits::MAX_REQUEST_BYTES / 1024
            ),
        )
    }
}

/// A decoded tracking request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Each event with its check, in the order sent. The body's `writeKey` is not kept.
    pub events: Vec<(Checked, Value)>,
    /// The body's non-empty `writeKey` (how sendBeacon, which cannot set headers, sends it).
    pub write_key: Option<String>,
}

/// Decodes a whole tracking request body and checks every event, without a server.
///
/// `content_encoding` is the header as sent (`gzip`, none or `identity`; anything else
/// is refused), `path_type` the type implied by a single-event endpoint (`Some("track")`
/// for `/v1/track`, `None` for `/v1/batch`). Refuses with 413 a body over
/// [`limits::MAX_RAW_BYTES`] or one that inflates past [`limits::MAX_REQUEST_BYTES`], and
/// with 400 bad gzip, bad JSON, a body that is not an object and a batch that is not an
/// array. The write key is not checked here: the caller knows which keys are accepted.
pub fn decode_request(
    raw: &[u8],
    content_encoding: Option<&str>,
    path_type: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<Decoded, Refusal> {
    if raw.len() > limits::MAX_RAW_BYTES {
        return Err(Refusal::too_large());
    }
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        // Segment's clients send gzip or nothing; anything else would only fail later
        // as "not valid JSON", which hides the real cause.
        Some(other) => {
            return Err(Refusal::new(
                400,
                format!(
                    "unsupported Content-Encoding \"{}\": send gzip or plain JSON",
                    truncate(other)
                ),
            ))
        }
    };
    let inflated;
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .take(limits::MAX_REQUEST_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| Refusal::new(400, format!("the body is not valid gzip: {e}")))?;
        inflated = out;
        &inflated[..]
    } else {
        raw
    };
    if body.len() > limits::MAX_REQUEST_BYTES {
        return Err(Refusal::too_large());
    }
    let mut parsed: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(400, format!("the body is not valid JSON: {e}")))?;
    let Some(obj) = parsed.as_object_mut() else {
        return Err(Refusal::new(400, "the body must be a JSON object"));
    };
    // Auth, not part of the event: not kept.
    let write_key = obj
        .remove("writeKey")
        .and_then(|k| k.as_str().map(str::to_owned))
        .filter(|k| !k.is_empty());
    let events = match path_type {
        Some(t) => {
            let checked = check(&parsed, Some(t), None, received_at);
            vec![(checked, parsed)]
        }
        None => {
            let sent_at = obj.get("sentAt").cloned();
            let batch = match obj.remove("batch") {
                Some(Value::Array(b)) => b,
                Some(_) => return Err(Refusal::new(400, "`batch` must be an array of events")),
                None => return Err(Refusal::new(400, "the body has no `batch` array")),
            };
            batch
                .into_iter()
                .map(|ev| (check(&ev, None, sent_at.as_ref(), received_at), ev))
                .collect()
        }
    };
    Ok(Decoded { events, write_key })
}

/// The outcome of checking one event, with the fields the collector indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// `messageId` if it is a string (kept even if too long, to show it).
    pub message_id: Option<String>,
    /// The event type: the `type` field, else the one implied by the endpoint.
    pub kind: Option<String>,
    /// `event` for track, `name` for page and screen.
    pub name: Option<String>,
    /// `userId` if it is a string.
    pub user_id: Option<String>,
    /// `anonymousId` if it is a string.
    pub anonymous_id: Option<String>,
    /// Every problem found, in the order checked; empty if the event is valid.
    pub errors: Vec<String>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The corrected time of the event (see [`check`]).
    pub timestamp: DateTime<Utc>,
    /// `originalTimestamp` as sent, if valid.
    pub original_timestamp: Option<DateTime<Utc>>,
    /// `sentAt` of the event or of its batch, if valid.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Checks one event received at `received_at`. `path_type` is the type implied by a
/// single-event endpoint (`/v1/track`), `batch_sent_at` the batch's `sentAt`.
///
/// The corrected timestamp is `receivedAt - (sentAt - originalTimestamp)` when both are
/// present and valid: the device clock may be wrong, but the time between recording and
/// sending, measured on that one clock, is right. Else the event's `timestamp`, else
/// `receivedAt`.
pub fn check(
    event: &Value,
    path_type: Option<&str>,
    batch_sent_at: Option<&Value>,
    received_at: DateTime<Utc>,
) -> Checked {
    let mut errors = Vec::new();
    let str_field = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(obj) = event.as_object() else {
        return Checked {
            message_id: None,
            kind: path_type.map(str::to_owned),
            name: None,
            user_id: None,
            anonymous_id: None,
            errors: vec!["the event is not a JSON object".into()],
            received_at,
            timestamp: received_at,
            original_timestamp: None,
            sent_at: None,
        };
    };

    let kind = match (obj.get("type"), path_type) {
        (None, Some(p)) => Some(p.to_owned()),
        (None, None) => {
            errors.push("`type` is missing".into());
            None
        }
        (Some(Value::String(t)), p) => {
            if !TYPES.contains(&t.as_str()) {
                errors.push(format!(
                    "unknown `type` \"{}\" (expected one of {})",
                    truncate(t),
                    TYPES.join(", ")
                ));
            } else if let Some(p) = p.filter(|p| p != t) {
                errors.push(format!("`type` \"{t}\" sent to the /v1/{p} endpoint"));
            }
            Some(t.clone())
        }
        (Some(other), _) => {
            errors.push(format!("`type` must be a string, got {}", json_kind(other)));
            None
        }
    };

    let name = match kind.as_deref() {
        Some("track") => {
            if !non_empty_string(obj.get("event")) {
                errors.push("track: `event` (the event name) is missing or empty".into());
            }
            str_field("event")
        }
        Some("page" | "screen") => {
            if let Some(n) = obj.get("name").filter(|n| !n.is_null() && !n.is_string()) {
                errors.push(format!("`name` must be a string, got {}", json_kind(n)));
            }
            str_field("name")
        }
        Some("group") => {
            let ok = match obj.get("groupId") {
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Number(_)) => true,
                _ => false,
            };
            if !ok {
                errors.push("group: `groupId` is missing or empty".into());
            }
            None
        }
        Some("alias") => {
            for field in ["userId", "previousId"] {
                if !non_empty_string(obj.get(field)) {
                    errors.push(format!("alias: `{field}` is missing or empty"));
                }
            }
            None
        }
        _ => None,
    };

    let user_id = str_field("userId");
    let anonymous_id = str_field("anonymousId");
    if !non_empty_string(obj.get("userId")) && !non_empty_string(obj.get("anonymousId")) {
        errors.push("neither `userId` nor `anonymousId` is a non-empty string".into());
    }

    let message_id = str_field("messageId");
    match obj.get("messageId") {
        None | Some(Value::Null) => errors.push("`messageId` is missing".into()),
        Some(Value::String(m)) if m.is_empty() => errors.push("`messageId` is empty".into()),
        Some(Value::String(m)) => {
            let n = m.chars().count();
            if n > limits::MAX_MESSAGE_ID_CHARS {
                errors.push(format!(
                    "`messageId` has {n} characters, more than {}",
                    limits::MAX_MESSAGE_ID_CHARS
                ));
            }
        }
        Some(other) => errors.push(format!(
            "`messageId` must be a string, got {}",
            json_kind(other)
        )),
    }

    let mut time = |field: &str, value: Option<&Value>| -> Option<DateTime<Utc>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let parsed = parse_iso8601(s);
                if parsed.is_none() {
                    errors.push(format!(
                        "`{field}` \"{}\" is not an ISO-8601 date-time",
                        truncate(s)
                    ));
                }
                parsed
            }
            Some(other) => {
                errors.push(format!(
                    "`{field}` must be an ISO-8601 string, got {}",
                    json_kind(other)
                ));
                None
            }
        }
    };
    let given = time("timestamp", obj.get("timestamp"));
    let original_timestamp = time("originalTimestamp", obj.get("originalTimestamp"));
    let sent_at = match obj.get("sentAt") {
        Some(v) if !v.is_null() => time("sentAt", Some(v)),
        _ => time("sentAt", batch_sent_at),
    };

    let size = serde_json::to_vec(event).map(|v| v.len()).unwrap_or(0);
    if size > limits::MAX_EVENT_BYTES {
        errors.push(format!(
            "the event is {size} bytes, more than the {} KB limit",
            limits::MAX_EVENT_BYTES / 1024
        ));
    }

    // Clock-skew correction; a skew too large to represent (the client's dates are the
    // client's to choose) keeps the given timestamp instead of overflowing.
    let corrected = match (sent_at, original_timestamp) {
        (Some(sent), Some(original)) => {
            received_at.checked_sub_signed(sent.signed_duration_since(original))
        }
        _ => None,
    };
    let timestamp = corrected.unwrap_or_else(|| given.unwrap_or(received_at));

    Checked {
        message_id,
        kind,
        name,
        user_id,
        anonymous_id,
        errors,
        received_at,
        timestamp,
        original_timestamp,
        sent_at,
    }
}

/// Parses the ISO-8601 forms that clients send: RFC 3339 (`2026-11-26T12:03:04.123Z`,
/// `+01:00`), a basic offset (`+0100`), no offset (taken as UTC, as Segment does), or a
/// bare date.
pub fn parse_iso8601(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

fn non_empty_string(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::String(s)) if !s.is_empty())
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Keeps error texts short when the offending value is huge.
fn truncate(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        parse_iso8601(s).unwrap()
    }

    fn good() -> Value {
        json!({"type": "track", "event": "Song Played", "anonymousId": "a1",
               "messageId": "m1", "originalTimestamp": "2026-11-26T12:00:00.000Z"})
    }

    /// A well-formed track event has no errors and its name indexed.
    #[test]
    fn good_track() {
        let c = check(&good(), None, None, at("2026-11-26T12:00:05Z"));
        assert_eq!(c.errors, Vec::<String>::new());
        assert_eq!(c.name.as_deref(), Some("Song Played"));
    }

    /// A skew too large to represent (dates 500 000 years apart, found by the collector
    /// fuzz target) keeps the given timestamp instead of panicking.
    #[test]
    fn absurd_skew_does_not_overflow() {
        let mut e = good();
        e["originalTimestamp"] = json!("-262143-01-01T00:00:00+0000");
        assert!(parse_iso8601("-262143-01-01T00:00:00+0000").is_some());
        let sent = json!("+262142-12-31T23:59:59+0000");
        let c = check(&e, None, Some(&sent), at("2026-11-26T12:00:05Z"));
        assert_eq!(c.errors, Vec::<String>::new());
    }

    /// The skew correction moves a device clock that is an hour fast back to ours.
    #[test]
    fn skew_corrected() {
        let mut e = good();
        e["originalTimestamp"] = json!("2026-11-26T13:00:00.000Z");
        let sent = json!("2026-11-26T13:00:10.000Z");
        let c = check(&e, None, Some(&sent), at("2026-11-26T12:00:12Z"));
        assert_eq!(c.timestamp, at("2026-11-26T12:00:02Z"));
        assert_eq!(c.original_timestamp, Some(at("2026-11-26T13:00:00Z")));
    }

    /// Each kind of bad event is reported with a reason naming the field.
    #[test]
    fn reasons() {
        let now = at("2026-11-26T12:00:00Z");
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"type": "track", "event": "x", "messageId": "m"}),
                "anonymousId",
            ),
            (
                json!({"type": "track", "event": "x", "userId": "u"}),
                "messageId",
            ),
            (
                json!({"type": "boom", "userId": "u", "messageId": "m"}),
                "unknown `type`",
            ),
            (
                json!({"type": "track", "userId": "u", "messageId": "m"}),
                "`event`",
            ),
            (
                json!({"type": "group", "userId": "u", "messageId": "m"}),
                "groupId",
            ),
            (
                json!({"type": "alias", "userId": "u", "messageId": "m"}),
                "previousId",
            ),
            (
                json!({"type": "identify", "userId": "u", "messageId": "m", "timestamp": "yesterday"}),
                "ISO-8601",
            ),
            (
                json!({"type": "identify", "userId": "u", "messageId": "m".repeat(101)}),
                "101 characters",
            ),
            (json!([1, 2]), "not a JSON object"),
        ];
        for (event, reason) in cases {
            let c = check(&event, None, None, now);
            assert!(
                c.errors.iter().any(|e| e.contains(reason)),
                "{event}: {:?} lacks {reason}",
                c.errors
            );
        }
    }

    /// A whole body decodes the same plain and gzipped; each refusal has its status.
    #[test]
    fn decode_request_table() {
        use std::io::Write as _;
        let now = at("2026-11-26T12:00:00Z");
        let body = json!({"batch": [good(), {"type": "nope"}], "writeKey": "k",
                          "sentAt": "2026-11-26T12:00:01Z"})
        .to_string();
        let plain = decode_request(body.as_bytes(), None, None, now).unwrap();
        assert_eq!(plain.write_key.as_deref(), Some("k"));
        assert_eq!(plain.events.len(), 2);
        assert!(plain.events[0].0.errors.is_empty());
        assert!(!plain.events[1].0.errors.is_empty());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode_request(&gz, Some("GZIP "), None, now), Ok(plain));
        let single =
            decode_request(good().to_string().as_bytes(), None, Some("screen"), now).unwrap();
        assert!(single.events[0].0.errors[0].contains("/v1/screen"));

        let bomb = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&vec![b' '; limits::MAX_REQUEST_BYTES + 10])
                .unwrap();
            e.finish().unwrap()
        };
        let big = vec![b' '; limits::MAX_RAW_BYTES + 1];
        for (raw, enc, status) in [
            (&b"{"[..], None, 400),
            (b"[]", None, 400),
            (b"{\"batch\": 1}", None, 400),
            (b"{}", None, 400),
            (b"{}", Some("br"), 400),
            (b"not gzip", Some("gzip"), 400),
            (&bomb[..], Some("gzip"), 413),
            (&big[..], None, 413),
        ] {
            let r = decode_request(raw, enc, None, now);
            assert_eq!(r.map_err(|e| e.status), Err(status), "{:?}", enc);
        }
    }

    /// The ISO-8601 forms clients send parse; other strings do not.
    #[test]
    fn iso_forms() {
        for s in [
            "2026-11-26T12:03:04Z",
            "2026-11-26T12:03:04.123+01:00",
            "2026-11-26T12:03:04.123+0100",
            "2026-11-26T12:03:04",
            "2026-11-26",
        ] {
            assert!(parse_iso8601(s).is_some(), "{s}");
        }
        for s in ["", "now", "26/11/2026", "2026-13-01T00:00:00Z"] {
            assert!(parse_iso8601(s).is_none(), "{s}");
        }
    }
}
