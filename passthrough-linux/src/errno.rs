//! Host errors to guest errnos. The host is Linux, so the number is kept as it is.

use std::io;

use fuse_abi::Errno;

/// The guest errno for a host error: the same number, or EIO when there is none.
pub(crate) fn to_linux(e: &io::Error) -> Errno {
    match e.raw_os_error() {
        Some(raw) => Errno::from_raw(raw),
        None => match e.kind() {
            io::ErrorKind::WriteZero | io::ErrorKind::UnexpectedEof => Errno::EIO,
            io::ErrorKind::InvalidInput => Errno::EINVAL,
            _ => Errno::EIO,
        },
    }
}

/// Shorthand used with `map_err`.
pub(crate) fn errno(e: io::Error) -> Errno {
    to_linux(&e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_linux_keeps_os_numbers() {
        // ENOENT is 2 and ENODATA 61 on Linux: the identity must hold for both.
        assert_eq!(
            to_linux(&io::Error::from_raw_os_error(libc::ENOENT)),
            Errno::ENOENT
        );
        assert_eq!(
            to_linux(&io::Error::from_raw_os_error(libc::ENODATA)),
            Errno::ENODATA
        );
    }

    #[test]
    fn to_linux_without_os_number_is_eio() {
        assert_eq!(to_linux(&io::Error::other("x")), Errno::EIO);
    }
}
