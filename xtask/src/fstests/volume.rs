//! A filesystem of bounded size under each share of a boot.
//!
//! fstests assumes TEST and SCRATCH are filesystems of their own. On virtio-fs they are
//! directories the daemons serve, and a test that fills its filesystem fills whatever holds
//! that directory: generic/103 fallocates all the free space it sees, others write until
//! ENOSPC. On the host's root filesystem that is the whole disk, for every process on the
//! machine, for as long as the test runs. So each share is the root of an ext4 filesystem in a
//! sparse image file of [`SHARE_BYTES`], loop-mounted `nodev,nosuid` for the boot and removed
//! after it: the host never lends more than that, and a fill test sees a small, full
//! filesystem, as on a block device. ext4, as the host directories of the earlier campaign
//! shards were.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::util;

/// The size of each share's filesystem (sparse: the host spends only what the tests write).
pub(super) const SHARE_BYTES: u64 = 16 << 30;

/// One share's filesystem, mounted on its directory until dropped.
pub(super) struct Volume {
    image: PathBuf,
    mount: PathBuf,
}

impl Volume {
    /// Makes `image` (an empty ext4 filesystem of [`SHARE_BYTES`]) and mounts it on `mount`,
    /// which is created.
    pub(super) fn create(image: PathBuf, mount: PathBuf) -> Result<Volume> {
        let file =
            File::create(&image).with_context(|| format!("cannot create {}", image.display()))?;
        file.set_len(SHARE_BYTES)?;
        drop(file);
        let mut mkfs = util::cmd("mke2fs");
        mkfs.args(["-q", "-F", "-t", "ext4", "-m", "0"])
            .args(["-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"])
            .arg(&image);
        util::run(mkfs)?;
        fs::create_dir_all(&mount)?;
        let mut mnt = util::cmd("mount");
        mnt.args(["-t", "ext4", "-o", "loop,nodev,nosuid"])
            .arg(&image)
            .arg(&mount);
        // From here on, dropping the volume unmounts it.
        let volume = Volume { image, mount };
        util::run(mnt).context("the shares are loop-mounted filesystems: this needs root")?;
        // An empty share, as fstests' own mkfs would leave it.
        let lost = volume.mount.join("lost+found");
        fs::remove_dir(&lost).with_context(|| format!("cannot remove {}", lost.display()))?;
        Ok(volume)
    }

    /// Unmounts whatever an earlier run left mounted on `mount` (a run that was killed).
    pub(super) fn clear_stale(mount: &Path) {
        if is_mount_point(mount) {
            unmount(mount);
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        unmount(&self.mount);
        if let Err(e) = fs::remove_file(&self.image) {
            eprintln!("cannot remove {}: {e}", self.image.display());
        }
    }
}

/// Whether `dir` is the root of a filesystem other than its parent's.
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(d), Some(Ok(p))) = (fs::metadata(dir), dir.parent().map(fs::metadata)) else {
        return false;
    };
    d.dev() != p.dev()
}

/// Unmounts `dir`, lazily if something still holds it (the loop device goes with the last user).
fn unmount(dir: &Path) {
    let quiet = |args: &[&str]| {
        util::cmd("umount")
            .args(args)
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !is_mount_point(dir) || quiet(&[]) || quiet(&["-l"]) {
        return;
    }
    eprintln!("cannot unmount {}", dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_told_from_directories() {
        assert!(is_mount_point(Path::new("/proc")));
        let dir = std::env::temp_dir().join(format!("xtask-volume-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(!is_mount_point(&dir));
        // Unmounting a directory that is no mount point does nothing.
        unmount(&dir);
        assert!(dir.is_dir());
        fs::remove_dir(&dir).unwrap();
    }
}
