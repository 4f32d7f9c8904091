//! `virtiofs-load`: the load generator. Starts a virtio-fs vhost-user daemon binary (ours or
//! virtiofsd: anything with virtiofsd's `--socket-path`/`--shared-dir`) on a prepared share,
//! connects as a VMM and guest driver would, and keeps a chosen number of requests in flight
//! on each request queue, one client thread per queue.
//!
//! Each measurement gets a fresh daemon. It reports requests per second, latency percentiles
//! (from making a request available to seeing its used entry), the daemon's CPU time per
//! request (from `/proc`, of the serving process when the daemon forked into a sandbox) and its
//! peak RSS. Output is one `RESULT key=value ...` line per measurement (what `cargo xtask
//! bench --against` parses) after a human-readable one.
//!
//! The client plays Linux's guest driver (`virtio_ring` and `virtio_fs`). It negotiates
//! VIRTIO_RING_F_EVENT_IDX when the daemon offers it (`--no-event-idx`: never, for comparing),
//! and then:
//! - kicks only when the device's `avail_event` lies among the requests published since the
//!   last kick decision (`vring_need_event`; without EVENT_IDX, unless the device set
//!   VRING_USED_F_NO_NOTIFY);
//! - collects replies as `virtio_fs_requests_done_work` does: interrupts suppressed while it
//!   drains the used ring and resubmits (an interrupt leaves `used_event` behind, so the device
//!   does not signal again; without EVENT_IDX, VRING_AVAIL_F_NO_INTERRUPT), then re-armed
//!   (`used_event` = the last used index seen, a full fence, `used->idx` read again: what came
//!   in between is drained, not slept on), and only then a sleep on the call eventfd, as the
//!   driver waits for the interrupt.
//!
//! `--driver-poll-us N` instead models a guest driver that polls: it reads the used ring for
//! up to N us after its last progress before it re-arms and sleeps. That option is labelled
//! in the output (`driver_poll_us=`) and is off by default: the Linux virtio-fs driver does
//! not poll. Whether EVENT_IDX was negotiated is in the output too (`event_idx=`).
//!
//! The driver's own CPU per request is kept low, as it shares the machine with the daemon:
//! no allocation per request in steady state (each in-flight slot keeps its encoded request;
//! only `unique` and the offset are patched), only the reply's `fuse_out_header` is read
//! unless the workload needs the body, and the clock is read twice per batch of completions
//! rather than per request: a request's completion time is when its batch of used entries
//! was collected, its send time when the batch it belongs to was about to be pushed. The
//! header is still checked for every reply (`unique`, `len` against the used length,
//! `error`).
//!
//! The same frontend as the hostile tier (`virtiofs_frontend`): one test frontend, two uses.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use fuse_abi::{Dirent, EntryOut, InHeader, OpenOut, OutHeader, ROOT_ID, ReadIn, WriteIn};
use virtiofs_frontend::frontend::VIRTIO_RING_F_EVENT_IDX;
use virtiofs_frontend::process::{CpuSample, Daemon};
use virtiofs_frontend::{Config, Frontend, Pending, Queue, Reply, Request};
use zerocopy::FromBytes;

const USAGE: &str = "\
usage: virtiofs-load --daemon PATH [--daemon-arg ARG]... [--workload W]... [--depth N]...
                     [--queues Q] [--secs S] [--warmup S] [--label L] [--work-dir DIR]
                     [--driver-poll-us N] [--no-event-idx]

