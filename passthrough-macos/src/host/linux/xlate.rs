//! The pure translations of [`super::LinuxHost`]: Darwin arguments to Linux ones, Linux results
//! to Darwin ones. No system call here; each table is unit-tested.

use std::ops::Range;

use libc::{c_int, c_short, c_uint};

use crate::cstr::CStrBuf;
use crate::darwin_abi;
use crate::dev::DevNum;
use crate::errno::DarwinErrno;
use crate::host::HostResult;
use crate::stat::HostStat;
use crate::time::HostTimespec;

// --- Names ---------------------------------------------------------------------------------

/// Whether `name` is one plain component: not empty, `.` or `..`, without `/` or NUL.
pub(super) fn is_component(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

// --- open(2) -------------------------------------------------------------------------------

/// Darwin open flags that are dropped: `O_SHLOCK`/`O_EXLOCK` would take a `flock` at open time
/// that no guest operation releases (as `DarwinHost` does).
const OPEN_STRIPPED: i32 = darwin_abi::O_SHLOCK | darwin_abi::O_EXLOCK;

/// Darwin open flag → Linux open flag, for every Darwin flag accepted besides the access mode.
/// `O_NOFOLLOW_ANY` is `O_NOFOLLOW` here: the adapter only ever opens one component (from a
/// directory descriptor) or a descriptor it holds, so no other component could be a symlink.
const OPEN_FLAGS: [(i32, c_int); 12] = [
    (darwin_abi::O_NONBLOCK, libc::O_NONBLOCK),
    (darwin_abi::O_APPEND, libc::O_APPEND),
    (darwin_abi::O_SYNC, libc::O_SYNC),
    (darwin_abi::O_NOFOLLOW, libc::O_NOFOLLOW),
    (darwin_abi::O_CREAT, libc::O_CREAT),
    (darwin_abi::O_TRUNC, libc::O_TRUNC),
    (darwin_abi::O_EXCL, libc::O_EXCL),
    (darwin_abi::O_NOCTTY, libc::O_NOCTTY),
    (darwin_abi::O_DIRECTORY, libc::O_DIRECTORY),
    (darwin_abi::O_DSYNC, libc::O_DSYNC),
    (darwin_abi::O_CLOEXEC, libc::O_CLOEXEC),
    (darwin_abi::O_NOFOLLOW_ANY, libc::O_NOFOLLOW),
];

/// The Linux open flags for Darwin `flags`, built bit by bit, with `O_NOFOLLOW | O_CLOEXEC`
/// always added. `EINVAL` for the access mode 3 and for any Darwin flag outside the whitelist
/// (`O_SYMLINK`, `O_EVTONLY`, `O_EXEC`, `O_ASYNC`, unknown bits).
pub(super) fn open_flags(flags: i32) -> HostResult<c_int> {
    let mut linux = match flags & darwin_abi::O_ACCMODE {
        darwin_abi::O_RDONLY => libc::O_RDONLY,
        darwin_abi::O_WRONLY => libc::O_WRONLY,
        darwin_abi::O_RDWR => libc::O_RDWR,
        _ => return Err(DarwinErrno::EINVAL),
    };
    let mut rest = flags & !darwin_abi::O_ACCMODE & !OPEN_STRIPPED;
    for (darwin, bit) in OPEN_FLAGS {
        if rest & darwin != 0 {
            linux |= bit;
            rest &= !darwin;
        }
    }
    if rest != 0 {
        return Err(DarwinErrno::EINVAL);
    }
    Ok(linux | libc::O_NOFOLLOW | libc::O_CLOEXEC)
}

// --- rename, lseek, locks --------------------------------------------------------------------

/// `renameat2` flags for Darwin `renamex_np` flags: `RENAME_SWAP` → `RENAME_EXCHANGE`,
/// `RENAME_EXCL` → `RENAME_NOREPLACE`; both together or any other bit: `EINVAL`.
pub(super) const fn rename_flags(flags: u32) -> HostResult<c_uint> {
    match flags {
        0 => Ok(0),
        darwin_abi::RENAME_SWAP => Ok(libc::RENAME_EXCHANGE),
        darwin_abi::RENAME_EXCL => Ok(libc::RENAME_NOREPLACE),
        _ => Err(DarwinErrno::EINVAL),
    }
}

/// Linux `whence` for a Darwin one (`SEEK_HOLE` and `SEEK_DATA` are swapped); `EINVAL` for an
/// unknown value.
pub(super) const fn whence(whence: i32) -> HostResult<c_int> {
    match whence {
        darwin_abi::SEEK_SET => Ok(libc::SEEK_SET),
        darwin_abi::SEEK_CUR => Ok(libc::SEEK_CUR),
        darwin_abi::SEEK_END => Ok(libc::SEEK_END),
        darwin_abi::SEEK_HOLE => Ok(libc::SEEK_HOLE),
        darwin_abi::SEEK_DATA => Ok(libc::SEEK_DATA),
        _ => Err(DarwinErrno::EINVAL),
    }
}

/// A Darwin lock command as Linux's: POSIX stays POSIX, open-file-description locks stay
/// open-file-description locks. `EINVAL` for anything but the six record-lock commands.
pub(super) const fn lock_cmd(cmd: i32) -> HostResult<c_int> {
    match cmd {
        darwin_abi::F_GETLK => Ok(libc::F_GETLK),
        darwin_abi::F_SETLK => Ok(libc::F_SETLK),
        darwin_abi::F_SETLKW => Ok(libc::F_SETLKW),
        darwin_abi::F_OFD_GETLK => Ok(libc::F_OFD_GETLK),
        darwin_abi::F_OFD_SETLK => Ok(libc::F_OFD_SETLK),
        darwin_abi::F_OFD_SETLKW => Ok(libc::F_OFD_SETLKW),
        _ => Err(DarwinErrno::EINVAL),
    }
}

/// Linux `l_type` values, in `struct flock`'s `c_short` (`libc` gives them as `c_int`).
mod linux_lock {
    use libc::{c_int, c_short};

    /// Shared lock.
    pub(super) const F_RDLCK: c_short = 0;
    /// Exclusive lock.
    pub(super) const F_WRLCK: c_short = 1;
    /// Unlock.
    pub(super) const F_UNLCK: c_short = 2;

    const _: () = {
        assert!(F_RDLCK as c_int == libc::F_RDLCK);
        assert!(F_WRLCK as c_int == libc::F_WRLCK);
        assert!(F_UNLCK as c_int == libc::F_UNLCK);
    };
}

/// A Darwin `l_type` as Linux's; `EINVAL` for an unknown one.
pub(super) const fn lock_type_to_linux(typ: i16) -> HostResult<c_short> {
    match typ {
        darwin_abi::F_RDLCK => Ok(linux_lock::F_RDLCK),
        darwin_abi::F_WRLCK => Ok(linux_lock::F_WRLCK),
        darwin_abi::F_UNLCK => Ok(linux_lock::F_UNLCK),
        _ => Err(DarwinErrno::EINVAL),
    }
}

/// A Linux `l_type` (from `F_GETLK`) as Darwin's; `EIO` for a value the kernel should not
/// return.
pub(super) const fn lock_type_to_darwin(typ: c_short) -> HostResult<i16> {
    match typ {
        linux_lock::F_RDLCK => Ok(darwin_abi::F_RDLCK),
        linux_lock::F_WRLCK => Ok(darwin_abi::F_WRLCK),
        linux_lock::F_UNLCK => Ok(darwin_abi::F_UNLCK),
        _ => Err(DarwinErrno::EIO),
    }
}

// `flock(2)` operations have the same values on both systems.
const _: () = {
    assert!(darwin_abi::LOCK_SH == libc::LOCK_SH);
    assert!(darwin_abi::LOCK_EX == libc::LOCK_EX);
    assert!(darwin_abi::LOCK_NB == libc::LOCK_NB);
    assert!(darwin_abi::LOCK_UN == libc::LOCK_UN);
};

/// A Darwin `flock` operation as Linux's (the same values); `EINVAL` for any other bit.
pub(super) const fn flock_operation(operation: i32) -> HostResult<c_int> {
    let known =
        darwin_abi::LOCK_SH | darwin_abi::LOCK_EX | darwin_abi::LOCK_NB | darwin_abi::LOCK_UN;
    if operation & !known != 0 {
        return Err(DarwinErrno::EINVAL);
    }
    Ok(operation)
}

// --- Times ---------------------------------------------------------------------------------

/// A Darwin time to set as a Linux `timespec`: Darwin's `UTIME_NOW`/`UTIME_OMIT` (-1/-2)
/// become Linux's; any other nanosecond count outside `0..10⁹` is `EINVAL`.
pub(super) fn timespec(time: HostTimespec) -> HostResult<libc::timespec> {
    let nsec = match time.nsec {
        darwin_abi::UTIME_NOW => libc::UTIME_NOW,
        darwin_abi::UTIME_OMIT => libc::UTIME_OMIT,
        nsec @ 0..1_000_000_000 => nsec,
        _ => return Err(DarwinErrno::EINVAL),
    };
    Ok(libc::timespec {
        tv_sec: time.sec,
        tv_nsec: nsec,
    })
}

// --- Extended attributes -------------------------------------------------------------------

/// The Darwin `*xattr` options the adapter accepts. `XATTR_NOFOLLOW` changes nothing (it
/// never follows a symlink); `XATTR_NOSECURITY`, `XATTR_NODEFAULT` and `XATTR_SHOWCOMPRESSION`
/// have no Linux meaning and are ignored (xnu refuses the first two from user space, and
/// `DarwinHost` drops them).
const XATTR_OPTIONS: i32 = darwin_abi::XATTR_NOFOLLOW
    | darwin_abi::XATTR_CREATE
    | darwin_abi::XATTR_REPLACE
    | darwin_abi::XATTR_NOSECURITY
    | darwin_abi::XATTR_NODEFAULT
    | darwin_abi::XATTR_SHOWCOMPRESSION;

/// Linux `setxattr` flags for Darwin `options`: `XATTR_CREATE` (2) → 1, `XATTR_REPLACE` (4) →
/// 2. `EINVAL` for both together (as xnu answers) or an unknown bit.
pub(super) const fn xattr_set_flags(options: i32) -> HostResult<c_int> {
    if let Err(e) = xattr_check_options(options) {
        return Err(e);
    }
    let create = options & darwin_abi::XATTR_CREATE != 0;
    let replace = options & darwin_abi::XATTR_REPLACE != 0;
    match (create, replace) {
        (false, false) => Ok(0),
        (true, false) => Ok(libc::XATTR_CREATE),
        (false, true) => Ok(libc::XATTR_REPLACE),
        (true, true) => Err(DarwinErrno::EINVAL),
    }
}

/// `EINVAL` for an unknown Darwin `*xattr` option bit.
pub(super) const fn xattr_check_options(options: i32) -> HostResult<()> {
    if options & !XATTR_OPTIONS != 0 {
        Err(DarwinErrno::EINVAL)
    } else {
        Ok(())
    }
}

/// The namespace of attributes on anything but regular files and directories (the longer).
const TRUSTED: &[u8] = b"trusted.";

/// The Linux namespace a Darwin attribute name is stored under, by the object's type: `user.`
/// for regular files and directories; `trusted.` for everything else (Linux refuses `user.`
/// on symlinks and special files; `trusted.` needs `CAP_SYS_ADMIN`).
pub(super) const fn xattr_prefix(st: &HostStat) -> &'static [u8] {
    match st.mode & darwin_abi::S_IFMT {
        darwin_abi::S_IFREG | darwin_abi::S_IFDIR => b"user.",
        _ => TRUSTED,
    }
}

