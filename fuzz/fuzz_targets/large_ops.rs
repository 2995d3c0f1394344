//! The large-object allocator under arbitrary sequences: allocations (zeroed,
//! prefaulted, huge-page policies), reallocations, frees, advice on our own and
//! foreign ranges, purges. Checks: alignment, no overlap, contents kept across
//! realloc, zeroed blocks read zero, advice outside our mappings is an `Err`.
#![no_main]

use std::alloc::Layout;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustydb_memory::{Advice, AllocOptions, HugePagePolicy, LargeObjectAllocator};

static LARGE: LargeObjectAllocator = LargeObjectAllocator::builder()
    .threshold(64 << 10)
    .cache_max_bytes(32 << 20)
    .purge_delay(Duration::from_millis(1))
    .build();

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        kib: u16,
        align_log: u8,
        zeroed: bool,
        prefault: bool,
        huge: u8,
    },
    Realloc {
        index: u8,
        kib: u16,
    },
    Free(u8),
    Advise {
        index: u8,
        advice: u8,
        offset_pages: u8,
        pages: u8,
    },
    AdviseForeign,
    Purge,
    Decay,
}

const ADVICE: [Advice; 6] = [
    Advice::Normal,
    Advice::Sequential,
    Advice::Random,
    Advice::WillNeed,
    Advice::HugePage,
    Advice::NoHugePage,
];

fuzz_target!(|ops: Vec<Op>| {
    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
    let mut fill = 1u8;
    for op in ops.into_iter().take(64) {
        match op {
            Op::Alloc {
                kib,
                align_log,
                zeroed,
                prefault,
                huge,
            } => {
                let size = 64 * 1024 + (kib as usize % 4096) * 1024;
                let align = 1usize << (12 + align_log % 10); // 4 KiB .. 2 MiB
                let layout = Layout::from_size_align(size, align).unwrap();
                let policy = match huge % 3 {
                    0 => HugePagePolicy::Never,
                    1 => HugePagePolicy::Transparent,
                    _ => HugePagePolicy::Explicit(rustydb_memory::HugePageSize::TwoMiB),
                };
                let opts = AllocOptions::new()
                    .zeroed(zeroed)
                    .prefault(prefault)
                    .huge_pages(policy);
                let p = LARGE.try_alloc_with(layout, opts).expect("memory").as_ptr();
                assert_eq!(p as usize % align, 0, "misaligned");
                for &(q, l, _) in &live {
                    assert!(
                        p as usize + size <= q as usize || q as usize + l.size() <= p as usize,
                        "overlap"
                    );
                }
                // SAFETY: `size` bytes of a live block.
                let s = unsafe { std::slice::from_raw_parts_mut(p, size) };
                if zeroed {
                    assert!(
                        s.iter().step_by(509).all(|&b| b == 0) && s[size - 1] == 0,
                        "not zeroed"
                    );
                }
                s[0] = fill;
                s[size / 2] = fill;
                s[size - 1] = fill;
                live.push((p, layout, fill));
                fill = fill.wrapping_add(1).max(1);
            }
            Op::Realloc { index, kib } if !live.is_empty() => {
                let i = index as usize % live.len();
                let (p, l, f) = live[i];
                let new = 64 * 1024 + (kib as usize % 4096) * 1024;
                // SAFETY: a live block with its layout; on Ok only the new pointer is used.
                let q = unsafe { LARGE.try_realloc(p, l, new) }
                    .expect("realloc")
                    .as_ptr();
                assert_eq!(q as usize % l.align(), 0);
                // SAFETY: the kept prefix of the new block.
                let s = unsafe { std::slice::from_raw_parts_mut(q, new) };
                let keep = l.size().min(new);
                assert_eq!(s[0], f, "realloc lost the start");
                if keep > l.size() / 2 {
                    assert_eq!(s[l.size() / 2], f, "realloc lost the middle");
                }
                s[0] = f;
                s[new / 2] = f;
                s[new - 1] = f;
                live[i] = (q, Layout::from_size_align(new, l.align()).unwrap(), f);
            }
            Op::Free(index) if !live.is_empty() => {
                let (p, l, f) = live.swap_remove(index as usize % live.len());
                // SAFETY: live block.
                let s = unsafe { std::slice::from_raw_parts(p, l.size()) };
                assert!(
                    s[0] == f && s[l.size() / 2] == f && s[l.size() - 1] == f,
                    "contents lost"
                );
                // SAFETY: freed once with its layout.
                unsafe { LARGE.dealloc(p, l) };
            }
            Op::Advise {
                index,
                advice,
                offset_pages,
                pages,
            } if !live.is_empty() => {
                let (p, l, _) = live[index as usize % live.len()];
                let total = l.size() / 4096;
                let off = offset_pages as usize % total.max(1);
                let n = (pages as usize % (total - off).max(1)).max(1);
                let r = LARGE.advise(
                    p.wrapping_add(off * 4096),
                    n * 4096,
                    ADVICE[advice as usize % ADVICE.len()],
                );
                assert!(r.is_ok(), "advice inside a live block failed: {r:?}");
            }
            Op::AdviseForeign => {
                let stack = [0u8; 64];
                assert!(LARGE.advise(stack.as_ptr(), 64, Advice::Random).is_err());
            }
            Op::Purge => {
                LARGE.purge();
            }
            Op::Decay => {
                LARGE.decay();
            }
            _ => {}
        }
    }
    for (p, l, f) in live {
        // SAFETY: live blocks, freed once.
        unsafe {
            assert_eq!(*p, f);
            LARGE.dealloc(p, l);
        }
    }
});
