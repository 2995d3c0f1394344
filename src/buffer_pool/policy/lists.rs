//! Intrusive lists shared by the policies: doubly linked lists of frame
//! indices (arrays, no allocation after construction), the same lists with
//! the page each frame holds, and a bounded queue of page ids for ghost /
//! history entries.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{FrameId, Tier};

/// Hashes a page id with SplitMix64's finaliser: a bijective full-avalanche
/// mix, a few cycles against SipHash's tens. Page ids come from the pool,
/// not from untrusted input, so a keyed hash buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PageHasher(u64);

impl Hasher for PageHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ u64::from(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = mix(self.0 ^ x);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// SplitMix64's finaliser.
#[inline(always)]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A map keyed by page id.
pub(crate) type PageMap<V> = HashMap<u64, V, BuildHasherDefault<PageHasher>>;

pub(crate) const NIL: u32 = u32::MAX;
/// "In no list".
pub(crate) const NONE: u8 = u8::MAX;

/// Up to `N` doubly linked lists over frames `0..capacity`; a frame is in at
/// most one list. `front` is the newest (MRU) end, `back` the oldest.
///
/// One node per frame (links and list in 12 bytes), so a move touches one
/// cache line per frame.
#[derive(Debug, Clone)]
pub(crate) struct FrameLists<const N: usize> {
    nodes: Vec<Link>,
    head: [u32; N],
    tail: [u32; N],
    len: [usize; N],
}

#[derive(Debug, Clone, Copy)]
struct Link {
    /// Towards the front (newer).
    prev: u32,
    /// Towards the back (older).
    next: u32,
    which: u8,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    which: NONE,
};

impl<const N: usize> FrameLists<N> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            nodes: vec![UNLINKED; capacity],
            head: [NIL; N],
            tail: [NIL; N],
            len: [0; N],
        }
    }

    /// The list `f` is in (`NONE` if none; out-of-range frames are in none).
    #[inline]
    pub(crate) fn list_of(&self, f: FrameId) -> u8 {
        self.nodes.get(f as usize).map_or(NONE, |n| n.which)
    }

    #[inline]
    pub(crate) fn len(&self, l: usize) -> usize {
        self.len[l]
    }

    #[inline]
    pub(crate) fn back(&self, l: usize) -> Option<FrameId> {
        (self.tail[l] != NIL).then_some(self.tail[l])
    }

    /// The frame after `f` towards the front (newer), if any.
    #[inline]
    pub(crate) fn newer(&self, f: FrameId) -> Option<FrameId> {
        let p = self.nodes[f as usize].prev;
        (p != NIL).then_some(p)
    }

    /// The frame after `f` towards the back (older), if any.
    #[inline]
    pub(crate) fn older(&self, f: FrameId) -> Option<FrameId> {
        let n = self.nodes[f as usize].next;
        (n != NIL).then_some(n)
    }

    /// The newest frame of list `l`.
    #[inline]
    pub(crate) fn front(&self, l: usize) -> Option<FrameId> {
        (self.head[l] != NIL).then_some(self.head[l])
    }

    pub(crate) fn push_front(&mut self, l: usize, f: FrameId) {
        debug_assert_eq!(self.nodes[f as usize].which, NONE);
        let h = self.head[l];
        self.nodes[f as usize] = Link {
            prev: NIL,
            next: h,
            which: l as u8,
        };
        if h != NIL {
            self.nodes[h as usize].prev = f;
        } else {
            self.tail[l] = f;
        }
        self.head[l] = f;
        self.len[l] += 1;
    }

    /// Unlinks `f` from its neighbours in list `l` (its own node is left
    /// stale for the caller to overwrite).
    #[inline]
    fn unlink(&mut self, l: usize, f: FrameId) {
        let Link {
            prev: p, next: n, ..
        } = self.nodes[f as usize];
        if p != NIL {
            self.nodes[p as usize].next = n;
        } else {
            self.head[l] = n;
        }
        if n != NIL {
            self.nodes[n as usize].prev = p;
        } else {
            self.tail[l] = p;
        }
    }

    pub(crate) fn remove(&mut self, f: FrameId) {
        let l = self.list_of(f);
        if l == NONE {
            return;
        }
        let l = l as usize;
        self.unlink(l, f);
        self.nodes[f as usize] = UNLINKED;
        self.len[l] -= 1;
    }

    /// Moves `f` to the front of list `l` (from whatever list it is in).
    #[inline]
    pub(crate) fn move_to_front(&mut self, l: usize, f: FrameId) {
        if self.list_of(f) == l as u8 {
            // The hit path: already in `l`.
            if self.head[l] == f {
                return;
            }
            self.unlink(l, f);
            let h = self.head[l];
            self.nodes[f as usize].prev = NIL;
            self.nodes[f as usize].next = h;
            self.nodes[h as usize].prev = f;
            self.head[l] = f;
            return;
        }
        self.remove(f);
        self.push_front(l, f);
    }

    /// `new` (in no list) takes `old`'s place in its list; `old` leaves it.
    pub(crate) fn replace(&mut self, old: FrameId, new: FrameId) {
        let node = self.nodes[old as usize];
        if node.which == NONE {
            return;
        }
        debug_assert_eq!(self.nodes[new as usize].which, NONE);
        let l = node.which as usize;
        self.nodes[new as usize] = node;
        if node.prev != NIL {
            self.nodes[node.prev as usize].next = new;
        } else {
            self.head[l] = new;
        }
        if node.next != NIL {
            self.nodes[node.next as usize].prev = new;
        } else {
            self.tail[l] = new;
        }
        self.nodes[old as usize] = UNLINKED;
    }

    /// The frame nearest the back (oldest end) of list `l` for which `pred`
    /// says yes; `pred` is called at most once per frame of the list.
    pub(crate) fn oldest_where(
        &self,
        l: usize,
        pred: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let mut f = self.back(l);
        while let Some(x) = f {
            if pred(x) {
                return Some(x);
            }
            f = self.newer(x);
        }
        None
    }
}

