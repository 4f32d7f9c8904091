//! Host errors in Darwin numbering, and their translation to the guest's Linux numbers.
//!
//! The host layer returns [`DarwinErrno`]; the FUSE reply path takes only [`fuse_abi::Errno`]
//! (Linux numbering). They are different types, and the only way from one to the other is
//! [`DarwinErrno::to_linux`] (also available as `From`), so a missed translation does not
//! compile. Every Darwin code has an explicit row in the table below (1 to 34 have the same
//! numbers on both systems except 11, which is `EDEADLK` on Darwin and `EAGAIN` on Linux);
//! anything else (unknown or out of range) becomes `EIO`.

use core::fmt;

use fuse_abi::Errno;

use crate::darwin_abi;

/// An error number as macOS numbers it (`ENOATTR` is 93, `EAGAIN` 35, `ENOSYS` 78...).
///
/// Never send one to the guest: translate it with [`DarwinErrno::to_linux`] first.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DarwinErrno(i32);

impl DarwinErrno {
    /// The error from its Darwin number, as `errno` holds it. Any value is kept as is; unknown
    /// ones translate to `EIO`.
    pub const fn from_raw(raw: i32) -> DarwinErrno {
        DarwinErrno(raw)
    }

    /// The Darwin number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// Same as [`DarwinErrno::EAGAIN`].
    pub const EWOULDBLOCK: DarwinErrno = DarwinErrno::EAGAIN;
}

/// Defines, from one table: an associated constant per Darwin errno, `name()`, and
/// `to_linux()`. `$linux` is the name of the [`Errno`] the guest sees.
macro_rules! darwin_errnos {
    ($($name:ident => $linux:ident;)+) => {
        impl DarwinErrno {
            $(
                #[doc = concat!("Darwin `", stringify!($name), "`; the guest sees `",
                                stringify!($linux), "`.")]
                pub const $name: DarwinErrno = DarwinErrno(darwin_abi::$name);
            )+

            /// The symbolic Darwin name (`"ENOATTR"`), or `None` for a number Darwin does not
            /// define.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( darwin_abi::$name => Some(stringify!($name)), )+
                    _ => None,
                }
            }

            /// The Linux errno the guest must see for this host error.
            pub const fn to_linux(self) -> Errno {
                match self.0 {
                    $( darwin_abi::$name => Errno::$linux, )+
                    _ => Errno::EIO,
                }
            }
        }
    };
}

