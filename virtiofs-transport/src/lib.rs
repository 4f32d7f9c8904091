//! `virtiofs-transport`: see the repository's `ARCHITECTURE.md`. This crate is being built.
