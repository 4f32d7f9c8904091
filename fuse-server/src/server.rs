//! The dispatcher: one FUSE request in, at most one reply out.
//!
//! [`Server::handle_message`] takes the device-readable part of a request as a [`Reader`] and
//! the device-writable part as a [`Writer`]:
//!
//! 1. it copies the 40-byte `fuse_in_header` out (never a reference into guest memory) and
//!    checks `len`: at least 40, equal to the bytes the reader holds, at most the negotiated
//!    maximum; `total_extlen` × 8 bytes of request extensions must fit inside it (7.38+);
//! 2. it decodes the opcode (unknown → ENOSYS), answers EIO to anything but INIT before INIT;
//! 3. it copies the rest of the request (except WRITE data, which stays in the reader for the
//!    backend's zero-copy [`ZeroCopyReader`]) into a per-thread reusable [`RequestBuffer`],
//!    decodes the fixed argument per the negotiated minor and validates names;
//! 4. it calls the backend and encodes the reply: a zero `fuse_out_header` first, then the
//!    body, then the header again with [`Writer::write_at`], so `out_header.len` is exactly the
//!    bytes written; errors are always in −511..=−1.
//!
//! # Requests the server handles itself
//!
//! | opcode | handling |
//! |---|---|
//! | INIT | [`negotiate`](crate::negotiate::negotiate), then [`FileSystem::init`]; a second INIT re-initialises the backend and succeeds |
//! | DESTROY | [`FileSystem::destroy`], empty reply; later requests get EIO until the next INIT |
//! | FORGET, BATCH_FORGET | to the backend, **no reply** ([`Outcome::NoReply`]) |
//! | INTERRUPT | ENOSYS, header only (never sent on virtio-fs; on `/dev/fuse` the kernel then stops sending interrupts; requests are never interrupted) |
//! | NOTIFY_REPLY | ignored, **no reply** (the server never sends NOTIFY_RETRIEVE) |
//! | CUSE_INIT | ENOSYS |
//! | IOCTL with FUSE_IOCTL_UNRESTRICTED | ENOSYS (CUSE only) |
//!
//! # Buffers
//!
//! No allocation per request in steady state: each worker thread owns a [`RequestBuffer`]
//! (a thread-local one behind [`Server::handle_message`], or an explicit one with
//! [`Server::handle_message_with`]) that grows to the largest request seen and is reused.
//! READ and WRITE data never enter it.
//!
//! # Malformed requests
//!
//! Every malformed request gets an errno (EINVAL for lengths and structure, ENAMETOOLONG for
//! long names, EIO before INIT), never a panic; FORGET-type requests are dropped silently.
//! They are logged at `warn!` at most, under the shared rate limit ([`guest_warn!`](crate::guest_warn)),
//! and counted ([`Server::bad_requests`]).

use std::cell::RefCell;
use std::ffi::CStr;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use fuse_abi::{
    AccessIn, Attr, AttrOut, BatchForgetIn, BmapIn, BmapOut, CopyFileRangeIn, CopyFileRangeOut,
    CreateIn, Dirent, Direntplus, EntryOut, Errno, FallocateIn, FileLock, FlushIn, ForgetIn,
    ForgetOne, FsyncFlags, FsyncIn, GetattrFlags, GetattrIn, GetxattrIn, GetxattrOut, I32,
    InHeader, InitFlags, IoctlFlags, IoctlIn, IoctlOut, Kstatfs, LinkIn, LkFlags, LkIn, LkOut,
    LseekIn, LseekOut, MkdirIn, MknodIn, Opcode, OpenIn, OpenInFlags, OpenOut, OpenOutFlags,
    OutHeader, PollIn, PollOut, ReadFlags, ReadIn, ReleaseFlags, ReleaseIn, RemovemappingIn,
    RemovemappingOne, Rename2In, RenameFlags, RenameIn, SetattrIn, SetattrValid, SetupmappingIn,
    SetxattrFlags, SetxattrIn, SetxattrInCompat, StatfsOut, StatxIn, StatxOut, U32, U64,
    WriteFlags, WriteIn, WriteOut,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::filesystem::FileSystem;
use crate::io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use crate::negotiate::{
    self, EXTENSIONS_MINOR, InitReply, KernelOffer, NegotiationConfig, TransportFacts,
};
use crate::types::*;

const IN_HEADER_LEN: usize = std::mem::size_of::<InHeader>();
const OUT_HEADER_LEN: usize = std::mem::size_of::<OutHeader>();
/// The largest request accepted before INIT (INIT is 104 bytes).
const PRE_INIT_MAX_LEN: usize = 4096;
/// `PATH_MAX`: READLINK buffers and symlink targets.
const PATH_MAX: usize = 4096;
/// `XATTR_SIZE_MAX`: the largest GETXATTR/LISTXATTR/IOCTL buffer handed to a backend.
const XATTR_SIZE_MAX: usize = 65536;
/// The longest directory entry name the kernel accepts (`FUSE_NAME_MAX`).
const DIRENT_NAME_MAX: usize = 1024;
/// Bytes of `fuse_in_header` up to the end of `unique` (`len`, `opcode`, `unique`): a request
/// shorter than this cannot be answered.
const UNIQUE_END: usize = 16;

/// `XATTR_NAME_MAX`.
const XATTR_NAME_MAX: usize = 255;

/// How a server is set up: the transport's facts and the operator's negotiation choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// What the transport guarantees and limits.
    pub transport: TransportFacts,
    /// Policy for FUSE_INIT.
    pub negotiation: NegotiationConfig,
}

/// What [`Server::handle_message`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A reply of `len` bytes was written (`len` == `out_header.len` == the bytes written).
    Replied {
        /// The reply's length: the used length to report.
        len: usize,
    },
    /// The request takes no reply (FORGET, BATCH_FORGET, NOTIFY_REPLY).
    NoReply,
}

