//! What the process costs, read from the kernel: CPU time (`getrusage`), bytes written
//! (`/proc/self/io`), context switches per thread (`/proc/self/task/*/status`), and the
//! peak RSS reset (`/proc/self/clear_refs`). Linux only, like the report.

use std::time::Duration;

/// CPU time spent in user and kernel mode.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// User mode.
    pub user: Duration,
    /// Kernel mode.
    pub sys: Duration,
    /// Voluntary context switches (the thread blocked).
    pub voluntary: u64,
    /// Involuntary context switches (the thread was preempted).
    pub involuntary: u64,
}

impl Cpu {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.sys
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

const RUSAGE_SELF: i32 = 0;
const RUSAGE_THREAD: i32 = 1;

#[cfg(target_os = "linux")]
mod ffi {
    /// `struct rusage` of 64-bit Linux: two `timeval`s, then fourteen `long`s.
    #[repr(C)]
    pub struct RUsage {
        pub utime: [i64; 2],
        pub stime: [i64; 2],
        pub rest: [i64; 14],
    }

    /// `struct timespec` of 64-bit Linux.
    #[repr(C)]
    pub struct Timespec {
        pub sec: i64,
        pub nsec: i64,
    }

    extern "C" {
        // The C library std links anyway; the `libc` crate is not a dependency here.
        pub fn getrusage(who: i32, usage: *mut RUsage) -> i32;
        pub fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn rusage(who: i32) -> Option<Cpu> {
    let mut u = ffi::RUsage {
        utime: [0; 2],
        stime: [0; 2],
        rest: [0; 14],
    };
    // SAFETY: `u` has the layout of 64-bit Linux's `struct rusage`, which getrusage fills.
    if unsafe { ffi::getrusage(who, &mut u) } != 0 {
        return None;
    }
    let tv = |t: [i64; 2]| Duration::from_secs(t[0] as u64) + Duration::from_micros(t[1] as u64);
    Some(Cpu {
        user: tv(u.utime),
        sys: tv(u.stime),
        // ru_nvcsw and ru_nivcsw are the last two fields.
        voluntary: u.rest[12] as u64,
        involuntary: u.rest[13] as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn rusage(_who: i32) -> Option<Cpu> {
    None
}

/// CPU time of the whole process (every thread, the ones that ended included), split
/// into user and system time, and its context switches. The split comes from tick
/// sampling; the total is exact.
pub fn process_cpu() -> Option<Cpu> {
    rusage(RUSAGE_SELF)
}

/// CPU time of the calling thread, split and with its context switches. `getrusage`
/// gives a thread's times at tick granularity (milliseconds): use [`thread_cpu_time`]
/// for short spans.
pub fn thread_cpu() -> Option<Cpu> {
    rusage(RUSAGE_THREAD)
}

const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn cpu_clock(clock: i32) -> Option<Duration> {
    let mut ts = ffi::Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` has the layout of 64-bit Linux's `struct timespec`.
    if unsafe { ffi::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(ts.sec as u64, ts.nsec as u32))
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn cpu_clock(_clock: i32) -> Option<Duration> {
    None
}

/// CPU time of the whole process, to the nanosecond (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_time() -> Option<Duration> {
    cpu_clock(CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread, to the nanosecond (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Option<Duration> {
    cpu_clock(CLOCK_THREAD_CPUTIME_ID)
}

/// The I/O counters of `/proc/self/io`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Io {
    /// Bytes handed to `write` and friends.
    pub wchar: u64,
    /// Bytes this process caused to be sent to storage (page cache pages it dirtied).
    pub write_bytes: u64,
    /// Dirtied bytes that were never written after all (a file truncated or deleted
    /// before writeback).
    pub cancelled_write_bytes: u64,
}

impl Io {
    /// What was counted between `earlier` and `self`.
    pub fn since(&self, earlier: &Io) -> Io {
        Io {
            wchar: self.wchar.saturating_sub(earlier.wchar),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_sub(earlier.cancelled_write_bytes),
        }
    }
}

/// `/proc/self/io`, or `None` where it cannot be read.
pub fn io() -> Option<Io> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(Io {
        wchar: field("wchar")?,
        write_bytes: field("write_bytes")?,
        cancelled_write_bytes: field("cancelled_write_bytes")?,
    })
}

/// One thread's context switches so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSwitches {
    /// Thread id.
    pub tid: u32,
    /// Its name (`comm`).
    pub name: String,
    /// Voluntary plus involuntary context switches.
    pub switches: u64,
}

/// The context switches of every live thread of this process.
pub fn task_switches() -> Vec<TaskSwitches> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread that ended since the directory was read is simply left out.
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map_or_else(String::new, |n| n.trim().to_owned());
        out.push(TaskSwitches {
            tid,
            name,
            switches: field("voluntary_ctxt_switches") + field("nonvoluntary_ctxt_switches"),
        });
    }
    out.sort_by_key(|t| t.tid);
    out
}

/// Context switches between two [`task_switches`] snapshots, per thread name (threads
/// that started in between count in full), sorted by name; threads with none left out.
pub fn switches_between(before: &[TaskSwitches], after: &[TaskSwitches]) -> Vec<(String, u64)> {
    let mut per_name: Vec<(String, u64)> = Vec::new();
    for t in after {
        let earlier = before
            .iter()
            .find(|b| b.tid == t.tid)
            .map_or(0, |b| b.switches);
        let n = t.switches.saturating_sub(earlier);
        if n == 0 {
            continue;
        }
        match per_name.iter_mut().find(|(name, _)| *name == t.name) {
            Some((_, sum)) => *sum += n,
            None => per_name.push((t.name.clone(), n)),
        }
    }
    per_name.sort();
    per_name
}

/// Resets the peak RSS (`VmHWM`) to the current RSS (Linux 4.0 and later).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `kB` value of a `/proc/self/status` field.
pub fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