darwin_errnos! {
    // 1 to 34: the same numbers on Linux, except EDEADLK (Linux: 35; 11 is Linux's EAGAIN).
    EPERM => EPERM;
    ENOENT => ENOENT;
    ESRCH => ESRCH;
    EINTR => EINTR;
    EIO => EIO;
    ENXIO => ENXIO;
    E2BIG => E2BIG;
    ENOEXEC => ENOEXEC;
    EBADF => EBADF;
    ECHILD => ECHILD;
    EDEADLK => EDEADLK;
    ENOMEM => ENOMEM;
    EACCES => EACCES;
    EFAULT => EFAULT;
    ENOTBLK => ENOTBLK;
    EBUSY => EBUSY;
    EEXIST => EEXIST;
    EXDEV => EXDEV;
    ENODEV => ENODEV;
    ENOTDIR => ENOTDIR;
    EISDIR => EISDIR;
    EINVAL => EINVAL;
    ENFILE => ENFILE;
    EMFILE => EMFILE;
    ENOTTY => ENOTTY;
    ETXTBSY => ETXTBSY;
    EFBIG => EFBIG;
    ENOSPC => ENOSPC;
    ESPIPE => ESPIPE;
    EROFS => EROFS;
    EMLINK => EMLINK;
    EPIPE => EPIPE;
    EDOM => EDOM;
    ERANGE => ERANGE;
    // 35 and up: the same meaning under a different number.
    EAGAIN => EAGAIN;
    EINPROGRESS => EINPROGRESS;
    EALREADY => EALREADY;
    ENOTSOCK => ENOTSOCK;
    EDESTADDRREQ => EDESTADDRREQ;
    EMSGSIZE => EMSGSIZE;
    EPROTOTYPE => EPROTOTYPE;
    ENOPROTOOPT => ENOPROTOOPT;
    EPROTONOSUPPORT => EPROTONOSUPPORT;
    ESOCKTNOSUPPORT => ESOCKTNOSUPPORT;
    ENOTSUP => ENOTSUP;
    EPFNOSUPPORT => EPFNOSUPPORT;
    EAFNOSUPPORT => EAFNOSUPPORT;
    EADDRINUSE => EADDRINUSE;
    EADDRNOTAVAIL => EADDRNOTAVAIL;
    ENETDOWN => ENETDOWN;
    ENETUNREACH => ENETUNREACH;
    ENETRESET => ENETRESET;
    ECONNABORTED => ECONNABORTED;
    ECONNRESET => ECONNRESET;
    ENOBUFS => ENOBUFS;
    EISCONN => EISCONN;
    ENOTCONN => ENOTCONN;
    ESHUTDOWN => ESHUTDOWN;
    ETOOMANYREFS => ETOOMANYREFS;
    ETIMEDOUT => ETIMEDOUT;
    ECONNREFUSED => ECONNREFUSED;
    ELOOP => ELOOP;
    ENAMETOOLONG => ENAMETOOLONG;
    EHOSTDOWN => EHOSTDOWN;
    EHOSTUNREACH => EHOSTUNREACH;
    ENOTEMPTY => ENOTEMPTY;
    EUSERS => EUSERS;
    EDQUOT => EDQUOT;
    ESTALE => ESTALE;
    EREMOTE => EREMOTE;
    ENOLCK => ENOLCK;
    ENOSYS => ENOSYS;
    EOVERFLOW => EOVERFLOW;
    ECANCELED => ECANCELED;
    EIDRM => EIDRM;
    ENOMSG => ENOMSG;
    EILSEQ => EILSEQ;
    EBADMSG => EBADMSG;
    EMULTIHOP => EMULTIHOP;
    ENODATA => ENODATA;
    ENOLINK => ENOLINK;
    ENOSR => ENOSR;
    ENOSTR => ENOSTR;
    EPROTO => EPROTO;
    ETIME => ETIME;
    EOPNOTSUPP => EOPNOTSUPP;
    ENOTRECOVERABLE => ENOTRECOVERABLE;
    EOWNERDEAD => EOWNERDEAD;
    // A missing extended attribute: Linux reports ENODATA.
    ENOATTR => ENODATA;
    // Darwin only: the nearest Linux meaning.
    EPROCLIM => EAGAIN; // process limit: what Linux's fork reports
    EBADRPC => EIO;
    ERPCMISMATCH => EIO;
    EPROGUNAVAIL => EIO;
    EPROGMISMATCH => EIO;
    EPROCUNAVAIL => EIO;
    EFTYPE => EINVAL; // inappropriate file type or format
    EAUTH => EACCES;
    ENEEDAUTH => EACCES;
    EPWROFF => EIO;
    EDEVERR => EIO;
    EBADEXEC => ENOEXEC;
    EBADARCH => ENOEXEC;
    ESHLIBVERS => ENOEXEC;
    EBADMACHO => ENOEXEC;
    ENOPOLICY => EPERM; // no such MAC policy: a denial
    EQFULL => ENOBUFS; // interface output queue full
    ENOTCAPABLE => EPERM; // capabilities insufficient
}

impl From<DarwinErrno> for Errno {
    fn from(errno: DarwinErrno) -> Errno {
        errno.to_linux()
    }
}

impl fmt::Debug for DarwinErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Darwin {name}({})", self.0),
            None => write!(f, "DarwinErrno({})", self.0),
        }
    }
}

impl fmt::Display for DarwinErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for DarwinErrno {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Darwin errno: 1 to `ELAST`.
    fn all() -> impl Iterator<Item = DarwinErrno> {
        (1..=darwin_abi::ELAST).map(DarwinErrno::from_raw)
    }

    #[test]
    fn every_darwin_code_has_a_name_and_a_row() {
        for errno in all() {
            assert!(errno.name().is_some(), "{errno:?} has no row");
        }
        assert_eq!(DarwinErrno::from_raw(darwin_abi::ELAST + 1).name(), None);
    }

    #[test]
    fn shared_low_numbers_pass_through_unchanged() {
        // 11 is EDEADLK on Darwin but EAGAIN on Linux.
        for raw in (1..=34).filter(|&raw| raw != 11) {
            assert_eq!(DarwinErrno::from_raw(raw).to_linux().raw(), raw);
        }
    }

