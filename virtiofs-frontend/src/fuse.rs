//! FUSE requests as the Linux kernel sends them over virtio-fs, and a parser for the replies.
//!
//! A [`Request`] is an opcode, a node id, the caller's credentials and the argument bytes that
//! follow the 40-byte `fuse_in_header`; [`Request::encode`] adds the header. The typed
//! constructors build the argument structs of [`fuse_abi`], so a test writes
//! `Request::create(parent, "f", libc::O_RDWR, 0o644)` rather than bytes — and a hostile test
//! can still change any field, or send bytes no kernel would.
//!
//! Credentials default to uid 0, gid 0 (a guest root: the strongest claim a guest can make).

use fuse_abi::{
    AttrOut, CreateIn, Dirent, EntryOut, Errno, GetattrIn, InHeader, InitFlags, InitIn, InitOut,
    MkdirIn, MknodIn, Opcode, OpenIn, OpenOut, OutHeader, ReadIn, ReleaseIn, U16, U32, U64,
    WriteIn, WriteOut,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::Error;

/// Size of `fuse_in_header`.
pub const IN_HEADER_LEN: usize = size_of::<InHeader>();
/// Size of `fuse_out_header`.
pub const OUT_HEADER_LEN: usize = size_of::<OutHeader>();

/// One FUSE request, without its `unique` (the queue assigns it when sending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The opcode as sent (a raw value lets a test send an unknown one).
    pub opcode: u32,
    /// The node the request is about (`ROOT_ID` for the share's root).
    pub nodeid: u64,
    /// The caller's uid.
    pub uid: u32,
    /// The caller's gid.
    pub gid: u32,
    /// The caller's pid.
    pub pid: u32,
    /// Everything after the header: the argument struct, names, data.
    pub args: Vec<u8>,
    /// Overrides `fuse_in_header.len` (normally the true length).
    pub claimed_len: Option<u32>,
}

/// Appends `name` and its terminating NUL.
fn push_name(args: &mut Vec<u8>, name: &[u8]) {
    args.extend_from_slice(name);
    args.push(0);
}

fn u32_of(v: i32) -> u32 {
    u32::from_ne_bytes(v.to_ne_bytes())
}

impl Request {
    /// A request with `args` after the header, from uid 0 / gid 0 / pid 1.
    pub fn new(opcode: Opcode, nodeid: u64, args: Vec<u8>) -> Request {
        Request {
            opcode: opcode as u32,
            nodeid,
            uid: 0,
            gid: 0,
            pid: 1,
            args,
            claimed_len: None,
        }
    }

    /// The bytes on the wire: `fuse_in_header` (with `unique`) then the arguments.
    pub fn encode(&self, unique: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(IN_HEADER_LEN + self.args.len());
        self.encode_into(unique, &mut out);
        out
    }

