//! Serving one virtqueue: pop chains, hand them to the server, return them with the right used
//! length, and tell the caller whether the driver needs an interrupt.
//!
//! Both the in-process device and the vhost-user backend use [`process_queue`]; they differ only
//! in how they wait for kicks and signal the driver.

use std::sync::atomic::{AtomicU64, Ordering};

use fuse_abi::{InHeader, Opcode};
use fuse_server::FileSystem;
use log::{debug, warn};
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::GuestMemory;
use zerocopy::{FromZeros, IntoBytes};

use crate::chain::{ChainReader, ChainWriter};
use crate::server_shim::{Outcome, Server};

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
    /// Chains answered with a reply.
    pub replied: AtomicU64,
    /// Chains that took no reply (FORGET, BATCH_FORGET).
    pub no_reply: AtomicU64,
    /// Chains dropped because they were malformed (bad addresses, no header, nothing the
    /// server could answer) or sent to the wrong queue; returned with used length 0.
    pub dropped: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves every available chain of `queue`, with EVENT_IDX re-checks, and returns whether the
/// driver must be notified.
///
/// # Errors
///
/// A ring the device cannot access (an invalid used ring or avail index): the queue is
/// broken, and the caller should log and wait for a reset.
pub(crate) fn process_queue<F, M, Q>(
    server: &Server<F>,
    role: QueueRole,
    mem: &M,
    queue: &mut Q,
    stats: &Stats,
) -> Result<bool, virtio_queue::Error>
where
    F: FileSystem,
    M: GuestMemory,
    Q: QueueT,
{
    let event_idx = queue.event_idx_enabled();
    let mut served = false;
    loop {
        if event_idx {
            queue.disable_notification(mem)?;
        }
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let used = serve_chain(server, role, mem, chain, stats);
            queue.add_used(mem, head, used)?;
            served = true;
        }
        if !event_idx || !queue.enable_notification(mem)? {
            break;
        }
    }
    if !served {
        return Ok(false);
    }
    queue.needs_notification(mem)
}

/// Serves one chain and returns its used length: the reply's length, or 0.
fn serve_chain<F, M>(
    server: &Server<F>,
    role: QueueRole,
    mem: &M,
    chain: DescriptorChain<&M>,
    stats: &Stats,
) -> u32
where
    F: FileSystem,
    M: GuestMemory,
{
    let head = chain.head_index();
    let reader = ChainReader::new(mem, chain.clone());
    let writer = ChainWriter::new(mem, chain);
    let (mut reader, mut writer) = match (reader, writer) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => {
            warn!("{role:?} queue: chain {head} has buffers outside guest memory: {e}");
            Stats::bump(&stats.dropped);
            return 0;
        }
    };

    if role == QueueRole::Hiprio {
        let mut header = InHeader::new_zeroed();
        let opcode = reader
            .peek(header.as_mut_bytes())
            .ok()
            .and_then(|()| Opcode::try_from(header.opcode.get()).ok());
        if !opcode.is_some_and(Opcode::is_noreply) {
            warn!(
                "hiprio queue: dropping chain {head} with opcode {} (only FORGET belongs here)",
                header.opcode.get()
            );
            Stats::bump(&stats.dropped);
            return 0;
        }
    }

    match server.handle_message(&mut reader, &mut writer) {
        Ok(Outcome::Replied { len }) => {
            let written = fuse_server::Writer::bytes_written(&writer);
            if written != len {
                warn!("{role:?} queue: reply of {len} bytes but {written} written");
            }
            match u32::try_from(written) {
                Ok(used) if role == QueueRole::Request => {
                    Stats::bump(&stats.replied);
                    used
                }
                _ => {
                    Stats::bump(&stats.dropped);
                    0
                }
            }
        }
        Ok(Outcome::NoReply) => {
            Stats::bump(&stats.no_reply);
            0
        }
        Err(e) => {
            debug!("{role:?} queue: chain {head} not answered: {e}");
            Stats::bump(&stats.dropped);
            0
        }
    }
}
