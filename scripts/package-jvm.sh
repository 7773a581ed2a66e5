#!/usr/bin/env bash
# Builds the JVM artifact dev.trailhound:trailhound:<version> and installs it into the local
# Maven repository (~/.m2), with its API reference:
#   target/package/jvm/trailhound-<version>.jar, -sources.jar, .pom
#   target/package/jvm/doc/                (Dokka HTML)
#
# The jar holds the Kotlin wrapper (bindings/kotlin/src/main), the Kotlin that the crate's
# pinned uniffi-bindgen generates from the release library, and that library, stripped, as
# the JNA resource linux-x86-64/libtrailhound_ffi.so; its POM declares kotlin-stdlib and JNA.
# The library is the shipped build: release-ffi (LTO through --crate-type cdylib) with
# bindings/size-flags.sh, given to cargo as [env] config exactly as scripts/package-python.sh
# has maturin give it, so that the two scripts share one build. The Maven project is
# bindings/kotlin/package/pom.xml (the resource layout of other platforms is there).
#
# Installs what is missing, idempotently: JDK 17 and Maven (apt).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"
# shellcheck source=../bindings/size-flags.sh
. "$ROOT/bindings/size-flags.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET_DIR/package/jvm"
POM="$ROOT/bindings/kotlin/package/pom.xml"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n1)"
START=$SECONDS

step "install what is missing (JDK 17, Maven)"
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    apt_install openjdk-17-jdk-headless maven
fi
if ! command -v strip >/dev/null; then
    apt_install binutils
fi
POM_VERSION="$(sed -n '0,/<version>/s|.*<version>\(.*\)</version>.*|\1|p' "$POM")"
if [ "$POM_VERSION" != "$VERSION" ]; then
    echo "error: $POM has version $POM_VERSION, the workspace $VERSION" >&2
    exit 1
fi

step "build libtrailhound_ffi (release-ffi, bindings/size-flags.sh) and the pinned uniffi-bindgen"
trailhound_size_config
cargo rustc -p trailhound-ffi "${TRAILHOUND_FFI_CDYLIB[@]}" "${TRAILHOUND_SIZE_CONFIG[@]}"
cargo build -q -p trailhound-ffi --features bindgen --bin uniffi-bindgen
LIB="$TARGET_DIR/release-ffi/libtrailhound_ffi.so"

step "generate the Kotlin from the unstripped library, then strip it into the resources"
STAGE="$OUT/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE/native/linux-x86-64"
# Library mode reads the UNIFFI_META symbols: generate before stripping.
"$TARGET_DIR/debug/uniffi-bindgen" generate --library "$LIB" --language kotlin \
    --out-dir "$STAGE/kotlin" --no-format >/dev/null
# --strip-all keeps .dynsym, the exported functions that JNA looks up.
strip --strip-all -o "$STAGE/native/linux-x86-64/libtrailhound_ffi.so" "$LIB"
echo "libtrailhound_ffi.so: $(stat -c %s "$LIB") -> $(stat -c %s "$STAGE/native/linux-x86-64/libtrailhound_ffi.so") bytes"

step "mvn install (dev.trailhound:trailhound:$VERSION into ~/.m2) and Dokka"
T0=$SECONDS
mvn -B -q -f "$POM" \
    -Dtrailhound.generated.dir="$STAGE/kotlin" \
    -Dtrailhound.native.dir="$STAGE/native" \
    clean install
T1=$SECONDS
DOKKA_OK=1
mvn -B -q -f "$POM" \
    -Dtrailhound.generated.dir="$STAGE/kotlin" \
    -Dtrailhound.native.dir="$STAGE/native" \
    dokka:dokka >"$STAGE/dokka.log" 2>&1 || DOKKA_OK=0
echo "mvn install: $((T1 - T0)) s, Dokka: $((SECONDS - T1)) s"

BUILD="$ROOT/bindings/kotlin/package/target"
rm -f "$OUT"/trailhound-*.jar "$OUT"/trailhound-*.pom
cp "$BUILD/trailhound-$VERSION.jar" "$BUILD/trailhound-$VERSION-sources.jar" "$OUT/"
cp "$POM" "$OUT/trailhound-$VERSION.pom"
rm -rf "$OUT/doc"
if [ "$DOKKA_OK" = 1 ] && [ -f "$BUILD/dokka/index.html" ]; then
    cp -r "$BUILD/dokka" "$OUT/doc"
else
    echo "error: Dokka failed (log: $STAGE/dokka.log)" >&2
    tail -n 30 "$STAGE/dokka.log" >&2
    exit 1
fi

step "check the jar"
JAR="$OUT/trailhound-$VERSION.jar"
python3 - "$JAR" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["linux-x86-64/libtrailhound_ffi.so", "dev/trailhound/Trailhound.class",
        "dev/trailhound/TrailhoundConfig$Builder.class", "dev/trailhound/ffi/TrailhoundClient.class"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"error: not in {sys.argv[1]}: {missing}")
PY
INSTALLED="$HOME/.m2/repository/dev/trailhound/trailhound/$VERSION/trailhound-$VERSION.jar"
cmp "$JAR" "$INSTALLED"
rm -rf "$STAGE"

echo
echo "jar:  ${JAR#"$ROOT"/} ($(stat -c %s "$JAR") bytes), installed as dev.trailhound:trailhound:$VERSION"
echo "docs: ${OUT#"$ROOT"/}/doc/index.html"
echo "package-jvm: $((SECONDS - START)) s"