    /// [`encode`](Self::encode) into a reused buffer (cleared first).
    pub fn encode_into(&self, unique: u64, out: &mut Vec<u8>) {
        let true_len = u32::try_from(IN_HEADER_LEN + self.args.len()).unwrap_or(u32::MAX);
        let header = InHeader {
            len: U32::new(self.claimed_len.unwrap_or(true_len)),
            opcode: U32::new(self.opcode),
            unique: U64::new(unique),
            nodeid: U64::new(self.nodeid),
            uid: U32::new(self.uid),
            gid: U32::new(self.gid),
            pid: U32::new(self.pid),
            total_extlen: U16::new(0),
            padding: U16::new(0),
        };
        out.clear();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.args);
    }

    /// FUSE_INIT offering protocol 7.`minor` and `flags`.
    pub fn init_with(minor: u32, flags: InitFlags) -> Request {
        let (flags, flags2) = flags.to_wire();
        let arg = InitIn {
            major: U32::new(fuse_abi::KERNEL_VERSION),
            minor: U32::new(minor),
            max_readahead: U32::new(128 * 1024),
            flags: U32::new(flags),
            flags2: U32::new(flags2),
            unused: Default::default(),
        };
        Request::new(Opcode::Init, 0, arg.as_bytes().to_vec())
    }

    /// FUSE_INIT as a current kernel sends it: 7.46, asynchronous reads, READDIRPLUS off.
    pub fn init() -> Request {
        Request::init_with(
            fuse_abi::KERNEL_MINOR_VERSION,
            InitFlags::ASYNC_READ | InitFlags::BIG_WRITES | InitFlags::MAX_PAGES,
        )
    }

    /// LOOKUP of `name` in `parent`.
    pub fn lookup(parent: u64, name: &str) -> Request {
        let mut args = Vec::new();
        push_name(&mut args, name.as_bytes());
        Request::new(Opcode::Lookup, parent, args)
    }

    /// GETATTR of `node` (no file handle).
    pub fn getattr(node: u64) -> Request {
        Request::new(
            Opcode::Getattr,
            node,
            GetattrIn::default().as_bytes().to_vec(),
        )
    }

    /// MKNOD of `name` in `parent` with `mode` (file type bits included) and `rdev` in the
    /// kernel's `new_encode_dev` form (see [`encode_dev`]).
    pub fn mknod(parent: u64, name: &str, mode: u32, rdev: u32) -> Request {
        let arg = MknodIn {
            mode: U32::new(mode),
            rdev: U32::new(rdev),
            umask: U32::new(0),
            padding: U32::new(0),
        };
        let mut args = arg.as_bytes().to_vec();
        push_name(&mut args, name.as_bytes());
        Request::new(Opcode::Mknod, parent, args)
    }

    /// MKDIR of `name` in `parent`.
    pub fn mkdir(parent: u64, name: &str, mode: u32) -> Request {
        let arg = MkdirIn {
            mode: U32::new(mode),
            umask: U32::new(0),
        };
        let mut args = arg.as_bytes().to_vec();
        push_name(&mut args, name.as_bytes());
        Request::new(Opcode::Mkdir, parent, args)
    }

    /// CREATE of `name` in `parent`: open(2) `flags` (O_CREAT is implied by the opcode; the
    /// kernel adds it) and `mode` (permission bits; S_IFREG is added).
    pub fn create(parent: u64, name: &str, flags: i32, mode: u32) -> Request {
        let arg = CreateIn {
            flags: U32::new(u32_of(flags | libc::O_CREAT)),
            mode: U32::new(fuse_abi::mode::S_IFREG | mode),
            umask: U32::new(0),
            open_flags: U32::new(0),
        };
        let mut args = arg.as_bytes().to_vec();
        push_name(&mut args, name.as_bytes());
        Request::new(Opcode::Create, parent, args)
    }

    /// OPEN of `node` with open(2) `flags`.
    pub fn open(node: u64, flags: i32) -> Request {
        let arg = OpenIn {
            flags: U32::new(u32_of(flags)),
            open_flags: U32::new(0),
        };
        Request::new(Opcode::Open, node, arg.as_bytes().to_vec())
    }

    /// OPENDIR of `node`.
    pub fn opendir(node: u64) -> Request {
        let arg = OpenIn {
            flags: U32::new(u32_of(libc::O_RDONLY | libc::O_DIRECTORY)),
            open_flags: U32::new(0),
        };
        Request::new(Opcode::Opendir, node, arg.as_bytes().to_vec())
    }

    fn read_like(opcode: Opcode, node: u64, fh: u64, offset: u64, size: u32) -> Request {
        let arg = ReadIn {
            fh: U64::new(fh),
            offset: U64::new(offset),
            size: U32::new(size),
            ..ReadIn::default()
        };
        Request::new(opcode, node, arg.as_bytes().to_vec())
    }

    /// READ of `size` bytes at `offset` through handle `fh`.
    pub fn read(node: u64, fh: u64, offset: u64, size: u32) -> Request {
        Request::read_like(Opcode::Read, node, fh, offset, size)
    }

    /// READDIR of up to `size` bytes of entries from directory offset `offset`.
    pub fn readdir(node: u64, fh: u64, offset: u64, size: u32) -> Request {
        Request::read_like(Opcode::Readdir, node, fh, offset, size)
    }

    /// READDIRPLUS of up to `size` bytes of entries from directory offset `offset`.
    pub fn readdirplus(node: u64, fh: u64, offset: u64, size: u32) -> Request {
        Request::read_like(Opcode::Readdirplus, node, fh, offset, size)
    }

    /// WRITE of `data` at `offset` through handle `fh`.
    pub fn write(node: u64, fh: u64, offset: u64, data: &[u8]) -> Request {
        let arg = WriteIn {
            fh: U64::new(fh),
            offset: U64::new(offset),
            size: U32::new(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            ..WriteIn::default()
        };
        let mut args = arg.as_bytes().to_vec();
        args.extend_from_slice(data);
        Request::new(Opcode::Write, node, args)
    }

    fn release_like(opcode: Opcode, node: u64, fh: u64) -> Request {
        let arg = ReleaseIn {
            fh: U64::new(fh),
            ..ReleaseIn::default()
        };
        Request::new(opcode, node, arg.as_bytes().to_vec())
    }

    /// RELEASE of handle `fh`.
    pub fn release(node: u64, fh: u64) -> Request {
        Request::release_like(Opcode::Release, node, fh)
    }

    /// RELEASEDIR of directory handle `fh`.
    pub fn releasedir(node: u64, fh: u64) -> Request {
        Request::release_like(Opcode::Releasedir, node, fh)
    }

    /// FSYNC of handle `fh` (data and metadata).
    pub fn fsync(node: u64, fh: u64) -> Request {
        let arg = fuse_abi::FsyncIn {
            fh: U64::new(fh),
            ..fuse_abi::FsyncIn::default()
        };
        Request::new(Opcode::Fsync, node, arg.as_bytes().to_vec())
    }

    /// UNLINK of `name` in `parent`.
    pub fn unlink(parent: u64, name: &str) -> Request {
        let mut args = Vec::new();
        push_name(&mut args, name.as_bytes());
        Request::new(Opcode::Unlink, parent, args)
    }

    /// FORGET of `nlookup` references to `node` (no reply; the hiprio queue's opcode).
    pub fn forget(node: u64, nlookup: u64) -> Request {
        let arg = fuse_abi::ForgetIn {
            nlookup: U64::new(nlookup),
        };
        Request::new(Opcode::Forget, node, arg.as_bytes().to_vec())
    }

    /// The same request from other credentials.
    pub fn with_creds(mut self, uid: u32, gid: u32) -> Request {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// The same request with a `fuse_in_header.len` that lies.
    pub fn with_claimed_len(mut self, len: u32) -> Request {
        self.claimed_len = Some(len);
        self
    }
}

/// The kernel's `new_encode_dev(MKDEV(major, minor))`: the `rdev` MKNOD carries.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// `(major, minor)` of a host `st_rdev` (glibc's `dev_t` layout).
pub fn split_host_dev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (
        u32::try_from(major).unwrap_or(u32::MAX),
        u32::try_from(minor & 0xffff_ffff).unwrap_or(u32::MAX),
    )
}

