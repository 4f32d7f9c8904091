//! `enum fuse_opcode`.

use core::fmt;

macro_rules! opcodes {
    ($( $(#[$m:meta])* $name:ident = $value:literal ),* $(,)?) => {
        /// A FUSE request opcode: every value of `enum fuse_opcode` in 7.46 (1..=53; 7 and 19 are
        /// unused holes), plus CUSE_INIT.
        ///
        /// Decoding never panics: [`Opcode::try_from`] maps every `u32` that is not an opcode
        /// (the holes 0, 7 and 19 included) to [`UnknownOpcode`], which a server answers with
        /// ENOSYS.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum Opcode {
            $( $(#[$m])* #[doc = concat!("`FUSE_", stringify!($name), "` (", stringify!($value), ").")] $name = $value, )*
        }

        impl Opcode {
            /// Every opcode, in numeric order.
            pub const ALL: &'static [Opcode] = &[ $( Opcode::$name, )* ];
        }

        impl TryFrom<u32> for Opcode {
            type Error = UnknownOpcode;

            fn try_from(value: u32) -> Result<Self, Self::Error> {
                match value {
                    $( $value => Ok(Opcode::$name), )*
                    other => Err(UnknownOpcode(other)),
                }
            }
        }
    };
}

opcodes! {
    Lookup = 1,
    /// No reply. On virtio-fs it arrives on the hiprio queue.
    Forget = 2,
    Getattr = 3,
    Setattr = 4,
    Readlink = 5,
    Symlink = 6,
    Mknod = 8,
    Mkdir = 9,
    Unlink = 10,
    Rmdir = 11,
    Rename = 12,
    Link = 13,
    Open = 14,
    Read = 15,
    Write = 16,
    Statfs = 17,
    Release = 18,
    Fsync = 20,
    Setxattr = 21,
    Getxattr = 22,
    Listxattr = 23,
    Removexattr = 24,
    Flush = 25,
    Init = 26,
    Opendir = 27,
    Readdir = 28,
    Releasedir = 29,
    Fsyncdir = 30,
    Getlk = 31,
    Setlk = 32,
    Setlkw = 33,
    Access = 34,
    Create = 35,
    /// Never sent on virtio-fs.
    Interrupt = 36,
    Bmap = 37,
    Destroy = 38,
    Ioctl = 39,
    Poll = 40,
    /// The server's answer to NOTIFY_RETRIEVE (/dev/fuse only).
    NotifyReply = 41,
    /// No reply; /dev/fuse only.
    BatchForget = 42,
    Fallocate = 43,
    Readdirplus = 44,
    Rename2 = 45,
    Lseek = 46,
    /// 32-bit result in [`WriteOut`](crate::WriteOut).
    CopyFileRange = 47,
    Setupmapping = 48,
    Removemapping = 49,
    Syncfs = 50,
    Tmpfile = 51,
    Statx = 52,
    /// 64-bit result in [`CopyFileRangeOut`](crate::CopyFileRangeOut) (7.45).
    CopyFileRange64 = 53,
    CuseInit = 4096,
}

impl Opcode {
    /// The protocol minor that introduced this opcode.
    pub const fn since_minor(self) -> u32 {
        match self {
            Opcode::Lookup | Opcode::Forget | Opcode::Getattr | Opcode::Readlink => 0,
            Opcode::Statfs | Opcode::Init => 0,
            Opcode::Fsyncdir => 2,
            Opcode::Access | Opcode::Create => 3,
            Opcode::Getlk | Opcode::Setlk | Opcode::Setlkw | Opcode::Interrupt => 7,
            Opcode::Bmap | Opcode::Destroy => 8,
            Opcode::Ioctl | Opcode::Poll => 11,
            Opcode::NotifyReply => 15,
            Opcode::BatchForget => 16,
            Opcode::Fallocate => 19,
            Opcode::Readdirplus => 21,
            Opcode::Rename2 => 23,
            Opcode::Lseek => 24,
            Opcode::CopyFileRange => 28,
            Opcode::Setupmapping | Opcode::Removemapping => 31,
            Opcode::Syncfs => 34,
            Opcode::Tmpfile => 37,
            Opcode::Statx => 39,
            Opcode::CopyFileRange64 => 45,
            Opcode::CuseInit => 0,
            _ => 1,
        }
    }

    /// Whether the kernel expects no reply to this request (FORGET, BATCH_FORGET).
    pub const fn is_noreply(self) -> bool {
        matches!(self, Opcode::Forget | Opcode::BatchForget)
    }

    /// Whether the request creates an inode; with ALLOW_IDMAP only these carry real uid/gid,
    /// and only these carry request extensions.
    pub const fn creates_inode(self) -> bool {
        matches!(
            self,
            Opcode::Mknod | Opcode::Mkdir | Opcode::Symlink | Opcode::Create | Opcode::Tmpfile
        )
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<Opcode> for u32 {
    fn from(op: Opcode) -> u32 {
        op as u32
    }
}

/// A `u32` that is no FUSE opcode. The server answers it with ENOSYS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownOpcode(pub u32);

impl fmt::Display for UnknownOpcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown FUSE opcode {}", self.0)
    }
}

impl core::error::Error for UnknownOpcode {}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;

    #[test]
    fn opcode_table_covers_1_to_53_without_holes_7_and_19() {
        let fuse: Vec<u32> = Opcode::ALL
            .iter()
            .map(|&o| u32::from(o))
            .filter(|&v| v != 4096)
            .collect();
        let expected: Vec<u32> = (1..=53).filter(|v| ![7, 19].contains(v)).collect();
        assert_eq!(fuse, expected);
        assert!(Opcode::ALL.contains(&Opcode::CuseInit));
    }

    #[test]
    fn try_from_roundtrips_every_opcode() {
        for &op in Opcode::ALL {
            assert_eq!(Opcode::try_from(u32::from(op)), Ok(op));
        }
    }

    #[test]
    fn try_from_holes_return_unknown() {
        for hole in [0, 7, 19, 54, 4095, 4097, 1 << 20, 436_207_616, u32::MAX] {
            assert_eq!(Opcode::try_from(hole), Err(UnknownOpcode(hole)));
        }
    }
}