/// Why no reply could be produced. The transport decides what to do with the request (count
/// it, return the chain with a used length of 0).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reply space cannot hold even an out header.
    #[error("reply space of {available} bytes cannot hold a {needed}-byte reply")]
    ReplySpace {
        /// Bytes of reply space.
        available: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Reading the request failed.
    #[error("reading the request failed")]
    Read(#[source] io::Error),
    /// Writing the reply failed.
    #[error("writing the reply failed")]
    Write(#[source] io::Error),
}

/// A worker's reusable request and reply scratch space. It grows to the largest request seen
/// (bounded by the negotiated maximum) and is never shrunk.
#[derive(Debug, Default)]
pub struct RequestBuffer {
    req: Vec<u8>,
    reply: Vec<u8>,
}

impl RequestBuffer {
    /// An empty buffer; it allocates on first use.
    pub const fn new() -> RequestBuffer {
        RequestBuffer {
            req: Vec::new(),
            reply: Vec::new(),
        }
    }
}

thread_local! {
    static BUFFER: RefCell<RequestBuffer> = const { RefCell::new(RequestBuffer::new()) };
}

/// The connection state INIT establishes.
#[derive(Clone, Copy, Debug)]
struct Conn {
    minor: u32,
    flags: InitFlags,
    max_request_len: usize,
}

/// The FUSE server: decodes requests, calls the backend `F`, encodes replies.
///
/// `Send + Sync`: share it between workers with an `Arc`.
#[derive(Debug)]
pub struct Server<F> {
    fs: F,
    config: ServerConfig,
    conn: RwLock<Option<Conn>>,
    init_lock: Mutex<()>,
    bad_requests: AtomicU64,
    /// Test hook: INIT flags OR-ed into every accepted INIT reply, bypassing negotiation.
    #[cfg(feature = "test-hooks")]
    forced_reply_flags: AtomicU64,
}

/// A request reply built by a handler: an error, or body parts.
enum Reply<'a> {
    Err(Errno),
    Ok(&'a [u8]),
    None,
}

fn errno_reply<'a>(e: Errno) -> Reply<'a> {
    Reply::Err(e)
}

impl<F: FileSystem> Server<F> {
    /// A server for backend `fs`.
    pub fn new(fs: F, config: ServerConfig) -> Server<F> {
        Server {
            fs,
            config,
            conn: RwLock::new(None),
            init_lock: Mutex::new(()),
            bad_requests: AtomicU64::new(0),
            #[cfg(feature = "test-hooks")]
            forced_reply_flags: AtomicU64::new(0),
        }
    }

    /// **Test hook, never for production** (cargo feature `test-hooks`, which no normal build
    /// of the workspace enables; only dev-dependencies turn it on): every later accepted INIT
    /// reply carries `flags` on top of what negotiation chose, bypassing every negotiation
    /// rule. It exists to prove that tests of those rules can fail, e.g. that the kernel
    /// refuses ALLOW_IDMAP without `default_permissions` (ECONNREFUSED on every request).
    /// The server's own view of the connection ([`Server::negotiated`]) is unchanged.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn force_reply_flags(&self, flags: InitFlags) {
        self.forced_reply_flags
            .store(flags.bits(), Ordering::Relaxed);
    }

    /// The backend.
    pub fn filesystem(&self) -> &F {
        &self.fs
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Malformed requests seen so far.
    pub fn bad_requests(&self) -> u64 {
        self.bad_requests.load(Ordering::Relaxed)
    }

    /// What INIT negotiated, or `None` before INIT (and after DESTROY or a reset).
    pub fn negotiated(&self) -> Option<(u32, InitFlags)> {
        self.conn().map(|c| (c.minor, c.flags))
    }

    /// Device reset: releases the backend's state (if a connection was set up) and forgets the
    /// negotiation; the next request must be INIT.
    pub fn reset(&self) {
        let _guard = self.init_lock.lock().unwrap_or_else(|e| e.into_inner());
        let was = self.set_conn(None);
        if was.is_some() {
            self.fs.destroy();
        }
    }

    /// Handles one request, using this thread's reusable [`RequestBuffer`].
    ///
    /// # Errors
    ///
    /// See [`Error`]: the reply space is too small for any reply, or the reader or the writer
    /// failed. A malformed request is not an error: it gets an errno reply.
    pub fn handle_message<R, W>(&self, r: &mut R, w: &mut W) -> Result<Outcome, Error>
    where
        R: Reader + ?Sized,
        W: Writer + ?Sized,
    {
        BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => self.handle_message_with(&mut buf, r, w),
            // Re-entered from a backend on the same thread: use a fresh buffer.
            Err(_) => self.handle_message_with(&mut RequestBuffer::new(), r, w),
        })
    }

    /// Handles one request with an explicit per-worker buffer.
    ///
    /// # Errors
    ///
    /// As [`handle_message`](Self::handle_message).
    pub fn handle_message_with<R, W>(
        &self,
        buf: &mut RequestBuffer,
        r: &mut R,
        w: &mut W,
    ) -> Result<Outcome, Error>
    where
        R: Reader + ?Sized,
        W: Writer + ?Sized,
    {
        let start = w.bytes_written();
        let mut hdr_bytes = [0u8; IN_HEADER_LEN];
        let got = read_full(r, &mut hdr_bytes).map_err(Error::Read)?;
        let hdr = InHeader::read_from_bytes(&hdr_bytes).unwrap_or_default();
        let unique = hdr.unique.get();
        let opcode = Opcode::try_from(hdr.opcode.get());
        let no_reply = matches!(
            opcode,
            Ok(Opcode::Forget | Opcode::BatchForget | Opcode::NotifyReply)
        );
        let reply_err = |s: &Self, w: &mut W, e: Errno| {
            if no_reply {
                Ok(Outcome::NoReply)
            } else {
                s.write_reply(w, start, unique, Reply::Err(e))
            }
        };
        if got < IN_HEADER_LEN {
            self.bad(format_args!(
                "request of {got} bytes is shorter than its header"
            ));
            if got < UNIQUE_END {
                // No `unique`: a reply could not name the request, so there is none.
                return Ok(Outcome::NoReply);
            }
            return reply_err(self, w, Errno::EINVAL);
        }
        let len = usize::try_from(hdr.len.get()).unwrap_or(usize::MAX);
        let body_len = r.remaining();
        if len < IN_HEADER_LEN || Some(len) != IN_HEADER_LEN.checked_add(body_len) {
            self.bad(format_args!(
                "header len {len} disagrees with the {} bytes of the request",
                IN_HEADER_LEN.saturating_add(body_len)
            ));
            return reply_err(self, w, Errno::EINVAL);
        }
        let op = match opcode {
            Ok(Opcode::CuseInit) | Err(_) => return reply_err(self, w, Errno::ENOSYS),
            Ok(op) => op,
        };
        let conn = self.conn();
        if conn.is_none() && op != Opcode::Init {
            self.bad(format_args!("{op} before INIT"));
            return reply_err(self, w, Errno::EIO);
        }
        let max_len = conn.map_or(PRE_INIT_MAX_LEN, |c| c.max_request_len);
        if len > max_len {
            self.bad(format_args!(
                "{op} of {len} bytes exceeds the maximum {max_len}"
            ));
            return reply_err(self, w, Errno::EINVAL);
        }
        let minor = conn.map_or(0, |c| c.minor);
        let flags = conn.map_or(InitFlags::empty(), |c| c.flags);
        let ext_len = if minor >= EXTENSIONS_MINOR {
            usize::from(hdr.total_extlen.get()).saturating_mul(8)
        } else {
            0
        };
        if ext_len > body_len {
            self.bad(format_args!(
                "{op}: {ext_len} bytes of extensions in a {body_len}-byte body"
            ));
            return reply_err(self, w, Errno::EINVAL);
        }
        let ctx = Context {
            unique,
            uid: hdr.uid.get(),
            gid: hdr.gid.get(),
            pid: hdr.pid.get(),
        };
        let req = Request {
            op,
            nodeid: hdr.nodeid.get(),
            ctx,
            minor,
            flags,
        };

        let mut out = [0u8; 512];
        let reply = match op {
            Opcode::Init => {
                let body = copy_body(&mut buf.req, r, body_len)?;
                return self.do_init(w, start, unique, body);
            }
            Opcode::Write => self.do_write(&req, r, body_len, ext_len, &mut out)?,
            _ => {
                let RequestBuffer {
                    req: req_buf,
                    reply,
                } = buf;
                let body = copy_body(req_buf, r, body_len)?;
                let (args, ext) = body.split_at(body_len.saturating_sub(ext_len));
                match op {
                    Opcode::Read => return self.do_read(&req, w, start, args),
                    Opcode::Readdir | Opcode::Readdirplus => {
                        return self.do_readdir(&req, w, start, args);
                    }
                    _ => {
                        let avail = w.available().saturating_sub(OUT_HEADER_LEN);
                        match self.dispatch(&req, args, ext, reply, &mut out, avail) {
                            Ok(reply) => reply,
                            Err(e) => Reply::Err(e),
                        }
                    }
                }
            }
        };
        if no_reply {
            // FORGET and friends never get a reply, not even an error.
            return Ok(Outcome::NoReply);
        }
        self.write_reply(w, start, unique, reply)
    }

    fn conn(&self) -> Option<Conn> {
        *self.conn.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set_conn(&self, conn: Option<Conn>) -> Option<Conn> {
        let mut guard = self.conn.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, conn)
    }

    fn bad(&self, what: std::fmt::Arguments<'_>) {
        let n = self.bad_requests.fetch_add(1, Ordering::Relaxed);
        crate::guest_warn!("malformed FUSE request (#{}): {what}", n.saturating_add(1));
    }

    /// Writes a whole reply: zero header, body, then the real header at `start`.
    fn write_reply<W: Writer + ?Sized>(
        &self,
        w: &mut W,
        start: usize,
        unique: u64,
        reply: Reply<'_>,
    ) -> Result<Outcome, Error> {
        let (error, body): (i32, &[u8]) = match reply {
            Reply::Err(e) => (e.to_wire(), &[]),
            Reply::Ok(body) => (0, body),
            Reply::None => return Ok(Outcome::NoReply),
        };
        let needed = OUT_HEADER_LEN.saturating_add(body.len());
        let available = w.available();
        let (error, body) = if needed <= available {
            (error, body)
        } else if available >= OUT_HEADER_LEN {
            self.bad(format_args!(
                "reply of {needed} bytes does not fit in {available} bytes of reply space"
            ));
            (Errno::EIO.to_wire(), &[][..])
        } else {
            self.bad(format_args!(
                "no room for a reply header ({available} bytes)"
            ));
            return Err(Error::ReplySpace { available, needed });
        };
        w.write_all(&[0u8; OUT_HEADER_LEN]).map_err(Error::Write)?;
        w.write_all(body).map_err(Error::Write)?;
        finish(w, start, unique, error)
    }

    /// Reserves the out header for a reply whose body is written piecewise.
    fn reserve_header<W: Writer + ?Sized>(&self, w: &mut W) -> Result<(), Error> {
        let available = w.available();
        if available < OUT_HEADER_LEN {
            self.bad(format_args!(
                "no room for a reply header ({available} bytes)"
            ));
            return Err(Error::ReplySpace {
                available,
                needed: OUT_HEADER_LEN,
            });
        }
        w.write_all(&[0u8; OUT_HEADER_LEN]).map_err(Error::Write)
    }

    fn do_init<W: Writer + ?Sized>(
        &self,
        w: &mut W,
        start: usize,
        unique: u64,
        body: &[u8],
    ) -> Result<Outcome, Error> {
        let _guard = self.init_lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = KernelOffer::parse(body).and_then(|offer| {
            let caps = self.fs.capabilities();
            negotiate::negotiate(
                &offer,
                &caps,
                &self.config.transport,
                &self.config.negotiation,
            )
        });
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                log::warn!("FUSE_INIT refused: {e}");
                return self.write_reply(w, start, unique, errno_reply(e.errno()));
            }
        };
        if let InitReply::Accepted(n) = &reply {
            // A second INIT (guest reboot without DESTROY) re-initialises the backend.
            if let Err(e) = self.fs.init(&n.negotiated) {
                log::warn!("FUSE_INIT: the backend failed to initialise: {e}");
                self.set_conn(None);
                return self.write_reply(w, start, unique, errno_reply(e));
            }
            let max_request_len = usize::try_from(n.max_request_len()).unwrap_or(usize::MAX);
            self.set_conn(Some(Conn {
                minor: n.negotiated.minor,
                flags: n.negotiated.flags,
                max_request_len,
            }));
            log::debug!(
                "FUSE_INIT: 7.{} flags {:?} max_write {} max_pages {}",
                n.negotiated.minor,
                n.negotiated.flags,
                n.negotiated.max_write,
                n.max_pages
            );
        }
        #[cfg_attr(not(feature = "test-hooks"), allow(unused_mut))]
        let mut out = *reply.out();
        #[cfg(feature = "test-hooks")]
        if let InitReply::Accepted(_) = &reply {
            let forced =
                InitFlags::from_bits_retain(self.forced_reply_flags.load(Ordering::Relaxed));
            if !forced.is_empty() {
                let flags = InitFlags::from_wire(out.flags.get(), out.flags2.get()) | forced;
                let (low, high) = flags.to_wire();
                out.flags = U32::new(low);
                out.flags2 = U32::new(high);
                log::warn!("FUSE_INIT: test hook forces reply flags {forced:?}");
            }
        }
        let bytes = out.as_bytes();
        let body = bytes.get(..reply.reply_len()).unwrap_or(bytes);
        self.write_reply(w, start, unique, Reply::Ok(body))
    }

    fn do_write<'o, R: Reader + ?Sized>(
        &self,
        req: &Request,
        r: &mut R,
        body_len: usize,
        ext_len: usize,
        out: &'o mut [u8],
    ) -> Result<Reply<'o>, Error> {
        let mut arg = [0u8; std::mem::size_of::<WriteIn>()];
        let arg_len = fuse_abi::compat::write_in_size(req.minor).min(arg.len());
        if body_len < arg_len {
            self.bad(format_args!("WRITE argument of {body_len} bytes"));
            return Ok(Reply::Err(Errno::EINVAL));
        }
        let dst = arg.get_mut(..arg_len).unwrap_or(&mut []);
        r.read_exact(dst).map_err(Error::Read)?;
        let wi = WriteIn::read_from_bytes(&arg).unwrap_or_default();
        let data_len = body_len.saturating_sub(arg_len).saturating_sub(ext_len);
        let size = wi.size.get();
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        if size_usize > data_len {
            self.bad(format_args!(
                "WRITE of {size} bytes carries {data_len} bytes of data"
            ));
            return Ok(Reply::Err(Errno::EINVAL));
        }
        let write_flags = WriteFlags::from_bits_retain(wi.write_flags.get());
        let lock_owner = write_flags
            .contains(WriteFlags::LOCKOWNER)
            .then(|| wi.lock_owner.get());
        let mut limited = LimitedReader {
            inner: r,
            left: size_usize,
        };
        let result = self.fs.write(
            &req.ctx,
            req.nodeid,
            wi.fh.get(),
            &mut limited,
            size,
            wi.offset.get(),
            lock_owner,
            write_flags,
            wi.flags.get(),
        );
        Ok(match result {
            Ok(n) => {
                let n = u32::try_from(n.min(size_usize)).unwrap_or(size);
                let wo = WriteOut {
                    size: U32::new(n),
                    padding: U32::new(0),
                };
                Reply::Ok(put(out, &wo))
            }
            Err(e) => Reply::Err(e),
        })
    }

    fn do_read<W: Writer + ?Sized>(
        &self,
        req: &Request,
        w: &mut W,
        start: usize,
        args: &[u8],
    ) -> Result<Outcome, Error> {
        let unique = req.ctx.unique;
        let ri: ReadIn = match self.arg(req, args) {
            Ok((ri, _)) => ri,
            Err(e) => return self.write_reply(w, start, unique, Reply::Err(e)),
        };
        self.reserve_header(w)?;
        let size = ri.size.get();
        let room = w.available();
        let mut limited = LimitedWriter {
            inner: w,
            left: usize::try_from(size).unwrap_or(usize::MAX).min(room),
        };
        let lock_owner = ReadFlags::from_bits_retain(ri.read_flags.get())
            .contains(ReadFlags::LOCKOWNER)
            .then(|| ri.lock_owner.get());
        let result = self.fs.read(
            &req.ctx,
            req.nodeid,
            ri.fh.get(),
            &mut limited,
            size,
            ri.offset.get(),
            lock_owner,
            ri.flags.get(),
        );
        let data = w
            .bytes_written()
            .saturating_sub(start)
            .saturating_sub(OUT_HEADER_LEN);
        let error = match result {
            // Data already in the reply is a short read, whatever the backend says after it.
            Err(e) if data == 0 => e.to_wire(),
            _ => 0,
        };
        finish(w, start, unique, error)
    }

    fn do_readdir<W: Writer + ?Sized>(
        &self,
        req: &Request,
        w: &mut W,
        start: usize,
        args: &[u8],
    ) -> Result<Outcome, Error> {
        let unique = req.ctx.unique;
        let ri: ReadIn = match self.arg(req, args) {
            Ok((ri, _)) => ri,
            Err(e) => return self.write_reply(w, start, unique, Reply::Err(e)),
        };
        self.reserve_header(w)?;
        let room = w.available();
        let mut sink = DirWriter {
            w,
            left: usize::try_from(ri.size.get())
                .unwrap_or(usize::MAX)
                .min(room),
            added: 0,
            bad_name: false,
            io_error: None,
        };
        let (fh, offset) = (ri.fh.get(), ri.offset.get());
        let result = if req.op == Opcode::Readdirplus {
            self.fs
                .readdirplus(&req.ctx, req.nodeid, fh, offset, &mut sink)
        } else {
            self.fs.readdir(&req.ctx, req.nodeid, fh, offset, &mut sink)
        };
        let DirWriter {
            added,
            bad_name,
            io_error,
            ..
        } = sink;
        if let Some(e) = io_error {
            return Err(Error::Write(e));
        }
        if bad_name {
            self.bad(format_args!(
                "backend produced an invalid directory entry name"
            ));
        }
        let error = match result {
            // Entries already added are sent (READDIRPLUS took lookup references for them).
            _ if added > 0 => 0,
            Err(e) => e.to_wire(),
            Ok(()) if bad_name => Errno::EIO.to_wire(),
            Ok(()) => 0,
        };
        finish(w, start, unique, error)
    }

    /// Copies the fixed argument `T` (per the negotiated minor) out of `args`.
    fn arg<'a, T>(&self, req: &Request, args: &'a [u8]) -> Result<(T, &'a [u8]), Errno>
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
    fn cstr<'a>(&self, req: &Request, args: &'a [u8]) -> Result<(&'a CStr, &'a [u8]), Errno> {
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
    fn name<'a>(
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

    /// The extensions of a creation request.
    fn create_ctx<'a>(
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

    /// Every opcode whose reply fits the fixed `out` buffer or the reply scratch buffer.
    #[allow(clippy::too_many_lines)]
    fn dispatch<'o>(
        &self,
        req: &Request,
        args: &'o [u8],
        ext: &'o [u8],
        scratch: &'o mut Vec<u8>,
        out: &'o mut [u8],
        avail: usize,
    ) -> Result<Reply<'o>, Errno> {
        let fs = &self.fs;
        let ctx = &req.ctx;
        let nodeid = req.nodeid;
        let ok = |_: ()| Reply::Ok(&[]);
        Ok(match req.op {
            Opcode::Lookup => {
                let (name, _) = self.name(req, args, true)?;
                let e = fs.lookup(ctx, nodeid, name)?;
                Reply::Ok(put(out, &entry_out(&e)))
            }
            Opcode::Forget => {
                let (fi, _): (ForgetIn, _) = self.arg(req, args)?;
                fs.forget(ctx, nodeid, fi.nlookup.get());
                Reply::None
            }
            Opcode::BatchForget => {
                let (bi, rest): (BatchForgetIn, _) = self.arg(req, args)?;
                let count = usize::try_from(bi.count.get()).unwrap_or(usize::MAX);
                let one = std::mem::size_of::<ForgetOne>();
                if count.saturating_mul(one) > rest.len() {
                    self.bad(format_args!(
                        "BATCH_FORGET of {count} entries in {} bytes",
                        rest.len()
                    ));
                }
                let mut it = rest
                    .chunks_exact(one)
                    .take(count)
                    .filter_map(|c| ForgetOne::read_from_bytes(c).ok())
                    .map(|f| (f.nodeid.get(), f.nlookup.get()));
                fs.batch_forget(ctx, &mut it);
                Reply::None
            }
            Opcode::Getattr => {
                let fh = if fuse_abi::compat::getattr_in_size(req.minor) == 0 {
                    None
                } else {
                    let (gi, _): (GetattrIn, _) = self.arg(req, args)?;
                    GetattrFlags::from_bits_retain(gi.getattr_flags.get())
                        .contains(GetattrFlags::FH)
                        .then(|| gi.fh.get())
                };
                let a = fs.getattr(ctx, nodeid, fh)?;
                Reply::Ok(put(out, &attr_out(&a)))
            }
            Opcode::Setattr => {
                let (si, _): (SetattrIn, _) = self.arg(req, args)?;
                let a = fs.setattr(ctx, nodeid, &set_attr(&si))?;
                Reply::Ok(put(out, &attr_out(&a)))
            }
            Opcode::Statx => {
                let (si, _): (StatxIn, _) = self.arg(req, args)?;
                let fh = GetattrFlags::from_bits_retain(si.getattr_flags.get())
                    .contains(GetattrFlags::FH)
                    .then(|| si.fh.get());
                let s = fs.statx(ctx, nodeid, fh, si.sx_flags.get(), si.sx_mask.get())?;
                let (secs, nsecs) = split_duration(s.timeout);
                let so = StatxOut {
                    attr_valid: U64::new(secs),
                    attr_valid_nsec: U32::new(nsecs),
                    stat: s.statx,
                    ..StatxOut::default()
                };
                Reply::Ok(put(out, &so))
            }
            Opcode::Readlink => {
                let buf = scratch_buf(scratch, PATH_MAX);
                let n = fs.readlink(ctx, nodeid, buf)?;
                Reply::Ok(buf.get(..n).ok_or(Errno::EIO)?)
            }
            Opcode::Symlink => {
                let (name, rest) = self.name(req, args, false)?;
                let (target, _) = self.cstr(req, rest)?;
                if target.is_empty() || target.to_bytes_with_nul().len() > PATH_MAX {
                    self.bad(format_args!(
                        "SYMLINK target of {} bytes",
                        target.count_bytes()
                    ));
                    return Err(if target.is_empty() {
                        Errno::EINVAL
                    } else {
                        Errno::ENAMETOOLONG
                    });
                }
                let cctx = self.create_ctx(req, 0, ext)?;
                let e = fs.symlink(ctx, &cctx, nodeid, name, target)?;
                Reply::Ok(put(out, &entry_out(&e)))
            }
            Opcode::Mknod => {
                let (mi, rest): (MknodIn, _) = self.arg(req, args)?;
                let (name, _) = self.name(req, rest, false)?;
                let cctx = self.create_ctx(req, mi.umask.get(), ext)?;
                let e = fs.mknod(ctx, &cctx, nodeid, name, mi.mode.get(), mi.rdev.get())?;
                Reply::Ok(put(out, &entry_out(&e)))
            }
            Opcode::Mkdir => {
                let (mi, rest): (MkdirIn, _) = self.arg(req, args)?;
                let (name, _) = self.name(req, rest, false)?;
                let cctx = self.create_ctx(req, mi.umask.get(), ext)?;
                let e = fs.mkdir(ctx, &cctx, nodeid, name, mi.mode.get())?;
                Reply::Ok(put(out, &entry_out(&e)))
            }
            Opcode::Unlink => {
                let (name, _) = self.name(req, args, false)?;
                fs.unlink(ctx, nodeid, name).map(ok)?
            }
            Opcode::Rmdir => {
                let (name, _) = self.name(req, args, false)?;
                fs.rmdir(ctx, nodeid, name).map(ok)?
            }
            Opcode::Rename | Opcode::Rename2 => {
                let (newdir, flags, rest) = if req.op == Opcode::Rename {
                    let (ri, rest): (RenameIn, _) = self.arg(req, args)?;
                    (ri.newdir.get(), RenameFlags::empty(), rest)
                } else {
                    let (ri, rest): (Rename2In, _) = self.arg(req, args)?;
                    let flags = RenameFlags::from_bits(ri.flags.get()).ok_or_else(|| {
                        self.bad(format_args!("RENAME2 flags {:#x}", ri.flags.get()));
                        Errno::EINVAL
                    })?;
                    (ri.newdir.get(), flags, rest)
                };
                let (oldname, rest) = self.name(req, rest, false)?;
                let (newname, _) = self.name(req, rest, false)?;
                fs.rename(ctx, nodeid, oldname, newdir, newname, flags)
                    .map(ok)?
            }
            Opcode::Link => {
                let (li, rest): (LinkIn, _) = self.arg(req, args)?;
                let (name, _) = self.name(req, rest, false)?;
                let e = fs.link(ctx, li.oldnodeid.get(), nodeid, name)?;
                Reply::Ok(put(out, &entry_out(&e)))
            }
            Opcode::Open => {
                let (oi, _): (OpenIn, _) = self.arg(req, args)?;
                let flags = OpenInFlags::from_bits_retain(oi.open_flags.get());
                let o = fs.open(ctx, nodeid, oi.flags.get(), flags)?;
                Reply::Ok(put(out, &open_out(&o)))
            }
            Opcode::Opendir => {
                let (oi, _): (OpenIn, _) = self.arg(req, args)?;
                let o = fs.opendir(ctx, nodeid, oi.flags.get())?;
                Reply::Ok(put(out, &open_out(&o)))
            }
            Opcode::Create => {
                let (ci, rest): (CreateIn, _) = self.arg(req, args)?;
                let (name, _) = self.name(req, rest, false)?;
                let cctx = self.create_ctx(req, ci.umask.get(), ext)?;
                let flags = OpenInFlags::from_bits_retain(ci.open_flags.get());
                let (e, o) = fs.create(
                    ctx,
                    &cctx,
                    nodeid,
                    name,
                    ci.mode.get(),
                    ci.flags.get(),
                    flags,
                )?;
                Reply::Ok(put2(out, &entry_out(&e), &open_out(&o)))
            }
            Opcode::Tmpfile => {
                let (ci, _): (CreateIn, _) = self.arg(req, args)?;
                let cctx = self.create_ctx(req, ci.umask.get(), ext)?;
                let (e, o) = fs.tmpfile(ctx, &cctx, nodeid, ci.mode.get(), ci.flags.get())?;
                Reply::Ok(put2(out, &entry_out(&e), &open_out(&o)))
            }
            Opcode::Statfs => {
                let s = fs.statfs(ctx, nodeid)?;
                let so = StatfsOut {
                    st: Kstatfs {
                        blocks: U64::new(s.blocks),
                        bfree: U64::new(s.bfree),
                        bavail: U64::new(s.bavail),
                        files: U64::new(s.files),
                        ffree: U64::new(s.ffree),
                        bsize: U32::new(s.bsize),
                        namelen: U32::new(s.namelen),
                        frsize: U32::new(s.frsize),
                        ..Kstatfs::default()
                    },
                };
                Reply::Ok(put(out, &so))
            }
            Opcode::Release | Opcode::Releasedir => {
                let (ri, _): (ReleaseIn, _) = self.arg(req, args)?;
                if req.op == Opcode::Releasedir {
                    fs.releasedir(ctx, nodeid, ri.fh.get(), ri.flags.get())
                        .map(ok)?
                } else {
                    let rf = ReleaseFlags::from_bits_retain(ri.release_flags.get());
                    let flush = rf.contains(ReleaseFlags::FLUSH);
                    let flock = rf.contains(ReleaseFlags::FLOCK_UNLOCK);
                    let owner = (flush || flock).then(|| ri.lock_owner.get());
                    fs.release(
                        ctx,
                        nodeid,
                        ri.fh.get(),
                        ri.flags.get(),
                        flush,
                        flock,
                        owner,
                    )
                    .map(ok)?
                }
            }
            Opcode::Fsync | Opcode::Fsyncdir => {
                let (fi, _): (FsyncIn, _) = self.arg(req, args)?;
                let datasync = FsyncFlags::from_bits_retain(fi.fsync_flags.get())
                    .contains(FsyncFlags::FDATASYNC);
                if req.op == Opcode::Fsync {
                    fs.fsync(ctx, nodeid, fi.fh.get(), datasync).map(ok)?
                } else {
                    fs.fsyncdir(ctx, nodeid, fi.fh.get(), datasync).map(ok)?
                }
            }
            Opcode::Setxattr => {
                let (size, flags, sflags, rest) = if req.flags.contains(InitFlags::SETXATTR_EXT) {
                    let (si, rest): (SetxattrIn, _) = self.arg(req, args)?;
                    let sf = SetxattrFlags::from_bits_retain(si.setxattr_flags.get());
                    (si.size.get(), si.flags.get(), sf, rest)
                } else {
                    let (si, rest): (SetxattrInCompat, _) = self.arg(req, args)?;
                    (si.size.get(), si.flags.get(), SetxattrFlags::empty(), rest)
                };
                let (name, rest) = self.xattr_name(req, rest)?;
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                let value = rest.get(..size).ok_or_else(|| {
                    self.bad(format_args!("SETXATTR value of {size} bytes overruns"));
                    Errno::EINVAL
                })?;
                fs.setxattr(ctx, nodeid, name, value, flags, sflags)
                    .map(ok)?
            }
            Opcode::Getxattr | Opcode::Listxattr => {
                let (gi, rest): (GetxattrIn, _) = self.arg(req, args)?;
                let size = usize::try_from(gi.size.get()).unwrap_or(usize::MAX);
                let len = if size == 0 {
                    0
                } else {
                    size.min(XATTR_SIZE_MAX).min(avail)
                };
                let buf = scratch_buf(scratch, len);
                let got = if req.op == Opcode::Getxattr {
                    let (name, _) = self.xattr_name(req, rest)?;
                    fs.getxattr(ctx, nodeid, name, buf)?
                } else {
                    fs.listxattr(ctx, nodeid, buf)?
                };
                match got {
                    XattrReply::Size(s) if size == 0 => {
                        let go = GetxattrOut {
                            size: U32::new(s),
                            padding: U32::new(0),
                        };
                        Reply::Ok(put(out, &go))
                    }
                    XattrReply::Data(n) if size != 0 => Reply::Ok(buf.get(..n).ok_or(Errno::EIO)?),
                    _ => return Err(Errno::EIO),
                }
            }
            Opcode::Removexattr => {
                let (name, _) = self.xattr_name(req, args)?;
                fs.removexattr(ctx, nodeid, name).map(ok)?
            }
            Opcode::Flush => {
                let (fi, _): (FlushIn, _) = self.arg(req, args)?;
                fs.flush(ctx, nodeid, fi.fh.get(), fi.lock_owner.get())
                    .map(ok)?
            }
            Opcode::Getlk => {
                let (li, _): (LkIn, _) = self.arg(req, args)?;
                let l = fs.getlk(ctx, nodeid, li.fh.get(), li.owner.get(), lock(&li.lk))?;
                let lo = LkOut {
                    lk: FileLock {
                        start: U64::new(l.start),
                        end: U64::new(l.end),
                        typ: U32::new(l.typ),
                        pid: U32::new(l.pid),
                    },
                };
                Reply::Ok(put(out, &lo))
            }
            Opcode::Setlk | Opcode::Setlkw => {
                let (li, _): (LkIn, _) = self.arg(req, args)?;
                let flock = LkFlags::from_bits_retain(li.lk_flags.get()).contains(LkFlags::FLOCK);
                let sleep = req.op == Opcode::Setlkw;
                fs.setlk(
                    ctx,
                    nodeid,
                    li.fh.get(),
                    li.owner.get(),
                    lock(&li.lk),
                    sleep,
                    flock,
                )
                .map(ok)?
            }
            Opcode::Access => {
                let (ai, _): (AccessIn, _) = self.arg(req, args)?;
                fs.access(ctx, nodeid, ai.mask.get()).map(ok)?
            }
            // Never sent on virtio-fs; on /dev/fuse, ENOSYS makes the kernel stop sending it.
            Opcode::Interrupt => return Err(Errno::ENOSYS),
            Opcode::Bmap => {
                let (bi, _): (BmapIn, _) = self.arg(req, args)?;
                let block = fs.bmap(ctx, nodeid, bi.blocksize.get(), bi.block.get())?;
                Reply::Ok(put(
                    out,
                    &BmapOut {
                        block: U64::new(block),
                    },
                ))
            }
            Opcode::Destroy => {
                let _guard = self.init_lock.lock().unwrap_or_else(|e| e.into_inner());
                if self.set_conn(None).is_some() {
                    fs.destroy();
                }
                Reply::Ok(&[])
            }
            Opcode::Ioctl => {
                let (ii, rest): (IoctlIn, _) = self.arg(req, args)?;
                if IoctlFlags::from_bits_retain(ii.flags.get()).contains(IoctlFlags::UNRESTRICTED) {
                    return Err(Errno::ENOSYS);
                }
                let in_size = usize::try_from(ii.in_size.get()).unwrap_or(usize::MAX);
                let input = rest.get(..in_size).ok_or_else(|| {
                    self.bad(format_args!("IOCTL input of {in_size} bytes overruns"));
                    Errno::EINVAL
                })?;
                let out_size = usize::try_from(ii.out_size.get()).unwrap_or(usize::MAX);
                let io_len = std::mem::size_of::<IoctlOut>();
                let room = out_size
                    .min(XATTR_SIZE_MAX)
                    .min(avail.saturating_sub(io_len));
                let buf = scratch_buf(scratch, io_len.saturating_add(room));
                let (head, data) = buf.split_at_mut(io_len);
                let (result, n) = fs.ioctl(
                    ctx,
                    nodeid,
                    ii.fh.get(),
                    ii.cmd.get(),
                    ii.arg.get(),
                    input,
                    data,
                )?;
                if n > data.len() {
                    return Err(Errno::EIO);
                }
                let io = IoctlOut {
                    result: I32::new(result),
                    ..IoctlOut::default()
                };
                head.copy_from_slice(io.as_bytes());
                let total = io_len.saturating_add(n);
                Reply::Ok(buf.get(..total).ok_or(Errno::EIO)?)
            }
            Opcode::Poll => {
                let (pi, _): (PollIn, _) = self.arg(req, args)?;
                let revents = fs.poll(
                    ctx,
                    nodeid,
                    pi.fh.get(),
                    pi.kh.get(),
                    pi.flags.get(),
                    pi.events.get(),
                )?;
                Reply::Ok(put(
                    out,
                    &PollOut {
                        revents: U32::new(revents),
                        padding: U32::new(0),
                    },
                ))
            }
            // The answer to a NOTIFY_RETRIEVE, which this server never sends: dropped.
            Opcode::NotifyReply => Reply::None,
            Opcode::Fallocate => {
                let (fi, _): (FallocateIn, _) = self.arg(req, args)?;
                fs.fallocate(
                    ctx,
                    nodeid,
                    fi.fh.get(),
                    fi.mode.get(),
                    fi.offset.get(),
                    fi.length.get(),
                )
                .map(ok)?
            }
            Opcode::Lseek => {
                let (li, _): (LseekIn, _) = self.arg(req, args)?;
                let off = fs.lseek(ctx, nodeid, li.fh.get(), li.offset.get(), li.whence.get())?;
                Reply::Ok(put(
                    out,
                    &LseekOut {
                        offset: U64::new(off),
                    },
                ))
            }
            Opcode::CopyFileRange | Opcode::CopyFileRange64 => {
                let (ci, _): (CopyFileRangeIn, _) = self.arg(req, args)?;
                let wide = req.op == Opcode::CopyFileRange64;
                let len = if wide {
                    ci.len.get()
                } else {
                    ci.len.get().min(u64::from(u32::MAX))
                };
                let n = fs
                    .copy_file_range(
                        ctx,
                        nodeid,
                        ci.fh_in.get(),
                        ci.off_in.get(),
                        ci.nodeid_out.get(),
                        ci.fh_out.get(),
                        ci.off_out.get(),
                        len,
                        ci.flags.get(),
                    )?
                    .min(len);
                if wide {
                    Reply::Ok(put(
                        out,
                        &CopyFileRangeOut {
                            bytes_copied: U64::new(n),
                        },
                    ))
                } else {
                    Reply::Ok(put(
                        out,
                        &WriteOut {
                            size: U32::new(u32::try_from(n).unwrap_or(u32::MAX)),
                            padding: U32::new(0),
                        },
                    ))
                }
            }
            Opcode::Setupmapping => {
                let (si, _): (SetupmappingIn, _) = self.arg(req, args)?;
                fs.setupmapping(
                    ctx,
                    nodeid,
                    si.fh.get(),
                    si.foffset.get(),
                    si.len.get(),
                    si.flags.get(),
                    si.moffset.get(),
                )
                .map(ok)?
            }
            Opcode::Removemapping => {
                let (ri, rest): (RemovemappingIn, _) = self.arg(req, args)?;
                let count = usize::try_from(ri.count.get()).unwrap_or(usize::MAX);
                let one = std::mem::size_of::<RemovemappingOne>();
                if count.saturating_mul(one) > rest.len() {
                    self.bad(format_args!(
                        "REMOVEMAPPING of {count} ranges in {} bytes",
                        rest.len()
                    ));
                    return Err(Errno::EINVAL);
                }
                let mut it = rest
                    .chunks_exact(one)
                    .take(count)
                    .filter_map(|c| RemovemappingOne::read_from_bytes(c).ok())
                    .map(|m| (m.moffset.get(), m.len.get()));
                fs.removemapping(ctx, &mut it).map(ok)?
            }
            Opcode::Syncfs => fs.syncfs(ctx, nodeid).map(ok)?,
            // Handled before dispatch.
            Opcode::Init
            | Opcode::Read
            | Opcode::Write
            | Opcode::Readdir
            | Opcode::Readdirplus
            | Opcode::CuseInit => return Err(Errno::ENOSYS),
        })
    }

    fn xattr_name<'a>(&self, req: &Request, args: &'a [u8]) -> Result<(&'a CStr, &'a [u8]), Errno> {
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
}

