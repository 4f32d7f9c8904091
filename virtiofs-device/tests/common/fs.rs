//! Backends for tests about the device rather than about a file system, and the temporary
//! directories the tests' real backends share.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use fuse_abi::Errno;
use fuse_server::{AttrReply, Capabilities, Context, FileSystem, FsResult, Handle, NodeId};

/// Answers INIT and nothing else (ENOSYS): every request gets a reply.
#[derive(Debug)]
pub(crate) struct NullFs;

impl FileSystem for NullFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
}

/// GETATTR blocks until the test lets it go (then fails with EIO); everything else is the
/// trait's default.
#[derive(Debug)]
pub(crate) struct StuckFs {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl StuckFs {
    /// The backend, the receiver of a message each time a GETATTR enters it, and the sender
    /// that lets one go.
    pub(crate) fn new() -> (StuckFs, Receiver<()>, Sender<()>) {
        let (entered_tx, entered) = channel();
        let (release, release_rx) = channel();
        let fs = StuckFs {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        };
        (fs, entered, release)
    }
}

impl FileSystem for StuckFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }

    fn getattr(&self, _ctx: &Context, _nodeid: NodeId, _fh: Option<Handle>) -> FsResult<AttrReply> {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
        Err(Errno::EIO)
    }
}

/// Every GETATTR takes `nap` (spinning for `spin`, sleeping otherwise), then fails with EIO: a
/// backend whose requests cost a known time.
#[derive(Debug)]
pub(crate) struct NapFs {
    pub(crate) nap: std::time::Duration,
    pub(crate) spin: bool,
}

impl FileSystem for NapFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }

    fn getattr(&self, _ctx: &Context, _nodeid: NodeId, _fh: Option<Handle>) -> FsResult<AttrReply> {
        if self.spin {
            let start = std::time::Instant::now();
            while start.elapsed() < self.nap {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(self.nap);
        }
        Err(Errno::EIO)
    }
}

/// A temporary directory to share that every uid may create files in (requests run with the
/// uid and gid they carry, or as the test's own user).
pub(crate) fn open_share() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    dir
}

/// An [`open_share`] holding `seed.txt`, 13 bytes the host wrote ("from the host").
pub(crate) fn seeded_share() -> tempfile::TempDir {
    let dir = open_share();
    std::fs::write(dir.path().join("seed.txt"), b"from the host").unwrap();
    dir
}
