#!/usr/bin/env bash
# Builds TrailhoundFFI.xcframework and the generated Swift for Package.swift.
# NOT RUN ON THE PROJECT'S MACHINES: it needs macOS with Xcode and the Apple Rust targets:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin
# Run from anywhere; writes into bindings/swift/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
PROFILE=release-ffi
# Apps bring URLSession as the HttpTransport, so the built-in ureq transport is left out.
FEATURES="--no-default-features"
OUT="$ROOT/target/swift"
rm -rf "$OUT" "$HERE/TrailhoundFFI.xcframework"
mkdir -p "$OUT/headers" "$HERE/Sources/TrailhoundFFI"

# The size settings of bindings/size-flags.sh, each with its reason (measured in the
# README's size section): the SQLite options and C without unwind tables. The staticlib
# crate type given below is also what lets the profile's LTO apply. The link-time
# settings (RELR) are ELF-only and belong to the app's link, not to a static library.
# shellcheck source=../size-flags.sh
. "$ROOT/bindings/size-flags.sh"
TRIPLES=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin)
for t in "${TRIPLES[@]}"; do trailhound_size_env "$t"; done
for t in "${TRIPLES[@]}"; do
    # The staticlib is asked for here only (see bindings/Cargo.toml).
    cargo rustc -p trailhound-ffi --lib --profile "$PROFILE" --target "$t" $FEATURES --crate-type staticlib
done

# The host build for generation keeps the default SQLite: same flags as target/debug.
for t in "${TRIPLES[@]}"; do trailhound_size_env_clear "$t"; done
# Generate from a host build that keeps its metadata (library mode reads it).
cargo build -p trailhound-ffi --features bindgen
cargo run -p trailhound-ffi --features bindgen --bin uniffi-bindgen -- generate \
    --library "target/debug/libtrailhound_ffi.dylib" --language swift --out-dir "$OUT/gen"
cp "$OUT/gen/TrailhoundFFI.swift" "$HERE/Sources/TrailhoundFFI/"
cp "$OUT/gen/trailhound_ffiFFI.h" "$OUT/headers/"
# Xcode looks for module.modulemap in the headers dir.
cp "$OUT/gen/trailhound_ffiFFI.modulemap" "$OUT/headers/module.modulemap"

# One fat simulator library (arm64 + x86_64), as xcframeworks want one per platform.
mkdir -p "$OUT/ios-sim"
lipo -create \
    "target/aarch64-apple-ios-sim/$PROFILE/libtrailhound_ffi.a" \
    "target/x86_64-apple-ios/$PROFILE/libtrailhound_ffi.a" \
    -output "$OUT/ios-sim/libtrailhound_ffi.a"

xcodebuild -create-xcframework \
    -library "target/aarch64-apple-ios/$PROFILE/libtrailhound_ffi.a" -headers "$OUT/headers" \
    -library "$OUT/ios-sim/libtrailhound_ffi.a" -headers "$OUT/headers" \
    -library "target/aarch64-apple-darwin/$PROFILE/libtrailhound_ffi.a" -headers "$OUT/headers" \
    -output "$HERE/TrailhoundFFI.xcframework"
echo "built $HERE/TrailhoundFFI.xcframework"
