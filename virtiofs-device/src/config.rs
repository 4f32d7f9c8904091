//! The virtio-fs configuration space and the device's validated configuration.
//!
//! The config space (virtio 1.2 §5.11.4, Linux `struct virtio_fs_config`) is the 36-byte tag,
//! NUL-padded, followed by `num_request_queues` as a little-endian u32. The Linux driver fails
//! its probe with EINVAL for an empty tag or one containing `'\n'`, and for zero request queues
//! (`reference/kernel-fuse.md` §4); [`DeviceConfig::build`](DeviceConfigBuilder::build) refuses
//! all of them before a guest can see them.

use fuse_server::{NegotiationConfig, ServerConfig, TransportFacts};
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};

/// Bytes of the tag field in the config space.
pub const TAG_LEN: usize = 36;

/// The most request queues the device offers. vhost-user-backend maps queues to worker threads
/// with a 64-bit mask per thread, and the hiprio queue takes one index.
pub const MAX_REQUEST_QUEUES: u16 = 63;

/// The default (and largest useful) queue size: Linux caps requests at 256 pages, so chains never
/// need more than 260 descriptors, but QEMU's `vhost-user-fs-pci` defaults to 128 and is often set
/// to 1024.
pub const DEFAULT_QUEUE_SIZE: u16 = 1024;

/// The largest queue size virtio split rings allow.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Pool workers per request queue unless configured: enough that a few requests that block
/// (FSYNC, SETLKW, ...) run side by side while the serving thread goes on with the rest.
pub const DEFAULT_WORKERS_PER_QUEUE: usize = 4;

/// The most pool workers per request queue.
pub const MAX_WORKERS_PER_QUEUE: usize = 64;

/// The longest poll window ([`DeviceConfigBuilder::poll_us`]), in microseconds: a serving
/// thread that spins longer than this would cost a core and delay the vhost-user epoll
/// thread's exit event for more than a millisecond.
pub const MAX_POLL_US: u32 = 1000;

/// `struct virtio_fs_config`: what the driver reads from the device's config space.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct VirtioFsConfig {
    /// The tag the guest mounts by (`mount -t virtiofs TAG /mnt`), NUL-padded.
    pub tag: [u8; TAG_LEN],
    /// Number of request queues (the hiprio queue is not counted).
    pub num_request_queues: U32,
}
const _: () = assert!(size_of::<VirtioFsConfig>() == 40);

/// A validated virtio-fs tag: 1 to 36 bytes, no `'\n'`, no NUL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// Validates `tag`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTag`] for an empty tag, one longer than 36 bytes, or one with a newline
    /// or NUL.
    pub fn new(tag: &str) -> Result<Tag> {
        let reason = if tag.is_empty() {
            "it is empty"
        } else if tag.len() > TAG_LEN {
            "it is longer than 36 bytes"
        } else if tag.contains('\n') {
            "it contains a newline"
        } else if tag.contains('\0') {
            "it contains a NUL byte"
        } else {
            return Ok(Tag(tag.to_owned()));
        };
        Err(Error::InvalidTag {
            tag: tag.to_owned(),
            reason,
        })
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The device's validated configuration: what the guest sees and the queue limits.
///
/// ```
/// use virtiofs_device::DeviceConfig;
/// let config = DeviceConfig::builder("share").request_queues(2).build()?;
/// assert_eq!(config.num_queues(), 3);
/// assert_eq!(&config.config_space().tag[..5], b"share");
/// # Ok::<(), virtiofs_device::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    tag: Tag,
    request_queues: u16,
    queue_size: u16,
    workers_per_queue: usize,
    inline: bool,
    poll_us: u32,
}

