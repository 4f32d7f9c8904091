//! The host kernel's FUSE channel: mount a filesystem through `/dev/fuse` and serve it.
//!
//! ```no_run
//! # use std::path::Path;
//! # use virtiofs_transport::dev_fuse::{FuseMount, MountOptions, ChannelConfig, serve};
//! let options = MountOptions { allow_other: true, ..MountOptions::default() };
//! let mount = FuseMount::mount(Path::new("/mnt/x"), &options, ChannelConfig::default())?;
//! // `handle` calls the server, `server.handle_message(reader, writer)`, and returns whether
//! // it left the request pending (`Completion::Pending`).
//! serve(&mount, 4, |reader, writer| { /* ... */ false })?;
//! # Ok::<(), virtiofs_transport::Error>(())
//! ```
//!
//! Each channel reads one request per `read()` into a buffer it reuses, large enough for the
//! largest WRITE the server negotiates (the kernel answers a smaller read with EINVAL), and
//! sends each reply with one `writev`. ENOENT on a reply (the request was interrupted or
//! aborted) and EINTR/EAGAIN on a read are normal; ENODEV on a read means the filesystem was
//! unmounted and ends the channel cleanly. Several threads serve one mount, each on its own
//! descriptor cloned with `FUSE_DEV_IOC_CLONE`. Dropping the [`FuseMount`] unmounts
//! (`umount2(MNT_DETACH)`).
//!
//! File data goes through the channel's host buffers: `/dev/fuse` has no guest memory, and
//! the kernel copies the reply out of the buffer anyway.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fuse_abi::Opcode;
use fuse_server::Completion;
use fuse_server::Writer as _;
use fuse_server::mem::{MemReader, MemWriter};

use crate::error::{Error, Result};
use crate::reply::{self, CheckedCompletion};
use crate::sys;

/// Room for the request headers in front of WRITE data (in header, write_in, extensions),
/// as libfuse reserves.
const HEADER_ROOM: usize = 4096;

/// How to mount: the options of `mount -t fuse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// The source shown in `/proc/mounts` (`fsname`).
    pub fsname: String,
    /// The filesystem type becomes `fuse.<subtype>` when set.
    pub subtype: Option<String>,
    /// `default_permissions`: the kernel checks permissions from the file mode and owner.
    pub default_permissions: bool,
    /// `allow_other`: users other than the mounter may access the filesystem. It implies
    /// `default_permissions` unless [`backend_checks_permissions`](Self::backend_checks_permissions):
    /// otherwise every host user could read whatever the daemon's credentials can.
    pub allow_other: bool,
    /// The backend checks the caller's permissions itself on every request (neither of this
    /// project's backends does: requests that do not create an inode run with the daemon's
    /// credentials). Only then may `allow_other` go without `default_permissions`.
    pub backend_checks_permissions: bool,
    /// `rootmode`: the root's file type and mode bits (`S_IFDIR | 0o755` by default).
    pub rootmode: u32,
    /// `user_id`: the mount's owner; the effective uid when `None`.
    pub user_id: Option<u32>,
    /// `group_id`: the mount's group; the effective gid when `None`.
    pub group_id: Option<u32>,
    /// `max_read`: the largest READ the kernel sends, if limited.
    pub max_read: Option<u32>,
    /// `MS_NOSUID | MS_NODEV` (set by default, as libfuse does).
    pub nosuid_nodev: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            fsname: "virtiofs-device".to_owned(),
            subtype: None,
            default_permissions: false,
            allow_other: false,
            backend_checks_permissions: false,
            rootmode: 0o040_755,
            user_id: None,
            group_id: None,
            max_read: None,
            nosuid_nodev: true,
        }
    }
}

impl MountOptions {
    /// Whether the mount gets `default_permissions`: asked for, or implied by `allow_other`
    /// when the backend does not check permissions itself. This is what the FUSE_INIT
    /// negotiation may rely on (`TransportFacts::dev_fuse`).
    pub fn kernel_checks_permissions(&self) -> bool {
        self.default_permissions || (self.allow_other && !self.backend_checks_permissions)
    }

    /// The `data` string of `mount(2)` for the descriptor `fd`.
    fn data(&self, fd: i32) -> String {
        let mut s = format!(
            "fd={fd},rootmode={:o},user_id={},group_id={}",
            self.rootmode,
            self.user_id.unwrap_or_else(sys::geteuid),
            self.group_id.unwrap_or_else(sys::getegid),
        );
        if self.kernel_checks_permissions() {
            s.push_str(",default_permissions");
        }
        if self.allow_other {
            s.push_str(",allow_other");
        }
        if let Some(max_read) = self.max_read {
            s.push_str(&format!(",max_read={max_read}"));
        }
        s
    }
}

