#!/usr/bin/env bash
# Builds the `trailhound` Python wheel and its API reference:
#   target/package/python/trailhound-<version>-py3-none-<platform>.whl
#   target/package/python/doc/            (pdoc HTML of the `trailhound` package)
#
# maturin (bindings = "uniffi", bindings/python/pyproject.toml) builds libtrailhound_ffi in
# the release-ffi profile with the shipped library's settings (bindings/size-flags.sh),
# generates the Python module with this crate's own pinned uniffi-bindgen, and adds the
# wrapper package (bindings/python/trailhound) with its type hints. The library is then
# stripped inside the wheel (`wheel unpack`, strip, `wheel pack`, which rewrites RECORD):
# maturin's own strip would remove the UniFFI metadata that the generation reads.
#
# Tag: py3-none, because the module is pure Python loading the library with ctypes (no
# CPython extension, so no cp3x or abi3); the platform tag is the lowest manylinux whose
# glibc symbol versions the library fits, as maturin's auditwheel check computes it.
#
# Installs what is missing, idempotently: python3-venv (apt) and, in a venv under target/,
# maturin, wheel and pdoc at the versions pinned below.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"
# shellcheck source=../bindings/size-flags.sh
. "$ROOT/bindings/size-flags.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET_DIR/package/python"
VENV="$TARGET_DIR/package-tools/python-venv"
MATURIN_VERSION=1.16.0
WHEEL_VERSION=0.48.0
PDOC_VERSION=16.0.0
START=$SECONDS

step "install what is missing (venv with maturin $MATURIN_VERSION, wheel $WHEEL_VERSION, pdoc $PDOC_VERSION)"
if ! command -v strip >/dev/null; then
    apt_install binutils
fi
if [ ! -x "$VENV/bin/python" ]; then
    # A venv: Debian's python3 refuses plain pip installs (PEP 668), and the pins stay ours.
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; }
fi
if ! "$VENV/bin/python" - "$MATURIN_VERSION" "$WHEEL_VERSION" "$PDOC_VERSION" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
want = dict(zip(["maturin", "wheel", "pdoc"], sys.argv[1:]))
sys.exit(any(version(k) != v for k, v in want.items()))
PY
    "$VENV/bin/pip" install -q "maturin==$MATURIN_VERSION" "wheel==$WHEEL_VERSION" "pdoc==$PDOC_VERSION"
fi
echo "maturin $("$VENV/bin/maturin" --version | awk '{print $2}')"

step "the pinned uniffi-bindgen (maturin runs it with cargo run; built here so its output stays out of the wheel log)"
cargo build -q -p trailhound-ffi --features bindgen --bin uniffi-bindgen

step "maturin build (release-ffi, bindings/size-flags.sh)"
# The size settings reach only maturin's `cargo rustc` of the library, as cargo [env]
# config: exported variables would also reach maturin's `cargo run` of the debug bindgen
# and rebuild target/debug's SQLite with other flags than scripts/test-bindings.sh uses.
trailhound_size_config
STAGE="$OUT/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE"
# maturin reads pyproject.toml from the working directory; its manifest-path finds the crate.
(cd "$ROOT/bindings/python" && "$VENV/bin/maturin" build \
    --out "$STAGE/maturin" "${TRAILHOUND_SIZE_CONFIG[@]}")
shopt -s nullglob
built=("$STAGE"/maturin/trailhound-*.whl)
shopt -u nullglob
if [ "${#built[@]}" != 1 ]; then
    echo "error: expected one wheel from maturin, found ${#built[@]}" >&2
    exit 1
fi

step "strip the library inside the wheel"
"$VENV/bin/wheel" unpack --dest "$STAGE/unpacked" "${built[0]}" >/dev/null
lib=("$STAGE"/unpacked/*/trailhound_ffi/libtrailhound_ffi.so)
if [ ! -f "${lib[0]}" ]; then
    echo "error: no trailhound_ffi/libtrailhound_ffi.so in ${built[0]}" >&2
    exit 1
fi
before=$(stat -c %s "${lib[0]}")
# --strip-all keeps .dynsym, the exported functions that ctypes looks up.
strip --strip-all "${lib[0]}"
echo "libtrailhound_ffi.so: $before -> $(stat -c %s "${lib[0]}") bytes"
rm -f "$OUT"/trailhound-*.whl
"$VENV/bin/wheel" pack --dest-dir "$OUT" "$(dirname "$(dirname "${lib[0]}")")" >/dev/null
WHEEL=("$OUT"/trailhound-*.whl)

step "check the wheel's contents"
"$VENV/bin/python" - "${WHEEL[0]}" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = [
    "trailhound/__init__.py", "trailhound/py.typed",
    "trailhound_ffi/__init__.py", "trailhound_ffi/trailhound_ffi.py",
    "trailhound_ffi/libtrailhound_ffi.so", "trailhound_ffi/py.typed",
]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"missing from the wheel: {missing}")
stray = [n for n in names if "/tests/" in n or n.endswith(".pyc")]
if stray:
    sys.exit(f"not meant for the wheel: {stray}")
PY
"$VENV/bin/python" -c 'import sys, zipfile
for i in zipfile.ZipFile(sys.argv[1]).infolist(): print(f"    {i.file_size:>9}  {i.filename}")' "${WHEEL[0]}"

step "API reference (pdoc) into $OUT/doc"
# pdoc imports the package: the wheel just built, installed into the tools venv.
"$VENV/bin/pip" install -q --force-reinstall --no-deps "${WHEEL[0]}"
rm -rf "$OUT/doc"
"$VENV/bin/pdoc" --docformat markdown -o "$OUT/doc" trailhound >/dev/null
test -f "$OUT/doc/trailhound.html"

rm -rf "$STAGE"
echo
echo "wheel: ${WHEEL[0]#"$ROOT"/} ($(stat -c %s "${WHEEL[0]}") bytes)"
echo "docs:  ${OUT#"$ROOT"/}/doc/index.html"
echo "package-python: $((SECONDS - START)) s"
