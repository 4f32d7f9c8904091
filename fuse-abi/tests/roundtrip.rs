//! Property tests: decoding then encoding any wire struct is the identity, and no decoder in
//! this crate panics on arbitrary bytes.

use fuse_abi::*;
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

/// Decodes `T` from the prefix of `bytes` and checks that encoding gives the same bytes back.
fn roundtrip<T: FromBytes + IntoBytes + zerocopy::Immutable + zerocopy::KnownLayout>(bytes: &[u8]) {
    match T::read_from_prefix(bytes) {
        Ok((value, _)) => assert_eq!(value.as_bytes(), &bytes[..core::mem::size_of::<T>()]),
        Err(_) => assert!(bytes.len() < core::mem::size_of::<T>()),
    }
}

macro_rules! roundtrip_all {
    ($bytes:expr; $($t:ty),* $(,)?) => { $( roundtrip::<$t>($bytes); )* };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_struct_roundtrips(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        roundtrip_all!(&bytes;
            InHeader, OutHeader, Attr, SxTime, Statx, Kstatfs, FileLock, EntryOut, ForgetIn,
            ForgetOne, BatchForgetIn, GetattrIn, AttrOut, StatxIn, StatxOut, MknodIn, MkdirIn,
            RenameIn, Rename2In, LinkIn, SetattrIn, OpenIn, CreateIn, OpenOut, ReleaseIn,
            FlushIn, ReadIn, WriteIn, WriteOut, StatfsOut, FsyncIn, SetxattrIn,
            SetxattrInCompat, GetxattrIn, GetxattrOut, LkIn, LkOut, AccessIn, InitIn, InitOut,
            CuseInitIn, CuseInitOut, InterruptIn, BmapIn, BmapOut, IoctlIn, IoctlIovec,
            IoctlOut, PollIn, PollOut, NotifyPollWakeupOut, FallocateIn, Dirent, Direntplus,
            NotifyInvalInodeOut, NotifyInvalEntryOut, NotifyDeleteOut, NotifyStoreOut,
            NotifyRetrieveOut, NotifyRetrieveIn, NotifyPruneOut, BackingMap, LseekIn, LseekOut,
            CopyFileRangeIn, CopyFileRangeOut, SetupmappingIn, RemovemappingIn,
            RemovemappingOne, SyncfsIn, Secctx, SecctxHeader, ExtHeader, SuppGroups,
            UringEntInOut, UringReqHeader, UringCmdReq, UringBufpool,
        );
    }

    #[test]
    fn opcode_decode_never_panics(value in any::<u32>()) {
        match Opcode::try_from(value) {
            Ok(op) => prop_assert_eq!(u32::from(op), value),
            Err(UnknownOpcode(v)) => prop_assert_eq!(v, value),
        }
    }

    #[test]
    fn init_flags_wire_roundtrip(bits in any::<u64>()) {
        let flags = InitFlags::from_bits_retain(bits);
        let (low, high) = flags.to_wire();
        let back = InitFlags::from_wire(low, high);
        // INIT_EXT may be added by to_wire; everything else survives.
        prop_assert_eq!(back.bits() & !InitFlags::INIT_EXT.bits(), bits & !InitFlags::INIT_EXT.bits());
        prop_assert_eq!(high != 0, back.contains(InitFlags::INIT_EXT) && high != 0);
    }

    #[test]
    fn extensions_never_panic(area in proptest::collection::vec(any::<u8>(), 0..256)) {
        for ext in ext::extensions(&area).take(64) {
            if let Ok(ext::Extension::SecurityContexts { count, raw }) = ext {
                for ctx in ext::secctx_entries(count, raw).take(64) {
                    let _ = ctx;
                }
            }
        }
    }

    #[test]
    fn dirent_encoding_fits_or_refuses(
        name in proptest::collection::vec(any::<u8>(), 0..300),
        cap in 0usize..400,
    ) {
        let mut buf = vec![0u8; cap];
        match dirent::encode_dirent(&mut buf, 1, 2, mode::DT_REG, &name) {
            Some(n) => {
                prop_assert!(n <= cap);
                prop_assert_eq!(n % 8, 0);
                prop_assert_eq!(&buf[24..24 + name.len()], &name[..]);
            }
            None => prop_assert!(dirent::dirent_len(name.len()).unwrap() > cap),
        }
    }

    #[test]
    fn errno_wire_is_always_in_kernel_range(raw in any::<i32>()) {
        let wire = Errno::from_raw(raw).to_wire();
        prop_assert!((-511..=-1).contains(&wire));
    }
}