/// Buffer sizes of a channel: they bound what the server may negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The largest `max_write` the server negotiates; each request buffer holds it plus headers.
    pub max_write: u32,
    /// The largest reply payload (READ, READDIR): 1 MiB covers the kernel's 256-page limit.
    pub max_reply: u32,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            max_write: 1 << 20,
            max_reply: 1 << 20,
        }
    }
}

impl ChannelConfig {
    /// The request buffer: `max_write` plus header room, at least `FUSE_MIN_READ_BUFFER`.
    pub fn request_buffer(&self) -> usize {
        (self.max_write as usize + HEADER_ROOM).max(fuse_abi::limits::MIN_READ_BUFFER)
    }

    /// The reply buffer: `max_reply` plus the out header and reply arguments.
    pub fn reply_buffer(&self) -> usize {
        self.max_reply as usize + HEADER_ROOM
    }
}

/// A FUSE filesystem mounted through `/dev/fuse`; unmounted (lazily) when dropped.
#[derive(Debug)]
pub struct FuseMount {
    dev: File,
    mountpoint: CString,
    config: ChannelConfig,
    mounted: AtomicBool,
}

impl FuseMount {
    /// Opens `/dev/fuse` and mounts a FUSE filesystem on `mountpoint`. Requests are served
    /// once [`serve`] (or a [`FuseChannel`]) runs; until the server answers INIT, accesses
    /// to the mount block.
    ///
    /// # Errors
    ///
    /// [`Error::OpenDevice`], [`Error::MountArgument`] (a NUL byte), or [`Error::Mount`]
    /// (EPERM without CAP_SYS_ADMIN, ENOENT, ...).
    pub fn mount(mountpoint: &Path, options: &MountOptions, config: ChannelConfig) -> Result<Self> {
        let dev = open_dev()?;
        let target = CString::new(mountpoint.as_os_str().as_bytes())
            .map_err(|_| Error::MountArgument("mount point contains a NUL byte"))?;
        let source = CString::new(options.fsname.as_bytes())
            .map_err(|_| Error::MountArgument("fsname contains a NUL byte"))?;
        let fstype = match &options.subtype {
            Some(sub) => format!("fuse.{sub}"),
            None => "fuse".to_owned(),
        };
        let fstype = CString::new(fstype)
            .map_err(|_| Error::MountArgument("subtype contains a NUL byte"))?;
        let data = CString::new(options.data(std::os::fd::AsRawFd::as_raw_fd(&dev)))
            .map_err(|_| Error::MountArgument("option contains a NUL byte"))?;
        let flags = if options.nosuid_nodev {
            libc::MS_NOSUID | libc::MS_NODEV
        } else {
            0
        };
        sys::mount(&source, &target, &fstype, flags, &data).map_err(Error::Mount)?;
        Ok(Self {
            dev,
            mountpoint: target,
            config,
            mounted: AtomicBool::new(true),
        })
    }

    /// The buffer sizes the channels use.
    pub fn config(&self) -> ChannelConfig {
        self.config
    }

    /// A channel on the mount's own descriptor (duplicated).
    ///
    /// # Errors
    ///
    /// [`Error::Clone`] if the descriptor cannot be duplicated.
    pub fn channel(&self) -> Result<FuseChannel> {
        let fd = self.dev.try_clone().map_err(Error::Clone)?;
        Ok(FuseChannel::new(fd, self.config))
    }

    /// A channel on a new descriptor cloned with `FUSE_DEV_IOC_CLONE`: it has its own queue of
    /// requests being processed, so threads do not contend on one descriptor.
    ///
    /// # Errors
    ///
    /// [`Error::OpenDevice`] or [`Error::Clone`].
    pub fn clone_channel(&self) -> Result<FuseChannel> {
        let fd = open_dev()?;
        sys::fuse_dev_clone(fd.as_fd(), self.dev.as_fd()).map_err(Error::Clone)?;
        Ok(FuseChannel::new(fd, self.config))
    }

    /// `threads` channels (at least one): the mount's own descriptor, then
    /// [`FuseMount::clone_channel`]s (which open `/dev/fuse`).
    ///
    /// # Errors
    ///
    /// As [`FuseMount::clone_channel`].
    pub fn channels(&self, threads: usize) -> Result<Vec<FuseChannel>> {
        let mut channels = Vec::with_capacity(threads.max(1));
        channels.push(self.channel()?);
        for _ in 1..threads {
            channels.push(self.clone_channel()?);
        }
        Ok(channels)
    }

