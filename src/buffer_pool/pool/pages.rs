//! New and deleted pages, and shrinking under memory pressure.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sync::Ordering;
use crate::sys;

use super::{Loc, Shared, bump};
use crate::buffer_pool::batch;
use crate::buffer_pool::format::{self, PAGE_HEADER};
use crate::buffer_pool::frame::{COLD, DIRTY, NO_PAGE, REF, RING, WRITE, pins};
use crate::buffer_pool::page_table::MAX_PAGE_ID;
use crate::buffer_pool::scratch::with_scratch;
use crate::buffer_pool::{PageId, words};

impl Shared {
    /// Allocates a page on disk and a frame for it, zeroed, latched for writing.
    pub(crate) fn new_page(self: &Arc<Self>) -> Result<(u32, PageId)> {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let id = self.disk.allocate_page()?;
        if id > MAX_PAGE_ID {
            let _ = self.disk.deallocate_page(id);
            return Err(Error::PageNotFound { page: id });
        }
        let (f, victim) = match self.take_frame(&mut g, None, None) {
            Ok(x) => x,
            Err(e) => {
                drop(g);
                self.release_unused_id(id);
                return Err(e);
            }
        };
        self.table.insert(id, f);
        let victim = victim.map(|(p, s)| (p, s & DIRTY != 0));
        if let Some((old, false)) = victim {
            self.table.remove(old);
        }
        self.admit(&mut g, f, id, None);
        drop(g);
        if let Err(e) = self.evict_writeback(f, id, victim) {
            self.release_unused_id(id);
            return Err(e);
        }
        let fm = &self.frames[f as usize];
        fm.io_update(DIRTY | COLD | RING | REF, 0);
        if fm.writes_atomic() {
            // SAFETY: frame `f` is owned (IO set): we are its only writer. The
            // header is never read optimistically; the payload (aligned, a
            // multiple of 8 bytes) is zeroed through atomic words.
            unsafe {
                core::ptr::write_bytes(self.frame_ptr(f), 0, PAGE_HEADER);
                words::zero(self.frame_ptr(f).add(PAGE_HEADER), self.payload_len());
            }
        } else {
            // SAFETY: frame `f` is owned (IO set) and unmarked: see `read_owned`.
            unsafe { core::ptr::write_bytes(self.frame_ptr(f), 0, self.page_size) };
        }
        // Relaxed: published by the Release in `finish_io`.
        fm.page.store(id, Ordering::Relaxed);
        fm.finish_io(WRITE | DIRTY);
        Ok((f, id))
    }

    /// Gives back an id `new_page` allocated but could not use. The disk may
    /// read an id it allocated but that was never written as a new (zero)
    /// page, so the id gets a tombstone first, as a deleted page does: until
    /// it is handed out again it reads as `PageNotFound`, in this pool and
    /// after a reopen. Best effort: `new_page` is already failing.
    pub(super) fn release_unused_id(&self, id: PageId) {
        let _ = with_scratch(self.page_size, |buf| {
            format::seal_freed(buf, id);
            self.disk.write_page(id, buf)
        });
        let _ = self.disk.deallocate_page(id);
    }

    /// Drops page `id` from the pool and from the disk.
    pub(crate) fn delete_page(self: &Arc<Self>, id: PageId) -> Result<()> {
        if id > MAX_PAGE_ID || id >= self.disk.num_pages() {
            return Err(Error::PageNotFound { page: id });
        }
        {
            let mut g = self.lock_inner();
            batch::drain(self, &mut g);
            if let Some(f) = self.table.get(id) {
                let i = f as usize;
                let fm = &self.frames[i];
                if fm.try_begin_io(0, 0).is_none() {
                    let s = fm.load();
                    return Err(Error::PagePinned {
                        page: id,
                        pins: (pins(s) + u64::from(s & WRITE != 0)) as u32,
                    });
                }
                self.table.remove(id);
                if g.loc[i] == Loc::Policy {
                    g.policy.remove(f, id);
                }
                g.loc[i] = Loc::Free;
                // Relaxed: published by the Release in `finish_io`.
                fm.page.store(NO_PAGE, Ordering::Relaxed);
                fm.io_update(DIRTY | COLD | RING | REF, 0);
                fm.finish_io(0);
                g.free.push(f);
            }
        }
        with_scratch(self.page_size, |buf| {
            format::seal_freed(buf, id);
            self.disk.write_page(id, buf)
        })?;
        bump(&self.c.disk_writes);
        self.disk.deallocate_page(id)
    }

    /// Releases clean, unpinned frames until `bytes` are returned to the OS.
    pub(crate) fn shrink_clean(self: &Arc<Self>, bytes: usize) -> usize {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let mut released = 0;
        while released < bytes {
            let f = if let Some(f) = g.free.pop() {
                f
            } else {
                let Some((f, _)) = self.take_victim_where(&mut g, None, DIRTY) else {
                    break;
                };
                let fm = &self.frames[f as usize];
                // Relaxed: the frame is owned (IO).
                let page = fm.page.load(Ordering::Relaxed);
                self.table.remove(page);
                fm.page.store(NO_PAGE, Ordering::Relaxed);
                fm.io_update(COLD | RING | REF, 0);
                fm.finish_io(0);
                bump(&self.c.evictions);
                f
            };
            g.loc[f as usize] = Loc::Free;
            // SAFETY: frame `f` is free: no guard, no page, nobody will read it
            // until it is loaded again (which overwrites all of it). An
            // optimistic reader that began before the eviction may still be
            // copying: the kernel swaps the pages for zero pages under it (no
            // store of this program races with its loads), and the version it
            // validates has moved, so what it copied is discarded.
            unsafe { sys::advise(self.frame_ptr(f), self.page_size, sys::Advice::DontNeed) };
            g.fresh.push(f);
            released += self.page_size;
        }
        // Relaxed: a statistics counter.
        self.c
            .released
            .fetch_add(released as u64, Ordering::Relaxed);
        released
    }
}