/// A Linux attribute name in place: the longest prefix (`trusted.`), Darwin's longest name
/// (127 bytes) and the NUL fit.
pub(super) type XattrName = CStrBuf<{ TRUSTED.len() + darwin_abi::XATTR_MAXNAMELEN + 1 }>;

/// The Linux name (`prefix` + `name`, NUL-terminated) for a Darwin attribute name. `EINVAL`
/// for an empty name, `ENAMETOOLONG` past Darwin's 127 bytes.
pub(super) fn xattr_name(prefix: &[u8], name: &[u8]) -> HostResult<XattrName> {
    if name.is_empty() || name.contains(&0) {
        return Err(DarwinErrno::EINVAL);
    }
    if name.len() > darwin_abi::XATTR_MAXNAMELEN {
        return Err(DarwinErrno::ENAMETOOLONG);
    }
    let mut out = XattrName::new();
    out.push(prefix)
        .and_then(|()| out.push(name))
        .map_err(|_| DarwinErrno::ENAMETOOLONG)?;
    Ok(out)
}

/// The Darwin list for a Linux `listxattr` list: the names under `prefix`, without it, each
/// NUL-terminated; every other name is hidden.
pub(super) fn xattr_list(linux: &[u8], prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in linux.split(|&b| b == 0) {
        if let Some(rest) = name.strip_prefix(prefix) {
            if !rest.is_empty() {
                out.extend_from_slice(rest);
                out.push(0);
            }
        }
    }
    out
}

