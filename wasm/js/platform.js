// Promise adapters for browser APIs that are event-based. Nothing here decides anything:
// the queue's logic is in src/idb.rs and the engine.

export function thReq(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export function thDone(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });
}

// Version 1 of the schema: events by seq (with an index on creation time, for eviction by
// age), and a small key-value store for the state, the counts and the next seq.
export function thOpen(name) {
  return new Promise((resolve, reject) => {
    const idb = globalThis.indexedDB;
    if (!idb) {
      reject(new Error("IndexedDB is not available here"));
      return;
    }
    let r;
    try {
      r = idb.open(name, 1);
    } catch (e) {
      reject(e);
      return;
    }
    r.onupgradeneeded = () => {
      const db = r.result;
      const events = db.createObjectStore("events", { keyPath: "seq" });
      events.createIndex("created", "createdMs");
      db.createObjectStore("meta");
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error || new Error("indexedDB.open failed"));
    r.onblocked = () => reject(new Error("IndexedDB upgrade blocked by another tab"));
  });
}

export function thDeleteDb(name) {
  return new Promise((resolve, reject) => {
    const r = globalThis.indexedDB.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
    r.onblocked = () => resolve();
  });
}

// An AbortController per upload, so that the driver can cancel a request the engine has
// given up on (Engine::poll_abandoned); null where there is none.
export function thController() {
  return globalThis.AbortController ? new AbortController() : null;
}

export function thAbort(controller, why) {
  if (controller) controller.abort(new DOMException(why, "AbortError"));
}

// One upload. Resolves with [status, retryAfter|null]; rejects on a network error. It has
// no timer of its own: the engine abandons a request after its upload timeout, and the
// driver then aborts it through `controller` (Engine::poll_abandoned).
//
// `body` is the plain JSON (the engine is built without its gzip encoder). With `compress`
// it is gzipped by the browser's CompressionStream where there is one, off the wasm
// module and without shipping an encoder; where there is none, or on page hide (`compress`
// false: a promise may not settle before the page is gone, so the request starts at once),
// it goes plain, which every Segment-compatible collector accepts.
//
// Redirects are never followed (`redirect: "manual"`): a 3xx is a misconfigured endpoint,
// and following it would send the events and the write key wherever it points. Node shows
// the real 3xx status; a browser hides it behind an "opaqueredirect" response with status
// 0, reported as 300 so that the engine treats it as the redirect it is.
export async function thFetch(url, auth, body, keepalive, controller, compress) {
  const headers = { "Authorization": auth, "Content-Type": "application/json" };
  // A copy now: `body` is a view of the wasm memory, which may move while we wait.
  let data = body.slice();
  if (compress && globalThis.CompressionStream) {
    try {
      const gz = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
      data = await new Response(gz).arrayBuffer();
      headers["Content-Encoding"] = "gzip";
    } catch {
      // Sent plain.
    }
  }
  const init = {
    method: "POST",
    headers,
    body: data,
    keepalive,
    redirect: "manual",
  };
  if (controller) init.signal = controller.signal;
  const res = await fetch(url, init);
  const status = res.type === "opaqueredirect" ? 300 : res.status;
  return [status, res.headers.get("Retry-After")];
}

// Whether `url` answers at all: any response (a 404, a redirect, an opaque one) resolves
// true, a network error false; it never rejects. The check behind "blocked" (see `failure`
// in src/lib.rs): HEAD, no cookies, no cache, `no-cors` so that any URL can be asked.
export async function thReachable(url, controller) {
  try {
    await fetch(url, {
      method: "HEAD",
      mode: "no-cors",
      credentials: "omit",
      cache: "no-store",
      redirect: "manual",
      signal: controller ? controller.signal : undefined,
    });
    return true;
  } catch {
    return false;
  }
}

// The URL a fast failure is checked against (`block_check_from` in src/lib.rs): `given`
// resolved against the page's address, or else the page's origin `/`; null where the page
// has no http(s) origin (a file: page, Node). Throws a TypeError for what is not a URL.
export function thCheckUrl(given) {
  const web = /^https?:$/;
  const loc = globalThis.location;
  const page = loc && web.test(loc.protocol) ? loc.href : undefined;
  if (given == null) return page ? new URL("/", page).href : null;
  const url = new URL(given, page);
  if (!web.test(url.protocol)) throw new TypeError("must be an http(s) URL");
  return url.href;
}

// The parts of a URL as the WHATWG parser sees them (the core's endpoint rules apply to
// these, never to the string). Throws a TypeError for what is not a URL. `search` and
// `hash` are "" both when absent and when bare, so the serialisation tells them apart: a
// '?' or '#' in it is always a delimiter (elsewhere they are percent-encoded).
export function thUrl(text) {
  const u = new URL(text);
  const href = u.href;
  const hash = href.indexOf("#");
  const beforeHash = hash < 0 ? href : href.slice(0, hash);
  const q = beforeHash.indexOf("?");
  return {
    scheme: u.protocol.replace(/:$/, ""),
    username: u.username,
    password: u.password === "" ? null : u.password,
    host: u.hostname,
    port: u.port === "" ? null : Number(u.port),
    path: u.pathname,
    query: q < 0 ? null : beforeHash.slice(q + 1),
    fragment: hash < 0 ? null : href.slice(hash + 1),
  };
}

