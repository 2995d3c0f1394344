//! The pressure manager: a budget, usage readings, levels Normal < Warning (80 %)
//! < Critical (90 %) < Emergency (95 %) with hysteresis, a registry of reclaim
//! callbacks run in priority order, emergency release, admission control and a
//! bounded event history. Usage sources are plain functions, so this layer needs
//! nothing above it; the allocators report their mappings to [`signal`].

mod level;
mod manager;
mod monitor;

/// The allocator → monitor signal and the crate's mapped-bytes counter (kept in
/// `sys`, the layer every mapping goes through).
pub mod signal {
    pub use crate::sys::mapped::{SIGNAL_STEP, mapped_bytes, wake_monitors};
    pub(crate) use crate::sys::mapped::{register_wake_fd, unregister_wake_fd};
}

pub use level::{PressureLevel, Thresholds};
pub use manager::{
    CallbackHandle, CallbackRun, Clock, Consumer, PressureEvent, PressureManager,
    PressureManagerBuilder, PressureStats, ReclaimRequest, SystemClock, UsageSource,
};
pub use monitor::MonitorInfo;
