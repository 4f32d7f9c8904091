//! Walking a descriptor chain: every guest-supplied index, address and length is checked
//! before use, and the chain becomes a list of guest buffers split into a device-readable
//! (request) and a device-writable (reply) part.

use std::ops::Deref;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, Permissions};

use crate::error::{Error, Result};
use crate::reader::ChainReader;
use crate::reply::CheckedCompletion;
use crate::sys::IoVecs;
use crate::writer::ChainWriter;

/// The size of one split-ring descriptor.
const DESCRIPTOR_SIZE: u64 = 16;

/// Where a queue's descriptors live: the guest address of its descriptor table, its number
/// of entries (the queue size), and whether the driver negotiated indirect descriptors. A chain
/// may not have more descriptors than its table has entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescTable {
    /// Guest address of the descriptor table.
    pub addr: GuestAddress,
    /// Entries in the table (the queue size).
    pub size: u16,
    /// Whether VIRTIO_RING_F_INDIRECT_DESC was negotiated; without it an indirect descriptor
    /// makes the chain malformed ([`Error::IndirectNotNegotiated`]).
    pub indirect: bool,
}

impl DescTable {
    /// The descriptor table a configured queue uses; `indirect` says whether the driver
    /// negotiated VIRTIO_RING_F_INDIRECT_DESC.
    pub fn of_queue(queue: &impl QueueT, indirect: bool) -> Self {
        Self {
            addr: GuestAddress(queue.desc_table()),
            size: queue.size(),
            indirect,
        }
    }
}

/// One guest buffer of a chain: a descriptor with a non-zero length.
///
/// INVARIANTS: `len > 0`, `addr + len - 1` does not overflow, and the whole range was in guest
/// memory (with the access the part needs) when the chain was walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) addr: GuestAddress,
    pub(crate) len: u32,
}

/// Per-worker storage that requests borrow, so that parsing a chain and moving file data
/// allocate nothing once the vectors have grown to the largest chain seen.
#[derive(Default)]
pub struct ChainBuffers {
    segments: Vec<Segment>,
    read_iov: IoVecs<vm_memory::volatile_memory::PtrGuard>,
    write_iov: IoVecs<vm_memory::volatile_memory::PtrGuardMut>,
}

impl std::fmt::Debug for ChainBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainBuffers")
            .field("descriptors", &self.segments.capacity())
            .field("read_iov", &self.read_iov)
            .field("write_iov", &self.write_iov)
            .finish()
    }
}

impl ChainBuffers {
    /// Empty buffers; they grow on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers that hold a chain of `descriptors` without growing.
    pub fn with_capacity(descriptors: usize) -> Self {
        Self {
            segments: Vec::with_capacity(descriptors),
            ..Self::default()
        }
    }

    /// Walks the chain that starts at `head` in `table` and returns the request over it.
    ///
    /// # Errors
    ///
    /// A malformed chain: an index outside its table, a loop or a chain longer than its table,
    /// a readable descriptor after a writable one, an indirect descriptor the driver did not
    /// negotiate, a nested or chained indirect descriptor, a bad indirect table length, a buffer that overflows the address space or lies outside
    /// guest memory, or more than 4 GiB in total. See [`Error::is_malformed_chain`].
    pub fn parse<'a, M: GuestMemory + ?Sized>(
        &'a mut self,
        mem: &'a M,
        table: DescTable,
        head: u16,
    ) -> Result<ChainRequest<'a, M>> {
        let readable = walk(mem, table, head, &mut self.segments)?;
        let (read_segs, write_segs) = self.segments.split_at(readable);
        let reader = ChainReader::new(mem, read_segs, &mut self.read_iov);
        let writer = ChainWriter::new(mem, write_segs, &mut self.write_iov);
        Ok(ChainRequest {
            head,
            reader,
            writer,
        })
    }

    /// [`parse`](Self::parse) for a chain popped from a `virtio_queue::Queue` (the chain's own
    /// memory, its head index, and the queue's descriptor table).
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn parse_chain<'a, M>(
        &'a mut self,
        chain: &'a DescriptorChain<M>,
        table: DescTable,
    ) -> Result<ChainRequest<'a, M::Target>>
    where
        M: Deref,
        M::Target: GuestMemory,
    {
        self.parse(chain.memory(), table, chain.head_index())
    }
}

