//! What the root tier's tests on a host `/dev/fuse` mount share.

use std::path::Path;
use std::process::{Command, Stdio};

/// Mounts fusectl at `/sys/fs/fuse/connections` if it is not there yet (for
/// [`abort_connection`]); a failure is ignored (it may be mounted already).
pub(crate) fn mount_fusectl() {
    let _ = Command::new("mount")
        .args(["-t", "fusectl", "none", "/sys/fs/fuse/connections"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Aborts the FUSE connection mounted at `dir` (fusectl) so a broken server cannot hang.
pub(crate) fn abort_connection(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = dir.to_string_lossy();
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) == Some(&target.as_ref()) {
            if let Some(minor) = fields.get(2).and_then(|d| d.split(':').nth(1)) {
                let _ = std::fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), "1");
            }
        }
    }
}
