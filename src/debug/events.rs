//! Findings the debugger made since the last call, for the `tracing`
//! feature's events ([`crate::events`]). Findings are pushed into each
//! instance's ring from inside the allocator, where nothing may be emitted;
//! this reads them later, from the pressure monitor's thread.

use super::report::Report;
use super::state::{self, MAX_STATES};
use super::threads::guarded;
use crate::sync::{AtomicUsize, Ordering};

/// Findings already passed on, per registered instance (in registration order).
static SEEN: [AtomicUsize; MAX_STATES] = [const { AtomicUsize::new(0) }; MAX_STATES];

/// Calls `f` on each finding made since the previous call (at most the 256
/// each instance keeps), with its stacks resolved. Allocates (outside the
/// allocator: the caller is never an allocation path).
pub(crate) fn new_findings(mut f: impl FnMut(&Report)) {
    guarded(|| {
        let mut i = 0;
        state::for_each(|s| {
            let total = s.reports.total();
            // Relaxed: a cursor only this poll (serialised by the pressure
            // manager's check lock) moves.
            let seen = SEEN[i].swap(total, Ordering::Relaxed);
            i += 1;
            if total > seen {
                let all = s.reports.all();
                let fresh = (total - seen).min(all.len());
                for raw in &all[all.len() - fresh..] {
                    f(&raw.resolve());
                }
            }
        });
    });
}
