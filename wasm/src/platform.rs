//! Bindings to the browser (and Node) APIs the driver uses, and to the promise adapters in
//! `js/platform.js`.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

// Each is documented where it is written, in js/platform.js.
#[allow(missing_docs)]
#[wasm_bindgen(module = "/js/platform.js")]
extern "C" {
    #[wasm_bindgen(js_name = thReq)]
    pub fn req(request: &web_sys::IdbRequest) -> Promise;
    #[wasm_bindgen(js_name = thDone)]
    pub fn done(tx: &web_sys::IdbTransaction) -> Promise;
    #[wasm_bindgen(js_name = thOpen)]
    pub fn open_db(name: &str) -> Promise;
    #[wasm_bindgen(js_name = thDeleteDb)]
    pub fn delete_db(name: &str) -> Promise;
    #[wasm_bindgen(js_name = thController)]
    pub fn controller() -> JsValue;
    #[wasm_bindgen(js_name = thAbort)]
    pub fn abort(controller: &JsValue, why: &str);
    #[wasm_bindgen(js_name = thFetch)]
    pub fn fetch(
        url: &str,
        auth: &str,
        body: &[u8],
        keepalive: bool,
        controller: &JsValue,
        compress: bool,
    ) -> Promise;
    #[wasm_bindgen(js_name = thReachable)]
    pub fn reachable(url: &str, controller: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = thCheckUrl, catch)]
    pub fn check_url(given: Option<&str>) -> Result<Option<String>, JsValue>;
    #[wasm_bindgen(js_name = thUrl, catch)]
    pub fn parse_url(text: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = thBeacon)]
    pub fn beacon(url: &str, json: &str) -> bool;
    #[wasm_bindgen(js_name = thLead)]
    pub fn lead(name: &str, on_granted: &Function) -> Function;
    #[wasm_bindgen(js_name = thStringify, catch)]
    pub fn stringify(value: &JsValue, what: &str) -> Result<String, JsValue>;
    #[wasm_bindgen(js_name = thRegExp, catch)]
    pub fn regexp(pattern: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = thOn)]
    pub fn on(target: &JsValue, kind: &str, f: &Function);
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    pub fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub fn clear_timeout(handle: &JsValue);
}

/// Milliseconds since the epoch, from the wall clock.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A property of a JS object, `undefined` if the object or property is missing.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() || obj.is_function() {
        js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// `globalThis`.
pub fn global() -> JsValue {
    js_sys::global().into()
}

/// 16 random bytes from `crypto.getRandomValues`, or from `Math.random` where there is no
/// Web Crypto (it is everywhere the package is meant to run).
pub fn random_bytes() -> [u8; 16] {
    let buf = js_sys::Uint8Array::new_with_length(16);
    let crypto = get(&global(), "crypto");
    let gv = get(&crypto, "getRandomValues");
    let ok = gv
        .dyn_ref::<Function>()
        .is_some_and(|f| f.call1(&crypto, &buf).is_ok());
    let mut out = [0u8; 16];
    if ok {
        buf.copy_to(&mut out);
    } else {
        for b in &mut out {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    out
}

/// A new random (version 4) UUID.
pub fn uuid_v4() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(random_bytes()).into_uuid()
}

/// Waits `ms` milliseconds on the event loop.
pub async fn sleep(ms: f64) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// The message of a thrown JS value.
pub fn error_text(e: &JsValue) -> String {
    let msg = get(e, "message");
    if let Some(s) = msg.as_string() {
        let name = get(e, "name").as_string().unwrap_or_default();
        if name.is_empty() || name == "Error" {
            return s;
        }
        return format!("{name}: {s}");
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}