/// Decoded header fields a handler needs.
#[derive(Clone, Copy, Debug)]
struct Request {
    op: Opcode,
    nodeid: u64,
    ctx: Context,
    minor: u32,
    flags: InitFlags,
}

fn read_full<R: Reader + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let Some(dst) = buf.get_mut(got..) else { break };
        match r.read(dst) {
            Ok(0) => break,
            Ok(n) => got = got.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn copy_body<'b, R: Reader + ?Sized>(
    buf: &'b mut Vec<u8>,
    r: &mut R,
    len: usize,
) -> Result<&'b [u8], Error> {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let dst = buf.get_mut(..len).unwrap_or(&mut []);
    r.read_exact(dst).map_err(Error::Read)?;
    Ok(dst)
}

fn finish<W: Writer + ?Sized>(
    w: &mut W,
    start: usize,
    unique: u64,
    error: i32,
) -> Result<Outcome, Error> {
    let len = w.bytes_written().saturating_sub(start);
    let hdr = OutHeader {
        len: U32::new(u32::try_from(len).unwrap_or(u32::MAX)),
        error: I32::new(error),
        unique: U64::new(unique),
    };
    w.write_at(start, hdr.as_bytes()).map_err(Error::Write)?;
    Ok(Outcome::Replied { len })
}

