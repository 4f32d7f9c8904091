//! Extended attributes: flags, the name policy, and list/value buffers.
//!
//! * Flags: Linux `XATTR_CREATE` 1 / `XATTR_REPLACE` 2 are Darwin's 2 / 4. Every host call also
//!   passes [`HOST_OPTIONS`]: `XATTR_NOFOLLOW` (the host never follows a symlink the guest
//!   controls). Not `XATTR_NODEFAULT`: xnu refuses it (and `XATTR_NOSECURITY`) from user space
//!   with `EINVAL`, so the AppleDouble `._name` fallback on volumes without native xattrs
//!   cannot be switched off; the backend warns about such volumes instead.
//! * Names ([`classify`]): the override attributes ([`override_stat::XATTR_NAME`],
//!   [`override_stat::RDEV_XATTR_NAME`]) are the server's own, hidden from listings and
//!   `EACCES` to the guest, as libkrun does. Names outside the Linux namespaces (`user.`,
//!   `trusted.`, `security.`; Darwin has no namespaces) are host-native (`com.apple.quarantine`,
//!   `com.apple.FinderInfo`, `com.apple.ResourceFork`, SIP's `com.apple.rootless`...): hidden
//!   from listings and `EOPNOTSUPP`, which is what a Linux filesystem answers for an unknown
//!   namespace, so that `cp -a`, `rsync -X` and `tar --xattrs` in the guest do not trip on
//!   them, and the guest cannot alter the host's security metadata. `system.posix_acl_*` and
//!   the rest of `system.` are refused too: POSIX_ACL is never negotiated (the server cannot
//!   keep the mode in sync with an ACL), so an ACL stored as an opaque blob would lie.
//!   Names longer than Darwin's 127 bytes are `ENAMETOOLONG`.
//! * `ENOATTR` → `ENODATA` is in [`crate::errno`].
//! * Listing has no fixed-size buffer: [`read_list`] probes the size and retries when the list
//!   grew in between, [`filter_list`] drops hidden names in place, [`reply`] answers the
//!   guest's size probe or copies.
//!
//! Values: reference/macos.md §1.11 and §2.7.

use fuse_abi::Errno;
use fuse_server::XattrReply;

use crate::darwin_abi;
use crate::errno::DarwinErrno;
use crate::override_stat;

/// Linux `setxattr` flags (the limits are [`fuse_abi::limits`]'s).
pub mod linux {
    /// Fail if the attribute exists.
    pub const XATTR_CREATE: u32 = 1;
    /// Fail if the attribute does not exist.
    pub const XATTR_REPLACE: u32 = 2;
}

/// The `options` every host xattr call passes: never follow a symlink.
pub const HOST_OPTIONS: i32 = darwin_abi::XATTR_NOFOLLOW;

/// The Linux namespaces a guest's name may use (`system.` is refused, see the module doc).
const GUEST_NAMESPACES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

/// The host `setxattr` options for the guest's flags: [`HOST_OPTIONS`] plus the translated
/// `XATTR_CREATE`/`XATTR_REPLACE`. Other bits are `EINVAL`, as on Linux.
pub const fn set_options(flags: u32) -> Result<i32, Errno> {
    if flags & !(linux::XATTR_CREATE | linux::XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut options = HOST_OPTIONS;
    if flags & linux::XATTR_CREATE != 0 {
        options |= darwin_abi::XATTR_CREATE;
    }
    if flags & linux::XATTR_REPLACE != 0 {
        options |= darwin_abi::XATTR_REPLACE;
    }
    Ok(options)
}

/// What a name is to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameClass {
    /// A guest attribute: passed to the host unchanged.
    Guest,
    /// The server's own attribute: hidden, `EACCES`.
    Server,
    /// A host-native name (no Linux namespace) or one whose semantics the server cannot keep
    /// (`system.*`): hidden, `EOPNOTSUPP`.
    Host,
}

