//! The vhost-user backend against vhost's own frontend: features, protocol features, queue
//! count and config space over the socket, and a second frontend after the first disconnects.
#![cfg(all(target_os = "linux", feature = "vhost-user"))]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::path::Path;

use fuse_server::NegotiationConfig;
use passthrough_linux::{Config, PassthroughFs};
use vhost::VhostBackend;
use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, Listener, VhostUserFrontend};
use virtiofs_device::DeviceConfig;
use virtiofs_device::vhost_user::{VhostUserFs, serve};

fn connect(path: &Path) -> Frontend {
    common::vhost_user::connect(path, 3)
}

fn handshake(frontend: &mut Frontend) {
    frontend.set_owner().unwrap();
    let features = frontend.get_features().unwrap();
    assert_ne!(features & (1 << 32), 0, "VIRTIO_F_VERSION_1");
    assert_ne!(features & (1 << 28), 0, "VIRTIO_RING_F_INDIRECT_DESC");
    assert_ne!(features & (1 << 29), 0, "VIRTIO_RING_F_EVENT_IDX");
    assert_ne!(features & (1 << 30), 0, "VHOST_USER_F_PROTOCOL_FEATURES");
    let protocol = frontend.get_protocol_features().unwrap();
    assert!(protocol.contains(VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::CONFIG));
    frontend.set_protocol_features(protocol).unwrap();
    assert_eq!(frontend.get_queue_num().unwrap(), 3);
    let (_, config) = frontend
        .get_config(0, 40, VhostUserConfigFlags::WRITABLE, &[0u8; 40])
        .unwrap();
    assert_eq!(&config[..6], b"vu-tag");
    assert!(config[6..36].iter().all(|&b| b == 0));
    assert_eq!(&config[36..40], &2u32.to_le_bytes());
}

#[test]
fn handshake_config_space_and_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let socket = dir.path().join("vu.sock");
    let fs = PassthroughFs::new(Config::builder(&share).build().unwrap()).unwrap();
    let config = DeviceConfig::builder("vu-tag")
        .request_queues(2)
        .build()
        .unwrap();
    let backend = VhostUserFs::new(config, fs, NegotiationConfig::default());
    let mut listener = Listener::new(&socket, true).unwrap();
    std::thread::spawn(move || serve(&backend, &mut listener));

    // The first frontend goes away (a guest shutdown, QEMU exiting) ...
    let mut first = connect(&socket);
    handshake(&mut first);
    drop(first);
    // ... and the daemon serves the next one on the same socket.
    let mut second = connect(&socket);
    handshake(&mut second);
}
