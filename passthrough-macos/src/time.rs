//! Timestamps to set (`futimens`/`utimensat`): the guest's SETATTR times to Darwin `timespec`s.
//!
//! The special `tv_nsec` values differ: Linux `UTIME_NOW` is `(1 << 30) - 1` and `UTIME_OMIT`
//! `(1 << 30) - 2`, Darwin's are −1 and −2. Never copy a Linux value through: on Darwin
//! `(1 << 30) - 1` is just an invalid nanosecond count. Values: reference/macos.md §2.5.

use fuse_abi::Errno;
use fuse_server::{TimeOrNow, Timespec};

use crate::darwin_abi;

/// Linux's special `tv_nsec` values.
pub mod linux {
    /// Set the time to now.
    pub const UTIME_NOW: i64 = (1 << 30) - 1;
    /// Leave the time unchanged.
    pub const UTIME_OMIT: i64 = (1 << 30) - 2;
}

/// Nanoseconds per second: a valid `tv_nsec` is below this.
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Darwin's `struct timespec` (`tv_sec: time_t`, `tv_nsec: c_long`, both 64-bit), portable so
/// that the translation is testable anywhere; the host layer copies it into a `libc::timespec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTimespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds, or Darwin's `UTIME_NOW` / `UTIME_OMIT`.
    pub nsec: i64,
}

impl HostTimespec {
    /// "Set to the current time" (`tv_nsec = UTIME_NOW`).
    pub const NOW: HostTimespec = HostTimespec {
        sec: 0,
        nsec: darwin_abi::UTIME_NOW,
    };
    /// "Leave unchanged" (`tv_nsec = UTIME_OMIT`).
    pub const OMIT: HostTimespec = HostTimespec {
        sec: 0,
        nsec: darwin_abi::UTIME_OMIT,
    };

    /// The host timespec for one SETATTR time: absent → omit, now → now, a time → that time.
    /// `EINVAL` for nanoseconds ≥ 10⁹ (the kernel never sends them).
    pub fn from_setattr(time: Option<TimeOrNow>) -> Result<HostTimespec, Errno> {
        match time {
            None => Ok(HostTimespec::OMIT),
            Some(TimeOrNow::Now) => Ok(HostTimespec::NOW),
            Some(TimeOrNow::Time(time)) => HostTimespec::from_time(time),
        }
    }

    /// A given time; `EINVAL` for nanoseconds ≥ 10⁹.
    pub fn from_time(time: Timespec) -> Result<HostTimespec, Errno> {
        let nsec = i64::from(time.nsec);
        if nsec >= NANOS_PER_SEC {
            return Err(Errno::EINVAL);
        }
        Ok(HostTimespec {
            sec: time.sec,
            nsec,
        })
    }

    /// A raw Linux `timespec` (as in `utimensat`'s argument), special values included.
    /// `EINVAL` for any other out-of-range `tv_nsec`, as Linux reports it.
    pub const fn from_linux(sec: i64, nsec: i64) -> Result<HostTimespec, Errno> {
        match nsec {
            linux::UTIME_NOW => Ok(HostTimespec::NOW),
            linux::UTIME_OMIT => Ok(HostTimespec::OMIT),
            0..NANOS_PER_SEC => Ok(HostTimespec { sec, nsec }),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Whether the time is left unchanged.
    pub const fn is_omit(&self) -> bool {
        self.nsec == darwin_abi::UTIME_OMIT
    }
}

/// The `[atime, mtime]` pair for `futimens`/`utimensat` from a SETATTR's times, or `None` when
/// both are absent (no call needed).
pub fn utimens(
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
) -> Result<Option<[HostTimespec; 2]>, Errno> {
    if atime.is_none() && mtime.is_none() {
        return Ok(None);
    }
    Ok(Some([
        HostTimespec::from_setattr(atime)?,
        HostTimespec::from_setattr(mtime)?,
    ]))
}

/// Compile-time check of the Linux values against `libc` when built for Linux.
#[cfg(target_os = "linux")]
const _: () = {
    assert!(linux::UTIME_NOW == libc::UTIME_NOW);
    assert!(linux::UTIME_OMIT == libc::UTIME_OMIT);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(sec: i64, nsec: u32) -> Timespec {
        Timespec { sec, nsec }
    }

    #[test]
    fn special_values_are_darwins() {
        assert_eq!(HostTimespec::NOW.nsec, -1);
        assert_eq!(HostTimespec::OMIT.nsec, -2);
        assert_eq!(linux::UTIME_NOW, 1_073_741_823);
        assert_eq!(linux::UTIME_OMIT, 1_073_741_822);
    }

    #[test]
    fn setattr_times() {
        assert_eq!(HostTimespec::from_setattr(None), Ok(HostTimespec::OMIT));
        assert_eq!(
            HostTimespec::from_setattr(Some(TimeOrNow::Now)),
            Ok(HostTimespec::NOW)
        );
        assert_eq!(
            HostTimespec::from_setattr(Some(TimeOrNow::Time(ts(1_700_000_000, 123)))),
            Ok(HostTimespec {
                sec: 1_700_000_000,
                nsec: 123
            })
        );
        // Before the epoch, and the last valid nanosecond.
        assert_eq!(
            HostTimespec::from_time(ts(-1, 999_999_999)),
            Ok(HostTimespec {
                sec: -1,
                nsec: 999_999_999
            })
        );
        assert_eq!(
            HostTimespec::from_time(ts(0, 1_000_000_000)),
            Err(Errno::EINVAL)
        );
        // A Linux special value smuggled in as nanoseconds is refused, not passed through.
        assert_eq!(
            HostTimespec::from_time(ts(0, (1 << 30) - 1)),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn raw_linux_timespecs() {
        assert_eq!(
            HostTimespec::from_linux(5, linux::UTIME_NOW),
            Ok(HostTimespec::NOW)
        );
        assert_eq!(
            HostTimespec::from_linux(5, linux::UTIME_OMIT),
            Ok(HostTimespec::OMIT)
        );
        assert_eq!(
            HostTimespec::from_linux(5, 7),
            Ok(HostTimespec { sec: 5, nsec: 7 })
        );
        for bad in [-1, -2, 1_000_000_000, (1 << 30) - 3, 1 << 30, i64::MAX] {
            assert_eq!(
                HostTimespec::from_linux(0, bad),
                Err(Errno::EINVAL),
                "{bad}"
            );
        }
    }

    #[test]
    fn pairs() {
        assert_eq!(utimens(None, None), Ok(None));
        assert_eq!(
            utimens(Some(TimeOrNow::Now), None),
            Ok(Some([HostTimespec::NOW, HostTimespec::OMIT]))
        );
        let pair = utimens(None, Some(TimeOrNow::Time(ts(9, 9)))).expect("valid");
        assert_eq!(
            pair,
            Some([HostTimespec::OMIT, HostTimespec { sec: 9, nsec: 9 }])
        );
        assert!(pair.is_some_and(|[a, m]| a.is_omit() && !m.is_omit()));
        assert_eq!(
            utimens(Some(TimeOrNow::Time(ts(0, 2_000_000_000))), None),
            Err(Errno::EINVAL)
        );
    }
}
