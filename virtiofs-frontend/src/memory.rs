//! Guest RAM: one memfd mapped here through `vm-memory` and shared with the daemon by
//! SET_MEM_TABLE, exactly as a VMM shares its guest's memory.
//!
//! Guest physical address 0 is the start of the memfd. Everything the frontend lays out
//! (descriptor tables, rings, request and reply buffers) lives in it, so the daemon reads and
//! writes the same bytes this process does.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use vhost::VhostUserMemoryRegionInfo;
use vm_memory::{ByteValued, Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::{Error, sys};

/// The guest's memory: a memfd of a fixed size, mapped in this process.
#[derive(Debug)]
pub struct GuestRam {
    mem: GuestMemoryMmap<()>,
    file: Arc<File>,
    size: u64,
}

impl GuestRam {
    /// A new, zeroed guest RAM of `size` bytes (a multiple of the page size) at guest address 0.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the memfd cannot be created or sized, [`Error::Memory`] when it cannot
    /// be mapped.
    pub fn new(size: u64) -> Result<GuestRam, Error> {
        const NAME: &CStr = c"virtiofs-frontend-ram";
        let file = Arc::new(sys::memfd_create(NAME)?);
        file.set_len(size)?;
        let len = usize::try_from(size).map_err(|_| Error::Memory(format!("{size} bytes")))?;
        let mem = GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0),
            len,
            Some(FileOffset::from_arc(Arc::clone(&file), 0)),
        )])
        .map_err(|e| Error::Memory(e.to_string()))?;
        Ok(GuestRam { mem, file, size })
    }

    /// The size in bytes, as mapped here (the memfd's size when created).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The memfd. A hostile test may shrink it with [`File::set_len`] after sharing it; this
    /// process then must not touch the bytes past the new end itself.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The mapping, for anything the helpers below do not cover.
    pub fn memory(&self) -> &GuestMemoryMmap<()> {
        &self.mem
    }

    /// Where guest address 0 is mapped in this process: the "user address" a VMM announces
    /// in SET_MEM_TABLE and uses in SET_VRING_ADDR.
    pub fn user_base(&self) -> u64 {
        match self.mem.get_host_address(GuestAddress(0)) {
            Ok(ptr) => ptr as usize as u64,
            Err(_) => 0,
        }
    }

    /// The one region of this RAM as SET_MEM_TABLE carries it, declaring `declared_size` bytes
    /// (normally [`size`](Self::size); a hostile test may declare more than the memfd holds).
    pub fn region(&self, declared_size: u64) -> VhostUserMemoryRegionInfo {
        VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: declared_size,
            userspace_addr: self.user_base(),
            mmap_offset: 0,
            mmap_handle: self.file.as_raw_fd(),
        }
    }

    /// Writes `bytes` at guest address `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the range is not inside the RAM.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), Error> {
        self.mem
            .write_slice(bytes, GuestAddress(addr))
            .map_err(|e| Error::Memory(format!("write {} bytes at {addr:#x}: {e}", bytes.len())))
    }

    /// Reads `buf.len()` bytes at guest address `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the range is not inside the RAM.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.mem
            .read_slice(buf, GuestAddress(addr))
            .map_err(|e| Error::Memory(format!("read {} bytes at {addr:#x}: {e}", buf.len())))
    }

    /// Writes a plain value (little-endian host) at `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the range is not inside the RAM.
    pub fn write_obj<T: ByteValued>(&self, val: T, addr: u64) -> Result<(), Error> {
        self.mem
            .write_obj(val, GuestAddress(addr))
            .map_err(|e| Error::Memory(format!("write at {addr:#x}: {e}")))
    }

    /// Reads a plain value at `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the range is not inside the RAM.
    pub fn read_obj<T: ByteValued>(&self, addr: u64) -> Result<T, Error> {
        self.mem
            .read_obj(GuestAddress(addr))
            .map_err(|e| Error::Memory(format!("read at {addr:#x}: {e}")))
    }

    /// Stores a ring index with release ordering: every write before it (descriptors, ring
    /// entries) is visible to the daemon before the index is.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when `addr` is not an aligned address inside the RAM.
    pub fn store_u16(&self, val: u16, addr: u64) -> Result<(), Error> {
        self.mem
            .store(val, GuestAddress(addr), Ordering::Release)
            .map_err(|e| Error::Memory(format!("store at {addr:#x}: {e}")))
    }

    /// Loads a ring index with acquire ordering: what the daemon wrote before it is visible.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when `addr` is not an aligned address inside the RAM.
    pub fn load_u16(&self, addr: u64) -> Result<u16, Error> {
        self.mem
            .load(GuestAddress(addr), Ordering::Acquire)
            .map_err(|e| Error::Memory(format!("load at {addr:#x}: {e}")))
    }
}
