//! Decoding helpers shared by the handlers: fixed arguments, strings, names, the creation
//! extensions and the SETATTR argument. A malformed argument is counted and answered EINVAL
//! (ENAMETOOLONG, ERANGE where the kernel would say so).

use std::ffi::CStr;

use fuse_abi::limits::XATTR_NAME_MAX;
use fuse_abi::{Errno, FileLock, InitFlags, SetattrIn, SetattrValid};
use zerocopy::{FromBytes, Immutable, KnownLayout};

use super::Server;
use super::frame::Request;
use crate::filesystem::FileSystem;
use crate::types::{
    CreateContext, Handle, Lock, Name, SecurityContext, SetAttr, TimeOrNow, Timespec,
};

impl<F: FileSystem> Server<F> {
    /// Copies the fixed argument `T` out of the front of `args`; returns it and the rest.
    pub(super) fn arg<'a, T>(&self, req: &Request, args: &'a [u8]) -> Result<(T, &'a [u8]), Errno>
    where
        T: FromBytes + KnownLayout + Immutable,
    {
        match T::read_from_prefix(args) {
            Ok((v, rest)) => Ok((v, rest)),
            Err(_) => {
                self.bad(format_args!(
                    "{} argument of {} bytes, needs {}",
                    req.op,
                    args.len(),
                    std::mem::size_of::<T>()
                ));
                Err(Errno::EINVAL)
            }
        }
    }

    /// A NUL-terminated string out of `args`.
    pub(super) fn cstr<'a>(
        &self,
        req: &Request,
        args: &'a [u8],
    ) -> Result<(&'a CStr, &'a [u8]), Errno> {
        match CStr::from_bytes_until_nul(args) {
            Ok(s) => {
                let rest = args.get(s.to_bytes_with_nul().len()..).unwrap_or(&[]);
                Ok((s, rest))
            }
            Err(_) => {
                self.bad(format_args!("{}: string without NUL", req.op));
                Err(Errno::EINVAL)
            }
        }
    }

    /// A name out of `args`: NUL-terminated, validated, `.`/`..` refused unless `dots`.
    pub(super) fn name<'a>(
        &self,
        req: &Request,
        args: &'a [u8],
        dots: bool,
    ) -> Result<(Name<'a>, &'a [u8]), Errno> {
        let (s, rest) = self.cstr(req, args)?;
        let name = Name::new(s.to_bytes()).inspect_err(|&e| {
            // The kernel checks names against FUSE_NAME_MAX (1024), not NAME_MAX: a long name
            // is an ordinary ENAMETOOLONG, not a malformed request.
            if e != Errno::ENAMETOOLONG {
                self.bad(format_args!("{}: invalid name {:?}", req.op, s));
            }
        })?;
        if !dots && name.is_dot_or_dotdot() {
            self.bad(format_args!("{}: name {:?} not allowed", req.op, name));
            return Err(Errno::EINVAL);
        }
        Ok((name, rest))
    }

    /// An extended attribute name out of `args`: non-empty, at most `XATTR_NAME_MAX` bytes.
    pub(super) fn xattr_name<'a>(
        &self,
        req: &Request,
        args: &'a [u8],
    ) -> Result<(&'a CStr, &'a [u8]), Errno> {
        let (name, rest) = self.cstr(req, args)?;
        if name.is_empty() {
            self.bad(format_args!("{}: empty attribute name", req.op));
            return Err(Errno::EINVAL);
        }
        if name.count_bytes() > XATTR_NAME_MAX {
            self.bad(format_args!("{}: attribute name too long", req.op));
            return Err(Errno::ERANGE);
        }
        Ok((name, rest))
    }

    /// The extensions of a creation request.
    pub(super) fn create_ctx<'a>(
        &self,
        req: &Request,
        umask: u32,
        ext: &'a [u8],
    ) -> Result<CreateContext<'a>, Errno> {
        let mut cctx = CreateContext {
            umask: if req.flags.contains(InitFlags::DONT_MASK) {
                umask
            } else {
                0
            },
            security_ctx: None,
            supp_gid: None,
        };
        for item in fuse_abi::ext::extensions(ext) {
            match item {
                Ok(fuse_abi::ext::Extension::SecurityContexts { count, raw }) => {
                    if let Some(first) = fuse_abi::ext::secctx_entries(count, raw).next() {
                        let sc = first.map_err(|e| {
                            self.bad(format_args!("{}: {e}", req.op));
                            Errno::EINVAL
                        })?;
                        // The kernel only sends the `security.*` attributes of its LSMs; any
                        // other name would be an xattr the guest sets past `--xattr` and the
                        // xattr map.
                        if !sc.name.starts_with(b"security.") || sc.name.len() <= 9 {
                            self.bad(format_args!(
                                "{}: security context named {:?}, not security.*",
                                req.op,
                                String::from_utf8_lossy(sc.name)
                            ));
                            return Err(Errno::EINVAL);
                        }
                        cctx.security_ctx = Some(SecurityContext {
                            name: sc.name,
                            value: sc.value,
                        });
                    }
                }
                Ok(fuse_abi::ext::Extension::SuppGroups(gids)) => {
                    cctx.supp_gid = fuse_abi::ext::supp_group_ids(gids).next();
                }
                Ok(fuse_abi::ext::Extension::Unknown { .. }) => {}
                Err(e) => {
                    self.bad(format_args!("{}: {e}", req.op));
                    return Err(Errno::EINVAL);
                }
            }
        }
        Ok(cctx)
    }
}

/// A lock range as the backend sees it.
pub(super) fn lock(l: &FileLock) -> Lock {
    Lock {
        start: l.start.get(),
        end: l.end.get(),
        typ: l.typ.get(),
        pid: l.pid.get(),
    }
}

fn timespec(sec: u64, nsec: u32) -> Timespec {
    Timespec {
        sec: i64::from_ne_bytes(sec.to_ne_bytes()),
        nsec,
    }
}

/// The fields of a SETATTR whose `FATTR_*` bit is set.
pub(super) fn set_attr(si: &SetattrIn) -> SetAttr {
    let valid = SetattrValid::from_bits_retain(si.valid.get());
    let has = |f: SetattrValid| valid.contains(f);
    let time = |set: SetattrValid, now: SetattrValid, sec: u64, nsec: u32| {
        if has(now) {
            Some(TimeOrNow::Now)
        } else if has(set) {
            Some(TimeOrNow::Time(timespec(sec, nsec)))
        } else {
            None
        }
    };
    SetAttr {
        valid,
        mode: has(SetattrValid::MODE).then(|| si.mode.get()),
        uid: has(SetattrValid::UID).then(|| si.uid.get()),
        gid: has(SetattrValid::GID).then(|| si.gid.get()),
        size: has(SetattrValid::SIZE).then(|| si.size.get()),
        atime: time(
            SetattrValid::ATIME,
            SetattrValid::ATIME_NOW,
            si.atime.get(),
            si.atimensec.get(),
        ),
        mtime: time(
            SetattrValid::MTIME,
            SetattrValid::MTIME_NOW,
            si.mtime.get(),
            si.mtimensec.get(),
        ),
        ctime: has(SetattrValid::CTIME).then(|| timespec(si.ctime.get(), si.ctimensec.get())),
        fh: has(SetattrValid::FH).then(|| Handle(si.fh.get())),
        kill_suidgid: has(SetattrValid::KILL_SUIDGID),
    }
}
