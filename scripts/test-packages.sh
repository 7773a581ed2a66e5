#!/usr/bin/env bash
# The packages as new users install them (issue 14): builds every artifact
# (scripts/package.sh), then installs each into a fresh project outside the repository
# with its ecosystem's own client and runs a quickstart against `trailhound collect`:
# Rust (a Cargo project on the unpacked .crate files, `cargo install` of the CLI), Python
# (a venv, pip, mypy --strict), JVM (a Maven project: Java main and Kotlin test), npm
# (esbuild, Vite, a plain module page in headless Chromium, Node).
# The last line is `summary: N passed, N failed, N skipped`; exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

START=$SECONDS
PASSED=0
FAILED=0
SKIPPED=0
RC=0

echo "==> build every package (scripts/package.sh)"
if ! bash "$ROOT/scripts/package.sh"; then
    FAILED=$((FAILED + 1))
    RC=1
fi

for part in rust python jvm npm; do
    echo
    echo "==> new-user test: $part (scripts/test-package-$part.sh)"
    log="$(mktemp)"
    set +e
    TRAILHOUND_PACKAGE_BUILT=1 bash "$ROOT/scripts/test-package-$part.sh" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    read -r p f k < <(summary_counts "$log")
    rm -f "$log"
    if [ "$rc" -ne 0 ] && [ "$f" = 0 ]; then f=1; fi # a script that died without a count
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + k))
    [ "$rc" -eq 0 ] || RC=1
    echo "package test $part: $p passed, $f failed, $k skipped (exit $rc)"
done

echo
echo "packages: $((SECONDS - START)) s"
echo "summary: $PASSED passed, $FAILED failed, $SKIPPED skipped"
exit "$RC"