Drives a virtio-fs vhost-user daemon with N requests in flight per request queue.
  --daemon PATH     the daemon binary; started as PATH --socket-path S --shared-dir D ARG...
  --daemon-arg ARG  one more daemon argument (repeatable)
  --workload W      getattr | lookup | read-4k | read-128k | write-4k | write-128k |
                    create-unlink | readdirplus | all (repeatable; default all)
  --depth N         requests in flight per queue (repeatable; default 1, 16, 128)
  --queues Q        request queues, one client thread each (default 1)
  --secs S          measured seconds per run (default 3)
  --warmup S        unmeasured seconds before (default 0.5)
  --label L         the label of the RESULT lines (default: the daemon's file name)
  --work-dir DIR    where the share and logs go (default: a temporary directory)
  --driver-poll-us N  model a polling guest driver: read the used ring for up to N us
                    after the last progress before sleeping on the call eventfd (default 0:
                    sleep at once, as Linux's virtio-fs driver does)
  --no-event-idx    do not negotiate VIRTIO_RING_F_EVENT_IDX (by default it is negotiated
                    when the daemon offers it, as Linux does); suppression then uses the
                    rings' flags (VRING_USED_F_NO_NOTIFY, VRING_AVAIL_F_NO_INTERRUPT)
";

/// Size of the file READ and WRITE work on.
const DATA_FILE: u64 = 8 * 1024 * 1024;
/// Entries of the READDIRPLUS directory.
const DIR_ENTRIES: usize = 1000;
/// How long any single reply may take before the run is called failed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// READDIRPLUS buffer size (as the kernel asks: one page... the kernel asks for up to
/// max_pages; 64 KiB is what a 6.12 guest's `ls` typically gets).
const READDIR_SIZE: u32 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Getattr,
    Lookup,
    Read4k,
    Read128k,
    Write4k,
    Write128k,
    CreateUnlink,
    Readdirplus,
}

impl Workload {
    const ALL: [Workload; 8] = [
        Workload::Getattr,
        Workload::Lookup,
        Workload::Read4k,
        Workload::Read128k,
        Workload::Write4k,
        Workload::Write128k,
        Workload::CreateUnlink,
        Workload::Readdirplus,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Getattr => "getattr",
            Workload::Lookup => "lookup",
            Workload::Read4k => "read-4k",
            Workload::Read128k => "read-128k",
            Workload::Write4k => "write-4k",
            Workload::Write128k => "write-128k",
            Workload::CreateUnlink => "create-unlink",
            Workload::Readdirplus => "readdirplus",
        }
    }

    fn io_size(self) -> u32 {
        match self {
            Workload::Read4k | Workload::Write4k => 4096,
            Workload::Read128k | Workload::Write128k => 128 * 1024,
            _ => 0,
        }
    }

    /// Reply buffer a request needs.
    fn reply_capacity(self) -> usize {
        match self {
            Workload::Read4k | Workload::Read128k => {
                16 + usize::try_from(self.io_size()).unwrap_or(0)
            }
            Workload::Readdirplus => 16 + usize::try_from(READDIR_SIZE).unwrap_or(0),
            _ => 4096,
        }
    }

    /// Descriptors one request takes with `slot` bytes per descriptor.
    fn descriptors(self, slot: u64) -> usize {
        let request = match self {
            Workload::Write4k | Workload::Write128k => 128 + u64::from(self.io_size()),
            _ => 512,
        };
        let reply = self.reply_capacity() as u64;
        usize::try_from(request.div_ceil(slot) + reply.div_ceil(slot)).unwrap_or(usize::MAX)
    }
}

struct Args {
    daemon: PathBuf,
    daemon_args: Vec<String>,
    workloads: Vec<Workload>,
    depths: Vec<usize>,
    queues: usize,
    secs: Duration,
    warmup: Duration,
    label: String,
    work_dir: Option<PathBuf>,
    driver_poll: Duration,
    /// Negotiate EVENT_IDX when offered.
    event_idx: bool,
}