    /// Gives up unmounting: the drop (and [`FuseMount::unmount`]) leave the mount alone. For a
    /// process that left the mount namespace the mount was made in, where the mount point
    /// names nothing (or something else).
    pub fn disown(&self) {
        self.mounted.store(false, Ordering::Release);
    }

    /// Detaches the mount (`umount2(MNT_DETACH)`); the channels then read ENODEV and end.
    /// Later calls, and the drop, do nothing.
    ///
    /// # Errors
    ///
    /// The `umount2` error (EINVAL if it was already unmounted from outside is ignored).
    pub fn unmount(&self) -> io::Result<()> {
        if !self.mounted.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        match sys::umount2(&self.mountpoint, libc::MNT_DETACH) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => other,
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            log::warn!("unmounting {:?}: {e}", self.mountpoint);
        }
    }
}

/// Opened non-blocking: a channel with parked requests waits in `poll(2)` for a request *or*
/// its next retry, and a read that another channel won answers EAGAIN instead of waiting.
fn open_dev() -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/fuse")
        .map_err(Error::OpenDevice)
}

/// Requests a channel keeps pending at most (a SETLKW whose lock is held); past it, a
/// sleeping lock request that cannot be granted now is answered ENOLCK.
pub const MAX_PARKED: usize = 256;
/// The first pause before a pending request is tried again, doubled after each attempt...
const FIRST_DELAY: Duration = Duration::from_millis(1);
/// ... up to this.
const MAX_DELAY: Duration = Duration::from_millis(200);

/// A pending request: a copy of its bytes, and when to try it again.
#[derive(Debug)]
struct Parked {
    request: Vec<u8>,
    delay: Duration,
    due: Instant,
}

/// One reader of a mount's requests: a descriptor and the buffers it reuses, and the requests
/// it keeps pending.
///
/// A request the server leaves pending ([`Completion::Pending`]: a SETLKW whose lock is held)
/// is copied aside and served again — at once after this channel served a request that may
/// free a lock (SETLK, SETLKW, FLUSH, RELEASE, RELEASEDIR, FORGET), and otherwise after a
/// pause of 1 ms doubled per attempt up to 200 ms (locks freed through another channel, or by
/// a host process) — while the channel goes on serving other requests. The kernel cannot
/// interrupt it: the server answers FUSE_INTERRUPT ENOSYS, so the kernel sends none (a
/// signalled waiter is woken by the grant, as with a local lock that only SIGKILL ends).
#[derive(Debug)]
pub struct FuseChannel {
    fd: File,
    request: Vec<u8>,
    reply: Vec<u8>,
    parked: Vec<Parked>,
}

/// What one read of the device found.
enum Received {
    Request(usize),
    Unmounted,
    /// Nothing before the deadline.
    Timeout,
}

impl FuseChannel {
    fn new(fd: File, config: ChannelConfig) -> Self {
        Self {
            fd,
            request: vec![0; config.request_buffer()],
            reply: vec![0; config.reply_buffer()],
            parked: Vec::new(),
        }
    }

    /// Reads the next request into the channel's buffer: `Ok(Some(len))`, or `Ok(None)` once
    /// the filesystem is unmounted (ENODEV). EINTR and EAGAIN are retried (waiting in
    /// `poll(2)` for the next request).
    ///
    /// # Errors
    ///
    /// [`Error::ReadRequest`] for any other error.
    pub fn receive(&mut self) -> Result<Option<usize>> {
        match self.receive_until(None)? {
            Received::Request(n) => Ok(Some(n)),
            Received::Unmounted | Received::Timeout => Ok(None),
        }
    }

