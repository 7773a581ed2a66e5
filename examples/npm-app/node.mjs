// The package in Node, as ESM (`import`): the `node` export condition gives the nodejs build.
//   ENDPOINT=http://127.0.0.1:8787 node node.mjs
import { Trailhound } from "trailhound";

const th = await Trailhound.load({ writeKey: "npm-app-key", endpoint: process.env.ENDPOINT, app: { name: "npm-app-node-esm" } });
th.track("Song Played", { title: "From Node (import)", seconds: 1 });
const stats = await th.flush(10_000);
console.log(JSON.stringify({ delivered: stats.delivered, storage: stats.storage }));
await th.close();
