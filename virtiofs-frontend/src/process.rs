//! The daemon under test as a child process: its log, and the figures a test bounds (CPU
//! time from `/proc/PID/stat`, resident memory from `/proc/PID/status`, whether it still runs).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sys;

/// The first bytes of a daemon's output kept in its log file; the rest is only counted (a
/// daemon flooding its log must not fill the disk of the machine testing it).
pub const LOG_FILE_CAP: u64 = 4 * 1024 * 1024;
/// Bytes of the output's end kept in memory for [`Daemon::log_tail`].
const TAIL: usize = 4096;

/// What the output readers share.
#[derive(Debug, Default)]
struct LogState {
    bytes: AtomicU64,
    tail: Mutex<VecDeque<u8>>,
}

/// Copies one output stream of the daemon: counts it, keeps its tail, writes the first
/// [`LOG_FILE_CAP`] bytes (of both streams together) to the log file.
fn pump(mut from: impl Read, file: Arc<Mutex<File>>, state: Arc<LogState>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let before = state
            .bytes
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        if before < LOG_FILE_CAP {
            let room = usize::try_from(LOG_FILE_CAP - before).unwrap_or(usize::MAX);
            let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = f.write_all(&chunk[..room.min(n)]);
        }
        let mut tail = state.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.extend(chunk.iter().rev().take(TAIL).rev());
        let excess = tail.len().saturating_sub(TAIL);
        tail.drain(..excess);
    }
}

