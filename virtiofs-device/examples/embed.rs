//! A minimal embedding: the VMM side of a virtio-fs device in its own process, as a macOS VMM
//! (or any VMM with an event loop of its own and no vhost-user) does it.
//!
//! ```text
//! cargo run -p virtiofs-device --no-default-features --example embed [-- SHARED_DIR]
//! ```
//!
//! The VMM builds the backend (`passthrough-macos`: `DarwinHost` on macOS, its Linux adapter
//! `LinuxHost` elsewhere), the device, and at DRIVER_OK hands over guest memory and the queues
//! with an [`Interrupt`] of its own. Its event loop then calls
//! [`VirtioFs::process_queue`] for every queue notification it decodes (a virtio-mmio
//! QueueNotify write, a PCI notify BAR access, a kqueue or epoll event): here the "guest" is a
//! driver stand-in that puts one FUSE_INIT on request queue 1 of a mock split ring, notifies,
//! and reads the reply once the interrupt arrived.
//!
//! Builds on Linux and macOS; `cargo xtask check-macos` type-checks and lints it for the Apple
//! targets. It has only ever run on Linux.
#![allow(clippy::unwrap_used)] // an example: every failure is fatal

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use fuse_abi::{InitFlags, InitOut, Opcode, OutHeader};
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::{init_payload, request};
use passthrough_macos::{Config, PassthroughFs};
use virtio_queue::Queue;
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use virtiofs_device::{DeviceConfig, Interrupt, QueueResources, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use zerocopy::FromBytes;

#[cfg(target_os = "macos")]
type Host = passthrough_macos::host::DarwinHost;
#[cfg(target_os = "linux")]
type Host = passthrough_macos::host::LinuxHost;

type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

const QUEUE_SIZE: u16 = 64;

/// The VMM's interrupt line for the device: an interrupt status register (bit 0: used buffer
/// notification, as virtio-mmio's InterruptStatus) and a wake-up of the VMM's loop, which
/// would inject the IRQ into the vCPU (here: a channel).
struct IrqLine {
    status: AtomicU32,
    wake: SyncSender<usize>,
}

impl Interrupt for IrqLine {
    fn signal(&self, queue: usize) -> io::Result<()> {
        self.status.fetch_or(1, Ordering::SeqCst);
        // A full channel already holds a wake-up: the interrupt is pending either way.
        let _ = self.wake.try_send(queue);
        Ok(())
    }
}

fn main() {
    let shared: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(std::env::temp_dir, PathBuf::from);

    // The device, as the VMM creates it at startup.
    let fs = PassthroughFs::new(Host::new(), Config::new(&shared)).unwrap();
    let config = DeviceConfig::builder("share")
        .request_queues(1)
        .queue_size(QUEUE_SIZE)
        .build()
        .unwrap();
    let mut device: VirtioFs<PassthroughFs<Host>, Mem> =
        VirtioFs::new(config, fs, NegotiationConfig::default());

    // The guest's memory and, standing in for the guest driver, two split rings in it.
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let rings: Vec<MockSplitQueue<'_, GuestMemoryMmap>> = (0..2u64)
        .map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), QUEUE_SIZE))
        .collect();

    // The driver negotiated features and set DRIVER_OK: activate.
    device.ack_features(device.features());
    let (wake, woken): (SyncSender<usize>, Receiver<usize>) = sync_channel(1);
    let irq = Arc::new(IrqLine {
        status: AtomicU32::new(0),
        wake,
    });
    let queues = rings
        .iter()
        .map(|ring| {
            let queue: Queue = ring.create_queue().unwrap();
            QueueResources {
                queue,
                interrupt: Arc::clone(&irq) as Arc<dyn Interrupt>,
            }
        })
        .collect();
    device
        .activate(GuestMemoryAtomic::new(mem.clone()), queues)
        .unwrap();

    // The guest puts FUSE_INIT on request queue 1 and notifies.
    let req = request(
        Opcode::Init as u32,
        2,
        0,
        &init_payload(41, InitFlags::all(), 1 << 17),
    );
    let (req_at, reply_at) = (GuestAddress(0x10_0000), GuestAddress(0x20_0000));
    mem.write_slice(&req, req_at).unwrap();
    let ring = &rings[1];
    let descs = [
        Descriptor::new(req_at.0, u32::try_from(req.len()).unwrap(), 1, 1),
        Descriptor::new(reply_at.0, 4096, 2, 0),
    ];
    for (i, desc) in (0u64..).zip(descs) {
        let at = ring.desc_table_addr().unchecked_add(16 * i);
        mem.write_obj(RawDescriptor::from(desc), at).unwrap();
    }
    mem.write_obj(0u16, ring.avail_addr().unchecked_add(4))
        .unwrap();
    mem.write_obj(1u16, ring.avail_addr().unchecked_add(2))
        .unwrap();

    // The VMM's event loop: a queue notification for queue 1 arrives.
    let notified = 1;
    device.process_queue(notified).unwrap();

    // A request worker served it and raised the interrupt; the guest reads the reply.
    let queue = woken.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(irq.status.swap(0, Ordering::SeqCst), 1);
    let used_len: u32 = mem.read_obj(ring.used_addr().unchecked_add(8)).unwrap();
    let mut reply = vec![0u8; usize::try_from(used_len).unwrap()];
    mem.read_slice(&mut reply, reply_at).unwrap();
    let (header, body) = OutHeader::read_from_prefix(&reply).unwrap();
    let init = InitOut::read_from_prefix(body).unwrap().0;
    let flags = InitFlags::from_wire(init.flags.get(), init.flags2.get());
    println!(
        "queue {queue}: FUSE_INIT answered (error {}), protocol 7.{}, max_write {}",
        header.error.get(),
        init.minor.get(),
        init.max_write.get()
    );
    println!("negotiated: {flags:?}");
    assert!(!flags.contains(InitFlags::POSIX_ACL) && !flags.contains(InitFlags::ALLOW_IDMAP));

    // The driver resets the device (status 0): serving stops, the session is forgotten.
    device.reset();
    println!("reset: active = {}", device.is_active());
}
