//! A model of the Linux kernel's processing of a FUSE_INIT reply (`reference/kernel-fuse.md`
//! §2a transport acceptance, §2b `process_init_reply`), for 6.1, 6.12, 6.18 and 7.3.
//!
//! It answers: does the connection come up, and which features are then in force? It is
//! deliberately written from the reference, not from the server's negotiation code.

use fuse_abi::{InitFlags, InitOut, OutHeader};
use zerocopy::FromBytes;

/// A kernel version whose reply processing is modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kernel {
    /// 6.1.176 (protocol 7.38 with the backports).
    V6_1,
    /// 6.12.117 (7.41).
    V6_12,
    /// 6.18 (7.45).
    V6_18,
    /// 7.3-rc7 (7.46).
    V7_3,
}

impl Kernel {
    pub(crate) const ALL: [Kernel; 4] = [Kernel::V6_1, Kernel::V6_12, Kernel::V6_18, Kernel::V7_3];

    /// The protocol minor this kernel sends in FUSE_INIT.
    pub(crate) const fn minor(self) -> u32 {
        match self {
            Kernel::V6_1 => 38,
            Kernel::V6_12 => 41,
            Kernel::V6_18 => 45,
            Kernel::V7_3 => 46,
        }
    }

    /// virtio-fs checks used length and unique (7.1+).
    fn verifies_virtio_reply(self) -> bool {
        self >= Kernel::V7_3
    }

    /// ALLOW_IDMAP is read (6.12+).
    fn reads_idmap(self) -> bool {
        self >= Kernel::V6_12
    }

    /// PASSTHROUGH is read (6.9+).
    fn reads_passthrough(self) -> bool {
        self >= Kernel::V6_12
    }

    /// OVER_IO_URING (6.14+) and REQUEST_TIMEOUT (6.15+) are read.
    fn reads_uring_and_timeout(self) -> bool {
        self >= Kernel::V6_18
    }

    /// max_pages > 1 raises the name limit (6.18+).
    fn long_names_with_max_pages(self) -> bool {
        self >= Kernel::V6_18
    }
}

/// How the filesystem is mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// virtio-fs (else `/dev/fuse`).
    pub(crate) virtio: bool,
    /// `/dev/fuse` with `-o default_permissions`.
    pub(crate) default_permissions_option: bool,
    /// virtio-fs with an active DAX window.
    pub(crate) dax_window: bool,
    /// virtio-fs: the size of the first request queue.
    pub(crate) vring_size: u32,
    /// The `enable_uring` module parameter.
    pub(crate) enable_uring: bool,
}

/// The features in force after an accepted INIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InForce {
    /// The minor compatibility decisions use.
    pub(crate) minor: u32,
    /// The flags the kernel applies (after the INIT_EXT gate).
    pub(crate) flags: InitFlags,
    /// Pages per request.
    pub(crate) max_pages: u32,
    /// Write size.
    pub(crate) max_write: u32,
    /// `default_permissions` is on.
    pub(crate) default_permissions: bool,
    /// Idmapped mounts allowed (uid/gid 0xFFFFFFFF on non-creating requests).
    pub(crate) idmap: bool,
    /// Passthrough enabled.
    pub(crate) passthrough: bool,
    /// io_uring transport enabled (every request blocks until a ring is registered).
    pub(crate) uring: bool,
    /// The request timeout asked for, in seconds.
    pub(crate) request_timeout: u16,
    /// Longest name the kernel sends.
    pub(crate) name_max: u32,
    /// Time granularity used (0: the default).
    pub(crate) time_gran: u32,
}

