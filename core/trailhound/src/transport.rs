//! HTTP transport: the trait the runtime sends through, and the default ureq one.
//!
//! Apps can plug in their platform's HTTP stack (OkHttp, URLSession) through the same
//! trait, keeping their proxies and certificate pinning; tests plug in recorders and
//! scripted faults.

use trailhound_core::UploadResult;

/// One upload request. The body is already gzip-compressed.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Full URL (`{endpoint}/v1/batch`).
    pub url: String,
    /// Headers, `Authorization` included: never log them.
    pub headers: Vec<(String, String)>,
    /// The gzip-compressed body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A batch upload as the runtime sends it: `authorization` is the `Basic …` value
    /// ([`trailhound_core::wire::basic_auth`]) and `body` a gzip-compressed batch from the
    /// engine. The replay tool sends through this too, so that it sends what devices send.
    pub fn batch(url: &str, authorization: &str, body: Vec<u8>) -> HttpRequest {
        HttpRequest {
            url: url.to_owned(),
            headers: vec![
                ("Authorization".into(), authorization.to_owned()),
                ("Content-Type".into(), "application/json".into()),
                ("Content-Encoding".into(), "gzip".into()),
            ],
            body,
        }
    }
}

impl std::fmt::Debug for HttpRequest {
    /// Leaves out the headers: `Authorization` carries the write key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Sends upload requests. Called on the runtime's upload thread, one request at a time;
/// it may block for as long as the request takes (up to the policy's request timeout).
pub trait Transport: Send + Sync + 'static {
    /// Sends the request and reports the status and `Retry-After`, or the network error.
    fn send(&self, request: &HttpRequest) -> UploadResult;
}

impl<F> Transport for F
where
    F: Fn(&HttpRequest) -> UploadResult + Send + Sync + 'static,
{
    fn send(&self, request: &HttpRequest) -> UploadResult {
        self(request)
    }
}

/// The default transport: ureq's blocking client over rustls (ring), with the platform's
/// certificate verifier and a kept-alive connection pool.
///
/// ureq rather than reqwest: reqwest's blocking client runs a tokio runtime and hyper
/// underneath, which made the mobile library about 530 KB larger (measured with the same
/// LTO profile, `bindings/README.md`); an SDK that sends one request at a time from its
/// own thread needs neither.
#[cfg(feature = "ureq")]
pub struct UreqTransport {
    agent: ureq::Agent,
}

/// The longest request timeout the ureq transport applies.
#[cfg(feature = "ureq")]
const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

#[cfg(feature = "ureq")]
impl UreqTransport {
    /// A transport whose requests time out after `timeout` (connect included). Longer
    /// than a day counts as a day: ureq adds the timeout to the clock, which overflows
    /// (and panics) for unbounded values such as `Duration::MAX`.
    pub fn new(timeout: std::time::Duration) -> Result<Self, String> {
        use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
        let timeout = timeout.min(MAX_TIMEOUT);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .max_idle_age(std::time::Duration::from_secs(90))
            .user_agent(concat!("trailhound-rust/", env!("CARGO_PKG_VERSION")))
            // A 4xx or 5xx is an answer for the engine's response table, not an error.
            .http_status_as_error(false)
            // Never follow a redirect: following a 301/302/303 turns the POST into a GET
            // without the body (the landing page's 200 would count as delivery), and a 307/308
            // would resend the write key to wherever it points. With 0, ureq returns the 3xx
            // itself, which the engine's table treats as a misconfigured endpoint.
            .max_redirects(0)
            .tls_config(
                TlsConfig::builder()
                    .provider(TlsProvider::Rustls)
                    .root_certs(RootCerts::PlatformVerifier)
                    .unversioned_rustls_crypto_provider(provider)
                    .build(),
            )
            .build();
        Ok(UreqTransport {
            agent: config.into(),
        })
    }
}

#[cfg(feature = "ureq")]
impl Transport for UreqTransport {
    fn send(&self, request: &HttpRequest) -> UploadResult {
        let mut req = self.agent.post(&request.url);
        for (name, value) in &request.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        match req.send(&request.body[..]) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // Read the (small) answer so that the connection goes back to the pool.
                let _ = resp.body_mut().with_config().limit(64 * 1024).read_to_vec();
                UploadResult::Response {
                    status,
                    retry_after,
                }
            }
            // ureq's errors name the host or URL, never the headers.
            Err(e) => UploadResult::NetworkError(format_error(&request.url, &e)),
        }
    }
}

#[cfg(feature = "ureq")]
fn format_error(url: &str, e: &ureq::Error) -> String {
    let mut msg = match e {
        ureq::Error::Timeout(_) => format!("{url}: request timed out ({e})"),
        _ => format!("{url}: {e}"),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
