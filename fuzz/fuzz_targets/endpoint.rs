//! Endpoints as an app's configuration may give them, through
//! `trailhound::client::check_endpoint`.
//!
//! Never panics. What it accepts is checked against an independent parse (the `url`
//! crate, a WHATWG parser): https, or http whose parsed host is loopback; no userinfo,
//! query or fragment; and the returned base has no trailing slash.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use url::{Host, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(endpoint) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(base) = trailhound::client::check_endpoint(endpoint) else {
        return;
    };
    // check_endpoint trims surrounding whitespace (Unicode's, more than a URL parser's).
    let url = Url::parse(endpoint.trim())
        .unwrap_or_else(|e| panic!("accepted {endpoint:?}, which does not parse as a URL: {e}"));
    match url.scheme() {
        "https" => {}
        "http" => assert!(
            is_loopback(url.host()),
            "accepted plain http to {:?} (from {endpoint:?})",
            url.host()
        ),
        other => panic!("accepted scheme {other:?} (from {endpoint:?})"),
    }
    assert!(url.host().is_some(), "accepted {endpoint:?} without a host");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "accepted userinfo in {endpoint:?}"
    );
    assert!(url.query().is_none(), "accepted a query in {endpoint:?}");
    assert!(
        url.fragment().is_none(),
        "accepted a fragment in {endpoint:?}"
    );
    assert!(
        !base.ends_with('/'),
        "base {base:?} ends with a slash (from {endpoint:?})"
    );
    // The base is what requests go to: it must name the same place.
    let again = Url::parse(&base)
        .unwrap_or_else(|e| panic!("base {base:?} (from {endpoint:?}) does not parse: {e}"));
    assert_eq!(
        (again.scheme(), again.host(), again.port_or_known_default()),
        (url.scheme(), url.host(), url.port_or_known_default()),
        "base {base:?} differs from {endpoint:?}"
    );
});

/// Loopback by the parsed host: `localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => Ipv4Addr::is_loopback(&ip),
        Some(Host::Ipv6(ip)) => Ipv6Addr::is_loopback(&ip),
        None => false,
    }
}