/// What the kernel makes of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The connection is up.
    Accepted(InForce),
    /// The connection failed: every later request gets ECONNREFUSED.
    Failed(&'static str),
    /// The INIT stays pending (the write was refused) or the mount hangs.
    Hangs(&'static str),
}

/// Processes `reply` (what the server wrote, `used_len` as the device reported it) to the INIT
/// request `unique`.
pub(crate) fn process_init_reply(
    kernel: Kernel,
    mount: &Mount,
    unique: u64,
    reply: &[u8],
    used_len: usize,
) -> Verdict {
    // §2a: transport-level acceptance.
    let Ok((oh, _)) = OutHeader::read_from_prefix(reply) else {
        return if mount.virtio {
            Verdict::Failed("reply shorter than the out header")
        } else {
            Verdict::Hangs("write shorter than 16 bytes: EINVAL")
        };
    };
    let len = oh.len.get() as usize;
    let error = oh.error.get();
    let payload_len = len.saturating_sub(16);
    if mount.virtio {
        if kernel.verifies_virtio_reply()
            && (used_len < 16 || used_len != len || oh.unique.get() != unique)
        {
            return Verdict::Failed("virtio_fs_verify_response");
        }
        if len < 16 || len > reply.len() {
            return Verdict::Failed("out header length outside the reply");
        }
    } else {
        if len != reply.len() {
            return Verdict::Hangs("oh.len != bytes written: EINVAL");
        }
        if error > 0 || error <= -512 {
            return Verdict::Hangs("error out of range: EINVAL");
        }
        if oh.unique.get() != unique {
            return Verdict::Hangs("unique not found: ENOENT");
        }
        if error != 0 && payload_len != 0 {
            return Verdict::Failed("error with a payload");
        }
        if error == 0 && payload_len > std::mem::size_of::<InitOut>() {
            return Verdict::Failed("payload longer than fuse_init_out");
        }
    }
    let mut buf = [0u8; 64];
    let n = payload_len.min(64);
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), reply.get(16..16 + n)) {
        dst.copy_from_slice(src);
    }
    let out = InitOut::read_from_bytes(&buf).unwrap_or_default();

    // §2b step 1.
    if error != 0 {
        return Verdict::Failed("INIT error");
    }
    if out.major.get() != 7 {
        return Verdict::Failed("major != 7");
    }
    let minor = out.minor.get();

    // Step 3: flags.
    let flags = if minor >= 6 {
        InitFlags::from_wire(out.flags.get(), out.flags2.get())
    } else {
        InitFlags::empty()
    };
    if flags.contains(InitFlags::MAP_ALIGNMENT)
        && mount.virtio
        && mount.dax_window
        && out.map_alignment.get() > 21
    {
        return Verdict::Failed("map_alignment incompatible");
    }
    let passthrough = kernel.reads_passthrough()
        && flags.contains(InitFlags::PASSTHROUGH)
        && (1..=2).contains(&out.max_stack_depth.get())
        && !flags.contains(InitFlags::WRITEBACK_CACHE);
    let default_permissions =
        mount.virtio || mount.default_permissions_option || flags.contains(InitFlags::POSIX_ACL);
    let mut idmap = false;
    if kernel.reads_idmap() && flags.contains(InitFlags::ALLOW_IDMAP) {
        if !default_permissions {
            return Verdict::Failed("ALLOW_IDMAP without default_permissions");
        }
        idmap = true;
    }
    let uring = kernel.reads_uring_and_timeout()
        && mount.enable_uring
        && flags.contains(InitFlags::OVER_IO_URING);
    if uring {
        return Verdict::Hangs("OVER_IO_URING accepted: requests wait for a ring");
    }
    let request_timeout =
        if kernel.reads_uring_and_timeout() && flags.contains(InitFlags::REQUEST_TIMEOUT) {
            out.request_timeout.get()
        } else {
            0
        };
    let mut limit = 256u32;
    if mount.virtio {
        limit = limit.min(mount.vring_size.saturating_sub(4)).max(1);
    }
    let max_pages = if flags.contains(InitFlags::MAX_PAGES) {
        u32::from(out.max_pages.get()).max(1).min(limit)
    } else {
        32u32.min(limit)
    };
    let name_max = if kernel.long_names_with_max_pages() && max_pages > 1 {
        4095
    } else {
        1024
    };
    let time_gran = match out.time_gran.get() {
        g @ 1..=1_000_000_000 => g,
        _ => 0,
    };

    // Step 4.
    let max_write = if minor < 5 {
        4096
    } else {
        out.max_write.get().max(4096)
    };
    Verdict::Accepted(InForce {
        minor,
        flags,
        max_pages,
        max_write,
        default_permissions,
        idmap,
        passthrough,
        uring,
        request_timeout,
        name_max,
        time_gran,
    })
}

#[cfg(test)]
mod tests {
    use fuse_abi::{I32, U16, U32, U64};
    use zerocopy::IntoBytes;

    use super::*;

    const DEV_FUSE: Mount = Mount {
        virtio: false,
        default_permissions_option: false,
        dax_window: false,
        vring_size: 0,
        enable_uring: false,
    };

    fn reply(out: &InitOut, error: i32, unique: u64) -> Vec<u8> {
        let payload: &[u8] = if error == 0 { out.as_bytes() } else { &[] };
        let oh = OutHeader {
            len: U32::new(u32::try_from(16 + payload.len()).unwrap_or(0)),
            error: I32::new(error),
            unique: U64::new(unique),
        };
        [oh.as_bytes(), payload].concat()
    }