/// Classifies an attribute name (without its NUL).
pub fn classify(name: &[u8]) -> NameClass {
    if name == override_stat::XATTR_NAME.as_bytes()
        || name == override_stat::RDEV_XATTR_NAME.as_bytes()
    {
        NameClass::Server
    } else if GUEST_NAMESPACES
        .iter()
        .any(|namespace| name.len() > namespace.len() && name.starts_with(namespace))
    {
        NameClass::Guest
    } else {
        NameClass::Host
    }
}

/// Checks a name the guest asks to get, set or remove: `Ok` for a guest attribute the host
/// can store, `EACCES` for the server's own, `EOPNOTSUPP` for host-native and `system.` names,
/// `ENAMETOOLONG` beyond Darwin's 127 bytes, `EINVAL` for an empty name or one with a NUL.
pub fn check_guest_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    match classify(name) {
        NameClass::Server => Err(Errno::EACCES),
        NameClass::Host => Err(Errno::EOPNOTSUPP),
        NameClass::Guest if name.len() > darwin_abi::XATTR_MAXNAMELEN => Err(Errno::ENAMETOOLONG),
        NameClass::Guest => Ok(()),
    }
}

/// Whether a listed host name is shown to the guest.
pub fn is_visible(name: &[u8]) -> bool {
    classify(name) == NameClass::Guest
}

/// Filters a host `listxattr` result in place: keeps the NUL-terminated names the guest may
/// see ([`is_visible`]), in order, and returns the new length. Empty names and a trailing name
/// without its NUL (never produced by the host) are dropped, so the result is always a
/// well-formed list.
pub fn filter_list(list: &mut [u8]) -> usize {
    let mut write = 0;
    let mut read = 0;
    while read < list.len() {
        let Some(len) = list
            .get(read..)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
        else {
            break;
        };
        let end = read + len + 1; // including the NUL
        let keep = list
            .get(read..read + len)
            .is_some_and(|name| !name.is_empty() && is_visible(name));
        if keep {
            list.copy_within(read..end, write);
            write += end - read;
        }
        read = end;
    }
    write
}

/// How many times [`read_list`] retries when the list grows between the size probe and the
/// read.
pub const LIST_RETRIES: usize = 8;

/// Reads a whole host name list without a fixed-size buffer. `list` performs the host
/// `listxattr`/`flistxattr`: called with an empty buffer it returns the size, otherwise it fills
/// the buffer and returns the length. A host `ERANGE` (the list grew after the probe) makes it
/// probe again, up to [`LIST_RETRIES`] times; then `ERANGE` is returned.
pub fn read_list<F>(mut list: F) -> Result<Vec<u8>, DarwinErrno>
where
    F: FnMut(&mut [u8]) -> Result<usize, DarwinErrno>,
{
    for _ in 0..LIST_RETRIES {
        let size = list(&mut [])?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; size];
        match list(&mut buf) {
            Ok(len) => {
                buf.truncate(len.min(size));
                return Ok(buf);
            }
            Err(DarwinErrno::ERANGE) => continue,
            Err(errno) => return Err(errno),
        }
    }
    Err(DarwinErrno::ERANGE)
}

/// Answers a guest GETXATTR or LISTXATTR from the (already filtered) `data`: an empty `buf` is
/// the guest's size probe ([`XattrReply::Size`]); otherwise the data is copied, or `ERANGE` if
/// it does not fit. Data larger than `limit` (Linux's 64 KiB
/// [`XATTR_SIZE_MAX`](fuse_abi::limits::XATTR_SIZE_MAX) /
/// [`XATTR_LIST_MAX`](fuse_abi::limits::XATTR_LIST_MAX)) is `E2BIG`, as Linux reports it.
pub fn reply(data: &[u8], buf: &mut [u8], limit: usize) -> Result<XattrReply, Errno> {
    if data.len() > limit {
        return Err(Errno::E2BIG);
    }
    if buf.is_empty() {
        return u32::try_from(data.len())
            .map(XattrReply::Size)
            .map_err(|_| Errno::E2BIG);
    }
    match buf.get_mut(..data.len()) {
        Some(dest) => {
            dest.copy_from_slice(data);
            Ok(XattrReply::Data(data.len()))
        }
        None => Err(Errno::ERANGE),
    }
}

