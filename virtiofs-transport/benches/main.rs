//! Criterion benches of the transport's hot paths (`cargo xtask bench transport`).
//!
//! Cases:
//! - `chain/request_reply/{1,4,64}`: walk a chain, decode a 40-byte in header and 40 bytes of
//!   arguments from its readable part, write a 16-byte out header and a 104-byte reply into its
//!   writable part, and finish (used-length check); each part split over 1, 4 or 64
//!   descriptors.
//! - `read_128k/{preadv_into_guest,memcpy,pread_into_host}`: a 128 KiB READ from a page-cached
//!   file into guest memory laid out as Linux does (a 16-byte header buffer, then 32 pages),
//!   beside a plain 128 KiB `memcpy` and a `pread` into one host buffer.
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

mod chain;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = chain::request_reply, chain::read_128k
}
criterion_main!(benches);
