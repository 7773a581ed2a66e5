//! Traits the app implements in Kotlin, Swift or Python, and their adapters to the
//! core's traits. The adapters are where a host exception stops: it becomes a failed
//! upload, a refused event, or an ignored notification, and never unwinds into the core's
//! threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use trailhound::{Message, UploadResult};

use crate::error::TrailhoundError;
use crate::int::in_status;
use crate::types::{apply_event, Event, Notification};

/// One upload request. The body is gzip-compressed JSON; send it as is.
///
/// Its `Debug` and `Display` (and so the generated `toString()`, `repr()`, `description`)
/// show the URL and the body's size, never the headers: `Authorization` carries the key.
#[derive(Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct HttpRequest {
    /// Full URL (`{endpoint}/v1/batch`), always a POST.
    pub url: String,
    /// Headers to send, `Authorization` and `Content-Encoding` included. Never log them:
    /// `Authorization` carries the write key.
    pub headers: HashMap<String, String>,
    /// The gzip-compressed body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct HttpResponse {
    /// The HTTP status (0 to 65535; anything else is taken for a network error).
    pub status: i32,
    /// The `Retry-After` header, verbatim.
    #[uniffi(default = None)]
    pub retry_after: Option<String>,
}

/// Sends upload requests through the platform's HTTP stack (OkHttp, URLSession), with its
/// proxies and certificate pinning. Called on the SDK's upload thread, one request at a
/// time; it may block until the request is done. Throw (any exception) for a network
/// error: the request is retried with backoff.
#[uniffi::export(with_foreign)]
pub trait HttpTransport: Send + Sync {
    /// Sends the request and returns the status, or throws for a network error.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TrailhoundError>;
}

/// Sees every event before it is queued, on the thread that called `track()`. Returns the
/// event (changed or not) or null to drop it. If it throws, the call that produced the
/// event fails with `TrailhoundError::Plugin` and the event is not queued.
#[uniffi::export(with_foreign)]
pub trait EventPlugin: Send + Sync {
    /// The event to queue, or none to drop it.
    fn process(&self, event: Event) -> Result<Option<Event>, TrailhoundError>;
}

/// Hears what became of events. Called on the SDK's background thread: return quickly.
/// An exception is logged and ignored; delivery goes on.
#[uniffi::export(with_foreign)]
pub trait DeliveryListener: Send + Sync {
    /// One notification.
    fn on_notification(&self, notification: Notification) -> Result<(), TrailhoundError>;
}

pub(crate) struct TransportAdapter(pub(crate) Arc<dyn HttpTransport>);

impl trailhound::Transport for TransportAdapter {
    fn send(&self, request: &trailhound::HttpRequest) -> UploadResult {
        let req = HttpRequest {
            url: request.url.clone(),
            headers: request.headers.iter().cloned().collect(),
            body: request.body.clone(),
        };
        // A Rust implementation could panic; a host one reports through the Result.
        match catch_unwind(AssertUnwindSafe(|| self.0.send(req))) {
            Ok(Ok(resp)) => match in_status(resp.status) {
                Some(status) => UploadResult::Response {
                    status,
                    retry_after: resp.retry_after,
                },
                None => UploadResult::NetworkError(format!(
                    "the transport returned {}, which is not an HTTP status",
                    resp.status
                )),
            },
            // A JVM exception arrives with its stack trace; the first line is what goes
            // into `last_error` and the listener's notification.
            Ok(Err(e)) => UploadResult::NetworkError(
                e.to_string().lines().next().unwrap_or_default().to_owned(),
            ),
            Err(_) => UploadResult::NetworkError("the transport panicked".into()),
        }
    }
}

thread_local! {
    /// Why the last plugin on this thread failed. The core only learns that a plugin
    /// unwound; the error mapping picks the host's text up from here on the same thread.
    static PLUGIN_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

pub(crate) fn take_plugin_failure() -> Option<String> {
    PLUGIN_FAILURE.with(|f| f.borrow_mut().take())
}

pub(crate) struct PluginAdapter(pub(crate) Arc<dyn EventPlugin>);

/// The payload of the unwind that refuses an event: not a panic message, so no panic hook
/// runs and nothing is printed.
struct PluginFailed;

impl trailhound::Plugin for PluginAdapter {
    fn process(&self, message: Message) -> Option<Message> {
        let event = Event::from(&message);
        let outcome = match self.0.process(event) {
            Ok(Some(e)) => apply_event(message, e).map(Some).map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(m) => m,
            Err(detail) => {
                PLUGIN_FAILURE.with(|f| *f.borrow_mut() = Some(detail));
                // The core refuses the event when a plugin unwinds, and says so to the
                // caller; resume_unwind skips the panic hook.
                std::panic::resume_unwind(Box::new(PluginFailed))
            }
        }
    }
}

pub(crate) struct ListenerAdapter(pub(crate) Arc<dyn DeliveryListener>);

impl trailhound::Listener for ListenerAdapter {
    fn on_notification(&self, notification: &trailhound::Notification) {
        if let Err(e) = self.0.on_notification(notification.into()) {
            log::warn!("trailhound: a delivery listener failed: {e}");
        }
    }
}
