#!/usr/bin/env bash
# Runs every test suite of the Trailhound workspace. Used by .ci/run.
#
# Works on a fresh Debian 12 machine (as root) that has rustup stable, cargo and
# python3: anything else it needs (Debian's newer rustc + std source + lld for
# the wasm32 build) it installs itself, and skips installs that are already done.
# See shared/TOOLCHAIN.md for why the wasm build uses Debian's toolchain.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

START=$SECONDS
STEPS_DONE=()
# Test counts for the closing summary line; later suites add to these.
TESTS_PASSED=0
TESTS_FAILED=0
TESTS_SKIPPED=0

done_step() {
    STEPS_DONE+=("$1")
}

# ---------------------------------------------------------------------------
step "rustup components (rustfmt, clippy)"
for pair in rustfmt:fmt clippy:clippy; do
    comp="${pair%%:*}"
    sub="${pair##*:}"
    if cargo "$sub" --version >/dev/null 2>&1; then
        echo "$comp: present ($(cargo "$sub" --version 2>/dev/null))"
    elif command -v rustup >/dev/null 2>&1; then
        rustup component add "$comp" || echo "warning: 'rustup component add $comp' failed (offline?)" >&2
    else
        echo "warning: $comp missing and rustup not found" >&2
    fi
done
echo "cargo: $(command -v cargo) ($(cargo --version))"
done_step "components"

# ---------------------------------------------------------------------------
step "Debian packages: wasm32 toolchain (rustc-web >= 1.96, rust-web-src, cargo-web, rust-lld), chromium"
# chromium + chromium-driver: the collector's live page test (cli/tests/page.rs) and the
# browser package's tests run in headless Chromium.
chromium_ready() {
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
}
if debian_rust_ready && chromium_ready; then
    echo "already installed"
else
    echo "installing Debian packages (${WASM_RUST_PACKAGES[*]} chromium chromium-driver)"
    apt_install "${WASM_RUST_PACKAGES[@]}" chromium chromium-driver
    if ! debian_rust_ready; then
        echo "error: after apt-get install, /usr/bin/rustc is not >= $WASM_RUST_MIN or rust-lld/std source/clippy is missing" >&2
        echo "       (the 1.96 packages come from the bookworm-security suite; is it in the apt sources?)" >&2
        /usr/bin/rustc --version >&2 || true
        ls -l /usr/bin/rust-lld >&2 || true
        exit 1
    fi
fi
echo "rustc: $(/usr/bin/rustc --version)"
echo "cargo: $(/usr/bin/cargo --version)"
echo "rust-lld -> $(readlink -f /usr/bin/rust-lld)"
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
done_step "debian-packages"

# ---------------------------------------------------------------------------
step "cargo fmt --all -- --check"
cargo fmt --all -- --check
done_step "fmt"

# ---------------------------------------------------------------------------
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
done_step "clippy"

# ---------------------------------------------------------------------------
step "cargo test --workspace"
TEST_LOG="$(mktemp)"
trap 'rm -f "$TEST_LOG"' EXIT
cargo test --workspace 2>&1 | tee "$TEST_LOG"
read -r p f i < <(cargo_test_counts "$TEST_LOG")
TESTS_PASSED=$((TESTS_PASSED + p))
TESTS_FAILED=$((TESTS_FAILED + f))
TESTS_SKIPPED=$((TESTS_SKIPPED + i))
echo "rust tests: $p passed, $f failed, $i ignored"
done_step "test"

WASM_TARGET_DIR="$ROOT/target/wasm"
wasm_cargo() {
    env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        /usr/bin/cargo "$@" --release --target wasm32-unknown-unknown \
        -Zbuild-std=std,panic_abort --target-dir "$WASM_TARGET_DIR"
}

step "wasm32: build trailhound-core"
t0=$SECONDS
wasm_cargo build -p trailhound-core
echo "trailhound-core wasm32 build: $((SECONDS - t0)) s"
done_step "wasm-core"

step "wasm32: build tests/wasm-probe (cdylib) and check it imports nothing from \"env\""
PROBE_DIR="$ROOT/tests/wasm-probe"
# The probe is its own workspace: start its lockfile from the main one so it
# links the same dependency versions the native tests use.
if [ ! -f "$PROBE_DIR/Cargo.lock" ] && [ -f "$ROOT/Cargo.lock" ]; then
    cp "$ROOT/Cargo.lock" "$PROBE_DIR/Cargo.lock"
fi
t0=$SECONDS
wasm_cargo build --manifest-path "$PROBE_DIR/Cargo.toml"
echo "wasm-probe wasm32 build: $((SECONDS - t0)) s"
PROBE_WASM="$WASM_TARGET_DIR/wasm32-unknown-unknown/release/trailhound_wasm_probe.wasm"
python3 "$ROOT/scripts/wasm_imports.py" "$PROBE_WASM" --require-export trailhound_wasm_probe
done_step "wasm-imports"

# ---------------------------------------------------------------------------
# Suites in other languages, each a script that installs what it needs and ends with
# "summary: N passed, N failed, N skipped". All run even if one fails, so that one log
# shows every failure; the script fails at the end.
SUITES_FAILED=()
run_suite() {
    local name="$1" script="$2" log rc p f k
    step "$name ($script)"
    log="$(mktemp)"
    set +e
    bash "$script" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    read -r p f k < <(summary_counts "$log")
    rm -f "$log"
    TESTS_PASSED=$((TESTS_PASSED + p))
    TESTS_FAILED=$((TESTS_FAILED + f))
    TESTS_SKIPPED=$((TESTS_SKIPPED + k))
    echo "$name: $p passed, $f failed, $k skipped (exit $rc)"
    if [ "$rc" -ne 0 ]; then
        SUITES_FAILED+=("$name")
    else
        done_step "${name%% *}"
    fi
}
run_suite "bindings (Kotlin on the JVM, Python)" "$ROOT/scripts/test-bindings.sh"
run_suite "browser (wasm in headless Chromium, Node, playwright e2e)" "$ROOT/scripts/test-wasm.sh"
run_suite "codegen (plan codegen: TypeScript tsc + Node, Python mypy, Kotlin on the JVM)" "$ROOT/scripts/test-codegen.sh"
# After the browser suite: the npm package is packed from the wasm/pkg it built.
run_suite "packages (scripts/package.sh, then each installed into a fresh project: Cargo, pip + mypy, Maven Java and Kotlin, npm with esbuild/Vite/Chromium)" "$ROOT/scripts/test-packages.sh"
run_suite "fuzz (cargo-fuzz, libFuzzer + ASan, each target for a bounded time)" "$ROOT/scripts/test-fuzz.sh"

if [ "${#SUITES_FAILED[@]}" -gt 0 ]; then
    echo
    echo "==> FAILED suites: ${SUITES_FAILED[*]}"
    echo "summary: $TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
    exit 1
fi

# ---------------------------------------------------------------------------
echo
echo "==> all steps OK in $((SECONDS - START)) s: ${STEPS_DONE[*]}"
echo "summary: $TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