fn parse_args() -> Result<Option<Args>> {
    let mut daemon = None;
    let mut daemon_args = Vec::new();
    let mut workloads = Vec::new();
    let mut depths = Vec::new();
    let (mut queues, mut secs, mut warmup) = (1usize, 3.0f64, 0.5f64);
    let (mut label, mut work_dir) = (None, None);
    let mut driver_poll_us = 0u64;
    let mut event_idx = true;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--daemon" => daemon = Some(PathBuf::from(value()?)),
            "--daemon-arg" => daemon_args.push(value()?),
            "--workload" => {
                let v = value()?;
                for w in v.split(',') {
                    if w == "all" {
                        workloads.extend(Workload::ALL);
                    } else {
                        let found = Workload::ALL.into_iter().find(|x| x.name() == w);
                        workloads.push(found.with_context(|| format!("unknown workload {w}"))?);
                    }
                }
            }
            "--depth" => {
                for d in value()?.split(',') {
                    let d: usize = d.parse().with_context(|| format!("--depth {d}"))?;
                    if d == 0 {
                        bail!("--depth must be at least 1");
                    }
                    depths.push(d);
                }
            }
            "--queues" => queues = value()?.parse().context("--queues")?,
            "--secs" => secs = value()?.parse().context("--secs")?,
            "--warmup" => warmup = value()?.parse().context("--warmup")?,
            "--label" => label = Some(value()?),
            "--work-dir" => work_dir = Some(PathBuf::from(value()?)),
            "--driver-poll-us" => {
                driver_poll_us = value()?.parse().context("--driver-poll-us")?;
                if driver_poll_us > 1_000_000 {
                    bail!("--driver-poll-us: at most 1000000");
                }
            }
            "--no-event-idx" => event_idx = false,
            "--help" | "-h" => {
                print!("{USAGE}");
                return Ok(None);
            }
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    let daemon = daemon.context("--daemon is required")?;
    if workloads.is_empty() {
        workloads.extend(Workload::ALL);
    }
    if depths.is_empty() {
        depths.extend([1, 16, 128]);
    }
    if queues == 0 || !secs.is_finite() || secs <= 0.0 || !warmup.is_finite() || warmup < 0.0 {
        bail!("--queues must be at least 1, --secs above 0, --warmup not negative");
    }
    let label = label.unwrap_or_else(|| {
        daemon
            .file_name()
            .map_or_else(|| "daemon".to_owned(), |n| n.to_string_lossy().into_owned())
    });
    Ok(Some(Args {
        daemon,
        daemon_args,
        workloads,
        depths,
        queues,
        secs: Duration::from_secs_f64(secs),
        warmup: Duration::from_secs_f64(warmup),
        label,
        work_dir,
        driver_poll: Duration::from_micros(driver_poll_us),
        event_idx,
    }))
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| args.map_or(Ok(()), |a| run(&a))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virtiofs-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let temp;
    let dir = match &args.work_dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let share = dir.join("share");
    prepare_share(&share)?;
    let mut failed = 0;
    for &workload in &args.workloads {
        for &depth in &args.depths {
            match measure(args, &dir, &share, workload, depth) {
                Ok(m) => m.print(args, workload, depth),
                Err(e) => {
                    failed += 1;
                    println!(
                        "FAILED label={} workload={} queues={} depth={depth}: {e:#}",
                        args.label,
                        workload.name(),
                        args.queues
                    );
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} measurement(s) failed");
    }
    Ok(())
}

/// The share every run uses: an 8 MiB file and a 1000-entry directory.
fn prepare_share(share: &Path) -> Result<()> {
    fs::create_dir_all(share.join("dir"))?;
    let data = share.join("data");
    if fs::metadata(&data).map(|m| m.len()).unwrap_or(0) != DATA_FILE {
        let block: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| u8::try_from(i % 251).unwrap_or(0))
            .collect();
        let mut all = Vec::new();
        while u64::try_from(all.len()).unwrap_or(u64::MAX) < DATA_FILE {
            all.extend_from_slice(&block);
        }
        fs::write(&data, &all)?;
    }
    for i in 0..DIR_ENTRIES {
        let p = share.join("dir").join(format!("entry-{i:04}"));
        if !p.exists() {
            fs::File::create(p)?;
        }
    }
    // Leftovers of an interrupted create-unlink run.
    for entry in fs::read_dir(share)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("c-") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// One measurement's figures.
struct Measurement {
    requests: u64,
    errors: u64,
    secs: f64,
    latencies_ns: Vec<u32>,
    cpu: Duration,
    peak_rss: u64,
    /// VIRTIO_RING_F_EVENT_IDX was negotiated.
    event_idx: bool,
}

impl Measurement {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a rank in 0..len
    fn percentile(&self, p: f64) -> u32 {
        if self.latencies_ns.is_empty() {
            return 0;
        }
        let rank = ((self.latencies_ns.len() - 1) as f64 * p).round() as usize;
        self.latencies_ns[rank.min(self.latencies_ns.len() - 1)]
    }

    fn print(&self, args: &Args, workload: Workload, depth: usize) {
        let (label, queues) = (&args.label, args.queues);
        let driver_poll_us = args.driver_poll.as_micros();
        let rps = self.requests as f64 / self.secs;
        let cpu_us = self.cpu.as_secs_f64() * 1e6 / (self.requests.max(1) as f64);
        // Nanoseconds recorded, microseconds with one decimal shown.
        let (p50, p99) = (
            f64::from(self.percentile(0.50)) / 1e3,
            f64::from(self.percentile(0.99)) / 1e3,
        );
        println!(
            "{label:>12} {:>14} q{queues} d{depth:<4} {rps:>9.0} req/s  p50 {p50:>7.1} us  p99 \
             {p99:>7.1} us  cpu {cpu_us:>6.1} us/req  rss {} MiB{}{}{}",
            workload.name(),
            self.peak_rss / (1024 * 1024),
            if self.event_idx {
                ""
            } else {
                "  (no event idx)"
            },
            if driver_poll_us > 0 {
                format!("  (driver polls {driver_poll_us} us)")
            } else {
                String::new()
            },
            if self.errors > 0 {
                format!("  ({} errors)", self.errors)
            } else {
                String::new()
            }
        );
        println!(
            "RESULT label={label} workload={} queues={queues} depth={depth} requests={} \
             errors={} secs={:.3} rps={rps:.1} p50_us={p50:.1} p99_us={p99:.1} cpu_us_per_req={cpu_us:.2} \
             peak_rss_kib={} driver_poll_us={driver_poll_us} event_idx={}",
            workload.name(),
            self.requests,
            self.errors,
            self.secs,
            self.peak_rss / 1024,
            u8::from(self.event_idx)
        );
    }
}

fn start_daemon(args: &Args, dir: &Path, share: &Path) -> Result<(Daemon, PathBuf)> {
    let socket = dir.join("load.sock");
    let _ = fs::remove_file(&socket);
    let mut cmd = Command::new(&args.daemon);
    cmd.arg("--socket-path")
        .arg(&socket)
        .arg("--shared-dir")
        .arg(share)
        .args(&args.daemon_args)
        .env_remove("RUST_LOG");
    let mut daemon = Daemon::spawn(cmd, &dir.join("daemon.log"))
        .with_context(|| format!("cannot start {}", args.daemon.display()))?;
    daemon.wait_for_socket(&socket, START_TIMEOUT)?;
    Ok((daemon, socket))
}

/// What every client thread of a run needs to know about the share.
#[derive(Clone, Copy)]
struct Nodes {
    dir: u64,
    data: u64,
    /// A handle on `data` for READ and WRITE.
    fh: u64,
}

fn measure(
    args: &Args,
    dir: &Path,
    share: &Path,
    workload: Workload,
    depth: usize,
) -> Result<Measurement> {
    let (daemon, socket) = start_daemon(args, dir, share)?;
    let mut config = Config::new(args.queues);
    config.event_idx = args.event_idx;
    let needed = depth * workload.descriptors(config.slot_size) + 8;
    config.queue_size = u16::try_from(needed.next_power_of_two().max(256))
        .context("depth too large for a virtqueue")?;
    let mut f = Frontend::connect(&socket, config).context("vhost-user setup")?;
    let event_idx = f.features() & VIRTIO_RING_F_EVENT_IDX != 0;
    f.init().context("FUSE_INIT")?;
    let nodes = setup(f.requests(), workload)?;
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let until = measure_from + args.secs;
    let results: Vec<Result<Lane>> = std::thread::scope(|scope| {
        let lanes: Vec<_> = f
            .queues_mut()
            .iter_mut()
            .skip(1)
            .enumerate()
            .map(|(lane, q)| {
                let driver_poll = args.driver_poll;
                scope.spawn(move || {
                    drive(
                        q,
                        lane,
                        workload,
                        depth,
                        nodes,
                        (measure_from, until),
                        driver_poll,
                    )
                })
            })
            .collect();
        // CPU over the measured window only.
        std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
        let cpu = CpuSample::start(&daemon);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        let used = cpu.and_then(|c| c.used(&daemon));
        let mut out: Vec<Result<Lane>> = lanes
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect();
        if let (Ok(used), Some(Ok(first))) = (used, out.first_mut()) {
            first.cpu = used;
        }
        out
    });
    let peak_rss = daemon.peak_rss_bytes().unwrap_or(0);
    let mut m = Measurement {
        requests: 0,
        errors: 0,
        secs: args.secs.as_secs_f64(),
        latencies_ns: Vec::new(),
        cpu: Duration::ZERO,
        peak_rss,
        event_idx,
    };
    for lane in results {
        let lane = lane?;
        m.requests += lane.requests;
        m.errors += lane.errors;
        m.cpu += lane.cpu;
        m.latencies_ns.extend(lane.latencies_ns);
    }
    m.latencies_ns.sort_unstable();
    drop(f);
    drop(daemon);
    Ok(m)
}

/// Nodes and handles the workload needs, made on the first request queue.
fn setup(q: &mut Queue, workload: Workload) -> Result<Nodes> {
    let entry = |q: &mut Queue, name: &str| -> Result<u64> {
        let reply = q.call(&Request::lookup(ROOT_ID, name), 4096, REPLY_TIMEOUT)?;
        Ok(reply
            .entry()
            .with_context(|| format!("LOOKUP {name}"))?
            .nodeid
            .get())
    };
    let dir = entry(q, "dir")?;
    let data = entry(q, "data")?;
    let flags = match workload {
        Workload::Write4k | Workload::Write128k => libc::O_RDWR,
        _ => libc::O_RDONLY,
    };
    let fh = q
        .call(&Request::open(data, flags), 4096, REPLY_TIMEOUT)?
        .open()
        .context("OPEN data")?
        .fh
        .get();
    Ok(Nodes { dir, data, fh })
}

/// One client thread's figures.
struct Lane {
    requests: u64,
    errors: u64,
    latencies_ns: Vec<u32>,
    cpu: Duration,
}

/// Where one in-flight slot is in its workload.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The workload's single request.
    Once,
    /// create-unlink: CREATE, then RELEASE of its handle, UNLINK, FORGET of its node.
    Create,
    Release {
        node: u64,
        fh: u64,
    },
    Unlink {
        node: u64,
    },
    Forget {
        node: u64,
    },
    /// readdirplus: the next offset on this slot's own directory handle.
    Readdir {
        fh: u64,
        offset: u64,
    },
}

/// Where `fuse_read_in.offset` and `fuse_write_in.offset` lie in an encoded request: patched
/// in place for each READ, WRITE and READDIRPLUS instead of encoding the request again.
const READ_OFFSET_AT: usize = size_of::<InHeader>() + std::mem::offset_of!(ReadIn, offset);
const WRITE_OFFSET_AT: usize = size_of::<InHeader>() + std::mem::offset_of!(WriteIn, offset);

/// The part of a reply the driver reads when the workload needs nothing else: the
/// `fuse_out_header` (`len`, `error` and `unique`, all checked). Linux's driver does not read
/// READ data either: the device wrote it into the pages it was meant for.
const HEADER_ONLY: usize = size_of::<OutHeader>();

struct Slot {
    step: Step,
    pending: Option<Pending>,
    /// The I/O offset (READ/WRITE) of the next request.
    offset: u64,
    /// The encoded request of the current step; the queue writes each push's `unique` into
    /// it. Encoded once for the single-request workloads (only the offset patched after),
    /// again at every step of create-unlink.
    request: Vec<u8>,
    /// Reply buffer the request gets.
    capacity: usize,
    /// How much of the reply the driver reads: [`HEADER_ONLY`] unless the next step needs
    /// the body (CREATE's entry and handle, READDIRPLUS's last offset).
    read_limit: usize,
}

impl Slot {
    /// A slot at `step` and I/O `offset`, its request not encoded yet
    /// ([`Requests::prepare`] does).
    fn new(step: Step, offset: u64) -> Slot {
        Slot {
            step,
            pending: None,
            offset,
            request: Vec::new(),
            capacity: 0,
            read_limit: 0,
        }
    }
}

/// What building a slot's requests needs besides the slot.
struct Requests<'a> {
    workload: Workload,
    nodes: Nodes,
    lane: usize,
    payload: &'a [u8],
}