impl DeviceConfig {
    /// Starts a configuration for `tag`, with one request queue of [`DEFAULT_QUEUE_SIZE`].
    pub fn builder(tag: &str) -> DeviceConfigBuilder {
        DeviceConfigBuilder {
            tag: tag.to_owned(),
            request_queues: 1,
            queue_size: DEFAULT_QUEUE_SIZE,
            workers_per_queue: DEFAULT_WORKERS_PER_QUEUE,
            inline: false,
            poll_us: 0,
        }
    }

    /// The tag.
    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    /// Number of request queues (at least 1).
    pub fn request_queues(&self) -> u16 {
        self.request_queues
    }

    /// Number of virtqueues: hiprio plus the request queues.
    pub fn num_queues(&self) -> usize {
        usize::from(self.request_queues).saturating_add(1)
    }

    /// The largest queue size the device accepts (a power of two).
    pub fn queue_size(&self) -> u16 {
        self.queue_size
    }

    /// Pool workers per request queue (the hiprio queue has one): the thread that kicks a
    /// queue serves it, and hands requests that may block and the excess of a burst to them;
    /// they run concurrently and complete out of order.
    pub fn workers_per_queue(&self) -> usize {
        self.workers_per_queue
    }

    /// Whether the in-process device serves requests on the thread that calls
    /// [`VirtioFs::process_queue`](crate::VirtioFs::process_queue), with no worker threads
    /// (see [`DeviceConfigBuilder::inline`]).
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// The poll window of the request queues, in microseconds (0: no polling; see
    /// [`DeviceConfigBuilder::poll_us`]).
    pub fn poll_us(&self) -> u32 {
        self.poll_us
    }

    /// The poll window as a duration ([`Duration::ZERO`](std::time::Duration::ZERO): off).
    pub fn poll(&self) -> std::time::Duration {
        std::time::Duration::from_micros(u64::from(self.poll_us))
    }

    /// The server configuration for this device: the virtio-fs transport facts (the guest
    /// kernel always applies `default_permissions`, SUBMOUNTS may be offered, no DAX window,
    /// chains up to the queue size) composed with the operator's negotiation policy.
    ///
    /// A policy that leaves `max_background` at 0 (the kernel's default of 12) gets
    /// [`background_limit`](Self::background_limit) instead, and a `congestion_threshold` of
    /// three quarters of it: with 12, a guest keeping 16 direct I/Os in flight (ASYNC_DIO makes
    /// them background requests) sleeps in `io_submit` until one completes, although the
    /// queue has room for them all.
    pub fn server_config(&self, negotiation: NegotiationConfig) -> ServerConfig {
        let mut negotiation = negotiation;
        if negotiation.max_background == 0 {
            let limit = self.background_limit();
            negotiation.max_background = limit;
            negotiation.congestion_threshold = limit / 4 * 3;
        }
        ServerConfig {
            transport: TransportFacts::virtio_fs(self.queue_size),
            negotiation,
        }
    }

    /// The `max_background` the device replies to INIT by default: the queue size, what one
    /// request queue holds when each request takes one descriptor (INDIRECT_DESC); beyond it,
    /// the driver would only hold requests back itself (ENOSPC from the ring, retried later).
    pub fn background_limit(&self) -> u16 {
        self.queue_size
    }

    /// The config space as the driver reads it.
    pub fn config_space(&self) -> VirtioFsConfig {
        let mut tag = [0u8; TAG_LEN];
        for (dst, src) in tag.iter_mut().zip(self.tag.as_str().bytes()) {
            *dst = src;
        }
        VirtioFsConfig {
            tag,
            num_request_queues: U32::new(u32::from(self.request_queues)),
        }
    }

