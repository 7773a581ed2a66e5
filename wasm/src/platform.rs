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
    #[wasm_bindgen(js_name = thJson)]
    pub fn json(value: &JsValue) -> Option<String>;
    #[wasm_bindgen(js_name = thStringify, catch)]
    pub fn stringify(value: &JsValue, what: &str) -> Result<String, JsValue>;
    #[wasm_bindgen(js_name = thRegExp, catch)]
    pub fn regexp(pattern: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = thRandom)]
    pub fn random_fill(buf: &mut [u8]);
    #[wasm_bindgen(js_name = thOn)]
    pub fn on(target: &JsValue, kind: &str, f: &Function);
    #[wasm_bindgen(js_name = thKeep)]
    pub fn keep(key: &str, value: Option<&str>) -> bool;
    #[wasm_bindgen(js_name = thKept)]
    pub fn kept(key: &str) -> Option<String>;
    #[wasm_bindgen(js_name = thTimeZone)]
    pub fn time_zone() -> Option<String>;
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

/// Random bytes drawn from the browser at a time: one `crypto.getRandomValues` call per
/// 256 UUIDs instead of five JS calls per event (measured: a fifth of a `track()` call).
const RANDOM_POOL_BYTES: usize = 4096;

thread_local! {
    static RANDOM_POOL: std::cell::RefCell<(Box<[u8; RANDOM_POOL_BYTES]>, usize)> =
        std::cell::RefCell::new((Box::new([0; RANDOM_POOL_BYTES]), RANDOM_POOL_BYTES));
}

/// 16 random bytes from `crypto.getRandomValues` (through a pool; each byte is used once),
/// or from `Math.random` where there is no Web Crypto (it is everywhere the package is
/// meant to run).
pub fn random_bytes() -> [u8; 16] {
    RANDOM_POOL.with(|pool| {
        let (bytes, used) = &mut *pool.borrow_mut();
        if *used + 16 > RANDOM_POOL_BYTES {
            random_fill(&mut bytes[..]);
            *used = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&bytes[*used..*used + 16]);
        // Never handed out twice.
        bytes[*used..*used + 16].fill(0);
        *used += 16;
        out
    })
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