impl Requests<'_> {
    /// Makes `slot.request` the request of its current step: for the workloads of one
    /// request (and READDIRPLUS) only the offset is patched once encoded; create-unlink's
    /// steps are encoded afresh (the one workload that still allocates per request, in the
    /// request builders).
    fn prepare(&self, slot: &mut Slot, i: usize) {
        let encoded = !slot.request.is_empty();
        let (at, offset) = match slot.step {
            Step::Once => match self.workload {
                Workload::Read4k | Workload::Read128k => (Some(READ_OFFSET_AT), slot.offset),
                Workload::Write4k | Workload::Write128k => (Some(WRITE_OFFSET_AT), slot.offset),
                _ => (None, 0),
            },
            Step::Readdir { offset, .. } => (Some(READ_OFFSET_AT), offset),
            _ => {
                self.encode(slot, i);
                return;
            }
        };
        if !encoded {
            self.encode(slot, i);
            return;
        }
        if let Some(field) = at.and_then(|at| slot.request.get_mut(at..at + 8)) {
            field.copy_from_slice(&offset.to_le_bytes());
        }
    }

    fn encode(&self, slot: &mut Slot, i: usize) {
        let (nodes, workload) = (self.nodes, self.workload);
        let name = || format!("c-{}-{i}", self.lane);
        let (request, capacity, read_limit) = match slot.step {
            Step::Once => match workload {
                Workload::Getattr => (Request::getattr(nodes.data), 4096, HEADER_ONLY),
                Workload::Lookup => (Request::lookup(ROOT_ID, "data"), 4096, HEADER_ONLY),
                Workload::Read4k | Workload::Read128k => (
                    Request::read(nodes.data, nodes.fh, slot.offset, workload.io_size()),
                    workload.reply_capacity(),
                    HEADER_ONLY,
                ),
                _ => (
                    Request::write(nodes.data, nodes.fh, slot.offset, self.payload),
                    4096,
                    HEADER_ONLY,
                ),
            },
            Step::Create => (
                Request::create(ROOT_ID, &name(), libc::O_RDWR | libc::O_EXCL, 0o644),
                4096,
                HEADER_ONLY + size_of::<EntryOut>() + size_of::<OpenOut>(),
            ),
            Step::Release { node, fh } => (Request::release(node, fh), 4096, HEADER_ONLY),
            Step::Unlink { .. } => (Request::unlink(ROOT_ID, &name()), 4096, HEADER_ONLY),
            Step::Forget { node } => (Request::forget(node, 1), 0, 0),
            Step::Readdir { fh, offset } => (
                Request::readdirplus(nodes.dir, fh, offset, READDIR_SIZE),
                workload.reply_capacity(),
                usize::MAX,
            ),
        };
        request.encode_into(0, &mut slot.request);
        slot.capacity = capacity;
        slot.read_limit = read_limit;
    }
}

