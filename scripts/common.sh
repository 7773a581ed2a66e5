# Shared by the test and size scripts (sourced, not run): the toolchain on PATH, root and
# apt helpers, the check for Debian's wasm32 toolchain, and counting test results.
# One copy, so that the scripts cannot disagree on what "installed" means.

# rustup's cargo first. Debian's /usr/bin/cargo (1.96) is only for wasm32 builds, called
# by its full path with its own target dir: mixing the two compilers' artifacts in one
# target dir fails with E0514.
if [ -d "${CARGO_HOME:-$HOME/.cargo}/bin" ]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
fi

step() {
    echo
    echo "==> $*"
}

# version_ge A B: true if version A >= version B
version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root to run: $*" >&2
        return 1
    fi
}

# apt_install PKG...: one `apt-get update` per script run, then the install.
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

# Debian's toolchain for wasm32 (see shared/TOOLCHAIN.md): rustc-web (/usr/bin/rustc,
# rustdoc), cargo-web (/usr/bin/cargo), rust-web-src (std source for -Zbuild-std),
# rust-web-llvm (/usr/bin/rust-lld, a symlink to lld-22; only a Recommends of rustc-web,
# so listed explicitly), lld-22, rust-web-clippy (rustup's clippy 1.95 cannot read the
# std that Debian's 1.96 builds).
WASM_RUST_MIN=1.96
WASM_RUST_PACKAGES=(rustc-web rust-web-src cargo-web rust-web-llvm lld-22 rust-web-clippy)
debian_rust_ready() {
    local v
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/rustdoc ] && [ -x /usr/bin/cargo ] || return 1
    [ -e /usr/bin/rust-lld ] || return 1 # -e follows the symlink: fails if lld-22 is missing
    v="$(/usr/bin/rustc --version 2>/dev/null | awk '{print $2}')" || return 1
    version_ge "${v:-0}" "$WASM_RUST_MIN" || return 1
    v="$(/usr/bin/cargo --version 2>/dev/null | awk '{print $2}')" || return 1
    version_ge "${v:-0}" "$WASM_RUST_MIN" || return 1
    [ -f "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock" ] || return 1
    [ -x /usr/bin/clippy-driver ] && [ -x /usr/bin/cargo-clippy ] || return 1
}

# cargo_test_counts LOG: prints "passed failed ignored" summed over the
# "test result: ok. 3 passed; 0 failed; 1 ignored; ..." lines of a cargo test log.
cargo_test_counts() {
    awk '/^test result:/ {
        for (k = 1; k <= NF; k++) {
            if ($(k+1) ~ /^passed/)  p += $k
            if ($(k+1) ~ /^failed/)  f += $k
            if ($(k+1) ~ /^ignored/) i += $k
        }
    } END { print p+0, f+0, i+0 }' "$1"
}

# summary_counts LOG: prints "passed failed skipped" from the last
# "summary: N passed, N failed, N skipped" line of a suite script's log (0 0 0 without one).
summary_counts() {
    awk '/^summary: / { p=$2; f=$4; k=$6 } END { print p+0, f+0, k+0 }' "$1"
}

# Counted checks, for the suites that run their own (codegen, the packages): `pass` and
# `fail` print a line and count it in PASSED/FAILED; `finish NAME` prints NAME's time since
# START and the summary line, and returns non-zero if a check failed.
pass() {
    echo "ok: $1"
    PASSED=$((${PASSED:-0} + 1))
}
fail() {
    echo "FAILED: $1" >&2
    FAILED=$((${FAILED:-0} + 1))
}
finish() {
    echo
    echo "$1: $((SECONDS - ${START:-0})) s"
    echo "summary: ${PASSED:-0} passed, ${FAILED:-0} failed, 0 skipped"
    [ "${FAILED:-0}" = 0 ]
}

# package_first PART: scripts/package-PART.sh, unless the caller has just run it
# (TRAILHOUND_PACKAGE_BUILT=1, as scripts/test-packages.sh does).
package_first() {
    if [ "${TRAILHOUND_PACKAGE_BUILT:-0}" != 1 ]; then
        step "build the package (scripts/package-$1.sh)"
        bash "$ROOT/scripts/package-$1.sh"
    fi
}

# the_artifact VAR DIR PATTERN: sets VAR to the one file in DIR that matches PATTERN; with
# none or several, a failed check and a non-zero return.
the_artifact() {
    local -n the_artifact_out="$1"
    local found
    shopt -s nullglob
    found=("$2"/$3)
    shopt -u nullglob
    if [ "${#found[@]}" != 1 ]; then
        echo "error: expected one $3 in $2, found ${#found[@]}" >&2
        fail "$3 built"
        return 1
    fi
    the_artifact_out="${found[0]}"
}

# start_collector BIN LOG [ARG...]: starts `BIN collect` on a free loopback port, in memory
# (ARGs added, e.g. --write-key K), and sets COLLECTOR to its URL; its pid goes in
# COLLECTOR_PIDS for stop_collectors. Returns non-zero, with its log, if it did not start.
COLLECTOR_PIDS=()
start_collector() {
    local bin="$1" log="$2" i
    shift 2
    "$bin" collect --listen 127.0.0.1:0 --memory --quiet "$@" >"$log" 2>&1 &
    COLLECTOR_PIDS+=("$!")
    COLLECTOR=""
    for i in $(seq 1 100); do
        COLLECTOR="$(sed -n 's/^trailhound collect: listening on \(http[^ ]*\).*/\1/p' "$log" | head -n1)"
        [ -n "$COLLECTOR" ] && return 0
        sleep 0.1
    done
    echo "error: $bin collect did not start:" >&2
    cat "$log" >&2
    return 1
}
stop_collectors() {
    local pid
    for pid in "${COLLECTOR_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
