//! Serving one virtqueue: the transport walks and checks each chain and the reply, the server
//! answers, and this module adds what is virtio-fs specific: the hiprio queue takes FORGET only
//! and never replies; request queues answer on the queue the request came from.
//!
//! Both the in-process device and the vhost-user backend use [`serve_queue`]; they differ only
//! in how they wait for kicks and signal the driver.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use fuse_abi::Opcode;
use fuse_server::mem::MemReader;
use fuse_server::{FileSystem, Server};
use log::{debug, warn};
use virtio_queue::QueueT;
use virtiofs_transport::{ChainBuffers, ChainReader, ChainWriter, process_queue};
use vm_memory::GuestMemory;

/// The largest message accepted on the hiprio queue: a BATCH_FORGET of ~4000 entries.
const HIPRIO_MAX: usize = 64 * 1024;

/// Which virtio-fs queue a worker serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRole {
    /// Queue 0: FORGET only, never a reply.
    Hiprio,
    /// Queues 1..=N: every other request, each answered on the queue it came from.
    Request,
}

impl QueueRole {
    /// The role of virtqueue `index`.
    pub fn of_index(index: usize) -> QueueRole {
        if index == 0 {
            QueueRole::Hiprio
        } else {
            QueueRole::Request
        }
    }
}

/// Counters a device keeps across its queues (monotonic; read them for logs or metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Chains completed: a checked reply, or none for FORGET.
    pub completed: AtomicU64,
    /// Malformed chains, returned with used length 0.
    pub malformed: AtomicU64,
    /// Requests without a valid reply (the server could not write one, or the transport
    /// refused it), and non-FORGET requests on the hiprio queue; used length 0.
    pub dropped: AtomicU64,
    /// Interrupts requested from the driver.
    pub notifications: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A worker's reusable state: the transport's chain buffers and the hiprio staging buffer.
#[derive(Debug, Default)]
pub(crate) struct WorkerBuffers {
    chains: ChainBuffers,
    hiprio: Vec<u8>,
}

/// Serves every available chain of `queue` (with the EVENT_IDX re-check), calls `notify`
/// whenever the driver wants an interrupt, and returns the number of chains completed.
///
/// # Errors
///
/// A ring the device cannot access (used ring outside guest memory) or a failed `notify`: the
/// queue is broken, and the caller should log and wait for a reset.
pub(crate) fn serve_queue<F, M, Q, N>(
    server: &Server<F>,
    role: QueueRole,
    mem: &M,
    queue: &mut Q,
    buffers: &mut WorkerBuffers,
    stats: &Stats,
    notify: N,
) -> virtiofs_transport::Result<u64>
where
    F: FileSystem,
    M: GuestMemory,
    Q: QueueT,
    N: FnMut() -> std::io::Result<()>,
{
    let WorkerBuffers { chains, hiprio } = buffers;
    let mut refused = 0u64;
    let result = process_queue(
        queue,
        mem,
        chains,
        |reader: &mut ChainReader<'_, M>, writer: &mut ChainWriter<'_, M>| {
            let answered = match role {
                QueueRole::Request => server.handle_message(reader, writer).map(|_| ()),
                QueueRole::Hiprio => serve_hiprio(server, reader, writer, hiprio),
            };
            if let Err(e) = answered {
                debug!("{role:?} queue: request not answered: {e}");
                refused += 1;
            }
        },
        notify,
    );
    Stats::add(&stats.dropped, refused);
    let queue_stats = result?;
    Stats::add(&stats.completed, queue_stats.completed);
    Stats::add(&stats.malformed, queue_stats.malformed);
    Stats::add(&stats.dropped, queue_stats.bad_replies);
    Stats::add(&stats.notifications, queue_stats.notifications);
    Ok(queue_stats.completed)
}

/// A hiprio message: FORGET or BATCH_FORGET go to the server (no reply); anything else is
/// dropped, never executed.
fn serve_hiprio<F, M>(
    server: &Server<F>,
    reader: &mut ChainReader<'_, M>,
    writer: &mut ChainWriter<'_, M>,
    staging: &mut Vec<u8>,
) -> Result<(), fuse_server::server::Error>
where
    F: FileSystem,
    M: GuestMemory,
{
    let len = reader.remaining();
    if len > HIPRIO_MAX {
        warn!("hiprio queue: dropping a {len}-byte message");
        return Ok(());
    }
    staging.clear();
    staging.resize(len, 0);
    reader
        .read_exact(staging)
        .map_err(fuse_server::server::Error::Read)?;
    let opcode = staging
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes);
    match opcode.and_then(|op| Opcode::try_from(op).ok()) {
        Some(Opcode::Forget | Opcode::BatchForget) => {
            let outcome = server.handle_message(&mut MemReader::new(staging), writer)?;
            if outcome != fuse_server::Outcome::NoReply {
                warn!("hiprio queue: the server replied to a FORGET");
            }
        }
        _ => warn!(
            "hiprio queue: dropping opcode {opcode:?}: only FORGET and BATCH_FORGET belong here"
        ),
    }
    Ok(())
}