    /// Reads `len` bytes of the config space at `offset`, as a transport's config read does.
    /// Bytes beyond the 40-byte config space are left out (the result is shorter), which is
    /// what vhost-user's GET_CONFIG expects for an out-of-range read.
    pub fn read_config(&self, offset: usize, len: usize) -> Vec<u8> {
        let space = self.config_space();
        let bytes = space.as_bytes();
        let end = offset.saturating_add(len).min(bytes.len());
        bytes
            .get(offset..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }
}

/// Builder for [`DeviceConfig`]; [`build`](Self::build) validates.
#[derive(Clone, Debug)]
#[must_use]
pub struct DeviceConfigBuilder {
    tag: String,
    request_queues: u16,
    queue_size: u16,
    workers_per_queue: usize,
    inline: bool,
    poll_us: u32,
}

impl DeviceConfigBuilder {
    /// Sets the number of request queues (1..=[`MAX_REQUEST_QUEUES`]).
    pub fn request_queues(mut self, n: u16) -> Self {
        self.request_queues = n;
        self
    }

    /// Sets the largest queue size: a power of two in 64..=32768. A request with `n` data pages
    /// needs `n + 4` descriptors, so the size bounds the negotiated `max_pages`.
    pub fn queue_size(mut self, size: u16) -> Self {
        self.queue_size = size;
        self
    }

    /// Sets the pool workers per request queue (1..=[`MAX_WORKERS_PER_QUEUE`]; default
    /// [`DEFAULT_WORKERS_PER_QUEUE`]). A request that may block (fsync, a lock that waits)
    /// occupies one of them while the kicking thread serves the rest of the queue.
    pub fn workers_per_queue(mut self, n: usize) -> Self {
        self.workers_per_queue = n;
        self
    }

    /// Serve only on the caller's thread (default `false`): the in-process device starts no
    /// pool, and [`VirtioFs::process_queue`](crate::VirtioFs::process_queue) serves every
    /// request it takes off the ring, in ring order, before it returns — requests that may
    /// block too (a slow request then holds up the ones behind it, and the call lasts as long
    /// as the guest keeps the ring full). For a VMM that wants every request on a thread of its
    /// own choosing, or a deterministic test. [`workers_per_queue`](Self::workers_per_queue) is
    /// then unused; the vhost-user backend always has a pool.
    pub fn inline(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
    }

