# Build settings of the shipped trailhound-ffi library, in one place with their reasons.
# Sourced (not run) by scripts/size-report.sh, scripts/package-{python,jvm}.sh,
# bindings/kotlin/android/build-aar.sh and bindings/swift/build-xcframework.sh. Each
# setting was measured on its own; the numbers are in bindings/README.md, section "Size".
#
# Only the shipped release-ffi builds use these. The host builds (target/debug, the
# bindings generation, the tests) keep rusqlite's defaults.

# 1. LTO needs `--crate-type`. bindings/Cargo.toml declares crate-type = ["cdylib", "lib"]
#    ("lib" for the crate's Rust tests and the bindgen binary), and cargo does not apply
#    the profile's `lto = true` to a crate that also builds an rlib: a plain
#    `cargo build --profile release-ffi` links the dependencies without LTO. Building
#    through `cargo rustc --crate-type cdylib` (or `staticlib` for iOS) makes it the only
#    crate type, and cargo then runs fat LTO. The biggest single saving.
TRAILHOUND_FFI_CDYLIB=(--lib --profile release-ffi --crate-type cdylib)

# 2. SQLite compile-time options, passed as rusqlite's LIBSQLITE3_FLAGS. rusqlite's
#    "bundled" build enables extensions the queue never uses (undefined here), and
#    SQLITE_OMIT_* drop API and SQL the store does not use. JSON stays: a store migration
#    uses json_extract. Tried and NOT used: SQLITE_OMIT_WINDOWFUNC (the amalgamation does
#    not compile with it), SQLITE_OMIT_EXPLAIN (store test hot_queries_use_indexes runs
#    EXPLAIN QUERY PLAN), SQLITE_OMIT_CTE/TRIGGER/VIEW/VIRTUALTABLE/ATTACH/ANALYZE/
#    REINDEX/VACUUM (the amalgamation's pre-generated parser still calls the omitted
#    functions: undefined symbols). Left out on purpose, though they build: options that
#    silently change behaviour (FOREIGN_KEY, AUTOINCREMENT, AUTOVACUUM, INTEGRITY_CHECK,
#    SCHEMA_PRAGMAS: the SQL still parses but does less) and the query-optimisation
#    omissions (AUTOMATIC_INDEX, OR/LIKE/BETWEEN_OPTIMIZATION, XFER_OPT, QUICKBALANCE,
#    TRUNCATE_OPTIMIZATION). What a future store change must not use with these flags:
#    load_extension, shared cache, progress/authorizer/trace callbacks, the UTF-16 API,
#    sqlite3_complete/get_table, column decltype, incremental blob I/O,
#    sqlite3_serialize/deserialize, the introspection and compile-option pragmas, date and
#    time functions, generated columns, UNION/INTERSECT/EXCEPT, blob (x'..') and hex
#    (0x..) literals, double-quoted string literals (SQLITE_DQS=0: "x" is an identifier).
#    Checked with these flags (and TRAILHOUND_C_FLAGS):
#    cargo test --no-fail-fast -p trailhound -p trailhound-ffi -p trailhound-tests
#    (store conformance, migrations, corruption, crash tests) passes, 52 tests.
TRAILHOUND_SQLITE_FLAGS="\
-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5 \
-USQLITE_ENABLE_RTREE -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_STAT4 -USQLITE_SOUNDEX \
-USQLITE_ENABLE_COLUMN_METADATA -USQLITE_ENABLE_LOAD_EXTENSION \
-DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_SHARED_CACHE \
-DSQLITE_OMIT_PROGRESS_CALLBACK -DSQLITE_OMIT_AUTHORIZATION -DSQLITE_OMIT_COMPLETE \
-DSQLITE_OMIT_GET_TABLE -DSQLITE_OMIT_TCL_VARIABLE -DSQLITE_OMIT_UTF16 \
-DSQLITE_OMIT_INTROSPECTION_PRAGMAS -DSQLITE_OMIT_COMPILEOPTION_DIAGS \
-DSQLITE_OMIT_DECLTYPE -DSQLITE_OMIT_INCRBLOB -DSQLITE_OMIT_TRACE \
-DSQLITE_OMIT_DESERIALIZE -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_MAX_EXPR_DEPTH=0 \
-DSQLITE_DQS=0 -DSQLITE_LIKE_DOESNT_MATCH_BLOBS -DSQLITE_UNTESTABLE \
-DSQLITE_OMIT_DATETIME_FUNCS -DSQLITE_OMIT_LOCALTIME -DSQLITE_OMIT_GENERATED_COLUMNS \
-DSQLITE_OMIT_COMPOUND_SELECT -DSQLITE_OMIT_BLOB_LITERAL -DSQLITE_OMIT_HEX_INTEGER"

# 3. C code (SQLite; ring's C with the ureq transport) without unwind tables: about
#    100 KB of .eh_frame for SQLite alone. Nothing unwinds through C frames here: Rust's
#    extern "C" callbacks abort rather than unwind, and rusqlite catches panics in its
#    callbacks. What is lost: debuggers, profilers and crash reporters cannot walk the
#    stack through a SQLite frame. Given to cc-rs as CFLAGS_<target triple>, so it
#    reaches only the C built for that target (not build scripts, not the host build).
TRAILHOUND_C_FLAGS="-fno-asynchronous-unwind-tables -fno-unwind-tables"

# 4. Packed relative relocations (ELF): most of .rela.dyn is relative relocations of
#    vtables and other pointers in read-only data; packed they take a few KB instead of
#    about 110 KB. Linker arguments, so they go to the final crate only
#    (`cargo rustc ... -- -C link-arg=...`) and cause no rebuild of the dependencies.
#    - Linux: DT_RELR needs glibc >= 2.36 to load (lld then marks the library with
#      GLIBC_ABI_DT_RELR, so an older glibc refuses it instead of crashing). Off by
#      default: the Linux/Python library must load on older distributions.
#      scripts/size-report.sh measures it separately.
#    - Android: the NDK's lld packs them in Android's own format, which the loader reads
#      from API 23; the AAR targets API 24.
TRAILHOUND_LINUX_RELR=(-C link-arg=-Wl,-z,pack-relative-relocs)
TRAILHOUND_ANDROID_RELOCS=(-C link-arg=-Wl,--pack-dyn-relocs=android)

# Exports the settings of items 2 and 3 for one target triple.
trailhound_size_env() {
    local triple="$1"
    export LIBSQLITE3_FLAGS="$TRAILHOUND_SQLITE_FLAGS"
    export "CFLAGS_${triple//-/_}=$TRAILHOUND_C_FLAGS"
}

# The same settings as cargo `--config env.*` arguments, into the array
# TRAILHOUND_SIZE_CONFIG, for the host's triple: they reach only the cargo command that
# takes them, not a `cargo run` it starts (maturin's bindgen) nor the environment of later
# builds. scripts/package-python.sh and scripts/package-jvm.sh build the same library with
# them, so the second one finds it built.
trailhound_size_config() {
    local triple
    triple="$(rustc -vV | sed -n 's/^host: //p')"
    TRAILHOUND_SIZE_CONFIG=(
        --config "env.LIBSQLITE3_FLAGS=\"$TRAILHOUND_SQLITE_FLAGS\""
        --config "env.CFLAGS_${triple//-/_}=\"$TRAILHOUND_C_FLAGS\""
    )
}

# Undoes trailhound_size_env (before a host build that must keep the defaults).
trailhound_size_env_clear() {
    local triple="$1"
    unset LIBSQLITE3_FLAGS "CFLAGS_${triple//-/_}"
}
