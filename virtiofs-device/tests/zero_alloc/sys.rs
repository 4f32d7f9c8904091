//! The counting global allocator: every call goes to [`System`] unchanged; an allocation or a
//! reallocation made while this thread is armed is counted (see the crate root).

use std::alloc::{GlobalAlloc, Layout, System};

/// [`System`], with [`record`](super::record) called on every allocation and reallocation.
#[derive(Debug)]
pub(crate) struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments and returns what
// `System` returned, so `System`'s guarantees are ours; `record` never allocates while armed
// (it disarms the thread first) and never touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        super::record();
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        super::record();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        super::record();
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`; the
        // caller upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}
