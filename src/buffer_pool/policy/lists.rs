//! Intrusive lists shared by the policies: doubly linked lists of frame
//! indices (arrays, no allocation after construction) and a bounded
//! queue of page ids for ghost / history entries.

use std::collections::HashMap;

use super::FrameId;

pub(crate) const NIL: u32 = u32::MAX;
/// "In no list".
pub(crate) const NONE: u8 = u8::MAX;

/// Up to `N` doubly linked lists over frames `0..capacity`; a frame is in at
/// most one list. `front` is the newest (MRU) end, `back` the oldest.
#[derive(Debug, Clone)]
pub(crate) struct FrameLists<const N: usize> {
    prev: Vec<u32>,
    next: Vec<u32>,
    which: Vec<u8>,
    head: [u32; N],
    tail: [u32; N],
    len: [usize; N],
}

impl<const N: usize> FrameLists<N> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            prev: vec![NIL; capacity],
            next: vec![NIL; capacity],
            which: vec![NONE; capacity],
            head: [NIL; N],
            tail: [NIL; N],
            len: [0; N],
        }
    }

    /// The list `f` is in (`NONE` if none; out-of-range frames are in none).
    #[inline]
    pub(crate) fn list_of(&self, f: FrameId) -> u8 {
        self.which.get(f as usize).copied().unwrap_or(NONE)
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
        let p = self.prev[f as usize];
        (p != NIL).then_some(p)
    }

    pub(crate) fn push_front(&mut self, l: usize, f: FrameId) {
        let i = f as usize;
        debug_assert_eq!(self.which[i], NONE);
        self.which[i] = l as u8;
        self.prev[i] = NIL;
        self.next[i] = self.head[l];
        if self.head[l] != NIL {
            self.prev[self.head[l] as usize] = f;
        } else {
            self.tail[l] = f;
        }
        self.head[l] = f;
        self.len[l] += 1;
    }

    pub(crate) fn remove(&mut self, f: FrameId) {
        let i = f as usize;
        let l = self.list_of(f);
        if l == NONE {
            return;
        }
        let l = l as usize;
        let (p, n) = (self.prev[i], self.next[i]);
        if p != NIL {
            self.next[p as usize] = n;
        } else {
            self.head[l] = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        } else {
            self.tail[l] = p;
        }
        self.prev[i] = NIL;
        self.next[i] = NIL;
        self.which[i] = NONE;
        self.len[l] -= 1;
    }

    /// Moves `f` to the front of list `l` (from whatever list it is in).
    pub(crate) fn move_to_front(&mut self, l: usize, f: FrameId) {
        self.remove(f);
        self.push_front(l, f);
    }
}

/// A bounded FIFO/LRU queue of page ids with O(1) lookup and removal, each
/// carrying a small value. Used for ghosts and retained history.
#[derive(Debug, Clone)]
pub(crate) struct KeyedQueue<V: Copy> {
    map: HashMap<u64, u32>,
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
            map: HashMap::new(),
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
