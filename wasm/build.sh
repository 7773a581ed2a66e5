#!/usr/bin/env bash
# Builds the npm package into wasm/pkg (browsers, `--target web`) and wasm/pkg-node
# (Node), with Debian's toolchain for wasm32 (see shared/TOOLCHAIN.md) and wasm-opt from
# the npm `binaryen` package in wasm/tools. Run scripts/test-wasm.sh once to install them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    /usr/bin/cargo build --release --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort
WASM="target/wasm32-unknown-unknown/release/trailhound_wasm.wasm"
WASM_OPT="$HERE/tools/node_modules/.bin/wasm-opt"
for target in web nodejs; do
    out="pkg"
    [ "$target" = nodejs ] && out="pkg-node"
    rm -rf "$out"
    wasm-bindgen --target "$target" --out-dir "$out" --out-name trailhound_wasm "$WASM"
    # The features rustc enables by default for wasm32 (bulk memory, sign-ext, …) must be
    # allowed explicitly, or wasm-opt refuses the module.
    "$WASM_OPT" -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
        "$out/trailhound_wasm_bg.wasm" -o "$out/trailhound_wasm_bg.wasm"
done
cp js/index.js js/index.d.ts pkg/
cp js/package.json pkg/package.json
cp js/index.node.cjs pkg-node/index.cjs
