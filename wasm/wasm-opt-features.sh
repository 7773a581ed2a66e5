# Sourced by wasm/build.sh and wasm/bench/named-pkg.sh: the features rustc enables by
# default for wasm32, which wasm-opt must be told to allow, or it refuses the module.
WASM_OPT_FEATURES=(
    --enable-bulk-memory --enable-sign-ext --enable-mutable-globals
    --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue
)
