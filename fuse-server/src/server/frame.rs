//! Header and framing: the in header checks, the request body, the reply kinds a handler
//! returns, and the out header written last.

use std::io;

use fuse_abi::{Errno, I32, InHeader, InHeaderPrefix, InitFlags, Opcode, OutHeader, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use super::{Completion, Error, Server};
use crate::filesystem::FileSystem;
use crate::io::{Reader, Writer};
use crate::negotiate::EXTENSIONS_MINOR;
use crate::types::{Context, NodeId};

pub(super) const IN_HEADER_LEN: usize = std::mem::size_of::<InHeader>();
pub(super) const OUT_HEADER_LEN: usize = std::mem::size_of::<OutHeader>();
/// A request shorter than `len`, `opcode`, `unique` cannot be answered.
const UNIQUE_END: usize = std::mem::size_of::<InHeaderPrefix>();
/// The largest request accepted before INIT (INIT is 104 bytes).
const PRE_INIT_MAX_LEN: usize = 4096;
/// The fixed reply buffer every handler gets: the largest fixed-size reply (ENTRY + OPEN for
/// CREATE, 144 bytes) fits with room to spare.
pub(super) const FIXED_REPLY_MAX: usize = 512;

/// Decoded header fields a handler needs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
    pub(super) op: Opcode,
    pub(super) nodeid: NodeId,
    pub(super) ctx: Context,
    pub(super) minor: u32,
    pub(super) flags: InitFlags,
}

/// What a handler decodes: the request and its bytes.
pub(super) struct Args<'o> {
    pub(super) req: Request,
    /// The whole body after the in header (arguments and extensions); empty for WRITE, whose
    /// data stays in the reader.
    pub(super) body: &'o [u8],
    /// The body without the request extensions.
    pub(super) args: &'o [u8],
    /// The request extensions (7.38+).
    pub(super) ext: &'o [u8],
    /// Bytes of the body, copied or not.
    pub(super) body_len: usize,
    /// Bytes of request extensions at the end of the body.
    pub(super) ext_len: usize,
}

/// Where a handler puts a reply body it builds.
pub(super) struct Out<'o> {
    /// For fixed-size replies.
    pub(super) fixed: &'o mut [u8; FIXED_REPLY_MAX],
    /// The worker's reusable buffer, for variable-size replies (READLINK, GETXATTR, IOCTL).
    pub(super) scratch: &'o mut Vec<u8>,
    /// Reply space after the out header.
    pub(super) avail: usize,
}

/// What a handler answers, typed and not yet encoded: `Server::send` frames it (out header,
/// body) and turns it into the request's [`Completion`](super::Completion).
pub(super) enum HandlerReply<'o> {
    /// An error: the out header alone.
    Err(Errno),
    /// Success with this body (possibly empty).
    Ok(&'o [u8]),
    /// The handler reserved the out header at the reply's start and wrote the body in place
    /// (READ's zero-copy data, READDIR's streamed entries); the header gets this error (0 or
    /// a negative errno) and the length written.
    Written {
        /// The wire error.
        error: i32,
    },
    /// No reply at all (FORGET, BATCH_FORGET, NOTIFY_REPLY).
    None,
    /// Not done: ask again later ([`Completion::Pending`](super::Completion::Pending)).
    Pending,
}

