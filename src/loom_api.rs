//! A safe face over the depot and magazines for the loom model tests
//! (`--cfg rustydb_loom` only; not part of the public API).

use core::ptr::NonNull;

use crate::slab::depot::Depot;
use crate::slab::magazine::Magazine;

/// An owned magazine holding `usize` tokens in place of object pointers.
#[derive(Debug)]
pub struct MagazineBox(NonNull<Magazine>);

// SAFETY: a MagazineBox owns its magazine exclusively.
unsafe impl Send for MagazineBox {}

impl MagazineBox {
    /// An empty magazine of capacity `cap` (≤ 64).
    pub fn new(cap: u32) -> Self {
        Self(NonNull::from(Box::leak(Box::new(Magazine::new(cap)))))
    }
    fn m(&self) -> &Magazine {
        // SAFETY: we own a live boxed magazine.
        unsafe { self.0.as_ref() }
    }
    /// Pushes a token; false if full.
    pub fn push(&mut self, token: usize) -> bool {
        let n = self.m().len();
        if n == self.m().cap as usize {
            return false;
        }
        // SAFETY: exclusive ownership; `n < cap`.
        unsafe { (*self.0.as_ptr()).rounds[n] = token as *mut u8 };
        self.m().set_len(n + 1);
        true
    }
    /// Pops a token.
    pub fn pop(&mut self) -> Option<usize> {
        let n = self.m().len().checked_sub(1)?;
        self.m().set_len(n);
        Some(self.m().rounds[n] as usize)
    }
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.m().len()
    }
    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn into_raw(self) -> *mut Magazine {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
    fn from_raw(p: *mut Magazine) -> Option<Self> {
        NonNull::new(p).map(Self)
    }
}

impl Drop for MagazineBox {
    fn drop(&mut self) {
        // SAFETY: the box was leaked in `new` and is owned by us alone.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// A depot of [`MagazineBox`]es.
#[derive(Debug)]
pub struct DepotModel(Depot);

impl core::fmt::Debug for Depot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Depot")
    }
}

impl Default for DepotModel {
    fn default() -> Self {
        Self(Depot::new())
    }
}

impl DepotModel {
    /// Gives `empty` (if any) for a full magazine; `Err(empty)` back if none.
    pub fn exchange_for_full(
        &self,
        empty: Option<MagazineBox>,
    ) -> Result<MagazineBox, Option<MagazineBox>> {
        assert!(empty.as_ref().is_none_or(|m| m.is_empty()));
        let raw = empty.map_or(core::ptr::null_mut(), MagazineBox::into_raw);
        // SAFETY: `raw` is null or an owned empty magazine, given up here.
        let full = unsafe { self.0.exchange_for_full(raw) };
        match MagazineBox::from_raw(full) {
            Some(f) => Ok(f),
            None => Err(MagazineBox::from_raw(raw)),
        }
    }
    /// Gives a full magazine for an empty one, if the depot has one.
    pub fn exchange_for_empty(&self, full: MagazineBox) -> Option<MagazineBox> {
        assert_eq!(full.len(), full.m().cap as usize);
        // SAFETY: an owned full magazine, given up here.
        MagazineBox::from_raw(unsafe { self.0.exchange_for_empty(full.into_raw()) })
    }
    /// Stores a full or empty magazine.
    pub fn put(&self, m: MagazineBox) {
        // SAFETY: an owned full-or-empty magazine, given up here.
        unsafe { self.0.put(m.into_raw()) }
    }
    /// Removes every magazine: `(full, empty)`.
    pub fn drain(&self) -> (Vec<MagazineBox>, Vec<MagazineBox>) {
        let (f, e) = self.0.trim(true);
        (collect(f), collect(e))
    }
}

fn collect(mut p: *mut Magazine) -> Vec<MagazineBox> {
    let mut v = Vec::new();
    while let Some(m) = MagazineBox::from_raw(p) {
        // SAFETY: a detached list handed over whole by the depot.
        p = unsafe { (*p).next };
        v.push(m);
    }
    v
}
