//! Endpoint rules, one implementation for every platform.
//!
//! The platform parses the endpoint with its WHATWG URL parser (the `url` crate natively,
//! `new URL()` in browsers: both implement the same standard, so both see the same host)
//! and hands the parts to [`check`], which applies the rules:
//!
//! - `https` anywhere; plain `http` only when the *parsed* host is loopback (`localhost`,
//!   `127.0.0.0/8`, `[::1]`), so that the write key and the events never travel in the
//!   clear. The test is on the parsed host, never on the string: `http://localhost:1@evil`
//!   has the host `evil`.
//! - No userinfo (`user:pass@`): it hides the real host from a reader of the setting, and
//!   the write key is the only credential sent.
//! - No query and no fragment: the batch path is appended to the endpoint, and after a
//!   query it would land in the query string.
//!
//! A platform without a URL parser must not hand-split strings into [`UrlParts`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::BATCH_PATH;

/// An endpoint as a WHATWG URL parser splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// The scheme, without `:` (`https`).
    pub scheme: &'a str,
    /// The username, `""` when there is none.
    pub username: &'a str,
    /// The password, if any.
    pub password: Option<&'a str>,
    /// The host as the parser serialises it: `example.com`, `127.0.0.1`, `[::1]`.
    pub host: &'a str,
    /// The port, when it is not the scheme's default.
    pub port: Option<u16>,
    /// The path: `/` or `/prefix/…`.
    pub path: &'a str,
    /// The query without `?`: `None` when absent, `Some("")` for a bare `?`.
    pub query: Option<&'a str>,
    /// The fragment without `#`, if any.
    pub fragment: Option<&'a str>,
}

/// An endpoint that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
}

impl Endpoint {
    /// The endpoint, normalised, without a trailing slash: `https://host[:port][/prefix]`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where batches go: the base and `/v1/batch`.
    pub fn batch_url(&self) -> String {
        format!("{}{BATCH_PATH}", self.base)
    }
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    /// The endpoint as given.
    pub endpoint: String,
    /// Why it cannot be used.
    pub reason: &'static str,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endpoint `{}`: {}", self.endpoint, self.reason)
    }
}

impl std::error::Error for EndpointError {}

/// Whether a parsed host is a loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The rule on the endpoint's text, applied before any parser sees it: plain ASCII,
/// without control characters inside it, percent-escapes or internationalised (`xn--`)
/// labels. (Surrounding whitespace, a newline read with a setting, is trimmed as the
/// parsers trim it.)
///
/// Everything else goes through IDNA, where parsers disagree and have had bugs (the
/// native build's ASCII-only IDNA adapter, chosen to keep Unicode tables out of the
/// mobile library, asserts on punycode that decodes to upper-case letters: found by the
/// endpoint fuzz target). A collector endpoint never needs it: give an internationalised
/// domain an ASCII name (a CNAME) for the collector.
pub fn precheck(original: &str) -> Result<(), EndpointError> {
    let refuse = |reason| {
        Err(EndpointError {
            endpoint: original.to_owned(),
            reason,
        })
    };
    if !original.is_ascii() || original.contains('%') {
        return refuse("must be plain ASCII without percent-escapes");
    }
    // WHATWG parsers drop tabs and newlines anywhere in a URL: `x<TAB>n--` would reach
    // IDNA as `xn--` past the check below (found by the endpoint fuzz target).
    if original.trim().bytes().any(|b| b.is_ascii_control()) {
        return refuse("must not contain control characters (tabs, newlines)");
    }
    if original.to_ascii_lowercase().contains("xn--") {
        return refuse(
            "must not use an internationalised (xn--) host; give the collector an ASCII name",
        );
    }
    Ok(())
}

