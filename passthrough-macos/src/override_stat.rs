//! The guest's ownership and mode, kept in the `user.containers.override_stat` extended
//! attribute with the encoding libkrun (and podman/buildah, containers-storage, fuse-overlayfs)
//! use, so that existing shares keep their metadata.
//!
//! The format (reference/macos.md §1.3), exactly:
//!
//! * ASCII, three fields separated by `:` — `uid` (decimal), `gid` (decimal), `mode` (octal,
//!   written with a leading `0`): `0:0:0100644`, `1000:1000:040755`, `0:0:0755`.
//! * A field the writer does not know is written as `x`.
//! * No trailing NUL. Readers use a 32-byte buffer: a longer value is "no override at all".
//! * On read each field is parsed on its own (radix 10, 10, 8); a missing or unparsable field
//!   means "use the host's value" for that field. Fields after the third are ignored (other
//!   writers append their own).
//! * The mode carries the `S_IFMT` type bits when the writer knows them (create, mknod,
//!   symlink, chmod). Special files are created on the host as regular files whose override
//!   holds the guest's type (`S_IFCHR`, `S_IFBLK`, `S_IFIFO`, `S_IFSOCK`). A mode without type
//!   bits (`0:0:0755`, as `mkdir` and external tools write) replaces only the permission bits.
//!
//! [`compose_mode`] decides which type the guest sees; see its rules. The device number of an
//! emulated device node is not part of this format (libkrun drops it): this crate keeps it in a
//! private attribute, [`RDEV_XATTR_NAME`], holding the guest's `new_encode_dev` value in
//! decimal.

use fuse_abi::mode;

use crate::darwin_abi;

/// The attribute's name (hidden from the guest).
pub const XATTR_NAME: &str = "user.containers.override_stat";

/// The private attribute holding an emulated device node's number (hidden from the guest).
pub const RDEV_XATTR_NAME: &str = "user.virtiofs.rdev";

/// The largest value readers accept, in bytes (libkrun reads into a 32-byte buffer).
pub const MAX_LEN: usize = 32;

/// Permission bits: rwx for user, group, other, plus set-uid, set-gid and sticky.
pub const PERMISSION_BITS: u32 = 0o7777;

// The file type bits are the same on Darwin and Linux (reference/macos.md §2.3); the override
// and the host mode are mixed below on that basis.
const _: () = {
    assert!(darwin_abi::S_IFMT as u32 == mode::S_IFMT);
    assert!(darwin_abi::S_IFIFO as u32 == mode::S_IFIFO);
    assert!(darwin_abi::S_IFCHR as u32 == mode::S_IFCHR);
    assert!(darwin_abi::S_IFDIR as u32 == mode::S_IFDIR);
    assert!(darwin_abi::S_IFBLK as u32 == mode::S_IFBLK);
    assert!(darwin_abi::S_IFREG as u32 == mode::S_IFREG);
    assert!(darwin_abi::S_IFLNK as u32 == mode::S_IFLNK);
    assert!(darwin_abi::S_IFSOCK as u32 == mode::S_IFSOCK);
    assert!(darwin_abi::S_ISUID as u32 == mode::S_ISUID);
    assert!(darwin_abi::S_ISGID as u32 == mode::S_ISGID);
    assert!(darwin_abi::S_ISVTX as u32 == mode::S_ISVTX);
};

/// A decoded (or to-be-encoded) override: `None` fields mean "the host's value" (`x` on disk).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OverrideStat {
    /// The guest-visible owner.
    pub uid: Option<u32>,
    /// The guest-visible group.
    pub gid: Option<u32>,
    /// The guest-visible mode: permission bits, with or without `S_IFMT` type bits.
    pub mode: Option<u32>,
}

impl OverrideStat {
    /// An override with all three fields known.
    pub const fn new(uid: u32, gid: u32, mode: u32) -> OverrideStat {
        OverrideStat {
            uid: Some(uid),
            gid: Some(gid),
            mode: Some(mode),
        }
    }

    /// Decodes a stored value. `None` if the value is longer than [`MAX_LEN`] (libkrun's read
    /// fails then, and the file shows its host metadata). Otherwise each field is parsed on its
    /// own; a field that does not parse (`x`, empty, junk, out of range) is `None`. Never
    /// panics, whatever the bytes.
    pub fn decode(value: &[u8]) -> Option<OverrideStat> {
        if value.len() > MAX_LEN {
            return None;
        }
        let mut fields = value.split(|&byte| byte == b':');
        let uid = fields.next().and_then(|field| parse(field, 10));
        let gid = fields.next().and_then(|field| parse(field, 10));
        let mode = fields
            .next()
            .and_then(|field| parse(field, 8))
            .filter(|&mode| mode <= u32::from(u16::MAX));
        Some(OverrideStat { uid, gid, mode })
    }