/// Why a handler did not produce a [`HandlerReply`]: an errno for the guest, or an I/O failure of
/// the transport that ends the request without a reply.
pub(super) enum Fail {
    Errno(Errno),
    Io(Error),
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Fail {
        Fail::Errno(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Io(e)
    }
}

/// The in header as read, before any check.
pub(super) struct Head {
    hdr: InHeader,
    got: usize,
    /// FORGET-type requests never get a reply, not even an error.
    no_reply: bool,
}

/// Copies the in header out of the request (never a reference into guest memory).
pub(super) fn read_head<R: Reader + ?Sized>(r: &mut R) -> Result<Head, Error> {
    let mut bytes = [0u8; IN_HEADER_LEN];
    let got = read_full(r, &mut bytes).map_err(Error::Read)?;
    let hdr = InHeader::read_from_bytes(&bytes).unwrap_or_default();
    let no_reply = matches!(
        Opcode::try_from(hdr.opcode.get()),
        Ok(Opcode::Forget | Opcode::BatchForget | Opcode::NotifyReply)
    );
    Ok(Head { hdr, got, no_reply })
}

impl<F: FileSystem> Server<F> {
    /// Checks the header against the request and the connection. `Err(None)`: no reply is
    /// possible; `Err(Some(e))`: answer `e`. On success, the request and the bytes of request
    /// extensions.
    pub(super) fn check_head(
        &self,
        head: &Head,
        body_len: usize,
    ) -> Result<(Request, usize), Option<Errno>> {
        let Head { hdr, got, .. } = head;
        let got = *got;
        if got < IN_HEADER_LEN {
            self.bad(format_args!(
                "request of {got} bytes is shorter than its header"
            ));
            if got < UNIQUE_END {
                // No `unique`: a reply could not name the request, so there is none.
                return Err(None);
            }
            return Err(Some(Errno::EINVAL));
        }
        let len = usize::try_from(hdr.len.get()).unwrap_or(usize::MAX);
        if len < IN_HEADER_LEN || Some(len) != IN_HEADER_LEN.checked_add(body_len) {
            self.bad(format_args!(
                "header len {len} disagrees with the {} bytes of the request",
                IN_HEADER_LEN.saturating_add(body_len)
            ));
            return Err(Some(Errno::EINVAL));
        }
        let op = match Opcode::try_from(hdr.opcode.get()) {
            Ok(Opcode::CuseInit) | Err(_) => return Err(Some(Errno::ENOSYS)),
            Ok(op) => op,
        };
        let conn = self.conn();
        if conn.is_none() && op != Opcode::Init {
            self.bad(format_args!("{op} before INIT"));
            return Err(Some(Errno::EIO));
        }
        let max_len = conn.map_or(PRE_INIT_MAX_LEN, |c| c.max_request_len);
        if len > max_len {
            self.bad(format_args!(
                "{op} of {len} bytes exceeds the maximum {max_len}"
            ));
            return Err(Some(Errno::EINVAL));
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
            return Err(Some(Errno::EINVAL));
        }
        let ctx = Context {
            unique: hdr.unique.get(),
            uid: hdr.uid.get(),
            gid: hdr.gid.get(),
            pid: hdr.pid.get(),
        };
        let req = Request {
            op,
            nodeid: NodeId(hdr.nodeid.get()),
            ctx,
            minor,
            flags,
        };
        Ok((req, ext_len))
    }

    /// Sends `reply` to the request `head` (nothing for FORGET-type requests).
    pub(super) fn send<W: Writer + ?Sized>(
        &self,
        w: &mut W,
        start: usize,
        head: &Head,
        reply: HandlerReply<'_>,
    ) -> Result<Completion, Error> {
        if head.no_reply {
            return Ok(Completion::NoReply);
        }
        let unique = head.hdr.unique.get();
        let (error, body): (i32, &[u8]) = match reply {
            HandlerReply::Err(e) => (e.to_wire(), &[]),
            HandlerReply::Ok(body) => (0, body),
            HandlerReply::Written { error } => return finish(w, start, unique, error),
            HandlerReply::None => return Ok(Completion::NoReply),
            HandlerReply::Pending => return Ok(Completion::Pending),
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
        // The body's length is known: the header is final before anything is written.
        let len = OUT_HEADER_LEN.saturating_add(body.len());
        let hdr = out_header(len, unique, error);
        let mut frame = [0u8; OUT_HEADER_LEN + FIXED_REPLY_MAX];
        if let Some(frame) = frame.get_mut(..len) {
            // A fixed-size reply: header and body in one write, one copy into the transport.
            let (head, dst) = frame.split_at_mut(OUT_HEADER_LEN);
            head.copy_from_slice(hdr.as_bytes());
            dst.copy_from_slice(body);
            w.write_all(frame).map_err(Error::Write)?;
        } else {
            // A variable-size body (READLINK, GETXATTR, IOCTL) stays where the handler built it.
            w.write_all(hdr.as_bytes()).map_err(Error::Write)?;
            w.write_all(body).map_err(Error::Write)?;
        }
        Ok(Completion::Replied { len })
    }

    /// Reserves the out header for a reply whose body is written in place
    /// ([`HandlerReply::Written`]).
    pub(super) fn reserve_header<W: Writer + ?Sized>(&self, w: &mut W) -> Result<(), Error> {
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

/// Copies the request body into the worker's reusable buffer.
pub(super) fn copy_body<'b, R: Reader + ?Sized>(
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

/// Writes the out header at `start`, with `len` the bytes written since.
fn finish<W: Writer + ?Sized>(
    w: &mut W,
    start: usize,
    unique: u64,
    error: i32,
) -> Result<Completion, Error> {
    let len = w.bytes_written().saturating_sub(start);
    w.write_at(start, out_header(len, unique, error).as_bytes())
        .map_err(Error::Write)?;
    Ok(Completion::Replied { len })
}

/// The out header of a `len`-byte reply.
fn out_header(len: usize, unique: u64, error: i32) -> OutHeader {
    OutHeader {
        len: U32::new(u32::try_from(len).unwrap_or(u32::MAX)),
        error: I32::new(error),
        unique: U64::new(unique),
    }
}

/// `len` bytes of the reusable scratch buffer.
pub(super) fn scratch_buf(scratch: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if scratch.len() < len {
        scratch.resize(len, 0);
    }
    scratch.get_mut(..len).unwrap_or(&mut [])
}
