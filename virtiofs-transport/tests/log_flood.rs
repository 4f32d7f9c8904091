//! A guest flooding malformed chains costs at most the shared rate limit's burst of log lines.
//! Its own test binary: the logger is process-wide and each call site's limit is a `static`.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use fuse_server::limits::RateLimit;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use virtiofs_transport::{ChainBuffers, RingState, process_queue};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

static LINES: AtomicUsize = AtomicUsize::new(0);

struct Counter;

impl log::Log for Counter {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn flush(&self) {}
}

static COUNTER: Counter = Counter;

#[test]
fn a_flood_of_malformed_chains_is_rate_limited() {
    log::set_logger(&COUNTER).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mq = MockSplitQueue::new(&mem, 16);
    let mut q: Queue = mq.create_queue().unwrap();
    // The mock lays the used ring over the end of the avail ring: move it out of the way.
    q.set_used_ring_address(Some(0x1000), Some(0));
    let mut ring = RingState::new(true);
    let mut bufs = ChainBuffers::new();
    let mut malformed = 0;
    // 50 rounds of 8 chains, each a writable descriptor followed by a readable one.
    for round in 0..50u16 {
        for i in 0..8u16 {
            let table = mq.desc_table();
            let first = Descriptor::new(0x5_0000, 16, F_WRITE | F_NEXT, 2 * i + 1);
            table.store(2 * i, first.into()).unwrap();
            table
                .store(2 * i + 1, Descriptor::new(0x5_0100, 16, 0, 0).into())
                .unwrap();
            let slot = (round * 8 + i) % 16;
            let entry = mq.avail_addr().unchecked_add(4 + 2 * u64::from(slot));
            mem.write_obj(2 * i, entry).unwrap();
        }
        let idx = mq.avail_addr().unchecked_add(2);
        mem.write_obj((round + 1) * 8, idx).unwrap();
        let stats =
            process_queue(&mut q, &mem, &mut ring, &mut bufs, |_, _| {}, || Ok(())).unwrap();
        malformed += stats.malformed;
        assert!(!ring.is_broken(&q), "round {round}");
        assert_eq!(q.next_avail(), (round + 1) * 8);
    }
    assert_eq!(malformed, 400);
    let lines = LINES.load(Ordering::Relaxed);
    // The burst, the line that opens the first interval, and one per second the test took.
    assert!(
        lines <= RateLimit::BURST as usize + 2,
        "{lines} log lines for {malformed} malformed chains"
    );
    assert!(lines > 0, "the first malformed chains are logged");
}
