//! `share_mount_warnings`: the daemon says at start when the share's mount lets a guest root
//! leave set-user-id programs or device nodes that the host would honour (issue 11, item 11).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::path::Path;
use std::process::Command;

use common::needs_root;
use passthrough_linux::share_mount_warnings;

/// A tmpfs mounted with `opts` on `dir`, lazily unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, opts: &str) -> Tmpfs<'a> {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "none"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs -o {opts}");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

#[test]
#[ignore = "needs root (mounts a tmpfs)"]
fn warnings_name_missing_nosuid_and_nodev() {
    needs_root!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    {
        let _m = Tmpfs::mount(&dir, "size=1m,suid,dev");
        std::fs::create_dir(dir.join("share")).unwrap();
        let w = share_mount_warnings(&dir.join("share"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("nosuid"), "{w:?}");
        assert!(w[1].contains("nodev"), "{w:?}");
    }
    {
        let _m = Tmpfs::mount(&dir, "size=1m,nosuid,dev");
        let w = share_mount_warnings(&dir);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("nodev") && !w[0].contains("nosuid"), "{w:?}");
    }
    {
        let _m = Tmpfs::mount(&dir, "size=1m,nosuid,nodev");
        assert_eq!(share_mount_warnings(&dir), Vec::<String>::new());
    }
}

#[test]
fn a_share_that_cannot_be_checked_says_so() {
    let w = share_mount_warnings(Path::new("/nonexistent/share"));
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("cannot check"), "{w:?}");
}
