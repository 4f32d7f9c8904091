//! The test that plays a macOS VMM: it embeds the in-process device with the macOS backend
//! (`passthrough-macos`, over its Linux adapter `LinuxHost` here) and drives it the way a VMM
//! with its own event loop does: no kick eventfds and no kick threads, a call to
//! `VirtioFs::process_queue` after each request it puts on a mock split queue
//! (virtio-queue's `MockSplitQueue`), and an `Interrupt` of its own that records which queue
//! the device interrupted.
//!
//! Both serving modes are played: inline (the request is served inside `process_queue`, so
//! the used element is there when it returns) and the request workers (the used element comes
//! with the interrupt). The session: INIT with what Linux 6.12 offers on virtio-fs, LOOKUP,
//! CREATE, WRITE, READ, OPENDIR, READDIR, RENAME, device reset, then a second INIT with what
//! Linux 7.3 offers, on new rings. Neither INIT may negotiate POSIX_ACL or ALLOW_IDMAP: the
//! macOS backend can honour neither (the flag that started this project).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::io;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use common::fs::seeded_share;
use common::fuse::{create, created, name};
use common::{Driver, Mem, check_reply};
use fuse_abi::{EntryOut, InitFlags, InitOut, Opcode, OpenOut, ReadIn, WriteIn, WriteOut};
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::{init_payload, request};
use passthrough_macos::host::LinuxHost;
use passthrough_macos::{Config, PassthroughFs};
use virtiofs_device::{DeviceConfig, Error, QueueResources, VirtioFs};
use zerocopy::{FromBytes, IntoBytes};

const SIZE: u16 = 64;
/// Buffers per head: the request, then a reply buffer of up to 8 KiB.
const SLOT: u64 = 0x4000;
/// Only a guard against a hang when the workers serve; nothing is timed.
const GUARD: Duration = Duration::from_secs(10);

type Device = VirtioFs<PassthroughFs<LinuxHost>, Mem>;

/// What Linux 6.12 offers on virtio-fs without a DAX window (`reference/kernel-fuse.md` §1:
/// 0x7bfffffb / 0x1ff), protocol 7.41.
fn offer_6_12() -> (u32, InitFlags) {
    (41, InitFlags::from_wire(0x7bff_fffb, 0x1ff))
}

/// What Linux 7.3 offers on virtio-fs without a DAX window and with `enable_uring` (the 0x5dd
/// base, PASSTHROUGH, HAS_INODE_DAX, OVER_IO_URING and HAS_IO_URING_BUFPOOL), protocol 7.46.
fn offer_7_3() -> (u32, InitFlags) {
    (
        46,
        InitFlags::from_wire(0x7bff_fffb, 0x5dd | 0x20 | 0x2 | 0x200 | 0x800),
    )
}

/// The VMM: the guest's driver (memory and rings), the device, and what the device's
/// interrupts reported.
struct Vmm {
    driver: Driver,
    device: Device,
    /// The used elements of each queue the VMM has seen.
    seen: Vec<u16>,
    interrupts: Receiver<usize>,
    interrupt_tx: Sender<usize>,
    inline: bool,
    dir: tempfile::TempDir,
}

impl Vmm {
    fn new(inline: bool) -> Vmm {
        // Requests carry uid/gid 1000: the share lets them create files.
        let dir = seeded_share();
        let fs = PassthroughFs::new(LinuxHost::default(), Config::new(dir.path())).unwrap();
        let config = DeviceConfig::builder("macos")
            .request_queues(1)
            .queue_size(SIZE)
            .inline(inline)
            .build()
            .unwrap();
        let device = VirtioFs::new(config, fs, NegotiationConfig::default());
        let (interrupt_tx, interrupts) = channel();
        Vmm {
            driver: Driver::new(0x100_0000),
            device,
            seen: Vec::new(),
            interrupts,
            interrupt_tx,
            inline,
            dir,
        }
    }

    /// DRIVER_OK: fresh rings at `base` for hiprio and the request queue, each interrupting
    /// through a closure that reports its queue index (no kick eventfds reach the device).
    fn activate(&mut self, base: u64) {
        let features = self.device.features();
        self.device.ack_features(features);
        let (queues, _kicks) = self.driver.queues(base, 2, SIZE, SLOT);
        self.seen = vec![0; queues.len()];
        let resources = queues
            .into_iter()
            .map(|queue| {
                let tx = Mutex::new(self.interrupt_tx.clone());
                let interrupt = move |queue: usize| -> io::Result<()> {
                    tx.lock()
                        .unwrap()
                        .send(queue)
                        .map_err(|_| io::Error::other("the VMM is gone"))
                };
                QueueResources::new(queue, interrupt)
            })
            .collect();
        self.device
            .activate(self.driver.memory(), resources)
            .unwrap();
    }

    fn used_idx(&self, q: usize) -> u16 {
        self.driver.rings[q].used_idx()
    }

