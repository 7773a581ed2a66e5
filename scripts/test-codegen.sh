#!/usr/bin/env bash
# `trailhound plan codegen` in the languages cargo cannot check: TypeScript (tsc --strict,
# then a Node run), Python (mypy --strict, then runs), Kotlin (Maven on the JVM, then a
# run through the real bindings over JNA). For each: the code generated from
# tests/codegen/plan-v1.json and an app written for it compile, the app's calls (through a
# recording fake; for Python and Kotlin also through the real SDK, the bindings over the
# host libtrailhound_ffi, recorded by a plugin) are exactly
# tests/codegen/expected-calls.json, the SDK's real client type fits the generated
# interface, and the same app FAILS to compile against plan-v2.json's code, once for each
# breaking change (a new required property, a removed event, a narrowed enum), with no
# error in the generated file itself; the example plan's (examples/music/plan.json) code
# type-checks too. Rust and Swift are in cli/tests/codegen.rs.
#
# Installs what is missing, idempotently: typescript (npm ci, pinned by
# tests/codegen/typescript/package-lock.json), mypy in a venv under target/codegen (pinned
# below), JDK + Maven (apt, as scripts/test-bindings.sh). Ends with
# `summary: N passed, N failed, N skipped`; exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

START=$SECONDS
FIX="$ROOT/tests/codegen"
WORK="$ROOT/target/codegen/lang"
VENV="$ROOT/target/codegen/venv"
MYPY_VERSION=2.4.1
KOTLIN_VERSION=2.4.21
JNA_VERSION=5.19.1
PASSED=0
FAILED=0

# expect_calls NAME FILE: FILE holds a JSON array equal to expected-calls.json.
expect_calls() {
    if python3 - "$FIX/expected-calls.json" "$2" <<'PY'
import json, sys
expected = json.load(open(sys.argv[1]))
try:
    got = json.load(open(sys.argv[2]))
except ValueError as e:
    sys.exit(f"not JSON: {e}")
if got != expected:
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            print(f"call {i}: got {json.dumps(g, sort_keys=True)}\n  expected {json.dumps(e, sort_keys=True)}", file=sys.stderr)
    if len(got) != len(expected):
        print(f"{len(got)} calls, expected {len(expected)}", file=sys.stderr)
    sys.exit(1)
PY
    then pass "$1"; else fail "$1"; fi
}

# expect_breaks NAME LOG APP_FILE GENERATED_FILE PATTERN...: the compile failed with an
# error matching each PATTERN (a message can span lines, so anywhere in the log), errors
# in APP_FILE, and none in the generated file.
expect_breaks() {
    local name="$1" log="$2" app="$3" generated="$4" ok=1 pattern
    shift 4
    for pattern in "$@"; do
        if ! grep -E "$pattern" "$log" >/dev/null; then
            echo "  no error matching /$pattern/" >&2
            ok=0
        fi
    done
    if ! grep -F "$app" "$log" >/dev/null; then
        echo "  no error in $app" >&2
        ok=0
    fi
    if grep -E "$generated[:(].*([Ee]rror|ERROR)|([Ee]rror|ERROR).*$generated[:(]" "$log" >/dev/null; then
        echo "  errors in the generated $generated:" >&2
        grep -E "$generated" "$log" >&2 || true
        ok=0
    fi
    if [ "$ok" = 1 ]; then pass "$name"; else sed 's/^/  | /' "$log" >&2; fail "$name"; fi
}

# generate PLAN LANG DIR
generate() {
    "$TRAILHOUND" plan codegen "$1" --lang "$2" --out "$3" >/dev/null
}

# generate_fresh PLAN LANG DIR: DIR emptied first (Kotlin keeps its directories instead,
# for Maven's compiled classes)
generate_fresh() {
    rm -rf "$3"
    mkdir -p "$3"
    generate "$@"
}

step "build the trailhound CLI"
cargo build -q -p trailhound-cli --bin trailhound
TRAILHOUND="${CARGO_TARGET_DIR:-$ROOT/target}/debug/trailhound"

step "install what is missing (typescript, mypy $MYPY_VERSION, JDK 17 + Maven)"
if [ -x "$FIX/typescript/node_modules/.bin/tsc" ]; then
    echo "typescript: $("$FIX/typescript/node_modules/.bin/tsc" --version)"
else
    (cd "$FIX/typescript" && npm ci --no-audit --no-fund)
fi
TSC="$FIX/typescript/node_modules/.bin/tsc"
if [ "$("$VENV/bin/mypy" --version 2>/dev/null | awk '{print $2}')" = "$MYPY_VERSION" ]; then
    echo "mypy: $MYPY_VERSION"
else
    # A venv: Debian's python3 refuses plain pip installs (PEP 668), and the pin stays ours.
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install -q "mypy==$MYPY_VERSION"
fi
MYPY="$VENV/bin/mypy"
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    apt_install openjdk-17-jdk-headless maven
fi

mkdir -p "$WORK"

