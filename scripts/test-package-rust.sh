#!/usr/bin/env bash
# The Rust packages as a new user gets them (builds them first with scripts/package-rust.sh
# unless TRAILHOUND_PACKAGE_BUILT=1 and target/package/rust/ has them):
#  (a) a new Cargo project outside the repository depends on the packaged `trailhound`
#      (unpacked .crate files, path dependencies, the unpublished trailhound-core patched
#      in as the registry would serve it); its binaries are the README's Rust quickstart
#      and the snippets of docs/getting-started/rust.md. Each ```rust block is run against
#      a real `trailhound collect`, each ```rust,no_run block compiled; /api/events must
#      show the events with their names and properties.
#  (b) `cargo install --path cli --debug` into a temporary root: `--help`, `--version`,
#      and its `collect` takes a batch (plain HTTP POST) that /api/events then shows.
#      --debug: a release install takes minutes on 2 cores and proves nothing more here;
#      the release binary is scripts/package-rust.sh's.
#
# Warm (packages unchanged): about a minute. The unpacked packages are kept in a fixed
# directory outside the repository and re-extracted only when a .crate changes, and the
# project builds into the workspace's target dir: its crates.io dependencies (same
# Cargo.lock) are the ones the workspace build already compiled, so even a first run
# compiles only the three packaged crates and the project (on a fresh CI machine, a
# separate target dir cost a second build of rusqlite, ring and the rest).
# The last line is `summary: N passed, N failed, N skipped`; exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PKG="$TARGET_DIR/package/rust"
TEST_TARGET="$TARGET_DIR"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
START=$SECONDS
PASSED=0
FAILED=0
SKIPPED=0

WORK="$(mktemp -d "${TMPDIR:-/tmp}/trailhound-rust-package.XXXXXX")"
cleanup() {
    stop_collectors
    rm -rf "$WORK"
}
trap cleanup EXIT

# expect_events URL AFTER_ID EXPECTATIONS_JSON: polls /api/events (up to 10 s) until the
# events stored after id AFTER_ID include every expected one: [{"type", "name",
# "userId"?, "props": {key: value}}] where props are checked in `properties` (track,
# screen, page) or `traits` (identify). Prints what is missing on failure.
expect_events() {
    python3 - "$@" <<'PY'
import json, sys, time, urllib.request
url, after, expected = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])

def missing(events):
    out = []
    for want in expected:
        def matches(e):
            j = e["json"]
            if e["type"] != want["type"]:
                return False
            if "name" in want and e.get("name") != want["name"]:
                return False
            if "userId" in want and j.get("userId") != want["userId"]:
                return False
            bag = j.get("traits" if want["type"] == "identify" else "properties") or {}
            return e["valid"] and all(bag.get(k) == v for k, v in want.get("props", {}).items())
        if not any(matches(e) for e in events):
            out.append(want)
    return out

deadline = time.time() + 10
while True:
    with urllib.request.urlopen(f"{url}/api/events?limit=10000") as r:
        events = [e for e in json.load(r)["events"] if e["id"] > after]
    left = missing(events)
    if not left or time.time() > deadline:
        break
    time.sleep(0.2)
if left:
    print("missing: " + json.dumps(left), file=sys.stderr)
    print("stored: " + json.dumps([e["json"] for e in events]), file=sys.stderr)
    sys.exit(1)
PY
}

# last_event_id URL: the id of the newest stored event (0 when none).
last_event_id() {
    python3 - "$1" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"{sys.argv[1]}/api/events?limit=10000") as r:
    print(max((e["id"] for e in json.load(r)["events"]), default=0))
PY
}

# Packages first, as the other package tests do, unless the caller just built them
# (TRAILHOUND_PACKAGE_BUILT=1, scripts/test-packages.sh): stale .crate files would test old code.
if [ "${TRAILHOUND_PACKAGE_BUILT:-0}" != 1 ] || ! compgen -G "$PKG/*.crate" >/dev/null; then
    step "build the packages (scripts/package-rust.sh)"
    if ! bash "$ROOT/scripts/package-rust.sh"; then
        fail "scripts/package-rust.sh"
        echo "summary: $PASSED passed, $FAILED failed, $SKIPPED skipped"
        exit 1
    fi