    /// Sets the poll window of the request queues, in microseconds (0..=[`MAX_POLL_US`];
    /// default 0, off). With a window, the thread that kicked a request queue and served it
    /// does not return as soon as it finds the ring empty: it keeps reading the avail index
    /// (`std::hint::spin_loop` between reads, no system call) for up to this long, with the
    /// driver told not to kick meanwhile (VRING_USED_F_NO_NOTIFY, or with EVENT_IDX the avail
    /// event left behind), and serves a request that arrives at once, which starts a new
    /// window. When the window ends it re-enables notifications and looks at the ring once
    /// more before it returns. That saves the driver's kick and the device thread's wake-up
    /// for a request that follows within the window, at the cost of up to one window of a
    /// core's time after each burst.
    ///
    /// Whoever kicks polls: the vhost-user epoll thread of the queue, the in-process device's
    /// kick thread, and a VMM thread inside [`VirtioFs::process_queue`](crate::VirtioFs::process_queue)
    /// (which then returns up to a window later). A kick that finds the ring empty does not
    /// poll, nor does the hiprio queue (FORGETs wait for no one). The window stops early when
    /// the queue is stopped (reset, GET_VRING_BASE, disconnect).
    pub fn poll_us(mut self, us: u32) -> Self {
        self.poll_us = us;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTag`], [`Error::InvalidRequestQueues`], [`Error::InvalidQueueSize`],
    /// [`Error::InvalidWorkers`], [`Error::InvalidPoll`].
    pub fn build(self) -> Result<DeviceConfig> {
        let tag = Tag::new(&self.tag)?;
        if self.request_queues == 0 || self.request_queues > MAX_REQUEST_QUEUES {
            return Err(Error::InvalidRequestQueues(self.request_queues));
        }
        if !self.queue_size.is_power_of_two() || self.queue_size < 64 {
            return Err(Error::InvalidQueueSize(self.queue_size));
        }
        if self.workers_per_queue == 0 || self.workers_per_queue > MAX_WORKERS_PER_QUEUE {
            return Err(Error::InvalidWorkers(self.workers_per_queue));
        }
        if self.poll_us > MAX_POLL_US {
            return Err(Error::InvalidPoll(self.poll_us));
        }
        Ok(DeviceConfig {
            tag,
            request_queues: self.request_queues,
            queue_size: self.queue_size,
            workers_per_queue: self.workers_per_queue,
            inline: self.inline,
            poll_us: self.poll_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_rules() {
        assert!(Tag::new("a").is_ok());
        assert!(Tag::new(&"x".repeat(36)).is_ok());
        assert!(matches!(Tag::new(""), Err(Error::InvalidTag { .. })));
        assert!(matches!(
            Tag::new(&"x".repeat(37)),
            Err(Error::InvalidTag { .. })
        ));
        assert!(matches!(Tag::new("a\nb"), Err(Error::InvalidTag { .. })));
        assert!(matches!(Tag::new("a\0b"), Err(Error::InvalidTag { .. })));
        // 36 bytes, but 12 characters of 3 bytes each is fine; 13 is not.
        assert!(Tag::new(&"€".repeat(12)).is_ok());
        assert!(Tag::new(&"€".repeat(13)).is_err());
    }

    #[test]
    fn config_space_layout() {
        let config = DeviceConfig::builder("myfs")
            .request_queues(3)
            .build()
            .unwrap();
        let bytes = config.config_space().as_bytes().to_vec();
        assert_eq!(bytes.len(), 40);
        assert_eq!(&bytes[..4], b"myfs");
        assert!(bytes[4..36].iter().all(|&b| b == 0));
        assert_eq!(&bytes[36..], &3u32.to_le_bytes());
        assert_eq!(config.num_queues(), 4);
    }

    #[test]
    fn full_length_tag_has_no_nul() {
        let tag = "t".repeat(36);
        let config = DeviceConfig::builder(&tag).build().unwrap();
        assert_eq!(&config.config_space().tag[..], tag.as_bytes());
    }

    #[test]
    fn partial_config_reads() {
        let config = DeviceConfig::builder("abc")
            .request_queues(2)
            .build()
            .unwrap();
        assert_eq!(config.read_config(0, 3), b"abc");
        assert_eq!(config.read_config(36, 4), 2u32.to_le_bytes());
        assert_eq!(config.read_config(38, 8), vec![0, 0]);
        assert!(config.read_config(40, 4).is_empty());
        assert!(config.read_config(usize::MAX, 4).is_empty());
    }

    #[test]
    fn queue_rules() {
        assert!(matches!(
            DeviceConfig::builder("a").request_queues(0).build(),
            Err(Error::InvalidRequestQueues(0))
        ));
        assert!(
            DeviceConfig::builder("a")
                .request_queues(63)
                .build()
                .is_ok()
        );
        assert!(
            DeviceConfig::builder("a")
                .request_queues(64)
                .build()
                .is_err()
        );
        assert!(matches!(
            DeviceConfig::builder("a").queue_size(1000).build(),
            Err(Error::InvalidQueueSize(1000))
        ));
        assert!(DeviceConfig::builder("a").queue_size(32).build().is_err());
        assert!(DeviceConfig::builder("a").queue_size(32768).build().is_ok());
    }

    #[test]
    fn poll_window_rules() {
        let config = DeviceConfig::builder("a").build().unwrap();
        assert_eq!(config.poll_us(), 0);
        assert_eq!(config.poll(), std::time::Duration::ZERO);
        let config = DeviceConfig::builder("a").poll_us(1000).build().unwrap();
        assert_eq!(config.poll(), std::time::Duration::from_micros(1000));
        assert!(matches!(
            DeviceConfig::builder("a").poll_us(1001).build(),
            Err(Error::InvalidPoll(1001))
        ));
    }
}
