#!/usr/bin/env bash
# The npm package as a new user meets it: a fresh npm project in a temporary directory
# outside the repository, `npm install trailhound-*.tgz` with esbuild, Vite and TypeScript,
# the app of examples/npm-app (app.ts: `import { Trailhound } from "trailhound"`) bundled
# by esbuild and by Vite, and the package imported straight from node_modules by a plain
# `<script type="module">` page. Each is loaded in headless Chromium (playwright-core from
# wasm/tools) without a plan and with one (which must load plans/… from the bundle's output),
# and tracks to a real `trailhound collect`, which must have the events (names, properties,
# messageIds; the plan's enforcement). Node imports and requires the package (its `node`
# condition). `tsc --strict --noEmit` passes on app.ts against the installed types and
# rejects a wrong call.
#
# Vite needs no configuration. esbuild does not copy files named by
# `new URL("./…", import.meta.url)` (esbuild issue 795), so the app is built as a user must:
# `--format=esm` (import.meta.url is empty in an iife) and the two .wasm files copied next
# to the output, as the package README says.
#
# Builds the tarball first (scripts/package-npm.sh) unless TRAILHOUND_PACKAGE_BUILT=1.
# Installs what is missing, idempotently: Chromium (apt), wasm/tools (npm ci). Ends with
# `summary: N passed, N failed, N skipped`; exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
TEMPLATE="$ROOT/examples/npm-app"
ESBUILD_VERSION=0.28.2
VITE_VERSION=8.4.0
TYPESCRIPT_VERSION=6.0.3
START=$SECONDS
PASSED=0
FAILED=0

package_first npm
the_artifact TGZ "$TARGET_DIR/package/npm" 'trailhound-*.tgz' || { finish "package-npm test"; exit 1; }

step "install what is missing (Chromium, playwright-core in wasm/tools), build the collector"
[ -x /usr/bin/chromium ] || apt_install chromium
[ -d "$ROOT/wasm/tools/node_modules/playwright-core" ] || (cd "$ROOT/wasm/tools" && npm ci --no-audit --no-fund)
cargo build -q -p trailhound-cli
export TRAILHOUND_COLLECTOR="$ROOT/target/debug/trailhound"

APP="$(mktemp -d "${TMPDIR:-/tmp}/trailhound-npm-app.XXXXXX")"
trap 'rm -rf "$APP"' EXIT
step "a fresh npm project in $APP: npm install the tarball, esbuild, Vite, TypeScript"
cp "$TEMPLATE"/app.ts "$TEMPLATE"/index.html "$TEMPLATE"/plain.html "$TEMPLATE"/tsconfig.json \
    "$TEMPLATE"/node.mjs "$TEMPLATE"/node.cjs "$APP/"
(
    cd "$APP"
    npm init -y >/dev/null
    npm pkg set type=module
    npm install --no-audit --no-fund "$TGZ" \
        "esbuild@$ESBUILD_VERSION" "vite@$VITE_VERSION" "typescript@$TYPESCRIPT_VERSION"
)
if [ -f "$APP/node_modules/trailhound/index.js" ] && [ -f "$APP/node_modules/trailhound/node/index.cjs" ]; then
    pass "npm install of the tarball"
else
    fail "npm install of the tarball"
fi

step "tsc --strict --noEmit on app.ts against the installed types"
if (cd "$APP" && npx --no-install tsc -p tsconfig.json); then
    pass "tsc --strict: app.ts type-checks against trailhound's index.d.ts"
else
    fail "tsc --strict: app.ts type-checks against trailhound's index.d.ts"
fi
# The types are really read: a wrong call must be refused.
mkdir -p "$APP/wrong"
cat >"$APP/wrong/wrong.ts" <<'EOF'
import { Trailhound } from "trailhound";
const th = await Trailhound.load({ writeKey: "k", endpoint: "https://c.example" });
th.track(42);
EOF
if out="$(cd "$APP/wrong" && npx --no-install tsc --ignoreConfig --strict --noEmit --target ES2022 --module ESNext \
    --moduleResolution Bundler --lib ES2022,DOM wrong.ts 2>&1)"; then
    fail "tsc refuses track(42)"
elif grep -q "TS2345" <<<"$out"; then
    pass "tsc refuses track(42) (TS2345)"
else
    echo "$out"
    fail "tsc refuses track(42) with TS2345"
fi
rm -rf "$APP/wrong"

step "tsc --strict --noEmit on the snippets of docs/getting-started/web.md"
mkdir -p "$APP/doc"
awk -v dir="$APP/doc" '/^```ts$/ { n++; out = dir "/snippet" n ".ts"; next } /^```/ { out = ""; next } out { print > out }' \
    "$ROOT/docs/getting-started/web.md"
shopt -s nullglob
SNIPPETS=("$APP"/doc/snippet*.ts)
shopt -u nullglob
if [ "${#SNIPPETS[@]}" -lt 2 ]; then
    fail "docs/getting-started/web.md has its two ts snippets (found ${#SNIPPETS[@]})"
elif (cd "$APP/doc" && npx --no-install tsc --ignoreConfig --strict --noEmit --target ES2022 --module ESNext \
    --moduleResolution Bundler --lib ES2022,DOM "${SNIPPETS[@]##*/}"); then
    pass "tsc --strict: the ${#SNIPPETS[@]} ts snippets of docs/getting-started/web.md"
else
    fail "tsc --strict: the ts snippets of docs/getting-started/web.md"
fi
rm -rf "$APP/doc"

step "esbuild: --bundle --format=esm --splitting, the .wasm files copied next to the output"
if (
    cd "$APP"
    npx --no-install esbuild app.ts --bundle --format=esm --splitting --minify --outdir=dist-esbuild
    sed 's#\./app\.ts#./app.js#' index.html >dist-esbuild/index.html
    # What the package README tells esbuild users to do:
    cp node_modules/trailhound/trailhound_wasm_bg.wasm dist-esbuild/
    mkdir -p dist-esbuild/plans && cp node_modules/trailhound/plans/trailhound_wasm_bg.wasm dist-esbuild/plans/
); then
    pass "esbuild bundle"
    ls -l "$APP/dist-esbuild"
else
    fail "esbuild bundle"
fi

step "Vite: vite build, no configuration"
if (cd "$APP" && npx --no-install vite build --outDir dist-vite --logLevel warn); then
    pass "vite build"
    ls -lR "$APP/dist-vite"
else
    fail "vite build"
fi

step "in Chromium and Node, to a real trailhound collect (examples/npm-app/test.mjs)"
LOG="$APP/test.log"
set +e
node "$TEMPLATE/test.mjs" "$APP" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
read -r p f < <(sed -n 's/^npm-app: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$LOG" | tail -n1)
p=${p:-0}
f=${f:-0}
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
PASSED=$((PASSED + p))
FAILED=$((FAILED + f))

finish "package-npm test"
