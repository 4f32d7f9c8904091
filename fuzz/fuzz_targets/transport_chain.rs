//! Arbitrary descriptor chains in mock guest memory through the transport's chain walk,
//! reader and writer. The input format is documented in `virtiofs_transport::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| virtiofs_transport::fuzzing::fuzz_chain(data));