    fn init_out(flags: InitFlags) -> InitOut {
        let (f, f2) = flags.to_wire();
        InitOut {
            major: U32::new(7),
            minor: U32::new(46),
            flags: U32::new(f),
            flags2: U32::new(f2),
            ..InitOut::default()
        }
    }

    fn verdict(k: Kernel, m: &Mount, r: &[u8]) -> Verdict {
        process_init_reply(k, m, 2, r, r.len())
    }

    #[test]
    fn model_rejects_allow_idmap_without_default_permissions_on_dev_fuse() {
        let r = reply(&init_out(InitFlags::ALLOW_IDMAP), 0, 2);
        for k in [Kernel::V6_12, Kernel::V6_18, Kernel::V7_3] {
            assert_eq!(
                verdict(k, &DEV_FUSE, &r),
                Verdict::Failed("ALLOW_IDMAP without default_permissions"),
                "{k:?}"
            );
        }
        // 6.1 does not read the bit.
        assert!(matches!(
            verdict(Kernel::V6_1, &DEV_FUSE, &r),
            Verdict::Accepted(_)
        ));
        // With the mount option, with POSIX_ACL in the same reply, and on virtio-fs: fine.
        let dp = Mount {
            default_permissions_option: true,
            ..DEV_FUSE
        };
        assert!(matches!(verdict(Kernel::V6_18, &dp, &r), Verdict::Accepted(f) if f.idmap));
        let acl = reply(
            &init_out(InitFlags::ALLOW_IDMAP | InitFlags::POSIX_ACL),
            0,
            2,
        );
        assert!(matches!(
            verdict(Kernel::V6_18, &DEV_FUSE, &acl),
            Verdict::Accepted(_)
        ));
        let virtio = Mount {
            virtio: true,
            vring_size: 128,
            ..DEV_FUSE
        };
        assert!(matches!(
            verdict(Kernel::V7_3, &virtio, &r),
            Verdict::Accepted(_)
        ));
    }

    #[test]
    fn model_fails_the_other_documented_cases() {
        let ok = reply(&init_out(InitFlags::empty()), 0, 2);
        assert!(matches!(
            verdict(Kernel::V7_3, &DEV_FUSE, &ok),
            Verdict::Accepted(_)
        ));
        // Error replies, major != 7, a too-long payload, length and unique mismatches.
        let err = reply(&InitOut::default(), -38, 2);
        assert!(matches!(
            verdict(Kernel::V6_1, &DEV_FUSE, &err),
            Verdict::Failed(_)
        ));
        let mut major = init_out(InitFlags::empty());
        major.major = U32::new(8);
        let r = reply(&major, 0, 2);
        assert!(matches!(
            verdict(Kernel::V6_1, &DEV_FUSE, &r),
            Verdict::Failed(_)
        ));
        let mut long = ok.clone();
        long.extend_from_slice(&[0; 8]);
        let n = u32::try_from(long.len()).unwrap_or(0);
        long[0..4].copy_from_slice(&n.to_le_bytes());
        assert!(matches!(
            verdict(Kernel::V6_12, &DEV_FUSE, &long),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            process_init_reply(Kernel::V6_12, &DEV_FUSE, 4, &ok, ok.len()),
            Verdict::Hangs(_)
        ));
        let virtio = Mount {
            virtio: true,
            vring_size: 1024,
            ..DEV_FUSE
        };
        assert!(matches!(
            process_init_reply(Kernel::V7_3, &virtio, 2, &ok, 0),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            process_init_reply(Kernel::V6_12, &virtio, 2, &ok, 0),
            Verdict::Accepted(_)
        ));
        // MAP_ALIGNMENT above 21 with a DAX window.
        let mut dax = init_out(InitFlags::MAP_ALIGNMENT);
        dax.map_alignment = U16::new(22);
        let r = reply(&dax, 0, 2);
        let with_dax = Mount {
            dax_window: true,
            ..virtio
        };
        assert!(matches!(
            verdict(Kernel::V6_1, &with_dax, &r),
            Verdict::Failed(_)
        ));
        assert!(matches!(
            verdict(Kernel::V6_1, &virtio, &r),
            Verdict::Accepted(_)
        ));
        // OVER_IO_URING with enable_uring hangs on 6.18+.
        let r = reply(&init_out(InitFlags::OVER_IO_URING), 0, 2);
        let uring = Mount {
            enable_uring: true,
            ..DEV_FUSE
        };
        assert!(matches!(
            verdict(Kernel::V6_18, &uring, &r),
            Verdict::Hangs(_)
        ));
        assert!(matches!(
            verdict(Kernel::V6_12, &uring, &r),
            Verdict::Accepted(_)
        ));
    }
}
