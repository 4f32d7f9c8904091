//! No heap allocation per request in steady state (ARCHITECTURE.md, "Performance"), shown on
//! the whole request path: request bytes in guest memory, a split virtqueue, the in-process
//! device serving inline (on this thread, inside `process_queue`), the transport's chain walk,
//! reader and writer, the server, the backend (the Linux passthrough, and the macOS backend on
//! its Linux adapter), and the reply in guest memory with its used element.
//!
//! A counting global allocator (its own test binary, so it sees only this process) counts every
//! allocation and reallocation this thread makes while armed; only the rounds of requests run
//! armed, and the guest's side of them allocates nothing. After a warm-up (the per-thread
//! buffers grow, the inodes exist, a file and a directory are open), each of GETATTR, LOOKUP of
//! a known name, READ of 4 KiB, WRITE of 4 KiB, READDIR and READDIRPLUS of a small directory
//! whose entries are all known runs [`guest::ROUNDS`] times and must allocate nothing. A
//! failure shows where the first allocation was made. `zero_alloc_pool` does the same with
//! request workers, counting every thread.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

// Shared with `zero_alloc_pool`, each binary using part of it.
#[allow(dead_code)]
mod guest;
#[allow(unsafe_code)]
mod sys;

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};

use guest::{Guest, Serving, play, share};
use passthrough_linux::{Config, FileHandleMode, PassthroughFs};
use passthrough_macos::host::LinuxHost;

#[global_allocator]
static ALLOCATOR: sys::Counting = sys::Counting;

thread_local! {
    /// Whether this thread's allocations are counted now.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// This thread's counted allocations.
    static COUNTED: Cell<u64> = const { Cell::new(0) };
    /// Where this thread's first counted allocation was made.
    static FIRST: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Called by the allocator on every allocation and reallocation.
fn record() {
    // Disarmed while recording: the backtrace allocates.
    if ARMED.try_with(|armed| armed.replace(false)) != Ok(true) {
        return;
    }
    let _ = COUNTED.try_with(|n| n.set(n.get() + 1));
    let _ = FIRST.try_with(|first| {
        if let Ok(mut first) = first.try_borrow_mut() {
            if first.is_none() {
                *first = Some(Backtrace::force_capture());
            }
        }
    });
    let _ = ARMED.try_with(|armed| armed.set(true));
}

/// Runs `f` with this thread's allocations counted: how many it made, and where it made the
/// first.
fn counting(f: &mut dyn FnMut()) -> (u64, Option<Backtrace>) {
    COUNTED.with(|n| n.set(0));
    ARMED.with(|armed| armed.set(true));
    f();
    ARMED.with(|armed| armed.set(false));
    let n = COUNTED.with(Cell::get);
    (n, FIRST.with(|first| first.borrow_mut().take()))
}

/// The Linux passthrough, host inodes held by file handle (`Prefer`, when the host allows it)
/// or by `O_PATH` descriptor (`Never`).
fn linux(handles: FileHandleMode) {
    let dir = share();
    let cfg = Config::builder(dir.path()).file_handles(handles).build();
    let fs = PassthroughFs::new(cfg.unwrap()).unwrap();
    // ".", "..", "a", "b", "c".
    play(Guest::new(fs, Serving::Inline), 5, true, counting);
}

#[test]
fn steady_state_requests_allocate_nothing() {
    linux(FileHandleMode::Prefer);
}

#[test]
fn steady_state_requests_allocate_nothing_on_o_path_descriptors() {
    linux(FileHandleMode::Never);
}

#[test]
fn steady_state_requests_allocate_nothing_on_the_macos_backend() {
    let dir = share();
    let config = passthrough_macos::Config::new(dir.path());
    let fs = passthrough_macos::PassthroughFs::new(LinuxHost::default(), config).unwrap();
    // "a", "b", "c"; it does not answer READDIRPLUS.
    play(Guest::new(fs, Serving::Inline), 3, false, counting);
}
