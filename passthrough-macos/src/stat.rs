//! Host `stat` results to the guest's `fuse_attr`, with the override applied.
//!
//! [`HostStat`] holds the fields of Darwin's `struct stat` the backend uses, with Darwin's
//! types (`mode_t` and `nlink_t` are 16 bits, `dev_t` and `blksize_t` 32-bit signed, sizes and
//! times signed), so that the conversion is testable on any OS; on macOS it is built from a
//! `libc::stat`. [`HostStat::to_attr`] produces the guest's [`FileAttr`]
//! (reference/macos.md §2.5):
//!
//! * `uid`, `gid` and `mode` come from the `user.containers.override_stat` value when there is
//!   one ([`OverrideStat::apply`], [`crate::override_stat::compose_mode`]);
//! * `rdev` is re-encoded from Darwin's layout to Linux's `new_encode_dev` for real host device
//!   nodes, comes from the stored guest value for emulated ones, and is 0 otherwise;
//! * negative sizes, block counts or block sizes (never reported by a sane host) become 0, and
//!   an out-of-range nanosecond count becomes 0;
//! * `ino` is the host's inode number; `flags` (SUBMOUNT, DAX) are the caller's to set.

use fuse_abi::{AttrFlags, mode};
use fuse_server::{FileAttr, Timespec};

use crate::darwin_abi;
use crate::dev;
use crate::override_stat::{self, OverrideStat};
use crate::time::HostTimespec;

/// The fields of Darwin's `struct stat` the backend uses, in Darwin's types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostStat {
    /// The device holding the inode (part of the identity key and of `/.vol` paths).
    pub dev: i32,
    /// The inode number.
    pub ino: u64,
    /// Type and permission bits (`mode_t` is 16 bits on Darwin).
    pub mode: u16,
    /// Hard links (16 bits on Darwin).
    pub nlink: u16,
    /// Host owner.
    pub uid: u32,
    /// Host group.
    pub gid: u32,
    /// Device number of a device node, Darwin layout.
    pub rdev: i32,
    /// Size in bytes.
    pub size: i64,
    /// 512-byte blocks allocated.
    pub blocks: i64,
    /// Preferred I/O size.
    pub blksize: i32,
    /// Last access.
    pub atime: HostTimespec,
    /// Last modification.
    pub mtime: HostTimespec,
    /// Last status change.
    pub ctime: HostTimespec,
    /// Creation time (no `fuse_attr` slot; STATX only).
    pub birthtime: HostTimespec,
    /// `chflags(2)` flags (`UF_IMMUTABLE`...); not sent to the guest.
    pub flags: u32,
}

impl HostStat {
    /// The identity key of the host inode: (device, inode number).
    pub const fn identity(&self) -> (i32, u64) {
        (self.dev, self.ino)
    }

    /// The host mode in the guest's width (the type bits have the same values).
    pub const fn mode(&self) -> u32 {
        self.mode as u32
    }

    /// The host file type bits (`S_IFMT`), Linux width.
    pub const fn file_type(&self) -> u32 {
        self.mode() & mode::S_IFMT
    }

    /// Whether the host object is a directory.
    pub const fn is_dir(&self) -> bool {
        self.file_type() == mode::S_IFDIR
    }

    /// Whether the host object is a symbolic link.
    pub const fn is_symlink(&self) -> bool {
        self.file_type() == mode::S_IFLNK
    }

    /// The guest's attributes. `over` is the decoded override (`None` without the attribute);
    /// `emulated_rdev` the stored guest device number of an emulated device node
    /// ([`override_stat::RDEV_XATTR_NAME`]), if any.
    pub fn to_attr(&self, over: Option<&OverrideStat>, emulated_rdev: Option<u32>) -> FileAttr {
        let (uid, gid, guest_mode) = match over {
            Some(over) => over.apply(self.uid, self.gid, self.mode()),
            None => (self.uid, self.gid, self.mode()),
        };
        FileAttr {
            ino: self.ino,
            size: non_negative(self.size),
            blocks: non_negative(self.blocks),
            atime: guest_time(self.atime),
            mtime: guest_time(self.mtime),
            ctime: guest_time(self.ctime),
            mode: guest_mode,
            nlink: u32::from(self.nlink),
            uid,
            gid,
            rdev: self.guest_rdev(guest_mode, emulated_rdev),
            blksize: u32::try_from(self.blksize).unwrap_or(0),
            flags: AttrFlags::empty(),
        }
    }

    /// The guest's `rdev` for the guest-visible `guest_mode`.
    fn guest_rdev(&self, guest_mode: u32, emulated_rdev: Option<u32>) -> u32 {
        let guest_is_device = matches!(guest_mode & mode::S_IFMT, mode::S_IFCHR | mode::S_IFBLK);
        if !guest_is_device {
            0
        } else if override_stat::is_emulated_device(self.mode(), guest_mode) {
            emulated_rdev.unwrap_or(0)
        } else {
            // A real host device node: Darwin's layout to Linux's (0 if the minor is too wide).
            dev::darwin_to_linux(self.rdev).unwrap_or(0)
        }
    }
}

