#!/usr/bin/env bash
# Packages the Android library (AAR). NOT RUN ON THE PROJECT'S MACHINES: it needs the
# Android NDK and SDK, Gradle, and the Android Rust targets:
#   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
#   cargo install cargo-ndk
# Output: bindings/kotlin/android/build/outputs/aar/*-release.aar
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
cd "$ROOT"

# 1. The shared library per ABI, in the jniLibs/<abi>/libtrailhound_ffi.so layout that
#    the Android plugin packs into the AAR's jni/ directory. The app supplies OkHttp as the
#    HttpTransport, so the built-in ureq transport is left out (about half the size).
#    The size settings are in bindings/size-flags.sh, each with its reason (measured in the
#    README's size section): `cargo rustc --crate-type cdylib` so that the profile's LTO
#    applies, the SQLite options, C without unwind tables, packed relocations.
# shellcheck source=../../size-flags.sh
. "$ROOT/bindings/size-flags.sh"
TRIPLES=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android)
for t in "${TRIPLES[@]}"; do trailhound_size_env "$t"; done
rm -rf "$HERE/jniLibs"
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 --platform 24 -o "$HERE/jniLibs" \
    rustc -p trailhound-ffi "${TRAILHOUND_FFI_CDYLIB[@]}" --no-default-features \
    -- "${TRAILHOUND_ANDROID_RELOCS[@]}"

# The host build for generation keeps the default SQLite: same flags as target/debug.
for t in "${TRIPLES[@]}"; do trailhound_size_env_clear "$t"; done
# 2. The Kotlin bindings, generated from an unstripped host build (library mode).
cargo build -p trailhound-ffi --features bindgen
rm -rf bindings/generated/kotlin
target/debug/uniffi-bindgen generate --library target/debug/libtrailhound_ffi.so \
    --language kotlin --out-dir bindings/generated/kotlin

# 3. The AAR.
cd "$HERE"
gradle assembleRelease