// --- Device numbers -------------------------------------------------------------------------

/// The Darwin major reserved for Linux devices Darwin's `dev_t` cannot hold. Linux never gives
/// a filesystem a device with major 255 (block majors are allocated from 254 down; 255 is
/// reserved), so the range cannot collide with a device that fits.
const FALLBACK_MAJOR: u32 = 0xff;
/// Within the fallback range: set for numbers handed out from a table, clear for the
/// arithmetic encoding.
const FALLBACK_TABLE_BIT: u32 = 1 << 23;

/// A Linux device (major, minor) as a Darwin `dev_t`, when it can be computed without a table:
///
/// * it fits Darwin's layout (major < 255, minor < 2²⁴): that encoding;
/// * major < 2¹¹ and minor < 2¹² (NVMe partitions are 259:n): major 255 with the minor
///   `major << 12 | minor`;
/// * else `None`: the caller numbers it from a table ([`dev_from_table`]).
///
/// Injective over all inputs it maps, and with [`dev_from_table`].
pub(super) const fn dev_direct(major: u32, minor: u32) -> Option<i32> {
    if major < FALLBACK_MAJOR {
        if let Some(dev) = DevNum::new(major, minor).to_darwin() {
            return Some(dev);
        }
    }
    if major < (1 << 11) && minor < (1 << 12) {
        return DevNum::new(FALLBACK_MAJOR, (major << 12) | minor).to_darwin();
    }
    None
}

