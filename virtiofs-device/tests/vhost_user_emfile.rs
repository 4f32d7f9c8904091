//! `vhost_user::serve` when the process runs out of descriptors between two frontends: setting
//! up the next connection (its epoll threads, the accept, the connection's own thread) fails
//! with EMFILE, which is transient. Serving must wait it out and serve the next frontend, not
//! return. A test binary of its own: it fills this process's descriptor table.
#![cfg(all(target_os = "linux", feature = "daemon"))]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::fs::File;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use fuse_server::NegotiationConfig;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use passthrough_linux::{Config, PassthroughFs};
use vhost::vhost_user::Listener;
use virtiofs_device::DeviceConfig;
use virtiofs_device::vhost_user::{VhostUserFs, serve};

/// This process's soft descriptor limit during the test: small, so that filling the table is
/// quick.
const NOFILE: u64 = 256;
/// How long the table stays full.
const EXHAUSTED: Duration = Duration::from_millis(150);

/// Opens descriptors until the table is full, then closes `free` of them.
fn exhaust(free: usize) -> Vec<File> {
    let mut hoard = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        hoard.push(f);
    }
    hoard.truncate(hoard.len().saturating_sub(free));
    hoard
}

#[test]
fn running_out_of_descriptors_between_frontends_is_waited_out() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, NOFILE.min(hard), hard).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let socket = dir.path().join("vu.sock");
    let fs = PassthroughFs::new(Config::builder(&share).build().unwrap()).unwrap();
    let config = DeviceConfig::builder("emfile").build().unwrap();
    let backend = VhostUserFs::new(config, fs, NegotiationConfig::default());
    let mut listener = Listener::new(&socket, true).unwrap();
    let served = std::thread::spawn(move || serve(&backend, &mut listener));

    // With 0 to 9 descriptors left, the next connection's set-up fails at a different step
    // each time (epoll threads, exit events, accept, the connection's clone of its socket).
    for free in 0..10 {
        // A frontend that is (or will be) accepted while there are descriptors ...
        let probe = UnixStream::connect(&socket).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // ... leaves once there are none: serving sets up the next connection meanwhile.
        let hoard = exhaust(free);
        probe.shutdown(Shutdown::Both).unwrap();
        std::thread::sleep(EXHAUSTED);
        drop(hoard);
        drop(probe);
        assert!(
            !served.is_finished(),
            "serving returned with {free} descriptors left: {:?}",
            served.join()
        );
        // Descriptors are back: the next frontend is served.
        let mut frontend = match virtiofs_frontend::Frontend::connect(
            &socket,
            virtiofs_frontend::Config::new(1),
        ) {
            Ok(f) => f,
            Err(e) => panic!("{free} descriptors left: the next frontend is not served: {e}"),
        };
        frontend.init().unwrap();
    }
    assert!(!served.is_finished(), "{:?}", served.join());
}