/// One reply as the daemon wrote it into the request's writable buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The used length the daemon reported in the used ring.
    pub used_len: u32,
    /// The bytes the daemon wrote, as many as `used_len` says (at most the buffers' size).
    pub bytes: Vec<u8>,
}

/// One READDIR entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// The offset to continue from after this entry.
    pub off: u64,
    /// `DT_*` type.
    pub typ: u32,
    /// The name's bytes.
    pub name: Vec<u8>,
}

impl Reply {
    /// The `fuse_out_header`.
    ///
    /// # Errors
    ///
    /// [`Error::BadReply`] when fewer than 16 bytes were written.
    pub fn header(&self) -> Result<OutHeader, Error> {
        OutHeader::read_from_prefix(&self.bytes)
            .map(|(h, _)| h)
            .map_err(|_| Error::BadReply(format!("{} bytes, no header", self.bytes.len())))
    }

    /// The errno of an error reply; `None` for success or a reply without a header.
    pub fn errno(&self) -> Option<Errno> {
        let error = self.header().ok()?.error.get();
        (error < 0).then(|| Errno::from_raw(error.saturating_neg()))
    }

    /// The payload after the header of a successful reply.
    ///
    /// # Errors
    ///
    /// [`Error::Errno`] for an error reply, [`Error::BadReply`] when there is no header or its
    /// `len` disagrees with the used length.
    pub fn body(&self) -> Result<&[u8], Error> {
        let header = self.header()?;
        if header.error.get() < 0 {
            return Err(Error::Errno(Errno::from_raw(
                header.error.get().saturating_neg(),
            )));
        }
        if header.len.get() != self.used_len {
            return Err(Error::BadReply(format!(
                "out_header.len {} but used length {}",
                header.len.get(),
                self.used_len
            )));
        }
        Ok(self.bytes.get(OUT_HEADER_LEN..).unwrap_or_default())
    }

    /// The payload's leading struct.
    ///
    /// # Errors
    ///
    /// As [`body`](Self::body), and [`Error::BadReply`] when the payload is too short.
    pub fn parse<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<T, Error> {
        let body = self.body()?;
        T::read_from_prefix(body)
            .map(|(v, _)| v)
            .map_err(|_| Error::BadReply(format!("{} payload bytes", body.len())))
    }

