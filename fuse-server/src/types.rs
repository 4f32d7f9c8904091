//! Validated arguments and typed replies that backends see. Wire structs stay in `fuse-abi`.

use std::time::Duration;

use fuse_abi::limits::NAME_MAX;
use fuse_abi::{AttrFlags, Errno, InitFlags, OpenOutFlags, SetattrValid};

/// A node id: the guest's name for an inode, handed out in an [`Entry`] and valid until the
/// lookup count the guest holds on it drops to zero (FORGET).
///
/// Not an inode number (`st_ino`, [`FileAttr::ino`]). The field is public: `NodeId(n)` wraps a
/// wire value, `id.0` unwraps it.
///
/// The three ids are distinct types, so one passed in another's place does not compile:
///
/// ```compile_fail
/// use fuse_server::{Handle, NodeId};
///
/// fn forget(nodeid: NodeId) {}
/// forget(Handle(3));
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The root directory (`FUSE_ROOT_ID`), valid for the connection's lifetime without a
    /// lookup.
    pub const ROOT: NodeId = NodeId(fuse_abi::ROOT_ID);

    /// The id of no node: in an [`Entry`], a negative (cached "no such name") entry.
    pub const NONE: NodeId = NodeId(0);
}

/// A handle (`fh`) on an open file or directory, handed out by OPEN, OPENDIR, CREATE or
/// TMPFILE in an [`OpenReply`] and valid until RELEASE or RELEASEDIR.
///
/// The field is public: `Handle(n)` wraps a wire value, `fh.0` unwraps it.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(pub u64);

/// The kernel's opaque identity of a POSIX lock owner (a file table), as sent with locks,
/// FLUSH, RELEASE and, when the kernel names one, READ and WRITE.
///
/// The field is public: `LockOwner(n)` wraps a wire value, `owner.0` unwraps it.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockOwner(pub u64);

/// Each id displays as its bare number (the wire value), for log lines.
macro_rules! display_as_number {
    ($($id:ident),*) => {$(
        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}

display_as_number!(NodeId, Handle, LockOwner);

/// A file name from the guest, validated: non-empty, at most Linux's [`NAME_MAX`] bytes (longer
/// gets ENAMETOOLONG), no `/`, no NUL.
///
/// `.` and `..` pass this check; operations that must not see them use
/// [`Name::is_dot_or_dotdot`] (the server rejects them where the kernel never sends them).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name<'a>(&'a [u8]);

impl<'a> Name<'a> {
    /// Validates `bytes` (without the terminating NUL).
    ///
    /// # Errors
    ///
    /// EINVAL for an empty name or one containing `/` or NUL; ENAMETOOLONG above [`NAME_MAX`].
    pub fn new(bytes: &'a [u8]) -> Result<Name<'a>, Errno> {
        if bytes.is_empty() || bytes.iter().any(|&b| b == b'/' || b == 0) {
            return Err(Errno::EINVAL);
        }
        if bytes.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(Name(bytes))
    }

    /// The bytes, without a NUL.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Whether this is `.` or `..`.
    pub fn is_dot_or_dotdot(&self) -> bool {
        self.0 == b"." || self.0 == b".."
    }
}

impl std::fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

/// Who is asking: the caller's ids as the kernel put them in the request header.
///
/// With ALLOW_IDMAP in force, `uid`/`gid` are [`fuse_abi::INVALID_UIDGID`] on every request
/// that does not create an inode; a backend declaring ALLOW_IDMAP must cope with that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The request's `unique`.
    pub unique: u64,
    /// Caller's fsuid.
    pub uid: u32,
    /// Caller's fsgid.
    pub gid: u32,
    /// Caller's pid (tgid).
    pub pid: u32,
}

/// Extra context of a creation request (MKNOD, MKDIR, SYMLINK, CREATE, TMPFILE).
#[derive(Clone, Copy, Debug, Default)]
pub struct CreateContext<'a> {
    /// The umask to apply when DONT_MASK is in force (0 otherwise: the kernel applied it).
    pub umask: u32,
    /// The security context to set on the new inode (SECURITY_CTX), if the kernel sent one.
    pub security_ctx: Option<SecurityContext<'a>>,
    /// The caller's supplementary group for the new inode's group (CREATE_SUPP_GROUP).
    pub supp_gid: Option<u32>,
}

/// An LSM security context attached to a creation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityContext<'a> {
    /// The xattr name, e.g. `security.selinux`.
    pub name: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// A timestamp: seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds, 0..1_000_000_000.
    pub nsec: u32,
}