/// Copies `v` into the front of `out`.
fn put<'o, T: IntoBytes + Immutable>(out: &'o mut [u8], v: &T) -> &'o [u8] {
    let bytes = v.as_bytes();
    match out.get_mut(..bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            dst
        }
        None => &[],
    }
}

/// Copies `a` then `b` into the front of `out`.
fn put2<'o, A: IntoBytes + Immutable, B: IntoBytes + Immutable>(
    out: &'o mut [u8],
    a: &A,
    b: &B,
) -> &'o [u8] {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let total = a.len().saturating_add(b.len());
    let Some(dst) = out.get_mut(..total) else {
        return &[];
    };
    let (da, db) = dst.split_at_mut(a.len());
    da.copy_from_slice(a);
    db.copy_from_slice(b);
    dst
}

/// `len` bytes of the reusable scratch buffer.
fn scratch_buf(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len {
        scratch.resize(len, 0);
    }
    scratch.get_mut(..len).unwrap_or(&mut [])
}

fn split_duration(d: Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
}

/// Two's-complement reinterpretation (the wire carries signed seconds in a u64).
fn wrap_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

fn attr(a: &FileAttr) -> Attr {
    Attr {
        ino: U64::new(a.ino),
        size: U64::new(a.size),
        blocks: U64::new(a.blocks),
        atime: U64::new(wrap_u64(a.atime.sec)),
        mtime: U64::new(wrap_u64(a.mtime.sec)),
        ctime: U64::new(wrap_u64(a.ctime.sec)),
        atimensec: U32::new(a.atime.nsec),
        mtimensec: U32::new(a.mtime.nsec),
        ctimensec: U32::new(a.ctime.nsec),
        mode: U32::new(a.mode),
        nlink: U32::new(a.nlink),
        uid: U32::new(a.uid),
        gid: U32::new(a.gid),
        rdev: U32::new(a.rdev),
        blksize: U32::new(a.blksize),
        flags: U32::new(a.flags.bits()),
    }
}