/// Compile-time check of the Linux values against `libc` when built for Linux.
#[cfg(target_os = "linux")]
const _: () = {
    assert!(linux::XATTR_CREATE == libc::XATTR_CREATE.unsigned_abs());
    assert!(linux::XATTR_REPLACE == libc::XATTR_REPLACE.unsigned_abs());
};

#[cfg(test)]
mod tests {
    use fuse_abi::limits::{XATTR_LIST_MAX, XATTR_SIZE_MAX};

    use super::*;

    #[test]
    fn flags_table() {
        // Numbers as in reference/macos.md §2.7: NOFOLLOW 1, CREATE 2, REPLACE 4. Never
        // NODEFAULT (0x10) or NOSECURITY (8): xnu answers EINVAL to them from user space.
        assert_eq!(HOST_OPTIONS, 0x1);
        assert_eq!(set_options(0), Ok(0x1));
        assert_eq!(set_options(1), Ok(0x1 | 2));
        assert_eq!(set_options(2), Ok(0x1 | 4));
        assert_eq!(set_options(3), Ok(0x1 | 2 | 4));
        for bad in [4, 8, 0x10, 1 << 31, u32::MAX] {
            assert_eq!(set_options(bad), Err(Errno::EINVAL), "{bad:#x}");
        }
    }

