//! Memory and clock readings from `/proc`, made without allocating (a stack
//! buffer and raw `open`/`read`), so the allocator and the pressure monitor can take
//! them from anywhere. Each degrades to `None` when the file is missing or odd.

/// Monotonic time in nanoseconds (`CLOCK_MONOTONIC`, served by the vDSO).
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec on our stack.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Monotonic time in nanoseconds at tick resolution (`CLOCK_MONOTONIC_COARSE`,
/// a few ns to read): for ages and timestamps that need no precision.
pub(crate) fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec on our stack.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Reads up to `buf.len()` bytes of the file at `path` into `buf`; returns the
/// number of bytes read.
fn read_file(path: &core::ffi::CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `path` is NUL-terminated; open has no other preconditions.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: `buf[n..]` is valid writable memory of the given length.
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    // SAFETY: `fd` is an open descriptor we own.
    unsafe { libc::close(fd) };
    Some(n)
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut any = false;
    for &b in s {
        if b.is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
            any = true;
        } else if any {
            break;
        }
    }
    any.then_some(v)
}

/// Resident set size of this process in bytes (`/proc/self/statm`, second field).
pub fn process_rss() -> Option<u64> {
    let mut buf = [0u8; 256];
    let n = read_file(c"/proc/self/statm", &mut buf)?;
    let mut fields = buf[..n].split(|&b| b == b' ');
    fields.next()?;
    let pages = parse_u64(fields.next()?)?;
    Some(pages * super::page_size() as u64)
}

/// System memory figures from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    /// `MemTotal`: usable physical memory.
    pub total: u64,
    /// `MemAvailable`: memory available to new work without swapping.
    pub available: u64,
}

/// Reads [`MemInfo`]; `None` when `/proc/meminfo` is missing or lacks the fields.
pub fn meminfo() -> Option<MemInfo> {
    let mut buf = [0u8; 4096];
    let n = read_file(c"/proc/meminfo", &mut buf)?;
    let (mut total, mut available) = (None, None);
    for line in buf[..n].split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"MemTotal:") {
            total = parse_u64(rest).map(|kb| kb * 1024);
        } else if let Some(rest) = line.strip_prefix(b"MemAvailable:") {
            available = parse_u64(rest).map(|kb| kb * 1024);
        }
    }
    Some(MemInfo {
        total: total?,
        available: available?,
    })
}

/// This process's cgroup v2 directory under `/sys/fs/cgroup`, as a
/// NUL-terminated path in `buf`, with `file` appended; `None` without cgroup v2.
fn cgroup_file<'a>(file: &[u8], buf: &'a mut [u8; 512]) -> Option<&'a core::ffi::CStr> {
    let mut raw = [0u8; 512];
    let n = read_file(c"/proc/self/cgroup", &mut raw)?;
    // cgroup v2 has a single line "0::/path".
    let line = raw[..n]
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"0::"))?;
    let path = &line[3..];
    let root = b"/sys/fs/cgroup";
    let total = root.len() + path.len() + 1 + file.len() + 1;
    if total > buf.len() {
        return None;
    }
    let mut i = 0;
    for part in [&root[..], path, b"/", file] {
        buf[i..i + part.len()].copy_from_slice(part);
        i += part.len();
    }
    buf[i] = 0;
    core::ffi::CStr::from_bytes_until_nul(&buf[..=i]).ok()
}

fn read_cgroup_u64(file: &[u8]) -> Option<u64> {
    let mut pbuf = [0u8; 512];
    let path = cgroup_file(file, &mut pbuf)?;
    let mut buf = [0u8; 64];
    let n = read_file(path, &mut buf)?;
    let v = &buf[..n];
    if v.starts_with(b"max") {
        return None;
    }
    parse_u64(v)
}

/// The cgroup v2 `memory.max` of this process in bytes; `None` when not under
/// cgroup v2 or unlimited (`max`).
pub fn cgroup_memory_max() -> Option<u64> {
    read_cgroup_u64(b"memory.max")
}

/// The cgroup v2 `memory.current` of this process in bytes.
pub fn cgroup_memory_current() -> Option<u64> {
    read_cgroup_u64(b"memory.current")
}

/// Memory stall figures from `/proc/pressure/memory` (PSI): the `some` line's
/// 10-second average (percent × 100) and total stall time in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryPsi {
    /// `some avg10` × 100 (e.g. 1.25 % → 125).
    pub some_avg10_centi: u64,
    /// `some total`, µs.
    pub some_total_us: u64,
}

