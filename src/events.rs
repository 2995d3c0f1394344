//! Events through [`tracing`](https://docs.rs/tracing), behind the `tracing`
//! feature (off by default): pressure level changes, releases with the bytes
//! each reclaimer freed, huge-page fallbacks of large blocks, decay rounds
//! (`rustydb_memory::decay`, debug: `round`, `source` — `poll`, `purge()` or
//! `background` —, `lazily_freed`, `purged`), and the memory debugger's findings.
//!
//! Nothing here runs on an allocation path or inside the global allocator: a
//! subscriber may allocate, format and lock as it likes. Level changes and
//! releases are emitted by the pressure manager's check, where they happen;
//! huge-page fallbacks, decay rounds and debugger findings happen inside the
//! allocator, which only counts or records them (decay rounds in a fixed ring,
//! `global/decay_rounds.rs`), and are turned into events by [`poll`], which
//! the same check calls (on the monitor thread, or in `check_now`);
//! `RustyAlloc::purge` emits the decay rounds too.
//!
//! `tracing` rather than `log`: events carry typed fields (bytes, levels,
//! reclaimer names) that subscribers can filter and aggregate without parsing
//! text, the example server's stack (tokio, hyper) already speaks it, and a
//! `log`-only program still receives the events through `tracing`'s `log`
//! feature or `tracing-log`.

#[cfg(feature = "tracing")]
mod imp {
    use crate::pressure::{CallbackRun, PressureEvent, PressureLevel};
    use crate::sync::{AtomicU64, Ordering};

    /// Fallbacks already reported (transparent, explicit 2 MiB, explicit 1 GiB).
    static SEEN_FALLBACKS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

    pub(crate) fn pressure_event(ev: &PressureEvent) {
        if ev.from != ev.to {
            let (from, to) = (ev.from.as_str(), ev.to.as_str());
            match ev.to {
                PressureLevel::Emergency => tracing::error!(
                    target: "rustydb_memory::pressure", from, to, usage = ev.usage,
                    budget = ev.budget, "memory pressure level changed"
                ),
                PressureLevel::Critical | PressureLevel::Warning if ev.to > ev.from => {
                    tracing::warn!(
                        target: "rustydb_memory::pressure", from, to, usage = ev.usage,
                        budget = ev.budget, "memory pressure level changed"
                    )
                }
                _ => tracing::info!(
                    target: "rustydb_memory::pressure", from, to, usage = ev.usage,
                    budget = ev.budget, "memory pressure level changed"
                ),
            }
        }
    }

    pub(crate) fn reclaimer_ran(level: PressureLevel, run: &CallbackRun) {
        tracing::info!(
            target: "rustydb_memory::pressure",
            reclaimer = %run.name,
            level = level.as_str(),
            released = run.released,
            panicked = run.panicked,
            micros = run.micros,
            "reclaimer ran"
        );
    }

    pub(crate) fn released(level: PressureLevel, bytes: u64, reclaimers: usize, usage: u64) {
        let emergency = level == PressureLevel::Emergency;
        if emergency {
            tracing::warn!(
                target: "rustydb_memory::pressure",
                level = level.as_str(), emergency, released = bytes, reclaimers, usage,
                "memory released under pressure"
            );
        } else {
            tracing::info!(
                target: "rustydb_memory::pressure",
                level = level.as_str(), emergency, released = bytes, reclaimers, usage,
                "memory released under pressure"
            );
        }
    }

    pub(crate) fn poll() {
        crate::global::decay_rounds::emit();
        let l = crate::large::stats();
        let counts = [l.thp_fallbacks, l.huge_2m_fallbacks, l.huge_1g_fallbacks];
        let kinds = ["transparent", "explicit 2 MiB", "explicit 1 GiB"];
        for ((seen, now), wanted) in SEEN_FALLBACKS.iter().zip(counts).zip(kinds) {
            // Relaxed: a cursor; polls are serialised by the pressure check lock.
            let before = seen.swap(now, Ordering::Relaxed);
            if now > before {
                tracing::warn!(
                    target: "rustydb_memory::large",
                    wanted,
                    new = now - before,
                    total = now,
                    "huge pages unavailable: large blocks fell back to smaller pages"
                );
            }
        }
        crate::debug::events::new_findings(|r| {
            tracing::error!(
                target: "rustydb_memory::debug",
                kind = ?r.kind,
                addr = r.addr,
                size = r.size,
                component = %r.component,
                "memory debugger finding:\n{r}"
            );
        });
    }
}

#[cfg(feature = "tracing")]
pub(crate) use imp::{poll, pressure_event, reclaimer_ran, released};

/// Without the feature: nothing.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn pressure_event(_: &crate::pressure::PressureEvent) {}

/// Without the feature: nothing.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn reclaimer_ran(_: crate::pressure::PressureLevel, _: &crate::pressure::CallbackRun) {}

/// Without the feature: nothing.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn released(_: crate::pressure::PressureLevel, _: u64, _: usize, _: u64) {}

/// Without the feature: nothing.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn poll() {}
