//! [`AllocStats`] as text: a `Display` report, and [`AllocStats::write_to_fd`],
//! which writes that report to a file descriptor through a stack buffer — no
//! allocation, so it may run inside the allocator's own callers (the C
//! `rustydb_malloc_stats_print`, a signal-free diagnostic hook, an `atexit`).

use core::fmt::{self, Write};

use super::stats::AllocStats;
use crate::error::{Error, Result};

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / MIB
}

impl fmt::Display for AllocStats {
    /// A report of a few lines, then one line per size class that has slabs.
    ///
    /// ```
    /// use rustydb_memory::RustyAlloc;
    ///
    /// let report = RustyAlloc.stats().to_string();
    /// assert!(report.starts_with("rustydb-memory allocator"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.large;
        writeln!(f, "rustydb-memory allocator")?;
        writeln!(
            f,
            "  in use {:.1} MiB, cached {:.1} MiB, mapped {:.1} MiB",
            mib(self.bytes_in_use),
            mib(self.bytes_cached),
            mib(self.bytes_mapped)
        )?;
        writeln!(
            f,
            "  segments {} (units in use {}), thread caches {}, magazines {}",
            self.segments, self.units_in_use, self.thread_caches, self.magazines
        )?;
        writeln!(
            f,
            "  purges {} ({:.1} MiB returned, {:.1} MiB lazily), segments unmapped {}, \
             depot trims {}, purger passes {}, foreign frees {}",
            self.purges,
            self.purged_bytes as f64 / MIB,
            self.lazily_freed_bytes as f64 / MIB,
            self.unmapped_segments,
            self.depot_trims,
            self.purger_passes,
            self.foreign_frees
        )?;
        writeln!(
            f,
            "  large: {} live ({:.1} MiB asked, {:.1} MiB mapped), {} cached ({:.1} MiB), \
             hits {} misses {}, mmap {} munmap {} mremap {} madvise {}",
            l.live,
            mib(l.bytes_in_use),
            mib(l.bytes_mapped),
            l.cached,
            mib(l.bytes_cached),
            l.cache_hits,
            l.cache_misses,
            l.mmap_calls,
            l.munmap_calls,
            l.mremap_calls,
            l.madvise_calls
        )?;
        writeln!(
            f,
            "  {:>8} {:>12} {:>8} {:>12} {:>12} {:>10}",
            "class", "live objects", "slabs", "thread-held", "depot-held", "live MiB"
        )?;
        for c in self.classes.iter().filter(|c| c.slabs != 0) {
            writeln!(
                f,
                "  {:>8} {:>12} {:>8} {:>12} {:>12} {:>10.2}",
                c.size,
                c.live_objects,
                c.slabs,
                c.thread_cached,
                c.depot_objects,
                mib(c.live_objects * c.size)
            )?;
        }
        Ok(())
    }
}

/// A `fmt::Write` that fills a stack buffer and writes it to a descriptor when
/// full; remembers the first error.
struct FdWriter {
    fd: i32,
    buf: [u8; 1024],
    len: usize,
    errno: i32,
}

impl FdWriter {
    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len && self.errno == 0 {
            let rest = &self.buf[done..self.len];
            // SAFETY: `rest` is a valid, initialised byte range of our buffer.
            let n = unsafe { libc::write(self.fd, rest.as_ptr().cast(), rest.len()) };
            if n > 0 {
                done += n as usize;
            } else if n < 0 && crate::sys::errno() == libc::EINTR {
                continue;
            } else {
                self.errno = if n < 0 {
                    crate::sys::errno()
                } else {
                    libc::EIO
                };
            }
        }
        self.len = 0;
    }
}

impl Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        if self.errno == 0 {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

impl AllocStats {
    /// Writes the [`Display`](fmt::Display) report to the file descriptor `fd`
    /// (2 for standard error) without allocating: the text goes through a
    /// 1 KiB stack buffer and `write(2)`.
    ///
    /// ```
    /// use rustydb_memory::RustyAlloc;
    ///
    /// RustyAlloc.stats().write_to_fd(2).unwrap();
    /// assert!(RustyAlloc.stats().write_to_fd(-1).is_err());
    /// ```
    pub fn write_to_fd(&self, fd: i32) -> Result<()> {
        let mut w = FdWriter {
            fd,
            buf: [0; 1024],
            len: 0,
            errno: 0,
        };
        let _ = write!(w, "{self}");
        w.flush();
        if w.errno == 0 {
            Ok(())
        } else {
            Err(Error::Os {
                op: "write",
                errno: w.errno,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::RustyAlloc;

    #[test]
    fn the_report_names_the_live_classes_and_reaches_a_pipe_whole() {
        let keep: Vec<*mut u8> = (0..100).map(|_| RustyAlloc.malloc(200)).collect();
        let stats = RustyAlloc.stats();
        let text = stats.to_string();
        assert!(text.contains("foreign frees"));
        assert!(text.lines().any(|l| l.trim_start().starts_with("208 ")));
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid array of two descriptors to fill.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            // SAFETY: the read end is ours and closed once, by the File.
            let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            s
        });
        stats.write_to_fd(fds[1]).unwrap();
        // SAFETY: the write end is ours, closed once.
        unsafe { libc::close(fds[1]) };
        assert_eq!(reader.join().unwrap(), text);
        for p in keep {
            // SAFETY: each block came from `malloc` and is freed once.
            unsafe { RustyAlloc.free(p) };
        }
    }
}