/// The `fuse_dirent.type` for a host directory entry. With the entry's guest mode known (after
/// a lookup, as READDIRPLUS has it) the type comes from that mode, so emulated special files
/// show their guest type; otherwise the host's `d_type` is used (the values are the same on
/// both systems), except Darwin's whiteout type, which a Linux guest never sees from a host
/// directory: `DT_UNKNOWN`, as for any value Linux does not define.
///
/// Note that a plain READDIR therefore reports `DT_REG` for an emulated device, FIFO or
/// socket (libkrun's behaviour); tools that trust `d_type` see the difference until they stat.
pub const fn dirent_type(host_dtype: u8, guest_mode: Option<u32>) -> u32 {
    if let Some(guest_mode) = guest_mode {
        return mode::dt_from_mode(guest_mode);
    }
    match host_dtype {
        darwin_abi::DT_FIFO => mode::DT_FIFO,
        darwin_abi::DT_CHR => mode::DT_CHR,
        darwin_abi::DT_DIR => mode::DT_DIR,
        darwin_abi::DT_BLK => mode::DT_BLK,
        darwin_abi::DT_REG => mode::DT_REG,
        darwin_abi::DT_LNK => mode::DT_LNK,
        darwin_abi::DT_SOCK => mode::DT_SOCK,
        _ => mode::DT_UNKNOWN,
    }
}

/// A host count as the guest's unsigned one (negative: 0).
fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A host time as the guest's: seconds as they are (negative times stay negative), nanoseconds
/// outside 0..10⁹ become 0.
fn guest_time(time: HostTimespec) -> Timespec {
    let nsec = u32::try_from(time.nsec)
        .ok()
        .filter(|&nsec| nsec < 1_000_000_000)
        .unwrap_or(0);
    Timespec {
        sec: time.sec,
        nsec,
    }
}