    /// Writes `req` and a reply buffer of `reply_len` bytes (none if 0) as a chain on queue
    /// `q` and publishes it; returns its head.
    fn publish(&mut self, q: usize, req: &[u8], reply_len: u32) -> u16 {
        self.driver.rings[q].put(req, reply_len)
    }

    /// The guest kicked queue `q`: the VMM's event loop calls the device, then waits for the
    /// used element (already there when inline, announced by the interrupt otherwise).
    /// Returns the used length and the reply bytes.
    fn submit(&mut self, q: usize, req: &[u8], reply_len: u32) -> (u32, Vec<u8>) {
        let head = self.publish(q, req, reply_len);
        self.device.process_queue(q).unwrap();
        let expected = self.seen[q].wrapping_add(1);
        if self.inline {
            assert_eq!(
                self.used_idx(q),
                expected,
                "inline: the request is served before process_queue returns"
            );
            assert_eq!(
                self.interrupts.try_recv(),
                Ok(q),
                "inline: the interrupt came from inside process_queue"
            );
        } else {
            // A worker puts the used element, then interrupts (after unlocking the ring), so an
            // interrupt for the previous request may still arrive now: wait for both the used
            // element and an interrupt for this queue.
            let mut interrupted = false;
            while !interrupted || self.used_idx(q) != expected {
                let queue = self
                    .interrupts
                    .recv_timeout(GUARD)
                    .expect("a worker completes the request and interrupts");
                assert!(queue < 2, "an interrupt for queue {queue}");
                interrupted |= queue == q;
            }
        }
        let ring = &self.driver.rings[q];
        let (id, len) = ring.used_elem(self.seen[q]);
        assert_eq!(id, u32::from(head), "used element names the chain's head");
        self.seen[q] = expected;
        (len, ring.read_reply(head, len))
    }

    /// A request on the request queue; checks the reply's framing, returns (error, body).
    fn call(&mut self, opcode: Opcode, nodeid: u64, args: &[u8]) -> (i32, Vec<u8>) {
        let unique = self.driver.next_unique();
        let (used, reply) = self.submit(1, &request(opcode as u32, unique, nodeid, args), 0x2000);
        check_reply(opcode, unique, used, &reply)
    }

    /// INIT with `(minor, flags)`: returns the negotiated flags after checking what the macOS
    /// backend must never get.
    fn init(&mut self, (minor, offer): (u32, InitFlags)) -> InitFlags {
        let (err, body) = self.call(Opcode::Init, 0, &init_payload(minor, offer, 128 * 1024));
        assert_eq!(err, 0, "INIT at 7.{minor}");
        let out = InitOut::read_from_prefix(&body).unwrap().0;
        assert_eq!(out.major.get(), 7);
        assert_eq!(
            out.minor.get(),
            minor,
            "the server answers at the kernel's minor"
        );
        let flags = InitFlags::from_wire(out.flags.get(), out.flags2.get());
        assert!(
            !flags.contains(InitFlags::POSIX_ACL),
            "7.{minor}: {flags:?}"
        );
        assert!(
            !flags.contains(InitFlags::ALLOW_IDMAP),
            "7.{minor}: {flags:?}"
        );
        assert!(
            !flags.contains(InitFlags::PASSTHROUGH),
            "7.{minor}: {flags:?}"
        );
        assert!(
            !flags.contains(InitFlags::OVER_IO_URING),
            "7.{minor}: {flags:?}"
        );
        assert!(
            self.device.server().negotiated().is_some(),
            "the session is up"
        );
        flags
    }
}