    /// Encodes the value to store: `uid:gid:0mode`, `x` for an unknown field. At most 29
    /// bytes (`4294967295:4294967295:0177777`), so readers with a 32-byte buffer take it.
    pub fn encode(&self) -> String {
        let uid = self
            .uid
            .map_or_else(|| "x".to_owned(), |uid| uid.to_string());
        let gid = self
            .gid
            .map_or_else(|| "x".to_owned(), |gid| gid.to_string());
        let mode = self
            .mode
            .map_or_else(|| "x".to_owned(), |mode| format!("0{:o}", mode & 0xffff));
        format!("{uid}:{gid}:{mode}")
    }

    /// Whether no field overrides anything.
    pub const fn is_empty(&self) -> bool {
        self.uid.is_none() && self.gid.is_none() && self.mode.is_none()
    }

    /// The guest's `(uid, gid, mode)` for a host object with these values (mode in Linux/FUSE
    /// width, host type bits included).
    pub fn apply(&self, host_uid: u32, host_gid: u32, host_mode: u32) -> (u32, u32, u32) {
        (
            self.uid.unwrap_or(host_uid),
            self.gid.unwrap_or(host_gid),
            compose_mode(host_mode, self.mode),
        )
    }
}

/// The mode the guest sees, from the host's mode and the override's.
///
/// * No override mode: the host mode.
/// * An override without type bits: the host type, the override's permission bits.
/// * An override with type bits, on a host **regular file**: the override's type, one of
///   regular, character or block device, FIFO or socket (the emulated special files).
/// * An override with the host's own type (a directory's `040755`, a symlink's `0120777`): the
///   override's permission bits.
/// * Any other type claim (a regular file claiming to be a directory or a symlink, a directory
///   claiming to be a file...) is ignored: the host type stays, so the guest never sends
///   directory or symlink operations to an object that is not one. The override's permission
///   bits still apply.
pub const fn compose_mode(host_mode: u32, override_mode: Option<u32>) -> u32 {
    let Some(over) = override_mode else {
        return host_mode;
    };
    let host_type = host_mode & mode::S_IFMT;
    let over_type = over & mode::S_IFMT;
    let permissions = over & PERMISSION_BITS;
    let typ = if over_type == 0 || over_type == host_type {
        host_type
    } else if host_type == mode::S_IFREG && is_emulated_type(over_type) {
        over_type
    } else {
        host_type
    };
    typ | permissions
}

/// Whether a file type can be emulated by a host regular file: regular itself, devices,
/// FIFOs and sockets (not directories or symlinks, which are real on the host).
pub const fn is_emulated_type(typ: u32) -> bool {
    matches!(
        typ,
        mode::S_IFREG | mode::S_IFCHR | mode::S_IFBLK | mode::S_IFIFO | mode::S_IFSOCK
    )
}

/// Whether the guest sees this object as a device node emulated by a host regular file (its
/// `rdev` then comes from [`RDEV_XATTR_NAME`]).
pub const fn is_emulated_device(host_mode: u32, guest_mode: u32) -> bool {
    host_mode & mode::S_IFMT == mode::S_IFREG
        && matches!(guest_mode & mode::S_IFMT, mode::S_IFCHR | mode::S_IFBLK)
}

/// Encodes the [`RDEV_XATTR_NAME`] value: the guest's `new_encode_dev` number in decimal.
pub fn encode_rdev(rdev: u32) -> String {
    rdev.to_string()
}

/// Decodes the [`RDEV_XATTR_NAME`] value; `None` for anything but a decimal `u32`.
pub fn decode_rdev(value: &[u8]) -> Option<u32> {
    parse(value, 10)
}