#[cfg(target_os = "macos")]
impl From<&libc::stat> for HostStat {
    fn from(st: &libc::stat) -> HostStat {
        HostStat {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            size: st.st_size,
            blocks: st.st_blocks,
            blksize: st.st_blksize,
            atime: HostTimespec {
                sec: st.st_atime,
                nsec: st.st_atime_nsec,
            },
            mtime: HostTimespec {
                sec: st.st_mtime,
                nsec: st.st_mtime_nsec,
            },
            ctime: HostTimespec {
                sec: st.st_ctime,
                nsec: st.st_ctime_nsec,
            },
            birthtime: HostTimespec {
                sec: st.st_birthtime,
                nsec: st.st_birthtime_nsec,
            },
            flags: st.st_flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::darwin_abi as d;

    const REG: u32 = mode::S_IFREG;
    const DIR: u32 = mode::S_IFDIR;
    const CHR: u32 = mode::S_IFCHR;
    const BLK: u32 = mode::S_IFBLK;
    const FIFO: u32 = mode::S_IFIFO;

    fn t(sec: i64, nsec: i64) -> HostTimespec {
        HostTimespec { sec, nsec }
    }

    fn host(mode: u16) -> HostStat {
        HostStat {
            dev: 0x0100_0004,
            ino: 0x1234_5678_9abc,
            mode,
            nlink: 3,
            uid: 501,
            gid: 20,
            rdev: 0,
            size: 4096,
            blocks: 8,
            blksize: 4096,
            atime: t(1_700_000_000, 1),
            mtime: t(1_700_000_001, 999_999_999),
            ctime: t(-5, 500),
            birthtime: t(1_600_000_000, 0),
            flags: 0,
        }
    }

    #[test]
    fn plain_file_without_override() {
        let st = host(d::S_IFREG | 0o644);
        let attr = st.to_attr(None, None);
        assert_eq!(
            attr,
            FileAttr {
                ino: 0x1234_5678_9abc,
                size: 4096,
                blocks: 8,
                atime: Timespec {
                    sec: 1_700_000_000,
                    nsec: 1
                },
                mtime: Timespec {
                    sec: 1_700_000_001,
                    nsec: 999_999_999
                },
                ctime: Timespec { sec: -5, nsec: 500 },
                mode: REG | 0o644,
                nlink: 3,
                uid: 501,
                gid: 20,
                rdev: 0,
                blksize: 4096,
                flags: AttrFlags::empty(),
            }
        );
        assert_eq!(st.identity(), (0x0100_0004, 0x1234_5678_9abc));
        assert!(!st.is_dir() && !st.is_symlink());
    }

    #[test]
    fn override_applies_owner_and_mode() {
        let st = host(d::S_IFREG | 0o600);
        let over = OverrideStat::new(0, 0, REG | 0o755);
        let attr = st.to_attr(Some(&over), None);
        assert_eq!((attr.uid, attr.gid, attr.mode), (0, 0, REG | 0o755));
        // Permission bits only: the host type stays.
        let dir = host(d::S_IFDIR | 0o700);
        let attr = dir.to_attr(OverrideStat::decode(b"1000:1000:0755").as_ref(), None);
        assert_eq!((attr.uid, attr.gid, attr.mode), (1000, 1000, DIR | 0o755));
        assert!(dir.is_dir());
        // Unknown fields keep the host's.
        let attr = st.to_attr(OverrideStat::decode(b"x:7:x").as_ref(), None);
        assert_eq!((attr.uid, attr.gid, attr.mode), (501, 7, REG | 0o600));
    }

    #[test]
    fn emulated_special_files() {
        let st = host(d::S_IFREG | 0o600);
        // A character device created by mknod as a regular file, with its number stored.
        let over = OverrideStat::new(0, 0, CHR | 0o666);
        let attr = st.to_attr(Some(&over), Some(0x103));
        assert_eq!((attr.mode, attr.rdev), (CHR | 0o666, 0x103));
        // Without the stored number (libkrun's files): 0:0, like a whiteout.
        assert_eq!(st.to_attr(Some(&over), None).rdev, 0);
        // A FIFO has no device number even if one is stored.
        let fifo = OverrideStat::new(0, 0, FIFO | 0o644);
        let attr = st.to_attr(Some(&fifo), Some(0x103));
        assert_eq!((attr.mode, attr.rdev), (FIFO | 0o644, 0));
        // A plain file ignores a stray stored number.
        assert_eq!(st.to_attr(None, Some(0x103)).rdev, 0);
    }

    #[test]
    fn real_host_devices_are_re_encoded() {
        let mut st = host(d::S_IFCHR | 0o666);
        st.rdev = 0x0300_0002; // Darwin 3:2 (/dev/null)
        let attr = st.to_attr(None, Some(0x999));
        assert_eq!((attr.mode, attr.rdev), (CHR | 0o666, 0x302));
        st.mode = d::S_IFBLK | 0o640;
        st.rdev = 0x0100_1234; // Darwin 1:0x1234
        assert_eq!(st.to_attr(None, None).rdev, 0x0120_0134);
        assert_eq!(st.to_attr(None, None).mode, BLK | 0o640);
        // A minor Linux cannot hold.
        st.rdev = 0x0110_0000;
        assert_eq!(st.to_attr(None, None).rdev, 0);
    }

    #[test]
    fn out_of_range_host_values() {
        let mut st = host(d::S_IFREG | 0o644);
        st.size = -1;
        st.blocks = i64::MIN;
        st.blksize = -4096;
        st.atime = t(0, 1_000_000_000);
        st.mtime = t(0, -1);
        st.nlink = u16::MAX;
        st.size = i64::MAX;
        let attr = st.to_attr(None, None);
        assert_eq!(attr.size, i64::MAX.unsigned_abs());
        assert_eq!((attr.blocks, attr.blksize), (0, 0));
        assert_eq!(attr.atime, Timespec { sec: 0, nsec: 0 });
        assert_eq!(attr.mtime, Timespec { sec: 0, nsec: 0 });
        assert_eq!(attr.nlink, 65_535);
        st.size = -1;
        assert_eq!(st.to_attr(None, None).size, 0);
    }

    #[test]
    fn dirent_types() {
        // Values as in reference/macos.md §2.4.
        let rows = [
            (0, 0),
            (1, 1),
            (2, 2),
            (4, 4),
            (6, 6),
            (8, 8),
            (10, 10),
            (12, 12),
        ];
        for (host, guest) in rows {
            assert_eq!(dirent_type(host, None), guest, "d_type {host}");
        }
        assert_eq!(dirent_type(d::DT_WHT, None), mode::DT_UNKNOWN);
        assert_eq!(dirent_type(3, None), mode::DT_UNKNOWN);
        assert_eq!(dirent_type(255, None), mode::DT_UNKNOWN);
        // The guest mode wins: an emulated FIFO or whiteout.
        assert_eq!(dirent_type(d::DT_REG, Some(FIFO | 0o644)), mode::DT_FIFO);
        assert_eq!(dirent_type(d::DT_REG, Some(CHR)), mode::DT_CHR);
        assert_eq!(dirent_type(d::DT_DIR, Some(DIR | 0o755)), mode::DT_DIR);
    }

    #[test]
    fn type_bits_are_shared() {
        for typ in [
            d::S_IFIFO,
            d::S_IFCHR,
            d::S_IFDIR,
            d::S_IFBLK,
            d::S_IFREG,
            d::S_IFLNK,
            d::S_IFSOCK,
        ] {
            let attr = host(typ | 0o7777).to_attr(None, None);
            assert_eq!(attr.mode, u32::from(typ) | 0o7777);
            assert_eq!(
                fuse_abi::mode::dt_from_mode(attr.mode),
                u32::from(typ >> 12)
            );
        }
    }
}