fi

step "the collector (cargo build -p trailhound-cli)"
cargo build -p trailhound-cli
start_collector "$TARGET_DIR/debug/trailhound" "$WORK/collect.log"
echo "collector: $COLLECTOR"

step "(a) a new project on the packaged crates"
# Fixed, outside the repository (so that no workspace above it is seen), per user.
CRATES="${TMPDIR:-/tmp}/trailhound-rust-crates-$(id -u)"
mkdir -p "$CRATES"
for crate in "$PKG"/*.crate; do
    name="$(basename "$crate" .crate)"
    sum="$(sha256sum "$crate" | cut -d' ' -f1)"
    if [ "$(cat "$CRATES/$name.sha256" 2>/dev/null)" != "$sum" ]; then
        rm -rf "${CRATES:?}/$name"
        # -m: files dated now, not the archive's fixed date, so cargo sees the change.
        tar -xzmf "$crate" -C "$CRATES"
        echo "$sum" >"$CRATES/$name.sha256"
        echo "unpacked $name"
    fi
done

APP="$WORK/app"
mkdir -p "$APP/src/bin"
cat >"$APP/Cargo.toml" <<EOF
[package]
name = "trailhound-quickstart"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
trailhound = { path = "$CRATES/trailhound-$VERSION" }
serde_json = "1"

# Not on crates.io yet: the packaged one, as the registry will serve it.
[patch.crates-io]
trailhound-core = { path = "$CRATES/trailhound-core-$VERSION" }

[workspace]
EOF
# The package's lockfile: the dependency versions the crates were verified with (already in
# the registry cache).
cp "$CRATES/trailhound-$VERSION/Cargo.lock" "$APP/Cargo.lock"

# Every ```rust block of the README's Rust quickstart, the trailhound crate's README and the
# getting-started page, as
# a binary: the example endpoints point at the collector, the data directories into $WORK,
# rustdoc's hidden lines (`# `) shown. Writes "name run|compile" lines: run unless no_run.
python3 - "$ROOT" "$APP/src/bin" "$COLLECTOR" "$WORK" >"$WORK/snippets" <<'PY'
import pathlib, re, sys
root, out, collector, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]

def blocks(text):
    return re.findall(r"^```(rust[^\n]*)\n(.*?)^```", text, re.S | re.M)

readme = (root / "README.md").read_text()
quick = readme.split("## Quickstart (Rust)", 1)[1].split("\n## ", 1)[0]
# The quickstarts are no_run for rustdoc (their endpoint is an example), run here all the
# same: the README's, and the one on the crate's own page (its packaged README.md).
sources = [("readme_quickstart", [("rust", code) for _, code in blocks(quick)[:1]])]
crate_readme = (root / "core/trailhound/README.md").read_text()
sources.append(("crate_readme", [("rust", code) for _, code in blocks(crate_readme)]))
sources.append(("getting_started", blocks((root / "docs/getting-started/rust.md").read_text())))
for prefix, found in sources:
    assert found, f"no rust block for {prefix}"
    for i, (info, code) in enumerate(found):
        name = prefix if len(found) == 1 else f"{prefix}_{i + 1}"
        code = re.sub(r"^#(?: |$)", "", code, flags=re.M)
        for endpoint in ("https://collector.example.com", "http://127.0.0.1:8787"):
            code = code.replace(f'"{endpoint}"', f'"{collector}"')
        for data in ("/var/lib/myapp/trailhound", "./trailhound-data"):
            code = code.replace(f'"{data}"', f'"{work}/data-{name}"')
        (out / f"{name}.rs").write_text(code)
        print(name, "compile" if "no_run" in info else "run")
PY
cat "$WORK/snippets"

if (cd "$APP" && CARGO_TARGET_DIR="$TEST_TARGET" cargo build --bins); then
    pass "a new project builds on the packaged crates (README quickstart and getting-started snippets)"
    BUILT=1
else
    fail "a new project builds on the packaged crates"
    BUILT=0
fi

# What each run must deliver: the events its code tracks.
expected_for() {
    case "$1" in
    readme_quickstart)
        echo '[{"type": "identify", "userId": "user-42", "props": {"plan": "family"}},
               {"type": "screen", "name": "Player", "userId": "user-42"},
               {"type": "track", "name": "Song Played", "userId": "user-42",
                "props": {"title": "Nachtmusik", "seconds": 215}}]' ;;
    crate_readme)
        echo '[{"type": "identify", "userId": "user-42", "props": {"plan": "family"}},
               {"type": "track", "name": "Song Played", "userId": "user-42",
                "props": {"title": "Nachtmusik", "seconds": 215}}]' ;;
    getting_started_1)
        echo '[{"type": "identify", "userId": "user-42", "props": {"plan": "family"}},
               {"type": "screen", "name": "Library", "userId": "user-42", "props": {"tab": "playlists"}},
               {"type": "track", "name": "Playlist Created", "userId": "user-42",
                "props": {"name": "Road trip", "songs": 12}}]' ;;
    *) echo "" ;;
    esac
}

while read -r name mode; do
    [ "$mode" = run ] || continue
    want="$(expected_for "$name")"
    if [ -z "$want" ] || [ "$BUILT" != 1 ]; then
        fail "$name: ran (no expectations for it, or the project did not build)"
        continue
    fi
    after="$(last_event_id "$COLLECTOR")"
    if timeout 60 "$TEST_TARGET/debug/$name" >"$WORK/$name.log" 2>&1; then
        pass "$name: ran and exited 0"
    else
        fail "$name: exited non-zero"
        cat "$WORK/$name.log"
    fi
    if expect_events "$COLLECTOR" "$after" "$want"; then
        pass "$name: its events arrived at trailhound collect (names and properties)"
    else
        fail "$name: its events did not arrive at trailhound collect"
    fi
done <"$WORK/snippets"

step "(b) cargo install --path cli --debug"
# The workspace's target dir: the install reuses `cargo build -p trailhound-cli` above.
if CARGO_TARGET_DIR="$TARGET_DIR" cargo install --path "$ROOT/cli" --debug --locked \
    --root "$WORK/install" >"$WORK/install.log" 2>&1; then
    pass "cargo install --path cli --debug --locked"
else
    fail "cargo install --path cli --debug --locked"
    tail -n 20 "$WORK/install.log"
fi
BIN="$WORK/install/bin/trailhound"
if [ -x "$BIN" ] && "$BIN" --help | grep -q '^  collect'; then
    pass "installed trailhound --help lists collect"
else
    fail "installed trailhound --help"
fi
if [ -x "$BIN" ] && [ "$("$BIN" --version)" = "trailhound $VERSION" ]; then
    pass "installed trailhound --version is $VERSION"
else
    fail "installed trailhound --version is $VERSION"
fi
if [ -x "$BIN" ] && start_collector "$BIN" "$WORK/installed-collect.log"; then
    # A batch as any Segment library sends it: Basic auth with the write key.
    if python3 - "$COLLECTOR" <<'PY'; then
import base64, json, sys, urllib.request
body = {"batch": [{"type": "track", "event": "Installed Check", "anonymousId": "anon-1",
                   "messageId": "install-check-1", "timestamp": "2026-12-03T10:00:00.000Z",
                   "properties": {"from": "cargo install", "n": 3}}]}
req = urllib.request.Request(f"{sys.argv[1]}/v1/batch", data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json",
             "Authorization": "Basic " + base64.b64encode(b"WRITE_KEY:").decode()})
with urllib.request.urlopen(req) as r:
    assert r.status == 200, r.status
PY
        pass "installed trailhound collect accepts a batch"
    else
        fail "installed trailhound collect accepts a batch"
    fi
    if expect_events "$COLLECTOR" 0 \
        '[{"type": "track", "name": "Installed Check", "props": {"from": "cargo install", "n": 3}}]'; then
        pass "installed trailhound collect serves the event at /api/events"
    else
        fail "installed trailhound collect serves the event at /api/events"
    fi
else
    fail "installed trailhound collect starts"
fi

step "done in $((SECONDS - START)) s"
echo "summary: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
