//! vhost's own frontend, for the tests that talk to a vhost-user daemon.

use std::path::Path;
use std::time::{Duration, Instant};

use vhost::vhost_user::Frontend;

/// Connects a frontend of `queues` queues to the daemon's socket at `path`, trying again
/// until the daemon listens (under a 10 s hang guard).
pub(crate) fn connect(path: &Path, queues: u64) -> Frontend {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Frontend::connect(path, queues) {
            Ok(f) => return f,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
