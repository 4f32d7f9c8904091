//! Encoding READDIR and READDIRPLUS records into a host buffer.
//!
//! A record is the fixed part ([`Dirent`] or [`Direntplus`]), the name bytes (no NUL), and zero
//! padding to the next multiple of 8 (`FUSE_DIRENT_ALIGN`).

use zerocopy::IntoBytes;

use crate::{Dirent, Direntplus, EntryOut, U32, U64};

/// Rounds `len` up to a multiple of 8, or `None` on overflow (`FUSE_DIRENT_ALIGN`).
pub const fn align8(len: usize) -> Option<usize> {
    match len.checked_add(7) {
        Some(v) => Some(v & !7),
        None => None,
    }
}

/// The length of a READDIR record for a name of `namelen` bytes (`FUSE_DIRENT_SIZE`).
pub const fn dirent_len(namelen: usize) -> Option<usize> {
    match core::mem::size_of::<Dirent>().checked_add(namelen) {
        Some(v) => align8(v),
        None => None,
    }
}

/// The length of a READDIRPLUS record for a name of `namelen` bytes (`FUSE_DIRENTPLUS_SIZE`).
pub const fn direntplus_len(namelen: usize) -> Option<usize> {
    match core::mem::size_of::<Direntplus>().checked_add(namelen) {
        Some(v) => align8(v),
        None => None,
    }
}

fn write_record(buf: &mut [u8], fixed: &[u8], name: &[u8], total: usize) -> Option<usize> {
    let out = buf.get_mut(..total)?;
    let (head, rest) = out.split_at_mut(fixed.len());
    head.copy_from_slice(fixed);
    let (name_part, pad) = rest.split_at_mut(name.len());
    name_part.copy_from_slice(name);
    pad.fill(0);
    Some(total)
}

/// Writes one READDIR record at the start of `buf`. Returns the bytes written, or `None` if
/// the record does not fit (the caller stops and replies with what it has).
pub fn encode_dirent(buf: &mut [u8], ino: u64, off: u64, typ: u32, name: &[u8]) -> Option<usize> {
    let total = dirent_len(name.len())?;
    let dirent = Dirent {
        ino: U64::new(ino),
        off: U64::new(off),
        namelen: U32::new(u32::try_from(name.len()).ok()?),
        typ: U32::new(typ),
    };
    write_record(buf, dirent.as_bytes(), name, total)
}

/// Writes one READDIRPLUS record at the start of `buf`; see [`encode_dirent`].
pub fn encode_direntplus(
    buf: &mut [u8],
    entry: &EntryOut,
    off: u64,
    typ: u32,
    name: &[u8],
) -> Option<usize> {
    let total = direntplus_len(name.len())?;
    let plus = Direntplus {
        entry_out: *entry,
        dirent: Dirent {
            ino: entry.attr.ino,
            off: U64::new(off),
            namelen: U32::new(u32::try_from(name.len()).ok()?),
            typ: U32::new(typ),
        },
    };
    write_record(buf, plus.as_bytes(), name, total)
}

#[cfg(test)]
mod tests {
    use zerocopy::FromBytes;

    use super::*;

    #[test]
    fn dirent_len_pads_to_eight() {
        assert_eq!(dirent_len(1), Some(32));
        assert_eq!(dirent_len(8), Some(32));
        assert_eq!(dirent_len(9), Some(40));
        assert_eq!(direntplus_len(1), Some(160));
        assert_eq!(dirent_len(usize::MAX), None);
    }

    #[test]
    fn encode_dirent_writes_name_and_zero_padding() {
        let mut buf = [0xAAu8; 64];
        let n = encode_dirent(&mut buf, 5, 1, crate::mode::DT_REG, b"abc").unwrap();
        assert_eq!(n, 32);
        let (d, rest) = Dirent::read_from_prefix(&buf).unwrap();
        assert_eq!((d.ino.get(), d.off.get(), d.namelen.get()), (5, 1, 3));
        assert_eq!(&rest[..8], b"abc\0\0\0\0\0");
        assert_eq!(buf[32], 0xAA);
    }

    #[test]
    fn encode_dirent_too_small_returns_none() {
        let mut buf = [0u8; 31];
        assert_eq!(encode_dirent(&mut buf, 5, 1, 8, b"abc"), None);
    }
}
