//! The hostile scenarios. Each drives a fresh daemon through one class of hostile input and
//! records failures in its [`Report`]; `main` checks afterwards that the daemon still runs.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use fuse_abi::mode::{S_IFBLK, S_IFCHR, S_IFIFO};
use fuse_abi::{OutHeader, ROOT_ID};
use virtiofs_frontend::frontend::VIRTIO_RING_F_INDIRECT_DESC;
use virtiofs_frontend::fuse::{encode_dev, split_host_dev};
use virtiofs_frontend::process::CpuSample;
use virtiofs_frontend::queue::{DESC_F_INDIRECT, USED_F_NO_NOTIFY};
use virtiofs_frontend::{Config, Descriptor, Error, Frontend, Queue, Request};
use zerocopy::FromBytes;

use crate::{Ctx, REPLY_TIMEOUT, Report, Scenario};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// CPU a daemon may use while it has nothing to do (a spin is ~100%).
const IDLE_CPU_PERCENT: f64 = 20.0;
/// Log growth allowed while a guest repeats one impossible thing.
const LOG_LIMIT_IDLE: u64 = 16 * KIB;
/// Log growth allowed for the whole flood of malformed chains.
const LOG_LIMIT_FLOOD: u64 = 64 * KIB;
/// Resident memory allowed under a hostile guest.
const RSS_LIMIT: u64 = 256 * MIB;
/// Malformed chains in the flood.
const FLOOD_CHAINS: usize = 10_000;
/// OPENs without RELEASE in the descriptor-budget scenario.
const OPENS: usize = 20_000;
/// Distinct files looked up (and never forgotten) in the inode scenario.
const INODE_FILES: usize = 20_000;
/// OPENDIR+READDIR without RELEASEDIR, and the directory's size.
const DIR_HANDLES: usize = 400;
const DIR_ENTRIES: usize = 5000;
/// RSS growth allowed per directory handle (whatever the directory's size).
const DIR_HANDLE_LIMIT: u64 = 128 * KIB;
/// How long a chain's used entry may take after a later request was answered.
const USED_TIMEOUT: Duration = Duration::from_secs(1);
/// Wall-time bound of the long loops.
const LOOP_LIMIT: Duration = Duration::from_secs(60);

/// Every scenario, in the order they run.
pub(crate) const ALL: &[Scenario] = &[
    Scenario {
        name: "reconnect",
        about: "a frontend leaves, the next one is served",
        run: reconnect,
    },
    Scenario {
        name: "special-blk",
        about: "MKNOD S_IFBLK of a loop device over a file outside the share, CREATE and OPEN it",
        run: special_blk,
    },
    Scenario {
        name: "special-chr",
        about: "MKNOD S_IFCHR 1:5 (/dev/zero), CREATE and OPEN it",
        run: special_chr,
    },
    Scenario {
        name: "special-fifo",
        about: "MKNOD S_IFIFO, CREATE and OPEN it: an errno, no wedge, control plane answers",
        run: special_fifo,
    },
    Scenario {
        name: "avail-ahead",
        about: "avail->idx = next + size + 7, no descriptors: no spin, bounded log, reconnect",
        run: avail_ahead,
    },
    Scenario {
        name: "bad-head",
        about: "a head index >= queue size: no spin, no stale NO_NOTIFY, reconnect",
        run: bad_head,
    },
    Scenario {
        name: "malformed-chains",
        about: "zero-length, outside memory, loops, no writable part, bad indirect tables",
        run: malformed_chains,
    },
    Scenario {
        name: "indirect-unnegotiated",
        about: "an indirect chain without VIRTIO_RING_F_INDIRECT_DESC is not served",
        run: indirect_unnegotiated,
    },
    Scenario {
        name: "flood",
        about: "10 000 malformed chains: bounded log and CPU; SET_VRING_CALL, GET_VRING_BASE answered",
        run: flood,
    },
    Scenario {
        name: "hiprio-flood",
        about: "10 000 non-FORGET messages on the hiprio queue: returned, bounded log",
        run: hiprio_flood,
    },
    Scenario {
        name: "vring-num",
        about: "SET_VRING_NUM 3 (not a power of two): refused, or never served with another layout",
        run: vring_num,
    },
    Scenario {
        name: "mem-region",
        about: "a memory region larger than its memfd: refused or survived, never SIGBUS",
        run: mem_region,
    },
    Scenario {
        name: "fd-budget",
        about: "20 000 OPENs without RELEASE: ENFILE, RSS bounded, fd-carrying messages still work",
        run: fd_budget,
    },
    Scenario {
        name: "inodes",
        about: "20 000 LOOKUPs of distinct files without FORGET: ENFILE past a budget, RSS bounded",
        run: inodes,
    },
    Scenario {
        name: "dir-handles",
        about: "20 000 OPENDIR+READDIR (32 KiB) without RELEASEDIR: ENFILE, RSS bounded",
        run: dir_handles,
    },
    Scenario {
        name: "dir-snapshots",
        about: "400 OPENDIR+READDIR of a 5000-entry directory without RELEASEDIR: RSS bounded",
        run: dir_snapshots,
    },
];

// ---------------------------------------------------------------------------------------------
// Helpers.

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// GETATTR of the root, answered without error within the reply timeout; its latency.
fn getattr(f: &mut Frontend) -> Result<Duration> {
    let started = Instant::now();
    let reply = f
        .requests()
        .call(&Request::getattr(ROOT_ID), 4096, REPLY_TIMEOUT)
        .context("GETATTR")?;
    reply.attr().context("GETATTR")?;
    Ok(started.elapsed())
}

/// A new frontend must be set up and served.
fn reconnect_served(ctx: &Ctx, r: &mut Report) {
    match ctx.connect().and_then(|mut f| getattr(&mut f)) {
        Ok(d) => r.note(format!("new frontend served ({})", ms(d))),
        Err(e) => r.fail(format!("a new frontend is not served: {e:#}")),
    }
}

