//! Serving a virtqueue: pop chains, hand them to the server, report checked used lengths,
//! and notify the guest only when the ring's notification suppression (EVENT_IDX or the
//! NO_INTERRUPT flag) asks for it.

use std::io;

use virtio_queue::QueueT;
use vm_memory::GuestMemory;

use crate::chain::{ChainBuffers, DescTable};
use crate::error::{Error, Result};
use crate::reader::ChainReader;
use crate::reply::Completion;
use crate::writer::ChainWriter;

/// What one [`process_queue`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Chains answered with a checked completion (a reply, or none for FORGET).
    pub completed: u64,
    /// Malformed chains, dropped with used length 0.
    pub malformed: u64,
    /// Requests whose reply broke a rule (length, unique, errno), reported with used length 0.
    pub bad_replies: u64,
    /// Guest notifications sent.
    pub notifications: u64,
}

/// Puts `head` into the used ring with the completion's used length.
///
/// # Errors
///
/// The queue's error (used ring outside guest memory, ...).
pub fn add_used<Q: QueueT, M: GuestMemory>(
    queue: &mut Q,
    mem: &M,
    head: u16,
    completion: Completion,
) -> Result<()> {
    queue
        .add_used(mem, head, completion.used_len())
        .map_err(Error::Queue)
}

/// Serves every available chain of `queue` until the ring is empty with notifications
/// re-enabled (the EVENT_IDX-safe loop: disable notifications, drain, re-enable, and drain again
/// if the guest added chains meanwhile).
///
/// `handle` gets each request's reader and writer (it calls the server); the reply is then
/// checked ([`Request::finish`](crate::Request::finish)) and its used length reported. A
/// malformed chain or a reply that breaks a rule is reported with used length 0, logged and
/// counted, never fatal. `notify` signals the guest (an irqfd or vhost-user call) whenever the
/// queue says a notification is due.
///
/// # Errors
///
/// Only failures of the queue itself or of `notify`.
pub fn process_queue<Q, M, H, N>(
    queue: &mut Q,
    mem: &M,
    buffers: &mut ChainBuffers,
    mut handle: H,
    mut notify: N,
) -> Result<QueueStats>
where
    Q: QueueT,
    M: GuestMemory,
    H: FnMut(&mut ChainReader<'_, M>, &mut ChainWriter<'_, M>),
    N: FnMut() -> io::Result<()>,
{
    let mut stats = QueueStats::default();
    loop {
        queue.disable_notification(mem).map_err(Error::Queue)?;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let table = DescTable::of_queue(queue);
            let head = chain.head_index();
            let completion = match buffers.parse_chain(&chain, table) {
                Ok(mut request) => {
                    let (reader, writer) = request.io();
                    handle(reader, writer);
                    match request.finish() {
                        Ok(c) => {
                            stats.completed += 1;
                            c
                        }
                        Err(e) => {
                            log::warn!("chain {head}: reply refused: {e}");
                            stats.bad_replies += 1;
                            Completion::NoReply
                        }
                    }
                }
                Err(e) => {
                    log::warn!("chain {head}: dropped: {e}");
                    stats.malformed += 1;
                    Completion::NoReply
                }
            };
            add_used(queue, mem, head, completion)?;
            if queue.needs_notification(mem).map_err(Error::Queue)? {
                notify().map_err(Error::Notify)?;
                stats.notifications += 1;
            }
        }
        if !queue.enable_notification(mem).map_err(Error::Queue)? {
            return Ok(stats);
        }
    }
}
