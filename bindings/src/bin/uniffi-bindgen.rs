//! The pinned UniFFI generator: `cargo run -p trailhound-ffi --features bindgen --bin
//! uniffi-bindgen -- generate --library <libtrailhound_ffi.so> --language kotlin ...`.
fn main() {
    uniffi::uniffi_bindgen_main()
}