/// CPU use over `over` with nothing asked of the daemon.
fn idle_cpu(ctx: &Ctx, r: &mut Report, over: Duration, when: &str) -> Result<()> {
    let sample = CpuSample::start(&ctx.daemon)?;
    std::thread::sleep(over);
    let pct = sample.percent(&ctx.daemon)?;
    r.note(format!("cpu {pct:.1}% {when}"));
    r.check(pct <= IDLE_CPU_PERCENT, || {
        format!("the daemon spins {when}: {pct:.0}% CPU over {over:?}")
    });
    Ok(())
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn reconnect(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let mut first = ctx.connect()?;
    r.note(format!("first served ({})", ms(getattr(&mut first)?)));
    drop(first);
    reconnect_served(ctx, r);
    reconnect_served(ctx, r);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Special files.

/// A loop device over a file; detached when dropped.
struct LoopDevice(PathBuf);

impl LoopDevice {
    fn attach(file: &Path) -> Result<LoopDevice> {
        let dev = run(Command::new("losetup").args(["--find", "--show"]).arg(file))?;
        Ok(LoopDevice(PathBuf::from(dev)))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    Blk,
    Chr,
    Fifo,
}

fn special_blk(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    special(ctx, r, Special::Blk)
}

fn special_chr(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    special(ctx, r, Special::Chr)
}

fn special_fifo(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    special(ctx, r, Special::Fifo)
}

/// The bytes of the file outside the share.
fn oracle_bytes() -> Vec<u8> {
    b"OUTSIDE-THE-SHARE:"
        .iter()
        .copied()
        .cycle()
        .take(usize::try_from(MIB).unwrap_or(1 << 20))
        .collect()
}

const MARKER: &[u8] = b"HOSTILE-GUEST-WAS-HERE";

fn special(ctx: &mut Ctx, r: &mut Report, kind: Special) -> Result<()> {
    let oracle = ctx.outside.join("oracle.img");
    let secret = oracle_bytes();
    fs::write(&oracle, &secret)?;
    let loop_dev = match kind {
        Special::Blk => Some(LoopDevice::attach(&oracle)?),
        _ => None,
    };
    let (what, mode, (major, minor)) = match (kind, &loop_dev) {
        (Special::Blk, Some(dev)) => (
            "block device",
            S_IFBLK | 0o600,
            split_host_dev(fs::metadata(&dev.0)?.rdev()),
        ),
        (Special::Chr, _) => ("character device 1:5", S_IFCHR | 0o600, (1, 5)),
        _ => ("FIFO", S_IFIFO | 0o600, (0, 0)),
    };
    let name = "node";
    let mut f = ctx.connect()?;
    let made = f.requests().call(
        &Request::mknod(ROOT_ID, name, mode, encode_dev(major, minor)),
        4096,
        REPLY_TIMEOUT,
    )?;
    match made.errno() {
        None => r.note("guest MKNOD made it"),
        Some(e) => {
            // The node may still sit in the share (a host user, an earlier guest): make it on
            // the host, the daemon must refuse to open it just the same.
            let mut cmd = Command::new("mknod");
            cmd.arg(ctx.share.join(name));
            match kind {
                Special::Blk => cmd.args(["b", &major.to_string(), &minor.to_string()]),
                Special::Chr => cmd.args(["c", "1", "5"]),
                Special::Fifo => cmd.arg("p"),
            };
            run(&mut cmd)?;
            r.note(format!("guest MKNOD {e}, made on the host"));
        }
    }
    let entry = f
        .requests()
        .call(&Request::lookup(ROOT_ID, name), 4096, REPLY_TIMEOUT)?
        .entry()
        .context("LOOKUP of the node")?;
    let node = entry.nodeid.get();
    let (create_flags, open_flags) = match kind {
        Special::Fifo => (libc::O_WRONLY, libc::O_RDONLY),
        _ => (libc::O_RDWR, libc::O_RDWR),
    };
    let mut wedged = false;
    // OPEN first: CREATE of a FIFO blocks a worker that opens it, and nothing after runs.
    for (op, req) in [
        ("OPEN", Request::open(node, open_flags)),
        (
            "CREATE",
            Request::create(ROOT_ID, name, create_flags, 0o600),
        ),
    ] {
        if wedged {
            break;
        }
        let pending = f.requests().send(&req, 4096)?;
        match f.requests().wait(pending, REPLY_TIMEOUT) {
            Err(Error::Timeout(_)) => {
                r.fail(format!(
                    "{op} of a {what}: no reply in {REPLY_TIMEOUT:?} (the worker blocks in open)"
                ));
                wedged = true;
            }
            Err(e) => return Err(e.into()),
            Ok(reply) => match reply.errno() {
                Some(e) => r.note(format!("{op} {e}")),
                None => {
                    let fh = if op == "CREATE" {
                        reply.create().map(|(_, o)| o.fh.get())
                    } else {
                        reply.open().map(|o| o.fh.get())
                    }
                    .context(op)?;
                    r.fail(format!("{op} opened the {what} (fh {fh})"));
                    probe(&mut f, r, kind, node, fh, &secret)?;
                }
            },
        }
    }
    // The daemon still serves the queue and the control plane.
    if !wedged {
        match getattr(&mut f) {
            Ok(d) => r.note(format!("GETATTR after it {}", ms(d))),
            Err(e) => r.fail(format!("the queue no longer answers: {e:#}")),
        }
    }
    match f.set_vring_call(1) {
        Ok(d) => r.note(format!("SET_VRING_CALL acked {}", ms(d))),
        Err(e) => r.fail(format!("SET_VRING_CALL not acknowledged: {e}")),
    }
    drop(f);
    drop(loop_dev);
    r.check(fs::read(&oracle)? == secret, || {
        "the file outside the share changed".to_owned()
    });
    reconnect_served(ctx, r);
    Ok(())
}

/// A special file was opened: show what it gives (the escape), then release it.
fn probe(
    f: &mut Frontend,
    r: &mut Report,
    kind: Special,
    node: u64,
    fh: u64,
    secret: &[u8],
) -> Result<()> {
    if kind == Special::Fifo {
        return Ok(()); // reading would block; the open already failed the scenario
    }
    let q = f.requests();
    let reply = q.call(&Request::read(node, fh, 0, 64), 4096, REPLY_TIMEOUT)?;
    if let Ok(data) = reply.data() {
        if kind == Special::Blk && data.len() >= 18 && secret.starts_with(data) {
            r.fail("READ through it returned the file outside the share");
        }
        if kind == Special::Chr && !data.is_empty() && data.iter().all(|&b| b == 0) {
            r.fail("READ through it returned /dev/zero's bytes");
        }
    }
    if kind == Special::Blk {
        let _ = q.call(&Request::write(node, fh, 0, MARKER), 4096, REPLY_TIMEOUT)?;
        let _ = q.call(&Request::fsync(node, fh), 4096, REPLY_TIMEOUT)?;
    }
    let _ = q.call(&Request::release(node, fh), 4096, REPLY_TIMEOUT)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Impossible ring indices.

fn avail_ahead(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let mut f = ctx.connect()?;
    getattr(&mut f)?;
    let q = f.requests();
    let size = q.layout().size;
    let ahead = q.avail_idx().wrapping_add(size).wrapping_add(7);
    q.set_avail_idx(ahead)?;
    q.kick()?;
    let log0 = ctx.daemon.log_bytes();
    idle_cpu(ctx, r, Duration::from_secs(2), "with avail->idx ahead")?;
    let log = ctx.daemon.log_bytes().saturating_sub(log0);
    r.note(format!("log +{log} B"));
    r.check(log <= LOG_LIMIT_IDLE, || {
        format!("log grew {log} B in 2 s (limit {LOG_LIMIT_IDLE})")
    });
    match f.set_vring_call(1) {
        Ok(d) => r.note(format!("SET_VRING_CALL acked {}", ms(d))),
        Err(e) => r.fail(format!("SET_VRING_CALL not acknowledged: {e}")),
    }
    drop(f);
    std::thread::sleep(Duration::from_millis(200));
    idle_cpu(ctx, r, Duration::from_secs(1), "after the frontend left")?;
    reconnect_served(ctx, r);
    Ok(())
}

fn bad_head(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let mut f = ctx.connect()?;
    getattr(&mut f)?;
    let log0 = ctx.daemon.log_bytes();
    {
        let q = f.requests();
        let size = q.layout().size;
        q.push_head(size + 3)?;
        q.kick()?;
    }
    std::thread::sleep(Duration::from_millis(300));
    idle_cpu(ctx, r, Duration::from_secs(1), "after a head >= size")?;
    let q = f.requests();
    let no_notify = q.used_flags()? & USED_F_NO_NOTIFY != 0;
    // A driver that honours NO_NOTIFY makes the next request available without a kick.
    let pending = q.push(&Request::getattr(ROOT_ID), 4096)?;
    if !no_notify {
        q.kick()?;
    }
    match q.wait(pending, REPLY_TIMEOUT) {
        Ok(_) => r.note(format!("next request served (NO_NOTIFY {no_notify})")),
        Err(Error::Timeout(_)) => {
            // Kick anyway: a queue that serves it now stalled a driver that obeyed the device.
            let probe = q.send(&Request::getattr(ROOT_ID), 4096)?;
            match q.wait(probe, REPLY_TIMEOUT) {
                Ok(_) if no_notify => r.fail(
                    "used->flags kept VRING_USED_F_NO_NOTIFY: a driver that honours it stalls",
                ),
                Ok(_) => r.fail("a kicked request was served only after a second kick"),
                Err(Error::Timeout(_)) => r.note("queue marked broken"),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    let log = ctx.daemon.log_bytes().saturating_sub(log0);
    r.note(format!("log +{log} B"));
    r.check(log <= LOG_LIMIT_IDLE, || format!("log grew {log} B"));
    drop(f);
    reconnect_served(ctx, r);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Malformed chains.

/// The malformed (and a few well-formed) chains a hostile driver can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chain {
    ZeroLength,
    OutsideMemory,
    WritableWraps,
    NextLoop,
    SelfLoop,
    NextOutOfRange,
    NoWritable,
    WritableFirst,
    ShortHeader,
    LenLies,
    HugeLen,
    IndirectValid,
    IndirectLoop,
    IndirectNested,
    IndirectBadLen,
    IndirectOutside,
    IndirectHuge,
}

const MALFORMED: &[Chain] = &[
    Chain::ZeroLength,
    Chain::OutsideMemory,
    Chain::WritableWraps,
    Chain::NextLoop,
    Chain::SelfLoop,
    Chain::NextOutOfRange,
    Chain::NoWritable,
    Chain::WritableFirst,
    Chain::ShortHeader,
    Chain::LenLies,
    Chain::HugeLen,
    Chain::IndirectValid,
    Chain::IndirectLoop,
    Chain::IndirectNested,
    Chain::IndirectBadLen,
    Chain::IndirectOutside,
    Chain::IndirectHuge,
];

/// What the flood repeats (cycling, one kind per batch).
const FLOOD: &[Chain] = &[
    Chain::ZeroLength,
    Chain::OutsideMemory,
    Chain::NextLoop,
    Chain::NoWritable,
    Chain::ShortHeader,
    Chain::WritableFirst,
    Chain::IndirectLoop,
    Chain::IndirectBadLen,
];

impl Chain {
    /// An out-of-range *index* (not a malformed buffer): the device may mark the queue broken
    /// until it is reset, as for an impossible ring index. Every other malformed chain is
    /// answered or dropped and the queue goes on.
    fn may_break_queue(self) -> bool {
        self == Chain::NextOutOfRange
    }
}

/// A built chain: its head, the bytes the device may write, and where a reply would land.
struct Built {
    head: u16,
    writable: u32,
    reply_at: Option<u64>,
}

/// Writes `chain` with the reserved descriptors `d` (at least 2) and the queue's scratch area.
fn build(q: &Queue, d: &[u16], chain: Chain, unique: u64) -> Result<Built> {
    let (a, b) = (d[0], d[1]);
    let l = *q.layout();
    let (sa, sb) = (l.slot(a), l.slot(b));
    let ram_end = q.ram().size();
    let request = Request::getattr(ROOT_ID).encode(unique);
    let req_len = u32::try_from(request.len()).unwrap_or(0);
    let table = l.scratch;
    let req_at = l.scratch + 1024;
    let reply_at = l.scratch + 4096;
    q.ram().write(sa, &request)?;
    q.ram().write(req_at, &request)?;
    let mut built = Built {
        head: a,
        writable: 0,
        reply_at: None,
    };
    let indirect = |addr, len| Descriptor {
        addr,
        len,
        flags: DESC_F_INDIRECT,
        next: 0,
    };
    match chain {
        Chain::ZeroLength => {
            q.write_descriptor(a, Descriptor::readable(sa, 0).then(b))?;
            q.write_descriptor(b, Descriptor::writable(sb, 0))?;
        }
        Chain::OutsideMemory => {
            q.write_descriptor(a, Descriptor::readable(ram_end + MIB, 64).then(b))?;
            q.write_descriptor(b, Descriptor::writable(sb, 4096))?;
            built.writable = 4096;
        }
        Chain::WritableWraps => {
            q.write_descriptor(a, Descriptor::readable(sa, req_len).then(b))?;
            q.write_descriptor(b, Descriptor::writable(u64::MAX - 7, 4096))?;
            built.writable = 4096;
        }
        Chain::NextLoop => {
            q.write_descriptor(a, Descriptor::readable(sa, req_len).then(b))?;
            q.write_descriptor(b, Descriptor::readable(sb, 8).then(a))?;
        }
        Chain::SelfLoop => q.write_descriptor(a, Descriptor::readable(sa, req_len).then(a))?,
        Chain::NextOutOfRange => {
            q.write_descriptor(a, Descriptor::readable(sa, req_len).then(l.size + 5))?;
        }
        Chain::NoWritable => q.write_descriptor(a, Descriptor::readable(sa, req_len))?,
        Chain::WritableFirst => {
            q.write_descriptor(a, Descriptor::writable(sb, 4096).then(b))?;
            q.ram().write(sb + 8192, &request)?;
            q.write_descriptor(b, Descriptor::readable(sb + 8192, req_len))?;
            built.writable = 4096;
        }
        Chain::ShortHeader => {
            q.ram().write(sa, &[0xa5; 8])?;
            q.write_descriptor(a, Descriptor::readable(sa, 8).then(b))?;
            q.write_descriptor(b, Descriptor::writable(sb, 4096))?;
            built.writable = 4096;
        }
        Chain::LenLies => {
            let lying = Request::getattr(ROOT_ID)
                .with_claimed_len(65_536)
                .encode(unique);
            q.ram().write(sa, &lying)?;
            q.write_descriptor(a, Descriptor::readable(sa, req_len).then(b))?;
            q.write_descriptor(b, Descriptor::writable(sb, 4096))?;
            built.writable = 4096;
        }
        Chain::HugeLen => {
            q.write_descriptor(a, Descriptor::readable(sa, u32::MAX).then(b))?;
            q.write_descriptor(b, Descriptor::writable(sb, 4096))?;
            built.writable = 4096;
        }
        Chain::IndirectValid => {
            q.write_table(
                table,
                &[
                    Descriptor::readable(req_at, req_len).then(1),
                    Descriptor::writable(reply_at, 4096),
                ],
            )?;
            q.ram().write(reply_at, &[0; 16])?;
            q.write_descriptor(a, indirect(table, 32))?;
            built.writable = 4096;
            built.reply_at = Some(reply_at);
        }
        Chain::IndirectLoop => {
            q.write_table(
                table,
                &[
                    Descriptor::readable(req_at, req_len).then(1),
                    Descriptor::writable(reply_at, 4096).then(0),
                ],
            )?;
            q.write_descriptor(a, indirect(table, 32))?;
            built.writable = 4096;
        }
        Chain::IndirectNested => {
            q.write_table(table + 512, &[Descriptor::readable(req_at, req_len)])?;
            q.write_table(table, &[indirect(table + 512, 16)])?;
            q.write_descriptor(a, indirect(table, 16))?;
        }
        Chain::IndirectBadLen => q.write_descriptor(a, indirect(table, 17))?,
        Chain::IndirectOutside => q.write_descriptor(a, indirect(ram_end + 4096, 32))?,
        Chain::IndirectHuge => q.write_descriptor(a, indirect(table, 0xffff_fff0))?,
    }
    Ok(built)
}

/// After a chain and a fence: the used length the device gave it must fit its writable part.
fn check_used(q: &mut Queue, r: &mut Report, chain: Chain, built: &Built) -> Result<Option<u32>> {
    // Requests complete out of order: the GETATTR sent after the chain may have been answered
    // first, so wait for the chain's own used entry.
    let used = match q.wait_used(built.head, USED_TIMEOUT) {
        Ok(len) => Some(len),
        Err(Error::Timeout(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(len) = used {
        r.check(len <= built.writable, || {
            format!(
                "{chain:?}: used length {len} > the {} writable bytes",
                built.writable
            )
        });
    }
    Ok(used)
}

fn malformed_chains(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let mut f = ctx.connect()?;
    let mut reserved = f.requests().reserve_descriptors(4)?;
    let indirect = f.features() & VIRTIO_RING_F_INDIRECT_DESC != 0;
    let log0 = ctx.daemon.log_bytes();
    let mut stalls = 0;
    for (n, &chain) in MALFORMED.iter().enumerate() {
        let unique = 0xbad0_0000 + u64::try_from(n).unwrap_or(0);
        let q = f.requests();
        let built = build(q, &reserved, chain, unique)?;
        q.push_head(built.head)?;
        q.kick()?;
        if let Err(e) = getattr(&mut f) {
            if chain.may_break_queue() {
                r.note(format!("{chain:?} marked the queue broken"));
            } else {
                r.fail(format!("{chain:?}: the queue stalls after it ({e:#})"));
            }
            stalls += 1;
            if stalls > 3 {
                bail!("too many stalls");
            }
            f = ctx.connect().context("reconnect after a stall")?;
            reserved = f.requests().reserve_descriptors(4)?;
            continue;
        }
        let used = check_used(f.requests(), r, chain, &built)?;
        if let (Chain::IndirectValid, true) = (chain, indirect) {
            let served = match (used, built.reply_at) {
                (Some(len), Some(at)) => {
                    let mut header = [0u8; 16];
                    f.ram().read(at, &mut header)?;
                    OutHeader::read_from_bytes(&header)
                        .is_ok_and(|h| h.error.get() == 0 && h.len.get() == len && len > 16)
                }
                _ => false,
            };
            r.check(served, || {
                "a valid indirect chain was not served".to_owned()
            });
        }
    }
    let log = ctx.daemon.log_bytes().saturating_sub(log0);
    r.note(format!("{} chains, log +{log} B", MALFORMED.len()));
    drop(f);
    reconnect_served(ctx, r);
    Ok(())
}

fn indirect_unnegotiated(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let mut config = Config::new(1);
    config.indirect = false;
    let mut f = ctx.connect_with(config)?;
    r.check(f.features() & VIRTIO_RING_F_INDIRECT_DESC == 0, || {
        "INDIRECT_DESC negotiated although not acked".to_owned()
    });
    let reserved = f.requests().reserve_descriptors(2)?;
    let q = f.requests();
    let built = build(q, &reserved, Chain::IndirectValid, 0xbad1_0000)?;
    q.push_head(built.head)?;
    q.kick()?;
    match getattr(&mut f) {
        Ok(_) => r.note("queue still serves"),
        Err(_) => r.note("queue marked broken"),
    }
    // Out of order: wait for the chain itself to come back (or not) before looking at it.
    let returned = match f.requests().wait_used(built.head, USED_TIMEOUT) {
        Ok(len) => format!("returned with used length {len}"),
        Err(Error::Timeout(_)) => "not returned".to_owned(),
        Err(e) => return Err(e.into()),
    };
    r.note(format!("the indirect chain was {returned}"));
    let mut header = [0u8; 16];
    f.ram().read(built.reply_at.unwrap_or(0), &mut header)?;
    let served = OutHeader::read_from_bytes(&header).is_ok_and(|h| h.len.get() > 0);
    r.check(!served, || {
        "an indirect chain was served without VIRTIO_RING_F_INDIRECT_DESC".to_owned()
    });
    drop(f);
    reconnect_served(ctx, r);
    Ok(())
}

fn flood(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    const BATCH: usize = 64;
    let mut f = ctx.connect()?;
    let reserved = f.requests().reserve_descriptors(4)?;
    let log0 = ctx.daemon.log_bytes();
    let cpu = CpuSample::start(&ctx.daemon)?;
    let deadline = Instant::now() + LOOP_LIMIT;
    let (mut sent, mut batches, mut max_ack) = (0usize, 0usize, Duration::ZERO);
    while sent < FLOOD_CHAINS && Instant::now() < deadline {
        let chain = FLOOD[batches % FLOOD.len()];
        let q = f.requests();
        let built = build(q, &reserved, chain, 0xf100_0000)?;
        let n = BATCH.min(FLOOD_CHAINS - sent);
        for _ in 0..n {
            q.push_head(built.head)?;
        }
        q.kick()?;
        // The control plane is answered while the batch is in flight; halfway, the queue is
        // stopped and started again (GET_VRING_BASE ... SET_VRING_ENABLE) under the flood.
        if batches == FLOOD_CHAINS / BATCH / 2 {
            match f.restart_queue(1) {
                Ok((base, d)) => r.note(format!("restart in flight at {base} in {}", ms(d))),
                Err(e) => {
                    r.fail(format!("restarting the queue during the flood failed: {e}"));
                    break;
                }
            }
        } else if batches % 8 == 0 {
            match f.set_vring_call(1) {
                Ok(d) => max_ack = max_ack.max(d),
                Err(e) => {
                    r.fail(format!(
                        "SET_VRING_CALL during the flood not acknowledged: {e}"
                    ));
                    break;
                }
            }
        }
        if let Err(e) = getattr(&mut f) {
            r.fail(format!(
                "the queue stalls after {sent} chains ({chain:?}): {e:#}"
            ));
            break;
        }
        check_used(f.requests(), r, chain, &built)?;
        sent += n;
        batches += 1;
    }
    let used = cpu.used(&ctx.daemon)?;
    let log = ctx.daemon.log_bytes().saturating_sub(log0);
    #[allow(clippy::cast_precision_loss)]
    let per_chain_us = used.as_secs_f64() * 1e6 / sent.max(1) as f64;
    r.note(format!(
        "{sent} chains, {per_chain_us:.0} us CPU/chain, log +{log} B, SET_VRING_CALL <= {}",
        ms(max_ack)
    ));
    r.check(sent == FLOOD_CHAINS, || {
        format!("only {sent} of {FLOOD_CHAINS} chains in {LOOP_LIMIT:?}")
    });
    r.check(log <= LOG_LIMIT_FLOOD, || {
        format!("log grew {log} B for the flood (limit {LOG_LIMIT_FLOOD})")
    });
    r.check(per_chain_us <= 1000.0, || {
        format!("{per_chain_us:.0} us of CPU per malformed chain")
    });
    match f.get_vring_base(1) {
        Ok((base, d)) => r.note(format!("GET_VRING_BASE {base} in {}", ms(d))),
        Err(e) => r.fail(format!("GET_VRING_BASE after the flood not answered: {e}")),
    }
    drop(f);
    idle_cpu(ctx, r, Duration::from_secs(1), "after the flood")?;
    reconnect_served(ctx, r);
    Ok(())
}

fn hiprio_flood(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    const BATCH: usize = 64;
    let mut f = ctx.connect()?;
    let log0 = ctx.daemon.log_bytes();
    let cpu = CpuSample::start(&ctx.daemon)?;
    let deadline = Instant::now() + LOOP_LIMIT;
    let mut sent = 0usize;
    'flood: while sent < FLOOD_CHAINS && Instant::now() < deadline {
        let q = f.queue(0);
        let n = BATCH.min(FLOOD_CHAINS - sent);
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            // Only FORGET belongs on hiprio; a GETATTR there has no writable part either.
            batch.push(q.push(&Request::getattr(ROOT_ID), 0)?);
        }
        q.kick()?;
        for p in batch {
            // Dropped, but returned to the driver (used length 0) so its descriptors free.
            match q.wait(p, REPLY_TIMEOUT) {
                Ok(reply) => r.check(reply.used_len == 0, || {
                    format!("hiprio message answered with {} bytes", reply.used_len)
                }),
                Err(e) => {
                    r.fail(format!("hiprio message #{} not returned: {e}", sent + 1));
                    break 'flood;
                }
            }
            sent += 1;
        }
    }
    let used = cpu.used(&ctx.daemon)?;
    let log = ctx.daemon.log_bytes().saturating_sub(log0);
    r.note(format!(
        "{sent} messages, {:.2}s CPU, log +{log} B",
        used.as_secs_f64()
    ));
    r.check(log <= LOG_LIMIT_FLOOD, || {
        format!("log grew {log} B for the hiprio flood (limit {LOG_LIMIT_FLOOD})")
    });
    match getattr(&mut f) {
        Ok(d) => r.note(format!("request queue served ({})", ms(d))),
        Err(e) => r.fail(format!("the request queue no longer answers: {e:#}")),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Frontend-supplied ring and memory parameters.

fn vring_num(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let mut f = ctx.connect()?;
    let log0 = ctx.daemon.log_bytes();
    // Stopped and started again as a VMM reconfigures a queue, but with a size no split ring
    // can have. vhost-user-backend gives the backend no say over SET_VRING_NUM and acks it, so
    // the daemon may accept the message; it must then never serve the ring, whose layout it
    // cannot agree on with the driver.
    match f.restart_queue_as(1, 3) {
        Err(Error::Timeout(d)) => {
            r.fail(format!("SET_VRING_NUM 3 not answered in {d:?}"));
            return Ok(());
        }
        Err(e) => r.note(format!("SET_VRING_NUM 3 refused ({e})")),
        Ok((base, _)) => {
            r.note(format!("SET_VRING_NUM 3 acknowledged at base {base}"));
            for _ in 0..3 {
                match f.requests().call(
                    &Request::getattr(ROOT_ID),
                    4096,
                    Duration::from_millis(300),
                ) {
                    Err(Error::Timeout(_)) => {}
                    Ok(_) => {
                        r.fail("a queue of size 3 was served with the previous layout");
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            idle_cpu(
                ctx,
                r,
                Duration::from_millis(500),
                "with a size-3 queue kicked",
            )?;
            match f.get_vring_base(1) {
                Ok((base, d)) => r.note(format!("GET_VRING_BASE {base} in {}", ms(d))),
                Err(e) => r.fail(format!("GET_VRING_BASE of the size-3 queue: {e}")),
            }
        }
    }
    let log = ctx.daemon.log_bytes().saturating_sub(log0);
    r.check(log <= LOG_LIMIT_IDLE, || {
        format!("log grew {log} B for one bad queue size (limit {LOG_LIMIT_IDLE})")
    });
    drop(f);
    reconnect_served(ctx, r);
    Ok(())
}

fn mem_region(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let mut config = Config::new(1);
    config.overstate_memory = 64 * MIB;
    match ctx.connect_with(config) {
        Err(e) => r.note(format!("overstated region refused ({e:#})")),
        Ok(mut f) => {
            r.note("overstated region accepted");
            let reserved = f.requests().reserve_descriptors(2)?;
            let past_eof = f.ram().size() + 4096;
            let q = f.requests();
            let (a, b) = (reserved[0], reserved[1]);
            q.write_descriptor(a, Descriptor::readable(past_eof, 64).then(b))?;
            q.write_descriptor(b, Descriptor::writable(past_eof + 4096, 4096))?;
            q.push_head(a)?;
            q.kick()?;
            let _ = getattr(&mut f);
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    if ctx.daemon.exit_status().is_some() {
        r.note("died touching guest memory past its file's end");
        return Ok(()); // the runner reports the death and its signal
    }
    reconnect_served(ctx, r);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Budgets.

fn errno_name(e: virtiofs_frontend::Errno) -> String {
    e.name()
        .map_or_else(|| format!("errno {}", e.raw()), str::to_owned)
}

/// Every LOOKUP holds an inode (and, in both backends, a descriptor) until FORGET: the guest
/// decides how many. The inode table and the descriptors must stop at a budget with ENFILE,
/// and the memory per inode says what the daemon's worst case is at the default budget.
fn inodes(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    const WINDOW: usize = 64;
    let dir = ctx.share.join("many");
    fs::create_dir(&dir)?;
    for i in 0..INODE_FILES {
        fs::File::create(dir.join(format!("f{i:05}")))?;
    }
    let mut f = ctx.connect()?;
    let node = f
        .requests()
        .call(&Request::lookup(ROOT_ID, "many"), 4096, REPLY_TIMEOUT)?
        .entry()?
        .nodeid
        .get();
    let rss0 = ctx.daemon.rss_bytes()?;
    let deadline = Instant::now() + LOOP_LIMIT;
    let mut pending = VecDeque::new();
    let (mut sent, mut ok) = (0usize, 0usize);
    let mut errnos: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < deadline {
        let q = f.requests();
        while sent < INODE_FILES && pending.len() < WINDOW {
            let name = format!("f{sent:05}");
            pending.push_back(q.push(&Request::lookup(node, &name), 256)?);
            sent += 1;
        }
        q.kick()?;
        let Some(p) = pending.pop_front() else { break };
        match q.wait(p, REPLY_TIMEOUT) {
            Ok(reply) => match reply.errno() {
                None => ok += 1,
                Some(e) => *errnos.entry(errno_name(e)).or_default() += 1,
            },
            Err(e) => {
                r.fail(format!("LOOKUP #{} not answered: {e}", ok + 1));
                break;
            }
        }
    }
    let rss = ctx.daemon.rss_bytes()?;
    let fds = ctx.daemon.open_fds().unwrap_or(0);
    let per_inode = rss.saturating_sub(rss0) / u64::try_from(ok.max(1)).unwrap_or(1);
    r.note(format!(
        "{ok} inodes held, errors {errnos:?}, daemon fds {fds}, RSS {} -> {} MiB \
         ({per_inode} B per inode)",
        rss0 / MIB,
        rss / MIB
    ));
    let answered = u64::try_from(ok).unwrap_or(u64::MAX) + errnos.values().sum::<u64>();
    r.check(answered == u64::try_from(INODE_FILES).unwrap_or(0), || {
        format!("only {answered} of {INODE_FILES} LOOKUPs answered in {LOOP_LIMIT:?}")
    });
    for (name, n) in &errnos {
        r.check(name == "ENFILE", || {
            format!("{n} LOOKUPs failed with {name}, not the budget's ENFILE")
        });
    }
    r.check(rss <= RSS_LIMIT, || format!("RSS {} MiB", rss / MIB));
    match getattr(&mut f) {
        Ok(d) => r.note(format!("still served ({})", ms(d))),
        Err(e) => r.fail(format!("not served after the LOOKUPs: {e:#}")),
    }
    drop(f);
    reconnect_served(ctx, r);
    Ok(())
}

fn fd_budget(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    const WINDOW: usize = 64;
    const MAX_ERRORS: u64 = 200;
    fs::write(ctx.share.join("file"), b"data")?;
    let mut f = ctx.connect()?;
    let node = f
        .requests()
        .call(&Request::lookup(ROOT_ID, "file"), 4096, REPLY_TIMEOUT)?
        .entry()?
        .nodeid
        .get();
    let deadline = Instant::now() + LOOP_LIMIT;
    let mut pending = VecDeque::new();
    let (mut sent, mut ok, mut errors) = (0usize, 0usize, 0u64);
    let mut errnos: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < deadline {
        let q = f.requests();
        while sent < OPENS && errors < MAX_ERRORS && pending.len() < WINDOW {
            pending.push_back(q.push(&Request::open(node, libc::O_RDONLY), 256)?);
            sent += 1;
        }
        q.kick()?;
        let Some(p) = pending.pop_front() else { break };
        match q.wait(p, REPLY_TIMEOUT) {
            Ok(reply) => match reply.errno() {
                None => ok += 1,
                Some(e) => {
                    errors += 1;
                    *errnos.entry(errno_name(e)).or_default() += 1;
                }
            },
            Err(e) => {
                r.fail(format!("OPEN #{} not answered: {e}", ok + 1));
                break;
            }
        }
    }
    let fds = ctx.daemon.open_fds().unwrap_or(0);
    r.note(format!(
        "{ok} opens held, errors {errnos:?}, daemon fds {fds}"
    ));
    for (name, n) in &errnos {
        r.check(name == "ENFILE", || {
            format!("{n} OPENs failed with {name}, not the budget's ENFILE")
        });
    }
    let rss = ctx.daemon.rss_bytes()?;
    r.check(rss <= RSS_LIMIT, || format!("RSS {} MiB", rss / MIB));
    // The control channel can still receive descriptors (a SET_VRING_CALL carries one), and
    // a queue restart as at VM stop/start (new kick and call eventfds) is served.
    match f.set_vring_call(1) {
        Ok(d) => r.note(format!("SET_VRING_CALL acked {}", ms(d))),
        Err(e) => r.fail(format!("SET_VRING_CALL after the OPENs failed: {e}")),
    }
    match f.restart_queue(1) {
        Ok((_, d)) => r.note(format!("queue restarted with new fds in {}", ms(d))),
        Err(e) => r.fail(format!("restarting the queue with new fds failed: {e}")),
    }
    match getattr(&mut f) {
        Ok(d) => r.note(format!("served after the restart ({})", ms(d))),
        Err(e) => r.fail(format!("not served after the restart: {e:#}")),
    }
    Ok(())
}

fn dir_snapshots(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    let dir = ctx.share.join("big");
    fs::create_dir(&dir)?;
    for i in 0..DIR_ENTRIES {
        fs::File::create(dir.join(format!("entry-with-a-longish-name-{i:05}")))?;
    }
    let mut f = ctx.connect()?;
    let node = f
        .requests()
        .call(&Request::lookup(ROOT_ID, "big"), 4096, REPLY_TIMEOUT)?
        .entry()?
        .nodeid
        .get();
    let rss0 = ctx.daemon.rss_bytes()?;
    let deadline = Instant::now() + LOOP_LIMIT;
    let (mut handles, mut entries) = (0usize, 0usize);
    let mut errnos: BTreeMap<String, u64> = BTreeMap::new();
    let mut peak = rss0;
    for _ in 0..DIR_HANDLES {
        if Instant::now() > deadline {
            r.fail(format!("only {handles} handles in {LOOP_LIMIT:?}"));
            break;
        }
        let q = f.requests();
        let reply = q.call(&Request::opendir(node), 4096, REPLY_TIMEOUT)?;
        let fh = match reply.errno() {
            Some(e) => {
                *errnos.entry(errno_name(e)).or_default() += 1;
                continue;
            }
            None => reply.open()?.fh.get(),
        };
        handles += 1;
        let reply = q.call(&Request::readdir(node, fh, 0, 4096), 8192, REPLY_TIMEOUT)?;
        match reply.errno() {
            Some(e) => *errnos.entry(errno_name(e)).or_default() += 1,
            None => entries += reply.dirents()?.len(),
        }
        peak = peak.max(ctx.daemon.rss_bytes()?);
    }
    r.note(format!(
        "{handles} handles, {entries} entries read, errors {errnos:?}, RSS {} -> {} MiB",
        rss0 / MIB,
        peak / MIB
    ));
    r.check(peak <= RSS_LIMIT, || {
        format!("RSS {} MiB (limit {})", peak / MIB, RSS_LIMIT / MIB)
    });
    // Memory per handle must not grow with the directory: a snapshot of these 5000 names
    // alone is ~200 KiB.
    let per_handle = peak.saturating_sub(rss0) / u64::try_from(handles.max(1)).unwrap_or(1);
    r.check(per_handle <= DIR_HANDLE_LIMIT, || {
        format!(
            "{} KiB of RSS per directory handle (limit {} KiB)",
            per_handle / KIB,
            DIR_HANDLE_LIMIT / KIB
        )
    });
    r.check(handles == 0 || entries > 0, || {
        "READDIR returned no entries".to_owned()
    });
    Ok(())
}

fn dir_handles(ctx: &mut Ctx, r: &mut Report) -> Result<()> {
    const WINDOW: usize = 32;
    const MAX_ERRORS: u64 = 200;
    // Enough entries to fill a 32 KiB READDIR (so a handle's buffer is touched whole), few
    // enough that listing them is cheap: 160 names of 200 bytes.
    let dir = ctx.share.join("medium");
    fs::create_dir(&dir)?;
    let long = "n".repeat(195);
    for i in 0..160 {
        fs::File::create(dir.join(format!("{long}{i:05}")))?;
    }
    let mut f = ctx.connect()?;
    let node = f
        .requests()
        .call(&Request::lookup(ROOT_ID, "medium"), 4096, REPLY_TIMEOUT)?
        .entry()?
        .nodeid
        .get();
    // Bounded in time too (a slow backend is not a failure here); stops early once the RSS
    // bound is broken.
    let deadline = Instant::now() + LOOP_LIMIT / 2;
    let (mut sent, mut held, mut errors, mut peak) = (0usize, 0usize, 0u64, 0u64);
    let mut errnos: BTreeMap<String, u64> = BTreeMap::new();
    let mut opens = VecDeque::new();
    let mut reads = VecDeque::new();
    while Instant::now() < deadline {
        let q = f.requests();
        while sent < OPENS && errors < MAX_ERRORS && opens.len() < WINDOW && peak <= RSS_LIMIT {
            opens.push_back(q.push(&Request::opendir(node), 256)?);
            sent += 1;
        }
        q.kick()?;
        let Some(p) = opens.pop_front() else { break };
        let reply = match q.wait(p, REPLY_TIMEOUT) {
            Ok(reply) => reply,
            Err(e) => {
                r.fail(format!("OPENDIR #{} not answered: {e}", held + 1));
                break;
            }
        };
        match reply.errno() {
            Some(e) => {
                errors += 1;
                *errnos.entry(errno_name(e)).or_default() += 1;
            }
            None => {
                held += 1;
                let fh = reply.open()?.fh.get();
                let readdir = Request::readdir(node, fh, 0, 32 * 1024);
                reads.push_back(q.send(&readdir, 36 * 1024)?);
                if reads.len() >= WINDOW {
                    if let Some(p) = reads.pop_front() {
                        q.wait(p, REPLY_TIMEOUT).context("READDIR")?;
                    }
                }
            }
        }
        if held % 256 == 0 {
            peak = peak.max(ctx.daemon.rss_bytes()?);
        }
    }
    while let Some(p) = reads.pop_front() {
        f.requests().wait(p, REPLY_TIMEOUT).context("READDIR")?;
    }
    peak = peak.max(ctx.daemon.rss_bytes()?);
    let fds = ctx.daemon.open_fds().unwrap_or(0);
    r.note(format!(
        "{held} directory handles held, errors {errnos:?}, daemon fds {fds}, RSS {} MiB",
        peak / MIB
    ));
    for (name, n) in &errnos {
        r.check(name == "ENFILE", || {
            format!("{n} OPENDIRs failed with {name}, not the budget's ENFILE")
        });
    }
    r.check(peak <= RSS_LIMIT, || {
        format!("RSS {} MiB (limit {})", peak / MIB, RSS_LIMIT / MIB)
    });
    match getattr(&mut f) {
        Ok(d) => r.note(format!("still served ({})", ms(d))),
        Err(e) => r.fail(format!("not served after the OPENDIRs: {e:#}")),
    }
    Ok(())
}