/// [`FrameLists`] plus the page each held frame holds: the shape of every
/// list-based policy (ARC, 2Q, S3-FIFO, LRU, LIRS), which remember evicted
/// pages by id.
#[derive(Debug, Clone)]
pub(crate) struct PagedLists<const N: usize> {
    pub(crate) lists: FrameLists<N>,
    pages: Vec<u64>,
}

impl<const N: usize> PagedLists<N> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            lists: FrameLists::new(capacity),
            pages: vec![u64::MAX; capacity],
        }
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.pages.len()
    }

    /// Frames held in all lists.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        (0..N).map(|l| self.lists.len(l)).sum()
    }

    #[inline]
    pub(crate) fn contains(&self, f: FrameId) -> bool {
        self.lists.list_of(f) != NONE
    }

    /// Whether `f` may join (in range, not held); if so, records its page.
    /// The caller then pushes it onto a list.
    #[inline]
    pub(crate) fn admit(&mut self, f: FrameId, page: u64) -> bool {
        if self.contains(f) || f as usize >= self.pages.len() {
            return false;
        }
        self.pages[f as usize] = page;
        true
    }

    /// The page `f` holds (or held last).
    #[inline]
    pub(crate) fn page(&self, f: FrameId) -> u64 {
        self.pages[f as usize]
    }

    #[inline]
    pub(crate) fn remove(&mut self, f: FrameId) {
        self.lists.remove(f);
    }

    /// `Hot` for frames in list `hot`, `Warm` for the rest.
    #[inline]
    pub(crate) fn tier(&self, f: FrameId, hot: usize) -> Tier {
        if self.lists.list_of(f) == hot as u8 {
            Tier::Hot
        } else {
            Tier::Warm
        }
    }
}

/// A bounded FIFO/LRU queue of page ids with O(1) lookup and removal, each
/// carrying a small value. Used for ghosts and retained history.
#[derive(Debug, Clone)]
pub(crate) struct KeyedQueue<V: Copy> {
    map: PageMap<u32>,
    nodes: Vec<Node<V>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
}

#[derive(Debug, Clone, Copy)]
struct Node<V> {
    key: u64,
    val: V,
    prev: u32,
    next: u32,
}

impl<V: Copy> KeyedQueue<V> {
    pub(crate) fn new() -> Self {
        Self {
            map: PageMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn contains(&self, key: u64) -> bool {
        self.map.contains_key(&key)
    }

    /// Inserts `key` at the front (replacing an existing entry).
    pub(crate) fn push_front(&mut self, key: u64, val: V) {
        self.remove(key);
        let node = Node {
            key,
            val,
            prev: NIL,
            next: self.head,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        if self.head != NIL {
            self.nodes[self.head as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
        self.map.insert(key, i);
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove(&mut self, key: u64) -> Option<V> {
        let i = self.map.remove(&key)?;
        Some(self.unlink(i))
    }

    fn unlink(&mut self, i: u32) -> V {
        let n = self.nodes[i as usize];
        if n.prev != NIL {
            self.nodes[n.prev as usize].next = n.next;
        } else {
            self.head = n.next;
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        } else {
            self.tail = n.prev;
        }
        self.free.push(i);
        n.val
    }

    /// Removes and returns the oldest entry.
    pub(crate) fn pop_back(&mut self) -> Option<(u64, V)> {
        if self.tail == NIL {
            return None;
        }
        let i = self.tail;
        let key = self.nodes[i as usize].key;
        self.map.remove(&key);
        Some((key, self.unlink(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists() {
        let mut l: FrameLists<2> = FrameLists::new(8);
        for f in 0..4 {
            l.push_front(0, f);
        }
        assert_eq!(l.back(0), Some(0));
        l.move_to_front(1, 0);
        assert_eq!(l.back(0), Some(1));
        assert_eq!((l.len(0), l.len(1)), (3, 1));
        assert_eq!(l.newer(1), Some(2));
        l.remove(2);
        assert_eq!(l.newer(1), Some(3));
        assert_eq!(l.list_of(2), NONE);
        assert_eq!(l.list_of(100), NONE);
        // 3 takes 1's place at the back of list 0; then 5 takes 3's.
        l.replace(1, 5);
        assert_eq!(
            (l.back(0), l.newer(5), l.list_of(1)),
            (Some(5), Some(3), NONE)
        );
        l.replace(3, 6);
        assert_eq!((l.newer(5), l.len(0)), (Some(6), 2));
        assert_eq!(l.oldest_where(0, &mut |f| f != 5), Some(6));
    }

    #[test]
    fn keyed_queue() {
        let mut q = KeyedQueue::new();
        for k in 0..5u64 {
            q.push_front(k, k * 10);
        }
        assert_eq!(q.remove(2), Some(20));
        assert_eq!(q.pop_back(), Some((0, 0)));
        q.push_front(1, 11);
        assert_eq!(q.pop_back(), Some((3, 30)));
        assert_eq!(q.pop_back(), Some((4, 40)));
        assert_eq!(q.pop_back(), Some((1, 11)));
        assert_eq!(q.pop_back(), None);
        assert_eq!(q.len(), 0);
    }
}
