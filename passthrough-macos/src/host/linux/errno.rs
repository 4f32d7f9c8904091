//! Linux error numbers to Darwin ones: the reverse of [`DarwinErrno::to_linux`], so that
//! [`super::LinuxHost`] reports what macOS would.
//!
//! Every Linux code with a Darwin twin maps to it, so `darwin_from_linux(e).to_linux()` gives
//! `e` back. Two Linux codes have two Darwin candidates each:
//!
//! * `ENODATA` (61) becomes `ENOATTR` (93): on Linux it comes from the `*xattr` calls, where
//!   macOS reports `ENOATTR` (Darwin's own `ENODATA` belongs to STREAMS, which no file system
//!   call returns); both translate back to 61.
//! * `EOPNOTSUPP` (95, also Linux's `ENOTSUP`) becomes `ENOTSUP` (45), what Darwin's file
//!   systems report for an operation they lack (`EOPNOTSUPP`, 102, is for sockets); both
//!   translate back to 95.
//!
//! The Linux-only codes (STREAMS and shared-library errors, key management, media and
//! hardware errors...: `NO_DARWIN_TWIN` in the tests) become `EIO`, as any unknown or
//! out-of-range number does.

use crate::errno::DarwinErrno;

/// The Darwin error macOS would report for the Linux error number `raw`; `EIO` for a number
/// Darwin has no counterpart for.
pub(crate) const fn darwin_from_linux(raw: i32) -> DarwinErrno {
    match raw {
        // 1 to 34: the same numbers, except 11 (Linux EAGAIN, Darwin EDEADLK).
        libc::EPERM => DarwinErrno::EPERM,
        libc::ENOENT => DarwinErrno::ENOENT,
        libc::ESRCH => DarwinErrno::ESRCH,
        libc::EINTR => DarwinErrno::EINTR,
        libc::EIO => DarwinErrno::EIO,
        libc::ENXIO => DarwinErrno::ENXIO,
        libc::E2BIG => DarwinErrno::E2BIG,
        libc::ENOEXEC => DarwinErrno::ENOEXEC,
        libc::EBADF => DarwinErrno::EBADF,
        libc::ECHILD => DarwinErrno::ECHILD,
        libc::EAGAIN => DarwinErrno::EAGAIN,
        libc::ENOMEM => DarwinErrno::ENOMEM,
        libc::EACCES => DarwinErrno::EACCES,
        libc::EFAULT => DarwinErrno::EFAULT,
        libc::ENOTBLK => DarwinErrno::ENOTBLK,
        libc::EBUSY => DarwinErrno::EBUSY,
        libc::EEXIST => DarwinErrno::EEXIST,
        libc::EXDEV => DarwinErrno::EXDEV,
        libc::ENODEV => DarwinErrno::ENODEV,
        libc::ENOTDIR => DarwinErrno::ENOTDIR,
        libc::EISDIR => DarwinErrno::EISDIR,
        libc::EINVAL => DarwinErrno::EINVAL,
        libc::ENFILE => DarwinErrno::ENFILE,
        libc::EMFILE => DarwinErrno::EMFILE,
        libc::ENOTTY => DarwinErrno::ENOTTY,
        libc::ETXTBSY => DarwinErrno::ETXTBSY,
        libc::EFBIG => DarwinErrno::EFBIG,
        libc::ENOSPC => DarwinErrno::ENOSPC,
        libc::ESPIPE => DarwinErrno::ESPIPE,
        libc::EROFS => DarwinErrno::EROFS,
        libc::EMLINK => DarwinErrno::EMLINK,
        libc::EPIPE => DarwinErrno::EPIPE,
        libc::EDOM => DarwinErrno::EDOM,
        libc::ERANGE => DarwinErrno::ERANGE,
        // 35 and up: the same meaning under another number.
        libc::EDEADLK => DarwinErrno::EDEADLK,
        libc::ENAMETOOLONG => DarwinErrno::ENAMETOOLONG,
        libc::ENOLCK => DarwinErrno::ENOLCK,
        libc::ENOSYS => DarwinErrno::ENOSYS,
        libc::ENOTEMPTY => DarwinErrno::ENOTEMPTY,
        libc::ELOOP => DarwinErrno::ELOOP,
        libc::ENOMSG => DarwinErrno::ENOMSG,
        libc::EIDRM => DarwinErrno::EIDRM,
        libc::ENOSTR => DarwinErrno::ENOSTR,
        // A missing extended attribute (see the module doc).
        libc::ENODATA => DarwinErrno::ENOATTR,
        libc::ETIME => DarwinErrno::ETIME,
        libc::ENOSR => DarwinErrno::ENOSR,
        libc::EREMOTE => DarwinErrno::EREMOTE,
        libc::ENOLINK => DarwinErrno::ENOLINK,
        libc::EPROTO => DarwinErrno::EPROTO,
        libc::EMULTIHOP => DarwinErrno::EMULTIHOP,
        libc::EBADMSG => DarwinErrno::EBADMSG,
        libc::EOVERFLOW => DarwinErrno::EOVERFLOW,
        libc::EILSEQ => DarwinErrno::EILSEQ,
        libc::EUSERS => DarwinErrno::EUSERS,
        libc::ENOTSOCK => DarwinErrno::ENOTSOCK,
        libc::EDESTADDRREQ => DarwinErrno::EDESTADDRREQ,
        libc::EMSGSIZE => DarwinErrno::EMSGSIZE,
        libc::EPROTOTYPE => DarwinErrno::EPROTOTYPE,
        libc::ENOPROTOOPT => DarwinErrno::ENOPROTOOPT,
        libc::EPROTONOSUPPORT => DarwinErrno::EPROTONOSUPPORT,
        libc::ESOCKTNOSUPPORT => DarwinErrno::ESOCKTNOSUPPORT,
        // Linux's ENOTSUP is the same number (see the module doc).
        libc::EOPNOTSUPP => DarwinErrno::ENOTSUP,
        libc::EPFNOSUPPORT => DarwinErrno::EPFNOSUPPORT,
        libc::EAFNOSUPPORT => DarwinErrno::EAFNOSUPPORT,
        libc::EADDRINUSE => DarwinErrno::EADDRINUSE,
        libc::EADDRNOTAVAIL => DarwinErrno::EADDRNOTAVAIL,
        libc::ENETDOWN => DarwinErrno::ENETDOWN,
        libc::ENETUNREACH => DarwinErrno::ENETUNREACH,
        libc::ENETRESET => DarwinErrno::ENETRESET,
        libc::ECONNABORTED => DarwinErrno::ECONNABORTED,
        libc::ECONNRESET => DarwinErrno::ECONNRESET,
        libc::ENOBUFS => DarwinErrno::ENOBUFS,
        libc::EISCONN => DarwinErrno::EISCONN,
        libc::ENOTCONN => DarwinErrno::ENOTCONN,
        libc::ESHUTDOWN => DarwinErrno::ESHUTDOWN,
        libc::ETOOMANYREFS => DarwinErrno::ETOOMANYREFS,
        libc::ETIMEDOUT => DarwinErrno::ETIMEDOUT,
        libc::ECONNREFUSED => DarwinErrno::ECONNREFUSED,
        libc::EHOSTDOWN => DarwinErrno::EHOSTDOWN,
        libc::EHOSTUNREACH => DarwinErrno::EHOSTUNREACH,
        libc::EALREADY => DarwinErrno::EALREADY,
        libc::EINPROGRESS => DarwinErrno::EINPROGRESS,
        libc::ESTALE => DarwinErrno::ESTALE,
        libc::EDQUOT => DarwinErrno::EDQUOT,
        libc::ECANCELED => DarwinErrno::ECANCELED,
        libc::EOWNERDEAD => DarwinErrno::EOWNERDEAD,
        libc::ENOTRECOVERABLE => DarwinErrno::ENOTRECOVERABLE,
        _ => DarwinErrno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Linux codes (x86_64 and aarch64 numbering) with no Darwin counterpart: they become
    /// `EIO`, so they cannot round-trip. Each is Linux-only: `ECHRNG` .. `EBFONT` (44..=59, with
    /// 41 and 58 unused), `ENONET`, `ENOPKG`, `EADV`, `ESRMNT`, `ECOMM`, `EDOTDOT`,
    /// `ENOTUNIQ` .. `ELIBEXEC` (76..=83), `ERESTART`, `ESTRPIPE`, `EUCLEAN` .. `EREMOTEIO`
    /// (117..=121), `ENOMEDIUM`, `EMEDIUMTYPE`, the key errors (126..=129), `ERFKILL`,
    /// `EHWPOISON`.
    const NO_DARWIN_TWIN: &[i32] = &[
        41, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 64, 65, 68, 69, 70, 73,
        76, 77, 78, 79, 80, 81, 82, 83, 85, 86, 117, 118, 119, 120, 121, 123, 124, 126, 127, 128,
        129, 132, 133,
    ];

    #[test]
    fn darwin_from_linux_every_linux_code_round_trips_or_is_eio() {
        for linux in 1..=133 {
            let darwin = darwin_from_linux(linux);
            if NO_DARWIN_TWIN.contains(&linux) {
                assert_eq!(darwin, DarwinErrno::EIO, "Linux {linux}");
            } else {
                assert_eq!(
                    darwin.to_linux().raw(),
                    linux,
                    "Linux {linux} -> {darwin:?}"
                );
                assert!(darwin.name().is_some(), "Linux {linux} -> {darwin:?}");
            }
        }
    }

    /// Independent of the table: numbers as in reference/macos.md §2.1.
    #[test]
    fn darwin_from_linux_known_numbers() {
        let pairs = [
            (2, 2),    // ENOENT
            (11, 35),  // EAGAIN
            (35, 11),  // EDEADLK
            (36, 63),  // ENAMETOOLONG
            (38, 78),  // ENOSYS
            (39, 66),  // ENOTEMPTY
            (40, 62),  // ELOOP
            (61, 93),  // ENODATA -> ENOATTR
            (95, 45),  // EOPNOTSUPP -> ENOTSUP
            (116, 70), // ESTALE
            (122, 69), // EDQUOT
        ];
        for (linux, darwin) in pairs {
            assert_eq!(darwin_from_linux(linux).raw(), darwin, "Linux {linux}");
        }
    }

    #[test]
    fn darwin_from_linux_unknown_and_out_of_range_are_eio() {
        for raw in [0, -1, 134, 4096, i32::MIN, i32::MAX] {
            assert_eq!(darwin_from_linux(raw), DarwinErrno::EIO, "{raw}");
        }
    }
}
