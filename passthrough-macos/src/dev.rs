//! Device numbers: Darwin's `dev_t` layout, Linux's `new_encode_dev` layout (the one
//! `fuse_attr.rdev` and `fuse_mknod_in.rdev` carry), and (major, minor) pairs.
//!
//! * Darwin `dev_t` is an `i32`: major in the top 8 bits, minor in the low 24
//!   (`major = (x >> 24) & 0xff`, `minor = x & 0xffffff`).
//! * Linux `new_encode_dev` is a `u32`: `(minor & 0xff) | (major << 8) | ((minor & !0xff) <<
//!   12)`, so majors below 4096 and minors below 2^20.
//!
//! Passing a Darwin `st_rdev` through unchanged would show host device nodes with wrong numbers
//! in the guest. A number one side cannot hold is reported as `None`. Values:
//! reference/macos.md §2.6.

/// A device number as a (major, minor) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DevNum {
    /// The major number (the driver).
    pub major: u32,
    /// The minor number (the device).
    pub minor: u32,
}

/// The largest major Darwin's `dev_t` holds (8 bits).
pub const DARWIN_MAJOR_MAX: u32 = 0xff;
/// The largest minor Darwin's `dev_t` holds (24 bits).
pub const DARWIN_MINOR_MAX: u32 = 0xff_ffff;
/// The largest major Linux's 32-bit `new_encode_dev` holds (12 bits).
pub const LINUX_MAJOR_MAX: u32 = 0xfff;
/// The largest minor Linux's 32-bit `new_encode_dev` holds (20 bits).
pub const LINUX_MINOR_MAX: u32 = 0xf_ffff;

impl DevNum {
    /// The pair.
    pub const fn new(major: u32, minor: u32) -> DevNum {
        DevNum { major, minor }
    }

    /// Decodes a Darwin `dev_t` (`st_rdev`, `st_dev`). Every value decodes.
    pub const fn from_darwin(dev: i32) -> DevNum {
        let bits = u32::from_ne_bytes(dev.to_ne_bytes());
        DevNum {
            major: (bits >> 24) & DARWIN_MAJOR_MAX,
            minor: bits & DARWIN_MINOR_MAX,
        }
    }

    /// Encodes as a Darwin `dev_t`, or `None` if the major exceeds 8 bits or the minor 24.
    pub const fn to_darwin(self) -> Option<i32> {
        if self.major > DARWIN_MAJOR_MAX || self.minor > DARWIN_MINOR_MAX {
            return None;
        }
        Some(i32::from_ne_bytes(
            ((self.major << 24) | self.minor).to_ne_bytes(),
        ))
    }

    /// Decodes Linux's `new_encode_dev` format (`new_decode_dev`). Every value decodes.
    pub const fn from_linux(dev: u32) -> DevNum {
        DevNum {
            major: (dev & 0xf_ff00) >> 8,
            minor: (dev & 0xff) | ((dev >> 12) & 0xf_ff00),
        }
    }

    /// Encodes in Linux's `new_encode_dev` format, or `None` if the major exceeds 12 bits or the
    /// minor 20.
    pub const fn to_linux(self) -> Option<u32> {
        if self.major > LINUX_MAJOR_MAX || self.minor > LINUX_MINOR_MAX {
            return None;
        }
        Some((self.minor & 0xff) | (self.major << 8) | ((self.minor & !0xff) << 12))
    }
}

/// A host `st_rdev` as the guest's `fuse_attr.rdev`, or `None` if the minor needs more than 20
/// bits (every Darwin major fits).
pub const fn darwin_to_linux(dev: i32) -> Option<u32> {
    DevNum::from_darwin(dev).to_linux()
}

/// A guest `rdev` as a Darwin `dev_t`, or `None` if the major needs more than 8 bits (every
/// Linux minor fits).
pub const fn linux_to_darwin(dev: u32) -> Option<i32> {
    DevNum::from_linux(dev).to_darwin()
}

