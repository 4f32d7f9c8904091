//! File type bits and directory entry types in Linux numbering.

/// Mask of the file type bits of a mode.
pub const S_IFMT: u32 = 0o170_000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Block device.
pub const S_IFBLK: u32 = 0o060_000;
/// Directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010_000;
/// Set-user-id bit.
pub const S_ISUID: u32 = 0o4000;
/// Set-group-id bit.
pub const S_ISGID: u32 = 0o2000;
/// Sticky bit.
pub const S_ISVTX: u32 = 0o1000;

/// Unknown directory entry type.
pub const DT_UNKNOWN: u32 = 0;
/// FIFO.
pub const DT_FIFO: u32 = 1;
/// Character device.
pub const DT_CHR: u32 = 2;
/// Directory.
pub const DT_DIR: u32 = 4;
/// Block device.
pub const DT_BLK: u32 = 6;
/// Regular file.
pub const DT_REG: u32 = 8;
/// Symbolic link.
pub const DT_LNK: u32 = 10;
/// Socket.
pub const DT_SOCK: u32 = 12;
/// Whiteout.
pub const DT_WHT: u32 = 14;

/// The directory entry type of a mode, as `fuse_dirent.type` carries it.
pub const fn dt_from_mode(mode: u32) -> u32 {
    (mode & S_IFMT) >> 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dt_from_mode_matches_dt_constants() {
        assert_eq!(dt_from_mode(S_IFREG | 0o644), DT_REG);
        assert_eq!(dt_from_mode(S_IFDIR | 0o755), DT_DIR);
        assert_eq!(dt_from_mode(S_IFLNK), DT_LNK);
        assert_eq!(dt_from_mode(S_IFSOCK), DT_SOCK);
        assert_eq!(dt_from_mode(S_IFIFO), DT_FIFO);
        assert_eq!(dt_from_mode(S_IFCHR), DT_CHR);
        assert_eq!(dt_from_mode(S_IFBLK), DT_BLK);
    }
}
