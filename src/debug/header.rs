//! The 16-byte header in front of every block handed out (whatever the level,
//! so levels can change at run time and every block is still freed the way it
//! was allocated):
//!
//! ```text
//! [lead redzone (Full)] [header: size | slot, state flags component check] [user data] [tail redzone (Full)]
//! ```
//!
//! The check word hashes the user address with the other fields, so a header
//! that was overwritten, or a pointer that is not ours, is recognised on free
//! (with a 2⁻³² chance of a forged match).

/// Header size in bytes.
pub(crate) const HEADER: usize = 16;
pub(crate) const LEAD_RZ: usize = 16;
pub(crate) const TAIL_RZ: usize = 16;
pub(crate) const RZ_BYTE: u8 = 0xFA;
pub(crate) const ALIVE: u8 = 0xA1;
pub(crate) const FREED: u8 = 0xF7;

/// Counted in the per-component counters.
pub(crate) const F_COUNTED: u8 = 1;
/// Has a side-table record.
pub(crate) const F_TRACKED: u8 = 2;
/// Has redzones (Full).
pub(crate) const F_RZ: u8 = 4;
/// Lives on a guard page (Full, sampled).
pub(crate) const F_GUARDED: u8 = 8;
/// Poisson-sampled for the heap profile (Sampled level).
pub(crate) const F_PROFILED: u8 = 16;

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Header {
    /// size (low 56 bits) | owner slot << 56
    size: u64,
    /// state | flags << 8 | component << 16 | check << 32
    meta: u64,
}

fn check(user: usize, size_slot: u64, flags: u8, component: u16) -> u32 {
    let h = (user as u64 ^ size_slot ^ ((flags as u64) << 40) ^ ((component as u64) << 48))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 32) as u32
}

impl Header {
    #[inline(always)]
    pub(crate) fn new(
        user: usize,
        size: usize,
        slot: usize,
        state: u8,
        flags: u8,
        component: u16,
    ) -> Header {
        let size_slot = (size as u64 & ((1 << 56) - 1)) | (slot as u64) << 56;
        let c = check(user, size_slot, flags, component);
        Header {
            size: size_slot,
            meta: state as u64 | (flags as u64) << 8 | (component as u64) << 16 | (c as u64) << 32,
        }
    }
    #[inline(always)]
    pub(crate) fn size(&self) -> usize {
        (self.size & ((1 << 56) - 1)) as usize
    }
    #[inline(always)]
    pub(crate) fn slot(&self) -> usize {
        (self.size >> 56) as usize
    }
    #[inline(always)]
    pub(crate) fn state(&self) -> u8 {
        self.meta as u8
    }
    #[inline(always)]
    pub(crate) fn flags(&self) -> u8 {
        (self.meta >> 8) as u8
    }
    #[inline(always)]
    pub(crate) fn component(&self) -> u16 {
        (self.meta >> 16) as u16
    }
    #[inline(always)]
    pub(crate) fn valid(&self, user: usize) -> bool {
        (self.meta >> 32) as u32 == check(user, self.size, self.flags(), self.component())
    }
    /// The same header in state `state` (the state is not part of the check).
    #[inline(always)]
    pub(crate) fn with_state(&self, state: u8) -> Header {
        Header {
            size: self.size,
            meta: self.meta & !0xff | state as u64,
        }
    }

    /// Reads the header of block `user`.
    ///
    /// # Safety
    /// `[user - HEADER, user)` is readable (true for every block we handed
    /// out; for a foreign pointer it is the caller's bug we try to diagnose).
    #[inline(always)]
    pub(crate) unsafe fn read(user: usize) -> Header {
        // SAFETY: readable (the contract); 8-aligned since user is ≥ 16-aligned
        // for our blocks (a misaligned foreign pointer is read unaligned).
        unsafe { ((user - HEADER) as *const Header).read_unaligned() }
    }

    /// Writes the header of block `user`.
    ///
    /// # Safety
    /// `[user - HEADER, user)` is inside a block we own.
    #[inline(always)]
    pub(crate) unsafe fn write(self, user: usize) {
        // SAFETY: inside our block (the contract), 8-aligned (user ≥ 16-aligned).
        unsafe { ((user - HEADER) as *mut Header).write(self) }
    }
}

/// Bytes in front of the user pointer.
#[inline(always)]
pub(crate) fn prefix(flags: u8, align: usize) -> usize {
    let lead = if flags & F_RZ != 0 { LEAD_RZ } else { 0 };
    let a = align.max(16); // a power of two (a `Layout`'s alignment)
    (HEADER + lead + a - 1) & !(a - 1)
}

/// Bytes after the user data.
#[inline(always)]
pub(crate) fn tail(flags: u8) -> usize {
    if flags & F_RZ != 0 { TAIL_RZ } else { 0 }
}
