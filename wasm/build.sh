#!/usr/bin/env bash
# Builds the npm package into wasm/pkg (browsers, `--target web`) and wasm/pkg-node
# (Node), with Debian's toolchain for wasm32 (see shared/TOOLCHAIN.md), wasm-opt from the
# npm `binaryen` package and terser, both in wasm/tools (scripts/test-wasm.sh installs them).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
TOOLS="$HERE/tools/node_modules/.bin"

# Size: a panic traps at once (no message formatting: the API returns errors, it does not
# panic), no file/line strings for panics, and std built for size. Saves about 11 KB gzipped.
env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
    /usr/bin/cargo build --release --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
WASM="target/wasm32-unknown-unknown/release/trailhound_wasm.wasm"

for target in web nodejs; do
    out="pkg"
    [ "$target" = nodejs ] && out="pkg-node"
    rm -rf "$out"
    wasm-bindgen --target "$target" --out-dir "$out" --out-name trailhound_wasm "$WASM"
    # The features rustc enables by default for wasm32 must be allowed explicitly, or
    # wasm-opt refuses the module.
    "$TOOLS/wasm-opt" -Oz --strip-debug --strip-producers \
        --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
        "$out/trailhound_wasm_bg.wasm" -o "$out/trailhound_wasm_bg.wasm"
done

cp js/index.js js/index.d.ts js/package.json pkg/
cp js/index.node.cjs pkg-node/index.cjs
# What browsers download is minified; the .d.ts files keep the documentation.
for f in pkg/trailhound_wasm.js pkg/index.js pkg/snippets/*/js/platform.js; do
    "$TOOLS/terser" "$f" --module --compress --mangle -o "$f"
done
