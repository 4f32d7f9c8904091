//! The control plane never waits on a request: a vhost-user frontend (vhost's own) sets up a
//! request queue, a GETATTR blocks in the backend, and SET_VRING_CALL, GET_VRING_BASE, a
//! disconnect and a second frontend are all answered while it is stuck. Also: a memory table
//! whose backing file is shorter than the region is refused, and the daemon lives on.
#![cfg(all(target_os = "linux", feature = "vhost-user"))]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fs::StuckFs;
use common::fuse::init_offering_none;
use common::{Layout, Ring};
use fuse_abi::Opcode;
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::request;
use vhost::vhost_user::message::{VhostUserHeaderFlag, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, Listener, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtiofs_device::DeviceConfig;
use virtiofs_device::vhost_user::{VhostUserFs, serve};
use vm_memory::mmap::MmapRegion;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap};
use vmm_sys_util::eventfd::EventFd;

const MEM_SIZE: u64 = 0x10_0000;
const QUEUE_SIZE: u16 = 16;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const DATA: u64 = 0x1_0000;
/// Long enough for a loaded machine, short enough to fail rather than hang.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `f` on its own thread and fails the test if it does not finish within [`TIMEOUT`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("{what} not answered within {TIMEOUT:?}"))
}

fn connect(path: &Path) -> Frontend {
    common::vhost_user::connect(path, 2)
}

/// SET_OWNER, features and protocol features (with REPLY_ACK: every message is acked).
fn handshake(frontend: &mut Frontend) {
    frontend.set_owner().unwrap();
    let features = frontend.get_features().unwrap();
    frontend
        .set_features(features & ((1 << 32) | (1 << 30)))
        .unwrap();
    let protocol = frontend.get_protocol_features().unwrap();
    frontend
        .set_protocol_features(
            protocol
                & (VhostUserProtocolFeatures::MQ
                    | VhostUserProtocolFeatures::CONFIG
                    | VhostUserProtocolFeatures::REPLY_ACK),
        )
        .unwrap();
    // From now on every message waits for its ack.
    frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    assert_eq!(frontend.get_queue_num().unwrap(), 2);
}

/// Guest memory on a tmpfs file the frontend shares with the daemon.
fn guest_memory() -> (File, GuestMemoryMmap) {
    let file = tempfile::tempfile_in("/dev/shm")
        .or_else(|_| tempfile::tempfile())
        .unwrap();
    file.set_len(MEM_SIZE).unwrap();
    let region =
        MmapRegion::from_file(FileOffset::new(file.try_clone().unwrap(), 0), 0x10_0000).unwrap();
    let mem =
        GuestMemoryMmap::from_regions(vec![GuestRegionMmap::new(region, GuestAddress(0)).unwrap()])
            .unwrap();
    (file, mem)
}

fn region(file: &File, size: u64) -> VhostUserMemoryRegionInfo {
    VhostUserMemoryRegionInfo {
        guest_phys_addr: 0,
        memory_size: size,
        // The daemon only uses it to translate ring addresses: any address works.
        userspace_addr: 0x7000_0000_0000,
        mmap_offset: 0,
        mmap_handle: file.as_raw_fd(),
    }
}

/// Sets up request queue 1 at DESC/AVAIL/USED and returns its kick and call eventfds.
fn start_queue(frontend: &mut Frontend, file: &File) -> (EventFd, EventFd) {
    start_queue_of_size(frontend, file, QUEUE_SIZE)
}

fn start_queue_of_size(frontend: &mut Frontend, file: &File, size: u16) -> (EventFd, EventFd) {
    frontend.set_mem_table(&[region(file, MEM_SIZE)]).unwrap();
    frontend.set_vring_num(1, size).unwrap();
    let va = |gpa: u64| 0x7000_0000_0000 + gpa;
    frontend
        .set_vring_addr(
            1,
            &VringConfigData {
                queue_max_size: QUEUE_SIZE,
                queue_size: size,
                flags: 0,
                desc_table_addr: va(DESC),
                used_ring_addr: va(USED),
                avail_ring_addr: va(AVAIL),
                log_addr: None,
            },
        )
        .unwrap();
    frontend.set_vring_base(1, 0).unwrap();
    let call = EventFd::new(0).unwrap();
    let kick = EventFd::new(0).unwrap();
    frontend.set_vring_call(1, &call).unwrap();
    frontend.set_vring_kick(1, &kick).unwrap();
    frontend.set_vring_enable(1, true).unwrap();
    (kick, call)
}

/// The driver's side of request queue 1, at DESC/AVAIL/USED with its buffers from DATA.
fn request_queue(mem: &GuestMemoryMmap) -> Ring {
    let layout = Layout {
        size: QUEUE_SIZE,
        desc: DESC,
        avail: AVAIL,
        used: USED,
        buffers: DATA,
        slot: 0x2000,
    };
    Ring::new(mem, layout)
}

