//! UniFFI bindings (work in progress).