# ---------------------------------------------------------------------------
step "the bindings' host library and its Kotlin and Python (UniFFI), for the real runs"
# Generated here, not into bindings/generated (scripts/test-bindings.sh owns that). Warm,
# the build is a no-op.
cargo build -q -p trailhound-ffi --features bindgen
FFI_LIB="${CARGO_TARGET_DIR:-$ROOT/target}/debug/libtrailhound_ffi.so"
FFI="$WORK/ffi"
rm -rf "$FFI"
mkdir -p "$FFI/lib"
for lang in kotlin python; do
    "${CARGO_TARGET_DIR:-$ROOT/target}/debug/uniffi-bindgen" generate --library "$FFI_LIB" \
        --language "$lang" --out-dir "$FFI/$lang" --no-format >/dev/null
done
# Links, not copies (the debug library is over 100 MB); Python loads it from beside the
# generated module.
ln -s "$FFI_LIB" "$FFI/lib/"
ln -s "$FFI_LIB" "$FFI/python/"

# ---------------------------------------------------------------------------
step "TypeScript: tsc --strict and a Node run"
t0=$SECONDS
for v in v1 v2; do
    d="$WORK/ts-$v"
    generate_fresh "$FIX/plan-$v.json" typescript "$d"
    cp "$FIX/typescript/app.ts" "$FIX/typescript/tsconfig.json" "$d/"
    echo '{"type": "module"}' >"$d/package.json"
done
cp "$FIX/typescript/client-check.ts" "$WORK/ts-v1/"
sed -i "s|@WASM_INDEX@|$ROOT/wasm/js/index.js|" "$WORK/ts-v1/client-check.ts"
if (cd "$WORK/ts-v1" && "$TSC" -p . >tsc.log 2>&1); then
    pass "typescript: v1 tracker, app and the browser Client's fit compile (tsc --strict)"
    if (cd "$WORK/ts-v1" && node app.js >calls.json); then
        expect_calls "typescript: the app's calls are the planned events" "$WORK/ts-v1/calls.json"
    else
        fail "typescript: the app runs"
    fi
else
    sed 's/^/  | /' "$WORK/ts-v1/tsc.log" >&2
    fail "typescript: v1 tracker, app and the browser Client's fit compile (tsc --strict)"
fi
if (cd "$WORK/ts-v2" && "$TSC" -p . --noEmit >tsc.log 2>&1); then
    fail "typescript: the v1 app must not compile against v2"
else
    expect_breaks "typescript: the v1 app fails against v2 for each breaking change" \
        "$WORK/ts-v2/tsc.log" "app.ts" "music-app-tracker.ts" \
        "Property 'deviceId' is missing" "Property 'Radio' does not exist" "Property 'songLiked' does not exist"
fi
d="$WORK/ts-example"
generate_fresh "$ROOT/examples/music/plan.json" typescript "$d"
if (cd "$d" && "$TSC" --strict --noEmit --target es2022 music-app-tracker.ts >tsc.log 2>&1); then
    pass "typescript: the example plan's tracker compiles (tsc --strict)"
else
    sed 's/^/  | /' "$d/tsc.log" >&2
    fail "typescript: the example plan's tracker compiles (tsc --strict)"
fi
echo "typescript: $((SECONDS - t0)) s"

# ---------------------------------------------------------------------------
step "Python: mypy --strict, a run with a fake and one through the real bindings"
t0=$SECONDS
for v in v1 v2; do
    d="$WORK/py-$v"
    generate_fresh "$FIX/plan-$v.json" python "$d"
    cp "$FIX/python/app.py" "$d/"
done
cp "$FIX/python/real_run.py" "$WORK/py-v1/"
cp "$FIX/python/client_check.py" "$WORK/py-v1/"
# client_check imports the bindings' wrapper; its generated FFI module may be absent
# (silent: the wrapper's own signatures are what is checked).
if (cd "$WORK/py-v1" && MYPYPATH="$ROOT/bindings/python" "$MYPY" --strict --no-incremental \
    --follow-imports=silent --ignore-missing-imports \
    music_app_tracker.py app.py client_check.py real_run.py >mypy.log 2>&1); then
    pass "python: v1 module, app and the bindings' Trailhound's fit pass mypy --strict"
else
    sed 's/^/  | /' "$WORK/py-v1/mypy.log" >&2
    fail "python: v1 module, app and the bindings' Trailhound's fit pass mypy --strict"
fi
if (cd "$WORK/py-v1" && python3 app.py >calls.json); then
    expect_calls "python: the app's calls are the planned events" "$WORK/py-v1/calls.json"
else
    fail "python: the app runs"
fi
data="$(mktemp -d)"
if (cd "$WORK/py-v1" && PYTHONPATH="$FFI/python:$ROOT/bindings/python" python3 real_run.py "$data" \
    >real-calls.json); then
    expect_calls "python: the app's calls through the real bindings are the planned events" \
        "$WORK/py-v1/real-calls.json"
else
    fail "python: the app runs through the real bindings"
