// The package in Node, as CommonJS (`require`).
//   ENDPOINT=http://127.0.0.1:8787 node node.cjs
const { Trailhound } = require("trailhound");

(async () => {
  const th = await Trailhound.load({ writeKey: "npm-app-key", endpoint: process.env.ENDPOINT, app: { name: "npm-app-node-cjs" } });
  th.track("Song Played", { title: "From Node (require)", seconds: 2 });
  const stats = await th.flush(10_000);
  console.log(JSON.stringify({ delivered: stats.delivered, storage: stats.storage }));
  await th.close();
})();
