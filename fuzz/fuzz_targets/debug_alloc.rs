//! The debugger under hostile sequences: allocations, frees, double frees,
//! interior-pointer frees and writes after free (while the block is still in
//! quarantine). Each fault must be reported; none may corrupt or crash.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustydb_memory::debug::{DebugAlloc, DebugLevel, ReportKind};

static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc { size: u16, align_log: u8 },
    Free(u8),
    DoubleFree(u8),
    InteriorFree(u8),
    WriteAfterFree { index: u8, offset: u16 },
}

fuzz_target!(|ops: Vec<Op>| {
    D.set_sample_every(0);
    D.set_quarantine_bytes(usize::MAX); // freed blocks stay mapped for the whole run
    let before = D.stats().reports;
    let mut live: Vec<(*mut u8, Layout)> = Vec::new();
    let mut freed: Vec<(*mut u8, Layout)> = Vec::new();
    let (mut doubles, mut interiors, mut writes) = (0, 0, 0);
    for op in ops.into_iter().take(200) {
        match op {
            Op::Alloc { size, align_log } => {
                let l = Layout::from_size_align(size as usize + 1, 1 << (align_log % 8)).unwrap();
                // SAFETY: non-zero size.
                let p = unsafe { D.alloc(l) };
                assert!(!p.is_null() && p as usize % l.align() == 0);
                // SAFETY: `l.size()` fresh bytes.
                unsafe { p.write_bytes(0x5A, l.size()) };
                live.push((p, l));
            }
            Op::Free(i) if !live.is_empty() => {
                let (p, l) = live.swap_remove(i as usize % live.len());
                // SAFETY: a live block freed once.
                unsafe { D.dealloc(p, l) };
                freed.push((p, l));
            }
            Op::DoubleFree(i) if !freed.is_empty() => {
                let (p, l) = freed[i as usize % freed.len()];
                // SAFETY: deliberately wrong; the debugger absorbs it (block quarantined).
                unsafe { D.dealloc(p, l) };
                doubles += 1;
            }
            Op::InteriorFree(i) if !live.is_empty() => {
                let (p, l) = live[i as usize % live.len()];
                if l.size() > 32 {
                    // SAFETY: deliberately wrong: a pointer into a live block.
                    unsafe { D.dealloc(p.add(16), Layout::from_size_align(16, 1).unwrap()) };
                    interiors += 1;
                }
            }
            Op::WriteAfterFree { index, offset } if !freed.is_empty() => {
                let (p, l) = freed[index as usize % freed.len()];
                // SAFETY: the block is quarantined (still mapped, owned by the debugger);
                // a deliberate write after free.
                unsafe { *p.add(offset as usize % l.size()) = 0x11 };
                writes += 1;
            }
            _ => {}
        }
    }
    for (p, l) in live.drain(..) {
        // SAFETY: live blocks freed once; their contents were never touched by the faults.
        assert!(
            unsafe { std::slice::from_raw_parts(p, l.size()) }
                .iter()
                .all(|&b| b == 0x5A)
        );
        // SAFETY: each live block was allocated with its layout and is freed once.
        unsafe { D.dealloc(p, l) };
    }
    D.drain_quarantine();
    let made = (D.stats().reports - before) as usize;
    let reports = D.reports(); // the latest 256
    let new = &reports[reports.len() - made.min(reports.len())..];
    let count = |k: ReportKind| new.iter().filter(|r| r.kind == k).count();
    if made <= reports.len() {
        assert_eq!(count(ReportKind::DoubleFree), doubles, "{new:?}");
        assert_eq!(count(ReportKind::InvalidFree), interiors, "{new:?}");
        assert!(
            writes == 0 || count(ReportKind::WriteAfterFree) >= 1,
            "{new:?}"
        );
    } else {
        assert!(made >= doubles + interiors);
    }
});
