//! The host kernel's FUSE channel: mount a filesystem through `/dev/fuse` and serve it.
//!
//! ```no_run
//! # use std::path::Path;
//! # use virtiofs_transport::dev_fuse::{FuseMount, MountOptions, ChannelConfig, serve};
//! let options = MountOptions { allow_other: true, ..MountOptions::default() };
//! let mount = FuseMount::mount(Path::new("/mnt/x"), &options, ChannelConfig::default())?;
//! // `handle` calls the server: `server.handle_message(reader, writer)`.
//! serve(&mount, 4, |reader, writer| { /* ... */ })?;
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
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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

fn open_dev() -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(Error::OpenDevice)
}

/// One reader of a mount's requests: a descriptor and the buffers it reuses.
#[derive(Debug)]
pub struct FuseChannel {
    fd: File,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl FuseChannel {
    fn new(fd: File, config: ChannelConfig) -> Self {
        Self {
            fd,
            request: vec![0; config.request_buffer()],
            reply: vec![0; config.reply_buffer()],
        }
    }

    /// Reads the next request into the channel's buffer: `Ok(Some(len))`, or `Ok(None)` once
    /// the filesystem is unmounted (ENODEV). EINTR and EAGAIN are retried.
    ///
    /// # Errors
    ///
    /// [`Error::ReadRequest`] for any other error.
    pub fn receive(&mut self) -> Result<Option<usize>> {
        loop {
            match self.fd.read(&mut self.request) {
                Ok(n) => return Ok(Some(n)),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR | libc::EAGAIN) => {}
                    Some(libc::ENODEV) => return Ok(None),
                    _ => return Err(Error::ReadRequest(e)),
                },
            }
        }
    }

    /// Serves the request of `len` bytes last received: `handle` gets its reader and a writer
    /// for the reply; the reply is checked (length, unique, errno) and written with one
    /// `writev`. ENOENT on the write (interrupted request) is normal.
    ///
    /// # Errors
    ///
    /// A reply that breaks a rule (nothing is written), or [`Error::WriteReply`].
    pub fn reply<H>(&mut self, len: usize, handle: H) -> Result<CheckedCompletion>
    where
        H: FnOnce(&mut MemReader<'_>, &mut MemWriter<'_>),
    {
        let request = self.request.get(..len).unwrap_or(&self.request);
        let head = request.first_chunk::<16>().copied().map(reply::decode_head);
        let mut reader = MemReader::new(request);
        let mut writer = MemWriter::new(&mut self.reply);
        handle(&mut reader, &mut writer);
        let written = writer.bytes_written();
        let out = self.reply.first_chunk::<16>().copied();
        let checked = reply::check(head, written, out)?;
        if let Completion::Replied { len: used } = checked.completion() {
            let bytes = self.reply.get(..used).unwrap_or_default();
            match (&self.fd).write_vectored(&[IoSlice::new(bytes)]) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::WriteReply(e)),
            }
        }
        Ok(checked)
    }

    /// Serves requests until the filesystem is unmounted. A reply the check refuses is logged
    /// and dropped (the request stays pending in the kernel until unmount).
    ///
    /// # Errors
    ///
    /// Read or write errors other than the normal ones.
    pub fn run<H>(&mut self, handle: &H) -> Result<()>
    where
        H: Fn(&mut MemReader<'_>, &mut MemWriter<'_>) + ?Sized,
    {
        while let Some(len) = self.receive()? {
            match self.reply(len, |r, w| handle(r, w)) {
                Ok(_) => {}
                Err(Error::WriteReply(e)) => return Err(Error::WriteReply(e)),
                Err(e) => fuse_server::guest_warn!("/dev/fuse: reply refused: {e}"),
            }
        }
        Ok(())
    }
}

/// Serves `mount` with `threads` threads (at least one), each on its own channel (the first
/// on the mount's descriptor, the others cloned), until the filesystem is unmounted.
///
/// `handle` calls the server for each request: `|r, w| { server.handle_message(r, w); }`.
///
/// # Errors
///
/// The first channel error, or [`Error::Thread`] if a thread could not start or panicked.
pub fn serve<H>(mount: &FuseMount, threads: usize, handle: H) -> Result<()>
where
    H: Fn(&mut MemReader<'_>, &mut MemWriter<'_>) + Sync,
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
    H: Fn(&mut MemReader<'_>, &mut MemWriter<'_>) + Sync,
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
