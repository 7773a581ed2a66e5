//! wasm32 link probe for `trailhound-core`.
//!
//! Exports a single function so the linker keeps the referenced core code;
//! `scripts/wasm_imports.py` then checks the resulting module imports nothing
//! from `env`. Kept minimal on purpose: only `VERSION` and `wire::gzip`.

/// Gzips the core crate's version string and returns the compressed length.
#[no_mangle]
pub extern "C" fn trailhound_wasm_probe() -> usize {
    trailhound_core::wire::gzip(trailhound_core::VERSION.as_bytes()).len()
}
