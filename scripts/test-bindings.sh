#!/usr/bin/env bash
# Builds libtrailhound_ffi (debug, unstripped: library-mode generation reads its metadata),
# generates the Kotlin, Swift and Python bindings into bindings/generated/ (gitignored),
# and runs the Kotlin suite (Maven, JNA, JUnit on the JVM) and the pytest suite.
#
# Works on a fresh Debian 12 machine as root with rustup stable, Java 17, Maven 3.8 and
# python3 with pytest; installs what is missing. The last line is
# `summary: N passed, N failed, N skipped` over both suites; exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

GEN="$ROOT/bindings/generated"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LIB="$TARGET_DIR/debug/libtrailhound_ffi.so"
START=$SECONDS

step "install what is missing (JDK 17, Maven, pytest)"
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    apt_install openjdk-17-jdk-headless maven
fi
if ! python3 -c "import pytest" 2>/dev/null; then
    # Debian's own python3 refuses plain pip installs (PEP 668); its package is the fallback.
    python3 -m pip install -q pytest 2>/dev/null \
        || python3 -m pip install -q --break-system-packages pytest 2>/dev/null \
        || apt_install python3-pytest
fi

step "build libtrailhound_ffi and the pinned uniffi-bindgen"
cargo build -p trailhound-ffi --features bindgen
BINDGEN="$TARGET_DIR/debug/uniffi-bindgen"

step "generate Kotlin, Swift and Python from the library"
rm -rf "$GEN"
mkdir -p "$GEN/lib" "$GEN/python"
for lang in kotlin swift python; do
    # --no-format: ktlint and swift-format are not on this machine.
    "$BINDGEN" generate --library "$LIB" --language "$lang" --out-dir "$GEN/$lang" --no-format >/dev/null
done
# Links, not copies: the debug library is over 100 MB.
ln -s "$LIB" "$GEN/lib/"
# Python loads the library from next to the generated module (ctypes, no search path).
ln -s "$LIB" "$GEN/python/"
find "$GEN" -type f | sort | sed "s|^$ROOT/|    |"

KOTLIN_RC=0
PYTHON_RC=0

step "Kotlin suite (Maven, JNA, JUnit)"
rm -rf "$ROOT/bindings/kotlin/target/surefire-reports"
mvn -B -q -f "$ROOT/bindings/kotlin/pom.xml" \
    -Dtrailhound.generated.dir="$GEN/kotlin" \
    -Dtrailhound.lib.dir="$GEN/lib" \
    test || KOTLIN_RC=$?

step "Python suite (pytest)"
(
    cd "$ROOT/bindings/python"
    PYTHONPATH="$GEN/python:$ROOT/bindings/python" \
        python3 -m pytest -q -p no:cacheprovider --junitxml="$GEN/pytest.xml" tests
) || PYTHON_RC=$?

# Counts from the reports themselves, so a suite that did not run shows up as failed.
read -r PASSED FAILED SKIPPED < <(python3 - "$ROOT/bindings/kotlin/target/surefire-reports" "$GEN/pytest.xml" "$KOTLIN_RC" "$PYTHON_RC" <<'PY'
import glob, os, sys
import xml.etree.ElementTree as ET

surefire, pytest_xml, krc, prc = sys.argv[1:5]
passed = failed = skipped = 0

def count(suite):
    global passed, failed, skipped
    t = int(suite.get("tests", 0)); f = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    s = int(suite.get("skipped", 0))
    passed += t - f - s; failed += f; skipped += s

reports = glob.glob(os.path.join(surefire, "TEST-*.xml"))
for path in reports:
    count(ET.parse(path).getroot())
if not reports and krc != "0":
    failed += 1  # the Kotlin build itself failed
if os.path.exists(pytest_xml):
    root = ET.parse(pytest_xml).getroot()
    for suite in (root.iter("testsuite")):
        count(suite)
elif prc != "0":
    failed += 1
print(passed, failed, skipped)
PY
)

echo
echo "bindings: Kotlin rc=$KOTLIN_RC, Python rc=$PYTHON_RC, $((SECONDS - START)) s"
echo "summary: $PASSED passed, $FAILED failed, $SKIPPED skipped"
if [ "$KOTLIN_RC" != 0 ] || [ "$PYTHON_RC" != 0 ] || [ "$FAILED" != 0 ]; then
    exit 1
fi
