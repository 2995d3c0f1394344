//! Memory contexts under arbitrary sequences: allocations in a root and a
//! child, limits, checkpoints, rewinds, resets. Checks: alignment, no overlap,
//! contents kept, limits fire exactly when the model says.
#![no_main]

use std::alloc::Layout;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustydb_memory::{Error, MemoryContext};

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        child: bool,
        size: u16,
        align_log: u8,
    },
    EndChild,
    Checkpoint,
    Rewind(u8),
    Reset,
}

#[derive(Arbitrary, Debug)]
struct Input {
    root_limit: Option<u16>,
    child_limit: Option<u16>,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let root_limit = input.root_limit.map(|l| l as usize * 4);
    let child_limit = input.child_limit.map(|l| l as usize * 2);
    let b = MemoryContext::builder("fuzz-root")
        .initial_chunk(2048)
        .max_chunk(65536);
    let mut root = match root_limit {
        Some(l) => b.limit(l).build(),
        None => b.build(),
    };
    let mut live: Vec<(usize, usize, u8, bool)> = Vec::new();
    let mut root_own = 0usize;
    let mut cps = Vec::new();
    let mut ops = input.ops.into_iter().take(300).peekable();
    let mut fill = 1u8;
    while ops.peek().is_some() {
        {
            let child = root.child("fuzz-child", child_limit);
            let mut child_own = 0usize;
            while let Some(op) = ops.peek() {
                match op {
                    Op::Alloc {
                        child: in_child,
                        size,
                        align_log,
                    } => {
                        let (in_child, size) = (*in_child, *size as usize);
                        let align = 1usize << (align_log % 8);
                        let ctx = if in_child { &child } else { &root };
                        let over = (in_child && child_limit.is_some_and(|l| child_own + size > l))
                            || root_limit.is_some_and(|l| root_own + child_own + size > l);
                        match ctx.try_alloc_layout(Layout::from_size_align(size, align).unwrap()) {
                            Ok(p) => {
                                assert!(!over, "limit did not fire");
                                assert_eq!(p.as_ptr() as usize % align, 0);
                                // SAFETY: `size` fresh bytes.
                                unsafe { p.as_ptr().write_bytes(fill, size) };
                                for &(a, n, _, _) in &live {
                                    let q = p.as_ptr() as usize;
                                    assert!(
                                        size == 0 || n == 0 || q + size <= a || a + n <= q,
                                        "overlap"
                                    );
                                }
                                live.push((p.as_ptr() as usize, size, fill, in_child));
                                fill = fill.wrapping_add(1).max(1);
                                if in_child {
                                    child_own += size
                                } else {
                                    root_own += size
                                }
                            }
                            Err(Error::LimitExceeded { .. }) => assert!(over, "limit fired early"),
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    Op::Checkpoint => cps.push((
                        root.checkpoint(),
                        root_own,
                        live.iter().filter(|l| !l.3).count(),
                    )),
                    _ => break,
                }
                ops.next();
            }
            for &(a, n, f, _) in &live {
                // SAFETY: live allocations of the root and child.
                assert!(
                    unsafe { std::slice::from_raw_parts(a as *const u8, n) }
                        .iter()
                        .all(|&b| b == f)
                );
            }
            drop(child);
            live.retain(|l| !l.3);
        }
        match ops.next() {
            Some(Op::Reset) => {
                root.reset();
                live.clear();
                cps.clear();
                root_own = 0;
            }
            Some(Op::Rewind(k)) if !cps.is_empty() => {
                let k = k as usize % cps.len();
                let (cp, own, n) = cps[k];
                root.rewind(&cp).expect("valid checkpoint");
                root_own = own;
                live.truncate(n);
                cps.truncate(k + 1);
            }
            _ => {}
        }
    }
});