/// Pushes slot `i`'s prepared request (without kicking), stamped `sent`.
fn push(
    q: &mut Queue,
    slot: &mut Slot,
    by_head: &mut [Option<usize>],
    i: usize,
    sent: Instant,
) -> Result<()> {
    let pending = q.push_encoded(&mut slot.request, slot.capacity, sent)?;
    by_head[usize::from(pending.head())] = Some(i);
    slot.pending = Some(pending);
    Ok(())
}

/// Checks a reply's `fuse_out_header` against its request: the `unique` must be the
/// request's and `len` the used length, or the run fails (a daemon bug, not a load figure).
/// Returns whether it was a success (`error` 0); a negative `error` is counted as an error
/// reply by the caller. A request without a reply buffer (FORGET) has nothing to check.
fn check_reply(reply: &Reply, unique: u64, expects_reply: bool) -> Result<bool> {
    if !expects_reply {
        return Ok(true);
    }
    let header = reply.header().context("reply")?;
    if header.unique.get() != unique {
        bail!(
            "reply with unique {} for the request with unique {unique}",
            header.unique.get()
        );
    }
    if header.len.get() != reply.used_len {
        bail!(
            "reply to unique {unique}: out_header.len {} but used length {}",
            header.len.get(),
            reply.used_len
        );
    }
    match header.error.get() {
        0 => Ok(true),
        e if e < 0 => Ok(false),
        e => bail!("reply to unique {unique}: positive error {e}"),
    }
}

