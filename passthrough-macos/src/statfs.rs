//! Host `statfs` to the guest's STATFS reply, and the volume facts the backend probes at
//! startup.
//!
//! Darwin's `statfs` (not `statvfs`, whose counts are 32-bit and whose `f_bsize` is the I/O
//! size) gives 64-bit counts, the block size in `f_bsize`, the filesystem type name and the
//! mount flags (reference/macos.md §2.8): `frsize` and `bsize` are both `f_bsize`; `namelen`
//! comes from `pathconf(_PC_NAME_MAX)`.

use fuse_server::StatFs;

use crate::darwin_abi;

/// Linux's longest name ([`fuse_abi::limits::NAME_MAX`]), used when `pathconf` has no answer.
pub const DEFAULT_NAMELEN: u32 = 255;
const _: () = assert!(DEFAULT_NAMELEN as usize == fuse_abi::limits::NAME_MAX);

/// The fields of Darwin's `struct statfs` the backend uses, portable; on macOS built from a
/// `libc::statfs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStatfs {
    /// Fundamental block size (`f_bsize`).
    pub bsize: u32,
    /// Optimal transfer size (`f_iosize`).
    pub iosize: i32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Mount flags (`MNT_RDONLY`, `MNT_DOVOLFS`, ...).
    pub flags: u32,
    /// The filesystem type name, NUL-padded (`"apfs"`, `"hfs"`, `"msdos"`, `"exfat"`...).
    pub fstypename: [u8; 16],
}

impl HostStatfs {
    /// The guest's STATFS reply; `namelen` is `pathconf(_PC_NAME_MAX)` if it answered.
    pub fn to_statfs(&self, namelen: Option<u32>) -> StatFs {
        StatFs {
            blocks: self.blocks,
            bfree: self.bfree,
            bavail: self.bavail,
            files: self.files,
            ffree: self.ffree,
            bsize: self.bsize,
            namelen: namelen.unwrap_or(DEFAULT_NAMELEN),
            frsize: self.bsize,
        }
    }

    /// The filesystem type name up to its NUL; empty if it is not UTF-8.
    pub fn fstypename(&self) -> &str {
        let len = self
            .fstypename
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.fstypename.len());
        self.fstypename
            .get(..len)
            .and_then(|name| core::str::from_utf8(name).ok())
            .unwrap_or("")
    }

    /// Whether `/.vol/<dev>/<ino>` lookups work on this volume (`MNT_DOVOLFS`); FSKit volumes
    /// and some network filesystems lack it.
    pub const fn supports_volfs(&self) -> bool {
        self.has(darwin_abi::MNT_DOVOLFS)
    }

    /// Whether the volume is mounted read-only.
    pub const fn read_only(&self) -> bool {
        self.has(darwin_abi::MNT_RDONLY)
    }

    /// Whether the volume stores user extended attributes (the override needs them).
    pub const fn user_xattrs(&self) -> bool {
        !self.has(darwin_abi::MNT_NOUSERXATTR)
    }

    /// Whether a mount flag (a non-negative `c_int` in `libc`) is set.
    const fn has(&self, flag: i32) -> bool {
        self.flags & flag.unsigned_abs() != 0
    }
}

#[cfg(target_os = "macos")]
impl From<&libc::statfs> for HostStatfs {
    fn from(st: &libc::statfs) -> HostStatfs {
        let mut fstypename = [0u8; 16];
        for (byte, &c) in fstypename.iter_mut().zip(st.f_fstypename.iter()) {
            let [b] = c.to_ne_bytes();
            *byte = b;
        }
        HostStatfs {
            bsize: st.f_bsize,
            iosize: st.f_iosize,
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            files: st.f_files,
            ffree: st.f_ffree,
            flags: st.f_flags,
            fstypename,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (o, b) in out.iter_mut().zip(s.bytes()) {
            *o = b;
        }
        out
    }

    #[test]
    fn counts_are_not_truncated() {
        let host = HostStatfs {
            bsize: 4096,
            iosize: 1 << 20,
            blocks: 1 << 40,
            bfree: (1 << 33) + 5,
            bavail: (1 << 32) + 1,
            files: u64::MAX,
            ffree: 1 << 35,
            flags: 0,
            fstypename: name("apfs"),
        };
        assert_eq!(
            host.to_statfs(Some(255)),
            StatFs {
                blocks: 1 << 40,
                bfree: (1 << 33) + 5,
                bavail: (1 << 32) + 1,
                files: u64::MAX,
                ffree: 1 << 35,
                bsize: 4096,
                namelen: 255,
                frsize: 4096,
            }
        );
        assert_eq!(host.to_statfs(None).namelen, DEFAULT_NAMELEN);
        assert_eq!(host.to_statfs(Some(1024)).namelen, 1024);
    }

    #[test]
    fn type_names() {
        let mut host = HostStatfs {
            fstypename: name("apfs"),
            ..HostStatfs::default()
        };
        assert_eq!(host.fstypename(), "apfs");
        host.fstypename = [b'x'; 16];
        assert_eq!(host.fstypename(), "xxxxxxxxxxxxxxxx");
        host.fstypename = name("\u{ff}");
        assert_eq!(host.fstypename(), "\u{ff}");
        host.fstypename[0] = 0xff;
        assert_eq!(host.fstypename(), "");
        assert_eq!(HostStatfs::default().fstypename(), "");
    }

    #[test]
    fn mount_flags() {
        // Values as in darwin_abi: MNT_RDONLY 1, MNT_DOVOLFS 0x8000, MNT_NOUSERXATTR 0x1000000.
        let apfs = HostStatfs {
            flags: 0x8000,
            ..HostStatfs::default()
        };
        assert!(apfs.supports_volfs() && !apfs.read_only() && apfs.user_xattrs());
        let fskit = HostStatfs {
            flags: 0x1 | 0x100_0000,
            ..HostStatfs::default()
        };
        assert!(!fskit.supports_volfs() && fskit.read_only() && !fskit.user_xattrs());
    }
}
