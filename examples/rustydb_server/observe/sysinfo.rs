//! Process readings: CPU use (from `/proc/self/stat`, sampled every second)
//! and disk I/O (`/proc/self/io`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// CPU time of this process (user + system), in seconds.
pub fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some((utime + stime) / hz)
}

/// Bytes this process caused to be read from and written to storage
/// (`read_bytes`, `write_bytes` of `/proc/self/io`); `None` where unreadable.
pub fn process_io() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/io").ok()?;
    let get = |k: &str| -> Option<u64> {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((get("read_bytes:")?, get("write_bytes:")?))
}

/// Threads of this process.
pub fn process_threads() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU use over the last sampling interval.
#[derive(Debug)]
pub struct CpuSampler {
    last: Mutex<(Instant, f64)>,
    /// Percent of one core (`top`'s convention), as f64 bits; NaN while
    /// `/proc/self/stat` cannot be read.
    percent_bits: AtomicU64,
}

impl Default for CpuSampler {
    fn default() -> Self {
        let cpu = process_cpu_seconds();
        let start = if cpu.is_some() { 0.0 } else { f64::NAN };
        Self {
            last: Mutex::new((Instant::now(), cpu.unwrap_or(0.0))),
            percent_bits: AtomicU64::new(start.to_bits()),
        }
    }
}

impl CpuSampler {
    /// Takes a sample (called every second by a background task).
    pub fn sample(&self) {
        let Some(cpu) = process_cpu_seconds() else {
            self.percent_bits
                .store(f64::NAN.to_bits(), Ordering::Relaxed);
            return;
        };
        let now = Instant::now();
        let mut l = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let dt = now.duration_since(l.0).as_secs_f64();
        if dt >= 0.2 {
            let pct = ((cpu - l.1) / dt * 100.0).max(0.0);
            self.percent_bits.store(pct.to_bits(), Ordering::Relaxed);
            *l = (now, cpu);
        }
    }

    /// Percent of one core used over the last interval; `None` where the
    /// process's CPU time cannot be read.
    pub fn percent(&self) -> Option<f64> {
        let v = f64::from_bits(self.percent_bits.load(Ordering::Relaxed));
        (!v.is_nan()).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_plausible() {
        let a = process_cpu_seconds().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = process_cpu_seconds().unwrap();
        assert!(b >= a);
        assert!(process_threads().unwrap() >= 1);
    }
}