/// The wire form of an [`Entry`].
pub(crate) fn entry_out(e: &Entry) -> EntryOut {
    let (entry_secs, entry_nsecs) = split_duration(e.entry_timeout);
    let (attr_secs, attr_nsecs) = split_duration(e.attr_timeout);
    EntryOut {
        nodeid: U64::new(e.nodeid),
        generation: U64::new(e.generation),
        entry_valid: U64::new(entry_secs),
        attr_valid: U64::new(attr_secs),
        entry_valid_nsec: U32::new(entry_nsecs),
        attr_valid_nsec: U32::new(attr_nsecs),
        attr: attr(&e.attr),
    }
}

fn attr_out(a: &AttrReply) -> AttrOut {
    let (secs, nsecs) = split_duration(a.timeout);
    AttrOut {
        attr_valid: U64::new(secs),
        attr_valid_nsec: U32::new(nsecs),
        dummy: U32::new(0),
        attr: attr(&a.attr),
    }
}

fn open_out(o: &OpenReply) -> OpenOut {
    // PASSTHROUGH is never negotiated, so a backend's FOPEN_PASSTHROUGH cannot count.
    let flags = o.flags.difference(OpenOutFlags::PASSTHROUGH);
    OpenOut {
        fh: U64::new(o.fh),
        open_flags: U32::new(flags.bits()),
        backing_id: I32::new(0),
    }
}

