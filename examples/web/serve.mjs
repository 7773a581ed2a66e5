// Serves the example page (this directory) and the built package (wasm/pkg) on loopback:
//   node examples/web/serve.mjs [PORT]        (after wasm/build.sh; PORT 0 picks a free one)
// Prints "serving on http://127.0.0.1:PORT" once listening.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const pkg = join(here, "..", "..", "wasm", "pkg");
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".ts": "text/plain" };
const port = Number(process.argv[2] ?? 8080);

createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (path.includes("..")) return void res.writeHead(400).end();
  const file = path.startsWith("/pkg/") ? join(pkg, path.slice(5)) : join(here, path === "/" ? "index.html" : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "Content-Type": types[extname(file)] ?? "application/octet-stream", "Cache-Control": "no-store" });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found");
  }
}).listen(port, "127.0.0.1", function () {
  console.log(`serving on http://127.0.0.1:${this.address().port}`);
});