    /// [`receive`](Self::receive), waiting no later than `deadline`.
    fn receive_until(&mut self, deadline: Option<Instant>) -> Result<Received> {
        loop {
            match self.fd.read(&mut self.request) {
                Ok(n) => return Ok(Received::Request(n)),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => {
                        if !self.wait_readable(deadline)? {
                            return Ok(Received::Timeout);
                        }
                    }
                    Some(libc::ENODEV) => return Ok(Received::Unmounted),
                    _ => return Err(Error::ReadRequest(e)),
                },
            }
        }
    }

    /// Waits until the device is readable (`true`) or `deadline` passes (`false`).
    fn wait_readable(&self, deadline: Option<Instant>) -> Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Rounded up to whole milliseconds: waking early would spin.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(nix::errno::Errno::EINTR) => Ok(true),
            Err(e) => Err(Error::ReadRequest(io::Error::from(e))),
        }
    }

    /// Requests this channel keeps pending now.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Serves the request of `len` bytes last received: `handle` gets its reader and a writer
    /// for the reply, and says whether the server left the request pending
    /// ([`Completion::Pending`]); the reply is checked (length, unique, errno) and written with
    /// one `writev`. ENOENT on the write (interrupted request) is normal. A pending request is
    /// kept and served again later (see [`FuseChannel`]), and `Ok(None)` comes back.
    ///
    /// # Errors
    ///
    /// A reply that breaks a rule (nothing is written), or [`Error::WriteReply`].
    pub fn reply<H>(&mut self, len: usize, handle: H) -> Result<Option<CheckedCompletion>>
    where
        H: FnOnce(&mut MemReader<'_>, &mut MemWriter<'_>) -> bool,
    {
        let request = self.request.get(..len).unwrap_or(&self.request);
        match answer(&self.fd, request, &mut self.reply, handle)? {
            Some(checked) => Ok(Some(checked)),
            None => {
                if self.parked.len() >= MAX_PARKED {
                    let unique = request
                        .get(8..16)
                        .map_or(0, |u| u64::from_le_bytes(u.try_into().unwrap_or_default()));
                    fuse_server::guest_warn!(
                        "/dev/fuse: {MAX_PARKED} requests pending already: ENOLCK"
                    );
                    send_error(&self.fd, unique, fuse_abi::Errno::ENOLCK)?;
                    return Ok(None);
                }
                let now = Instant::now();
                self.parked.push(Parked {
                    request: request.to_vec(),
                    delay: FIRST_DELAY,
                    due: now + FIRST_DELAY,
                });
                Ok(None)
            }
        }
    }

    /// Serves the pending requests that are due again (all of them if `all`): each is
    /// answered, or kept with a doubled pause.
    fn retry_parked<H>(&mut self, handle: &H, all: bool) -> Result<()>
    where
        H: Fn(&mut MemReader<'_>, &mut MemWriter<'_>) -> bool + ?Sized,
    {
        let now = Instant::now();
        let mut i = 0;
        while let Some(p) = self.parked.get_mut(i) {
            if !all && p.due > now {
                i += 1;
                continue;
            }
            match answer(&self.fd, &p.request, &mut self.reply, |r, w| handle(r, w)) {
                Ok(None) => {
                    p.delay = p.delay.saturating_mul(2).min(MAX_DELAY);
                    p.due = Instant::now() + p.delay;
                    i += 1;
                }
                Ok(Some(_)) => {
                    self.parked.swap_remove(i);
                }
                Err(Error::WriteReply(e)) => return Err(Error::WriteReply(e)),
                Err(e) => {
                    fuse_server::guest_warn!("/dev/fuse: reply refused: {e}");
                    self.parked.swap_remove(i);
                }
            }
        }
        Ok(())
    }

    /// Serves requests until the filesystem is unmounted. A reply the check refuses is logged
    /// and dropped (the request stays pending in the kernel until unmount). Pending requests
    /// are served again as [`FuseChannel`] says.
    ///
    /// # Errors
    ///
    /// Read or write errors other than the normal ones.
    pub fn run<H>(&mut self, handle: &H) -> Result<()>
    where
        H: Fn(&mut MemReader<'_>, &mut MemWriter<'_>) -> bool + ?Sized,
    {
        loop {
            let deadline = self.parked.iter().map(|p| p.due).min();
            let len = match self.receive_until(deadline)? {
                Received::Request(len) => len,
                Received::Unmounted => return Ok(()),
                Received::Timeout => {
                    self.retry_parked(handle, false)?;
                    continue;
                }
            };
            let frees = self
                .request
                .get(4..8)
                .and_then(|op| Opcode::try_from(u32::from_le_bytes(op.try_into().ok()?)).ok())
                .is_some_and(fuse_server::may_free_locks);
            match self.reply(len, |r, w| handle(r, w)) {
                Ok(_) => {}
                Err(Error::WriteReply(e)) => return Err(Error::WriteReply(e)),
                Err(e) => fuse_server::guest_warn!("/dev/fuse: reply refused: {e}"),
            }
            if !self.parked.is_empty() {
                self.retry_parked(handle, frees)?;
            }
        }
    }
}

