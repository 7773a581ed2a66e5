//! HTTP transport: the trait the runtime sends through, and the default reqwest one.
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

/// The default transport: reqwest's blocking client over rustls (ring), with the
/// platform's certificate verifier, one kept-alive connection pool per client.
#[cfg(feature = "reqwest")]
pub struct ReqwestTransport {
    client: reqwest::blocking::Client,
}

#[cfg(feature = "reqwest")]
impl ReqwestTransport {
    /// A transport whose requests time out after `timeout` (connect included).
    pub fn new(timeout: std::time::Duration) -> Result<Self, String> {
        // The process may already have chosen a provider; either way one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .user_agent(concat!("trailhound-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ReqwestTransport { client })
    }
}

#[cfg(feature = "reqwest")]
impl Transport for ReqwestTransport {
    fn send(&self, request: &HttpRequest) -> UploadResult {
        let mut req = self.client.post(&request.url).body(request.body.clone());
        for (name, value) in &request.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        match req.send() {
            Ok(resp) => UploadResult::Response {
                status: resp.status().as_u16(),
                retry_after: resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            },
            // reqwest's errors name the URL, never the headers.
            Err(e) => UploadResult::NetworkError(format_error(&e)),
        }
    }
}

#[cfg(feature = "reqwest")]
fn format_error(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
