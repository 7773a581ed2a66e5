//! The Segment HTTP Tracking API on the wire: batch bodies, compression, authorisation.
//!
//! Compression is the `gzip` feature's (on by default): the browser package builds without
//! it and compresses with the browser's own `CompressionStream`.

#[cfg(feature = "gzip")]
use std::io::Write;

use base64::Engine as _;

use crate::message::{iso8601, QueuedEvent};

/// Path of the batch endpoint, appended to the configured endpoint.
pub const BATCH_PATH: &str = "/v1/batch";

/// Builds the uncompressed body `{"batch":[…],"sentAt":"…"}` from stored events, without
/// re-parsing them: each event's wire form (its body and shared context, see
/// [`EventJson`](crate::message::EventJson)) is written straight into the body.
pub fn batch_json(events: &[QueuedEvent], sent_at_ms: i64) -> Vec<u8> {
    let mut out = batch_head(events);
    out.extend_from_slice(batch_tail(sent_at_ms).as_bytes());
    out
}

/// The body up to its last event, `{"batch":[…`: what does not depend on when it is sent
/// (the engine compresses it while another batch is on the wire).
pub fn batch_head(events: &[QueuedEvent]) -> Vec<u8> {
    let len: usize = events.iter().map(|e| e.json.len() + 1).sum();
    let mut out = Vec::with_capacity(len + 64);
    out.extend_from_slice(b"{\"batch\":[");
    for (i, ev) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        ev.json.write_wire(&mut out);
    }
    out
}

/// The rest of the body after [`batch_head`]: `],"sentAt":"…"}`.
pub fn batch_tail(sent_at_ms: i64) -> String {
    format!("],\"sentAt\":\"{}\"}}", iso8601(sent_at_ms))
}

/// The compressor of batch bodies, for about `raw_len` bytes: gzip at level 1 (a batch of
/// typical events shrinks about 16x, at a fraction of the cost of the default level).
#[cfg(feature = "gzip")]
pub fn gzip_encoder(raw_len: usize) -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(
        Vec::with_capacity(raw_len / 4 + 64),
        flate2::Compression::fast(),
    )
}

/// Gzip-compresses a body.
#[cfg(feature = "gzip")]
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = gzip_encoder(data.len());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// The gzip-compressed batch body for `events`, stamped with `sentAt`.
#[cfg(feature = "gzip")]
pub fn build_batch_body(events: &[QueuedEvent], sent_at_ms: i64) -> Vec<u8> {
    gzip(&batch_json(events, sent_at_ms))
}

/// Whether [`BatchBody`] bodies are gzip-compressed (the `gzip` feature).
pub const GZIP: bool = cfg!(feature = "gzip");

/// A batch body written up to its `sentAt`, to be finished when it is sent: with the `gzip`
/// feature `{"batch":[…` went through the compressor and a sync flush, so that sending
/// only adds the tail `],"sentAt":"…"}` and the gzip trailer (microseconds), not the whole
/// compression; without it, the plain JSON so far.
#[derive(Debug)]
pub struct BatchBody {
    #[cfg(feature = "gzip")]
    out: flate2::write::GzEncoder<Vec<u8>>,
    #[cfg(not(feature = "gzip"))]
    out: Vec<u8>,
    /// Uncompressed bytes written so far.
    raw_bytes: usize,
}

impl BatchBody {
    /// Writes (and with `gzip`, compresses and flushes) `{"batch":[…` of `events`.
    pub fn start(events: &[QueuedEvent]) -> BatchBody {
        let head = batch_head(events);
        let raw_bytes = head.len();
        #[cfg(feature = "gzip")]
        let out = {
            let mut gz = gzip_encoder(head.len());
            gz.write_all(&head).expect("writing to a Vec cannot fail");
            gz.flush().expect("writing to a Vec cannot fail");
            gz
        };
        #[cfg(not(feature = "gzip"))]
        let out = head;
        BatchBody { out, raw_bytes }
    }

    /// The body stamped with `sentAt` (gzip-compressed if [`GZIP`]), and its uncompressed
    /// size.
    pub fn finish(mut self, sent_at_ms: i64) -> (Vec<u8>, usize) {
        let tail = batch_tail(sent_at_ms);
        #[cfg(feature = "gzip")]
        let body = {
            self.out
                .write_all(tail.as_bytes())
                .expect("writing to a Vec cannot fail");
            self.out.finish().expect("writing to a Vec cannot fail")
        };
        #[cfg(not(feature = "gzip"))]
        let body = {
            self.out.extend_from_slice(tail.as_bytes());
            self.out
        };
        (body, self.raw_bytes + tail.len())
    }
}

/// The `Authorization` header value: Basic auth with the write key as the user name and
/// an empty password, as Segment expects.
pub fn basic_auth(write_key: &str) -> String {
    let creds = format!("{write_key}:");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::event;
    #[cfg(feature = "gzip")]
    use std::io::Read;

    /// The body is valid JSON holding every event verbatim, and gunzips to the same bytes.
    #[cfg(feature = "gzip")]
    #[test]
    fn body_round_trips() {
        let evs = vec![event(1, 0, 60), event(2, 0, 70)];
        let body = build_batch_body(&evs, 1_700_000_000_000);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, batch_json(&evs, 1_700_000_000_000));
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v["batch"].as_array().unwrap().len(), 2);
        assert_eq!(v["batch"][1]["messageId"], "m2");
        assert_eq!(v["sentAt"], "2023-11-14T22:13:20.000Z");
    }

    /// A batch of events with a shared context, one whose context a plugin changed and
    /// one imported whole holds each message exactly as serde_json serialises it.
    #[test]
    fn batch_holds_each_message_as_serialised() {
        use crate::message::{seal, stamp, Call, Context, Identity, Properties};
        let p = crate::Policy::default();
        let ctx = Context::new(crate::context::build(
            &crate::testing::phone_context(),
            "d",
            crate::Network::Wifi,
            Some(1),
        ));
        let ident = Identity::new(uuid::Uuid::from_u128(1));
        let mut expected = Vec::new();
        let mut events = Vec::new();
        for i in 0..4 {
            let call = Call::Track {
                event: format!("E{i}"),
                properties: Properties::new(),
            };
            let mut msg = stamp(call, &ident, &ctx, format!("m{i}"), i, &p).unwrap();
            if i == 1 {
                msg.context.make_mut().insert("x".into(), 1.into());
            }
            let json = serde_json::to_string(&msg).unwrap();
            events.push(if i == 3 {
                crate::QueuedEvent::from_json(&json, &p).unwrap()
            } else {
                seal(msg, i, &p).unwrap()
            });
            expected.push(json);
        }
        assert!(events[0].json.context().is_some() && events[1].json.context().is_none());
        let body = batch_json(&events, 1_700_000_000_000);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!(
                "{{\"batch\":[{}],\"sentAt\":\"2023-11-14T22:13:20.000Z\"}}",
                expected.join(",")
            )
        );
    }

    /// Basic auth carries the key as user with an empty password.
    #[test]
    fn auth_header() {
        assert_eq!(basic_auth("abc"), "Basic YWJjOg==");
    }
}
