//! Requests as a kernel would send them, for tests and fuzzing.

use fuse_abi::{InHeader, InitFlags};
use zerocopy::IntoBytes;

/// Builds a request: a header with `len` filled in, then `args`.
pub fn request(opcode: u32, unique: u64, nodeid: u64, args: &[u8]) -> Vec<u8> {
    request_ext(opcode, unique, nodeid, args, &[])
}

/// Builds a request with request extensions (`ext.len()` must be a multiple of 8).
pub fn request_ext(opcode: u32, unique: u64, nodeid: u64, args: &[u8], ext: &[u8]) -> Vec<u8> {
    let len = 40usize.saturating_add(args.len()).saturating_add(ext.len());
    let hdr = InHeader {
        len: fuse_abi::U32::new(u32::try_from(len).unwrap_or(u32::MAX)),
        opcode: fuse_abi::U32::new(opcode),
        unique: fuse_abi::U64::new(unique),
        nodeid: fuse_abi::U64::new(nodeid),
        uid: fuse_abi::U32::new(1000),
        gid: fuse_abi::U32::new(1000),
        pid: fuse_abi::U32::new(42),
        total_extlen: fuse_abi::U16::new(u16::try_from(ext.len() / 8).unwrap_or(u16::MAX)),
        padding: fuse_abi::U16::new(0),
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(hdr.as_bytes());
    v.extend_from_slice(args);
    v.extend_from_slice(ext);
    v
}

/// The INIT payload a kernel of `minor` sends with `flags` (64 bytes, INIT_EXT as needed).
pub fn init_payload(minor: u32, flags: InitFlags, max_readahead: u32) -> Vec<u8> {
    let (f, f2) = flags.to_wire();
    let init = fuse_abi::InitIn {
        major: fuse_abi::U32::new(7),
        minor: fuse_abi::U32::new(minor),
        max_readahead: fuse_abi::U32::new(max_readahead),
        flags: fuse_abi::U32::new(f),
        flags2: fuse_abi::U32::new(f2),
        ..fuse_abi::InitIn::default()
    };
    init.as_bytes().to_vec()
}

fn bytes_of<T: IntoBytes + zerocopy::Immutable>(v: &T) -> Vec<u8> {
    v.as_bytes().to_vec()
}

fn with_tail(mut head: Vec<u8>, tail: &[u8]) -> Vec<u8> {
    head.extend_from_slice(tail);
    head
}

/// Well-formed arguments (everything after the header) for each opcode, as a Linux kernel
/// would send them with every flag negotiated (SETXATTR_EXT included). Names are `a`/`b`.
pub fn sample_args(op: fuse_abi::Opcode) -> Vec<u8> {
    use fuse_abi::Opcode as O;
    use fuse_abi::*;
    match op {
        O::Lookup | O::Unlink | O::Rmdir => b"a\0".to_vec(),
        O::Forget => bytes_of(&ForgetIn {
            nlookup: U64::new(1),
        }),
        O::Getattr => bytes_of(&GetattrIn::default()),
        O::Setattr => bytes_of(&SetattrIn {
            valid: U32::new(SetattrValid::MODE.bits()),
            mode: U32::new(0o600),
            ..SetattrIn::default()
        }),
        O::Readlink | O::Statfs | O::Destroy => Vec::new(),
        O::Symlink => b"a\0target\0".to_vec(),
        O::Mknod => with_tail(
            bytes_of(&MknodIn {
                mode: U32::new(fuse_abi::mode::S_IFIFO | 0o644),
                umask: U32::new(0o022),
                ..MknodIn::default()
            }),
            b"a\0",
        ),
        O::Mkdir => with_tail(
            bytes_of(&MkdirIn {
                mode: U32::new(0o755),
                umask: U32::new(0o022),
            }),
            b"a\0",
        ),
        O::Rename => with_tail(
            bytes_of(&RenameIn {
                newdir: U64::new(1),
            }),
            b"a\0b\0",
        ),
        O::Rename2 => with_tail(
            bytes_of(&Rename2In {
                newdir: U64::new(1),
                flags: U32::new(RenameFlags::NOREPLACE.bits()),
                padding: U32::new(0),
            }),
            b"a\0b\0",
        ),
        O::Link => with_tail(
            bytes_of(&LinkIn {
                oldnodeid: U64::new(2),
            }),
            b"a\0",
        ),
        O::Open | O::Opendir => bytes_of(&OpenIn {
            flags: U32::new(2),
            open_flags: U32::new(0),
        }),
        O::Read | O::Readdir | O::Readdirplus => bytes_of(&ReadIn {
            size: U32::new(4096),
            ..ReadIn::default()
        }),
        O::Write => with_tail(
            bytes_of(&WriteIn {
                size: U32::new(4),
                ..WriteIn::default()
            }),
            b"data",
        ),
        O::Release | O::Releasedir => bytes_of(&ReleaseIn::default()),
        O::Fsync | O::Fsyncdir => bytes_of(&FsyncIn::default()),
        O::Setxattr => with_tail(
            bytes_of(&SetxattrIn {
                size: U32::new(3),
                ..SetxattrIn::default()
            }),
            b"user.a\0abc",
        ),
        O::Getxattr => with_tail(bytes_of(&GetxattrIn::default()), b"user.a\0"),
        O::Listxattr => bytes_of(&GetxattrIn {
            size: U32::new(100),
            padding: U32::new(0),
        }),
        O::Removexattr => b"user.a\0".to_vec(),
        O::Flush => bytes_of(&FlushIn::default()),
        O::Init => init_payload(46, InitFlags::all(), 131072),
        O::Getlk | O::Setlk | O::Setlkw => bytes_of(&LkIn::default()),
        O::Access => bytes_of(&AccessIn::default()),
        O::Create => with_tail(
            bytes_of(&CreateIn {
                flags: U32::new(0o100),
                mode: U32::new(fuse_abi::mode::S_IFREG | 0o644),
                umask: U32::new(0o022),
                open_flags: U32::new(0),
            }),
            b"a\0",
        ),
        O::Tmpfile => bytes_of(&CreateIn {
            flags: U32::new(2),
            mode: U32::new(fuse_abi::mode::S_IFREG | 0o600),
            umask: U32::new(0o022),
            open_flags: U32::new(0),
        }),
        O::Interrupt => bytes_of(&InterruptIn {
            unique: U64::new(2),
        }),
        O::Bmap => bytes_of(&BmapIn::default()),
        O::Ioctl => with_tail(
            bytes_of(&IoctlIn {
                in_size: U32::new(3),
                out_size: U32::new(3),
                ..IoctlIn::default()
            }),
            b"abc",
        ),
        O::Poll => bytes_of(&PollIn::default()),
        O::NotifyReply => bytes_of(&NotifyRetrieveIn::default()),
        O::BatchForget => {
            let mut v = bytes_of(&BatchForgetIn {
                count: U32::new(2),
                dummy: U32::new(0),
            });
            for n in [2u64, 3] {
                v.extend_from_slice(
                    ForgetOne {
                        nodeid: U64::new(n),
                        nlookup: U64::new(1),
                    }
                    .as_bytes(),
                );
            }
            v
        }
        O::Fallocate => bytes_of(&FallocateIn::default()),
        O::Lseek => bytes_of(&LseekIn::default()),
        O::CopyFileRange | O::CopyFileRange64 => bytes_of(&CopyFileRangeIn {
            len: U64::new(10),
            ..CopyFileRangeIn::default()
        }),
        O::Setupmapping => bytes_of(&SetupmappingIn::default()),
        O::Removemapping => {
            let mut v = bytes_of(&RemovemappingIn { count: U32::new(1) });
            v.extend_from_slice(RemovemappingOne::default().as_bytes());
            v
        }
        O::Syncfs => bytes_of(&SyncfsIn::default()),
        O::Statx => bytes_of(&StatxIn::default()),
        O::CuseInit => bytes_of(&CuseInitIn::default()),
    }
}
