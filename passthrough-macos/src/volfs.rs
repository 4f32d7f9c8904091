//! `/.vol/<dev>/<ino>` paths: how the backend reopens a host inode from its identity without
//! keeping a descriptor or a full path (reference/macos.md §1.2).
//!
//! The paths are short (Darwin's `PATH_MAX` is 1024) and never contain a name the guest
//! controls except as the last component, which must be a single plain name: `/`, NUL, `.`
//! and `..` are refused here, so a child path can never leave its directory.

use std::ffi::CString;
use std::io::Write as _;

use fuse_abi::Errno;

use crate::darwin_abi;

/// The path of an inode: `/.vol/<dev>/<ino>` (`dev` in signed decimal, as Darwin's `dev_t`).
pub fn inode_path(dev: i32, ino: u64) -> CString {
    let mut path = Vec::with_capacity(40);
    let _ = write!(path, "/.vol/{dev}/{ino}");
    // Digits, '-' and '/' only: no NUL.
    CString::new(path).unwrap_or_default()
}

/// The path of `name` in the directory `(dev, ino)`: `/.vol/<dev>/<ino>/<name>`. `EINVAL` for
/// an empty name, `.`, `..`, or a name with `/` or NUL; `ENAMETOOLONG` if the path would not
/// fit Darwin's `PATH_MAX`.
pub fn child_path(dev: i32, ino: u64, name: &[u8]) -> Result<CString, Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    let mut path = inode_path(dev, ino).into_bytes();
    path.push(b'/');
    path.extend_from_slice(name);
    // PATH_MAX counts the terminating NUL.
    if path.len() >= darwin_abi::PATH_MAX.unsigned_abs() as usize {
        return Err(Errno::ENAMETOOLONG);
    }
    CString::new(path).map_err(|_| Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_paths() {
        assert_eq!(inode_path(16_777_220, 2).to_bytes(), b"/.vol/16777220/2");
        assert_eq!(
            inode_path(-1, u64::MAX).to_bytes(),
            b"/.vol/-1/18446744073709551615"
        );
    }

    #[test]
    fn child_paths() {
        assert_eq!(
            child_path(16_777_220, 42, b"file.txt").map(CString::into_bytes),
            Ok(b"/.vol/16777220/42/file.txt".to_vec())
        );
        // Any other bytes are kept as they are (no lossy conversion).
        assert_eq!(
            child_path(1, 2, b"\xff\xfe").map(CString::into_bytes),
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
        assert!(child_path(1, 2, &fits).is_ok());
        let too_long = vec![b'a'; 1014];
        assert_eq!(child_path(1, 2, &too_long), Err(Errno::ENAMETOOLONG));
    }
}
