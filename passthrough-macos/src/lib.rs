//! `passthrough-macos`: see the repository's `ARCHITECTURE.md`. This crate is being built.
#![cfg(target_os = "macos")]