/// Walks the chain at `head`, filling `segs` with its non-empty buffers (readable ones first)
/// and returning how many are readable.
fn walk<M: GuestMemory + ?Sized>(
    mem: &M,
    table: DescTable,
    head: u16,
    segs: &mut Vec<Segment>,
) -> Result<usize> {
    segs.clear();
    let mut table_addr = table.addr;
    let mut table_size = u32::from(table.size);
    // Descriptors the current table may still yield: a chain never has more descriptors than
    // its table has entries, so a loop ends here too.
    let mut budget = table_size;
    let mut indirect = false;
    let mut index = head;
    let mut total: u32 = 0;
    let mut readable = 0usize;
    let mut writable = false;
    loop {
        if u32::from(index) >= table_size {
            return Err(Error::DescriptorIndex {
                index,
                size: table_size,
            });
        }
        budget = budget
            .checked_sub(1)
            .ok_or(Error::ChainTooLong { max: table_size })?;
        // Cannot overflow: index < 2^16 and the table is in guest memory (checked for an
        // indirect table; a queue's table may still be anywhere, hence the check).
        let entry = table_addr
            .checked_add(u64::from(index) * DESCRIPTOR_SIZE)
            .ok_or(Error::AddressOverflow {
                addr: table_addr.raw_value(),
                len: u32::from(index).saturating_mul(16),
            })?;
        let desc: Descriptor = mem
            .read_obj(entry)
            .map_err(|source| Error::ReadDescriptor {
                addr: entry.raw_value(),
                source,
            })?;

        if desc.refers_to_indirect_table() {
            if !table.indirect {
                return Err(Error::IndirectNotNegotiated);
            }
            if indirect {
                return Err(Error::NestedIndirect);
            }
            if desc.has_next() {
                return Err(Error::IndirectWithNext);
            }
            let len = desc.len();
            let entries = len / 16;
            if len == 0 || len % 16 != 0 || entries > u32::from(u16::MAX) {
                return Err(Error::IndirectTableLength { len });
            }
            check_buffer(mem, desc.addr(), len, Permissions::Read)?;
            table_addr = desc.addr();
            table_size = entries;
            budget = entries;
            indirect = true;
            index = 0;
            continue;
        }

        let len = desc.len();
        total = total.checked_add(len).ok_or(Error::ChainLengthOverflow)?;
        if desc.is_write_only() {
            writable = true;
        } else if writable {
            return Err(Error::ReadableAfterWritable);
        }
        if len > 0 {
            let access = if desc.is_write_only() {
                Permissions::Write
            } else {
                Permissions::Read
            };
            check_buffer(mem, desc.addr(), len, access)?;
            segs.push(Segment {
                addr: desc.addr(),
                len,
            });
            if !desc.is_write_only() {
                readable += 1;
            }
        }
        if !desc.has_next() {
            return Ok(readable);
        }
        index = desc.next();
    }
}

/// Checks that `len > 0` bytes at `addr` neither overflow nor leave guest memory.
fn check_buffer<M: GuestMemory + ?Sized>(
    mem: &M,
    addr: GuestAddress,
    len: u32,
    access: Permissions,
) -> Result<()> {
    if addr.checked_add(u64::from(len) - 1).is_none() {
        return Err(Error::AddressOverflow {
            addr: addr.raw_value(),
            len,
        });
    }
    let Ok(count) = usize::try_from(len) else {
        return Err(Error::OutsideMemory {
            addr: addr.raw_value(),
            len,
        });
    };
    if !mem.check_range(addr, count, access) {
        return Err(Error::OutsideMemory {
            addr: addr.raw_value(),
            len,
        });
    }
    Ok(())
}