/// The Darwin `dev_t` for the `index`th Linux device [`dev_direct`] cannot encode (first seen,
/// first numbered): major 255 with bit 23 of the minor set. `None` past 2²³ devices.
pub(super) const fn dev_from_table(index: u32) -> Option<i32> {
    if index >= FALLBACK_TABLE_BIT {
        return None;
    }
    DevNum::new(FALLBACK_MAJOR, FALLBACK_TABLE_BIT | index).to_darwin()
}

// --- stat ----------------------------------------------------------------------------------

/// Darwin `chflags` flags reported from Linux inode attributes (`<sys/stat.h>`).
mod uf {
    /// Do not dump the file.
    pub(super) const NODUMP: u32 = 0x1;
    /// The file may not be changed.
    pub(super) const IMMUTABLE: u32 = 0x2;
    /// Writes may only append.
    pub(super) const APPEND: u32 = 0x4;
}

/// A `statx` timestamp as a Darwin one.
fn time(ts: libc::statx_timestamp) -> HostTimespec {
    HostTimespec {
        sec: ts.tv_sec,
        nsec: i64::from(ts.tv_nsec),
    }
}

/// Darwin's `struct stat` for a `statx` result, with `dev` the already translated device.
/// `nlink` saturates at 65535, size and block counts at `i64::MAX`; a device node whose number
/// Darwin cannot hold reports `rdev` 0; the birth time is the change time when the filesystem
/// has none.
pub(super) fn host_stat(stx: &libc::statx, dev: i32) -> HostStat {
    let attributes = stx.stx_attributes;
    let mut flags = 0;
    for (linux, darwin) in [
        (libc::STATX_ATTR_NODUMP, uf::NODUMP),
        (libc::STATX_ATTR_IMMUTABLE, uf::IMMUTABLE),
        (libc::STATX_ATTR_APPEND, uf::APPEND),
    ] {
        if attributes & u64::from(linux.unsigned_abs()) != 0 {
            flags |= darwin;
        }
    }
    let ctime = time(stx.stx_ctime);
    HostStat {
        dev,
        ino: stx.stx_ino,
        mode: stx.stx_mode,
        nlink: u16::try_from(stx.stx_nlink).unwrap_or(u16::MAX),
        uid: stx.stx_uid,
        gid: stx.stx_gid,
        rdev: DevNum::new(stx.stx_rdev_major, stx.stx_rdev_minor)
            .to_darwin()
            .unwrap_or(0),
        size: i64::try_from(stx.stx_size).unwrap_or(i64::MAX),
        blocks: i64::try_from(stx.stx_blocks).unwrap_or(i64::MAX),
        blksize: i32::try_from(stx.stx_blksize).unwrap_or(i32::MAX),
        atime: time(stx.stx_atime),
        mtime: time(stx.stx_mtime),
        ctime,
        birthtime: if stx.stx_mask & libc::STATX_BTIME != 0 {
            time(stx.stx_btime)
        } else {
            ctime
        },
        flags,
    }
}