/// A daemon started by the test; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    log: PathBuf,
    state: Arc<LogState>,
    pumps: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `command`; its standard output and error are counted, and their first
    /// [`LOG_FILE_CAP`] bytes written to `log`.
    ///
    /// # Errors
    ///
    /// The log cannot be created, or the program cannot be started.
    pub fn spawn(mut command: Command, log: &Path) -> io::Result<Daemon> {
        let file = Arc::new(Mutex::new(
            File::options().create(true).append(true).open(log)?,
        ));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let state = Arc::new(LogState::default());
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            let (file, state) = (Arc::clone(&file), Arc::clone(&state));
            pumps.push(std::thread::spawn(move || pump(out, file, state)));
        }
        if let Some(err) = child.stderr.take() {
            let (file, state) = (Arc::clone(&file), Arc::clone(&state));
            pumps.push(std::thread::spawn(move || pump(err, file, state)));
        }
        Ok(Daemon {
            child,
            log: log.to_path_buf(),
            state,
            pumps,
            exited: None,
        })
    }

    /// Whether `socket` appeared within `timeout` while the daemon ran (a vhost-user daemon is
    /// ready once its listening socket exists).
    ///
    /// # Errors
    ///
    /// The daemon exited first (its status and the tail of its log), or the time ran out.
    pub fn wait_for_socket(&mut self, socket: &Path, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while !socket.exists() {
            if let Some(status) = self.exit_status() {
                return Err(io::Error::other(format!(
                    "the daemon exited at start ({status}): {}",
                    self.log_tail(400)
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no socket after {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, if it has (reaps it); `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// The process that serves: the daemon itself, or, when it forked into a sandbox (a
    /// virtiofs-device or virtiofsd `--sandbox namespace` parent only waits for its child),
    /// the only child of its only child and so on. CPU, memory and descriptors are measured
    /// there.
    pub fn serving_pid(&self) -> u32 {
        let mut pid = self.pid();
        for _ in 0..4 {
            match children_of(pid)[..] {
                [child] => pid = child,
                _ => break,
            }
        }
        pid
    }

    /// User plus system CPU time consumed so far (all threads of the serving process).
    ///
    /// # Errors
    ///
    /// `/proc/PID/stat` cannot be read or parsed (the process is gone).
    pub fn cpu_time(&self) -> io::Result<Duration> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.serving_pid()))?;
        cpu_time_of_stat(&stat)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc stat"))
    }

    /// Resident set size in bytes (`VmRSS` of the serving process).
    ///
    /// # Errors
    ///
    /// `/proc/PID/status` cannot be read or has no `VmRSS` (the process is gone).
    pub fn rss_bytes(&self) -> io::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.serving_pid()))?;
        rss_of_status(&status).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS"))
    }

    /// Peak resident set size in bytes (`VmHWM` of the serving process).
    ///
    /// # Errors
    ///
    /// `/proc/PID/status` cannot be read or has no `VmHWM` (the process is gone).
    pub fn peak_rss_bytes(&self) -> io::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.serving_pid()))?;
        status_kib(&status, "VmHWM:")
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmHWM"))
    }

    /// Number of open file descriptors (entries of `/proc/PID/fd` of the serving process).
    ///
    /// # Errors
    ///
    /// The directory cannot be read.
    pub fn open_fds(&self) -> io::Result<usize> {
        Ok(fs::read_dir(format!("/proc/{}/fd", self.serving_pid()))?.count())
    }

    /// Bytes it has written to its standard output and error so far (read by this process;
    /// a few milliseconds may pass between the daemon's write and the count).
    pub fn log_bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    /// The log file (the first [`LOG_FILE_CAP`] bytes of its output).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `max` bytes (at most 4 KiB) of its output, lossily decoded.
    pub fn log_tail(&self, max: usize) -> String {
        let tail = self
            .state
            .tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let bytes: Vec<u8> = tail.iter().copied().collect();
        let start = bytes.len().saturating_sub(max);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// Kills (SIGKILL) and reaps it; returns how it ended if it had ended by itself first.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let before = self.exit_status();
        if before.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        for pump in self.pumps.drain(..) {
            let _ = pump.join();
        }
        before
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CPU-usage measurement over an interval.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    cpu: Duration,
    at: Instant,
}

impl CpuSample {
    /// Starts measuring `daemon`.
    ///
    /// # Errors
    ///
    /// As [`Daemon::cpu_time`].
    pub fn start(daemon: &Daemon) -> io::Result<CpuSample> {
        Ok(CpuSample {
            cpu: daemon.cpu_time()?,
            at: Instant::now(),
        })
    }

    /// CPU time used since the start.
    ///
    /// # Errors
    ///
    /// As [`Daemon::cpu_time`].
    pub fn used(&self, daemon: &Daemon) -> io::Result<Duration> {
        Ok(daemon.cpu_time()?.saturating_sub(self.cpu))
    }

    /// CPU used since the start as a percentage of one CPU over the wall time elapsed.
    ///
    /// # Errors
    ///
    /// As [`Daemon::cpu_time`].
    pub fn percent(&self, daemon: &Daemon) -> io::Result<f64> {
        let used = self.used(daemon)?.as_secs_f64();
        let wall = self.at.elapsed().as_secs_f64().max(1e-3);
        Ok(100.0 * used / wall)
    }
}

/// The children of `pid`: `/proc/PID/task/PID/children`, or (a kernel without it) a scan of
/// `/proc` for processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    if let Ok(list) = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return list
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
    }
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .is_some_and(|pp| pp.trim() == pid.to_string())
            })
        })
        .collect()
}

/// utime + stime of a `/proc/PID/stat` line.
fn cpu_time_of_stat(stat: &str) -> Option<Duration> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3 of the line; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = sys::clock_ticks_per_second();
    Some(Duration::from_nanos(
        (utime + stime).saturating_mul(1_000_000_000) / ticks,
    ))
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
fn rss_of_status(status: &str) -> Option<u64> {
    status_kib(status, "VmRSS:")
}

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_are_parsed() {
        let ticks = sys::clock_ticks_per_second();
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        let cpu = cpu_time_of_stat(stat).unwrap();
        assert_eq!(cpu, Duration::from_nanos(300 * 1_000_000_000 / ticks));
        let status = "Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(rss_of_status(status), Some(1234 * 1024));
        assert_eq!(rss_of_status("Name: x\n"), None);
    }

    #[test]
    fn our_own_process_can_be_measured() {
        let mut sleep = Command::new("sleep");
        sleep.arg("5");
        let log = std::env::temp_dir().join(format!("vfe-test-{}.log", std::process::id()));
        let mut d = Daemon::spawn(sleep, &log).unwrap();
        assert!(d.alive());
        // The peak is the high-water mark of the current image, which exec resets: compare
        // only once `sleep` runs, and read the current size first (it can only have been
        // below the later peak).
        let comm = format!("/proc/{}/comm", d.pid());
        for _ in 0..500 {
            if fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let rss = d.rss_bytes().unwrap();
        assert!(rss > 0);
        assert!(d.peak_rss_bytes().unwrap() >= rss);
        let _ = d.cpu_time().unwrap();
        assert_eq!(d.serving_pid(), d.pid());
        assert_eq!(d.stop(), None);
        assert!(!d.alive());
        let _ = fs::remove_file(d.log_path());
    }

    #[test]
    fn a_forked_daemon_is_measured_in_its_child() {
        // `sh -c 'sleep 2; :'` forks sleep and waits, as a sandboxing parent does.
        let mut sh = Command::new("sh");
        sh.args(["-c", "sleep 2; :"]);
        let log = std::env::temp_dir().join(format!("vfe-fork-{}.log", std::process::id()));
        let mut d = Daemon::spawn(sh, &log).unwrap();
        let comm = |pid: u32| fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // Until the child has exec'd, it is a second `sh`.
        let deadline = Instant::now() + Duration::from_secs(2);
        while comm(d.serving_pid()).trim() != "sleep" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(d.serving_pid(), d.pid());
        assert_eq!(comm(d.serving_pid()).trim(), "sleep");
        d.stop();
        let _ = fs::remove_file(d.log_path());
    }
}