/// A position in a list of segments, with the bytes left after it.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    segs: &'a [Segment],
    idx: usize,
    off: u32,
    left: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `segs`.
    pub(crate) fn new(segs: &'a [Segment]) -> Self {
        // Cannot overflow: the walk bounded the chain's total to u32.
        let left = segs.iter().map(|s| s.len as usize).sum();
        Self {
            segs,
            idx: 0,
            off: 0,
            left,
        }
    }

    /// Bytes after the cursor.
    pub(crate) fn remaining(&self) -> usize {
        self.left
    }

    /// The contiguous guest ranges that make up the next `max` bytes (or fewer, at the end).
    pub(crate) fn pieces(&self, max: usize) -> Pieces<'a> {
        Pieces {
            cur: self.clone(),
            budget: max.min(self.left),
        }
    }

    /// Consumes `n` bytes (at most [`remaining`](Self::remaining)).
    pub(crate) fn advance(&mut self, mut n: usize) {
        n = n.min(self.left);
        self.left -= n;
        while n > 0 {
            let Some(seg) = self.segs.get(self.idx) else {
                return;
            };
            let avail = (seg.len - self.off) as usize;
            if n < avail {
                // n < avail <= u32::MAX.
                self.off += u32::try_from(n).unwrap_or(u32::MAX);
                return;
            }
            n -= avail;
            self.idx += 1;
            self.off = 0;
        }
    }
}

/// Iterator over guest ranges, from [`Cursor::pieces`].
#[derive(Debug)]
pub(crate) struct Pieces<'a> {
    cur: Cursor<'a>,
    budget: usize,
}

impl Iterator for Pieces<'_> {
    type Item = (GuestAddress, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.budget == 0 {
            return None;
        }
        let seg = *self.cur.segs.get(self.cur.idx)?;
        let avail = (seg.len - self.cur.off) as usize;
        let n = avail.min(self.budget);
        // Cannot overflow: off < len and `addr + len - 1` fits (Segment invariant).
        let addr = seg.addr.unchecked_add(u64::from(self.cur.off));
        self.cur.advance(n);
        self.budget -= n;
        Some((addr, n))
    }
}

/// One FUSE request on a descriptor chain: the reader over its device-readable part, the
/// writer over its device-writable part, and the head index the used ring needs.
///
/// Give [`io`](Self::io) to the server, then [`finish`](Self::finish) to get the used length.
#[derive(Debug)]
pub struct ChainRequest<'a, M: GuestMemory + ?Sized> {
    head: u16,
    /// Holds the first 16 bytes of the request, copied when the chain was walked.
    reader: ChainReader<'a, M>,
    writer: ChainWriter<'a, M>,
}

impl<'a, M: GuestMemory + ?Sized> ChainRequest<'a, M> {
    /// The chain's head index (what goes into the used ring).
    pub fn head_index(&self) -> u16 {
        self.head
    }

    /// The request's reader and the reply's writer, for the server.
    pub fn io(&mut self) -> (&mut ChainReader<'a, M>, &mut ChainWriter<'a, M>) {
        (&mut self.reader, &mut self.writer)
    }

    /// The request's reader.
    pub fn reader(&mut self) -> &mut ChainReader<'a, M> {
        &mut self.reader
    }

    /// The reply's writer.
    pub fn writer(&mut self) -> &mut ChainWriter<'a, M> {
        &mut self.writer
    }

    /// Ends the request: checks the reply against the kernel's rules (`out_header.len` ==
    /// bytes written, `unique` echoed, error in −511..=0, a reply exactly when the opcode
    /// expects one) and yields the only used length the device may report.
    ///
    /// # Errors
    ///
    /// The rule the reply breaks; the device then reports used length 0.
    pub fn finish(self) -> Result<CheckedCompletion> {
        // The header as the writer wrote it, not as guest memory holds it now: the guest
        // shares that memory and may have rewritten it since.
        let out = self.writer.written_header();
        crate::reply::check(self.reader.request_head(), self.writer.bytes_written(), out)
    }
}
