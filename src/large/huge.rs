//! Huge-page policy: which kind of pages a large block asks for, and how the
//! request degrades when the kernel cannot give it.
//!
//! | policy | block ≥ huge size | fallback chain (each step counted) |
//! |---|---|---|
//! | `Never` | normal pages | — |
//! | `Transparent` | 2 MiB-aligned mapping + `MADV_HUGEPAGE` (blocks ≥ 2 MiB) | THP off or refused → normal pages |
//! | `Explicit(size)` | `MAP_HUGETLB` with `size` pages (blocks ≥ `size`) | no reserved pages → transparent → normal pages |
//!
//! Blocks smaller than the huge size of their policy get normal pages without
//! counting a fallback: there was nothing to fall back from.

use crate::sys::HugePageSize;

/// Size of a transparent huge page (x86-64 and aarch64 with 4 KiB pages).
pub(crate) const THP_SIZE: usize = 2 << 20;

/// Which pages back the large blocks of a [`LargeObjectAllocator`](super::LargeObjectAllocator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HugePagePolicy {
    /// Normal pages only (the kernel's own THP setting `always` still applies).
    #[default]
    Never,
    /// Blocks of 2 MiB or more are mapped 2 MiB-aligned and advised with
    /// `MADV_HUGEPAGE`, so the kernel backs them with transparent huge pages
    /// when its mode is `always` or `madvise`.
    Transparent,
    /// Blocks of at least the page size are mapped with `MAP_HUGETLB` pages of
    /// that size (from the pool reserved in `/proc/sys/vm/nr_hugepages`, or
    /// `hugepages-1048576kB/nr_hugepages`), rounded up to whole huge pages.
    /// Without reserved pages the request falls back to `Transparent`, then to
    /// normal pages.
    Explicit(HugePageSize),
}

impl HugePagePolicy {
    /// Decodes the `RUSTYDB_MEM_LARGE_HUGE` value: `0` never, `1` transparent,
    /// `2m` explicit 2 MiB, `1g` explicit 1 GiB; anything else is ignored.
    pub(crate) fn from_env_value(v: usize) -> Option<Self> {
        match v {
            0 => Some(Self::Never),
            1 => Some(Self::Transparent),
            v if v == HugePageSize::TwoMiB.bytes() => Some(Self::Explicit(HugePageSize::TwoMiB)),
            v if v == HugePageSize::OneGiB.bytes() => Some(Self::Explicit(HugePageSize::OneGiB)),
            _ => None,
        }
    }
}

/// The pages actually backing a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Normal pages.
    Pages,
    /// Normal pages advised `MADV_HUGEPAGE` (the kernel may collapse them).
    Thp,
    /// `MAP_HUGETLB` 2 MiB pages: length and splits in 2 MiB steps only.
    Huge2M,
    /// `MAP_HUGETLB` 1 GiB pages.
    Huge1G,
}

impl Backing {
    /// hugetlb mappings cannot be split, trimmed or remapped at page granularity.
    #[inline]
    pub(crate) fn is_hugetlb(self) -> bool {
        matches!(self, Backing::Huge2M | Backing::Huge1G)
    }

    /// The granule lengths of this backing come in (hugetlb page size; 1 for
    /// normal pages, whose page size the caller knows).
    #[inline]
    pub(crate) fn page_bytes(self) -> usize {
        match self {
            Backing::Huge2M => HugePageSize::TwoMiB.bytes(),
            Backing::Huge1G => HugePageSize::OneGiB.bytes(),
            Backing::Pages | Backing::Thp => 1,
        }
    }
}

/// What a request asked for, which is what the cache matches on: a block mapped
/// for an explicit-huge request serves later explicit-huge requests of the same
/// size even if it fell back to normal pages, and never serves normal requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Normal pages, or transparent huge pages.
    Any,
    /// Explicit hugetlb pages of this size.
    Explicit(HugePageSize),
}

impl Want {
    /// The class of a `len`-byte block aligned to `align` under `policy`.
    #[inline]
    pub(crate) fn of(policy: HugePagePolicy, len: usize, align: usize) -> Self {
        match policy {
            HugePagePolicy::Explicit(s) if len >= s.bytes() && align <= s.bytes() => {
                Want::Explicit(s)
            }
            _ => Want::Any,
        }
    }
}

/// Whether the kernel would back `MADV_HUGEPAGE` ranges with huge pages.
pub(crate) fn thp_usable() -> bool {
    matches!(
        crate::sys::thp_mode(),
        Some(crate::sys::ThpMode::Always | crate::sys::ThpMode::Madvise)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_decode_to_policies() {
        assert_eq!(
            HugePagePolicy::from_env_value(0),
            Some(HugePagePolicy::Never)
        );
        assert_eq!(
            HugePagePolicy::from_env_value(1),
            Some(HugePagePolicy::Transparent)
        );
        assert_eq!(
            HugePagePolicy::from_env_value(2 << 20),
            Some(HugePagePolicy::Explicit(HugePageSize::TwoMiB))
        );
        assert_eq!(
            HugePagePolicy::from_env_value(1 << 30),
            Some(HugePagePolicy::Explicit(HugePageSize::OneGiB))
        );
        assert_eq!(HugePagePolicy::from_env_value(7), None);
    }

    #[test]
    fn only_big_enough_blocks_want_explicit_pages() {
        let p = HugePagePolicy::Explicit(HugePageSize::TwoMiB);
        assert_eq!(Want::of(p, 1 << 20, 4096), Want::Any);
        assert_eq!(
            Want::of(p, 4 << 20, 4096),
            Want::Explicit(HugePageSize::TwoMiB)
        );
        assert_eq!(Want::of(p, 4 << 20, 4 << 20), Want::Any);
        assert_eq!(
            Want::of(HugePagePolicy::Transparent, 8 << 20, 4096),
            Want::Any
        );
    }
}
