// A stand-in for `trailhound collect` with the same contract, for the e2e test while the
// real collector is not built: POST /v1/batch (gzip or plain; Basic auth or a writeKey in
// the body), CORS preflights, GET /api/events and /api/stats; events deduplicated by
// messageId. Prints "trailhound collect: listening on http://127.0.0.1:PORT".
import { createServer } from "node:http";
import { gunzipSync } from "node:zlib";

const events = new Map();
const stats = { accepted: 0, invalid: 0, duplicates: 0, requests: 0 };
const cors = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
  "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
};
const json = (res, status, v) => { res.writeHead(status, { ...cors, "Content-Type": "application/json" }); res.end(JSON.stringify(v)); };

createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const path = new URL(req.url, "http://x").pathname;
    if (req.method === "OPTIONS") return void res.writeHead(204, cors).end();
    if (req.method === "GET" && path === "/api/events") return json(res, 200, { events: [...events.values()], total: events.size });
    if (req.method === "GET" && path === "/api/stats") return json(res, 200, stats);
    if (req.method !== "POST" || path !== "/v1/batch") return json(res, 404, { error: "not found" });
    stats.requests++;
    let body;
    try {
      let raw = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") raw = gunzipSync(raw);
      body = JSON.parse(raw.toString("utf8"));
    } catch (e) {
      return json(res, 400, { error: String(e) });
    }
    const auth = req.headers.authorization;
    if (!auth && !body.writeKey) return json(res, 401, { error: "no write key" });
    for (const e of body.batch ?? []) {
      const valid = typeof e.messageId === "string" && typeof e.type === "string";
      if (!valid) { stats.invalid++; continue; }
      if (events.has(e.messageId)) { stats.duplicates++; continue; }
      stats.accepted++;
      events.set(e.messageId, { messageId: e.messageId, type: e.type, name: e.event ?? e.name ?? null, valid: true, error: null, properties: e.properties ?? null });
    }
    json(res, 200, { success: true });
  });
}).listen(Number(process.argv[2] ?? 0), "127.0.0.1", function () {
  console.log(`trailhound collect: listening on http://127.0.0.1:${this.address().port}`);
});
