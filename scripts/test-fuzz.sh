#!/usr/bin/env bash
# Fuzzes every input an app or a server controls (issue 9): builds the cargo-fuzz targets
# in fuzz/ with libFuzzer and AddressSanitizer, and runs each one for a bounded time,
# starting from its committed corpus (fuzz/corpus/<target>). Any crash, panic, timeout or
# out-of-memory fails the target; its input is saved under fuzz/artifacts/<target>/
# (gitignored) and can be replayed with `cargo fuzz run <target> <file>`. fuzz/dicts/ holds
# libFuzzer dictionaries (tokens of each input format) for the targets that have one.
#
# Works on a fresh Debian 12 machine with rustup stable: cargo-fuzz is installed (pinned)
# if missing. cargo-fuzz passes nightly flags (-Zsanitizer, -Cpasses=sancov-module);
# RUSTC_BOOTSTRAP=1 lets the stable compiler take them, and stable ships the ASan runtime.
#
# FUZZ_SECONDS (default 45): how long each target runs. FUZZ_TARGETS: a space-separated
# subset. The last line is `summary: N passed, N failed, 0 skipped`, one count per target.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS="${FUZZ_SECONDS:-45}"
# Fuzz builds use other compiler flags than native ones: their own target dir.
TARGET_DIR="$ROOT/target/fuzz"
SANITIZER=address
export RUSTC_BOOTSTRAP=1
START=$SECONDS

# Largest input per target: small inputs keep every run fast; the store's needs room for
# a real database file (its seeds are 20-40 KB).
max_len() {
    case "$1" in
        sqlite_store) echo 65536 ;;
        collector | import_line | message | plan) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

step "cargo-fuzz $CARGO_FUZZ_VERSION"
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" = "$CARGO_FUZZ_VERSION" ]; then
    echo "present"
else
    # --locked: cargo-fuzz's own lockfile, so that a new release of a dependency cannot
    # break the install.
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

TARGETS="${FUZZ_TARGETS:-$(cargo fuzz list)}"
PASSED=0
FAILED=0

step "build every target (-s $SANITIZER, $TARGET_DIR)"
t0=$SECONDS
if ! cargo fuzz build -s "$SANITIZER" --target-dir "$TARGET_DIR"; then
    n=$(echo "$TARGETS" | wc -w)
    echo "the fuzz build failed: all $n targets fail"
    echo "summary: 0 passed, $n failed, 0 skipped"
    exit 1
fi
echo "build: $((SECONDS - t0)) s"

WORK="$(mktemp -d)"
# The targets' own files (queue databases, data directories) go on tmpfs when there is
# one, and are deleted at the end even when a crashed run could not clean up.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    TRAILHOUND_FUZZ_TMP="$(mktemp -d -p /dev/shm trailhound-fuzz.XXXXXX)"
else
    TRAILHOUND_FUZZ_TMP="$WORK/files"
    mkdir -p "$TRAILHOUND_FUZZ_TMP"
fi
export TRAILHOUND_FUZZ_TMP
trap 'rm -rf "$WORK" "$TRAILHOUND_FUZZ_TMP"' EXIT
FAILED_TARGETS=()
for target in $TARGETS; do
    step "fuzz $target for ${FUZZ_SECONDS} s"
    # New inputs go to a scratch dir (libFuzzer writes into its first corpus dir); the
    # committed corpus is only read.
    mkdir -p "$WORK/$target" "fuzz/corpus/$target"
    log="$WORK/$target.log"
    # Tokens of the input's format (JSON keys, URL pieces), where the target has them.
    dict=()
    if [ -f "fuzz/dicts/$target.dict" ]; then
        dict=(-dict="fuzz/dicts/$target.dict")
    fi
    set +e
    cargo fuzz run -s "$SANITIZER" --target-dir "$TARGET_DIR" "$target" \
        "$WORK/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$target")" \
        -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    rc=$?
    set -e
    # The final stats and, on a failure, the crash report with its input's path.
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)|Done [0-9]+ runs' "$log" || true
    if [ "$rc" -eq 0 ]; then
        echo "$target: ok"
        PASSED=$((PASSED + 1))
    else
        echo "$target: FAILED (exit $rc); the end of its log:"
        grep -v '^#[0-9]' "$log" | tail -n 60
        FAILED=$((FAILED + 1))
        FAILED_TARGETS+=("$target")
    fi
done

echo
echo "fuzz: ${FUZZ_SECONDS} s per target, $((SECONDS - START)) s in all"
if [ "$FAILED" -gt 0 ]; then
    echo "failed targets: ${FAILED_TARGETS[*]} (inputs in fuzz/artifacts/)"
fi
echo "summary: $PASSED passed, $FAILED failed, 0 skipped"
[ "$FAILED" -eq 0 ]