/// One client thread: keeps `depth` requests in flight on `q` and collects their replies the
/// way Linux's virtio-fs driver does (`virtio_fs_requests_done_work`): interrupts off while it
/// drains the used ring, resubmitting as replies come, then re-armed, and a sleep on the call
/// eventfd only when the re-armed ring is still empty. With `driver_poll` it polls the used
/// ring that long after its last progress before re-arming. The clock is read twice per
/// batch of used entries, not per request: once when the batch is collected (every reply in
/// it completes then) and once before the batch's new requests are pushed (each is sent
/// then); a latency is from the second reading to the first of the batch that returns it.
#[allow(clippy::too_many_lines)]
fn drive(
    q: &mut Queue,
    lane: usize,
    workload: Workload,
    depth: usize,
    nodes: Nodes,
    (measure_from, until): (Instant, Instant),
    driver_poll: Duration,
) -> Result<Lane> {
    let payload: Vec<u8> = (0..workload.io_size())
        .map(|i| u8::try_from(i % 253).unwrap_or(0))
        .collect();
    let requests = Requests {
        workload,
        nodes,
        lane,
        payload: &payload,
    };
    let mut slots: Vec<Slot> = Vec::with_capacity(depth);
    for i in 0..depth {
        let step = match workload {
            Workload::CreateUnlink => Step::Create,
            Workload::Readdirplus => {
                let reply = q.call(&Request::opendir(nodes.dir), 4096, REPLY_TIMEOUT)?;
                let fh = reply.open().context("OPENDIR")?.fh.get();
                Step::Readdir { fh, offset: 0 }
            }
            _ => Step::Once,
        };
        let spread = DATA_FILE / u64::try_from(depth).unwrap_or(1);
        let offset = (u64::try_from(i).unwrap_or(0) * spread) & !4095;
        let mut slot = Slot::new(step, offset);
        requests.prepare(&mut slot, i);
        slots.push(slot);
    }
    let mut out = Lane {
        requests: 0,
        errors: 0,
        latencies_ns: Vec::with_capacity(1 << 20),
        cpu: Duration::ZERO,
    };
    let mut by_head: Vec<Option<usize>> = vec![None; usize::from(q.layout().size)];
    let mut reply = Reply {
        used_len: 0,
        bytes: Vec::with_capacity(workload.reply_capacity()),
    };
    let mut used = Vec::with_capacity(depth);
    let mut ready: Vec<usize> = Vec::with_capacity(depth);
    let mut last_progress = Instant::now();
    for (i, slot) in slots.iter_mut().enumerate() {
        push(q, slot, &mut by_head, i, last_progress)?;
    }
    q.kick_if_needed()?;
    let mut stopping = false;
    let mut in_flight = depth;
    while in_flight > 0 {
        q.disable_interrupts()?;
        loop {
            q.collect_used()?;
            used.clear();
            q.drain_used(&mut used);
            if used.is_empty() {
                break;
            }
            let collected = Instant::now();
            last_progress = collected;
            stopping |= collected >= until;
            let measured = collected >= measure_from && collected < until;
            ready.clear();
            for &(head, used_len) in &used {
                let Some(i) = by_head.get_mut(usize::from(head)).and_then(Option::take) else {
                    bail!("used entry for head {head}, which is not in flight");
                };
                let slot = &mut slots[i];
                let pending = slot.pending.take().context("slot without a request")?;
                let (unique, sent) = (pending.unique(), pending.sent());
                q.finish_into(pending, used_len, slot.read_limit, &mut reply.bytes)?;
                reply.used_len = used_len;
                let ok = check_reply(&reply, unique, slot.capacity > 0)?;
                if measured {
                    out.requests += 1;
                    out.errors += u64::from(!ok);
                    let ns = collected.duration_since(sent).as_nanos();
                    out.latencies_ns.push(u32::try_from(ns).unwrap_or(u32::MAX));
                }
                advance(slot, &reply, workload, ok);
                if stopping {
                    in_flight -= 1;
                } else {
                    requests.prepare(slot, i);
                    ready.push(i);
                }
            }
            if !ready.is_empty() {
                let sent = Instant::now();
                for &i in &ready {
                    push(q, &mut slots[i], &mut by_head, i, sent)?;
                }
                q.kick_if_needed()?;
            }
        }
        if in_flight == 0 {
            break;
        }
        if !driver_poll.is_zero() && poll_used(q, last_progress, driver_poll)? {
            continue;
        }
        // Re-arm; if the device published meanwhile, drain instead of sleeping.
        if !q.enable_interrupts()? {
            continue;
        }
        if !q.wait_call(Duration::from_millis(5))? && last_progress.elapsed() > REPLY_TIMEOUT {
            bail!("no reply for {REPLY_TIMEOUT:?} with {in_flight} in flight");
        }
    }
    // Leave nothing behind for the next run.
    for (i, slot) in slots.iter().enumerate() {
        match slot.step {
            Step::Release { node, fh } => {
                let _ = q.call(&Request::release(node, fh), 4096, REPLY_TIMEOUT);
                let _ = q.call(
                    &Request::unlink(ROOT_ID, &format!("c-{lane}-{i}")),
                    4096,
                    REPLY_TIMEOUT,
                );
            }
            Step::Unlink { .. } => {
                let _ = q.call(
                    &Request::unlink(ROOT_ID, &format!("c-{lane}-{i}")),
                    4096,
                    REPLY_TIMEOUT,
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `--driver-poll-us`: reads `used->idx` until the device publishes or `driver_poll` has
/// passed since `last_progress`; returns whether it published.
fn poll_used(q: &Queue, last_progress: Instant, driver_poll: Duration) -> Result<bool> {
    while last_progress.elapsed() < driver_poll {
        if q.used_pending()? {
            return Ok(true);
        }
        std::hint::spin_loop();
    }
    Ok(false)
}

/// Moves `slot` to its next step after `reply` (`ok`: it was a success; after an error the
/// workload starts over on this slot).
fn advance(slot: &mut Slot, reply: &Reply, workload: Workload, ok: bool) {
    let io = u64::from(workload.io_size());
    slot.offset = if slot.offset + 2 * io > DATA_FILE {
        0
    } else {
        slot.offset + io
    };
    slot.step = match slot.step {
        Step::Once => Step::Once,
        Step::Create => match reply.create() {
            Ok((entry, open)) => Step::Release {
                node: entry.nodeid.get(),
                fh: open.fh.get(),
            },
            Err(_) => Step::Unlink { node: 0 },
        },
        Step::Release { node, .. } => Step::Unlink { node },
        Step::Unlink { node } if node != 0 => Step::Forget { node },
        Step::Unlink { .. } | Step::Forget { .. } => Step::Create,
        // The end of the directory (an empty reply) or an error: start over.
        Step::Readdir { fh, .. } => Step::Readdir {
            fh,
            offset: if ok {
                last_direntplus_offset(reply).unwrap_or(0)
            } else {
                0
            },
        },
    };
}

/// The `off` of the last entry of a READDIRPLUS reply (where to continue); `None` when the
/// reply holds no entry (the end of the directory).
fn last_direntplus_offset(reply: &Reply) -> Option<u64> {
    const ENTRY_OUT: usize = size_of::<EntryOut>();
    const DIRENT: usize = size_of::<Dirent>();
    let body = reply.body().ok()?;
    let mut at = 0usize;
    let mut last = None;
    while at + ENTRY_OUT + DIRENT <= body.len() {
        let (d, _) = Dirent::read_from_prefix(&body[at + ENTRY_OUT..]).ok()?;
        let off = d.off.get();
        let namelen = usize::try_from(d.namelen.get()).ok()?;
        last = Some(off);
        at += (ENTRY_OUT + DIRENT + namelen).div_ceil(8) * 8;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuse_abi::{I32, U32, U64};
    use zerocopy::IntoBytes;

    fn requests(workload: Workload, payload: &[u8]) -> Requests<'_> {
        Requests {
            workload,
            nodes: Nodes {
                dir: 5,
                data: 6,
                fh: 7,
            },
            lane: 0,
            payload,
        }
    }

    #[test]
    fn a_patched_request_is_the_one_encoded_afresh() {
        let payload = [9u8; 4096];
        for workload in [Workload::Read4k, Workload::Write4k, Workload::Getattr] {
            let r = requests(workload, &payload);
            let mut s = Slot::new(Step::Once, 0);
            r.prepare(&mut s, 0);
            s.offset = 3 * 4096;
            r.prepare(&mut s, 0);
            let mut fresh = Slot::new(Step::Once, 3 * 4096);
            r.encode(&mut fresh, 0);
            assert_eq!(s.request, fresh.request, "{workload:?}");
            assert_eq!(s.read_limit, HEADER_ONLY);
        }
        let r = requests(Workload::Readdirplus, &[]);
        let mut s = Slot::new(Step::Readdir { fh: 8, offset: 0 }, 0);
        r.prepare(&mut s, 0);
        s.step = Step::Readdir { fh: 8, offset: 77 };
        r.prepare(&mut s, 0);
        let expected = Request::readdirplus(5, 8, 77, READDIR_SIZE).encode(0);
        assert_eq!(s.request, expected);
    }

    fn reply(unique: u64, error: i32, len: u32, used_len: u32) -> Reply {
        let header = OutHeader {
            len: U32::new(len),
            error: I32::new(error),
            unique: U64::new(unique),
        };
        Reply {
            used_len,
            bytes: header.as_bytes().to_vec(),
        }
    }

    #[test]
    fn every_reply_header_is_checked() {
        assert!(check_reply(&reply(4, 0, 16, 16), 4, true).unwrap());
        assert!(!check_reply(&reply(4, -2, 16, 16), 4, true).unwrap());
        assert!(
            check_reply(&reply(5, 0, 16, 16), 4, true).is_err(),
            "unique"
        );
        assert!(check_reply(&reply(4, 0, 16, 24), 4, true).is_err(), "len");
        assert!(
            check_reply(&reply(4, 3, 16, 16), 4, true).is_err(),
            "error > 0"
        );
        let none = Reply {
            used_len: 0,
            bytes: Vec::new(),
        };
        assert!(check_reply(&none, 4, true).is_err(), "no header");
        assert!(check_reply(&none, 4, false).unwrap(), "FORGET has no reply");
    }
}