/// Lets `handle` answer `request` into `reply` and writes the checked reply to `fd`; `None`
/// if the server left it pending (nothing written).
fn answer<H>(
    fd: &File,
    request: &[u8],
    reply: &mut [u8],
    handle: H,
) -> Result<Option<CheckedCompletion>>
where
    H: FnOnce(&mut MemReader<'_>, &mut MemWriter<'_>) -> bool,
{
    let head = request.first_chunk::<16>().copied().map(reply::decode_head);
    let mut reader = MemReader::new(request);
    let mut writer = MemWriter::new(reply);
    let pending = handle(&mut reader, &mut writer);
    let written = writer.bytes_written();
    if pending && written == 0 {
        return Ok(None);
    }
    let out = reply.first_chunk::<16>().copied();
    let checked = reply::check(head, written, out)?;
    if let Completion::Replied { len: used } = checked.completion() {
        let bytes = reply.get(..used).unwrap_or_default();
        write_reply(fd, bytes)?;
    }
    Ok(Some(checked))
}

fn write_reply(mut fd: &File, bytes: &[u8]) -> Result<()> {
    match fd.write_vectored(&[IoSlice::new(bytes)]) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(Error::WriteReply(e)),
    }
}

/// An error reply (the out header alone) to the request `unique`.
fn send_error(fd: &File, unique: u64, errno: fuse_abi::Errno) -> Result<()> {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16u32.to_le_bytes());
    out[4..8].copy_from_slice(&errno.to_wire().to_le_bytes());
    out[8..].copy_from_slice(&unique.to_le_bytes());
    write_reply(fd, &out)
}

/// Serves `mount` with `threads` threads (at least one), each on its own channel (the first
/// on the mount's descriptor, the others cloned), until the filesystem is unmounted.
///
/// `handle` calls the server for each request and says whether it left it pending:
/// `|r, w| matches!(server.handle_message(r, w), Ok(Completion::Pending))`.
///
/// # Errors
///
/// The first channel error, or [`Error::Thread`] if a thread could not start or panicked.
pub fn serve<H>(mount: &FuseMount, threads: usize, handle: H) -> Result<()>
where
    H: Fn(&mut MemReader<'_>, &mut MemWriter<'_>) -> bool + Sync,
{
    serve_channels(mount.channels(threads)?, handle)
}

/// [`serve`] on channels made beforehand ([`FuseMount::channels`]), e.g. before the process
/// gave up its view of `/dev` (a `pivot_root` or `chroot` sandbox).
///
/// # Errors
///
/// As [`serve`].
pub fn serve_channels<H>(channels: Vec<FuseChannel>, handle: H) -> Result<()>
where
    H: Fn(&mut MemReader<'_>, &mut MemWriter<'_>) -> bool + Sync,
{
    let handle = &handle;
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for (i, mut channel) in channels.into_iter().enumerate() {
            let worker = std::thread::Builder::new()
                .name(format!("fuse-{i}"))
                .spawn_scoped(s, move || channel.run(handle))
                .map_err(Error::Thread)?;
            workers.push(worker);
        }
        let mut result = Ok(());
        for worker in workers {
            let outcome = worker
                .join()
                .unwrap_or_else(|_| Err(Error::Thread(io::Error::other("panicked"))));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_data_string() {
        let o = MountOptions {
            default_permissions: true,
            allow_other: true,
            user_id: Some(1000),
            group_id: Some(100),
            max_read: Some(131072),
            ..MountOptions::default()
        };
        assert_eq!(
            o.data(5),
            "fd=5,rootmode=40755,user_id=1000,group_id=100,default_permissions,allow_other,\
             max_read=131072"
        );
    }

    #[test]
    fn allow_other_implies_default_permissions() {
        let o = MountOptions {
            allow_other: true,
            user_id: Some(0),
            group_id: Some(0),
            ..MountOptions::default()
        };
        assert!(o.kernel_checks_permissions());
        assert_eq!(
            o.data(3),
            "fd=3,rootmode=40755,user_id=0,group_id=0,default_permissions,allow_other"
        );
        let trusted = MountOptions {
            backend_checks_permissions: true,
            ..o.clone()
        };
        assert!(!trusted.kernel_checks_permissions());
        assert!(!trusted.data(3).contains("default_permissions"));
        let private = MountOptions {
            allow_other: false,
            ..o
        };
        assert!(!private.kernel_checks_permissions());
    }

    #[test]
    fn buffer_sizes() {
        let small = ChannelConfig {
            max_write: 0,
            max_reply: 4096,
        };
        assert_eq!(small.request_buffer(), fuse_abi::limits::MIN_READ_BUFFER);
        assert_eq!(ChannelConfig::default().request_buffer(), (1 << 20) + 4096);
    }
}