/// Reads [`MemoryPsi`]; `None` where the kernel has no PSI.
pub fn memory_psi() -> Option<MemoryPsi> {
    let mut buf = [0u8; 512];
    let n = read_file(c"/proc/pressure/memory", &mut buf)?;
    let line = buf[..n]
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"some"))?;
    let field = |key: &[u8]| -> Option<&[u8]> {
        let pos = line.windows(key.len()).position(|w| w == key)?;
        Some(&line[pos + key.len()..])
    };
    let avg = field(b"avg10=")?;
    let int = parse_u64(avg)?;
    let frac = avg.iter().position(|&b| b == b'.').and_then(|d| {
        let f = &avg[d + 1..];
        let a = f
            .first()
            .filter(|b| b.is_ascii_digit())
            .map(|b| (b - b'0') as u64)?;
        let b = f
            .get(1)
            .filter(|b| b.is_ascii_digit())
            .map_or(0, |b| (b - b'0') as u64);
        Some(a * 10 + b)
    });
    Some(MemoryPsi {
        some_avg10_centi: int * 100 + frac.unwrap_or(0),
        some_total_us: parse_u64(field(b"total=")?)?,
    })
}

/// The kernel's transparent-huge-page mode
/// (`/sys/kernel/mm/transparent_hugepage/enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThpMode {
    /// Every anonymous mapping may get huge pages.
    Always,
    /// Only ranges advised with `MADV_HUGEPAGE` get huge pages.
    Madvise,
    /// No transparent huge pages.
    Never,
}

/// 0 = not read yet, 1 = always, 2 = madvise, 3 = never, 4 = unknown.
static THP_MODE: crate::sync::AtomicU32 = crate::sync::AtomicU32::new(0);

/// The transparent-huge-page mode, read once and cached; `None` when the kernel
/// has no THP support (the file is missing) or the file is unreadable.
pub(crate) fn thp_mode() -> Option<ThpMode> {
    use crate::sync::Ordering;
    // Relaxed: an idempotent cache of a value that does not change under us
    // (racing first readers compute the same code).
    let mut code = THP_MODE.load(Ordering::Relaxed);
    if code == 0 {
        let mut buf = [0u8; 128];
        code = match read_file(c"/sys/kernel/mm/transparent_hugepage/enabled", &mut buf) {
            Some(n) if buf[..n].windows(8).any(|w| w == b"[always]") => 1,
            Some(n) if buf[..n].windows(9).any(|w| w == b"[madvise]") => 2,
            Some(n) if buf[..n].windows(7).any(|w| w == b"[never]") => 3,
            _ => 4,
        };
        THP_MODE.store(code, Ordering::Relaxed);
    }
    match code {
        1 => Some(ThpMode::Always),
        2 => Some(ThpMode::Madvise),
        3 => Some(ThpMode::Never),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_and_meminfo_are_plausible() {
        let rss = super::process_rss().expect("statm readable on Linux");
        assert!(rss > 0);
        let mi = super::meminfo().expect("meminfo readable on Linux");
        assert!(mi.total >= mi.available && mi.total > rss);
    }

    #[test]
    fn cgroup_and_psi_degrade_to_none_or_read_sane_values() {
        if let Some(cur) = super::cgroup_memory_current() {
            assert!(cur > 0);
        }
        if let Some(max) = super::cgroup_memory_max() {
            assert!(max > 0);
        }
        if let Some(psi) = super::memory_psi() {
            assert!(psi.some_avg10_centi <= 10_000);
        }
    }

    #[test]
    fn thp_mode_matches_the_sysfs_file() {
        let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        let mode = super::thp_mode();
        match text {
            Ok(t) if t.contains("[always]") => assert_eq!(mode, Some(super::ThpMode::Always)),
            Ok(t) if t.contains("[madvise]") => assert_eq!(mode, Some(super::ThpMode::Madvise)),
            Ok(t) if t.contains("[never]") => assert_eq!(mode, Some(super::ThpMode::Never)),
            _ => assert_eq!(mode, None),
        }
    }

    #[test]
    fn clock_is_monotonic() {
        let a = super::now_ns();
        let b = super::now_ns();
        assert!(b >= a);
    }
}
