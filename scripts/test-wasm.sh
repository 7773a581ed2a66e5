#!/usr/bin/env bash
# Tests the browser package (wasm/): builds it, runs the wasm-bindgen tests in headless
# Chromium, the Node smoke test and the playwright tests on examples/web (e2e, faults, blocked), and
# prints the package's size. Ends with "summary: N passed, N failed, N skipped".
#
# Works on a fresh Debian 12 machine as root: installs what it needs (Debian's rustc-web
# toolchain for wasm32, the wasm-bindgen CLI at the crate's exact version, Chromium and
# chromedriver, npm dev tools) and skips what is already there. See shared/TOOLCHAIN.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WASM_DIR="$ROOT/wasm"

# rustup's cargo (native collector, cargo install) first; /usr/bin/cargo is called
# explicitly for wasm32.
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

START=$SECONDS
PASSED=0
FAILED=0
SKIPPED=0

# ---------------------------------------------------------------------------
step "wasm32 toolchain (Debian rustc-web >= 1.96, rust-web-src, cargo-web, rust-lld)"
if debian_rust_ready; then
    echo "already installed: $(/usr/bin/rustc --version)"
else
    apt_install "${WASM_RUST_PACKAGES[@]}"
    debian_rust_ready || { echo "error: Debian's rustc-web toolchain is not usable" >&2; exit 1; }
fi

step "Chromium and chromedriver"
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "already installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
else
    apt_install chromium chromium-driver
fi

step "wasm-bindgen CLI (the exact version of the wasm-bindgen crate)"
WB_VERSION="$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' "$WASM_DIR/Cargo.toml")"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$WB_VERSION" ]; then
    echo "already installed: wasm-bindgen $WB_VERSION"
else
    # About 3.5 minutes on 2 cores. Not --locked: the registry mirror may lag a dependency.
    cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi

step "npm dev tools (binaryen for wasm-opt, terser, playwright-core)"
if [ -x "$WASM_DIR/tools/node_modules/.bin/wasm-opt" ] && [ -x "$WASM_DIR/tools/node_modules/.bin/terser" ] \
    && [ -d "$WASM_DIR/tools/node_modules/playwright-core" ]; then
    echo "already installed"
else
    (cd "$WASM_DIR/tools" && npm ci --no-audit --no-fund)
fi

# ---------------------------------------------------------------------------
step "build the package (wasm/build.sh)"
# The browser crate is its own workspace: start its lockfile from the main one so that it
# links the dependency versions the native tests use.
[ -f "$WASM_DIR/Cargo.lock" ] || cp "$ROOT/Cargo.lock" "$WASM_DIR/Cargo.lock"
t0=$SECONDS
"$WASM_DIR/build.sh"
echo "build: $((SECONDS - t0)) s"
python3 "$ROOT/scripts/wasm_imports.py" "$WASM_DIR/pkg/trailhound_wasm_bg.wasm"
python3 "$ROOT/scripts/wasm_imports.py" "$WASM_DIR/pkg/plans/trailhound_wasm_bg.wasm"

step "package size (wasm + JS glue, gzip -9)"
size_of() { wc -c <"$1" | tr -d ' '; }
gz_of() { gzip -9c "$1" | wc -c | tr -d ' '; }
# size_report NAME FILE...: what a page downloads for that build, per file and in total.
size_report() {
    local name="$1" raw=0 gz=0 f
    shift
    for f in "$@"; do
        printf '  %-62s %8d bytes raw %8d gzipped\n' "${f#$WASM_DIR/}" "$(size_of "$f")" "$(gz_of "$f")"
        raw=$((raw + $(size_of "$f"))); gz=$((gz + $(gz_of "$f")))
    done
    echo "$name: $raw bytes raw, $gz bytes gzipped ($((gz / 1024)) KiB; issue 13's goal: 30 KiB)"
}
# A page that gives no plan loads the lean build; a client given a plan loads pkg/plans/.
size_report "package (no plan)" "$WASM_DIR"/pkg/trailhound_wasm_bg.wasm "$WASM_DIR"/pkg/trailhound_wasm.js \
    "$WASM_DIR"/pkg/index.js "$WASM_DIR"/pkg/snippets/*/js/platform.js
size_report "package (with a plan)" "$WASM_DIR"/pkg/plans/trailhound_wasm_bg.wasm \
    "$WASM_DIR"/pkg/plans/trailhound_wasm.js "$WASM_DIR"/pkg/index.js \
    "$WASM_DIR"/pkg/plans/snippets/*/js/platform.js

# ---------------------------------------------------------------------------
step "lint: rustfmt and clippy (wasm32, Debian's clippy)"
cargo fmt --manifest-path "$WASM_DIR/Cargo.toml" -- --check
(cd "$WASM_DIR" && env PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    /usr/bin/cargo clippy --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --all-targets -- -D warnings)
# The lean build (no tracking plans) is what most pages load: it must lint clean too.
(cd "$WASM_DIR" && env PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    /usr/bin/cargo clippy --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --no-default-features --lib -- -D warnings)

# ---------------------------------------------------------------------------
step "wasm-bindgen tests in headless Chromium"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
set +e
(cd "$WASM_DIR" && env CHROMEDRIVER=/usr/bin/chromedriver RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo test --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort) 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
read -r p f i < <(cargo_test_counts "$LOG")
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi # a build or runner failure counts
PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + i))
echo "browser tests: $p passed, $f failed, $i ignored"

# ---------------------------------------------------------------------------
step "the native CLI, for the queue import check and the e2e collector"
# The debug build: `cargo test --workspace` in scripts/test.sh has already made it, so
# this costs nothing there. The CLI is part of this workspace, so a build failure is a
# failure here, not a reason to fall back to the stand-in collector.
cargo build -p trailhound-cli
CLI="$ROOT/target/debug/trailhound"
"$CLI" collect --help >/dev/null
echo "using $CLI"

# node_suite NAME SCRIPT [VAR=value...]: runs a Node test script that ends with
# "NAME: N passed, N failed"; a non-zero exit without a counted failure counts as one.
node_suite() {
    local name="$1" script="$2" rc p f
    shift 2
    set +e
    env "$@" node "$script" 2>&1 | tee "$LOG"
    rc=${PIPESTATUS[0]}
    set -e
    read -r p f < <(sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p" "$LOG" | tail -n1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
}

step "Node smoke test (nodejs build)"
node_suite node "$WASM_DIR/tests/node-smoke.mjs" TRAILHOUND_CLI="$CLI"

# ---------------------------------------------------------------------------
step "end-to-end: examples/web in Chromium with playwright-core, to a loopback collector"
node_suite e2e "$ROOT/examples/web/e2e.test.mjs" TRAILHOUND_COLLECTOR="$CLI"

step "faults in Chromium: redirecting endpoints, two tabs' opt-out and reset"
node_suite faults "$ROOT/examples/web/faults.test.mjs" TRAILHOUND_COLLECTOR="$CLI"

step "ad blockers in Chromium: a blocked primary falls over to the fallback; every endpoint blocked"
node_suite blocked "$ROOT/examples/web/blocked.test.mjs" TRAILHOUND_COLLECTOR="$CLI"

echo
echo "==> browser package tests done in $((SECONDS - START)) s"
echo "summary: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