fi
rm -rf "$data"
if (cd "$WORK/py-v2" && "$MYPY" --strict --no-incremental music_app_tracker.py app.py >mypy.log 2>&1); then
    fail "python: the v1 app must not pass mypy against v2"
else
    expect_breaks "python: the v1 app fails mypy against v2 for each breaking change" \
        "$WORK/py-v2/mypy.log" "app.py" "music_app_tracker.py" \
        'Missing named argument "device_id"' 'has no attribute "RADIO"' 'has no attribute "song_liked"'
fi
d="$WORK/py-example"
generate_fresh "$ROOT/examples/music/plan.json" python "$d"
if (cd "$d" && "$MYPY" --strict --no-incremental music_app_tracker.py >mypy.log 2>&1); then
    pass "python: the example plan's module passes mypy --strict"
else
    sed 's/^/  | /' "$d/mypy.log" >&2
    fail "python: the example plan's module passes mypy --strict"
fi
echo "python: $((SECONDS - t0)) s"

# ---------------------------------------------------------------------------
step "Kotlin: Maven on the JVM, and a run through the real bindings"
t0=$SECONDS
# The v2 compile-break check uses a stand-in for the bindings' Trailhound (no native
# library, no UniFFI Kotlin to compile twice): it must have the real signatures.
REAL_KT="$ROOT/bindings/kotlin/src/main/kotlin/dev/trailhound/Trailhound.kt"
STUB_KT="$FIX/kotlin/src/dev/trailhound/Trailhound.kt"
missing=0
while read -r sig; do
    if ! grep -F -- "$sig" "$REAL_KT" >/dev/null; then
        echo "  the bindings' Trailhound has no: $sig" >&2
        missing=1
    fi
done < <(grep -E '^    fun (track|identify|screen|page|group)\(' "$STUB_KT" | sed 's/ {}$//')
if [ "$missing" = 0 ] && [ "$(grep -cE '^    fun (track|identify|screen|page|group)\(' "$STUB_KT")" = 5 ]; then
    pass "kotlin: the Trailhound stand-in has the bindings' five signatures"
else
    fail "kotlin: the Trailhound stand-in has the bindings' five signatures"
fi
for v in v1 v2; do
    d="$WORK/kt-$v"
    mkdir -p "$d/generated"
    rm -f "$d/generated/"*.kt
    cp "$FIX/kotlin/pom.xml" "$d/"
    rm -rf "$d/src" "$d/target/classes"
    cp -r "$FIX/kotlin/src" "$d/src"
    mkdir -p "$d/src/none"
    generate "$FIX/plan-$v.json" kotlin "$d/generated"
done
# -o after the first run: everything is in ~/.m2 by then, and the remote checks cost seconds.
M2="$HOME/.m2/repository"
STDLIB="$M2/org/jetbrains/kotlin/kotlin-stdlib/$KOTLIN_VERSION/kotlin-stdlib-$KOTLIN_VERSION.jar"
JNA="$M2/net/java/dev/jna/jna/$JNA_VERSION/jna-$JNA_VERSION.jar"
MVN_OFFLINE=()
if [ -f "$STDLIB" ] && [ -f "$JNA" ]; then
    MVN_OFFLINE=(-o)
fi
if (cd "$WORK/kt-v1" && mvn -B -q "${MVN_OFFLINE[@]}" compile \
    -Dcodegen.sdk.dir="$ROOT/bindings/kotlin/src/main/kotlin" -Dcodegen.ffi.dir="$FFI/kotlin" \
    -Dcodegen.main.dir="$WORK/kt-v1/src/real" >mvn.log 2>&1); then
    pass "kotlin: v1 tracker and app compile against the real bindings (Maven, Kotlin $KOTLIN_VERSION)"
    data="$(mktemp -d)"
    if (cd "$WORK/kt-v1" && java -Djna.library.path="$FFI/lib" -cp "target/classes:$STDLIB:$JNA" \
        app.MainKt "$data" >calls.json); then
        expect_calls "kotlin: the app's calls through the real bindings are the planned events" "$WORK/kt-v1/calls.json"
    else
        fail "kotlin: the app runs through the real bindings"
    fi
    rm -rf "$data"
else
    sed 's/^/  | /' "$WORK/kt-v1/mvn.log" >&2
    fail "kotlin: v1 tracker and app compile against the real bindings (Maven, Kotlin $KOTLIN_VERSION)"
fi
if (cd "$WORK/kt-v2" && mvn -B -q "${MVN_OFFLINE[@]}" compile >mvn.log 2>&1); then
    fail "kotlin: the v1 app must not compile against v2"
else
    expect_breaks "kotlin: the v1 app fails against v2 for each breaking change" \
        "$WORK/kt-v2/mvn.log" "Calls.kt" "MusicAppTracker.kt" \
        "No value passed for parameter 'deviceId'" "Unresolved reference 'RADIO'" "Unresolved reference 'songLiked'"
fi
echo "kotlin: $((SECONDS - t0)) s"

finish codegen
