#!/usr/bin/env bash
# The Rust packages, into target/package/rust/:
#   - trailhound-core, trailhound and trailhound-cli as .crate files, each verified by
#     building it from its own unpacked package (cargo resolves the unpublished
#     trailhound-core and trailhound from the packages it has just made);
#   - bin/trailhound: the release CLI binary, stripped;
#   - doc/: rustdoc for the three libraries (`#![deny(missing_docs)]` in each, checked here).
# Prints each .crate's size and the binary's. Needs only the Rust toolchain (and `strip`,
# installed from binutils if missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET_DIR/package/rust"
CRATES=(trailhound-core trailhound trailhound-cli)
CRATE_DIRS=(core/trailhound-core core/trailhound cli)
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
START=$SECONDS

if ! command -v strip >/dev/null; then
    apt_install binutils
fi

step "every library denies missing docs"
for dir in "${CRATE_DIRS[@]}"; do
    if ! grep -qx '#!\[deny(missing_docs)\]' "$dir/src/lib.rs"; then
        echo "error: $dir/src/lib.rs lacks #![deny(missing_docs)]" >&2
        exit 1
    fi
done

step "cargo package ${CRATES[*]} (verified: each built from its package)"
# A clean checkout (CI) packages as it is; a working tree with uncommitted changes in the
# crates is packaged with them, and .cargo_vcs_info.json says so ("dirty": true).
PACKAGE_FLAGS=()
if [ -n "$(git status --porcelain -- "${CRATE_DIRS[@]}" Cargo.toml Cargo.lock LICENSE 2>/dev/null)" ]; then
    echo "note: uncommitted changes in the crates: packaging with --allow-dirty"
    PACKAGE_FLAGS+=(--allow-dirty)
fi
P_ARGS=()
for c in "${CRATES[@]}"; do P_ARGS+=(-p "$c"); done
# cargo verifies trailhound-cli against the trailhound package it has just made, taken
# from a temporary registry, and treats registry crates as immutable: it reuses what it
# unpacked into ~/.cargo/registry/src/ and what it compiled from there earlier for the same
# name and version. After a change to trailhound, a second packaging on the same machine
# verified the CLI against the old library and failed. These versions are not published
# from here, so their unpacked copies go first, and the verification builds in a target
# dir of its own whose builds of our crates go too (third-party ones stay).
VERIFY_DIR="$TARGET_DIR/package-verify"
for c in "${CRATES[@]}"; do
    rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$c-$VERSION" \
        "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$c-$VERSION.crate"
done
rm -rf "$VERIFY_DIR"/debug/.fingerprint/trailhound* "$VERIFY_DIR"/debug/deps/*trailhound* \
    "$VERIFY_DIR"/debug/build/trailhound*
cargo package --target-dir "$VERIFY_DIR" "${P_ARGS[@]}" "${PACKAGE_FLAGS[@]}"

rm -rf "$OUT"
mkdir -p "$OUT/bin"
for c in "${CRATES[@]}"; do
    cp "$VERIFY_DIR/package/$c-$VERSION.crate" "$OUT/"
done

step "package contents: README.md and LICENSE, no file over 1 MiB, no build output"
# A test fixture of megabytes or a generated file that slipped past the exclude lists.
python3 - "$OUT" <<'PY'
import sys, tarfile, pathlib
bad = []
for crate in sorted(pathlib.Path(sys.argv[1]).glob("*.crate")):
    with tarfile.open(crate) as t:
        members = [m for m in t.getmembers() if m.isfile()]
    total = sum(m.size for m in members)
    print(f"{crate.name}: {crate.stat().st_size:,} B compressed, {len(members)} files, {total:,} B unpacked")
    names = {m.name.split("/", 1)[1] for m in members}
    for required in ("README.md", "LICENSE", "Cargo.toml", "Cargo.lock"):
        if required not in names:
            bad.append(f"{crate.name}: no {required}")
    for m in members:
        parts = m.name.split("/")
        if m.size > 1 << 20:
            bad.append(f"{m.name}: {m.size:,} B")
        if "target" in parts[1:] or "generated" in parts[1:] or m.name.endswith((".so", ".a", ".rlib", ".db")):
            bad.append(f"{m.name}: build output")
if bad:
    print("error: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY

step "release trailhound binary (stripped)"
# The README's release build (`cargo run --release -p trailhound-cli -- demo`), so the two
# share their artifacts; stripped as a copy.
cargo build --release -p trailhound-cli
cp "$TARGET_DIR/release/trailhound" "$OUT/bin/trailhound"
strip "$OUT/bin/trailhound"
"$OUT/bin/trailhound" --version
printf 'bin/trailhound: %s B stripped (%s B unstripped)\n' \
    "$(stat -c %s "$OUT/bin/trailhound")" "$(stat -c %s "$TARGET_DIR/release/trailhound")"

step "rustdoc for the three libraries"
# --lib: trailhound-cli's binary is also called `trailhound`, whose docs would collide with
# the library's. Warnings (a broken intra-doc link) fail the build.
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --no-deps --lib "${P_ARGS[@]}"
rm -rf "$OUT/doc"
cp -r "$TARGET_DIR/doc" "$OUT/doc"
for c in "${CRATES[@]}"; do
    test -f "$OUT/doc/${c//-/_}/index.html" || { echo "error: no rustdoc for $c" >&2; exit 1; }
done

step "done in $((SECONDS - START)) s: $OUT"
ls -l "$OUT" "$OUT/bin"