/// File attributes, the backend's answer to "what is this inode".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileAttr {
    /// Inode number the guest sees in `st_ino`.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
    /// Type and permission bits, Linux values.
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number, Linux `new_encode_dev` encoding.
    pub rdev: u32,
    /// Preferred I/O size.
    pub blksize: u32,
    /// FUSE_ATTR_* flags (SUBMOUNT, DAX).
    pub flags: AttrFlags,
}

/// Reply to LOOKUP and the creation operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The node id the guest will use; [`NodeId::NONE`] with an `entry_timeout` is a cached
    /// negative entry.
    pub nodeid: NodeId,
    /// Generation: (nodeid, generation) is unique over the filesystem's lifetime.
    pub generation: u64,
    /// Attributes.
    pub attr: FileAttr,
    /// How long the guest may cache the attributes.
    pub attr_timeout: Duration,
    /// How long the guest may cache the name.
    pub entry_timeout: Duration,
}

/// Reply to GETATTR and SETATTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttrReply {
    /// Attributes.
    pub attr: FileAttr,
    /// How long the guest may cache them.
    pub timeout: Duration,
}

/// Reply to STATX: the wire struct is rich enough to be the domain type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatxReply {
    /// The statx result.
    pub statx: fuse_abi::Statx,
    /// How long the guest may cache it.
    pub timeout: Duration,
}

/// Reply to OPEN, OPENDIR (and the open part of CREATE/TMPFILE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenReply {
    /// The handle the guest passes back.
    pub fh: Handle,
    /// FOPEN_* flags.
    pub flags: OpenOutFlags,
}

/// What a SETATTR changes: only the fields whose `FATTR_*` bit was set are `Some`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// The raw valid mask, for flags without a field here (LOCKOWNER, KILL_SUIDGID).
    pub valid: SetattrValid,
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeOrNow>,
    /// New modification time.
    pub mtime: Option<TimeOrNow>,
    /// New change time (7.23+).
    pub ctime: Option<Timespec>,
    /// The handle the change came through (FATTR_FH).
    pub fh: Option<Handle>,
    /// Clear suid/sgid as part of the change (FATTR_KILL_SUIDGID).
    pub kill_suidgid: bool,
}

/// A timestamp to set, or "now" (FATTR_ATIME_NOW / FATTR_MTIME_NOW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOrNow {
    /// A given time.
    Time(Timespec),
    /// The current time, taken by the host.
    Now,
}

/// Filesystem statistics, the reply to STATFS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks of `frsize`.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
}

/// A POSIX lock range, Linux values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lock {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive; `u64::MAX` or `i64::MAX` as u64 for "to the end").
    pub end: u64,
    /// `F_RDLCK` (0), `F_WRLCK` (1), `F_UNLCK` (2).
    pub typ: u32,
    /// Owning process.
    pub pid: u32,
}

/// One directory entry handed to a [`DirSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// Inode number (`st_ino`, not a node id).
    pub ino: u64,
    /// The offset the guest passes to continue *after* this entry.
    pub offset: u64,
    /// `DT_*` type, Linux values.
    pub typ: u32,
    /// The name, no NUL.
    pub name: &'a [u8],
}

/// Where READDIR entries go: encoded straight into the reply buffer.
pub trait DirSink {
    /// Adds an entry. Returns `false` (and adds nothing) when it does not fit; the backend
    /// then stops and the reply carries what was added.
    fn add(&mut self, entry: DirEntry<'_>) -> bool;
}

/// Where READDIRPLUS entries go. Each added entry counts as a LOOKUP for the guest.
pub trait DirPlusSink {
    /// Whether an entry with a name of `namelen` bytes still fits. A backend checks this
    /// *before* looking the entry up, so no lookup count is taken for an entry that is not sent.
    fn fits(&self, namelen: usize) -> bool;

    /// Adds an entry with its [`Entry`]. Returns `false` (and adds nothing) when it does not
    /// fit; after a `true` from [`fits`](Self::fits) for the same name length it always fits.
    fn add(&mut self, dirent: DirEntry<'_>, entry: &Entry) -> bool;
}

/// Reply to GETXATTR and LISTXATTR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrReply {
    /// The size of the value (when the guest asked with size 0).
    Size(u32),
    /// The value was copied into the buffer; this many bytes.
    Data(usize),
}

/// What negotiation settled, as the backend needs to know it (handed to
/// [`FileSystem::init`](crate::FileSystem::init)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The negotiated protocol minor.
    pub minor: u32,
    /// The flags in force (the reply's flags).
    pub flags: InitFlags,
    /// The negotiated maximum write size.
    pub max_write: u32,
}
