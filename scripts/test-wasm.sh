#!/usr/bin/env bash
# Tests the browser package (wasm/): builds it, runs the wasm-bindgen tests in headless
# Chromium, the Node smoke test and the playwright e2e test on examples/web, and prints the
# package's size. Ends with "summary: N passed, N failed, N skipped".
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
if [ -d "${CARGO_HOME:-$HOME/.cargo}/bin" ]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
fi

START=$SECONDS
PASSED=0
FAILED=0
SKIPPED=0
step() { echo; echo "==> $*"; }
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "error: need root to run: $*" >&2; return 1
    fi
}
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

# ---------------------------------------------------------------------------
step "wasm32 toolchain (Debian rustc-web >= 1.96, rust-web-src, cargo-web, rust-lld)"
WASM_RUST_MIN=1.96
debian_rust_ready() {
    local v
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/rustdoc ] && [ -x /usr/bin/cargo ] || return 1
    [ -e /usr/bin/rust-lld ] || return 1
    v="$(/usr/bin/rustc --version 2>/dev/null | awk '{print $2}')" || return 1
    version_ge "${v:-0}" "$WASM_RUST_MIN" || return 1
    v="$(/usr/bin/cargo --version 2>/dev/null | awk '{print $2}')" || return 1
    version_ge "${v:-0}" "$WASM_RUST_MIN" || return 1
    [ -f "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock" ] || return 1
    # rustup's clippy (1.95) cannot read the std that Debian's 1.96 builds.
    [ -x /usr/bin/clippy-driver ] && [ -x /usr/bin/cargo-clippy ] || return 1
}
if debian_rust_ready; then
    echo "already installed: $(/usr/bin/rustc --version)"
else
    apt_install rustc-web rust-web-src cargo-web rust-web-llvm lld-22 rust-web-clippy
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

step "package size (wasm + JS glue, gzip -9)"
size_of() { wc -c <"$1" | tr -d ' '; }
gz_of() { gzip -9c "$1" | wc -c | tr -d ' '; }
raw=0; gz=0
for f in "$WASM_DIR"/pkg/trailhound_wasm_bg.wasm "$WASM_DIR"/pkg/trailhound_wasm.js "$WASM_DIR"/pkg/index.js \
         "$WASM_DIR"/pkg/snippets/*/js/platform.js; do
    printf '  %-40s %8d bytes raw %8d gzipped\n' "${f#$WASM_DIR/}" "$(size_of "$f")" "$(gz_of "$f")"
    raw=$((raw + $(size_of "$f"))); gz=$((gz + $(gz_of "$f")))
done
echo "package: $raw bytes raw, $gz bytes gzipped ($((gz / 1024)) KB; target <= 150 KB)"

# ---------------------------------------------------------------------------
step "lint: rustfmt and clippy (wasm32, Debian's clippy)"
cargo fmt --manifest-path "$WASM_DIR/Cargo.toml" -- --check
(cd "$WASM_DIR" && env PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    /usr/bin/cargo clippy --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --all-targets -- -D warnings)

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
read -r p f i < <(awk '/^test result:/ {
        for (k = 1; k <= NF; k++) {
            if ($(k+1) ~ /^passed/)  p += $k
            if ($(k+1) ~ /^failed/)  f += $k
            if ($(k+1) ~ /^ignored/) i += $k
        }
    } END { print p+0, f+0, i+0 }' "$LOG")
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

step "Node smoke test (nodejs build)"
set +e
TRAILHOUND_CLI="$CLI" node "$WASM_DIR/tests/node-smoke.mjs" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
read -r p f < <(sed -n 's/^node: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$LOG" | tail -n1)
p=${p:-0}; f=${f:-0}
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
PASSED=$((PASSED + p)); FAILED=$((FAILED + f))

# ---------------------------------------------------------------------------
step "end-to-end: examples/web in Chromium with playwright-core, to a loopback collector"
set +e
TRAILHOUND_COLLECTOR="$CLI" node "$ROOT/examples/web/e2e.test.mjs" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
read -r p f < <(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$LOG" | tail -n1)
p=${p:-0}; f=${f:-0}
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
PASSED=$((PASSED + p)); FAILED=$((FAILED + f))

echo
echo "==> browser package tests done in $((SECONDS - START)) s"
echo "summary: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
