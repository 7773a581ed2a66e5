// Node entry point: the nodejs build loads its wasm synchronously on require.
const { Trailhound } = require("./trailhound_wasm.js");
module.exports = { Trailhound };