fn lock(l: &FileLock) -> Lock {
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

fn set_attr(si: &SetattrIn) -> SetAttr {
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
        fh: has(SetattrValid::FH).then(|| si.fh.get()),
        kill_suidgid: has(SetattrValid::KILL_SUIDGID),
    }
}

/// Request data bounded to the WRITE's `size`.
struct LimitedReader<'r, R: ?Sized> {
    inner: &'r mut R,
    left: usize,
}

impl<R: Reader + ?Sized> ZeroCopyReader for LimitedReader<'_, R> {
    fn read_to(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        count: usize,
        off: u64,
    ) -> io::Result<usize> {
        let n = self.inner.read_to(fd, count.min(self.left), off)?;
        self.left = self.left.saturating_sub(n);
        Ok(n)
    }
}

/// Reply space bounded to the READ's `size`.
struct LimitedWriter<'w, W: ?Sized> {
    inner: &'w mut W,
    left: usize,
}

impl<W: Writer + ?Sized> ZeroCopyWriter for LimitedWriter<'_, W> {
    fn write_from(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        count: usize,
        off: u64,
    ) -> io::Result<usize> {
        let n = self.inner.write_from(fd, count.min(self.left), off)?;
        self.left = self.left.saturating_sub(n);
        Ok(n)
    }
}

