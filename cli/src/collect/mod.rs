//! The local validating collector (work in progress).
