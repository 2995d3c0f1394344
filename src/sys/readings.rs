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
    fn clock_is_monotonic() {
        let a = super::now_ns();
        let b = super::now_ns();
        assert!(b >= a);
    }
}