    #[test]
    fn name_policy() {
        let rows: [(&[u8], Result<(), Errno>); 16] = [
            (b"user.foo", Ok(())),
            (b"trusted.overlay.opaque", Ok(())),
            (b"security.capability", Ok(())),
            (b"security.selinux", Ok(())),
            (b"user.containers.override_stat", Err(Errno::EACCES)),
            (b"user.virtiofs.rdev", Err(Errno::EACCES)),
            (b"com.apple.quarantine", Err(Errno::EOPNOTSUPP)),
            (b"com.apple.FinderInfo", Err(Errno::EOPNOTSUPP)),
            (b"com.apple.rootless", Err(Errno::EOPNOTSUPP)),
            (b"system.posix_acl_access", Err(Errno::EOPNOTSUPP)),
            (b"system.posix_acl_default", Err(Errno::EOPNOTSUPP)),
            (b"user.", Err(Errno::EOPNOTSUPP)),
            (b"foo", Err(Errno::EOPNOTSUPP)),
            (b"", Err(Errno::EINVAL)),
            (b"user.a\0b", Err(Errno::EINVAL)),
            // A near miss of the override name is an ordinary guest attribute.
            (b"user.containers.override_stat2", Ok(())),
        ];
        for (name, expected) in rows {
            assert_eq!(
                check_guest_name(name),
                expected,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn name_length_limit() {
        let mut name = b"user.".to_vec();
        name.resize(127, b'a');
        assert_eq!(check_guest_name(&name), Ok(()));
        name.push(b'a');
        assert_eq!(check_guest_name(&name), Err(Errno::ENAMETOOLONG));
    }

    fn filtered(input: &[u8]) -> Vec<u8> {
        let mut buf = input.to_vec();
        let len = filter_list(&mut buf);
        buf.truncate(len);
        buf
    }

    #[test]
    fn list_filtering() {
        assert_eq!(filtered(b""), b"");
        assert_eq!(filtered(b"user.a\0"), b"user.a\0");
        assert_eq!(
            filtered(b"user.containers.override_stat\0user.a\0com.apple.quarantine\0security.capability\0"),
            b"user.a\0security.capability\0"
        );
        assert_eq!(
            filtered(b"com.apple.FinderInfo\0user.containers.override_stat\0"),
            b""
        );
        // Order kept, hidden names at every position.
        assert_eq!(
            filtered(b"user.x\0system.posix_acl_access\0user.y\0user.virtiofs.rdev\0user.z\0"),
            b"user.x\0user.y\0user.z\0"
        );
        // Malformed input: empty names and an unterminated tail are dropped.
        assert_eq!(filtered(b"\0\0user.a\0\0"), b"user.a\0");
        assert_eq!(filtered(b"user.a\0user.b"), b"user.a\0");
        assert_eq!(filtered(b"user.b"), b"");
    }

    /// A long list (more than libkrun's fixed 512 bytes) filters correctly.
    #[test]
    fn long_lists() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..2000 {
            let name = format!("user.attribute-{i}\0");
            input.extend_from_slice(name.as_bytes());
            expected.extend_from_slice(name.as_bytes());
            if i % 7 == 0 {
                input.extend_from_slice(b"user.containers.override_stat\0com.apple.macl\0");
            }
        }
        assert!(input.len() > 40_000);
        assert_eq!(filtered(&input), expected);
    }

    #[test]
    fn read_list_probes_and_retries() {
        let names = b"user.a\0user.bb\0".to_vec();
        // Plain: probe, then read.
        let mut calls = 0;
        let list = read_list(|buf: &mut [u8]| {
            calls += 1;
            if buf.is_empty() {
                return Ok(names.len());
            }
            buf[..names.len()].copy_from_slice(&names);
            Ok(names.len())
        });
        assert_eq!(list, Ok(names.clone()));
        assert_eq!(calls, 2);

        // The list grows after the first probe: ERANGE, probe again.
        let mut current = b"user.a\0".to_vec();
        let mut grown = false;
        let list = read_list(|buf: &mut [u8]| {
            if buf.is_empty() {
                let size = current.len();
                if !grown {
                    grown = true;
                    current = names.clone();
                }
                return Ok(size);
            }
            if buf.len() < current.len() {
                return Err(DarwinErrno::ERANGE);
            }
            buf[..current.len()].copy_from_slice(&current);
            Ok(current.len())
        });
        assert_eq!(list, Ok(names.clone()));

        // Empty list: one probe only.
        let mut calls = 0;
        let list = read_list(|_: &mut [u8]| {
            calls += 1;
            Ok(0)
        });
        assert_eq!(list, Ok(Vec::new()));
        assert_eq!(calls, 1);

        // Always growing: ERANGE after the retries.
        let mut size = 1;
        let list = read_list(|buf: &mut [u8]| {
            if buf.is_empty() {
                size += 1;
                Ok(size)
            } else {
                Err(DarwinErrno::ERANGE)
            }
        });
        assert_eq!(list, Err(DarwinErrno::ERANGE));

        // Another error is returned as is (still in Darwin numbering).
        let list = read_list(|_: &mut [u8]| Err(DarwinErrno::ENOTSUP));
        assert_eq!(list, Err(DarwinErrno::ENOTSUP));
        assert_eq!(list.map_err(Errno::from), Err(Errno::EOPNOTSUPP));

        // The list shrank: the shorter length is kept.
        let list = read_list(|buf: &mut [u8]| {
            if buf.is_empty() {
                Ok(100)
            } else {
                buf[..7].copy_from_slice(b"user.a\0");
                Ok(7)
            }
        });
        assert_eq!(list, Ok(b"user.a\0".to_vec()));
    }

    #[test]
    fn replies() {
        let data = b"user.a\0user.b\0";
        assert_eq!(
            reply(data, &mut [], XATTR_LIST_MAX),
            Ok(XattrReply::Size(14))
        );
        let mut exact = [0u8; 14];
        assert_eq!(
            reply(data, &mut exact, XATTR_LIST_MAX),
            Ok(XattrReply::Data(14))
        );
        assert_eq!(&exact, data);
        let mut big = [0xaau8; 32];
        assert_eq!(
            reply(data, &mut big, XATTR_LIST_MAX),
            Ok(XattrReply::Data(14))
        );
        assert_eq!(&big[..14], data);
        let mut small = [0u8; 13];
        assert_eq!(reply(data, &mut small, XATTR_LIST_MAX), Err(Errno::ERANGE));
        assert_eq!(reply(b"", &mut [], 0), Ok(XattrReply::Size(0)));
        assert_eq!(reply(b"", &mut small, 0), Ok(XattrReply::Data(0)));
        let huge = vec![1u8; XATTR_SIZE_MAX + 1];
        assert_eq!(reply(&huge, &mut [], XATTR_SIZE_MAX), Err(Errno::E2BIG));
    }
}
