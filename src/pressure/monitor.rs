//! The monitor thread: samples on the interval, on allocator signals (an
//! eventfd written by [`signal`](super::signal)) and on PSI triggers from
//! `/proc/pressure/memory` where the kernel permits; each source degrades cleanly
//! where absent.

use std::sync::Weak;
use std::thread::JoinHandle;

use super::manager::Shared;
use super::signal;
use crate::sync::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the monitor runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorInfo {
    /// Woken by allocator signals (an eventfd slot was free).
    pub allocator_signal: bool,
    /// Woken by a PSI trigger.
    pub psi_trigger: bool,
}

pub(crate) struct Monitor {
    stop: Arc<AtomicBool>,
    efd: i32,
    slot: Option<usize>,
    psi_fd: i32,
    thread: Option<JoinHandle<()>>,
}

/// Opens a PSI trigger: a stall of 100 ms within a 2 s window (unprivileged
/// triggers need a window that is a multiple of 2 s). -1 where refused.
fn open_psi_trigger() -> i32 {
    // SAFETY: a NUL-terminated path; open has no other preconditions.
    let fd = unsafe {
        libc::open(
            c"/proc/pressure/memory".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return -1;
    }
    let trig = b"some 100000 2000000\0";
    // SAFETY: writes `trig` (valid for its length) to our descriptor.
    let n = unsafe { libc::write(fd, trig.as_ptr().cast(), trig.len()) };
    if n < 0 {
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
        return -1;
    }
    fd
}

impl Monitor {
    pub(crate) fn start(shared: Weak<Shared>) -> Monitor {
        // SAFETY: eventfd has no memory preconditions.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        let slot = if efd >= 0 {
            signal::register_wake_fd(efd)
        } else {
            None
        };
        let psi_fd = open_psi_trigger();
        let stop = Arc::new(AtomicBool::new(false));
        let interval = shared
            .upgrade()
            .map_or(std::time::Duration::from_millis(100), |s| s.interval);
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rustydb-pressure".into())
            .spawn(move || run(shared, st, efd, psi_fd, interval))
            .ok();
        Monitor {
            stop,
            efd,
            slot,
            psi_fd,
            thread,
        }
    }

    pub(crate) fn info(&self) -> MonitorInfo {
        MonitorInfo {
            allocator_signal: self.slot.is_some(),
            psi_trigger: self.psi_fd >= 0,
        }
    }

    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.efd >= 0 {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
            unsafe { libc::write(self.efd, (&one as *const u64).cast(), 8) };
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(s) = self.slot {
            signal::unregister_wake_fd(s);
        }
        for fd in [self.efd, self.psi_fd] {
            if fd >= 0 {
                // SAFETY: our descriptors, no longer used by the joined thread.
                unsafe { libc::close(fd) };
            }
        }
    }
}

fn run(
    shared: Weak<Shared>,
    stop: Arc<AtomicBool>,
    efd: i32,
    psi_fd: i32,
    interval: std::time::Duration,
) {
    let timeout = interval.as_millis().clamp(1, i32::MAX as u128) as i32;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: efd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: psi_fd,
                events: libc::POLLPRI,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of 2 pollfds; negative fds are ignored by poll.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if fds[0].revents & libc::POLLIN != 0 {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64 (drains the eventfd counter).
            unsafe { libc::read(efd, (&mut v as *mut u64).cast(), 8) };
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match shared.upgrade() {
            Some(s) => {
                s.check_now();
            }
            None => return,
        }
    }
}