/// Checks the Darwin layout against the `libc` crate's `makedev`/`major`/`minor` for Apple.
#[cfg(target_os = "macos")]
const _: () = {
    /// The same bits as an `i32`.
    const fn signed(bits: u32) -> i32 {
        i32::from_ne_bytes(bits.to_ne_bytes())
    }
    let samples: [(u32, u32); 4] = [(0, 0), (1, 3), (0xff, 0xff_ffff), (0x80, 0x12_3456)];
    let mut i = 0;
    while i < samples.len() {
        let (major, minor) = samples[i];
        let dev = libc::makedev(signed(major), signed(minor));
        match DevNum::new(major, minor).to_darwin() {
            Some(ours) => assert!(ours == dev),
            None => panic!("a valid Darwin device number failed to encode"),
        }
        let back = DevNum::from_darwin(dev);
        assert!(signed(back.major) == libc::major(dev));
        assert!(signed(back.minor) == libc::minor(dev));
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_layout_by_hand() {
        // Examples of new_encode_dev: /dev/null 1:3, /dev/sda1 8:1, /dev/tty0 4:0, 0:0.
        let rows = [
            ((1, 3), 0x103),
            ((8, 1), 0x801),
            ((4, 0), 0x400),
            ((0, 0), 0),
            ((0xfff, 0xff), 0xf_ffff),
            ((0, 0x100), 0x10_0000),
            ((0, 0xf_ffff), 0xfff0_00ff),
            ((0xfff, 0xf_ffff), 0xffff_ffff),
        ];
        for ((major, minor), wire) in rows {
            let dev = DevNum::new(major, minor);
            assert_eq!(dev.to_linux(), Some(wire), "{major}:{minor}");
            assert_eq!(DevNum::from_linux(wire), dev, "{wire:#x}");
        }
    }

    #[test]
    fn darwin_layout_by_hand() {
        let rows = [
            ((1, 3), 0x0100_0003),
            ((0, 0), 0),
            ((0x7f, 0xff_ffff), 0x7fff_ffff),
            ((0xff, 0), i32::from_ne_bytes(0xff00_0000_u32.to_ne_bytes())),
            ((0x80, 5), i32::from_ne_bytes(0x8000_0005_u32.to_ne_bytes())),
        ];
        for ((major, minor), raw) in rows {
            let dev = DevNum::new(major, minor);
            assert_eq!(dev.to_darwin(), Some(raw), "{major}:{minor}");
            assert_eq!(DevNum::from_darwin(raw), dev, "{raw:#x}");
        }
    }

    #[test]
    fn out_of_range() {
        assert_eq!(DevNum::new(0x100, 0).to_darwin(), None);
        assert_eq!(DevNum::new(0, 0x100_0000).to_darwin(), None);
        assert_eq!(DevNum::new(0x1000, 0).to_linux(), None);
        assert_eq!(DevNum::new(0, 0x10_0000).to_linux(), None);
        // A Darwin minor beyond 20 bits has no Linux encoding.
        assert_eq!(darwin_to_linux(0x0010_0000), None);
        // A Linux major beyond 8 bits has no Darwin encoding.
        assert_eq!(
            linux_to_darwin(DevNum::new(0x100, 1).to_linux().unwrap_or(0)),
            None
        );
    }

    #[test]
    fn cross_encoding() {
        // Darwin 3:2 (a typical /dev/null on macOS) is Linux wire 0x302.
        assert_eq!(darwin_to_linux(0x0300_0002), Some(0x302));
        assert_eq!(linux_to_darwin(0x302), Some(0x0300_0002));
        // Minors above 8 bits use the high Linux field.
        assert_eq!(darwin_to_linux(0x0100_1234), Some(0x0120_0134));
        assert_eq!(linux_to_darwin(0x0120_0134), Some(0x0100_1234));
    }

    /// Every (major, minor) both sides hold survives both round trips.
    #[test]
    fn round_trips() {
        let majors = [0, 1, 7, 0x7f, 0x80, 0xff];
        let minors = [0, 1, 0xff, 0x100, 0x1234, 0xf_ffff];
        for major in majors {
            for minor in minors {
                let dev = DevNum::new(major, minor);
                let darwin = dev.to_darwin().expect("fits Darwin");
                let linux = dev.to_linux().expect("fits Linux");
                assert_eq!(darwin_to_linux(darwin), Some(linux));
                assert_eq!(linux_to_darwin(linux), Some(darwin));
                assert_eq!(DevNum::from_darwin(darwin), dev);
                assert_eq!(DevNum::from_linux(linux), dev);
            }
        }
    }

    /// Every 32-bit Linux value decodes and re-encodes to itself (new_encode_dev is a bijection
    /// on u32), sampled with a stride.
    #[test]
    fn every_linux_value_re_encodes() {
        for wire in (0..=u32::MAX).step_by(65_521).chain([u32::MAX]) {
            assert_eq!(DevNum::from_linux(wire).to_linux(), Some(wire), "{wire:#x}");
        }
    }

    /// glibc's `makedev` agrees with `new_encode_dev` for numbers that fit 32 bits.
    #[cfg(target_os = "linux")]
    #[test]
    fn agrees_with_linux_libc() {
        for (major, minor) in [(1, 3), (8, 17), (0xfff, 0xf_ffff), (259, 0x1_2345)] {
            let wire = DevNum::new(major, minor).to_linux().expect("fits");
            assert_eq!(u64::from(wire), libc::makedev(major, minor));
        }
    }
}
