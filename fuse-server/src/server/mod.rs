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
//!    backend's zero-copy [`ZeroCopyReader`](crate::ZeroCopyReader)) into a per-thread reusable [`ServerBuffers`],
//!    decodes the fixed argument per the negotiated minor and validates names;
//! 4. it calls the backend and encodes the reply so that `out_header.len` is exactly the bytes
//!    written: a fixed-size reply (an error, ATTR, ENTRY, OPEN, …) is the header and the body
//!    in one write; a variable-size body built in the scratch buffer follows its header in a
//!    second write; a body streamed into the reply in place (READ, READDIR) gets a zero header
//!    first, filled in with [`Writer::write_at`] once the body's length is known. Errors are
//!    always in −511..=−1.
//!
//! # Requests the server handles itself
//!
//! | opcode | handling |
//! |---|---|
//! | INIT | [`negotiate`](crate::negotiate::negotiate), then [`FileSystem::init`]; a second INIT re-initialises the backend and succeeds |
//! | DESTROY | [`FileSystem::destroy`], empty reply; later requests get EIO until the next INIT |
//! | FORGET, BATCH_FORGET | to the backend, **no reply** ([`Completion::NoReply`]) |
//! | INTERRUPT | ENOSYS, header only (never sent on virtio-fs; on `/dev/fuse` the kernel then stops sending interrupts; requests are never interrupted) |
//! | NOTIFY_REPLY | ignored, **no reply** (the server never sends NOTIFY_RETRIEVE) |
//! | SETLKW the backend answers EAGAIN | **nothing written**, [`Completion::Pending`]: the transport keeps it and asks again |
//! | CUSE_INIT | ENOSYS |
//! | IOCTL with FUSE_IOCTL_UNRESTRICTED | ENOSYS (CUSE only) |
//!
//! # Buffers
//!
//! No allocation per request in steady state: each worker thread owns a [`ServerBuffers`]
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
//!
//! # Layout
//!
//! One handler per opcode, grouped by the protocol's areas; every handler decodes its
//! argument, calls the backend and returns a `HandlerReply` that the framing layer
//! sends. READ and READDIR stream their body straight into the reply and return
//! `HandlerReply::Written`; INIT and DESTROY change the connection state under the INIT lock.
//!
//! | file | what |
//! |---|---|
//! | `conn.rs` | the negotiated connection state, read per request without a lock |
//! | `frame.rs` | the in header checks, the body copy, the reply kinds, the out header |
//! | `decode.rs` | fixed arguments, names, xattr names, creation extensions, SETATTR |
//! | `encode.rs` | the wire forms of entries, attributes, handles |
//! | `init.rs` | INIT, DESTROY |
//! | `entry.rs` | LOOKUP, FORGET, attributes, the namespace operations, CREATE, TMPFILE |
//! | `data.rs` | OPEN, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE, DAX mappings |
//! | `dir.rs` | OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR |
//! | `xattr.rs` | SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR |
//! | `lock.rs` | GETLK, SETLK, SETLKW |
//! | `misc.rs` | STATFS, ACCESS, INTERRUPT, BMAP, IOCTL, POLL, NOTIFY_REPLY, SYNCFS |

mod conn;
mod counts;
mod data;
mod decode;
mod dir;
mod encode;
mod entry;
mod frame;
mod init;
mod lock;
mod misc;
mod xattr;

use std::cell::RefCell;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use fuse_abi::{InitFlags, Opcode};

use crate::filesystem::FileSystem;
use crate::io::{Reader, Writer};
use crate::negotiate::{NegotiationConfig, TransportFacts};

use conn::{Conn, ConnCell};
pub use counts::OpcodeCounts;
use frame::{Args, Fail, HandlerReply, OUT_HEADER_LEN, Out};

/// How a server is set up: the transport's facts and the operator's negotiation choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// What the transport guarantees and limits.
    pub transport: TransportFacts,
    /// Policy for FUSE_INIT.
    pub negotiation: NegotiationConfig,
}

/// What became of a request: the one answer of [`Server::handle_message`], and the one type
/// for it in the stack (a transport that checks the reply wraps this, it does not redefine it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// A reply of `len` bytes was written (`len` == `out_header.len` == the bytes written).
    Replied {
        /// The reply's length: the used length to report.
        len: usize,
    },
    /// No reply was written: the request takes none (FORGET, BATCH_FORGET, NOTIFY_REPLY), or
    /// it is too short to name (no `unique`).
    NoReply,
    /// Nothing was written and the request is not done: a SETLKW whose lock is held (the
    /// backend answered EAGAIN to a sleeping request, see
    /// [`FileSystem::setlk`]). The transport keeps the request (on
    /// virtio-fs its chain stays owned by the device) and serves it again later, from the
    /// start; it must not report a used length for it now.
    Pending,
}

