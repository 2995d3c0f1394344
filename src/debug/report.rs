//! Reports: what the debugger found, kept as plain data in a bounded ring
//! (written from inside the allocator without allocating), printed to stderr
//! as they happen, and turned into [`Report`]s with resolved stacks on request.

use crate::sync::{Lock, RawLock};

use super::components;
use super::stacks;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ReportKind {
    /// A block freed twice.
    DoubleFree,
    /// A pointer that is not a live block: never handed out here, or freed so
    /// long ago that it has left the quarantine (a second free of such a block is
    /// reported as this).
    InvalidFree,
    /// A freed block was written to while in quarantine.
    WriteAfterFree,
    /// Bytes after the block were overwritten (found on free).
    Overflow,
    /// Bytes before the block (its header or leading redzone) were overwritten.
    Underflow,
    /// An access to a sampled, guarded block faulted (use after free or overflow).
    GuardPageFault,
}

impl ReportKind {
    fn as_str(self) -> &'static str {
        match self {
            ReportKind::DoubleFree => "double free",
            ReportKind::InvalidFree => "invalid free",
            ReportKind::WriteAfterFree => "write after free",
            ReportKind::Overflow => "heap overflow",
            ReportKind::Underflow => "heap underflow",
            ReportKind::GuardPageFault => "guard page fault",
        }
    }
}

/// A finding, with the sites involved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Report {
    /// What happened.
    pub kind: ReportKind,
    /// The block's user address.
    pub addr: usize,
    /// Its size (0 if unknown).
    pub size: usize,
    /// Offset of the first corrupted byte from `addr`, where relevant.
    pub offset: isize,
    /// The allocating component.
    pub component: String,
    /// Allocation site (resolved frames, innermost first; empty without backtraces).
    pub alloc_site: Vec<String>,
    /// Free site (first free for a double free).
    pub free_site: Vec<String>,
    /// The offending site (second free, or the invalid free).
    pub site: Vec<String>,
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "{} of {:#x} ({} bytes, component {})",
            self.kind.as_str(),
            self.addr,
            self.size,
            self.component
        )?;
        if self.offset != 0 {
            writeln!(f, "  first corrupted byte at offset {}", self.offset)?;
        }
        for (title, site) in [
            ("here", &self.site),
            ("allocated at", &self.alloc_site),
            ("freed at", &self.free_site),
        ] {
            if !site.is_empty() {
                writeln!(f, "  {title}:")?;
                for l in site.iter().take(12) {
                    writeln!(f, "    {l}")?;
                }
            }
        }
        Ok(())
    }
}

/// The plain-data form kept in the ring.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawReport {
    pub(crate) kind: u8,
    pub(crate) addr: usize,
    pub(crate) size: usize,
    pub(crate) offset: isize,
    pub(crate) component: u16,
    pub(crate) alloc_stack: u32,
    pub(crate) free_stack: u32,
    pub(crate) site_stack: u32,
}

const KINDS: [ReportKind; 6] = [
    ReportKind::DoubleFree,
    ReportKind::InvalidFree,
    ReportKind::WriteAfterFree,
    ReportKind::Overflow,
    ReportKind::Underflow,
    ReportKind::GuardPageFault,
];

impl RawReport {
    pub(crate) fn new(kind: ReportKind, addr: usize) -> Self {
        RawReport {
            kind: KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8,
            addr,
            ..Default::default()
        }
    }

    pub(crate) fn kind(&self) -> ReportKind {
        KINDS[self.kind as usize % KINDS.len()]
    }

    pub(crate) fn resolve(&self) -> Report {
        Report {
            kind: self.kind(),
            addr: self.addr,
            size: self.size,
            offset: self.offset,
            component: components::name(self.component),
            alloc_site: stacks::resolve(self.alloc_stack),
            free_site: stacks::resolve(self.free_stack),
            site: stacks::resolve(self.site_stack),
        }
    }

    /// One line to stderr, formatted in a stack buffer (no allocation).
    pub(crate) fn print(&self) {
        let mut buf = StackBuf { b: [0; 192], n: 0 };
        let _ = core::fmt::write(
            &mut buf,
            format_args!(
                "rustydb-memory debug: {} of {:#x} ({} bytes, offset {}, component #{})\n",
                self.kind().as_str(),
                self.addr,
                self.size,
                self.offset,
                self.component
            ),
        );
        // SAFETY: writes `n` initialised bytes of `buf` to stderr.
        unsafe { libc::write(2, buf.b.as_ptr().cast(), buf.n) };
    }
}

struct StackBuf {
    b: [u8; 192],
    n: usize,
}

impl core::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let take = s.len().min(self.b.len() - self.n);
        self.b[self.n..self.n + take].copy_from_slice(&s.as_bytes()[..take]);
        self.n += take;
        Ok(())
    }
}

const RING: usize = 256;

struct Ring {
    items: [RawReport; RING],
    total: usize,
}

/// The bounded ring of raw reports. A lock rather than a lock-free queue
/// (`lock_freedom`): pushes happen inside the allocator, where nothing may
/// allocate through the global allocator, and they are rare.
pub(crate) struct Reports {
    ring: Lock<Ring>,
}

impl Reports {
    pub(crate) const fn new() -> Self {
        Self {
            ring: Lock::new(Ring {
                items: [RawReport {
                    kind: 0,
                    addr: 0,
                    size: 0,
                    offset: 0,
                    component: 0,
                    alloc_stack: 0,
                    free_stack: 0,
                    site_stack: 0,
                }; RING],
                total: 0,
            }),
        }
    }

    /// The lock, for the fork handlers.
    pub(crate) fn raw(&self) -> &RawLock {
        self.ring.raw()
    }

    pub(crate) fn push(&self, r: RawReport) {
        let mut ring = self.ring.lock();
        let i = ring.total % RING;
        ring.items[i] = r;
        ring.total += 1;
    }

    /// Findings made so far.
    pub(crate) fn total(&self) -> usize {
        self.ring.lock().total
    }

    /// Reports made so far (the most recent `RING`), oldest first. The copy is
    /// taken under the lock into a stack array and the `Vec` built after, so
    /// no allocation happens with the lock held.
    pub(crate) fn all(&self) -> Vec<RawReport> {
        let (items, total) = {
            let ring = self.ring.lock();
            (ring.items, ring.total)
        };
        let start = total.saturating_sub(RING);
        (start..total).map(|i| items[i % RING]).collect()
    }
}
