//! Belady's OPT (MIN): on a miss with a full cache, evict the resident page
//! whose next use is farthest in the future. The best any policy can do
//! without prefetching; the upper reference line of every table.

use std::collections::BinaryHeap;

/// `next[i]`: the index of the next request for `ids[i]` (`u32::MAX`: none).
pub fn next_use(ids: &[u32], distinct: usize) -> Vec<u32> {
    let mut last = vec![u32::MAX; distinct];
    let mut next = vec![u32::MAX; ids.len()];
    for i in (0..ids.len()).rev() {
        let p = ids[i] as usize;
        next[i] = last[p];
        last[p] = i as u32;
    }
    next
}

/// Hits of OPT with `frames` frames.
pub fn hits(ids: &[u32], next: &[u32], distinct: usize, frames: usize) -> u64 {
    // `due[p]`: the next use of resident page p (u32::MAX: not resident).
    const OUT: u64 = u64::MAX;
    let mut due = vec![OUT; distinct];
    let mut resident = 0usize;
    // Max-heap of (next use, page); entries whose due changed are stale.
    let mut heap: BinaryHeap<(u64, u32)> = BinaryHeap::with_capacity(frames + 1);
    let mut hits = 0u64;
    for (i, &p) in ids.iter().enumerate() {
        // A page never used again is "due" after every other (ties by page).
        let n = if next[i] == u32::MAX {
            u64::from(u32::MAX) + i as u64
        } else {
            u64::from(next[i])
        };
        let pu = p as usize;
        if due[pu] != OUT {
            hits += 1;
        } else {
            if resident == frames {
                while let Some((when, victim)) = heap.pop() {
                    if due[victim as usize] == when {
                        due[victim as usize] = OUT;
                        resident -= 1;
                        break;
                    }
                }
            }
            resident += 1;
        }
        due[pu] = n;
        heap.push((n, p));
        if heap.len() > 4 * frames + 1024 {
            heap = due
                .iter()
                .enumerate()
                .filter(|&(_, &d)| d != OUT)
                .map(|(q, &d)| (d, q as u32))
                .collect();
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_larger_than_the_cache() {
        // A loop of 10 pages, 4 frames: OPT keeps 3 and cycles 1 slot.
        let ids: Vec<u32> = (0..1000).map(|i| i % 10).collect();
        let h = hits(&ids, &next_use(&ids, 10), 10, 4);
        // After the first pass, 3 of every 10 requests hit (about 1/3 per
        // revolution of the free slot): Belady's bound (k-1)/(n-1).
        assert!((h as f64 / 990.0 - 3.0 / 9.0).abs() < 0.02, "{h}");
    }

    #[test]
    fn everything_fits() {
        let ids: Vec<u32> = (0..100).map(|i| i % 7).collect();
        assert_eq!(hits(&ids, &next_use(&ids, 7), 7, 7), 93);
    }
}
