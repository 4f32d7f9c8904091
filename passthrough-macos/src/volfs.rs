//! `/.vol/<dev>/<ino>` paths: how the backend reopens a host inode from its identity without
//! keeping a descriptor or a full path (reference/macos.md §1.2).
//!
//! The paths are short (Darwin's `PATH_MAX` is 1024) and never contain a name the guest
//! controls except as the last component, which must be a single plain name: `/`, NUL, `.`
//! and `..` are refused here, so a child path can never leave its directory. They are built in
//! place ([`VolPath`]): no heap allocation per host call.

use std::fmt::Write as _;

use fuse_abi::Errno;

use crate::cstr::CStrBuf;
use crate::darwin_abi;

/// A volfs path: at most `PATH_MAX` bytes with its NUL, on the stack.
pub type VolPath = CStrBuf<{ darwin_abi::PATH_MAX.unsigned_abs() as usize }>;

/// The path of an inode: `/.vol/<dev>/<ino>` (`dev` in signed decimal, as Darwin's `dev_t`).
pub fn inode_path(dev: i32, ino: u64) -> VolPath {
    let mut path = VolPath::new();
    // At most 37 bytes of digits, '-' and '/': it always fits.
    let _ = write!(path, "/.vol/{dev}/{ino}");
    path
}

/// The path of `name` in the directory `(dev, ino)`: `/.vol/<dev>/<ino>/<name>`. `EINVAL` for
/// an empty name, `.`, `..`, or a name with `/` or NUL; `ENAMETOOLONG` if the path would not
/// fit Darwin's `PATH_MAX`.
pub fn child_path(dev: i32, ino: u64, name: &[u8]) -> Result<VolPath, Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    let mut path = inode_path(dev, ino);
    // PATH_MAX counts the terminating NUL.
    path.push(b"/")
        .and_then(|()| path.push(name))
        .map_err(|e| match e {
            crate::cstr::CStrBufError::Nul => Errno::EINVAL,
            crate::cstr::CStrBufError::TooLong => Errno::ENAMETOOLONG,
        })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_paths() {
        assert_eq!(inode_path(16_777_220, 2).as_bytes(), b"/.vol/16777220/2");
        assert_eq!(
            inode_path(-1, u64::MAX).as_bytes(),
            b"/.vol/-1/18446744073709551615"
        );
        assert_eq!(
            inode_path(i32::MIN, u64::MAX).as_bytes(),
            b"/.vol/-2147483648/18446744073709551615"
        );
    }

    #[test]
    fn child_paths() {
        assert_eq!(
            child_path(16_777_220, 42, b"file.txt").map(|p| p.as_bytes().to_vec()),
            Ok(b"/.vol/16777220/42/file.txt".to_vec())
        );
        // Any other bytes are kept as they are (no lossy conversion).
        assert_eq!(
            child_path(1, 2, b"\xff\xfe").map(|p| p.as_bytes().to_vec()),
            Ok(b"/.vol/1/2/\xff\xfe".to_vec())
        );
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert_eq!(child_path(1, 2, bad), Err(Errno::EINVAL), "{bad:?}");
        }
        assert!(child_path(1, 2, b"...").is_ok());
    }

    #[test]
    fn length_limit() {
        // "/.vol/1/2/" is 10 bytes: a 1013-byte name makes 1023 bytes, plus NUL = PATH_MAX.
        let fits = vec![b'a'; 1013];
        assert_eq!(child_path(1, 2, &fits).map(|p| p.len()), Ok(1023));
        let too_long = vec![b'a'; 1014];
        assert_eq!(child_path(1, 2, &too_long), Err(Errno::ENAMETOOLONG));
    }
}
