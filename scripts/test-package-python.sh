#!/usr/bin/env bash
# The Python wheel as a new user meets it: a fresh virtualenv in a temporary directory
# outside the repository, `pip install trailhound-*.whl` (no PYTHONPATH), and the quickstart
# of docs/getting-started/python.md sending its events to a real `trailhound collect`; the
# collector must have them (names, properties, user, the write key). `mypy --strict`
# passes on the page's snippets, and rejects a wrong call, so the wheel's hints are read.
#
# Builds the wheel first (scripts/package-python.sh) unless TRAILHOUND_PACKAGE_BUILT=1.
# Installs what is missing, idempotently: mypy (pinned) in the packaging venv under
# target/. Ends with `summary: N passed, N failed, N skipped`; exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV_TOOLS="$TARGET_DIR/package-tools/python-venv"
MYPY_VERSION=2.4.1
WRITE_KEY="qs-python-key"
START=$SECONDS
PASSED=0
FAILED=0

package_first python
the_artifact WHEEL "$TARGET_DIR/package/python" 'trailhound-*.whl' || { finish "package-python test"; exit 1; }

step "install what is missing (mypy $MYPY_VERSION in $VENV_TOOLS), build the collector"
if [ ! -x "$VENV_TOOLS/bin/python" ]; then
    python3 -m venv "$VENV_TOOLS" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV_TOOLS"; }
fi
if [ "$("$VENV_TOOLS/bin/mypy" --version 2>/dev/null | awk '{print $2}')" != "$MYPY_VERSION" ]; then
    "$VENV_TOOLS/bin/pip" install -q "mypy==$MYPY_VERSION"
fi
cargo build -q -p trailhound-cli --bin trailhound
TRAILHOUND="$TARGET_DIR/debug/trailhound"

WORK="$(mktemp -d)"
cleanup() {
    stop_collectors
    rm -rf "$WORK"
}
trap cleanup EXIT

step "a running trailhound collect"
if ! start_collector "$TRAILHOUND" "$WORK/collect.log" --write-key "$WRITE_KEY"; then
    fail "trailhound collect started"
    finish "package-python test"
fi
URL="$COLLECTOR"
echo "collector: $URL"

step "a new project: virtualenv, pip install $(basename "$WHEEL")"
mkdir -p "$WORK/app"
cd "$WORK/app"
python3 -m venv .venv 2>/dev/null || { apt_install python3-venv && python3 -m venv .venv; }
if .venv/bin/pip install -q "$WHEEL" \
    && .venv/bin/python - "$WORK/app/.venv" "$WHEEL" <<'PY'
import os, sys
from importlib.metadata import metadata
import trailhound, trailhound_ffi
venv, wheel = sys.argv[1:3]
# Imported from the venv's site-packages, not from the repository.
for m in (trailhound, trailhound_ffi):
    assert os.path.realpath(m.__file__).startswith(os.path.realpath(venv)), m.__file__
lib = os.path.join(os.path.dirname(trailhound_ffi.__file__), "libtrailhound_ffi.so")
assert os.path.isfile(lib), lib
md = metadata("trailhound")
assert md["Name"] == "trailhound" and md["Version"] == "0.1.0", (md["Name"], md["Version"])
assert md.get("License-Expression") == "Apache-2.0" or md.get("License") == "Apache-2.0", md.get("License-Expression")
assert md["Requires-Python"], "no Requires-Python"
tag = os.path.basename(wheel).split("-", 2)[2]
assert tag.startswith("py3-none-") and tag.endswith("_x86_64.whl"), tag
print(f"installed: {md['Name']} {md['Version']} ({tag}), library {os.path.getsize(lib)} bytes")
PY
then
    pass "pip install of the wheel into a fresh venv (import from site-packages, metadata, tag)"
else
    fail "pip install of the wheel into a fresh venv"
fi

# The page's snippets, as a reader copies them: the first (the quickstart) runs against the
# collector, both are type-checked.
DOC="$ROOT/docs/getting-started/python.md"
python3 - "$DOC" "$URL" "$WRITE_KEY" <<'PY'
import re, sys
doc, url, key = sys.argv[1:4]
blocks = re.findall(r"```python\n(.*?)```", open(doc).read(), re.S)
assert len(blocks) == 2, f"{doc}: expected 2 python snippets, found {len(blocks)}"
quick = blocks[0].replace("http://127.0.0.1:8787", url).replace('"WRITE_KEY"', repr(key))
assert url in quick and repr(key) in quick, "the quickstart no longer names the local collector"
open("quickstart.py", "w").write(quick)
open("production.py", "w").write(blocks[1])
PY

step "the quickstart (docs/getting-started/python.md) against the collector"
if .venv/bin/python quickstart.py >quickstart.log 2>&1 && grep -qx "delivered 3, queued 0" quickstart.log; then
    pass "quickstart runs and reports its 3 events delivered"
else
    sed 's/^/  | /' quickstart.log >&2
    fail "quickstart runs and reports its 3 events delivered"
fi

step "the collector has the events"
if python3 - "$URL" <<'PY'
import json, sys, urllib.request
events = json.load(urllib.request.urlopen(sys.argv[1] + "/api/events"))["events"]
tracks = {e["name"]: e for e in events if e["type"] == "track"}
assert set(tracks) == {"Song Played", "Playlist Created"}, sorted(tracks)
song, playlist = tracks["Song Played"]["json"], tracks["Playlist Created"]["json"]
assert song["properties"] == {"title": "Nachtmusik", "seconds": 215}, song["properties"]
assert playlist["properties"] == {"name": "Road trip", "songs": 12, "public": False}, playlist["properties"]
assert song["userId"] == playlist["userId"] == "user-42", song["userId"]
assert all(e["valid"] for e in events), [e["error"] for e in events]
ident = [e for e in events if e["type"] == "identify"]
assert len(ident) == 1 and ident[0]["json"]["traits"] == {"plan": "free"}, ident
print(f"collector: {len(events)} events, all valid")
PY
then
    pass "collector has both tracks (names, properties, userId) and the identify"
else
    fail "collector has both tracks and the identify"
fi

step "mypy --strict on the quickstart, against the installed wheel"
MYPY=("$VENV_TOOLS/bin/mypy" --strict --no-incremental --python-executable "$WORK/app/.venv/bin/python")
if "${MYPY[@]}" quickstart.py production.py; then
    pass "mypy --strict on the page's quickstart and production snippets"
else
    fail "mypy --strict on the page's quickstart and production snippets"
fi
# The types are real, not Any: mypy must refuse wrong calls.
cat >wrong.py <<'PY'
from trailhound import Trailhound

th = Trailhound.setup(write_key="k", endpoint="http://127.0.0.1:1", data_dir="/tmp/x")
th.track(42)
n: str = th.stats().delivered
PY
"${MYPY[@]}" wrong.py >wrong.log 2>&1 || true
if grep -q 'wrong.py:4: error: Argument 1 to "track"' wrong.log \
    && grep -q 'wrong.py:5: error: Incompatible types in assignment' wrong.log; then
    pass "mypy --strict rejects a wrong call and a wrong type from the wheel's hints"
else
    sed 's/^/  | /' wrong.log >&2
    fail "mypy --strict rejects a wrong call and a wrong type from the wheel's hints"
fi

finish "package-python test"
