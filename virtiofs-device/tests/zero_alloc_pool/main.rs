//! No heap allocation per request in steady state on the worker pool path (ARCHITECTURE.md,
//! "Performance"): the same guest, requests and backends as `zero_alloc`, but the device has
//! request workers. Most requests are still served by the thread that kicks; FSYNC, one of
//! those that may block, is handed over the pool's channel, served and completed on a worker,
//! and its used element written from there (the test checks that the pool served some).
//!
//! The counting global allocator counts every allocation and reallocation of **every thread**
//! while armed (a global flag and counter), so the kicking thread, the workers and anything
//! else the device runs are all seen. Nothing else may run meanwhile, so this binary holds
//! exactly one test (the harness's main thread only waits for it, without allocating), and the
//! guest's own side of each round allocates nothing. Each worker has its own buffers, so the
//! warm-up serves every kind of request many times (16 per worker); after the last reply of a
//! kind the count goes on for a moment, for what a worker does after it completed a request.
//! Which worker takes a request is up to the scheduler: on a loaded machine one may not run
//! at all during the warm-up and then make its one-time allocations (its start, its first
//! wait on the channel, its buffers' growth on its first request of a kind) while counted. So
//! a kind that allocated is warmed up and counted again, three times at most; an allocation
//! per request fails every time (a failure lists each count).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

// Shared with `zero_alloc`, each binary using part of it.
#[allow(dead_code)]
#[path = "../zero_alloc/guest.rs"]
mod guest;
#[allow(unsafe_code)]
#[path = "../zero_alloc/sys.rs"]
mod sys;

use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use guest::{Guest, Serving, play, share};
use passthrough_linux::{Config, FileHandleMode, PassthroughFs};
use passthrough_macos::host::LinuxHost;

#[global_allocator]
static ALLOCATOR: sys::Counting = sys::Counting;

/// Whether allocations are counted now, on every thread.
static ARMED: AtomicBool = AtomicBool::new(false);
/// The allocations counted.
static COUNTED: AtomicU64 = AtomicU64::new(0);
/// Where the first counted allocation was made (on whichever thread made it).
static FIRST: Mutex<Option<Backtrace>> = Mutex::new(None);

thread_local! {
    /// This thread is recording an allocation (the backtrace allocates: not counted again).
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

/// Called by the allocator on every allocation and reallocation.
fn record() {
    if !ARMED.load(Ordering::SeqCst) {
        return;
    }
    if RECORDING.try_with(|recording| recording.replace(true)) != Ok(false) {
        return;
    }
    COUNTED.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut first) = FIRST.try_lock() {
        if first.is_none() {
            *first = Some(Backtrace::force_capture());
        }
    }
    let _ = RECORDING.try_with(|recording| recording.set(false));
}

/// Runs `f` with every thread's allocations counted: how many were made, and where the first.
fn counting(f: &mut dyn FnMut()) -> (u64, Option<Backtrace>) {
    COUNTED.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    let n = COUNTED.load(Ordering::SeqCst);
    (n, FIRST.lock().unwrap().take())
}

/// Two workers on the request queue: requests complete on either, out of the kicking thread.
const WORKERS: Serving = Serving::Workers(2);

/// The count sees another thread's allocation: one made on a thread started beforehand, while
/// this one only waits for it.
fn counts_every_thread() {
    static GO: AtomicBool = AtomicBool::new(false);
    static DONE: AtomicBool = AtomicBool::new(false);
    let other = std::thread::spawn(|| {
        while !GO.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        drop(std::hint::black_box(Box::new(0u64)));
        DONE.store(true, Ordering::SeqCst);
    });
    let (n, _) = counting(&mut || {
        GO.store(true, Ordering::SeqCst);
        while !DONE.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    });
    other.join().unwrap();
    assert!(n >= 1, "an allocation on another thread was not counted");
}

#[test]
fn steady_state_requests_allocate_nothing_on_request_workers() {
    counts_every_thread();
    // The Linux passthrough (host inodes by file handle where the host allows it); ".", "..",
    // "a", "b", "c".
    let dir = share();
    let cfg = Config::builder(dir.path())
        .file_handles(FileHandleMode::Prefer)
        .build();
    let fs = PassthroughFs::new(cfg.unwrap()).unwrap();
    play(Guest::new(fs, WORKERS), 5, true, counting);
    // The macOS backend on its Linux adapter: "a", "b", "c"; no READDIRPLUS.
    let dir = share();
    let config = passthrough_macos::Config::new(dir.path());
    let fs = passthrough_macos::PassthroughFs::new(LinuxHost::default(), config).unwrap();
    play(Guest::new(fs, WORKERS), 3, false, counting);
}