    /// The reply to INIT.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn init(&self) -> Result<InitOut, Error> {
        self.parse()
    }

    /// The reply to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn entry(&self) -> Result<EntryOut, Error> {
        self.parse()
    }

    /// The reply to GETATTR and SETATTR.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn attr(&self) -> Result<AttrOut, Error> {
        self.parse()
    }

    /// The reply to OPEN and OPENDIR.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn open(&self) -> Result<OpenOut, Error> {
        self.parse()
    }

    /// The reply to CREATE: the new entry, then the open handle.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn create(&self) -> Result<(EntryOut, OpenOut), Error> {
        let body = self.body()?;
        let short = || Error::BadReply(format!("{} payload bytes for CREATE", body.len()));
        let (entry, rest) = EntryOut::read_from_prefix(body).map_err(|_| short())?;
        let (open, _) = OpenOut::read_from_prefix(rest).map_err(|_| short())?;
        Ok((entry, open))
    }

    /// The reply to WRITE.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn write(&self) -> Result<WriteOut, Error> {
        self.parse()
    }

    /// The data of a READ reply.
    ///
    /// # Errors
    ///
    /// As [`body`](Self::body).
    pub fn data(&self) -> Result<&[u8], Error> {
        self.body()
    }

    /// The entries of a READDIR reply.
    ///
    /// # Errors
    ///
    /// As [`body`](Self::body), and [`Error::BadReply`] for an entry that runs past the end.
    pub fn dirents(&self) -> Result<Vec<DirEntry>, Error> {
        let mut rest = self.body()?;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let bad = || Error::BadReply(format!("truncated dirent after {} entries", out.len()));
            let (d, tail) = Dirent::read_from_prefix(rest).map_err(|_| bad())?;
            let namelen = usize::try_from(d.namelen.get()).map_err(|_| bad())?;
            let name = tail.get(..namelen).ok_or_else(bad)?.to_vec();
            let total = fuse_abi::dirent::dirent_len(namelen).ok_or_else(bad)?;
            out.push(DirEntry {
                ino: d.ino.get(),
                off: d.off.get(),
                typ: d.typ.get(),
                name,
            });
            rest = rest.get(total..).unwrap_or_default();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_header_carries_length_unique_and_opcode() {
        let req = Request::lookup(1, "abc");
        let bytes = req.encode(77);
        assert_eq!(bytes.len(), IN_HEADER_LEN + 4);
        let (h, rest) = InHeader::read_from_prefix(&bytes).unwrap();
        assert_eq!(h.len.get(), 44);
        assert_eq!(h.opcode.get(), Opcode::Lookup as u32);
        assert_eq!(h.unique.get(), 77);
        assert_eq!(rest, b"abc\0");
        let lying = req.with_claimed_len(4096).encode(1);
        assert_eq!(
            InHeader::read_from_prefix(&lying).unwrap().0.len.get(),
            4096
        );
    }

    #[test]
    fn dev_numbers_round_trip_like_the_kernel() {
        assert_eq!(encode_dev(1, 5), 0x105);
        assert_eq!(
            encode_dev(7, 300),
            (300 & 0xff) | (7 << 8) | ((300 & !0xff) << 12)
        );
        assert_eq!(split_host_dev(0x105), (1, 5));
        assert_eq!(split_host_dev(0x0010_0701), (7, 0x101));
    }

    fn reply(error: i32, payload: &[u8]) -> Reply {
        let len = u32::try_from(OUT_HEADER_LEN + payload.len()).unwrap();
        let header = OutHeader {
            len: U32::new(len),
            error: fuse_abi::I32::new(error),
            unique: U64::new(9),
        };
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(payload);
        Reply {
            used_len: len,
            bytes,
        }
    }

    #[test]
    fn error_replies_give_their_errno_and_no_body() {
        let r = reply(-libc::ENFILE, &[]);
        assert_eq!(r.errno(), Some(Errno::ENFILE));
        assert!(matches!(r.body(), Err(Error::Errno(e)) if e == Errno::ENFILE));
        assert_eq!(reply(0, &[]).errno(), None);
    }

    #[test]
    fn a_reply_whose_length_disagrees_is_refused() {
        let mut r = reply(0, &[0; 16]);
        r.used_len = 16;
        assert!(matches!(r.body(), Err(Error::BadReply(_))));
    }

    #[test]
    fn dirents_are_parsed_with_padding() {
        let mut payload = vec![0u8; 128];
        let a = fuse_abi::dirent::encode_dirent(&mut payload, 5, 1, 8, b"a").unwrap();
        let b = fuse_abi::dirent::encode_dirent(&mut payload[a..], 6, 2, 4, b"bcdefghij").unwrap();
        payload.truncate(a + b);
        let entries = reply(0, &payload).dirents().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, b"a");
        assert_eq!(entries[1].ino, 6);
        assert_eq!(entries[1].name, b"bcdefghij");
    }
}