// --- statfs --------------------------------------------------------------------------------

/// Linux `statfs` `f_flags`: mounted read-only (`ST_RDONLY`).
pub(super) const ST_RDONLY: u64 = 1;
/// Linux `statfs` `f_flags`: set-id bits ignored (`ST_NOSUID`).
pub(super) const ST_NOSUID: u64 = 2;

/// Linux filesystem magic numbers (`<linux/magic.h>`) and the name reported for each.
const FS_NAMES: [(u64, &str); 16] = [
    (0xef53, "ext4"), // ext2, ext3 and ext4 share it
    (0x0102_1994, "tmpfs"),
    (0x9123_683e, "btrfs"),
    (0x5846_5342, "xfs"),
    (0x794c_7630, "overlay"),
    (0xf2f5_2010, "f2fs"),
    (0x2fc1_2fc1, "zfs"),
    (0x6969, "nfs"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x4d44, "msdos"),
    (0x2011_bab0, "exfat"),
    (0x5346_544e, "ntfs"),
    (0x7363_6673, "cifs"), // CIFS_SUPER_MAGIC ("smb2" is 0xfe534d42)
    (0x8584_58f6, "ramfs"),
    (0x6279_6466, "bcachefs"),
];

/// The `f_fstypename` for a Linux filesystem magic: a known name, else `"linux"`, NUL-padded.
pub(super) fn fstypename(magic: u64) -> [u8; 16] {
    let name = FS_NAMES
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or("linux", |(_, name)| name);
    let mut out = [0u8; 16];
    for (slot, byte) in out.iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    out
}

// --- getdents64 ----------------------------------------------------------------------------

/// Where the fields of a `struct linux_dirent64` are: `d_ino` (u64), `d_off` (i64), `d_reclen`
/// (u16), `d_type` (u8), then the NUL-terminated name.
const DIRENT_INO: usize = 0;
const DIRENT_RECLEN: usize = 16;
const DIRENT_TYPE: usize = 18;
const DIRENT_NAME: usize = 19;

/// One `getdents64` record's entry: inode number, type, and where its name lies in the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RawDirent {
    pub(super) ino: u64,
    pub(super) typ: u8,
    pub(super) name: Range<usize>,
}

