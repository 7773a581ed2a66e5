//! The generated module alone: `cargo check --lib` proves it compiles whatever the app does.
pub mod music_app_tracker;
