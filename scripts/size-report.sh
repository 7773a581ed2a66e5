#!/usr/bin/env bash
# Measures the shipped size of libtrailhound_ffi.so (x86_64 here): the release-ffi profile
# (LTO, opt-level "z", one codegen unit) with the settings of bindings/size-flags.sh
# (cdylib-only build so that LTO applies, lean SQLite, C without unwind tables), stripped,
# with the built-in ureq transport and without it (the app then supplies an
# HttpTransport: OkHttp, URLSession), each also with packed relative relocations (RELR).
# Slow (LTO builds, several minutes on 2 cores), so not part of test-bindings.sh.
# Prints the sizes and, for each build, the largest symbols of the unstripped library.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

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

# measure NAME SLUG [cargo args...] [-- rustc args for the final crate]
measure() {
    local name="$1" slug="$2"; shift 2
    local cargo_args=() rustc_args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do cargo_args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    rustc_args=("$@")
    # One target dir per feature set; the RELR variant only relinks the final crate.
    local dir="$OUT/${slug%-relr}"
    cargo rustc -p trailhound-ffi "${TRAILHOUND_FFI_CDYLIB[@]}" --target-dir "$dir" \
        "${cargo_args[@]}" -- "${rustc_args[@]}" >&2
    local lib="$dir/release-ffi/libtrailhound_ffi.so"
    cp "$lib" "$dir/$slug.unstripped.so"
    strip --strip-all -o "$dir/$slug.stripped.so" "$lib"
    local bytes
    bytes=$(stat -c %s "$dir/$slug.stripped.so")
    printf '%-34s %9d bytes  %6.2f MiB  (unstripped %d bytes)\n' \
        "$name" "$bytes" "$(awk "BEGIN { print $bytes / 1048576 }")" "$(stat -c %s "$dir/$slug.unstripped.so")"
    {
        echo "where the bytes are ($name): ELF sections, then symbol bytes by crate"
        size -A -d "$dir/$slug.stripped.so" | awk 'NR > 2 && $2 > 50000 { printf "    %-20s %9d bytes\n", $1, $2 }'
        nm --size-sort --radix=d -C "$dir/$slug.unstripped.so" | python3 -c "$BY_CRATE" "$TOP"
    } > "$dir/$slug.breakdown.txt"
}

# The shipped settings: bindings/size-flags.sh (LTO through --crate-type cdylib, SQLite
# options, C without unwind tables, RELR), each with its reason.
# shellcheck source=../bindings/size-flags.sh
. "$ROOT/bindings/size-flags.sh"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
trailhound_size_env "$HOST"

echo "libtrailhound_ffi.so, $(uname -m), profile release-ffi, bindings/size-flags.sh, strip --strip-all"
echo "rustc: $(rustc --version)"
measure "without ureq" without-ureq --no-default-features
measure "without ureq, RELR" without-ureq-relr --no-default-features -- "${TRAILHOUND_LINUX_RELR[@]}"
measure "with ureq" with-ureq
measure "with ureq, RELR" with-ureq-relr -- "${TRAILHOUND_LINUX_RELR[@]}"
trailhound_size_env_clear "$HOST"
echo "targets: <= 3 MB (3 000 000 bytes) with the built-in transport, <= 1.5 MB (1 500 000 bytes) without"
for f in "$OUT"/without-ureq/without-ureq.breakdown.txt "$OUT"/with-ureq/with-ureq.breakdown.txt; do
    echo
    cat "$f"
done