/// Applies the endpoint rules (see the [module documentation](self)) to `parts`, which a
/// WHATWG URL parser made of `original` after [`precheck`] passed.
pub fn check(original: &str, parts: &UrlParts<'_>) -> Result<Endpoint, EndpointError> {
    let refuse = |reason| {
        Err(EndpointError {
            endpoint: original.to_owned(),
            reason,
        })
    };
    precheck(original)?;
    let scheme = parts.scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return refuse("must start with https://");
    }
    if parts.host.is_empty() {
        return refuse("has no host");
    }
    if !parts.username.is_empty() || parts.password.is_some() {
        return refuse("must not contain a user name or password (user:pass@host)");
    }
    if parts.query.is_some() {
        return refuse("must not contain a query (?…): the batch path is appended to it");
    }
    if parts.fragment.is_some() {
        return refuse("must not contain a fragment (#…)");
    }
    if parts.host.contains(['/', '?', '#', '@', ' ']) || !parts.path.starts_with('/') {
        return refuse("is not a valid URL");
    }
    if scheme == "http" && !is_loopback_host(parts.host) {
        return refuse("plain http is only allowed to a loopback address; use https");
    }
    let mut base = format!("{scheme}://{}", parts.host.to_ascii_lowercase());
    if let Some(port) = parts.port {
        base.push_str(&format!(":{port}"));
    }
    base.push_str(parts.path.trim_end_matches('/'));
    Ok(Endpoint { base })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(scheme: &'static str, host: &'static str) -> UrlParts<'static> {
        UrlParts {
            scheme,
            username: "",
            password: None,
            host,
            port: None,
            path: "/",
            query: None,
            fragment: None,
        }
    }

    /// HTTPS anywhere; HTTP only to a parsed loopback host.
    #[test]
    fn scheme_and_loopback() {
        assert_eq!(
            check("x", &parts("https", "api.example.com"))
                .unwrap()
                .batch_url(),
            "https://api.example.com/v1/batch"
        );
        for host in ["localhost", "127.0.0.1", "127.9.9.9", "[::1]", "LOCALHOST"] {
            assert!(check("x", &parts("http", host)).is_ok(), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "[::2]",
            "localhost.evil",
            "0.0.0.0",
        ] {
            assert!(check("x", &parts("http", host)).is_err(), "{host}");
        }
        assert!(check("x", &parts("ftp", "localhost")).is_err());
        assert!(check("x", &parts("https", "")).is_err());
    }

    /// Userinfo, queries (even empty) and fragments are refused.
    #[test]
    fn userinfo_query_fragment_refused() {
        let user = UrlParts {
            username: "localhost",
            ..parts("https", "example.com")
        };
        assert!(check("x", &user).is_err());
        let pass = UrlParts {
            password: Some("1"),
            ..parts("https", "example.com")
        };
        assert!(check("x", &pass).is_err());
        let query = UrlParts {
            query: Some(""),
            ..parts("https", "example.com")
        };
        assert!(check("x", &query).is_err());
        let fragment = UrlParts {
            fragment: Some("a"),
            ..parts("https", "example.com")
        };
        let e = check("https://example.com#a", &fragment).unwrap_err();
        assert!(e.to_string().contains("https://example.com#a"), "{e}");
    }

    /// Non-ASCII, percent-escaped, internationalised (`xn--`) endpoints and control
    /// characters inside one are refused before parsing.
    #[test]
    fn precheck_refuses_non_ascii_and_escapes() {
        for bad in [
            "https://Aé/",
            "https://A%C3%A9/",
            "https://x.example/%2e%2e",
            "http:L\u{100080}",
            "https://xn--bcher-kva.example/v",
            "http:XN--ftgQQpQQOQQ",
            "http:x\tn--ftgQQpQQOQQ",
            "https://x\nn--bcher-kva.example",
            "https://api.exa\rmple.com",
            "https://api.example.com/\u{7f}v",
        ] {
            assert!(precheck(bad).is_err(), "{bad:?}");
        }
        assert!(precheck("https://api.example.com/v").is_ok());
        // What surrounds it is trimmed, as parsers trim it (a setting read with its
        // newline).
        assert!(precheck("  https://api.example.com/v\n").is_ok());
    }

    /// The base keeps the port and the path prefix, without a trailing slash.
    #[test]
    fn base_keeps_port_and_prefix() {
        let p = UrlParts {
            port: Some(8443),
            path: "/collect/",
            ..parts("https", "Example.com")
        };
        assert_eq!(
            check("x", &p).unwrap().batch_url(),
            "https://example.com:8443/collect/v1/batch"
        );
    }
}
