#!/usr/bin/env bash
# Builds every installable artifact of Trailhound into target/package/ (issue 14):
#   rust/    trailhound-core, trailhound, trailhound-cli .crate files (verified), the
#            stripped release `trailhound` binary (bin/) and rustdoc (doc/)
#   python/  the wheel (maturin, UniFFI) and its pdoc reference
#   jvm/     the jar, sources jar and POM, installed into ~/.m2 as dev.trailhound:trailhound,
#            and its Dokka reference
#   npm/     the npm tarball (`npm pack`) and its TypeDoc reference
# Installs what it needs, idempotently (maturin and pdoc in a venv, Maven, npm tools under
# target/). Each part is its own script, runnable alone: scripts/package-{rust,python,jvm,npm}.sh.
# The Android AAR and the Swift XCFramework need the NDK and Xcode: see the README.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START=$SECONDS
FAILED=()
for part in rust python jvm npm; do
    echo
    echo "==> package: $part (scripts/package-$part.sh)"
    t0=$SECONDS
    if bash "$ROOT/scripts/package-$part.sh"; then
        echo "package $part: done in $((SECONDS - t0)) s"
    else
        echo "package $part: FAILED after $((SECONDS - t0)) s" >&2
        FAILED+=("$part")
    fi
done
echo
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "==> packaging FAILED: ${FAILED[*]} ($((SECONDS - START)) s)" >&2
    exit 1
fi
echo "==> every package built in $((SECONDS - START)) s:"
PKG="${CARGO_TARGET_DIR:-$ROOT/target}/package"
find "$PKG/rust" "$PKG/rust/bin" "$PKG/python" "$PKG/jvm" "$PKG/npm" -maxdepth 1 -type f \
    \( -name '*.crate' -o -name '*.whl' -o -name '*.jar' -o -name '*.pom' -o -name '*.tgz' -o -name trailhound \) \
    -printf '  %p  %s bytes\n' | sed "s|$ROOT/||" | sort
