//! Error numbers in Linux numbering, whatever the host.

use core::fmt;

macro_rules! errnos {
    ($( $name:ident = $value:literal, $text:literal; )*) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($value), "): ", $text, ".")]
                pub const $name: Errno = Errno($value);
            )*

            /// The symbolic name (`"ENOENT"`), or `None` for a number Linux does not define.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

/// A Linux error number (positive, 1..=4095), as the guest understands it.
///
/// It is deliberately independent of the host's `libc`: a macOS host must translate its own
/// numbers (Darwin `EAGAIN` is 35, Linux's is 11) before a value becomes an `Errno`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(i32);

impl Errno {
    /// The largest errno the kernel accepts in a reply (`-error` must be below 512).
    pub const MAX_WIRE: i32 = 511;

    /// An errno from its Linux number. Values outside 1..=511 become [`Errno::EIO`], because
    /// the kernel refuses any reply error outside −511..=−1.
    pub const fn from_raw(raw: i32) -> Errno {
        if raw >= 1 && raw <= Self::MAX_WIRE {
            Errno(raw)
        } else {
            Errno::EIO
        }
    }

    /// The positive Linux number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The value for `fuse_out_header.error`: the negated number.
    pub const fn to_wire(self) -> i32 {
        // `self.0` is in 1..=511 by construction, so the negation cannot overflow.
        0i32.wrapping_sub(self.0)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl core::error::Error for Errno {}

errnos! {
    EPERM = 1, "operation not permitted";
    ENOENT = 2, "no such file or directory";
    ESRCH = 3, "no such process";
    EINTR = 4, "interrupted system call";
    EIO = 5, "input/output error";
    ENXIO = 6, "no such device or address";
    E2BIG = 7, "argument list too long";
    ENOEXEC = 8, "exec format error";
    EBADF = 9, "bad file descriptor";
    ECHILD = 10, "no child processes";
    EAGAIN = 11, "resource temporarily unavailable (also EWOULDBLOCK)";
    ENOMEM = 12, "cannot allocate memory";
    EACCES = 13, "permission denied";
    EFAULT = 14, "bad address";
    ENOTBLK = 15, "block device required";
    EBUSY = 16, "device or resource busy";
    EEXIST = 17, "file exists";
    EXDEV = 18, "invalid cross-device link";
    ENODEV = 19, "no such device";
    ENOTDIR = 20, "not a directory";
    EISDIR = 21, "is a directory";
    EINVAL = 22, "invalid argument";
    ENFILE = 23, "too many open files in system";
    EMFILE = 24, "too many open files";
    ENOTTY = 25, "inappropriate ioctl for device";
    ETXTBSY = 26, "text file busy";
    EFBIG = 27, "file too large";
    ENOSPC = 28, "no space left on device";
    ESPIPE = 29, "illegal seek";
    EROFS = 30, "read-only file system";
    EMLINK = 31, "too many links";
    EPIPE = 32, "broken pipe";
    EDOM = 33, "numerical argument out of domain";
    ERANGE = 34, "numerical result out of range";
    EDEADLK = 35, "resource deadlock avoided";
    ENAMETOOLONG = 36, "file name too long";
    ENOLCK = 37, "no locks available";
    ENOSYS = 38, "function not implemented";
    ENOTEMPTY = 39, "directory not empty";
    ELOOP = 40, "too many levels of symbolic links";
    ENOMSG = 42, "no message of desired type";
    EIDRM = 43, "identifier removed";
    ECHRNG = 44, "channel number out of range";
    EL2NSYNC = 45, "level 2 not synchronized";
    EL3HLT = 46, "level 3 halted";
    EL3RST = 47, "level 3 reset";
    ELNRNG = 48, "link number out of range";
    EUNATCH = 49, "protocol driver not attached";
    ENOCSI = 50, "no CSI structure available";
    EL2HLT = 51, "level 2 halted";
    EBADE = 52, "invalid exchange";
    EBADR = 53, "invalid request descriptor";
    EXFULL = 54, "exchange full";
    ENOANO = 55, "no anode";
    EBADRQC = 56, "invalid request code";
    EBADSLT = 57, "invalid slot";
    EBFONT = 59, "bad font file format";
    ENOSTR = 60, "device not a stream";
    ENODATA = 61, "no data available (also the missing-xattr error)";
    ETIME = 62, "timer expired";
    ENOSR = 63, "out of streams resources";
    ENONET = 64, "machine is not on the network";
    ENOPKG = 65, "package not installed";
    EREMOTE = 66, "object is remote";
    ENOLINK = 67, "link has been severed";
    EADV = 68, "advertise error";
    ESRMNT = 69, "srmount error";
    ECOMM = 70, "communication error on send";
    EPROTO = 71, "protocol error";
    EMULTIHOP = 72, "multihop attempted";
    EDOTDOT = 73, "RFS specific error";
    EBADMSG = 74, "bad message";
    EOVERFLOW = 75, "value too large for defined data type";
    ENOTUNIQ = 76, "name not unique on network";
    EBADFD = 77, "file descriptor in bad state";
    EREMCHG = 78, "remote address changed";
    ELIBACC = 79, "can not access a needed shared library";
    ELIBBAD = 80, "accessing a corrupted shared library";
    ELIBSCN = 81, ".lib section in a.out corrupted";
    ELIBMAX = 82, "attempting to link in too many shared libraries";
    ELIBEXEC = 83, "cannot exec a shared library directly";
    EILSEQ = 84, "invalid or incomplete multibyte or wide character";
    ERESTART = 85, "interrupted system call should be restarted";
    ESTRPIPE = 86, "streams pipe error";
    EUSERS = 87, "too many users";
    ENOTSOCK = 88, "socket operation on non-socket";
    EDESTADDRREQ = 89, "destination address required";
    EMSGSIZE = 90, "message too long";
    EPROTOTYPE = 91, "protocol wrong type for socket";
    ENOPROTOOPT = 92, "protocol not available";
    EPROTONOSUPPORT = 93, "protocol not supported";
    ESOCKTNOSUPPORT = 94, "socket type not supported";
    EOPNOTSUPP = 95, "operation not supported (also ENOTSUP)";
    EPFNOSUPPORT = 96, "protocol family not supported";
    EAFNOSUPPORT = 97, "address family not supported by protocol";
    EADDRINUSE = 98, "address already in use";
    EADDRNOTAVAIL = 99, "cannot assign requested address";
    ENETDOWN = 100, "network is down";
    ENETUNREACH = 101, "network is unreachable";
    ENETRESET = 102, "network dropped connection on reset";
    ECONNABORTED = 103, "software caused connection abort";
    ECONNRESET = 104, "connection reset by peer";
    ENOBUFS = 105, "no buffer space available";
    EISCONN = 106, "transport endpoint is already connected";
    ENOTCONN = 107, "transport endpoint is not connected";
    ESHUTDOWN = 108, "cannot send after transport endpoint shutdown";
    ETOOMANYREFS = 109, "too many references: cannot splice";
    ETIMEDOUT = 110, "connection timed out";
    ECONNREFUSED = 111, "connection refused";
    EHOSTDOWN = 112, "host is down";
    EHOSTUNREACH = 113, "no route to host";
    EALREADY = 114, "operation already in progress";
    EINPROGRESS = 115, "operation now in progress";
    ESTALE = 116, "stale file handle";
    EUCLEAN = 117, "structure needs cleaning";
    ENOTNAM = 118, "not a XENIX named type file";
    ENAVAIL = 119, "no XENIX semaphores available";
    EISNAM = 120, "is a named type file";
    EREMOTEIO = 121, "remote I/O error";
    EDQUOT = 122, "disk quota exceeded";
    ENOMEDIUM = 123, "no medium found";
    EMEDIUMTYPE = 124, "wrong medium type";
    ECANCELED = 125, "operation canceled";
    ENOKEY = 126, "required key not available";
    EKEYEXPIRED = 127, "key has expired";
    EKEYREVOKED = 128, "key has been revoked";
    EKEYREJECTED = 129, "key was rejected by service";
    EOWNERDEAD = 130, "owner died";
    ENOTRECOVERABLE = 131, "state not recoverable";
    ERFKILL = 132, "operation not possible due to RF-kill";
    EHWPOISON = 133, "memory page has hardware error";
}

impl Errno {
    /// Same as [`Errno::EAGAIN`].
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
    /// Same as [`Errno::EOPNOTSUPP`].
    pub const ENOTSUP: Errno = Errno::EOPNOTSUPP;
    /// Same as [`Errno::EDEADLK`].
    pub const EDEADLOCK: Errno = Errno::EDEADLK;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_raw_out_of_range_becomes_eio() {
        for raw in [0, -1, 512, i32::MIN, i32::MAX] {
            assert_eq!(Errno::from_raw(raw), Errno::EIO);
        }
    }

    #[test]
    fn to_wire_is_negative_and_in_kernel_range() {
        for raw in 1..=511 {
            let wire = Errno::from_raw(raw).to_wire();
            assert!((-511..=-1).contains(&wire));
        }
    }

    #[test]
    fn linux_numbers_that_differ_from_darwin() {
        assert_eq!(Errno::EAGAIN.raw(), 11);
        assert_eq!(Errno::ENOSYS.raw(), 38);
        assert_eq!(Errno::ENOTEMPTY.raw(), 39);
        assert_eq!(Errno::ENODATA.raw(), 61);
        assert_eq!(Errno::EOPNOTSUPP.raw(), 95);
        assert_eq!(Errno::ENODATA.name(), Some("ENODATA"));
    }
}
