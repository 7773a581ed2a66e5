#!/usr/bin/env bash
# Measures the shipped size of libtrailhound_ffi.so (x86_64 here): the release-ffi profile
# (LTO, opt-level "z", one codegen unit), stripped, with the built-in reqwest transport
# and without it (the app then supplies an HttpTransport: OkHttp, URLSession).
# Slow (two LTO builds, several minutes on 2 cores), so not part of test-bindings.sh.
# Prints the sizes and, for each build, the largest symbols of the unstripped library.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -d "${CARGO_HOME:-$HOME/.cargo}/bin" ]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
fi

# A target dir of its own: LTO artifacts would otherwise evict the shared debug ones.
OUT="$ROOT/target/ffi-size"
TOP="${TOP:-15}"

measure() {
    local name="$1" slug="$2"; shift 2
    local dir="$OUT/$slug"
    cargo build -p trailhound-ffi --profile release-ffi --lib --target-dir "$dir" "$@" >&2
    local lib="$dir/release-ffi/libtrailhound_ffi.so"
    cp "$lib" "$dir/unstripped.so"
    strip --strip-all -o "$dir/stripped.so" "$lib"
    local bytes
    bytes=$(stat -c %s "$dir/stripped.so")
    printf '%-28s %9d bytes  %6.2f MiB  (unstripped %d bytes)\n' \
        "$name" "$bytes" "$(awk "BEGIN { print $bytes / 1048576 }")" "$(stat -c %s "$dir/unstripped.so")"
    {
        echo "largest symbols ($name):"
        nm --size-sort --radix=d -C "$dir/unstripped.so" | tail -n "$TOP" | sed 's/^/    /'
    } > "$dir/top-symbols.txt"
}

echo "libtrailhound_ffi.so, $(uname -m), profile release-ffi, strip --strip-all"
echo "rustc: $(rustc --version)"
measure "with reqwest (default)" with-reqwest
measure "without reqwest" without-reqwest --no-default-features
echo "targets: <= 3 MiB with reqwest, <= 1.5 MiB without"
for f in "$OUT"/*/top-symbols.txt; do
    echo
    cat "$f"
done