/// Whether a completed request of `opcode` may have freed a lock that a
/// [`Completion::Pending`] request waits for (an unlock, a close, a forgotten node): a transport
/// serves its pending requests again after one, besides on its own backoff timer.
pub fn may_free_locks(opcode: fuse_abi::Opcode) -> bool {
    use fuse_abi::Opcode as O;
    matches!(
        opcode,
        O::Setlk | O::Setlkw | O::Flush | O::Release | O::Releasedir | O::Forget
    )
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

/// The server's per-worker buffers: reusable request and reply scratch space. They grow to the
/// largest request seen (bounded by the negotiated maximum) and are never shrunk.
#[derive(Debug, Default)]
pub struct ServerBuffers {
    req: Vec<u8>,
    reply: Vec<u8>,
}

impl ServerBuffers {
    /// Empty buffers; they allocate on first use.
    pub const fn new() -> ServerBuffers {
        ServerBuffers {
            req: Vec::new(),
            reply: Vec::new(),
        }
    }
}

thread_local! {
    static BUFFER: RefCell<ServerBuffers> = const { RefCell::new(ServerBuffers::new()) };
}

/// The FUSE server: decodes requests, calls the backend `F`, encodes replies.
///
/// `Send + Sync`: share it between workers with an `Arc`.
#[derive(Debug)]
pub struct Server<F> {
    fs: F,
    config: ServerConfig,
    /// What INIT negotiated: read on every request without a lock, written under `init_lock`.
    conn: ConnCell,
    init_lock: Mutex<()>,
    bad_requests: AtomicU64,
    served: OpcodeCounts,
}

impl<F: FileSystem> Server<F> {
    /// A server for backend `fs`.
    pub fn new(fs: F, config: ServerConfig) -> Server<F> {
        Server {
            fs,
            config,
            conn: ConnCell::new(),
            init_lock: Mutex::new(()),
            bad_requests: AtomicU64::new(0),
            served: OpcodeCounts::new(),
        }
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

    /// Requests served so far, per opcode (those past the header checks).
    pub fn served(&self) -> &OpcodeCounts {
        &self.served
    }

    /// What INIT negotiated, or `None` before INIT (and after DESTROY or a reset).
    pub fn negotiated(&self) -> Option<(u32, InitFlags)> {
        self.conn().map(|c| (c.minor, c.flags))
    }

    /// Device reset: releases the backend's state (if a connection was set up) and forgets the
    /// negotiation; the next request must be INIT.
    pub fn reset(&self) {
        let guard = self.init_lock.lock().unwrap_or_else(|e| e.into_inner());
        let was = self.conn.store(&guard, None);
        if was.is_some() {
            self.fs.destroy();
        }
    }

    /// Handles one request, using this thread's reusable [`ServerBuffers`].
    ///
    /// # Errors
    ///
    /// See [`Error`]: the reply space is too small for any reply, or the reader or the writer
    /// failed. A malformed request is not an error: it gets an errno reply.
    pub fn handle_message<R, W>(&self, r: &mut R, w: &mut W) -> Result<Completion, Error>
    where
        R: Reader + ?Sized,
        W: Writer + ?Sized,
    {
        BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => self.handle_message_with(&mut buf, r, w),
            // Re-entered from a backend on the same thread: use a fresh buffer.
            Err(_) => self.handle_message_with(&mut ServerBuffers::new(), r, w),
        })
    }

    /// Handles one request with an explicit per-worker buffer.
    ///
    /// # Errors
    ///
    /// As [`handle_message`](Self::handle_message).
    pub fn handle_message_with<R, W>(
        &self,
        buf: &mut ServerBuffers,
        r: &mut R,
        w: &mut W,
    ) -> Result<Completion, Error>
    where
        R: Reader + ?Sized,
        W: Writer + ?Sized,
    {
        let start = w.bytes_written();
        let head = frame::read_head(r)?;
        let (req, ext_len) = match self.check_head(&head, r.remaining()) {
            Ok(checked) => checked,
            Err(None) => return Ok(Completion::NoReply),
            Err(Some(e)) => return self.send(w, start, &head, HandlerReply::Err(e)),
        };
        self.served.add(req.op);
        let ServerBuffers {
            req: req_buf,
            reply: scratch,
        } = buf;
        let body_len = r.remaining();
        // WRITE data stays in the reader for the backend's zero-copy reader.
        let body = if req.op == Opcode::Write {
            &[][..]
        } else {
            frame::copy_body(req_buf, r, body_len)?
        };
        let (args, ext) = body.split_at(body.len().saturating_sub(ext_len));
        let a = Args {
            req,
            body,
            args,
            ext,
            body_len,
            ext_len,
        };
        let mut fixed = [0u8; frame::FIXED_REPLY_MAX];
        let out = Out {
            fixed: &mut fixed,
            scratch,
            avail: w.available().saturating_sub(OUT_HEADER_LEN),
        };
        let reply = match self.dispatch(&a, out, r, w, start) {
            Ok(reply) => reply,
            Err(Fail::Errno(e)) => HandlerReply::Err(e),
            Err(Fail::Io(e)) => return Err(e),
        };
        self.send(w, start, &head, reply)
    }

    /// One handler per opcode; each returns the reply it wants sent.
    fn dispatch<'o, R, W>(
        &self,
        a: &Args<'o>,
        out: Out<'o>,
        r: &mut R,
        w: &mut W,
        start: usize,
    ) -> Result<HandlerReply<'o>, Fail>
    where
        R: Reader + ?Sized,
        W: Writer + ?Sized,
    {
        use Opcode as O;
        Ok(match a.req.op {
            O::Init => self.init(a, out),
            O::Destroy => self.destroy(),
            O::Lookup => self.lookup(a, out)?,
            O::Forget => self.forget(a)?,
            O::BatchForget => self.batch_forget(a)?,
            O::Getattr => self.getattr(a, out)?,
            O::Setattr => self.setattr(a, out)?,
            O::Statx => self.statx(a, out)?,
            O::Readlink => self.readlink(a, out)?,
            O::Symlink => self.symlink(a, out)?,
            O::Mknod => self.mknod(a, out)?,
            O::Mkdir => self.mkdir(a, out)?,
            O::Unlink => self.unlink(a)?,
            O::Rmdir => self.rmdir(a)?,
            O::Rename | O::Rename2 => self.rename(a)?,
            O::Link => self.link(a, out)?,
            O::Create => self.create(a, out)?,
            O::Tmpfile => self.tmpfile(a, out)?,
            O::Open => self.open(a, out)?,
            O::Read => self.read(a, w, start)?,
            O::Write => self.write(a, out, r)?,
            O::Flush => self.flush(a)?,
            O::Release => self.release(a)?,
            O::Fsync => self.fsync(a)?,
            O::Fallocate => self.fallocate(a)?,
            O::Lseek => self.lseek(a, out)?,
            O::CopyFileRange | O::CopyFileRange64 => self.copy_file_range(a, out)?,
            O::Setupmapping => self.setupmapping(a)?,
            O::Removemapping => self.removemapping(a)?,
            O::Opendir => self.opendir(a, out)?,
            O::Readdir | O::Readdirplus => self.readdir(a, w)?,
            O::Releasedir => self.releasedir(a)?,
            O::Fsyncdir => self.fsyncdir(a)?,
            O::Setxattr => self.setxattr(a)?,
            O::Getxattr | O::Listxattr => self.getxattr(a, out)?,
            O::Removexattr => self.removexattr(a)?,
            O::Getlk => self.getlk(a, out)?,
            O::Setlk | O::Setlkw => self.setlk(a)?,
            O::Statfs => self.statfs(a, out)?,
            O::Access => self.access(a)?,
            O::Interrupt => self.interrupt(),
            O::Bmap => self.bmap(a, out)?,
            O::Ioctl => self.ioctl(a, out)?,
            O::Poll => self.poll(a, out)?,
            O::NotifyReply => self.notify_reply(),
            O::Syncfs => self.syncfs(a)?,
            // Refused by `check_head`.
            O::CuseInit => HandlerReply::Err(fuse_abi::Errno::ENOSYS),
        })
    }

    fn conn(&self) -> Option<Conn> {
        self.conn.load()
    }

    fn bad(&self, what: std::fmt::Arguments<'_>) {
        let n = self.bad_requests.fetch_add(1, Ordering::Relaxed);
        crate::guest_warn!("malformed FUSE request (#{}): {what}", n.saturating_add(1));
    }
}
