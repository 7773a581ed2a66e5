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

# Sums `nm --size-sort -C` output (size, type, name) by crate: the first path segment,
# with the C parts (SQLite, ring's assembly) named by their prefixes.
BY_CRATE='
import collections, re, sys
tot = collections.Counter()
for line in sys.stdin:
    parts = line.split(None, 2)
    if len(parts) < 3:
        continue
    size, name = int(parts[0]), parts[2].strip()
    if name.startswith("sqlite"):
        k = "sqlite (C)"
    elif name.startswith("ring_core") or "nistz" in name:
        k = "ring (C/asm)"
    else:
        m = re.match(r"[<&*( ]*(?:dyn |impl )?([A-Za-z_][A-Za-z0-9_]*)::", name)
        k = m.group(1) if m else "(unattributed)"
    tot[k] += size
for k, v in tot.most_common(int(sys.argv[1])):
    print(f"    {k:<20} {v:>9} bytes")
total = sum(tot.values())
print(f"    all symbols          {total:>9} bytes")
'

measure() {
    local name="$1" slug="$2"; shift 2
    local dir="$OUT/$slug"
    cargo build -p trailhound-ffi --profile release-ffi --lib --target-dir "$dir" "$@" >&2
    local lib="$dir/release-ffi/libtrailhound_ffi.so"
    cp "$lib" "$dir/unstripped.so"
    strip --strip-all -o "$dir/stripped.so" "$lib"
    local bytes
    bytes=$(stat -c %s "$dir/stripped.so")
    printf '%-30s %9d bytes  %6.2f MiB  (unstripped %d bytes)\n' \
        "$name" "$bytes" "$(awk "BEGIN { print $bytes / 1048576 }")" "$(stat -c %s "$dir/unstripped.so")"
    {
        echo "where the bytes are ($name): ELF sections, then symbol bytes by crate"
        size -A -d "$dir/stripped.so" | awk 'NR > 2 && $2 > 50000 { printf "    %-20s %9d bytes\n", $1, $2 }'
        nm --size-sort --radix=d -C "$dir/unstripped.so" | python3 -c "$BY_CRATE" "$TOP"
    } > "$dir/breakdown.txt"
}

# SQLite as rusqlite's "bundled" feature compiles it carries full-text search, R-trees
# and other extensions the queue never uses. The lean variant leaves them out (JSON stays:
# a store migration uses json_extract). This is a build-time setting of the shipped
# library only; the tests run with rusqlite's defaults.
LEAN_SQLITE="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5 \
-USQLITE_ENABLE_RTREE -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_STAT4 -USQLITE_SOUNDEX \
-USQLITE_ENABLE_COLUMN_METADATA"

echo "libtrailhound_ffi.so, $(uname -m), profile release-ffi, strip --strip-all"
echo "rustc: $(rustc --version)"
measure "with reqwest" with-reqwest
measure "without reqwest" without-reqwest --no-default-features
export LIBSQLITE3_FLAGS="$LEAN_SQLITE"
measure "with reqwest, lean SQLite" with-reqwest-lean
measure "without reqwest, lean SQLite" without-reqwest-lean --no-default-features
unset LIBSQLITE3_FLAGS
echo "targets: <= 3 MiB with reqwest, <= 1.5 MiB without"
for f in "$OUT"/with-reqwest/breakdown.txt "$OUT"/without-reqwest-lean/breakdown.txt; do
    echo
    cat "$f"
done