/// Puts `req` with a 4 KiB reply buffer on the queue and kicks.
fn submit(ring: &mut Ring, kick: &EventFd, req: &[u8]) -> u16 {
    let head = ring.put(req, 0x1000);
    kick.write(1).unwrap();
    head
}

fn start_daemon(dir: &Path) -> (std::path::PathBuf, Sender<()>, Receiver<()>) {
    let socket = dir.join("vu.sock");
    let (fs, entered, release) = StuckFs::new();
    let config = DeviceConfig::builder("stuck")
        .request_queues(1)
        .queue_size(64)
        .build()
        .unwrap();
    let backend = VhostUserFs::new(config, fs, NegotiationConfig::default());
    let mut listener = Listener::new(&socket, true).unwrap();
    std::thread::spawn(move || serve(&backend, &mut listener));
    (socket, release, entered)
}

#[test]
fn control_plane_and_reconnect_are_served_while_a_request_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, release, entered) = start_daemon(dir.path());

    let mut first = connect(&socket);
    handshake(&mut first);
    let (file, mem) = guest_memory();
    let (kick, _call) = start_queue(&mut first, &file);
    let mut driver = request_queue(&mem);
    let init = request(Opcode::Init as u32, 2, 0, &init_offering_none());
    submit(&mut driver, &kick, &init);
    driver.wait_used(1);

    // GETATTR blocks in the backend.
    submit(
        &mut driver,
        &kick,
        &request(Opcode::Getattr as u32, 4, 1, &[0u8; 16]),
    );
    entered
        .recv_timeout(TIMEOUT)
        .expect("GETATTR reaches the backend");

    // The control plane answers while it is stuck ...
    let first = Arc::new(Mutex::new(first));
    let f = Arc::clone(&first);
    within("SET_VRING_CALL", move || {
        let call = EventFd::new(0).unwrap();
        f.lock().unwrap().set_vring_call(1, &call).unwrap();
    });
    let f = Arc::clone(&first);
    let base = within("GET_VRING_BASE", move || {
        f.lock().unwrap().get_vring_base(1).unwrap()
    });
    assert_eq!(base, 2, "both requests were taken off the ring");

    // ... and after the frontend goes away, the next one is served.
    drop(first);
    let socket2 = socket.clone();
    within("a second frontend's handshake", move || {
        let mut second = connect(&socket2);
        handshake(&mut second);
    });

    // The stuck request ends now; the ring of the dead connection is never written.
    release.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        driver.used_idx(),
        1,
        "a stale completion reached the old ring"
    );
}

#[test]
fn a_memory_region_past_its_file_end_is_refused_and_the_daemon_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _release, _entered) = start_daemon(dir.path());

    let mut first = connect(&socket);
    handshake(&mut first);
    let (file, _mem) = guest_memory();
    // The frontend shrinks the file below the region it announces.
    file.set_len(MEM_SIZE / 4).unwrap();
    let refused = within("SET_MEM_TABLE", move || {
        // A failed ack (then vhost-user-backend ends the connection).
        first.set_mem_table(&[region(&file, MEM_SIZE)]).is_err()
    });
    assert!(refused, "a region past its file's end was accepted");

    // The same through ADD_MEM_REG (CONFIGURE_MEM_SLOTS).
    let socket2 = socket.clone();
    let refused = within("ADD_MEM_REG", move || {
        let mut second = connect(&socket2);
        handshake(&mut second);
        let protocol = second.get_protocol_features().unwrap();
        second
            .set_protocol_features(
                protocol
                    & (VhostUserProtocolFeatures::MQ
                        | VhostUserProtocolFeatures::REPLY_ACK
                        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS),
            )
            .unwrap();
        let (file, _mem) = guest_memory();
        file.set_len(4096).unwrap();
        second.add_mem_region(&region(&file, MEM_SIZE)).is_err()
    });
    assert!(
        refused,
        "ADD_MEM_REG of a region past its file's end was accepted"
    );

    let socket3 = socket.clone();
    within("the next frontend's handshake", move || {
        let mut third = connect(&socket3);
        handshake(&mut third);
    });
}

#[test]
fn a_queue_whose_size_is_not_a_power_of_two_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _release, _entered) = start_daemon(dir.path());

    let mut frontend = connect(&socket);
    handshake(&mut frontend);
    let (file, mem) = guest_memory();
    // vhost-user-backend acks SET_VRING_NUM 3 (the backend has no say in it).
    let (kick, _call) = start_queue_of_size(&mut frontend, &file, 3);
    let mut driver = request_queue(&mem);
    let init = request(Opcode::Init as u32, 2, 0, &init_offering_none());
    submit(&mut driver, &kick, &init);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(driver.used_idx(), 0, "a queue of size 3 was served");

    // A valid size makes it a queue again.
    frontend.set_vring_num(1, QUEUE_SIZE).unwrap();
    kick.write(1).unwrap();
    driver.wait_used(1);
}
