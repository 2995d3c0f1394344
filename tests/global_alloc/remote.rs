//! Remote frees: an object freed by a thread other than the owner of its slab
//! goes home to that slab; the freeing thread never hands it out again while
//! the owner and the slab live, and the owner gets it back.

use super::*;

const N: usize = 10_000;

/// A new block of `layout` (non-zero size), as an address.
fn get(layout: Layout) -> usize {
    // SAFETY: the layouts below have a non-zero size.
    let p = unsafe { alloc(layout) };
    assert!(!p.is_null());
    p as usize
}

/// Frees the block at `p`.
///
/// # Safety
/// `p` came from [`get`] with `layout` and is not used afterwards.
unsafe fn put(p: usize, layout: Layout) {
    // SAFETY: forwarded contract.
    unsafe { dealloc(p as *mut u8, layout) }
}

#[test]
fn remote_frees_go_home_and_are_never_handed_out_by_the_freeing_thread() {
    let _g = exclusive();
    // Empty depots: A's objects then come from slabs A owns, not from full
    // magazines other threads (B included) left there, whose objects belong to
    // those threads' slabs.
    GLOBAL.purge();
    let layout = Layout::from_size_align(200, 8).unwrap();
    let (to_b, from_a) = mpsc::channel::<Vec<usize>>();
    let (to_a, from_b) = mpsc::channel::<()>();
    let a = thread::spawn(move || {
        let all: Vec<usize> = (0..N)
            .map(|i| {
                let p = get(layout);
                // SAFETY: a live block of 200 bytes.
                unsafe { (p as *mut u8).write_bytes(i as u8, 200) };
                p
            })
            .collect();
        // A keeps every tenth object, so each of its slabs stays in use (an
        // emptied slab goes back to the segments, whose units anyone may reuse).
        let kept: Vec<usize> = all.iter().copied().step_by(10).collect();
        let given: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 != 0)
            .map(|(_, &p)| p)
            .collect();
        to_b.send(all).unwrap();
        // Alive until B has freed and allocated.
        from_b.recv().unwrap();
        // B's remote magazine went home each time it filled; A's next objects
        // come from its own slabs, so most are the ones B freed.
        let set: std::collections::HashSet<usize> = given.iter().copied().collect();
        let again: Vec<usize> = (0..given.len()).map(|_| get(layout)).collect();
        let back = again.iter().filter(|p| set.contains(p)).count();
        for &p in again.iter().chain(&kept) {
            // SAFETY: A's live blocks, freed once.
            unsafe { put(p, layout) };
        }
        (back, given.len())
    });
    let all = from_a.recv().unwrap();
    let mut freed = std::collections::HashSet::new();
    for (i, &p) in all.iter().enumerate() {
        // SAFETY: a live block of 200 bytes A wrote.
        assert_eq!(unsafe { *(p as *const u8).add(199) }, i as u8);
        if i % 10 != 0 {
            // SAFETY: A gave this block up; freed once.
            unsafe { put(p, layout) };
            freed.insert(p);
        }
    }
    let mine: Vec<usize> = (0..N).map(|_| get(layout)).collect();
    let reused = mine.iter().filter(|p| freed.contains(p)).count();
    assert_eq!(reused, 0, "B handed out {reused} objects it freed for A");
    to_a.send(()).unwrap();
    let (back, given) = a.join().unwrap();
    for &p in &mine {
        // SAFETY: B's live blocks, freed once.
        unsafe { put(p, layout) };
    }
    // At most one magazine of B's remote frees (≤ 64 rounds) is still on its
    // way home, and A's loaded magazine may hold rounds of a fresh batch.
    assert!(
        back >= given - 256,
        "A got back {back} of the {given} objects B freed"
    );
}

#[test]
fn a_thread_handed_an_object_never_allocates_it() {
    // Hoard's cache-scratch: the main thread allocates one small object per
    // worker; each worker frees it, then allocates and writes small objects in a
    // loop. Reusing the handed object would put the workers' hot objects next to
    // each other (they were allocated together): it goes home instead.
    let _g = shared();
    let layout = Layout::from_size_align(8, 8).unwrap();
    let given: Vec<usize> = (0..4).map(|_| get(layout)).collect();
    let handles: Vec<_> = given
        .iter()
        .map(|&p| {
            thread::spawn(move || {
                // SAFETY: the block handed to this worker, freed once.
                unsafe { put(p, layout) };
                let mut got = Vec::with_capacity(1_000);
                for _ in 0..1_000 {
                    let q = get(layout);
                    // SAFETY: a live 8-byte block, then freed once.
                    unsafe {
                        (q as *mut u64).write(1);
                        put(q, layout);
                    }
                    got.push(q);
                }
                got
            })
        })
        .collect();
    for (h, p) in handles.into_iter().zip(given) {
        let got = h.join().unwrap();
        assert!(
            !got.contains(&p),
            "a worker reused the object it was handed"
        );
    }
}
