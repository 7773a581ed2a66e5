#!/usr/bin/env bash
# Builds the `trailhound` npm package and its TypeScript API reference:
#   target/package/npm/trailhound-<version>.tgz   (npm pack)
#   target/package/npm/doc/                       (TypeDoc HTML of index.d.ts)
#
# The tarball is wasm/pkg (browsers: the lean build, plans/ for clients given a plan, the
# package.json and index.js/.d.ts from wasm/js) plus, under node/, wasm/pkg-node (the
# nodejs build, CommonJS, loading its .wasm with fs), which package.json's `node` export
# condition selects. Without it `import "trailhound"` in Node (server-side rendering, unit
# tests, scripts) would get the browser build, whose fetch of a file: URL fails at load().
# node/ has its own package.json saying "commonjs", since the package root says "module",
# and its snippets (ES modules that the glue require()s) one saying "module": Node >= 20.19.
#
# Runs wasm/build.sh first if wasm/pkg or wasm/pkg-node is missing or older than the
# sources it is built from. Installs what is missing, idempotently: the wasm toolchain and
# npm tools as scripts/test-wasm.sh does (only when a build is needed), and TypeDoc with the
# TypeScript it supports in target/package-tools/npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET_DIR/package/npm"
STAGE="$OUT/stage"
TOOLS="$TARGET_DIR/package-tools/npm"
WASM_DIR="$ROOT/wasm"
TYPEDOC_VERSION=0.28.20
TYPESCRIPT_VERSION=6.0.3 # the newest TypeScript that TypeDoc 0.28 supports
START=$SECONDS

# ---------------------------------------------------------------------------
# stale: true if the package is missing or any source is newer than its files (the npm
# README is copied below, not by build.sh).
stale() {
    local f
    for f in "$WASM_DIR/pkg/trailhound_wasm_bg.wasm" "$WASM_DIR/pkg/plans/trailhound_wasm_bg.wasm" \
        "$WASM_DIR/pkg-node/trailhound_wasm_bg.wasm" "$WASM_DIR/pkg/index.js" "$WASM_DIR/pkg/package.json"; do
        [ -f "$f" ] || return 0
        [ -z "$(find "$WASM_DIR/src" "$WASM_DIR/js" "$WASM_DIR/Cargo.toml" "$WASM_DIR/build.sh" \
            "$ROOT/core/trailhound-core/src" "$ROOT/core/trailhound-core/Cargo.toml" \
            -newer "$f" ! -name README.md -print -quit)" ] || return 0
    done
    return 1
}

if stale; then
    step "build the browser package (wasm/build.sh): wasm/pkg is missing or older than its sources"
    if ! debian_rust_ready; then
        apt_install "${WASM_RUST_PACKAGES[@]}"
    fi
    WB_VERSION="$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' "$WASM_DIR/Cargo.toml")"
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
        cargo install wasm-bindgen-cli --version "$WB_VERSION"
    fi
    if [ ! -x "$WASM_DIR/tools/node_modules/.bin/wasm-opt" ] || [ ! -x "$WASM_DIR/tools/node_modules/.bin/terser" ]; then
        (cd "$WASM_DIR/tools" && npm ci --no-audit --no-fund)
    fi
    [ -f "$WASM_DIR/Cargo.lock" ] || cp "$ROOT/Cargo.lock" "$WASM_DIR/Cargo.lock"
    bash "$WASM_DIR/build.sh"
else
    step "wasm/pkg is up to date"
fi

# ---------------------------------------------------------------------------
step "stage the package (wasm/pkg, wasm/pkg-node as node/, README, LICENSE)"
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -R "$WASM_DIR/pkg/." "$STAGE/"
mkdir "$STAGE/node"
cp -R "$WASM_DIR/pkg-node/." "$STAGE/node/"
# An ignore file (wasm-pack writes "*") would make npm pack leave files out.
find "$STAGE" -name .gitignore -delete
printf '{\n  "type": "commonjs"\n}\n' >"$STAGE/node/package.json"
# ...but the glue's snippets are ES modules, which the CommonJS glue require()s (Node >= 20.19).
for d in "$STAGE"/node/snippets/*/js; do
    printf '{\n  "type": "module"\n}\n' >"$d/package.json"
done
cp "$WASM_DIR/js/README.md" "$STAGE/README.md"
cp "$ROOT/LICENSE" "$STAGE/LICENSE"

step "npm pack"
rm -f "$OUT"/trailhound-*.tgz
TGZ_NAME="$(cd "$STAGE" && npm pack --pack-destination "$OUT" --json | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const [p] = JSON.parse(s);
    console.error(p.files.map((f) => `  ${String(f.size).padStart(8)}  ${f.path}`).join("\n"));
    console.error(`${p.entryCount} files, unpacked ${p.unpackedSize} B`);
    console.log(p.filename);
  });')"
TGZ="$OUT/$TGZ_NAME"
[ -f "$TGZ" ] || { echo "error: npm pack did not write $TGZ" >&2; exit 1; }
echo "tarball: $TGZ ($(wc -c <"$TGZ" | tr -d ' ') B)"

# ---------------------------------------------------------------------------
step "TypeDoc $TYPEDOC_VERSION (TypeScript $TYPESCRIPT_VERSION) in $TOOLS"
installed_version() { node -p "require('$TOOLS/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ "$(installed_version typedoc)" != "$TYPEDOC_VERSION" ] || [ "$(installed_version typescript)" != "$TYPESCRIPT_VERSION" ]; then
    mkdir -p "$TOOLS"
    [ -f "$TOOLS/package.json" ] || echo '{ "private": true }' >"$TOOLS/package.json"
    (cd "$TOOLS" && npm install --no-audit --no-fund --save-exact \
        "typedoc@$TYPEDOC_VERSION" "typescript@$TYPESCRIPT_VERSION")
fi
cat >"$STAGE/tsconfig.json" <<'EOF'
{ "compilerOptions": { "strict": true, "noEmit": true, "target": "ES2022", "module": "ES2022", "lib": ["ES2022", "DOM"] },
  "files": ["index.d.ts"] }
EOF
rm -rf "$OUT/doc"
"$TOOLS/node_modules/.bin/typedoc" --tsconfig "$STAGE/tsconfig.json" --entryPoints "$STAGE/index.d.ts" \
    --readme "$STAGE/README.md" --name "trailhound" --disableSources --treatWarningsAsErrors --out "$OUT/doc"
rm -rf "$STAGE" # what was packed is in the tarball
echo "API reference: $OUT/doc/index.html"

echo
echo "==> npm package built in $((SECONDS - START)) s: $TGZ"