// The last resort on page hide when keepalive fetch is refused: a beacon cannot carry an
// Authorization header, so the write key goes in the body.
export function thBeacon(url, json) {
  const nav = globalThis.navigator;
  if (!nav || !nav.sendBeacon) return false;
  return nav.sendBeacon(url, new Blob([json], { type: "text/plain" }));
}

// Holds the uploader lock until `release` is called or the page goes away. Without Web
// Locks (Node, old browsers) this context is the only one and leads at once.
export function thLead(name, onGranted) {
  let release;
  const held = new Promise((r) => (release = r));
  const locks = globalThis.navigator && globalThis.navigator.locks;
  if (!locks) {
    onGranted();
    return release;
  }
  locks.request(name, () => {
    onGranted();
    return held;
  }).catch(() => {});
  return release;
}

// JSON.stringify, refusing what JSON cannot carry instead of silently changing it. The
// common case (plain data) is checked by a walk and then stringified without a replacer,
// which V8 does several times faster; anything the walk is not sure of (a function, a
// symbol, a BigInt, a non-finite number, a toJSON method, deep nesting) takes the
// replacer, which names the culprit.
export function thStringify(value, what) {
  const json = plain(value, 0) ? JSON.stringify(value) : JSON.stringify(value, function (key, v) {
    if (typeof v === "bigint") throw new TypeError(`${what}${key ? "." + key : ""} is a BigInt, which JSON cannot carry`);
    if (typeof v === "number" && !Number.isFinite(v)) throw new TypeError(`${what}${key ? "." + key : ""} is not a finite number (${v})`);
    if (typeof v === "function" || typeof v === "symbol") throw new TypeError(`${what}${key ? "." + key : ""} is a ${typeof v}, which JSON cannot carry`);
    return v;
  });
  return json === undefined ? "null" : json;
}

// thStringify's fast path, apart so that the common call passes no `what` to decode: the
// JSON of plain data, undefined for anything else (then thStringify names the culprit).
export function thJson(value) {
  return plain(value, 0) ? JSON.stringify(value) ?? "null" : undefined;
}

// Whether `v` is plain JSON data: strings, finite numbers, booleans, null (and undefined), and arrays and
// objects (without toJSON) of those, at most 64 levels deep (a cycle is deeper).
function plain(v, depth) {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined": // left out of objects, null in arrays: the same either way
      return true;
    case "number":
      return Number.isFinite(v);
    case "object":
      if (v === null) return true;
      if (depth > 64 || typeof v.toJSON === "function") return false;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!plain(v[i], depth + 1)) return false;
        return true;
      }
      for (const k in v) {
        if (Object.prototype.hasOwnProperty.call(v, k) && !plain(v[k], depth + 1)) return false;
      }
      return true;
    default:
      return false;
  }
}

// Fills `buf` with random bytes: Web Crypto, or Math.random where there is none.
export function thRandom(buf) {
  const c = globalThis.crypto;
  if (c && c.getRandomValues) {
    // getRandomValues fills at most 65,536 bytes a call.
    for (let i = 0; i < buf.length; i += 65536) c.getRandomValues(buf.subarray(i, i + 65536));
  } else {
    for (let i = 0; i < buf.length; i++) buf[i] = (Math.random() * 256) | 0;
  }
}

// A plan's `pattern` keyword (src/plan.rs): `.` matches newlines as natively, and the
// pattern is read as code points. No `g` or `y`: `test` then keeps no state between calls.
// Throws a SyntaxError for an invalid pattern.
export function thRegExp(pattern) {
  return new RegExp(pattern, "su");
}

export function thOn(target, type, fn) {
  if (target && target.addEventListener) target.addEventListener(type, fn);
}

// A synchronous write that survives the page, for the deletes it owes its queue
// (src/journal.rs): `value` null removes `key`. False where nothing can be kept (no
// localStorage: Node, a worker, storage blocked, quota). Never throws.
export function thKeep(key, value) {
  try {
    const s = globalThis.localStorage;
    if (!s) return false;
    if (value == null) s.removeItem(key);
    else s.setItem(key, value);
    return true;
  } catch (e) {
    return false;
  }
}

// What thKeep kept under `key`, or null. Never throws.
export function thKept(key) {
  try {
    const s = globalThis.localStorage;
    return s ? s.getItem(key) : null;
  } catch (e) {
    return null;
  }
}

// The system's IANA time zone, for the context. `Temporal.Now.timeZoneId()` where the
// browser has it: `Intl.DateTimeFormat` loads the locale's date formats to answer, 15-39 ms
// of a first page load in Chromium (wasm/bench marks; under 0.1 ms for Temporal). What a
// page's own `Temporal` answers is taken only if it looks like a zone's name (IANA names
// are at most about 30 characters): it is in every event's context.
export function thTimeZone() {
  try {
    const t = globalThis.Temporal;
    const id = t && t.Now && typeof t.Now.timeZoneId === "function" ? t.Now.timeZoneId() : null;
    if (typeof id === "string" && id.length > 0 && id.length <= 64) return id;
  } catch {}
  try {
    return new Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}
