//! `renameat2` flags (Linux) to `renamex_np`/`renameatx_np` flags (Darwin).
//!
//! | Linux | Darwin |
//! | --- | --- |
//! | `RENAME_NOREPLACE` 1 | `RENAME_EXCL` 4 |
//! | `RENAME_EXCHANGE` 2 | `RENAME_SWAP` 2 |
//! | `RENAME_WHITEOUT` 4 | — emulated: rename, then a regular file at the old name whose override says "character device 0:0" |
//!
//! Linux refuses `NOREPLACE` with `EXCHANGE`, and `WHITEOUT` with `EXCHANGE` (`EINVAL`), and
//! any unknown bit. `RENAME_SWAP`/`RENAME_EXCL` exist on APFS and HFS+; elsewhere the host
//! answers `ENOTSUP`, which [`crate::errno`] maps to `EOPNOTSUPP`. Values:
//! reference/macos.md §1.7 and §2.10.

use fuse_abi::{Errno, RenameFlags, mode};

use crate::darwin_abi;

/// How to carry out a guest rename on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRename {
    /// `renamex_np` flags (`RENAME_EXCL`, `RENAME_SWAP`); 0 means a plain `rename`.
    pub flags: u32,
    /// After the rename, create a whiteout at the old name (see [`WHITEOUT_MODE`]).
    pub whiteout: bool,
}

/// The override mode of an emulated whiteout: a character device (number 0:0, i.e. no stored
/// device number), `0600`, as libkrun writes it. The host object is an empty regular file.
pub const WHITEOUT_MODE: u32 = mode::S_IFCHR | 0o600;

/// Translates the guest's rename flags.
pub fn to_darwin(flags: RenameFlags) -> Result<HostRename, Errno> {
    let known = RenameFlags::NOREPLACE | RenameFlags::EXCHANGE | RenameFlags::WHITEOUT;
    if !known.contains(flags) {
        return Err(Errno::EINVAL);
    }
    if flags.contains(RenameFlags::EXCHANGE)
        && flags.intersects(RenameFlags::NOREPLACE | RenameFlags::WHITEOUT)
    {
        return Err(Errno::EINVAL);
    }
    let mut host = 0;
    if flags.contains(RenameFlags::NOREPLACE) {
        host |= darwin_abi::RENAME_EXCL;
    }
    if flags.contains(RenameFlags::EXCHANGE) {
        host |= darwin_abi::RENAME_SWAP;
    }
    Ok(HostRename {
        flags: host,
        whiteout: flags.contains(RenameFlags::WHITEOUT),
    })
}

/// Compile-time check of the Linux values against `libc` when built for Linux.
#[cfg(target_os = "linux")]
const _: () = {
    assert!(RenameFlags::NOREPLACE.bits() == libc::RENAME_NOREPLACE);
    assert!(RenameFlags::EXCHANGE.bits() == libc::RENAME_EXCHANGE);
    assert!(RenameFlags::WHITEOUT.bits() == libc::RENAME_WHITEOUT);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(bits: u32) -> RenameFlags {
        RenameFlags::from_bits_retain(bits)
    }

    /// Numbers as in reference/macos.md §2.10, independent of the constants.
    #[test]
    fn table() {
        let rows = [
            (0, 0, false),
            (1, 4, false), // NOREPLACE -> RENAME_EXCL
            (2, 2, false), // EXCHANGE -> RENAME_SWAP
            (4, 0, true),  // WHITEOUT: emulated
            (1 | 4, 4, true),
        ];
        for (bits, flags, whiteout) in rows {
            assert_eq!(
                to_darwin(guest(bits)),
                Ok(HostRename { flags, whiteout }),
                "{bits:#x}"
            );
        }
    }

    #[test]
    fn invalid_combinations() {
        for bits in [1 | 2, 2 | 4, 1 | 2 | 4, 8, 0x10, 1 << 31] {
            assert_eq!(to_darwin(guest(bits)), Err(Errno::EINVAL), "{bits:#x}");
        }
    }

    #[test]
    fn whiteout_is_a_character_device() {
        assert_eq!(WHITEOUT_MODE & mode::S_IFMT, mode::S_IFCHR);
        assert!(crate::override_stat::is_emulated_device(
            mode::S_IFREG | 0o600,
            WHITEOUT_MODE
        ));
    }
}
