#!/usr/bin/env bash
# A copy of the browser package whose .wasm keeps its function names, for CPU profiles
# (`node wasm/bench/run.mjs --profile --pkg DIR`): the same wasm-bindgen and wasm-opt -Oz
# steps as wasm/build.sh on its last cargo output, without --strip-debug and without
# minifying the JS. wasm/pkg is not touched. build.sh's last cargo output is the build with
# tracking plans; here it takes the place of the lean one (the bench gives no plan), so its
# profile names the plan gate's few calls too.
#   bash wasm/bench/named-pkg.sh [OUT] [WASM_DIR]
# OUT defaults to /tmp/trailhound-pkg-named; WASM_DIR (whose target/ and js/ are used) to
# this checkout's wasm/, or another checkout's, say one of HEAD built apart.
set -euo pipefail
WASM_DIR="${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
OUT="${1:-/tmp/trailhound-pkg-named}"
WASM="$WASM_DIR/target/wasm32-unknown-unknown/release/trailhound_wasm.wasm"
[ -f "$WASM" ] || { echo "named-pkg.sh: no $WASM; run bash wasm/build.sh first" >&2; exit 2; }
rm -rf "$OUT"
wasm-bindgen --target web --out-dir "$OUT" --out-name trailhound_wasm "$WASM"
# shellcheck source=../wasm-opt-features.sh
. "$WASM_DIR/wasm-opt-features.sh"
"$WASM_DIR/tools/node_modules/.bin/wasm-opt" -Oz --debuginfo --strip-producers "${WASM_OPT_FEATURES[@]}" \
    "$OUT/trailhound_wasm_bg.wasm" -o "$OUT/trailhound_wasm_bg.wasm"
cp "$WASM_DIR/js/index.js" "$OUT/"
echo "$OUT"
