//! The crate's one error type.

use std::io;

use vm_memory::GuestMemoryError;

/// Everything that can go wrong moving a FUSE message: a malformed descriptor chain, a reply
/// that breaks the kernel's rules, or a `/dev/fuse` channel step.
///
/// Chain errors come from the guest and are never fatal to the device: the worker drops the
/// chain (used length 0) and counts it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `next` (or head) index names no entry of its descriptor table.
    #[error("descriptor index {index} is outside a table of {size} entries")]
    DescriptorIndex {
        /// The index.
        index: u16,
        /// The table's number of entries.
        size: u32,
    },
    /// A descriptor table entry could not be read from guest memory.
    #[error("descriptor table entry at {addr:#x} cannot be read")]
    ReadDescriptor {
        /// Guest address of the entry.
        addr: u64,
        /// The guest memory error.
        #[source]
        source: GuestMemoryError,
    },
    /// The chain has more descriptors than its table has entries: it loops, or it is longer
    /// than the queue.
    #[error("descriptor chain longer than its table ({max} entries): a loop or too long")]
    ChainTooLong {
        /// Entries in the table the chain was walking.
        max: u32,
    },
    /// A device-readable descriptor follows a device-writable one.
    #[error("a device-readable descriptor follows a device-writable one")]
    ReadableAfterWritable,
    /// An indirect descriptor on a queue whose driver did not negotiate
    /// VIRTIO_RING_F_INDIRECT_DESC.
    #[error("indirect descriptor, but VIRTIO_RING_F_INDIRECT_DESC was not negotiated")]
    IndirectNotNegotiated,
    /// An indirect descriptor inside an indirect table.
    #[error("indirect descriptor inside an indirect table")]
    NestedIndirect,
    /// An indirect descriptor that also has the NEXT flag.
    #[error("indirect descriptor with the NEXT flag")]
    IndirectWithNext,
    /// An indirect table whose length is zero, not a multiple of 16, or above 65535 entries.
    #[error("indirect table of {len} bytes is not 1..=65535 descriptors of 16 bytes")]
    IndirectTableLength {
        /// The table's length in bytes.
        len: u32,
    },
    /// A buffer whose end does not fit in the 64-bit guest address space.
    #[error("buffer of {len} bytes at {addr:#x} overflows the guest address space")]
    AddressOverflow {
        /// Guest address of the buffer.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A buffer (or indirect table) that is not entirely in guest memory.
    #[error("buffer of {len} bytes at {addr:#x} is not in guest memory")]
    OutsideMemory {
        /// Guest address of the buffer.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// The chain's buffers add up to more than 4 GiB.
    #[error("descriptor chain's buffers exceed 4 GiB")]
    ChainLengthOverflow,
    /// Guest memory could not be accessed while moving data.
    #[error("guest memory access failed")]
    GuestMemory(#[source] GuestMemoryError),
    /// The queue itself failed (`add_used`, notification state).
    #[error("virtqueue operation failed")]
    Queue(#[source] virtio_queue::Error),
    /// Notifying the guest failed.
    #[error("guest notification failed")]
    Notify(#[source] io::Error),
    /// The driver published more chains than the queue has entries: `avail->idx` is more than
    /// the queue size ahead of the device. The queue is broken until it is reset.
    #[error("avail index {avail} is more than {size} entries ahead of the device's {next_avail}")]
    AvailIndex {
        /// `avail->idx` as read from the ring.
        avail: u16,
        /// The next entry the device would take.
        next_avail: u16,
        /// The queue size.
        size: u16,
    },
    /// An avail ring entry names a head outside the descriptor table. The queue is broken until
    /// it is reset (the used ring cannot return such a head).
    #[error("avail ring entry names head {head}, outside a queue of {size} entries")]
    HeadIndex {
        /// The head index.
        head: u16,
        /// The queue size.
        size: u16,
    },

    /// A reply shorter than `fuse_out_header`.
    #[error("reply of {written} bytes is shorter than the 16-byte out header")]
    ReplyTooShort {
        /// Bytes written.
        written: usize,
    },
    /// `out_header.len` differs from the bytes written.
    #[error("reply header says {header} bytes but {written} were written")]
    ReplyLength {
        /// `out_header.len`.
        header: u32,
        /// Bytes written.
        written: usize,
    },
    /// `out_header.unique` does not echo the request.
    #[error("reply unique {reply:#x} does not echo request unique {request:#x}")]
    ReplyUnique {
        /// The request's unique.
        request: u64,
        /// The reply's unique.
        reply: u64,
    },
    /// `out_header.error` outside `-511..=0`.
    #[error("reply error {error} is outside -511..=0")]
    ReplyErrno {
        /// `out_header.error`.
        error: i32,
    },
    /// A reply to a request that is too short to carry a unique.
    #[error("reply to a request without a complete in header")]
    ReplyWithoutRequest,
    /// A reply to a request the kernel expects no reply to (FORGET, BATCH_FORGET).
    #[error("reply to opcode {opcode}, which takes none")]
    UnexpectedReply {
        /// The request's opcode.
        opcode: u32,
    },
    /// No reply to a request that needs one.
    #[error("no reply to opcode {opcode}, which needs one")]
    MissingReply {
        /// The request's opcode.
        opcode: u32,
    },

    /// `/dev/fuse` could not be opened.
    #[error("cannot open /dev/fuse")]
    OpenDevice(#[source] io::Error),
    /// A mount point or option contains a NUL byte or a comma where one is not allowed.
    #[error("invalid mount argument: {0}")]
    MountArgument(&'static str),
    /// `mount(2)` failed.
    #[error("mount of the FUSE filesystem failed")]
    Mount(#[source] io::Error),
    /// `FUSE_DEV_IOC_CLONE` failed.
    #[error("cloning the /dev/fuse channel failed")]
    Clone(#[source] io::Error),
    /// Reading a request from `/dev/fuse` failed.
    #[error("reading a request from /dev/fuse failed")]
    ReadRequest(#[source] io::Error),
    /// Writing a reply to `/dev/fuse` failed.
    #[error("writing a reply to /dev/fuse failed")]
    WriteReply(#[source] io::Error),
    /// A session thread could not be started or panicked.
    #[error("a /dev/fuse session thread failed")]
    Thread(#[source] io::Error),
}

impl Error {
    /// Whether the error comes from the guest's descriptor chain (the chain is dropped and
    /// counted), rather than from the server's reply or the host.
    pub fn is_malformed_chain(&self) -> bool {
        matches!(
            self,
            Error::DescriptorIndex { .. }
                | Error::ReadDescriptor { .. }
                | Error::ChainTooLong { .. }
                | Error::ReadableAfterWritable
                | Error::IndirectNotNegotiated
                | Error::NestedIndirect
                | Error::IndirectWithNext
                | Error::IndirectTableLength { .. }
                | Error::AddressOverflow { .. }
                | Error::OutsideMemory { .. }
                | Error::ChainLengthOverflow
        )
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::GuestMemory(_) => io::ErrorKind::InvalidData,
            e if e.is_malformed_chain() => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