/// The READDIR/READDIRPLUS sink: encodes each entry straight into the reply.
struct DirWriter<'w, W: ?Sized> {
    w: &'w mut W,
    left: usize,
    added: usize,
    bad_name: bool,
    io_error: Option<io::Error>,
}

const DIR_RECORD_MAX: usize = std::mem::size_of::<Direntplus>() + DIRENT_NAME_MAX + 8;

impl<W: Writer + ?Sized> DirWriter<'_, W> {
    fn valid(&mut self, name: &[u8]) -> bool {
        let ok = !name.is_empty()
            && name.len() <= DIRENT_NAME_MAX
            && !name.iter().any(|&b| b == b'/' || b == 0);
        if !ok {
            self.bad_name = true;
        }
        ok
    }

    fn emit(&mut self, parts: &[&[u8]], name: &[u8]) -> bool {
        let fixed: usize = parts.iter().map(|p| p.len()).sum();
        let Some(total) = fuse_abi::dirent::align8(fixed.saturating_add(name.len())) else {
            return false;
        };
        if total > self.left || self.io_error.is_some() {
            return false;
        }
        let mut rec = [0u8; DIR_RECORD_MAX];
        let mut at = 0usize;
        for part in parts.iter().chain(std::iter::once(&name)) {
            let end = at.saturating_add(part.len());
            let Some(dst) = rec.get_mut(at..end) else {
                return false;
            };
            dst.copy_from_slice(part);
            at = end;
        }
        let Some(record) = rec.get(..total) else {
            return false;
        };
        if let Err(e) = self.w.write_all(record) {
            self.io_error = Some(e);
            return false;
        }
        self.left = self.left.saturating_sub(total);
        self.added = self.added.saturating_add(1);
        true
    }
}

