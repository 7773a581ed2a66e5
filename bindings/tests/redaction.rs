//! The write key never shows in the `Debug` or `Display` of an FFI type. The generated
//! Kotlin `toString()`, Python `repr()`/`str()` and Swift `description` of `Config` and
//! `HttpRequest` are these (exported with `#[uniffi::export(Debug, Display)]`).

mod common;

use trailhound_ffi::*;

const KEY: &str = "sekrit-write-key-4711";
/// `Authorization: Basic base64("sekrit-write-key-4711:")`.
const BASIC: &str = "c2Vrcml0LXdyaXRlLWtleS00NzExOg==";

fn assert_no_key(text: &str) {
    assert!(!text.contains("sekrit"), "{text}");
    assert!(!text.contains(BASIC), "{text}");
}

fn config(dir: &std::path::Path) -> Config {
    Config {
        policy: Some(PolicyOverrides::default()),
        context: Some(ContextInfo::default()),
        ..common::config(KEY, dir)
    }
}

/// `Config`'s Debug (plain and pretty) and Display name the endpoint but not the key.
#[test]
fn config_debug_and_display_have_no_key() {
    let c = config(std::path::Path::new("/d"));
    for text in [format!("{c:?}"), format!("{c:#?}"), format!("{c}")] {
        assert_no_key(&text);
        assert!(text.contains("collector.example.com"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

/// The request the core really builds carries the key, and its Debug and Display do
/// not; nor does the client's Debug.
#[test]
fn real_request_and_client_debug_have_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let (client, sent) = common::deliver_one(config(dir.path()));
    assert_no_key(&format!("{client:?}"));
    let req = &sent[0];
    assert_eq!(
        req.headers.get("Authorization").map(String::as_str),
        Some(format!("Basic {BASIC}").as_str())
    );
    for text in [format!("{req:?}"), format!("{req:#?}"), format!("{req}")] {
        assert_no_key(&text);
        assert!(!text.contains("Authorization"), "{text}");
        assert!(text.contains("/v1/batch"), "{text}");
    }
}
