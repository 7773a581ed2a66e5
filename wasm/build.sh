#!/usr/bin/env bash
# Builds the npm package into wasm/pkg (browsers, `--target web`) and wasm/pkg-node
# (Node), with Debian's toolchain for wasm32 (see shared/TOOLCHAIN.md), wasm-opt from the
# npm `binaryen` package and terser, both in wasm/tools (scripts/test-wasm.sh installs them).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
TOOLS="$HERE/tools/node_modules/.bin"
# shellcheck source=wasm-opt-features.sh
. "$HERE/wasm-opt-features.sh"

# Size: a panic traps at once (no message formatting: the API returns errors, it does not
# panic), no file/line strings for panics, and std built for size. Saves about 11 KB gzipped.
cargo_wasm() {
    env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
        /usr/bin/cargo build --release --target wasm32-unknown-unknown \
        -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size "$@"
}
WASM="target/wasm32-unknown-unknown/release/trailhound_wasm.wasm"

# bindgen TARGET OUT: the JS glue and the optimised wasm of the last cargo build into OUT.
bindgen() {
    rm -rf "$2"
    wasm-bindgen --target "$1" --out-dir "$2" --out-name trailhound_wasm "$WASM"
    "$TOOLS/wasm-opt" -Oz --strip-debug --strip-producers "${WASM_OPT_FEATURES[@]}" \
        "$2/trailhound_wasm_bg.wasm" -o "$2/trailhound_wasm_bg.wasm"
}

# Two builds for browsers: without tracking plans (pkg/, what a page that gives no `plan`
# loads) and with them (pkg/plans/); js/index.js picks one. Node gets the one with plans.
cargo_wasm --no-default-features
bindgen web pkg
cargo_wasm
bindgen web pkg/plans
bindgen nodejs pkg-node

cp js/index.js js/index.d.ts js/package.json pkg/
cp js/index.node.cjs pkg-node/index.cjs
# What browsers download is minified; the .d.ts files keep the documentation.
for f in pkg/trailhound_wasm.js pkg/index.js pkg/snippets/*/js/platform.js \
         pkg/plans/trailhound_wasm.js pkg/plans/snippets/*/js/platform.js; do
    "$TOOLS/terser" "$f" --module --compress --mangle -o "$f"
done