fn dirent(d: &DirEntry<'_>) -> Dirent {
    Dirent {
        ino: U64::new(d.ino),
        off: U64::new(d.offset),
        namelen: U32::new(u32::try_from(d.name.len()).unwrap_or(u32::MAX)),
        typ: U32::new(d.typ),
    }
}

impl<W: Writer + ?Sized> DirSink for DirWriter<'_, W> {
    fn add(&mut self, entry: DirEntry<'_>) -> bool {
        if !self.valid(entry.name) {
            return false;
        }
        let d = dirent(&entry);
        self.emit(&[d.as_bytes()], entry.name)
    }
}

impl<W: Writer + ?Sized> DirPlusSink for DirWriter<'_, W> {
    fn fits(&self, namelen: usize) -> bool {
        namelen <= DIRENT_NAME_MAX
            && fuse_abi::dirent::direntplus_len(namelen).is_some_and(|n| n <= self.left)
            && self.io_error.is_none()
    }

    fn add(&mut self, dirent_in: DirEntry<'_>, entry: &Entry) -> bool {
        if !self.valid(dirent_in.name) {
            return false;
        }
        let e = entry_out(entry);
        let d = dirent(&dirent_in);
        self.emit(&[e.as_bytes(), d.as_bytes()], dirent_in.name)
    }
}
