//! Who serves a burst of requests: the thread that takes them off the ring, unless they are slow.
//! A burst of quick requests (a driver keeping many in flight) stays on that thread however long
//! the burst lasts, since handing a request to the pool costs a thread wake-up; a burst of
//! requests that each take longer than a wake-up spreads over the queue's pool.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fs::NapFs;
use common::fuse::init_offering_none;
use common::{Driver, Mem, Sent};
use fuse_abi::Opcode;
use fuse_server::NegotiationConfig;
use virtiofs_device::{DeviceConfig, VirtioFs};

const QUEUE_SIZE: u16 = 256;
const SLOT: u64 = 0x1000;

/// One request queue with a pool of `workers` and its kick threads, over `fs`.
fn guest(fs: NapFs, workers: usize) -> (Driver, VirtioFs<NapFs, Mem>) {
    let config = DeviceConfig::builder("budget")
        .queue_size(QUEUE_SIZE)
        .workers_per_queue(workers)
        .build()
        .unwrap();
    let mut device = VirtioFs::new(config, fs, NegotiationConfig::default());
    let mut driver = Driver::new(0x100_0000);
    let (queues, kicks) = driver.queues(0, 2, QUEUE_SIZE, SLOT);
    let resources = driver.call_eventfds(queues);
    device.activate(driver.memory(), resources).unwrap();
    device.spawn_kick_threads(kicks).unwrap();
    let init = driver.put(1, Opcode::Init, 0, &init_offering_none());
    driver.kick(1);
    driver.wait(init);
    assert_eq!(driver.reply(init).0, 0, "INIT");
    (driver, device)
}

/// Puts `n` GETATTRs on the request queue (at most 127: two descriptors each), kicks once and
/// waits for all of them: one batch. Returns how many of them went to the pool. Once per guest
/// (the mock driver does not reuse heads).
fn burst(driver: &mut Driver, device: &VirtioFs<NapFs, Mem>, n: usize) -> u64 {
    let before = device.stats().pooled.load(Ordering::Relaxed);
    let sent: Vec<Sent> = (0..n)
        .map(|_| driver.put(1, Opcode::Getattr, 1, &[0u8; 16]))
        .collect();
    driver.kick(1);
    for &s in &sent {
        driver.wait(s);
        assert_eq!(driver.reply(s).0, -libc::EIO, "GETATTR");
    }
    device.stats().pooled.load(Ordering::Relaxed) - before
}

#[test]
fn a_long_burst_of_quick_requests_stays_on_the_serving_thread() {
    // 100 requests of 10 us each: a millisecond of work in one batch, five times the budget
    // after which the rule that went before this one sent the rest of a batch to the pool.
    // A thread preempted for long enough makes a quick burst look slow (the rule counts wall
    // time, as it must for requests that block): one quiet burst out of up to 20 is enough, so
    // a loaded machine (the fstests campaign beside the tests) does not fail it. Before the
    // rule, every burst sent 85-92 of its 100 to the pool, loaded or not.
    let mut pooled = Vec::new();
    for _ in 0..20 {
        let fs = NapFs {
            nap: Duration::from_micros(10),
            spin: true,
        };
        let (mut driver, device) = guest(fs, 2);
        pooled.push(burst(&mut driver, &device, 100));
        if pooled.last() == Some(&0) {
            return;
        }
    }
    panic!("requests of a quick burst went to the pool in every burst: {pooled:?} of 100");
}

#[test]
fn a_burst_of_slow_requests_spreads_over_the_pool() {
    // Each request sleeps 200 us, longer than a hand-off costs: after the first few, the rest
    // of the batch goes to the pool.
    let (mut driver, device) = guest(
        NapFs {
            nap: Duration::from_micros(200),
            spin: false,
        },
        4,
    );
    let pooled = burst(&mut driver, &device, 32);
    assert!(
        pooled >= 16,
        "only {pooled} of 32 slow requests went to the pool"
    );
}