fn play_the_vmm(inline: bool) {
    let mut vmm = Vmm::new(inline);
    vmm.activate(0);
    let first = vmm.init(offer_6_12());
    assert!(first.contains(InitFlags::SUBMOUNTS), "{first:?}");

    // LOOKUP a file the host made.
    let (err, body) = vmm.call(Opcode::Lookup, 1, &name("seed.txt"));
    assert_eq!(err, 0, "LOOKUP");
    let seed = EntryOut::read_from_prefix(&body).unwrap().0;
    assert_eq!(seed.attr.size.get(), 13);

    // CREATE, WRITE, READ.
    let (err, body) = vmm.call(Opcode::Create, 1, &create("new.txt"));
    assert_eq!(err, 0, "CREATE");
    let (entry, open) = created(&body);
    let fh = open.fh;
    let nodeid = entry.nodeid.get();

    let data = b"written through the embedded device";
    let write = WriteIn {
        fh,
        offset: 0.into(),
        size: u32::try_from(data.len()).unwrap().into(),
        ..WriteIn::default()
    };
    let mut args = write.as_bytes().to_vec();
    args.extend_from_slice(data);
    let (err, body) = vmm.call(Opcode::Write, nodeid, &args);
    assert_eq!(err, 0, "WRITE");
    let written = WriteOut::read_from_prefix(&body).unwrap().0.size.get();
    assert_eq!(written as usize, data.len());
    assert_eq!(std::fs::read(vmm.dir.path().join("new.txt")).unwrap(), data);

    let read = ReadIn {
        fh,
        offset: 8.into(),
        size: 200.into(),
        ..ReadIn::default()
    };
    let (err, body) = vmm.call(Opcode::Read, nodeid, read.as_bytes());
    assert_eq!(err, 0, "READ");
    assert_eq!(body, &data[8..]);

    // OPENDIR and READDIR of the root list both files.
    let (err, body) = vmm.call(Opcode::Opendir, 1, &[0u8; 8]);
    assert_eq!(err, 0, "OPENDIR");
    let dir_fh = OpenOut::read_from_prefix(&body).unwrap().0.fh;
    let readdir = ReadIn {
        fh: dir_fh,
        offset: 0.into(),
        size: 4096.into(),
        ..ReadIn::default()
    };
    let (err, body) = vmm.call(Opcode::Readdir, 1, readdir.as_bytes());
    assert_eq!(err, 0, "READDIR");
    let listing = String::from_utf8_lossy(&body);
    assert!(
        listing.contains("seed.txt") && listing.contains("new.txt"),
        "{listing}"
    );

    // RENAME new.txt to renamed.txt in the root.
    let mut args = 1u64.to_le_bytes().to_vec();
    args.extend_from_slice(&name("new.txt"));
    args.extend_from_slice(&name("renamed.txt"));
    let (err, _) = vmm.call(Opcode::Rename, 1, &args);
    assert_eq!(err, 0, "RENAME");
    assert!(!vmm.dir.path().join("new.txt").exists());
    assert_eq!(
        std::fs::read(vmm.dir.path().join("renamed.txt")).unwrap(),
        data
    );

    // Device reset (the driver wrote status 0): nothing is served any more, a handle the VMM
    // kept is inert, the session and every node id are gone.
    let stale = vmm.device.queue_handle(1).unwrap();
    vmm.device.reset();
    assert!(!vmm.device.is_active());
    assert!(vmm.device.server().negotiated().is_none());
    assert!(matches!(
        vmm.device.process_queue(1),
        Err(Error::QueueNotActive { index: 1 })
    ));
    let unique = vmm.driver.next_unique();
    let late = request(Opcode::Getattr as u32, unique, 1, &[0u8; 16]);
    let used_before = vmm.used_idx(1);
    vmm.publish(1, &late, 0x1000);
    stale.process();
    if inline {
        assert_eq!(
            vmm.used_idx(1),
            used_before,
            "a reset device served a request on its old ring"
        );
        assert!(
            vmm.interrupts.try_recv().is_err(),
            "an interrupt after reset"
        );
    }
    let old_ring = vmm.driver.rings[1].clone();

    // The rebooted guest: new rings elsewhere in memory, INIT as 7.3 offers it.
    vmm.activate(0x40_0000);
    let second = vmm.init(offer_7_3());
    assert!(second.contains(InitFlags::SUBMOUNTS), "{second:?}");
    let (err, body) = vmm.call(Opcode::Lookup, 1, &name("renamed.txt"));
    assert_eq!(err, 0, "LOOKUP after the reset");
    let renamed = EntryOut::read_from_prefix(&body).unwrap().0;
    assert_eq!(renamed.attr.size.get(), data.len() as u64);
    // The old node id died with the reset.
    let (err, _) = vmm.call(Opcode::Getattr, nodeid, &[0u8; 16]);
    assert_ne!(err, 0, "a node id from before the reset still resolves");

    // The hiprio queue takes a FORGET without a reply.
    let unique = vmm.driver.next_unique();
    let forget = request(
        Opcode::Forget as u32,
        unique,
        renamed.nodeid.get(),
        &1u64.to_le_bytes(),
    );
    let (used, _) = vmm.submit(0, &forget, 0);
    assert_eq!(used, 0);

    // With workers, the stale kick would have handed the request over before every request of
    // the second session: it would be on the old ring by now.
    let now = old_ring.used_idx();
    assert_eq!(
        now, used_before,
        "a reset device served a request on its old ring"
    );
    drop(stale);
}

#[test]
fn a_vmm_drives_the_macos_backend_inline() {
    play_the_vmm(true);
}

#[test]
fn a_vmm_drives_the_macos_backend_through_the_workers() {
    play_the_vmm(false);
}

#[test]
fn process_queue_names_only_active_queues() {
    let mut vmm = Vmm::new(true);
    assert!(matches!(
        vmm.device.process_queue(0),
        Err(Error::QueueNotActive { index: 0 })
    ));
    vmm.activate(0);
    vmm.device.process_queue(0).unwrap();
    vmm.device.process_queue(1).unwrap();
    assert!(matches!(
        vmm.device.process_queue(2),
        Err(Error::QueueNotActive { index: 2 })
    ));
    // Nothing was queued: no interrupt.
    assert!(vmm.interrupts.try_recv().is_err());
}