/// The first record of a `getdents64` buffer: its length, and unless it is `.` or `..`, its
/// entry. `EIO` for a record that does not fit the buffer (the kernel never writes one).
pub(super) fn next_dirent(buf: &[u8]) -> HostResult<(usize, Option<RawDirent>)> {
    let reclen = buf
        .get(DIRENT_RECLEN..DIRENT_RECLEN + 2)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(|b| usize::from(u16::from_ne_bytes(b)))
        .ok_or(DarwinErrno::EIO)?;
    if reclen <= DIRENT_NAME {
        return Err(DarwinErrno::EIO);
    }
    let record = buf.get(..reclen).ok_or(DarwinErrno::EIO)?;
    let ino = record
        .get(DIRENT_INO..DIRENT_INO + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_ne_bytes)
        .ok_or(DarwinErrno::EIO)?;
    let typ = record.get(DIRENT_TYPE).copied().ok_or(DarwinErrno::EIO)?;
    let name = record.get(DIRENT_NAME..).ok_or(DarwinErrno::EIO)?;
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = DIRENT_NAME..DIRENT_NAME + len;
    let skip = matches!(record.get(name.clone()), Some(b"" | b"." | b".."));
    Ok((reclen, (!skip).then_some(RawDirent { ino, typ, name })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostDirent;

    #[test]
    fn is_component_refuses_paths_and_dots() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert!(!is_component(bad), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"\xff\xfe"] {
            assert!(is_component(good), "{good:?}");
        }
    }

    #[test]
    fn open_flags_table() {
        let always = libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let cases = [
            (darwin_abi::O_RDONLY, libc::O_RDONLY),
            (darwin_abi::O_WRONLY, libc::O_WRONLY),
            (darwin_abi::O_RDWR, libc::O_RDWR),
            (0x4, libc::O_NONBLOCK),
            (0x8, libc::O_APPEND),
            (0x80, libc::O_SYNC),
            (0x100, 0),
            (0x200, libc::O_CREAT),
            (0x400, libc::O_TRUNC),
            (0x800, libc::O_EXCL),
            (0x2_0000, libc::O_NOCTTY),
            (0x10_0000, libc::O_DIRECTORY),
            (0x40_0000, libc::O_DSYNC),
            (0x100_0000, 0),
            (0x2000_0000, 0),
            // O_SHLOCK and O_EXLOCK are dropped.
            (0x10 | 0x20, 0),
        ];
        for (darwin, linux) in cases {
            let access = darwin & darwin_abi::O_ACCMODE;
            let expected_access = [libc::O_RDONLY, libc::O_WRONLY, libc::O_RDWR]
                .get(usize::try_from(access).unwrap())
                .copied()
                .unwrap();
            assert_eq!(
                open_flags(darwin),
                Ok(linux | expected_access | always),
                "Darwin {darwin:#x}"
            );
        }
        // Darwin's O_CREAT is Linux's O_TRUNC: never passed through.
        assert_eq!(
            open_flags(darwin_abi::O_CREAT | darwin_abi::O_EXCL | darwin_abi::O_WRONLY),
            Ok(libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | always)
        );
    }

    #[test]
    fn open_flags_unknown_bits_are_einval() {
        for bad in [
            3,                     // access mode 3
            darwin_abi::O_SYMLINK, // Linux's O_PATH value
            darwin_abi::O_EVTONLY, // no Linux meaning
            darwin_abi::O_EXEC,    // no Linux meaning
            darwin_abi::O_ASYNC,   // never sent by the backend
            i32::MIN | 1 << 30,    // unknown
            darwin_abi::O_RDWR | 0x1_0000,
        ] {
            assert_eq!(open_flags(bad), Err(DarwinErrno::EINVAL), "{bad:#x}");
        }
    }

    #[test]
    fn rename_flags_table() {
        assert_eq!(rename_flags(0), Ok(0));
        assert_eq!(rename_flags(2), Ok(libc::RENAME_EXCHANGE));
        assert_eq!(rename_flags(4), Ok(libc::RENAME_NOREPLACE));
        for bad in [6, 1, 8, u32::MAX] {
            assert_eq!(rename_flags(bad), Err(DarwinErrno::EINVAL), "{bad}");
        }
    }

    #[test]
    fn whence_swaps_hole_and_data() {
        assert_eq!(whence(0), Ok(libc::SEEK_SET));
        assert_eq!(whence(1), Ok(libc::SEEK_CUR));
        assert_eq!(whence(2), Ok(libc::SEEK_END));
        assert_eq!(whence(3), Ok(4)); // Darwin SEEK_HOLE, Linux SEEK_HOLE
        assert_eq!(whence(4), Ok(3)); // Darwin SEEK_DATA, Linux SEEK_DATA
        assert_eq!(whence(5), Err(DarwinErrno::EINVAL));
        assert_eq!(whence(-1), Err(DarwinErrno::EINVAL));
    }

    #[test]
    fn lock_tables() {
        assert_eq!(lock_cmd(7), Ok(5));
        assert_eq!(lock_cmd(8), Ok(6));
        assert_eq!(lock_cmd(9), Ok(7));
        assert_eq!(lock_cmd(92), Ok(36));
        assert_eq!(lock_cmd(90), Ok(37));
        assert_eq!(lock_cmd(91), Ok(38));
        assert_eq!(lock_cmd(42), Err(DarwinErrno::EINVAL));
        // Darwin RDLCK 1 / UNLCK 2 / WRLCK 3; Linux 0 / 2 / 1.
        assert_eq!(lock_type_to_linux(1), Ok(0));
        assert_eq!(lock_type_to_linux(2), Ok(2));
        assert_eq!(lock_type_to_linux(3), Ok(1));
        assert_eq!(lock_type_to_linux(0), Err(DarwinErrno::EINVAL));
        for darwin in [1, 2, 3] {
            assert_eq!(
                lock_type_to_darwin(lock_type_to_linux(darwin).unwrap()),
                Ok(darwin)
            );
        }
        assert_eq!(lock_type_to_darwin(7), Err(DarwinErrno::EIO));
        assert_eq!(flock_operation(2 | 4), Ok(6));
        assert_eq!(flock_operation(8), Ok(8));
        assert_eq!(flock_operation(16), Err(DarwinErrno::EINVAL));
    }

    #[test]
    fn timespec_special_values() {
        let now = timespec(HostTimespec::NOW).unwrap();
        assert_eq!(now.tv_nsec, libc::UTIME_NOW);
        let omit = timespec(HostTimespec::OMIT).unwrap();
        assert_eq!(omit.tv_nsec, libc::UTIME_OMIT);
        let t = timespec(HostTimespec { sec: 5, nsec: 7 }).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (5, 7));
        // Linux's own UTIME_NOW is just an invalid count for Darwin.
        for bad in [1_000_000_000, (1 << 30) - 1, -3] {
            assert_eq!(
                timespec(HostTimespec { sec: 0, nsec: bad }).err(),
                Some(DarwinErrno::EINVAL)
            );
        }
    }

    #[test]
    fn xattr_options_table() {
        assert_eq!(xattr_set_flags(0), Ok(0));
        assert_eq!(xattr_set_flags(darwin_abi::XATTR_NOFOLLOW), Ok(0));
        assert_eq!(xattr_set_flags(2), Ok(libc::XATTR_CREATE));
        assert_eq!(xattr_set_flags(4), Ok(libc::XATTR_REPLACE));
        assert_eq!(xattr_set_flags(1 | 4 | 0x10), Ok(libc::XATTR_REPLACE));
        assert_eq!(xattr_set_flags(2 | 4), Err(DarwinErrno::EINVAL));
        assert_eq!(xattr_set_flags(0x40), Err(DarwinErrno::EINVAL));
        assert_eq!(xattr_check_options(0x1 | 0x8 | 0x10 | 0x20), Ok(()));
        assert_eq!(xattr_check_options(0x100), Err(DarwinErrno::EINVAL));
    }

    #[test]
    fn xattr_names_and_lists() {
        assert_eq!(
            xattr_name(b"user.", b"a.b").unwrap().to_bytes_with_nul(),
            b"user.a.b\0"
        );
        assert_eq!(
            xattr_name(b"trusted.", b"x").unwrap().to_bytes_with_nul(),
            b"trusted.x\0"
        );
        assert_eq!(xattr_name(b"user.", b""), Err(DarwinErrno::EINVAL));
        assert_eq!(
            xattr_name(b"user.", &[b'n'; 128]),
            Err(DarwinErrno::ENAMETOOLONG)
        );
        assert!(xattr_name(b"user.", &[b'n'; 127]).is_ok());
        assert!(xattr_name(b"trusted.", &[b'n'; 127]).is_ok());
        let linux = b"user.a\0security.selinux\0trusted.t\0user.\0user.user.b\0system.x\0";
        assert_eq!(xattr_list(linux, b"user."), b"a\0user.b\0");
        assert_eq!(xattr_list(linux, b"trusted."), b"t\0");
        assert_eq!(xattr_list(b"", b"user."), b"");
    }

    #[test]
    fn dev_mapping_is_injective_and_uses_darwin_layout_when_it_fits() {
        // virtio-blk 254:0, an anonymous device 0:45: Darwin's own layout.
        assert_eq!(dev_direct(254, 0), DevNum::new(254, 0).to_darwin());
        assert_eq!(dev_direct(0, 45), Some(45));
        // NVMe partition 259:3 and the reserved major 255: the arithmetic fallback.
        let nvme = dev_direct(259, 3).unwrap();
        assert_eq!(DevNum::from_darwin(nvme), DevNum::new(255, (259 << 12) | 3));
        let reserved = dev_direct(255, 0).unwrap();
        assert_ne!(reserved, DevNum::new(255, 0).to_darwin().unwrap());
        // Too wide for both: the table.
        assert_eq!(dev_direct(300, 1 << 20), None);
        assert_eq!(dev_direct(4000, 0), None);
        let first = dev_from_table(0).unwrap();
        assert_eq!(DevNum::from_darwin(first), DevNum::new(255, 1 << 23));
        assert_eq!(dev_from_table(1 << 23), None);
        // No collisions between the three ranges on a sample.
        let mut seen = std::collections::HashSet::new();
        for major in [0, 1, 8, 254, 255, 259, 511, 2047] {
            for minor in [0, 1, 4095, 0xff_ffff] {
                if let Some(dev) = dev_direct(major, minor) {
                    assert!(seen.insert(dev), "{major}:{minor}");
                }
            }
        }
        for index in [0, 1, (1 << 23) - 1] {
            assert!(seen.insert(dev_from_table(index).unwrap()));
        }
    }

    #[test]
    fn fstypename_known_and_unknown() {
        assert_eq!(&fstypename(0xef53)[..5], b"ext4\0");
        assert_eq!(&fstypename(0x0102_1994)[..6], b"tmpfs\0");
        assert_eq!(&fstypename(0x1234)[..6], b"linux\0");
        assert_eq!(
            FS_NAMES[0].0,
            u64::try_from(libc::EXT4_SUPER_MAGIC).unwrap()
        );
        assert_eq!(FS_NAMES[1].0, u64::try_from(libc::TMPFS_MAGIC).unwrap());
        assert_eq!(
            FS_NAMES[2].0,
            u64::try_from(libc::BTRFS_SUPER_MAGIC).unwrap()
        );
        assert_eq!(FS_NAMES[3].0, u64::try_from(libc::XFS_SUPER_MAGIC).unwrap());
    }

    /// One `linux_dirent64` record, padded to 8 bytes as the kernel does.
    fn record(ino: u64, typ: u8, name: &[u8]) -> Vec<u8> {
        let len = (DIRENT_NAME + name.len() + 1).div_ceil(8) * 8;
        let mut out = vec![0u8; len];
        out[..8].copy_from_slice(&ino.to_ne_bytes());
        out[16..18].copy_from_slice(&u16::try_from(len).unwrap().to_ne_bytes());
        out[18] = typ;
        out[19..19 + name.len()].copy_from_slice(name);
        out
    }

    /// Every entry of a `getdents64` buffer, through [`next_dirent`].
    fn parse_dirents(buf: &[u8], out: &mut Vec<HostDirent>) -> HostResult<()> {
        let mut rest = buf;
        while !rest.is_empty() {
            let (reclen, entry) = next_dirent(rest)?;
            if let Some(RawDirent { ino, typ, name }) = entry {
                let name = rest.get(name).ok_or(DarwinErrno::EIO)?.to_vec();
                out.push(HostDirent { ino, typ, name });
            }
            rest = rest.get(reclen..).ok_or(DarwinErrno::EIO)?;
        }
        Ok(())
    }

    #[test]
    fn parse_dirents_skips_dots_and_rejects_garbage() {
        let mut buf = record(2, 4, b".");
        buf.extend(record(1, 4, b".."));
        buf.extend(record(12, 8, b"file"));
        buf.extend(record(13, 10, b"a-much-longer-name-than-eight"));
        let mut out = Vec::new();
        parse_dirents(&buf, &mut out).unwrap();
        assert_eq!(
            out,
            [
                HostDirent {
                    ino: 12,
                    typ: 8,
                    name: b"file".to_vec()
                },
                HostDirent {
                    ino: 13,
                    typ: 10,
                    name: b"a-much-longer-name-than-eight".to_vec()
                },
            ]
        );
        // A record length past the buffer, a zero length, a truncated header.
        let mut long = record(12, 8, b"file");
        long[16..18].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse_dirents(&long, &mut out), Err(DarwinErrno::EIO));
        let mut zero = record(12, 8, b"file");
        zero[16..18].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(parse_dirents(&zero, &mut out), Err(DarwinErrno::EIO));
        assert_eq!(parse_dirents(&[0u8; 10], &mut out), Err(DarwinErrno::EIO));
    }
}