/// Parses an unsigned number in `radix` from ASCII digits only (no sign, no spaces, at least
/// one digit); `None` otherwise or on overflow.
fn parse(field: &[u8], radix: u32) -> Option<u32> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u32, |value, &byte| {
        let digit = char::from(byte).to_digit(radix)?;
        value.checked_mul(radix)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: u32 = mode::S_IFREG;
    const DIR: u32 = mode::S_IFDIR;
    const LNK: u32 = mode::S_IFLNK;
    const CHR: u32 = mode::S_IFCHR;
    const BLK: u32 = mode::S_IFBLK;
    const FIFO: u32 = mode::S_IFIFO;
    const SOCK: u32 = mode::S_IFSOCK;

    #[test]
    fn libkrun_examples() {
        assert_eq!(
            OverrideStat::decode(b"0:0:0100644"),
            Some(OverrideStat::new(0, 0, REG | 0o644))
        );
        assert_eq!(
            OverrideStat::decode(b"0:0:040400"),
            Some(OverrideStat::new(0, 0, DIR | 0o400))
        );
        assert_eq!(
            OverrideStat::decode(b"1000:100:0755"),
            Some(OverrideStat::new(1000, 100, 0o755))
        );
        assert_eq!(OverrideStat::new(0, 0, REG | 0o644).encode(), "0:0:0100644");
        assert_eq!(OverrideStat::new(0, 0, DIR | 0o400).encode(), "0:0:040400");
        assert_eq!(OverrideStat::new(0, 0, LNK | 0o777).encode(), "0:0:0120777");
        assert_eq!(OverrideStat::new(5, 6, 0o755).encode(), "5:6:0755");
        assert_eq!(OverrideStat::new(0, 0, 0).encode(), "0:0:00");
    }

    #[test]
    fn unknown_fields_are_x() {
        let partial = OverrideStat {
            uid: Some(7),
            gid: None,
            mode: None,
        };
        assert_eq!(partial.encode(), "7:x:x");
        assert_eq!(OverrideStat::decode(b"7:x:x"), Some(partial));
        assert_eq!(OverrideStat::default().encode(), "x:x:x");
        assert!(OverrideStat::decode(b"x:x:x").is_some_and(|o| o.is_empty()));
    }

    #[test]
    fn round_trips() {
        let uids = [0, 1, 501, 65_534, u32::MAX - 1, u32::MAX];
        let modes = [
            0,
            0o644,
            0o7777,
            REG | 0o644,
            DIR | 0o755,
            LNK | 0o777,
            CHR | 0o600,
            BLK | 0o660,
            FIFO | 0o644,
            SOCK | 0o755,
            REG | 0o6755,
            0o177_777,
        ];
        for uid in uids {
            for gid in uids {
                for mode in modes {
                    for ov in [
                        OverrideStat::new(uid, gid, mode),
                        OverrideStat {
                            uid: Some(uid),
                            gid: None,
                            mode: Some(mode),
                        },
                        OverrideStat {
                            uid: None,
                            gid: Some(gid),
                            mode: None,
                        },
                    ] {
                        let text = ov.encode();
                        assert!(text.len() <= MAX_LEN, "{text}");
                        assert!(text.is_ascii());
                        assert_eq!(OverrideStat::decode(text.as_bytes()), Some(ov), "{text}");
                    }
                }
            }
        }
        let longest = OverrideStat::new(u32::MAX, u32::MAX, 0o177_777).encode();
        assert_eq!(longest, "4294967295:4294967295:0177777");
        assert_eq!(longest.len(), 29);
    }

    #[test]
    fn fields_parse_independently() {
        let cases: [(&[u8], OverrideStat); 12] = [
            (b"", OverrideStat::default()),
            (
                b"0",
                OverrideStat {
                    uid: Some(0),
                    ..OverrideStat::default()
                },
            ),
            (
                b"0:0",
                OverrideStat {
                    uid: Some(0),
                    gid: Some(0),
                    mode: None,
                },
            ),
            (
                b"abc:12:0644",
                OverrideStat {
                    uid: None,
                    gid: Some(12),
                    mode: Some(0o644),
                },
            ),
            (
                b"1:2:0899",
                OverrideStat {
                    uid: Some(1),
                    gid: Some(2),
                    mode: None,
                },
            ),
            (
                b"-1:+2:0644",
                OverrideStat {
                    uid: None,
                    gid: None,
                    mode: Some(0o644),
                },
            ),
            (
                b"4294967296:1:1",
                OverrideStat {
                    uid: None,
                    gid: Some(1),
                    mode: Some(1),
                },
            ),
            (
                b" 1:2 :0644\n",
                OverrideStat {
                    uid: None,
                    gid: None,
                    mode: None,
                },
            ),
            // Extra fields (other writers' extensions) are ignored.
            (b"1:2:0100644:file", OverrideStat::new(1, 2, REG | 0o644)),
            (b"1:2:020600:3:4", OverrideStat::new(1, 2, CHR | 0o600)),
            // A mode wider than 16 bits is junk.
            (
                b"1:2:01000644",
                OverrideStat {
                    uid: Some(1),
                    gid: Some(2),
                    mode: None,
                },
            ),
            // A trailing NUL is not part of the format: the mode does not parse.
            (
                b"1:2:0644\0",
                OverrideStat {
                    uid: Some(1),
                    gid: Some(2),
                    mode: None,
                },
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                OverrideStat::decode(value),
                Some(expected),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn too_long_is_no_override() {
        let exactly = b"0:0:0100644:...................."; // 32 bytes
        assert_eq!(exactly.len(), MAX_LEN);
        assert!(OverrideStat::decode(exactly).is_some());
        let longer = b"0:0:0100644:.....................";
        assert_eq!(OverrideStat::decode(longer), None);
    }

    /// Arbitrary bytes never panic (a deterministic pseudo-random walk).
    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let alphabet = b"0123456789:x-+ \0\xff";
                        let index = usize::try_from(state % 17).unwrap_or(0);
                        alphabet.get(index).copied().unwrap_or(b'0')
                    })
                    .collect();
                let decoded = OverrideStat::decode(&bytes);
                assert_eq!(decoded.is_some(), bytes.len() <= MAX_LEN);
                if let Some(ov) = decoded {
                    let _ = ov.apply(1, 2, REG | 0o600);
                    assert!(ov.mode.is_none_or(|m| m <= 0xffff));
                }
            }
        }
    }

    #[test]
    fn mode_composition() {
        // (host mode, override mode, guest mode)
        let rows = [
            // No override.
            (REG | 0o600, None, REG | 0o600),
            // Permission bits only: host type kept.
            (REG | 0o600, Some(0o755), REG | 0o755),
            (DIR | 0o700, Some(0o755), DIR | 0o755),
            (LNK | 0o755, Some(0o777), LNK | 0o777),
            (REG | 0o600, Some(0o4755), REG | 0o4755),
            // Same type as the host.
            (DIR | 0o700, Some(DIR | 0o1777), DIR | 0o1777),
            (REG | 0o600, Some(REG | 0o644), REG | 0o644),
            (LNK | 0o755, Some(LNK | 0o777), LNK | 0o777),
            // Special files emulated by host regular files.
            (REG | 0o600, Some(CHR | 0o666), CHR | 0o666),
            (REG | 0o600, Some(BLK | 0o660), BLK | 0o660),
            (REG | 0o600, Some(FIFO | 0o644), FIFO | 0o644),
            (REG | 0o600, Some(SOCK | 0o755), SOCK | 0o755),
            (REG | 0o600, Some(CHR), CHR),
            // Type claims the host object cannot honour: host type, override permissions.
            (REG | 0o600, Some(DIR | 0o755), REG | 0o755),
            (REG | 0o600, Some(LNK | 0o777), REG | 0o777),
            (DIR | 0o700, Some(REG | 0o644), DIR | 0o644),
            (DIR | 0o700, Some(CHR | 0o644), DIR | 0o644),
            (LNK | 0o755, Some(REG | 0o644), LNK | 0o644),
            (CHR | 0o600, Some(BLK | 0o600), CHR | 0o600),
            // A real host FIFO keeps its type.
            (FIFO | 0o600, Some(REG | 0o644), FIFO | 0o644),
            // Darwin's whiteout type is not a Linux type to emulate.
            (REG | 0o600, Some(0o160_644), REG | 0o644),
        ];
        for (host, over, guest) in rows {
            assert_eq!(
                compose_mode(host, over),
                guest,
                "host {host:o} override {over:?}"
            );
        }
    }

    #[test]
    fn apply_overrides_fields() {
        let ov = OverrideStat {
            uid: Some(0),
            gid: None,
            mode: Some(CHR | 0o620),
        };
        assert_eq!(ov.apply(501, 20, REG | 0o600), (0, 20, CHR | 0o620));
        assert_eq!(
            OverrideStat::default().apply(501, 20, REG | 0o600),
            (501, 20, REG | 0o600)
        );
    }

    #[test]
    fn emulated_devices_and_rdev() {
        assert!(is_emulated_device(REG | 0o600, CHR | 0o600));
        assert!(is_emulated_device(REG | 0o600, BLK | 0o600));
        assert!(!is_emulated_device(REG | 0o600, FIFO | 0o600));
        assert!(!is_emulated_device(CHR | 0o600, CHR | 0o600));
        assert_eq!(encode_rdev(0x103), "259");
        assert_eq!(decode_rdev(b"259"), Some(0x103));
        assert_eq!(decode_rdev(b"4294967295"), Some(u32::MAX));
        for bad in [&b""[..], b"x", b"-1", b"4294967296", b"1 ", b"0x10"] {
            assert_eq!(decode_rdev(bad), None);
        }
    }
}