    #[test]
    fn same_name_maps_to_same_name() {
        // The Darwin codes whose Linux twin has another name (ENOTSUP is an alias of
        // EOPNOTSUPP on Linux), or that Linux lacks.
        let renamed = [
            ("ENOTSUP", "EOPNOTSUPP"),
            ("ENOATTR", "ENODATA"),
            ("EPROCLIM", "EAGAIN"),
            ("EBADRPC", "EIO"),
            ("ERPCMISMATCH", "EIO"),
            ("EPROGUNAVAIL", "EIO"),
            ("EPROGMISMATCH", "EIO"),
            ("EPROCUNAVAIL", "EIO"),
            ("EFTYPE", "EINVAL"),
            ("EAUTH", "EACCES"),
            ("ENEEDAUTH", "EACCES"),
            ("EPWROFF", "EIO"),
            ("EDEVERR", "EIO"),
            ("EBADEXEC", "ENOEXEC"),
            ("EBADARCH", "ENOEXEC"),
            ("ESHLIBVERS", "ENOEXEC"),
            ("EBADMACHO", "ENOEXEC"),
            ("ENOPOLICY", "EPERM"),
            ("EQFULL", "ENOBUFS"),
            ("ENOTCAPABLE", "EPERM"),
        ];
        for errno in all() {
            let name = errno.name().expect("every code has a name");
            let expected = renamed
                .iter()
                .find(|(darwin, _)| *darwin == name)
                .map_or(name, |(_, linux)| linux);
            assert_eq!(
                errno.to_linux().name(),
                Some(expected),
                "{errno:?} -> {:?}",
                errno.to_linux()
            );
        }
    }

    /// Independent of the table above: numbers as in reference/macos.md §2.1.
    #[test]
    fn numbers_from_the_reference_table() {
        let pairs = [
            (11, 35),   // EDEADLK
            (35, 11),   // EAGAIN
            (36, 115),  // EINPROGRESS
            (37, 114),  // EALREADY
            (38, 88),   // ENOTSOCK
            (45, 95),   // ENOTSUP
            (48, 98),   // EADDRINUSE
            (60, 110),  // ETIMEDOUT
            (61, 111),  // ECONNREFUSED
            (62, 40),   // ELOOP
            (63, 36),   // ENAMETOOLONG
            (66, 39),   // ENOTEMPTY
            (68, 87),   // EUSERS
            (69, 122),  // EDQUOT
            (70, 116),  // ESTALE
            (71, 66),   // EREMOTE
            (77, 37),   // ENOLCK
            (78, 38),   // ENOSYS
            (84, 75),   // EOVERFLOW
            (89, 125),  // ECANCELED
            (90, 43),   // EIDRM
            (91, 42),   // ENOMSG
            (92, 84),   // EILSEQ
            (93, 61),   // ENOATTR -> ENODATA
            (94, 74),   // EBADMSG
            (95, 72),   // EMULTIHOP
            (96, 61),   // ENODATA
            (97, 67),   // ENOLINK
            (98, 63),   // ENOSR
            (99, 60),   // ENOSTR
            (100, 71),  // EPROTO
            (101, 62),  // ETIME
            (102, 95),  // EOPNOTSUPP
            (104, 131), // ENOTRECOVERABLE
            (105, 130), // EOWNERDEAD
        ];
        for (darwin, linux) in pairs {
            assert_eq!(
                DarwinErrno::from_raw(darwin).to_linux().raw(),
                linux,
                "Darwin {darwin}"
            );
        }
    }

    #[test]
    fn deadlock_is_not_eagain() {
        assert_eq!(DarwinErrno::EDEADLK.to_linux(), Errno::EDEADLK);
        assert_eq!(DarwinErrno::EDEADLK.to_linux().raw(), 35);
        assert_eq!(DarwinErrno::EAGAIN.to_linux().raw(), 11);
    }

    #[test]
    fn unknown_and_out_of_range_become_eio() {
        for raw in [0, -1, darwin_abi::ELAST + 1, 4096, i32::MIN, i32::MAX] {
            assert_eq!(DarwinErrno::from_raw(raw).to_linux(), Errno::EIO, "{raw}");
        }
    }

    #[test]
    fn constants_conversion_and_debug() {
        assert_eq!(DarwinErrno::ENOATTR.raw(), 93);
        assert_eq!(DarwinErrno::EWOULDBLOCK, DarwinErrno::EAGAIN);
        assert_eq!(Errno::from(DarwinErrno::ENOSYS), Errno::ENOSYS);
        assert_eq!(format!("{:?}", DarwinErrno::ENOATTR), "Darwin ENOATTR(93)");
        assert_eq!(
            format!("{}", DarwinErrno::from_raw(999)),
            "DarwinErrno(999)"
        );
    }
}
